import numpy as np
import pytest

from robot.task_spec import TaskSpecError, available_tasks, load_task
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
    ],
)
def test_bad_task_file_names_the_field(tmp_path, edit, field):
    text = open(load_task("train").source).read()
    assert edit[0] in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(*edit))
    with pytest.raises(TaskSpecError, match=field.replace(".", r"\.")):
        load_task(bad)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(TaskSpecError, match="unseen-1"):
        load_task("nope")
