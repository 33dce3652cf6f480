"""Roll a trained policy out in the in-process sim: success / violation rates (+ Wilson 95 %).

Success = any reward in the episode; violation = any cost in the episode (paper Table 3's SR/CV).
Episode k uses env.reset(seed=base_seed + k), so evaluations are reproducible and comparable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from data_collection.rollout import rollout
from policy.agent import FOSPAgent
from policy.config import EvalConfig


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % for z = 1.96)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """95 % interval of p1 - p2 for two independent binomial samples (x1 of n1, x2 of n2): the
    hybrid score interval, Newcombe (1998), method 10, built from each sample's Wilson interval.
    Unlike the Wald interval it stays inside [-1, 1] and is not zero-width at 0 % or 100 %."""
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson(x1, n1), wilson(x2, n2)
    lower = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return lower, upper


class Rates:
    """SR and CV of a record with `episodes`, `successes` and `violations` counts."""

    episodes: int
    successes: int
    violations: int

    @property
    def sr(self) -> float:
        return self.successes / max(1, self.episodes)

    @property
    def cv(self) -> float:
        return self.violations / max(1, self.episodes)


@dataclass
class EvalResult(Rates):
    task: str
    episodes: int
    successes: int
    violations: int
    mean_return: float
    mean_cost: float

    def to_dict(self) -> dict:
        lo, hi = wilson(self.successes, self.episodes)
        clo, chi = wilson(self.violations, self.episodes)
        return {
            **asdict(self),
            "sr": self.sr,
            "sr_ci": [lo, hi],
            "cv": self.cv,
            "cv_ci": [clo, chi],
        }

    def line(self) -> str:
        lo, hi = wilson(self.successes, self.episodes)
        clo, chi = wilson(self.violations, self.episodes)
        return (
            f"{self.task:>9}: SR {100 * self.sr:5.1f} % [{100 * lo:.0f}, {100 * hi:.0f}]  "
            f"CV {100 * self.cv:5.1f} % [{100 * clo:.0f}, {100 * chi:.0f}]  "
            f"(n={self.episodes}, Wilson 95 %)"
        )


def acting(agent: FOSPAgent, deterministic: bool = True) -> Callable[[dict], np.ndarray]:
    """A rollout policy that carries the agent's recurrent state from step to step."""
    state: dict | None = None

    def act(obs: dict) -> np.ndarray:
        nonlocal state
        action, state = agent.act(obs, state, deterministic=deterministic)
        return action

    return act


def scored_episodes(
    agent: FOSPAgent,
    task: str = EvalConfig.task,
    episodes: int = EvalConfig.episodes,
    seed: int = EvalConfig.seed,
    deterministic: bool = True,
    progress: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """The steps of test episode k = 0 .. episodes - 1, from env.reset(seed=seed + k)."""
    from tqdm import tqdm

    from robot.env import EnvConfig, SafeReachEnv

    env = SafeReachEnv(EnvConfig(task=task))
    # the policy samples its latent state: seed torch per episode (inside a forked RNG, so a
    # caller's training stream is untouched) and the same policy scores the same on a machine
    with torch.random.fork_rng(devices=[]):
        try:
            for k in tqdm(range(episodes), desc=f"eval {task}", disable=not progress):
                torch.manual_seed(seed + k)
                rows = rollout(env, acting(agent, deterministic), {"task": task}, seed=seed + k)
                yield rows.episode.steps
        finally:
            env.close()


def evaluate(
    agent: FOSPAgent,
    task: str = EvalConfig.task,
    episodes: int = EvalConfig.episodes,
    seed: int = EvalConfig.seed,
    deterministic: bool = True,
    progress: bool = False,
) -> EvalResult:
    successes = violations = 0
    ret_sum = cost_sum = 0.0
    for steps in scored_episodes(agent, task, episodes, seed, deterministic, progress):
        ep_ret = float(steps["reward"].sum())
        ep_cost = float(steps["cost"].sum())
        successes += ep_ret > 0
        violations += ep_cost > 0
        ret_sum += ep_ret
        cost_sum += ep_cost
    return EvalResult(
        task, episodes, int(successes), int(violations), ret_sum / episodes, cost_sum / episodes
    )
