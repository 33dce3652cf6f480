import numpy as np
import pytest

from robot.task_spec import (
    TARGET_EDGE_CLEARANCE,
    ObjectSpec,
    TaskSpecError,
    available_tasks,
    footprint_reach,
    load_task,
)
from robot.workspace import Workspace


def test_packaged_variants():
    assert available_tasks() == ["train", "unseen-1", "unseen-2", "unseen-3"]
    train = load_task("train")
    assert (train.obstacle_count, train.obstacles.shape, train.target.shape) == (
        2,
        "box",
        "cylinder",
    )
    assert len(train.target.placements) == 3 and len(train.obstacles.placements) == 6
    assert load_task("unseen-1").obstacles.shape != "box"  # other obstacle shape
    assert load_task("unseen-2").target.shape != "cylinder"  # other target shape
    assert load_task("unseen-3").obstacle_count > train.obstacle_count  # more obstacles


def test_layouts_are_deterministic_and_inside_the_task_area():
    ws = Workspace()
    for name in available_tasks():
        task = load_task(name)
        for seed in range(50):
            a, b = task.sample_layout(seed), task.sample_layout(seed)
            np.testing.assert_array_equal(a.obstacle_xy, b.obstacle_xy)
            assert a.target_index == b.target_index
            assert len(set(a.obstacle_indices)) == task.obstacle_count
            for xy in [a.target_xy, *a.obstacle_xy]:
                assert np.all(np.abs(xy - ws.area_center) <= ws.area_size / 2)
    layouts = {load_task("train").sample_layout(s).obstacle_indices for s in range(200)}
    assert len(layouts) > 10  # seeds really vary the layout


def test_new_variant_needs_only_a_file(tmp_path):
    text = load_task("train").source and open(load_task("train").source).read()
    custom = tmp_path / "mine.toml"
    custom.write_text(
        text.replace('name = "train"', 'name = "mine"').replace("count = 2", "count = 5")
    )
    spec = load_task(custom)
    assert spec.name == "mine" and spec.obstacle_count == 5


@pytest.mark.parametrize(
    "edit, field",
    [
        (("count = 2", "count = 9"), "obstacles.count"),
        (('shape = "box"', 'shape = "sphere"'), "obstacles.shape"),
        (("mass = 0.25", "mass = -1"), "obstacles.mass"),
        (("size = [0.025, 0.03]", "size = [0.025]"), "target.size"),
        # the target's far side at the area's edge: a hand held beyond it could leave the
        # measured-TCP box (robot/workspace.py)
        (("[0.585, 0.075]]", "[0.595, 0.075]]"), r"target.placements\[2\] = \[0.595, 0.075\]"),
        (("[0.46, -0.07]", "[0.36, -0.07]"), r"obstacles.placements\[0\].*too far"),
        (("yaw_jitter_deg = 10.0", "yaw_jitter_deg = 120"), "layout.position_jitter"),
    ],
)
def test_bad_task_file_names_the_field(tmp_path, edit, field):
    text = open(load_task("train").source).read()
    assert edit[0] in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(*edit))
    with pytest.raises(TaskSpecError, match=field if "\\" in field else field.replace(".", r"\.")):
        load_task(bad)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(TaskSpecError, match="unseen-1"):
        load_task("nope")


def test_footprint_reach_by_hand():
    """A 4 x 5 cm box turned up to 10 deg reaches hx cos 10 + hy sin 10 along x, hy cos 10 + hx
    sin 10 along y; at any yaw, its half diagonal; a cylinder its radius."""
    box = ObjectSpec("box", (0.02, 0.025, 0.045), (0, 0, 0, 1), ((0.5, 0.0),), 0.25)
    np.testing.assert_allclose(
        footprint_reach(box, np.deg2rad(10)), [0.024037, 0.028093], atol=1e-6
    )
    np.testing.assert_allclose(footprint_reach(box, np.pi / 2), [0.032016, 0.032016], atol=1e-6)
    np.testing.assert_allclose(footprint_reach(box, 0.0), [0.02, 0.025])
    cyl = ObjectSpec("cylinder", (0.025, 0.03), (0, 0, 0, 1), ((0.5, 0.0),))
    np.testing.assert_allclose(footprint_reach(cyl, 1.0), [0.025, 0.025])


def test_every_sampled_footprint_obeys_the_task_file_check():
    """The corners of every sampled target (with its drawn yaw) end TARGET_EDGE_CLEARANCE inside
    the area, every obstacle inside it: the load-time check bounds what layouts really place."""
    ws = Workspace()
    for name in available_tasks():
        task = load_task(name)
        for seed in range(200):
            lay = task.sample_layout(seed)
            items = [(task.target, lay.target_xy, lay.target_yaw, TARGET_EDGE_CLEARANCE)]
            items += [
                (task.obstacles, xy, yaw, 0.0)
                for xy, yaw in zip(lay.obstacle_xy, lay.obstacle_yaw, strict=True)
            ]
            for item, xy, yaw, clearance in items:
                if item.shape == "box":
                    c, s = np.cos(yaw), np.sin(yaw)
                    hx, hy = item.size[:2]
                    corners = [(sx * hx, sy * hy) for sx in (-1, 1) for sy in (-1, 1)]
                    pts = [xy + [c * x - s * y, s * x + c * y] for x, y in corners]
                else:
                    r = item.size[0]
                    pts = [xy + d for d in ([r, 0], [-r, 0], [0, r], [0, -r])]
                far = np.max(np.abs(np.asarray(pts) - ws.area_center))
                assert far <= ws.area_size / 2 - clearance + 1e-9, (name, seed, far)
