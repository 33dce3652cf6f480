"""The one rollout loop and the simulated operator's delayed labels, on a scripted fake env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from data_collection.rollout import SimulatedOperatorLabels, delayed_labels, rollout, truth_of

REWARD = [0, 0, 1, 1, 0, 0, 0, 1, 0, 1]
COST = [0, 1, 1, 0, 0, 0, 0, 0, 1, 1]


class ScriptedEnv(gym.Env):
    """Known per-step labels; `interrupt_at` reports the operator's stop at that step."""

    observation_space = gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (4, 4, 3), np.uint8),
            "pose": gym.spaces.Box(-1, 1, (6,), np.float32),
        }
    )
    action_space = gym.spaces.Box(-1, 1, (6,), np.float32)

    def __init__(self, source: str = "sim", interrupt_at: int | None = None):
        self.source, self.interrupt_at = source, interrupt_at
        self.t = 0
        self.resets: list[dict] = []

    def _obs(self) -> dict:
        pose = np.full(6, self.t / 100, np.float32)
        return {"image": np.full((4, 4, 3), self.t, np.uint8), "pose": pose}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.resets.append({"seed": seed, "options": options})
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        info = {"cost": float(COST[self.t - 1]), "labels_source": self.source}
        if self.interrupt_at == self.t:
            info.update(interrupted="estop", stop_stamp=12.5)
        truncated = self.t >= len(REWARD)
        return self._obs(), float(REWARD[self.t - 1]), False, truncated, info


def zero_policy(obs):
    return np.zeros(6, np.float32)


@pytest.mark.parametrize("delay", [0, 1, 2, 3])
def test_simulated_operator_is_the_delayed_truth_step_by_step(delay):
    env = SimulatedOperatorLabels(ScriptedEnv(), delay)
    episode = rollout(env, zero_policy, {"task": "t"}, options={"layout_seed": 4}).episode
    truth_r = np.array([0, *REWARD], np.float32)  # row 0: no action led to it
    truth_c = np.array([0, *COST], np.float32)
    np.testing.assert_array_equal(episode.steps["oracle_reward"], truth_r)
    np.testing.assert_array_equal(episode.steps["oracle_cost"], truth_c)
    np.testing.assert_array_equal(episode.steps["reward"], delayed_labels(truth_r, delay))
    np.testing.assert_array_equal(episode.steps["cost"], delayed_labels(truth_c, delay))
    assert env.env.resets == [{"seed": None, "options": {"layout_seed": 4}}]
    # a second episode starts with no labels left over from the first
    again = rollout(env, zero_policy, {}).episode
    np.testing.assert_array_equal(again.steps["reward"], episode.steps["reward"])


def test_delayed_labels_by_hand():
    truth = np.array([0, 1, 0, 0, 1], np.float32)
    np.testing.assert_array_equal(delayed_labels(truth, 1), [0, 0, 1, 0, 0])
    with pytest.raises(ValueError):
        delayed_labels(truth, -1)


def test_episode_alignment_and_status():
    actions = iter(np.eye(6, dtype=np.float32)[np.arange(10) % 6])
    result = rollout(ScriptedEnv(), lambda obs: next(actions), {"task": "t"}, seed=3)
    ep = result.episode
    assert result.stop == "" and ep.metadata["status"] == "complete"
    assert len(ep.steps["image"]) == 11 and ep.steps["is_first"][0] and ep.steps["is_last"][-1]
    np.testing.assert_array_equal(ep.steps["action"][:10], np.eye(6)[np.arange(10) % 6])
    np.testing.assert_array_equal(ep.steps["action"][10], np.zeros(6))  # no action after the last
    np.testing.assert_array_equal(ep.steps["reward"][1:], REWARD)  # no wrapper: the env's labels
    assert ep.steps["pose"][3][0] == pytest.approx(0.03)  # row t is the observation after t steps


def test_operators_stop_cuts_the_episode_marked():
    result = rollout(ScriptedEnv(interrupt_at=4), zero_policy, {"task": "t"})
    ep = result.episode
    assert result.stop == "estop" and result.info["stop_stamp"] == 12.5
    assert ep.metadata["status"] == "aborted" and ep.metadata["interrupted"] == "estop"
    assert ep.metadata["interrupted_at_step"] == 4 and len(ep.steps["image"]) == 5


def test_on_step_stop_label_override_and_max_steps():
    seen = []

    def stop_at_6(step):
        seen.append(step.row)
        return "hold" if step.row == 6 else ""

    result = rollout(ScriptedEnv(), zero_policy, {}, on_step=stop_at_6, label=lambda s: (0.5, 0))
    assert seen == [1, 2, 3, 4, 5, 6] and result.stop == "hold"
    np.testing.assert_array_equal(result.episode.steps["reward"][1:], [0.5] * 6)
    np.testing.assert_array_equal(result.episode.steps["oracle_reward"][1:], REWARD[:6])
    short = rollout(ScriptedEnv(), zero_policy, {}, max_steps=3)
    assert short.stop == "" and len(short.episode.steps["image"]) == 4


def test_real_arm_stores_no_truth_and_the_wrapper_passes_through():
    env = SimulatedOperatorLabels(ScriptedEnv(source="none"), 2)
    ep = rollout(env, zero_policy, {}).episode
    assert "oracle_reward" not in ep.steps and "oracle_cost" not in ep.steps
    np.testing.assert_array_equal(ep.steps["reward"][1:], REWARD)  # unchanged, not delayed
    assert truth_of({"labels_source": "none", "cost": 1.0}, 1.0) is None
    assert truth_of({"cost": 1.0}, 0.0) == (0.0, 1.0)
    assert truth_of({"oracle": (1.0, 0.0), "cost": 0.0}, 0.0) == (1.0, 0.0)


def test_on_reset_runs_before_the_first_action():
    order = []
    rollout(
        ScriptedEnv(),
        lambda obs: order.append("act") or np.zeros(6, np.float32),
        {},
        on_reset=lambda obs, info: order.append("reset"),
        max_steps=2,
    )
    assert order == ["reset", "act", "act"]


def test_episode_outcome_is_any_reward_and_any_cost():
    from robot.outcome import EpisodeOutcome

    outcome = EpisodeOutcome()
    for r, c in [(0, 0), (1, 0), (0, 0)]:
        outcome.update(r, c)
    assert outcome.success and not outcome.violation
    outcome.update(0, 0.5)
    assert outcome.violation
    outcome.reset()
    assert not outcome.success and not outcome.violation


def test_the_real_arms_policy_node_imports_no_mujoco():
    import subprocess
    import sys

    code = "import sys, policy.policy_node, robot.ros_env; print('mujoco' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
