"""The 64x64 observation shows the layout where it is: red target, green obstacles, moving arm."""

import numpy as np
import pytest

from robot.env import SafeReachEnv
from robot.sim.camera import project
from robot.task_spec import available_tasks


def colour_near(image, pixel, predicate, radius=1):
    col, row = np.round(pixel).astype(int)
    patch = image[row - radius : row + radius + 1, col - radius : col + radius + 1].reshape(-1, 3)
    return np.mean([predicate(p.astype(int)) for p in patch])


def is_red(p):
    return p[0] > 140 and p[1] < 90 and p[2] < 90


def is_green(p):
    return p[1] > 110 and p[0] < 100 and p[2] < 100


@pytest.mark.parametrize("task", available_tasks())
def test_objects_appear_where_the_layout_puts_them(task):
    env = SafeReachEnv(task=task)
    try:
        for seed in range(4):
            obs, _ = env.reset(options={"layout_seed": seed})
            image, sim = obs["image"], env.sim
            size = image.shape[0]
            target_top = np.array([*sim.layout.target_xy, 2 * env.task.target.half_height])
            pixel = project(sim.model, sim.data, "scene", target_top, size)[0]
            assert colour_near(image, pixel, is_red) > 0.7, f"seed {seed}: no red at {pixel}"
            tops = sim.obstacle_positions() + [0, 0, env.task.obstacles.half_height]
            for i, px in enumerate(project(sim.model, sim.data, "scene", tops, size)):
                assert colour_near(image, px, is_green) > 0.7, f"seed {seed}: obstacle {i}"
            # and nothing red or green far from them: the colours are the objects' own
            red = np.array([[is_red(p) for p in row] for row in image.astype(int)])
            rows, cols = np.nonzero(red)
            assert np.hypot(cols - pixel[0], rows - pixel[1]).max() < 10
    finally:
        env.close()


def test_image_changes_when_the_arm_moves():
    env = SafeReachEnv()
    try:
        obs, _ = env.reset(seed=0)
        before = obs["image"].astype(int)
        # sideways and down in front of the obstacles (x < 0.4, they stand at x >= 0.44): a
        # contact-free motion, so the frames below do not hang on a chaotic push
        for _ in range(6):
            obs, *_, info = env.step(np.array([-1, 1, -1, 0, 0, 0], np.float32))
            assert not info["touched_obstacles"].any() and not info["touched_target"]
        changed = np.abs(obs["image"].astype(int) - before).sum(axis=2) > 30
        assert changed.sum() > 40  # the hand moved across tens of pixels
        for _ in range(10):  # let it settle (~1 s), then a held pose renders the same frame
            obs, *_, info = env.step(np.zeros(6, np.float32))
        assert not env.sim.touched_by_robot.any()
        still, *_ = env.step(np.zeros(6, np.float32))
        flicker = np.abs(still["image"].astype(int) - obs["image"].astype(int)).sum(axis=2) > 30
        assert flicker.sum() <= 3  # at most an edge pixel or two from sub-millimetre creep
    finally:
        env.close()


def test_render_for_people_is_large_rgb():
    env = SafeReachEnv()
    try:
        env.reset(seed=0)
        frame = env.render()
        assert frame.shape == (480, 480, 3) and frame.dtype == np.uint8
        assert frame.std() > 10  # not a blank frame
    finally:
        env.close()
