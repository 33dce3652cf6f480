"""Small SafeReach datasets made in the test with the real env, plus a trained tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_collection.dataset import Dataset
from data_collection.episode import Episode
from data_collection.rollout import rollout

# one thread: the suite shares 2 cores with other jobs, and OpenMP threads that spin-wait for a
# busy core cost far more than they save (measured: tiny step 0.23 s on 1 thread, 0.92 s on 2)
torch.set_num_threads(1)


def _operator(env, rng: np.random.Generator, unsafe: bool):
    """Waypoint P-controller: over the target and down onto it (reward); the unsafe variant first
    pushes through an obstacle low down (cost). Noise makes every episode different."""
    sim = env.sim
    step = sim.limits.step
    target = sim.layout.target_xy
    top = 2 * env.task.target.half_height
    cruise = 2 * env.task.obstacles.half_height + 0.04
    points = []
    if unsafe and len(sim.layout.obstacle_xy):
        ob = sim.layout.obstacle_xy[rng.integers(len(sim.layout.obstacle_xy))]
        points += [np.array([ob[0] - 0.07, ob[1], cruise]), np.array([ob[0] - 0.07, ob[1], 0.03])]
        points += [np.array([ob[0] + 0.01, ob[1], 0.03]), np.array([ob[0], ob[1], cruise])]
    points += [np.array([*target, cruise]), np.array([*target, top - 0.01])]
    noise = np.zeros(6)

    def act(obs):
        nonlocal noise
        pos = obs["pose"][:3].astype(np.float64)
        while len(points) > 1 and np.linalg.norm(points[0] - pos) < 0.01:
            points.pop(0)
        a = np.zeros(6)
        a[:3] = 1.4 * (points[0] - pos) / step.max_translation
        a[3:] = -1.4 * obs["pose"][3:] / step.max_rotation
        noise = 0.8 * noise + 0.6 * rng.normal(0, 0.25, 6)
        return np.clip(a + noise, -1, 1).astype(np.float32)

    return act


def _scripted(env, rng: np.random.Generator, unsafe: bool, meta: dict, seed: int) -> Episode:
    """One episode of `_operator`, planned from the layout the reset draws."""
    policy: list = []

    def plan(obs, info) -> None:
        policy.append(_operator(env, rng, unsafe))

    return rollout(env, lambda obs: policy[0](obs), meta, seed=seed, on_reset=plan).episode


def make_episodes(n: int, seed: int, task: str = "train", steps: int = 40) -> list[Episode]:
    from robot.env import EnvConfig, SafeReachEnv

    env = SafeReachEnv(EnvConfig(task=task, episode_steps=steps))
    rng = np.random.default_rng(seed)
    out = []
    try:
        for k in range(n):
            meta = {"task": task, "layout_seed": k, "control_hz": 10, "label_source": "oracle"}
            out.append(_scripted(env, rng, k % 2 == 0, meta, seed * 1000 + k))
    finally:
        env.close()
    return out


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy_data") / "train"
    ds = Dataset(root)
    for ep in make_episodes(18, seed=1):
        ds.add(ep)
    return root


@pytest.fixture(scope="session")
def heldout_episodes():
    return make_episodes(6, seed=2)
