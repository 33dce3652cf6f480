"""The simulated SafeReach world: labels, determinism, limits, stability."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot.env import EPISODE_STEPS, SafeReachEnv
from robot.task_spec import available_tasks
from tests.helpers import custom_layout, go_to


@pytest.fixture(scope="module")
def env():
    e = SafeReachEnv()
    yield e
    e.close()


def reset_with(env, target_xy, obstacle_xy):
    layout = custom_layout(env.task, target_xy, obstacle_xy)
    env.reset(seed=0)
    env.sim.reset(layout)
    return env._observation()


def test_cost_runs_from_first_touch_until_the_obstacle_rests(env):
    # one obstacle straight ahead of the hand, target far to the side
    obs = reset_with(env, (0.585, 0.09), [(0.60, -0.10), (0.47, 0.0)])
    start = env.sim.obstacle_positions().copy()
    obs, descend = go_to(env, obs, (0.40, 0.0, 0.04), 12)
    obs, push = go_to(env, obs, (0.47, 0.0, 0.04), 10)  # drives into the box at x = 0.45
    obs, back = go_to(env, obs, (0.39, 0.0, 0.04), 25)
    records = descend + push + back
    cost = np.array([r["cost"] for r in records])
    touched = np.array([r["touched"].any() for r in records])
    moved = np.array([r["moved"][1] for r in records])
    first = int(np.argmax(touched))
    assert touched.any() and cost[first] == 1
    assert not cost[:first].any()  # nothing before the first touch
    # the obstacle did not move before it was touched, then it was pushed
    assert np.allclose(env.sim.obstacle_positions()[0], start[0], atol=1e-4)
    assert moved[:first].max() < 1e-4 and moved[first:].max() > 1e-3
    last = len(cost) - 1 - int(np.argmax(cost[::-1]))
    assert cost[first : last + 1].all()  # one contiguous interval
    # after the interval the obstacle is still; the step before it ends it was moving or touched
    assert moved[last + 1 :].max() < 5e-4
    assert moved[last] > 5e-4 or touched[last]
    assert last < len(cost) - 5  # it came to rest before the end


def test_reward_exactly_while_touching_the_target(env):
    obs = reset_with(env, (0.585, 0.0), [(0.46, -0.07), (0.46, 0.07)])
    obs, over = go_to(env, obs, (0.585, 0.0, 0.10), 20)
    obs, down = go_to(env, obs, (0.585, 0.0, 0.045), 8)  # target top is at z = 0.06
    obs, up = go_to(env, obs, (0.585, 0.0, 0.11), 8)
    reward = np.array([r["reward"] for r in over + down + up])
    assert not reward[: len(over)].any()
    assert reward[len(over) : len(over) + len(down)].any()
    assert reward[-3:].sum() == 0  # lifted off
    assert not any(r["cost"] for r in over + down + up)
    tips_z = np.array([r["obs"]["pose"][2] for r in over + down + up])
    assert np.all(tips_z[reward > 0] < 0.07)  # rewarded only with the fingertips at the target top


def test_same_seed_same_trajectory():
    rng = np.random.default_rng(3)
    actions = rng.uniform(-1, 1, (40, 6)).astype(np.float32)
    runs = []
    for _ in range(2):
        e = SafeReachEnv()
        obs, _ = e.reset(seed=11)
        frames, poses = [obs["image"]], [obs["pose"]]
        for a in actions:
            obs, *_ = e.step(a)
            frames.append(obs["image"])
            poses.append(obs["pose"])
        e.close()
        runs.append((np.stack(frames), np.stack(poses)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


def test_nan_action_is_rejected(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([0, np.nan, 0, 0, 0, 0], np.float32))
    with pytest.raises(ValueError):
        env.step(np.zeros(5, np.float32))


action_values = st.one_of(
    st.floats(-1, 1), st.sampled_from([-1.0, 1.0, 0.0]), st.floats(-1e9, 1e9, allow_nan=False)
)
sequences = st.lists(st.lists(action_values, min_size=6, max_size=6), min_size=1, max_size=8)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=sequences, repeat=st.integers(1, 12), seed=st.integers(0, 1000))
def test_tcp_never_leaves_the_task_box(env, chunks, repeat, seed):
    ws = env.sim.limits.workspace
    env.reset(seed=seed)
    for action in chunks:
        for _ in range(repeat):  # held actions drive into the corners
            obs, *_, info = env.step(np.asarray(action, np.float32))
            pose, cmd = obs["pose"], info["commanded_pose"]
            assert np.all(cmd[:3] >= ws.low - 1e-9) and np.all(cmd[:3] <= ws.high + 1e-9)
            assert np.all(pose[:3] >= ws.safe_low) and np.all(pose[:3] <= ws.safe_high)
            assert np.linalg.norm(pose[3:]) <= ws.max_tilt


@pytest.mark.slow
def test_random_episodes_are_stable_in_every_variant():
    """50 random-action episodes per variant here; benchmarks/sim_stability.py runs 1,000."""
    from benchmarks.sim_stability import check_episode

    for task in available_tasks():
        e = SafeReachEnv(task=task)
        for k in range(50):
            problems = check_episode(e, seed=k, steps=EPISODE_STEPS)
            assert not problems, f"{task} seed {k}: {problems}"
        e.close()
