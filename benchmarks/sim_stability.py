"""Random-action stress of the simulated world: no NaN, no explosion, obstacles stay on the table
unless the arm pushed them off, determinism. Prints a table per variant. The per-episode check
lives in robot/sim/stability.py (the test suite runs it too).

    .venv/bin/python benchmarks/sim_stability.py --episodes 250   # x 4 variants = 1,000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from robot.env import SafeReachEnv
from robot.sim.stability import check_episode
from robot.task_spec import available_tasks


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
