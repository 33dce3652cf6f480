"""One rollout loop: every episode the stack records, collects or scores runs through `rollout`.

    result = rollout(env, policy, metadata, seed=..., options=..., on_step=..., label=...)
    result.episode  # Episode in the stored alignment (data_collection.episode)
    result.stop     # "" when the episode ran to its end, else why it was cut short

The scripted sim collector, `evaluate`, the finetuning collectors (sim and ROS), the teleoperation
recorder and the tests' episode maker all call it, in-process and over ROS (any env with the
gymnasium API and `info["cost"]`). What differs between them is a callable, not a loop:

- `policy(obs) -> action`: the scripted operator, the learner (with its deadline), a person;
- `label(step) -> (reward, cost)`: the labels stored for a row (default: the env's own, which a
  `SimulatedOperatorLabels` wrapper may have delayed), e.g. a person's live label keys;
- `on_step(step) -> str`: a reason to stop now ("" to go on); an env that reports
  `info["interrupted"]` (the operator's e-stop, a hold, a reflex: robot.ros_env) stops it too.

The ground truth of a row (`truth_of`) is stored beside the labels as oracle_reward / oracle_cost
when the env knows it for every row (the simulator), never on the real arm. Nothing here imports
MuJoCo or rospy: the policy node on the real arm uses this module too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from data_collection.episode import ACTOR_OPERATOR, ACTOR_POLICY, Episode, EpisodeBuilder


@dataclass
class Step:
    """One control step as the callbacks see it: `row` is the 1-based row of `obs`."""

    row: int
    action: np.ndarray
    obs: dict[str, np.ndarray]
    reward: float
    cost: float
    info: dict[str, Any]
    truth: tuple[float, float] | None


@dataclass
class Rollout:
    episode: Episode
    stop: str  # "" = ran to the end; else why it stopped ("estop", "hold", "reflex", ...)
    info: dict[str, Any]  # the last step's info (the reset's when no step ran)


def truth_of(info: dict[str, Any], reward: float) -> tuple[float, float] | None:
    """The ground-truth (reward, cost) of a step, None where nobody knows it (the real arm, or a
    label message that missed its step over ROS). A `SimulatedOperatorLabels` wrapper keeps the
    truth in info["oracle"]; otherwise a simulator's own labels are the truth."""
    if "oracle" in info:
        return info["oracle"]
    if info.get("labels_source", "sim") != "sim":
        return None
    return float(reward), float(info.get("cost", 0.0))


def delayed_labels(oracle: np.ndarray, delay: int) -> np.ndarray:
    """What an operator pressing `delay` steps late records: row i gets the truth of row i-delay
    (row 0 stays 0: no action led to it). Events in the last `delay` rows are cut off.
    `SimulatedOperatorLabels` produces the same labels step by step."""
    labels = np.zeros_like(oracle)
    if delay < 0:
        raise ValueError("delay must be >= 0")
    src = oracle[1 : len(oracle) - delay] if delay else oracle[1:]
    labels[1 + delay : 1 + delay + len(src)] = src
    return labels


class SimulatedOperatorLabels(gym.Wrapper):
    """The simulated operator: reward and info["cost"] become the ground truth `delay` steps late
    (a person's reaction time; 2 steps = 200 ms at 10 Hz), the truth stays in info["oracle"].
    Where the env knows no truth (the real arm) it passes the step through unchanged."""

    def __init__(self, env: gym.Env, delay: int = 2):
        if delay < 0:
            raise ValueError("delay must be >= 0")
        super().__init__(env)
        self.delay = delay
        self._truth: deque[tuple[float, float]] = deque()

    def reset(self, **kwargs):
        self._truth.clear()
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        truth = truth_of(info, reward)
        if truth is None:
            return obs, reward, terminated, truncated, info
        self._truth.append(truth)
        late = self._truth.popleft() if len(self._truth) > self.delay else (0.0, 0.0)
        info = {**info, "oracle": truth, "cost": late[1]}
        return obs, late[0], terminated, truncated, info


Policy = Callable[[dict[str, np.ndarray]], np.ndarray]


def rollout(
    env: gym.Env,
    policy: Policy,
    metadata: dict[str, Any],
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
    on_step: Callable[[Step], str] | None = None,
    label: Callable[[Step], tuple[float, float]] | None = None,
    on_reset: Callable[[dict[str, np.ndarray], dict[str, Any]], None] | None = None,
    max_steps: int | None = None,
    builder: EpisodeBuilder | None = None,
    takeover: Any = None,
) -> Rollout:
    """One episode: reset(seed, options), then policy -> env.step -> stored row until the env
    ends it or a stop (`on_step`'s reason or info["interrupted"]) cuts it short; a cut episode
    is finished as status "aborted" with `interrupted` and `interrupted_at_step` set.
    `on_reset(obs, info)` runs after the reset, before the first action (a scripted operator
    plans from the new layout there, a recorder counts down). `max_steps` ends the episode
    (complete) after that many actions even if the env would go on; a caller that shows the rows
    so far passes its own `builder` (EpisodeBuilder.column reads them). With a `takeover`
    (data_collection.takeover) the operator's action replaces the policy's while the operator
    is in control; each step's `actor` is stored, and the policy is told what ran
    (`policy.executed(action)`, when it has that method, keeps its recurrent state true)."""
    obs, info = env.reset(seed=seed, options=options)
    if takeover is not None:
        takeover.reset()
    if on_reset is not None:
        on_reset(obs, info)
    builder = builder or EpisodeBuilder(metadata)
    if info.get("robot_settings"):  # the real arm's collision thresholds, load and stiffness
        builder.metadata["robot_settings"] = info["robot_settings"]
    builder.start(obs)
    stop, terminated, truncated = "", False, False
    while not (terminated or truncated or stop):
        if max_steps is not None and builder.num_actions >= max_steps:
            break
        action = policy(obs)
        actor = None
        if takeover is not None:
            actor = ACTOR_POLICY
            operator = takeover.action(obs, action)
            if operator is not None:
                action, actor = np.asarray(operator, np.float32), ACTOR_OPERATOR
                executed = getattr(policy, "executed", None)
                if executed is not None:
                    executed(action)
        obs, reward, terminated, truncated, info = env.step(action)
        step = Step(
            builder.num_actions + 1, action, obs, reward, info["cost"], info,
            truth_of(info, reward),
        )  # fmt: skip
        stored = label(step) if label is not None else (reward, info["cost"])
        force = info.get("contact_force")
        builder.add(action, stored[0], stored[1], obs, oracle=step.truth, actor=actor, force=force)
        stop = (on_step(step) if on_step is not None else "") or info.get("interrupted") or ""
    if stop:
        episode = builder.finish(status="aborted")
        episode.metadata.update(interrupted=stop, interrupted_at_step=builder.num_actions)
    else:
        episode = builder.finish(terminal=terminated)
    return Rollout(episode, stop, info)
