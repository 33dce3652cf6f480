"""Stability checks of the simulated world under random actions (no NaN, no explosion, no
obstacle tipping or falling unless the arm set it moving). Used by tests/test_sim_world.py and
benchmarks/sim_stability.py."""

from __future__ import annotations

import numpy as np

from robot.env import EPISODE_STEPS, SafeReachEnv

MAX_JOINT_SPEED = 10.0  # rad/s: far above what the controller commands; more is an explosion
MAX_OBJECT_SPEED = 6.0  # m/s (a fall from the table to the floor reaches 3.8)


def random_actions(rng: np.random.Generator, steps: int) -> np.ndarray:
    """Mix of smooth wandering (reaches obstacles) and uniform noise (jerky)."""
    smooth = np.zeros((steps, 6))
    for t in range(1, steps):
        smooth[t] = 0.85 * smooth[t - 1] + 0.5 * rng.normal(size=6)
    mask = rng.random(steps) < 0.3
    smooth[mask] = rng.uniform(-1, 1, (mask.sum(), 6))
    return np.clip(smooth, -1, 1).astype(np.float32)


def check_episode(env: SafeReachEnv, seed: int, steps: int = EPISODE_STEPS) -> list[str]:
    """Run one random-action episode from reset(seed); the problems found (empty if none)."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    problems = []
    half_height = env.task.obstacles.half_height
    for action in random_actions(rng, steps):
        obs, reward, _, _, info = env.step(action)
        d = env.sim.data
        if not (np.all(np.isfinite(d.qpos)) and np.all(np.isfinite(d.qvel))):
            problems.append("NaN in the state")
            break
        if np.abs(d.qvel[:7]).max() > MAX_JOINT_SPEED:
            problems.append(f"joint speed {np.abs(d.qvel[:7]).max():.1f} rad/s")
        lin, _ = env.sim.obstacle_speeds()
        if lin.size and lin.max() > MAX_OBJECT_SPEED:
            problems.append(f"obstacle speed {lin.max():.1f} m/s")
        if not np.all(np.isfinite(obs["pose"])) or obs["image"].dtype != np.uint8:
            problems.append("bad observation")
    z = env.sim.obstacle_positions()[:, 2]
    off = z < half_height - 0.01  # lower than resting upright: tipped over or fell off
    if np.any(off & ~env.sim.disturbed_by_robot):
        problems.append("an obstacle tipped or fell without the arm setting it moving")
    if np.any(z > 0.5):
        problems.append("an obstacle flew away")
    return problems
