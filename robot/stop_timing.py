"""Measure the operator's stop over ROS: e-stop latency and what ran after the answer.

Used by tests/ros (the bounds) and benchmarks/ros_loop.py (the table). A child process
(`stream_argv`) publishes actions at a fixed rate; `estop_once` calls the e-stop service while it
runs and reports the call's latency and the command poses the arm node produced after the answer.
Every pose arm_node sends is published on `commanded_pose` stamped when it was sent (under the
safety filter's lock), so "after the answer" is judged by the stamp, not by the arrival time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import rospy
from geometry_msgs.msg import PoseStamped
from std_srvs.srv import Trigger

from robot import ros_contract as rc

STREAM = """
import sys, time
import numpy as np
import rospy
from std_msgs.msg import Float32MultiArray
from robot import ros_contract as rc

topic, hz = sys.argv[1], float(sys.argv[2])
rospy.init_node("command_stream", anonymous=True)
pub = rospy.Publisher(topic, Float32MultiArray, queue_size=100)
while pub.get_num_connections() == 0 and not rospy.is_shutdown():
    time.sleep(0.01)
print("STREAMING", flush=True)
period, sent, t0 = 1.0 / hz, 0, time.perf_counter()
last = t0
next_t = t0
while not rospy.is_shutdown():
    sign = 1.0 if (sent // 20) % 2 == 0 else -1.0  # back and forth: successive poses differ
    pub.publish(rc.action_to_msg(np.array([sign, -sign, 0, 0, 0, sign], np.float32)))
    sent += 1
    last = time.perf_counter()
    next_t += period
    delay = next_t - time.perf_counter()
    if delay > 0:
        time.sleep(delay)
    elif delay < -0.05:
        next_t = time.perf_counter()  # fell behind: no burst to catch up
print(f"SENT {sent - 1} IN {last - t0:.6f}", flush=True)  # intervals between publishes
"""


def stream_argv(python: str, namespace: str, hz: float) -> list[str]:
    """A child process publishing actions on `<ns>/action` at `hz` (the policy's side: the
    operator's stop comes from another process); it prints STREAMING once connected and
    SENT n IN s when stopped (SIGINT)."""
    return [python, "-c", STREAM, rc.name(namespace, rc.ACTION), str(hz)]


def stream_rate(log: str) -> float:
    """Achieved rate from a stopped stream's log."""
    for line in log.splitlines():
        if line.startswith("SENT "):
            _, n, _, seconds = line.split()
            return int(n) / float(seconds)
    return float("nan")


class CommandedPoses:
    """(stamp, pose) of every pose on `<ns>/commanded_pose`."""

    def __init__(self, namespace: str):
        self.lock = threading.Lock()
        self.items: list[tuple[float, np.ndarray]] = []
        self.sub = rospy.Subscriber(
            rc.name(namespace, rc.COMMANDED_POSE), PoseStamped, self._on, queue_size=10_000
        )

    def _on(self, msg: PoseStamped) -> None:
        with self.lock:
            self.items.append((msg.header.stamp.to_sec(), rc.msg_to_pose6(msg)))

    def after(self, stamp: float) -> list[np.ndarray]:
        with self.lock:
            return [pose for s, pose in self.items if s > stamp]

    def close(self) -> None:
        self.sub.unregister()


@dataclass
class StopResult:
    latency_s: float  # service call -> answer
    moved_after: int  # poses sent after the answer that differ from the hold pose
    holds_after: int  # hold poses sent after the answer (sim: the world keeps running)
    answer: str


def poses_differing(poses: list[np.ndarray], atol: float = 1e-6) -> int:
    """How many of `poses` differ from the first (the hold pose), translation or rotation."""
    if not poses:
        return 0
    ref = poses[0]
    return sum(not np.allclose(p, ref, atol=atol) for p in poses[1:])


def estop_once(
    namespace: str,
    commanded: CommandedPoses,
    settle: float = 0.3,
    service: str = rc.ESTOP,
    proxy: rospy.ServiceProxy | None = None,
) -> StopResult:
    """Call `<ns>/estop` now (the caller runs a stream), wait `settle` s, count what moved.
    A persistent `proxy` (already connected) leaves the master lookup and TCP connect out of
    the latency, as an operator's e-stop button node that keeps its connection open does."""
    import sys

    proxy = proxy or rospy.ServiceProxy(rc.name(namespace, service), Trigger)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # this process's subscriber threads must not delay the call
    try:
        t0 = time.perf_counter()
        response = proxy()
        latency = time.perf_counter() - t0
    finally:
        sys.setswitchinterval(switch)
    answered = rospy.Time.now().to_sec()
    time.sleep(settle)
    after = commanded.after(answered)
    return StopResult(latency, poses_differing(after), len(after), response.message)


def release_and_reset(namespace: str) -> None:
    for service in (rc.RELEASE, rc.RESET):
        response = rospy.ServiceProxy(rc.name(namespace, service), Trigger)()
        if not response.success:
            raise RuntimeError(f"{service}: {response.message}")
