"""ROS control loop in simulation: latency, jitter, the highest sustainable rate; camera
preprocessing time; watchdog and e-stop timing over ROS; e-stop latency versus command rate.

    .venv/bin/python benchmarks/ros_loop.py [--steps 300] [--rates 10 20 50 100 200 250]
    .venv/bin/python benchmarks/ros_loop.py --estop-only [--estop-rates 10 100 ... 5000]

Starts its own roscore on a free port and `roslaunch fosp_robot sim.launch` (ROS_HOME and logs in
a temp dir), drives RosSafeReachEnv, stops everything by PID, prints a table.

- latency: action published -> a fresh image and pose (stamped after the action) have arrived;
- step: action published -> step() returned (the env waits out the control period);
- jitter: std and p99 of |interval between step starts - period|;
- rates above 250 Hz are not tried: the simulated impedance controller runs at 250 Hz (2 ms
  physics, a torque update every 2 steps), so a shorter control period holds no physics;
- sustainable: every step got a fresh observation within its period (no StaleObservationError),
  p99 latency < period and the achieved rate >= 95 % of the asked one;
- e-stop vs command rate: a child process streams actions at the rate (the policy), this
  process calls the e-stop service (the operator) while it runs: latency = call -> answer, and
  "moved after" = poses arm_node sent after the answer that are not the hold pose (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def wait_service(name: str, timeout: float) -> None:
    import rosgraph

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            services = rosgraph.Master("/bench").getSystemState()[2]
            if name in {s for s, _ in services}:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{name} did not come up")


def loop_stats(env, steps: int, rng: np.random.Generator) -> dict:
    from robot.ros_env import StaleObservationError

    env.reset(options={"layout_seed": 1})
    env.latency.clear()
    env.timing.clear()
    starts = []
    stale = 0
    for i in range(steps):
        if i % 80 == 79:
            env.reset(options={"layout_seed": i})
        starts.append(time.monotonic())
        try:
            env.step(rng.uniform(-1, 1, 6).astype(np.float32))
        except StaleObservationError:
            stale += 1
    lat = np.asarray(env.latency) * 1000
    intervals = np.diff(starts)
    # intervals across a reset are not control steps
    keep = np.ones(len(intervals), bool)
    keep[[i for i in range(len(intervals)) if (i + 1) % 80 == 79]] = False
    dev = np.abs(intervals[keep] - env.period) * 1000
    return {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "max": float(lat.max()),
        "step_p50": float(np.percentile(np.asarray(env.timing) * 1000, 50)),
        "jitter_std": float(np.std(intervals[keep] * 1000)),
        "jitter_p99": float(np.percentile(dev, 99)),
        "rate": float(1.0 / np.mean(intervals[keep])),
        "stale": stale,
    }


def safety_timing(env) -> dict:
    """Watchdog: last command -> watchdog_hold event. E-stop: service call -> hold published."""
    import rospy
    from geometry_msgs.msg import PoseStamped
    from std_msgs.msg import String

    events, commanded = [], []
    subs = [
        rospy.Subscriber("/fosp/events", String, lambda m: events.append(json.loads(m.data))),
        rospy.Subscriber(
            "/fosp/commanded_pose", PoseStamped, lambda m: commanded.append(time.monotonic())
        ),
    ]
    time.sleep(0.5)
    watchdog, estop = [], []
    for k in range(5):
        env.reset(options={"layout_seed": 50 + k})
        for _ in range(3):
            env.step(np.zeros(6, np.float32))
        last = rospy.Time.now().to_sec() - env.period
        deadline = time.monotonic() + 2
        while not any(e["event"] == "watchdog_hold" and e["stamp"] > last for e in events):
            if time.monotonic() > deadline:
                raise TimeoutError("no watchdog hold")
            time.sleep(0.005)
        hold = next(e for e in events if e["event"] == "watchdog_hold" and e["stamp"] > last)
        watchdog.append((hold["stamp"] - last) * 1000)
        n = len(commanded)
        t0 = time.monotonic()
        env.estop()
        deadline = time.monotonic() + 2
        while len(commanded) == n and time.monotonic() < deadline:
            time.sleep(0.001)
        estop.append((commanded[n] - t0) * 1000)
        env.release_estop()  # reset refuses while the e-stop is latched
    env.reset(options={"layout_seed": 0})
    for s in subs:
        s.unregister()
    return {"watchdog_ms": watchdog, "estop_ms": estop}


def estop_vs_rate(procs, rates: list[float], trials: int) -> list[dict]:
    """sim.launch (10 Hz control) in /fosp_stop; per rate, `trials` e-stops under the stream."""
    from robot.stop_timing import (
        CommandedPoses,
        estop_once,
        release_and_reset,
        stream_argv,
        stream_rate,
    )

    launch = procs.start(
        "launch_stop", ["roslaunch", "fosp_robot", "sim.launch", "ns:=fosp_stop", "seed:=0"]
    )
    wait_service("/fosp_stop/release_estop", 60)
    commanded = CommandedPoses("/fosp_stop")
    release_and_reset("/fosp_stop")
    rows = []
    try:
        for hz in rates:
            stream = procs.start(f"stream_{hz:g}", stream_argv(sys.executable, "/fosp_stop", hz))
            deadline = time.monotonic() + 30
            while "STREAMING" not in procs.log(stream):
                if time.monotonic() > deadline:
                    raise TimeoutError(procs.log(stream))
                time.sleep(0.05)
            results = []
            for _ in range(trials):
                time.sleep(0.3)
                results.append(estop_once("/fosp_stop", commanded, settle=0.2))
                release_and_reset("/fosp_stop")
            procs.stop(stream)
            lat = np.asarray([r.latency_s for r in results]) * 1000
            rows.append(
                {
                    "hz": hz,
                    "achieved": stream_rate(procs.log(stream)),
                    "p50": float(np.percentile(lat, 50)),
                    "p99": float(np.percentile(lat, 99)),
                    "max": float(lat.max()),
                    "moved_after": sum(r.moved_after for r in results),
                    "holds_after": sum(r.holds_after for r in results),
                    "n": len(results),
                }
            )
            r = rows[-1]
            print(
                f"  e-stop at {hz:g} Hz: p50 {r['p50']:.1f} ms max {r['max']:.1f} ms, "
                f"moved after {r['moved_after']}",
                flush=True,
            )
    finally:
        commanded.close()
        procs.stop(launch)
    return rows


def print_estop(rows: list[dict]) -> None:
    print("\ne-stop under a command stream (sim.launch, 10 Hz control; stream in its own process)")
    print(
        "| command rate (Hz) | achieved (Hz) | e-stops | latency p50 (ms) | p99 (ms) | max (ms) |"
        " poses moved after the answer | hold poses after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hz']:g} | {r['achieved']:.0f} | {r['n']} | {r['p50']:.1f} | {r['p99']:.1f} |"
            f" {r['max']:.1f} | {r['moved_after']} | {r['holds_after']} |"
        )


def camera_preprocessing(n: int = 500) -> dict:
    import cv2

    from perception.preprocess import parse_roi, preprocess, to_rgb
    from perception.ros_image import image_to_msg

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    roi = parse_roi([160, 80, 320, 320], frame.shape)
    out = {}
    for name, fn in (
        ("crop+resize 640x480 -> 64x64", lambda: preprocess(frame, roi)),
        ("BGR->RGB 640x480", lambda: to_rgb(frame, "bgr8")),
        ("crop+resize + to sensor_msgs/Image", lambda: image_to_msg(preprocess(frame, roi), None)),
    ):
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        out[name] = (time.perf_counter() - t) / n * 1e6
    out["_opencv_threads"] = cv2.getNumThreads()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps at 10 Hz")
    parser.add_argument("--rate-steps", type=int, default=150, help="steps per rate")
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 20, 50, 100, 150, 200, 250])
    parser.add_argument(
        "--estop-rates", type=float, nargs="+", default=[10, 100, 250, 1000, 2500, 5000]
    )
    parser.add_argument("--estop-trials", type=int, default=10, help="e-stops per rate")
    parser.add_argument("--estop-only", action="store_true", help="only the e-stop table")
    args = parser.parse_args()
    if max(args.rates) > 250:
        parser.error("the simulator's controller runs at 250 Hz: rates above it hold no physics")

    from robot.ros_processes import RosProcesses, free_port, private_ros_env

    tmp = Path(tempfile.mkdtemp(prefix="ros_loop_"))
    os.environ.update(private_ros_env(tmp, free_port()))
    procs = RosProcesses(dict(os.environ), tmp)
    procs.start_master()
    try:
        from robot.ros_env import RosSafeReachEnv, ensure_node

        ensure_node("ros_loop_bench")
        rng = np.random.default_rng(0)
        rows = []
        safety = None
        estop_rows = estop_vs_rate(procs, args.estop_rates, args.estop_trials)
        if args.estop_only:
            print_estop(estop_rows)
            return 0
        for rate in sorted(set([10.0] + args.rates)):
            launch = procs.start(
                f"launch_{rate:g}",
                ["roslaunch", "fosp_robot", "sim.launch", f"control_hz:={rate}", "seed:=0"],
            )
            wait_service("/fosp/reset", 60)
            env = RosSafeReachEnv("/fosp", control_hz=rate)
            steps = args.steps if rate == 10 else args.rate_steps
            stats = loop_stats(env, steps, rng)
            if rate == 10:
                safety = safety_timing(env)
            stats["hz"] = rate
            stats["sustainable"] = (
                stats["stale"] == 0 and stats["p99"] < 1000 / rate and stats["rate"] >= 0.95 * rate
            )
            rows.append(stats)
            print(
                f"  {rate:6.1f} Hz: latency p50 {stats['p50']:.1f} ms p99 {stats['p99']:.1f} ms,"
                f" achieved {stats['rate']:.1f} Hz, stale {stats['stale']}",
                flush=True,
            )
            env.close()
            procs.stop(launch)
    finally:
        import rospy

        rospy.signal_shutdown("benchmark done")
        procs.stop_all()

    print_estop(estop_rows)
    cam = camera_preprocessing()
    print("\nROS control loop, sim backend (sim.launch), action published -> fresh observation")
    print(
        "| rate (Hz) | latency p50 (ms) | p99 (ms) | max (ms) | step() p50 (ms) | "
        "interval std (ms) | |interval-period| p99 (ms) | achieved (Hz) | stale | sustainable |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hz']:g} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | "
            f"{r['step_p50']:.1f} | {r['jitter_std']:.2f} | {r['jitter_p99']:.2f} | "
            f"{r['rate']:.1f} | {r['stale']} | {'yes' if r['sustainable'] else 'no'} |"
        )
    ok = [r["hz"] for r in rows if r["sustainable"]]
    print(f"\nhighest sustainable rate tried: {max(ok) if ok else 'none'} Hz")
    if safety:
        w, e = np.asarray(safety["watchdog_ms"]), np.asarray(safety["estop_ms"])
        print(
            f"watchdog (timeout 200 ms): last command -> hold {w.mean():.1f} ms mean, "
            f"{w.max():.1f} ms max (n={len(w)})"
        )
        print(
            f"e-stop: service call -> hold pose published {e.mean():.1f} ms mean, "
            f"{e.max():.1f} ms max (n={len(e)})"
        )
    print(f"\ncamera preprocessing per frame (OpenCV threads: {cam.pop('_opencv_threads')})")
    print("| stage | us/frame |\n|---|---|")
    for name, us in cam.items():
        print(f"| {name} | {us:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
