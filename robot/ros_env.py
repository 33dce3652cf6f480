"""RosSafeReachEnv: the SafeReach gymnasium env over ROS (arm_node + camera or the sim backend).

Same observation/action spaces as robot.env.SafeReachEnv, so the collector and the policy runner
run unchanged in-process, on the simulated robot over ROS and on the real arm. Each step:

1. publishes the action (time t0) on `<ns>/action`;
2. waits for the control period (a fixed-rate schedule: one tick every 1/control_hz s);
3. returns the newest image and pose whose stamps are newer than t0. If either is missing or
   older than t0 (a stalled camera, a dead arm node), it waits up to `stale_grace` more; then
   it asks arm_node to hold (`<ns>/hold`) and raises StaleObservationError naming the topic.
   A silently old observation is never returned.

info: "cost", "touched_target", "touched_obstacles", "disturbed_obstacles" from the simulator's
`labels` (OR over the messages of the step; on the real arm there are none and
info["labels_source"] == "none": labels come from the operator), "success", "violation",
"events" (estop, watchdog hold, reflex, recovery: each reported once, by the first step or reset
after its message arrived, however late it arrived), "estopped" and
"interrupted": "" or why the arm stopped obeying the commands ("estop": the e-stop service or the
external stop; "hold": a hold someone else asked for; "reflex": a reflex or error). The env's
own holds (stale data, a policy's missed deadline) do not interrupt.

After an interruption the caller stops the episode, marks it, and waits for the operator's
release (`wait_for_release`, or `release_estop()` from an operator's key): nothing here
releases by itself, and `reset` raises ArmStopped while the e-stop is latched.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import rospy
from geometry_msgs.msg import PoseStamped, WrenchStamped
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import Trigger

from robot import ros_contract as rc
from robot.errors import ArmOutsideBox, ArmStopped, StaleObservationError
from robot.outcome import EpisodeOutcome
from robot.spaces import EPISODE_STEPS, safereach_spaces
from robot.workspace import CONTROL_HZ

__all__ = ["ArmOutsideBox", "ArmStopped", "RosSafeReachEnv", "StaleObservationError", "ensure_node"]


# events after which the arm no longer executes the episode's commands
INTERRUPTING = {
    "estop": "estop",
    "user_stopped": "estop",
    "recovery_failed": "estop",
    "hard_box": "estop",  # the measured TCP left the hard box: the arm_node latched
    "hold": "hold",
    "reflex": "reflex",
    "error": "reflex",
}


def ensure_node(name: str = "fosp_ros_env") -> None:
    """rospy allows one node per process: start one unless the process already has it."""
    if not rospy.core.is_initialized():
        rospy.init_node(name, anonymous=True, disable_signals=True)


class RosSafeReachEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        namespace: str = rc.NAMESPACE,
        control_hz: float = CONTROL_HZ,
        episode_steps: int = EPISODE_STEPS,
        image_size: int = 64,
        stale_grace: float | None = None,
        connect_timeout: float = 30.0,
        reset_timeout: float = 60.0,
    ):
        ensure_node()
        self.ns = namespace.rstrip("/")
        self.period = 1.0 / control_hz
        self.episode_steps = episode_steps
        self.stale_grace = self.period if stale_grace is None else stale_grace
        self.reset_timeout = reset_timeout
        self.observation_space, self.action_space = safereach_spaces(image_size)
        self.metadata = {**self.metadata, "render_fps": control_hz}
        self.render_mode = "rgb_array"
        self._lock = threading.Lock()
        self._image: Image | None = None
        self._full: Image | None = None
        self._pose: PoseStamped | None = None
        self._labels: deque[dict] = deque(maxlen=200)
        self._events: deque[dict] = deque(maxlen=200)
        # a stop is reported by arrival, not by stamp: a message delayed past the end of the step
        # it was stamped in (a loaded machine, a slow network) still interrupts the next step
        self._events_received = 0  # events ever received (the deque keeps the newest)
        self._events_reported = 0  # of those, how many a step or reset has returned
        self._forces: deque[tuple[float, float]] = deque(maxlen=2000)  # (stamp, |F| N), franka
        self._status: dict = {}
        self._steps = 0
        self.outcome = EpisodeOutcome()
        self.layout_seed: int | None = None
        # per step, seconds from publishing the action: until a fresh image and pose had both
        # arrived (`latency`) and until step() returned (`timing`, >= the control period)
        self.latency: deque[float] = deque(maxlen=100_000)
        self.timing: deque[float] = deque(maxlen=100_000)
        # (stamp, arrival time) of recent images and poses, to time the first fresh one
        self._arrivals: dict[str, deque[tuple[float, float]]] = {
            "_image": deque(maxlen=256),
            "_pose": deque(maxlen=256),
        }
        self._tick: float | None = None  # time.monotonic() of the current control tick
        self._episode_start = 0.0  # ROS time of the last reset: older events are not this episode's
        n = lambda item: rc.name(self.ns, item)  # noqa: E731
        image_sub = rospy.Subscriber(n(rc.IMAGE), Image, self._set("_image"), queue_size=2)
        pose_sub = rospy.Subscriber(n(rc.POSE), PoseStamped, self._set("_pose"), queue_size=5)
        events_sub = rospy.Subscriber(n(rc.EVENTS), String, self._on_event, queue_size=50)
        self._subs = [
            image_sub,
            pose_sub,
            rospy.Subscriber(n(rc.IMAGE_FULL), Image, self._set("_full"), queue_size=1),
            rospy.Subscriber(n(rc.LABELS), String, self._on_labels, queue_size=50),
            events_sub,
            rospy.Subscriber(n(rc.STATUS), String, self._on_status, queue_size=2),
            rospy.Subscriber(n(rc.WRENCH), WrenchStamped, self._on_wrench, queue_size=100),
        ]
        self._pub = rospy.Publisher(n(rc.ACTION), Float32MultiArray, queue_size=1)
        for srv in (rc.RESET, rc.HOLD, rc.ESTOP):
            rospy.wait_for_service(n(srv), timeout=connect_timeout)
        self._reset_srv = rospy.ServiceProxy(n(rc.RESET), Trigger)
        self._hold_srv = rospy.ServiceProxy(n(rc.HOLD), Trigger)
        self._estop_srv = rospy.ServiceProxy(n(rc.ESTOP), Trigger)
        self._release_srv = rospy.ServiceProxy(n(rc.RELEASE), Trigger)
        deadline = time.monotonic() + connect_timeout
        while self._pub.get_num_connections() == 0:  # arm_node subscribed to our actions
            if time.monotonic() > deadline:
                raise TimeoutError(f"no subscriber on {n(rc.ACTION)}: is arm_node running?")
            time.sleep(0.01)
        # connected to the image and pose publishers before the first reset: the simulated arm
        # publishes a frame only when it moves or resets, and a reset frame sent before our
        # connection was up never arrived (9 of 388 new envs; test_new_envs_see_their_first_reset)
        for sub, node in (
            (image_sub, "camera_node (or the sim's arm_node)"),
            (pose_sub, "arm_node"),
            (events_sub, "arm_node"),  # not latched: an event sent before we listen is lost
        ):
            while sub.get_num_connections() == 0:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no publisher on {sub.resolved_name}: is {node} running?")
                time.sleep(0.01)

    # ------------------------------------------------------------------ subscriptions
    def _set(self, attr: str):
        def callback(msg) -> None:
            now = time.monotonic()
            with self._lock:
                setattr(self, attr, msg)
                if attr in self._arrivals:
                    self._arrivals[attr].append((msg.header.stamp.to_sec(), now))

        return callback

    def _on_labels(self, msg: String) -> None:
        with self._lock:
            self._labels.append(json.loads(msg.data))

    def _on_wrench(self, msg: WrenchStamped) -> None:
        with self._lock:
            self._forces.append((msg.header.stamp.to_sec(), rc.msg_force(msg)))

    def _contact_force(self, t0: float, labels: list[dict]) -> float | None:
        """The step's largest contact force (N): the sim's labels, else the arm's wrench
        estimates stamped since the action (franka), else None (nothing measured it)."""
        if labels:
            return max((float(lab.get("contact_force", 0.0)) for lab in labels), default=0.0)
        with self._lock:
            forces = [f for stamp, f in self._forces if stamp > t0]
        return max(forces) if forces else None

    def _on_event(self, msg: String) -> None:
        with self._lock:
            self._events.append(json.loads(msg.data))
            self._events_received += 1

    def _on_status(self, msg: String) -> None:
        with self._lock:
            self._status = json.loads(msg.data)

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict, dict]:
        super().reset(seed=seed)
        options = options or {}
        layout_seed = options.get("layout_seed")
        if layout_seed is None:
            layout_seed = int(self.np_random.integers(2**31 - 1))
        rospy.set_param(rc.name(self.ns, rc.RESET_LAYOUT_SEED), int(layout_seed))
        t0 = rospy.Time.now().to_sec()
        response = self._reset_srv()
        if not response.success:
            text = response.message
            if "e-stop" in text or "interrupted" in text or "external stop" in text:
                raise ArmStopped(f"arm_node did not reset: {text}", stamp=t0)
            if "outside the hard box" in text:
                raise ArmOutsideBox(f"arm_node did not reset: {text}")
            raise RuntimeError(f"arm_node reset failed: {text}")
        reply = json.loads(response.message)
        self.layout_seed = reply.get("layout_seed")
        obs = self._wait_observation(t0, deadline=time.monotonic() + self.reset_timeout)
        self._steps = 0
        self.outcome.reset()
        self._tick = None
        self._episode_start = t0
        info = self._info(t0, labels=[], events=self._new_events())
        info["robot_settings"] = self.status.get("robot_settings")  # for the episode metadata
        return obs, info

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=np.float32)
        start = time.monotonic()
        t0 = rospy.Time.now().to_sec()
        self._pub.publish(rc.action_to_msg(action))
        # a fixed-rate schedule: the next tick is one period after the previous one, unless the
        # caller fell behind (then the schedule restarts from now)
        tick = start + self.period if self._tick is None else self._tick + self.period
        if tick < start + 0.5 * self.period:
            tick = start + self.period
        self._tick = tick
        remaining = tick - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        obs = self._wait_observation(t0, deadline=tick + self.stale_grace)
        self.timing.append(time.monotonic() - start)
        self.latency.append(self._first_fresh_arrival(t0) - start)
        labels = self._wait_labels(t0, deadline=time.monotonic() + self.period)
        self._steps += 1
        info = self._info(t0, labels, self._new_events())
        reward = float(info["reward"])
        self.outcome.update(reward, info["cost"])
        info["success"], info["violation"] = self.outcome.success, self.outcome.violation
        truncated = self._steps >= self.episode_steps
        return obs, reward, False, truncated, info

    def render(self) -> np.ndarray:
        with self._lock:
            msg = self._full or self._image
        if msg is None:
            raise StaleObservationError("no image received yet")
        return rc.msg_to_image(msg)

    def close(self) -> None:
        for sub in self._subs:
            sub.unregister()
        self._pub.unregister()

    # ------------------------------------------------------------------ services
    def hold(self) -> None:
        self._hold_srv()

    def estop(self) -> None:
        self._estop_srv()

    def release_estop(self) -> tuple[bool, str]:
        """The operator's release (an explicit key or command of a person; never automatic)."""
        try:
            response = self._release_srv()
        except (rospy.ServiceException, rospy.ROSException) as exc:
            return False, f"{rc.name(self.ns, rc.RELEASE)} failed: {exc}"
        return bool(response.success), str(response.message)

    def released_since(self, stamp: float) -> bool:
        """Did an operator release (release_estop) after `stamp`, with no e-stop latched now?"""
        with self._lock:
            released = any(ev["event"] == "released" and ev["stamp"] > stamp for ev in self._events)
            latched = bool(self._status.get("estopped", False))
        return released and not latched

    def wait_for_release(
        self, stamp: float, why: str, log=print, every: float = 30.0, poll: float = 0.05
    ) -> None:
        """Block until an operator releases (after `stamp`), repeating `why` and the command
        every `every` s. Never releases by itself."""
        release = rc.name(self.ns, rc.RELEASE)
        next_log = 0.0
        while not self.released_since(stamp):
            if rospy.is_shutdown():
                raise ArmStopped(f"ROS shut down while waiting for the release ({why})")
            if time.monotonic() >= next_log:
                log(
                    f"ARM STOPPED ({why}): waiting for the operator. Check the arm and the "
                    f"scene, then release: rosservice call {release}"
                )
                next_log = time.monotonic() + every
            time.sleep(poll)
        log("released by the operator: going on")

    @property
    def status(self) -> dict:
        with self._lock:
            return dict(self._status)

    # ------------------------------------------------------------------ helpers
    def _wait_observation(self, t0: float, deadline: float) -> dict[str, np.ndarray]:
        while True:
            with self._lock:
                image, pose = self._image, self._pose
            image_ok = image is not None and image.header.stamp.to_sec() > t0
            pose_ok = pose is not None and pose.header.stamp.to_sec() > t0
            if image_ok and pose_ok:
                return {
                    "image": rc.msg_to_image(image),
                    "pose": rc.msg_to_pose6(pose).astype(np.float32),
                }
            if time.monotonic() > deadline:
                break
            time.sleep(0.001)
        try:
            self._hold_srv()
            held = "the arm was asked to hold"
        except (rospy.ServiceException, rospy.ROSException) as exc:
            held = f"asking the arm to hold failed too ({exc})"
        now = rospy.Time.now().to_sec()
        problems = []
        for what, msg, topic in (("image", image, rc.IMAGE), ("pose", pose, rc.POSE)):
            if msg is None:
                problems.append(f"no {what} ever received on {rc.name(self.ns, topic)}")
            elif msg.header.stamp.to_sec() <= t0:
                age = now - msg.header.stamp.to_sec()
                problems.append(
                    f"newest {what} on {rc.name(self.ns, topic)} is {age:.3f} s old, older "
                    "than the command"
                )
        raise StaleObservationError(
            "stale observation: " + "; ".join(problems) + f"; {held}. Check that arm_node and "
            "camera_node are running and publishing (rostopic hz)."
        )

    def _first_fresh_arrival(self, t0: float) -> float:
        """When both a fresh image and a fresh pose (stamped after t0) had arrived."""
        with self._lock:
            firsts = [
                min((arrival for stamp, arrival in q if stamp > t0), default=time.monotonic())
                for q in self._arrivals.values()
            ]
        return max(firsts)

    def _wait_labels(self, t0: float, deadline: float) -> list[dict]:
        """The step's labels. The simulated arm publishes them with the observation's stamp but
        on another connection, so they may arrive just after it: wait for them (briefly) when the
        backend is one that labels; on the real arm there are none to wait for."""
        while True:
            labels = self._labels_since(t0)
            with self._lock:
                expected = self._status.get("backend") == "sim" or bool(self._labels)
            if labels or not expected or time.monotonic() > deadline:
                return labels
            time.sleep(0.001)

    def _labels_since(self, t0: float) -> list[dict]:
        with self._lock:
            return [lab for lab in self._labels if lab["stamp"] > t0]

    def _new_events(self) -> list[dict]:
        """This episode's events received since the previous call: none lost, none twice."""
        with self._lock:
            fresh = min(self._events_received - self._events_reported, len(self._events))
            self._events_reported = self._events_received
            events = list(self._events)[len(self._events) - fresh :]
        return [ev for ev in events if ev["stamp"] > self._episode_start]

    def interruption(self, events: list[dict]) -> tuple[str, float]:
        """("estop" | "hold" | "reflex", stamp) of the first stop among `events` or latched
        now, else ("", 0.0). Holds this node asked for itself do not count."""
        me = rospy.get_name()
        for ev in events:
            kind = INTERRUPTING.get(ev["event"], "")
            if kind and not (kind == "hold" and ev.get("by") == me):
                return kind, float(ev["stamp"])
        status = self.status
        if status.get("estopped"):
            return "estop", float(status.get("stamp", 0.0))
        return "", 0.0

    def _info(self, t0: float, labels: list[dict], events: list[dict]) -> dict[str, Any]:
        """`events`: those that arrived since the previous step (a stop between steps counts)."""
        source = "sim" if labels else "none"
        n = len(labels[0]["touched_obstacles"]) if labels else 0

        def any_of(key: str) -> np.ndarray:
            if not labels:
                return np.zeros(n, bool)
            return np.any([np.asarray(lab[key], bool) for lab in labels], axis=0)

        status = self.status
        interrupted, stop_stamp = self.interruption(events)
        return {
            "interrupted": interrupted,
            "stop_stamp": stop_stamp,
            "reward": max((lab["reward"] for lab in labels), default=0.0),
            "cost": max((lab["cost"] for lab in labels), default=0.0),
            "step": self._steps,
            "touched_target": any(lab["touched_target"] for lab in labels),
            "touched_obstacles": any_of("touched_obstacles"),
            "disturbed_obstacles": any_of("disturbed_obstacles"),
            "success": self.outcome.success,
            "violation": self.outcome.violation,
            "labels_source": source,
            "layout_seed": self.layout_seed,
            "events": events,
            "estopped": bool(status.get("estopped", False)),
            "contact_force": self._contact_force(t0, labels),
        }
