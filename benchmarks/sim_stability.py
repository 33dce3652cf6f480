"""Random-action stress of the simulated world: no NaN, no explosion, obstacles stay on the table
unless the arm pushed them off, determinism. Prints a table per variant.

    .venv/bin/python benchmarks/sim_stability.py --episodes 250   # x 4 variants = 1,000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from robot.env import EPISODE_STEPS, SafeReachEnv
from robot.task_spec import available_tasks

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=250, help="per task variant")
    args = parser.parse_args()
    print(
        "| task | episodes | problems | arm touched an obstacle | one tipped or fell "
        "| replays identical | s/episode |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for task in available_tasks():
        env = SafeReachEnv(task=task)
        bad = touched = pushed_off = replayed = identical = 0
        start = time.perf_counter()
        for seed in range(args.episodes):
            problems = check_episode(env, seed)
            bad += bool(problems)
            touched += bool(env.sim.touched_by_robot.any())
            z = env.sim.obstacle_positions()[:, 2]
            pushed_off += bool(np.any(z < env.task.obstacles.half_height - 0.01))
            if problems:
                print(f"  {task} seed {seed}: {problems}")
            if seed % 25 == 0:  # same seed -> bit-identical final state
                final = env.sim.data.qpos.copy()
                check_episode(env, seed)
                replayed += 1
                identical += bool(np.array_equal(final, env.sim.data.qpos))
        elapsed = (time.perf_counter() - start) / args.episodes
        env.close()
        print(
            f"| {task} | {args.episodes} | {bad} | {touched} | {pushed_off} "
            f"| {identical}/{replayed} | {elapsed:.2f} |"
        )


if __name__ == "__main__":
    main()
