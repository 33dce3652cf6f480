"""Scripted operators for the simulated world, reproducing the paper's teleoperated dataset mix.

The paper's 200 SafeReach trajectories (App. D.1): 120 safe+success, 30 safe+fail,
40 unsafe+success, 10 unsafe+fail. A scripted operator follows waypoints chosen from the layout
with teleop-like noise (smoothed random perturbations, hesitations); each intent aims at one
category and an episode is retried until its labels land in the category it was collected for.

Labels come from a simulated operator who sees the ground truth and presses with a reaction delay
(`label_delay` steps, default 2 = 200 ms at 10 Hz): the labels are the ground truth shifted late
by that delay. The ground truth is stored beside the labels (oracle_reward / oracle_cost) so the
label quality can be measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from data_collection.dataset import Dataset, category_counts
from data_collection.episode import CATEGORIES, Episode
from data_collection.rollout import SimulatedOperatorLabels, rollout
from fosp.config_flags import option

if TYPE_CHECKING:  # MuJoCo loads when an env is made, not when `fosp` builds its flags
    from robot.env import SafeReachEnv

PAPER_MIX = {"safe+success": 120, "safe+fail": 30, "unsafe+success": 40, "unsafe+fail": 10}


@dataclass(frozen=True)
class MixConfig:
    """A dataset of scripted operators (`fosp sim collect`'s flags, `collect_mix`'s defaults)."""

    task: str = option("train", check="task")  # SafeReach task variant
    episodes: int = option(200, check="positive")  # dataset size, split as the mix
    mix: str = option("paper", choices=("paper",))  # paper: 120/30/40/10 per 200 (FOSP App. D.1)
    seed: int = option(0, check="seed")  # layouts and operator styles
    label_delay: int = option(2, check="non_negative")  # simulated operator's delay, steps


def mix_counts(total: int, mix: dict[str, int] | None = None) -> dict[str, int]:
    """Split `total` episodes in the proportions of `mix` (exact for 200 with the paper mix)."""
    mix = mix or PAPER_MIX
    weight = sum(mix.values())
    counts = {c: int(np.floor(total * w / weight)) for c, w in mix.items()}
    remainders = sorted(mix, key=lambda c: total * mix[c] / weight - counts[c], reverse=True)
    for c in remainders[: total - sum(counts.values())]:
        counts[c] += 1
    return counts


@dataclass(frozen=True)
class OperatorStyle:
    """Teleop-like imperfection of a scripted operator."""

    gain: float = 1.4  # action per (error / max step)
    noise: float = 0.25  # std of the smoothed action noise
    noise_smoothing: float = 0.8  # AR(1) coefficient of the noise
    hesitation: float = 0.04  # probability per step of a short pause
    tolerance: float = 0.008  # m: waypoint reached
    patience: int = (
        8  # steps without progress before giving a waypoint up (blocked, as a person would)
    )


class ScriptedOperator:
    """Drives the TCP through waypoints computed from the layout for one intent (a category)."""

    def __init__(self, env: SafeReachEnv, intent: str, rng: np.random.Generator, style=None):
        if intent not in CATEGORIES:
            raise ValueError(f"intent must be one of {CATEGORIES}")
        self.env, self.intent, self.rng = env, intent, rng
        self.style = style or OperatorStyle()
        self._noise = np.zeros(6)
        self._pause = 0
        self._waypoints = self._plan()
        self._best_distance = np.inf
        self._stalled = 0

    def _plan(self) -> list[np.ndarray]:
        sim, rng = self.env.sim, self.rng
        ws = sim.limits.workspace
        layout = sim.layout
        target = layout.target_xy
        target_top = 2 * self.env.task.target.half_height
        obstacle_top = 2 * self.env.task.obstacles.half_height
        cruise = rng.uniform(obstacle_top + 0.025, ws.high[2])  # fingertips clear the obstacles
        low = rng.uniform(0.03, min(0.05, obstacle_top - 0.02))  # below the obstacle tops
        touch = np.array([*(target + rng.normal(0, 0.004, 2)), target_top - 0.01])
        hover = np.array([*target, cruise])
        safe, success = self.intent.split("+")
        obstacles = layout.obstacle_xy
        if safe == "safe":
            start = sim.tcp_pose()[:3]
            points = [np.array([*start[:2], cruise])]
            if success == "success":
                points += [hover, touch, touch, hover]
            else:  # wander safely: stop short of the target or go elsewhere, never descend
                away = np.array(
                    [
                        rng.uniform(ws.low[0] + 0.02, 0.52),
                        rng.uniform(ws.low[1], ws.high[1]),
                        cruise,
                    ]
                )
                short = np.array([*(start[:2] + 0.5 * (target - start[:2])), cruise])
                points += [away, short] if rng.random() < 0.5 else [short, away]
        else:
            victim = obstacles[rng.integers(len(obstacles))] if len(obstacles) else target
            # approach the chosen obstacle low, from the robot's side, and push into it
            push = np.array([*(victim + np.array([0.005, rng.normal(0, 0.006)])), low])
            before = np.array([victim[0] - 0.07, victim[1], low])
            points = [np.array([*before[:2], cruise]), before, push]
            if success == "success":
                points += [np.array([*push[:2], cruise]), hover, touch, touch]
            else:
                retreat = np.array(
                    [rng.uniform(ws.low[0] + 0.01, 0.44), rng.uniform(-0.1, 0.1), low]
                )
                points += [np.array([*push[:2], cruise]), retreat]
        return [np.clip(p, ws.low, ws.high) for p in points]

    def _next_waypoint(self) -> None:
        self._waypoints.pop(0)
        self._best_distance, self._stalled = np.inf, 0

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        style, limits = self.style, self.env.sim.limits
        pos = np.asarray(obs["pose"][:3], dtype=np.float64)
        rot = np.asarray(obs["pose"][3:], dtype=np.float64)
        while self._waypoints and np.linalg.norm(self._waypoints[0] - pos) < style.tolerance:
            self._next_waypoint()
        if self._waypoints:
            distance = float(np.linalg.norm(self._waypoints[0] - pos))
            self._stalled = 0 if distance < self._best_distance - 0.002 else self._stalled + 1
            self._best_distance = min(self._best_distance, distance)
            if self._stalled > style.patience:
                self._next_waypoint()
        if self._pause > 0:
            self._pause -= 1
            return np.zeros(6, np.float32)
        if self.rng.random() < style.hesitation:
            self._pause = int(self.rng.integers(1, 4))
        goal = self._waypoints[0] if self._waypoints else pos
        action = np.zeros(6)
        action[:3] = style.gain * (goal - pos) / limits.step.max_translation
        action[3:] = -style.gain * rot / limits.step.max_rotation  # keep the hand level
        self._noise = style.noise_smoothing * self._noise + np.sqrt(
            1 - style.noise_smoothing**2
        ) * self.rng.normal(0, style.noise, 6)
        noise = self._noise.copy()
        noise[3:] *= 0.3
        return np.clip(action + noise, -1.0, 1.0).astype(np.float32)


def run_episode(
    env: SafeReachEnv,
    make_policy: Callable[[SafeReachEnv], Callable[[dict], np.ndarray]],
    layout_seed: int,
    metadata: dict,
    label_delay: int = 2,
    takeover=None,
) -> Episode:
    """One 80-step episode; labels by the delayed simulated operator, truth kept beside them.
    `make_policy(env)` is called after the reset, so it can plan from the new layout; a
    `takeover` (data_collection.takeover) may execute the operator's action instead."""
    policy: list[Callable[[dict], np.ndarray]] = []
    meta = {
        "task": env.task.name,
        "layout_seed": int(layout_seed),
        "control_hz": env.sim.limits.step.control_hz,
        "label_source": "simulated-operator",
        "label_delay_steps": int(label_delay),
        "env": "sim",
        **metadata,
    }

    def act(obs: dict) -> np.ndarray:
        return policy[0](obs)

    act.executed = lambda action: getattr(policy[0], "executed", lambda a: None)(action)
    return rollout(
        SimulatedOperatorLabels(env, label_delay),
        act,
        meta,
        options={"layout_seed": layout_seed},
        on_reset=lambda obs, info: policy.append(make_policy(env)),
        takeover=takeover,
    ).episode


def collect_mix(
    out: str,
    task: str = MixConfig.task,
    episodes: int = MixConfig.episodes,
    mix: dict[str, int] | None = None,
    seed: int = MixConfig.seed,
    label_delay: int = MixConfig.label_delay,
    max_attempts: int = 40,
    progress: bool = True,
) -> dict[str, int]:
    """Collect (or complete) a dataset with the category counts of `mix` scaled to `episodes`.
    Episodes already in `out` count towards the mix, so an interrupted run resumes."""
    from tqdm import tqdm

    dataset = Dataset(out)
    wanted = mix_counts(episodes, mix)
    summaries, errors = dataset.index()
    if errors:
        raise RuntimeError(f"{out} has unreadable episodes; run `fosp dataset validate {out}`")
    have = category_counts([s for s in summaries if s.task == task])
    todo = [c for c in CATEGORIES for _ in range(max(0, wanted[c] - have[c]))]
    rng = np.random.default_rng(np.random.SeedSequence([seed, len(summaries)]))
    rng.shuffle(todo)
    from robot.env import EnvConfig, SafeReachEnv

    env = SafeReachEnv(EnvConfig(task=task))
    attempts_total = 0
    bar = tqdm(total=len(todo), desc=f"collect {task}", unit="ep", disable=not progress)
    try:
        for intent in todo:
            for attempt in range(1, max_attempts + 1):
                attempts_total += 1
                layout_seed = int(rng.integers(2**31 - 1))
                episode = run_episode(
                    env,
                    lambda e, intent=intent: ScriptedOperator(e, intent, rng).act,
                    layout_seed,
                    {"operator": f"scripted:{intent}", "attempts": attempt},
                    label_delay,
                )
                if episode.category == intent:
                    dataset.add(episode)
                    have[intent] += 1
                    bar.update()
                    bar.set_postfix_str(" ".join(f"{c}={have[c]}" for c in CATEGORIES))
                    break
            else:
                raise RuntimeError(
                    f"no {intent} episode in {max_attempts} attempts on task {task}; "
                    "the scripted operator cannot produce this category here"
                )
    finally:
        bar.close()
        env.close()
    have["attempts"] = attempts_total
    return have
