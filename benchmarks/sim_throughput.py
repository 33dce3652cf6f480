"""Simulated SafeReach throughput on one CPU core: env steps/s with the 64x64 render, render time
per frame, and the physics-only share. Each GL backend runs in its own process (MUJOCO_GL is read
at import). Medians over repeated blocks.

    .venv/bin/python benchmarks/sim_throughput.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def measure(steps: int) -> dict:
    import numpy as np

    from robot.env import SafeReachEnv
    from robot.sim.stability import random_actions

    os.sched_setaffinity(0, {0})  # one core
    env = SafeReachEnv()
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    actions = random_actions(rng, steps)
    blocks = {"env step (physics + 64x64 render)": [], "physics only": [], "render 64x64": []}
    block = 100
    for start in range(0, steps, block):
        if start % 800 == 0:
            env.reset(seed=start)
        chunk = actions[start : start + block]
        t0 = time.perf_counter()
        for a in chunk:
            env.step(a)
        blocks["env step (physics + 64x64 render)"].append((time.perf_counter() - t0) / len(chunk))
        t0 = time.perf_counter()
        for a in chunk:
            env.sim.step(a)
        blocks["physics only"].append((time.perf_counter() - t0) / len(chunk))
        t0 = time.perf_counter()
        for _ in chunk:
            env.sim.render()
        blocks["render 64x64"].append((time.perf_counter() - t0) / len(chunk))
    t0 = time.perf_counter()
    for _ in range(20):
        env.render()
    large = (time.perf_counter() - t0) / 20
    env.close()
    result = {k: float(np.median(v)) for k, v in blocks.items()}
    result["render 480x480 (people)"] = large
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.steps)))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = {}
    for backend in ("egl", "osmesa"):
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--steps", str(args.steps)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        rows[backend] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"one CPU core, {args.steps} steps of random actions, medians of 100-step blocks\n")
    print("| measure | " + " | ".join(rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for key in rows["egl"]:
        cells = [f"{1e3 * rows[b][key]:.2f} ms" for b in rows]
        print(f"| {key} | " + " | ".join(cells) + " |")
    rates = [f"{1 / rows[b]['env step (physics + 64x64 render)']:.0f}" for b in rows]
    print("| env steps/s | " + " | ".join(rates) + " |")


if __name__ == "__main__":
    main()
