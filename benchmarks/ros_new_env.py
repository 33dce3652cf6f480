"""New RosSafeReachEnv after new RosSafeReachEnv against one simulated arm: how many see the frame
of their first reset, and how long making one, resetting it and taking two steps takes.

    .venv/bin/python benchmarks/ros_new_env.py [--envs 1500] [--reset-timeout 15]

Starts its own roscore on a free port and `roslaunch fosp_robot sim.launch` (ROS_HOME and logs in
a temp dir), stops everything by PID, prints a table. Each env is closed before the next is made,
so each one opens fresh connections to arm_node (the case where, before the arm latched its pose
and image, 9 of 388 envs waited in vain for a reset frame sent before their connection was up).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ros_loop import wait_service  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=1500, help="envs made one after the other")
    parser.add_argument("--reset-timeout", type=float, default=15.0, help="s for the first frame")
    args = parser.parse_args()
    if args.envs < 1:
        parser.error("--envs must be at least 1")

    from robot.ros_processes import RosProcesses, free_port, private_ros_env

    tmp = Path(tempfile.mkdtemp(prefix="ros_new_env_"))
    os.environ.update(private_ros_env(tmp, free_port()))
    procs = RosProcesses(dict(os.environ), tmp)
    procs.start_master()
    seconds: list[float] = []
    failures: list[str] = []
    try:
        from robot.ros_env import RosSafeReachEnv, ensure_node
        from robot.stop_timing import release_and_reset

        ensure_node("ros_new_env_bench")
        procs.start("launch", ["roslaunch", "fosp_robot", "sim.launch", "seed:=0"])
        wait_service("/fosp/release_estop", 60)
        release_and_reset("/fosp")
        for i in range(args.envs):
            start = time.monotonic()
            env = RosSafeReachEnv("/fosp", stale_grace=1.0, reset_timeout=args.reset_timeout)
            try:
                env.reset(options={"layout_seed": i})
                for _ in range(2):
                    env.step(np.zeros(6, np.float32))
                seconds.append(time.monotonic() - start)
            except Exception as exc:  # counted and shown, the next env still runs
                failures.append(f"env {i}: {exc}")
            finally:
                env.close()
            if (i + 1) % 100 == 0:
                print(f"  {i + 1} envs, {len(failures)} failed", flush=True)
    finally:
        import rospy

        rospy.signal_shutdown("benchmark done")
        procs.stop_all()

    for line in failures[:10]:
        print(line[:200])
    print("\nnew env -> reset -> 2 steps -> close, sim.launch, one env at a time")
    print("| envs | saw their first reset | failed | median (s) | p99 (s) |")
    print("|---|---|---|---|---|")
    ok = len(seconds)
    p50, p99 = np.percentile(seconds, [50, 99]) if seconds else (float("nan"),) * 2
    print(f"| {args.envs} | {ok} | {len(failures)} | {p50:.2f} | {p99:.2f} |")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
