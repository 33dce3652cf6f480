"""arm_node: the ROS face of the arm. `rosrun fosp_robot arm_node _backend:=sim|franka`.

Thin by design. One loop thread runs the commands, the watchdog and `reset`; the operator's
stops never wait for it:

- an `action` message -> SafetyFilter.command -> backend.send. Callbacks only keep the newest
  message (newest command wins; the superseded ones are counted); rejected messages are logged
  and dropped. A message of another type, or one that does not deserialize, is logged and
  counted in `status` (`message_errors`, `bad_publishers`) instead of rospy dropping that
  publisher silently. In sim one accepted command executes one control period of physics, then
  pose, image and labels are published;
- `estop` and `hold` (std_srvs/Trigger) act in the service's own thread: under the filter's
  lock the filter latches / holds and the backend is told to hold before the answer, and the
  loop checks the latch under the same lock before every backend command, so nothing the
  policy sent runs after the answer. They also interrupt a `reset` walking the arm home;
- `release_estop` is the operator's explicit release: the only way to clear the e-stop
  (`reset` refuses while it is latched and never clears it);
- the watchdog (checked every `~tick` s) holds the measured pose when commands stop; while the
  arm is held or e-stopped the simulated world keeps running at the control rate;
- reflex/user stop from franka_ros -> hold (user stop: e-stop latch), `events` message (the
  episode is marked), an error log for the operator, recovery after a reflex.

Private parameters (defaults): ~backend (sim), ~task (train), ~control_hz (10),
~watchdog_timeout (0.2), ~tick (0.01), ~seed (none), ~full_image_size (0 = off),
~controller (cartesian_impedance_example_controller), ~state_topic, ~recovery_action,
~auto_recover (true), ~home_timeout (20).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np
import rospy
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import Trigger, TriggerResponse

from robot import ros_contract as rc
from robot.backends import ArmBackend, BackendEvent, make_backend
from robot.safety import SafetyConfig, SafetyFilter
from robot.workspace import ControlLimits, StepLimits

ROBOT_MODE_USER_STOPPED = 5


class Interrupted(RuntimeError):
    """A walk home stopped by an e-stop or a hold."""


def _caller(request: Any) -> str:
    return str((getattr(request, "_connection_header", None) or {}).get("callerid", "?"))


class ArmNode:
    def __init__(self, backend: ArmBackend, safety: SafetyFilter, params: dict[str, Any]):
        self.backend = backend
        self.filter = safety
        self.lock = safety.lock  # held from every latch check to the backend call it guards
        self.params = params
        self.period = 1.0 / float(params["control_hz"])
        self.tick = float(params["tick"])
        self.last_step_time = 0.0
        self.step_count = 0
        self.info: dict[str, Any] = {}
        self.stops = 0  # e-stops + holds so far: a walk home stops when this changes
        self.superseded = 0  # actions replaced by a newer one before the loop got to them
        self.message_errors = {"wrong_type": 0, "malformed": 0}
        self.bad_publishers: dict[str, str] = {}  # callerid -> what was wrong
        self._action: list[float] | None = None  # the newest action not executed yet
        self._slot = threading.Lock()
        self._wake = threading.Event()  # an action or a request is waiting for the loop
        self._interrupt = threading.Event()  # wakes a walk home early on a stop
        self._requests: queue.Queue = queue.Queue()  # reset, for the loop thread
        self.release_name = rospy.resolve_name(rc.RELEASE)
        self.pub_pose = rospy.Publisher(rc.POSE, PoseStamped, queue_size=10)
        self.pub_commanded = rospy.Publisher(rc.COMMANDED_POSE, PoseStamped, queue_size=10)
        self.pub_events = rospy.Publisher(rc.EVENTS, String, queue_size=50)
        self.pub_status = rospy.Publisher(rc.STATUS, String, queue_size=1, latch=True)
        if backend.publishes_images:
            self.pub_image = rospy.Publisher(rc.IMAGE, Image, queue_size=2)
            self.pub_full = rospy.Publisher(rc.IMAGE_FULL, Image, queue_size=1)
            self.pub_labels = rospy.Publisher(rc.LABELS, String, queue_size=10)
        # AnyMsg: publishers of any type connect, so a wrong one is seen and reported (with the
        # action type rospy would refuse the connection and say nothing on /rosout)
        rospy.Subscriber(rc.ACTION, rospy.AnyMsg, self._on_action, queue_size=10)
        rospy.Service(rc.RESET, Trigger, self._srv_reset)
        rospy.Service(rc.ESTOP, Trigger, self._srv_estop)
        rospy.Service(rc.HOLD, Trigger, self._srv_hold)
        rospy.Service(rc.RELEASE, Trigger, self._srv_release)

    # ------------------------------------------------------------------ action topic (ROS threads)
    def _on_action(self, raw: rospy.AnyMsg) -> None:
        header = getattr(raw, "_connection_header", None) or {}
        caller = header.get("callerid", "?")
        kind = header.get("type", "?")
        if kind != Float32MultiArray._type or header.get("md5sum") != Float32MultiArray._md5sum:
            self._bad_message("wrong_type", caller, f"type {kind}, not {Float32MultiArray._type}")
            return
        try:
            data = list(Float32MultiArray().deserialize(raw._buff).data)
        except Exception as exc:  # genpy.DeserializationError, struct.error, ...
            self._bad_message("malformed", caller, f"does not deserialize ({exc})")
            return
        with self._slot:
            if self._action is not None:
                self.superseded += 1
            self._action = data
        self._wake.set()

    def _bad_message(self, kind: str, caller: str, what: str) -> None:
        with self._slot:  # one receive thread per publisher
            self.message_errors[kind] += 1
            n = self.message_errors[kind]
            first = caller not in self.bad_publishers
            self.bad_publishers[caller] = f"{kind}: {what}"
        if first or n % 100 == 1:
            rospy.logerr(
                "arm_node: dropped a message on %s from %s: %s (%d %s so far)",
                rospy.resolve_name(rc.ACTION), caller, what, n, kind,
            )  # fmt: skip
        if first:
            self._publish_status()

    def _take_action(self) -> list[float] | None:
        with self._slot:
            data, self._action = self._action, None
        return data

    # ------------------------------------------------------------------ services (ROS threads)
    def _srv_estop(self, request: Any) -> TriggerResponse:
        with self.lock:
            decision = self.filter.estop(self.backend.measured_pose())
            self._stopped(decision.pose)
        message = f"e-stop latched: nothing moves until an operator calls {self.release_name}"
        self._event("estop", message, by=_caller(request))
        rospy.logwarn(
            "arm_node: E-STOP latched (by %s). Check the arm and the scene, then release it: "
            "rosservice call %s",
            _caller(request), self.release_name,
        )  # fmt: skip
        self._publish_status()
        return TriggerResponse(success=True, message=message)

    def _srv_hold(self, request: Any) -> TriggerResponse:
        with self.lock:
            decision = self.filter.hold(self.backend.measured_pose(), reason="hold service")
            self._stopped(decision.pose)
        self._event("hold", "hold requested", by=_caller(request))
        self._publish_status()
        return TriggerResponse(success=True, message="holding the measured pose")

    def _stopped(self, pose: np.ndarray | None) -> None:
        """Under the lock: the backend holds `pose` now; queued commands and walks are void."""
        self.stops += 1
        self._interrupt.set()
        self._take_action()  # sent before the stop: never executed after it
        self.backend.hold(pose)
        if pose is not None:
            self.pub_commanded.publish(rc.pose6_to_msg(pose, rospy.Time.now()))

    def _srv_release(self, request: Any) -> TriggerResponse:
        with self.lock:
            if getattr(self.backend, "robot_mode", None) == ROBOT_MODE_USER_STOPPED:
                return TriggerResponse(
                    success=False,
                    message="the external stop is still pressed: release it, then call "
                    f"{self.release_name} again",
                )
            was_latched = self.filter.release()
        if was_latched:
            message = "e-stop released: the arm holds its pose; reset starts the next episode"
            rospy.logwarn("arm_node: e-stop released by %s", _caller(request))
        else:
            message = "no e-stop was latched: go-ahead noted"
        self._event("released", message, by=_caller(request), estop=was_latched)
        self._publish_status()
        return TriggerResponse(success=True, message=message)

    def _srv_reset(self, request: Any) -> TriggerResponse:
        if self.filter.estopped:
            return TriggerResponse(success=False, message=self._estop_refusal())
        reply: queue.Queue = queue.Queue(maxsize=1)
        self._requests.put(("reset", reply))
        self._wake.set()
        try:
            ok, message = reply.get(timeout=float(self.params["home_timeout"]) + 10.0)
        except queue.Empty:
            ok, message = False, "reset: arm_node loop did not answer"
        return TriggerResponse(success=ok, message=message)

    def _estop_refusal(self) -> str:
        external = getattr(self.backend, "robot_mode", None) == ROBOT_MODE_USER_STOPPED
        return (
            "reset refused: the e-stop is latched"
            + (" (the external stop is pressed: release it first)" if external else "")
            + f". Check the arm, then an operator releases it (rosservice call "
            f"{self.release_name}) and resets again"
        )

    # ------------------------------------------------------------------ loop (one thread)
    def run(self) -> None:
        self._publish_status()
        last_status = time.monotonic()
        while not rospy.is_shutdown():
            self._wake.wait(self.tick)
            self._wake.clear()
            try:
                what, reply = self._requests.get_nowait()
            except queue.Empty:
                pass
            else:
                try:
                    result = getattr(self, f"_do_{what}")()
                except Exception as exc:  # report, keep the node alive
                    rospy.logerr("arm_node: %s failed: %s", what, exc)
                    result = (False, f"{what} failed: {exc}")
                reply.put(result)
            try:
                data = self._take_action()
                if data is not None:
                    self._handle_action(data)
                self._watchdog()
                self._backend_events()
            except Exception as exc:  # never let the loop die: the node would look alive
                rospy.logerr_throttle(1.0, f"arm_node: loop error: {exc!r}")
            if time.monotonic() - last_status > 1.0:
                self._publish_status()
                last_status = time.monotonic()

    def _measured(self) -> np.ndarray:
        pose = self.backend.measured_pose()
        if pose is None:
            raise RuntimeError("no measured pose from the backend yet")
        return pose

    def _handle_action(self, data: list[float]) -> None:
        with self.lock:  # the latch check (in command) and the issue are one step
            measured = self.backend.measured_pose()
            if measured is None:
                rospy.logwarn_throttle(2.0, "arm_node: command dropped, no measured pose yet")
                return
            decision = self.filter.command(data, measured)
            pending = self._issue(decision.pose, "command") if decision.pose is not None else None
        if decision.pose is not None:
            self._simulate(pending)
        elif decision.kind == "rejected":
            rospy.logwarn_throttle(1.0, f"arm_node: rejected command: {decision.reason}")
        else:
            rospy.logwarn_throttle(2.0, f"arm_node: command dropped: {decision.reason}")

    def _issue(self, pose: np.ndarray, kind: str) -> tuple | None:
        """Under the lock: a pose goes out, stamped now on commanded_pose. The real arm gets it
        at once; the simulated world runs its control period in _simulate(), outside the lock
        (a stop answered meanwhile holds from the next period on, as a real arm would)."""
        now = rospy.Time.now()
        self.pub_commanded.publish(rc.pose6_to_msg(pose, now))
        if not self.backend.steps_physics:
            self.backend.send(pose)
            return None
        return pose, now, kind

    def _simulate(self, pending: tuple | None) -> None:
        if pending is None:
            return
        pose, stamp, kind = pending
        result = self.backend.send(pose)
        self.last_step_time = time.monotonic()
        self.step_count += 1
        self._publish_sim(stamp, result, kind)

    def _send(self, pose: np.ndarray, kind: str) -> None:
        """Issue and (sim) simulate at once: for the loop thread's own moves (reset, holds)."""
        self._simulate(self._issue(pose, kind))

    def _publish_sim(self, stamp: rospy.Time, labels: Any, kind: str) -> None:
        backend = self.backend
        self.pub_pose.publish(rc.pose6_to_msg(backend.measured_pose(), stamp))
        self.pub_image.publish(rc.image_to_msg(backend.image(), stamp))
        size = int(self.params["full_image_size"])
        if size > 0 and self.pub_full.get_num_connections() > 0:
            self.pub_full.publish(rc.image_to_msg(backend.full_image(size, size), stamp))
        if labels is not None:
            payload = {"stamp": stamp.to_sec(), "kind": kind, "step": self.step_count}
            payload.update(backend.labels_dict(labels))
            self.pub_labels.publish(rc.json_msg(payload))

    def _watchdog(self) -> None:
        pending = None
        with self.lock:
            measured = self.backend.measured_pose()
            if measured is None:
                return
            decision = self.filter.tick(measured)
            if decision is not None:
                pending = self._issue(decision.pose, "hold")
            elif (
                self.backend.steps_physics
                and self.filter.commanded is not None
                and (self.filter.held or self.filter.estopped)
                and time.monotonic() - self.last_step_time >= self.period
            ):
                # the simulated world does not stop while the arm is held
                pending = self._issue(self.filter.commanded, "hold")
        self._simulate(pending)
        if decision is not None:
            self._event("watchdog_hold", decision.reason)

    def _backend_events(self) -> None:
        for event in self.backend.poll_events():
            self._handle_backend_event(event)

    def _handle_backend_event(self, event: BackendEvent) -> None:
        rospy.logerr(
            "arm_node: %s (%s). The episode is marked. %s",
            event.kind,
            event.detail,
            "Recovering automatically." if event.kind in ("reflex", "error") else "",
        )
        self._event(event.kind, event.detail, **event.data)
        if event.kind == "user_stopped":
            # the operator pressed the external stop: latch until they release it and us
            with self.lock:
                self._stopped(self.filter.estop(self.backend.measured_pose()).pose)
            rospy.logerr(
                "arm_node: external stop pressed: e-stop latched. Release the external stop, "
                "then rosservice call %s",
                self.release_name,
            )
            self._publish_status()
            return
        with self.lock:
            self._stopped(self.filter.hold(self.backend.measured_pose(), reason=event.kind).pose)
        if event.kind in ("reflex", "error") and self.params["auto_recover"]:
            ok = self.backend.recover()
            with self.lock:
                measured = self.backend.measured_pose()
                if ok and measured is not None:
                    # re-sync: the next command starts from where the arm is now (an e-stop
                    # latched meanwhile stays latched; this pose is a hold either way)
                    self.filter.reset(measured)
                    self.backend.send(self.filter.commanded)
            if ok and measured is not None:
                self._event("recovered", "error recovery succeeded")
                rospy.loginfo("arm_node: recovered from %s", event.kind)
            else:
                with self.lock:
                    self._stopped(self.filter.estop(measured).pose)
                self._event("recovery_failed", "error recovery failed: e-stop latched")
                rospy.logerr(
                    "arm_node: error recovery failed. Check the robot (Desk, external stop, "
                    "collisions), then rosservice call %s and %s.",
                    self.release_name,
                    rospy.resolve_name(rc.RESET),
                )
        self._publish_status()

    # ------------------------------------------------------------------ reset (loop thread)
    def _do_reset(self) -> tuple[bool, str]:
        seed = None
        if rospy.has_param(rc.RESET_LAYOUT_SEED):
            seed = int(rospy.get_param(rc.RESET_LAYOUT_SEED))
            rospy.delete_param(rc.RESET_LAYOUT_SEED)
        if self.backend.steps_physics:
            with self.lock:
                if self.filter.estopped:
                    return False, self._estop_refusal()
                info = self.backend.reset(seed)
                home = self.backend.measured_pose()
                self.filter.reset(self.filter.limits.workspace.home_pose())
                self.step_count = 0
                self._take_action()  # sent before the episode began
                self._publish_sim(rospy.Time.now(), None, "reset")
        else:
            mode = getattr(self.backend, "robot_mode", None)
            if mode == ROBOT_MODE_USER_STOPPED:
                return False, "the external stop is pressed: release it, then reset again"
            if mode == 4 and not self.backend.recover():  # reflex
                return False, "error recovery failed: check the robot in Desk, then reset again"
            info = self.backend.reset(seed)
            try:
                home = self._drive_home()
            except Interrupted as stop:
                return False, str(stop)
            self._take_action()
        info["pose"] = np.asarray(home).tolist()
        self.info = info
        self._event("reset", "", **info)
        self._publish_status()
        return True, json.dumps(info)

    def _drive_home(self) -> np.ndarray:
        """Real arm: walk the command to the home pose through the filter, one step a period.
        An e-stop or hold (checked under the lock before every pose) ends the walk at once."""
        target = self.filter.limits.workspace.home_pose()
        with self.lock:
            if self.filter.estopped:
                raise Interrupted(self._estop_refusal())
            stops = self.stops
            self._interrupt.clear()
            self.filter.reset(self._measured())
        deadline = time.monotonic() + float(self.params["home_timeout"])
        reached = False
        while not rospy.is_shutdown():
            with self.lock:
                if self.stops != stops:
                    why = "the e-stop was latched" if self.filter.estopped else "a hold"
                    raise Interrupted(
                        f"reset interrupted by {why}: the arm holds where it is; "
                        + ("release it, then " if self.filter.estopped else "")
                        + "reset again"
                    )
                if not reached:
                    pose, reached = self.filter.step_towards(target, self._measured())
                    self._send(pose, "home")
                measured = self._measured()
                if reached and np.linalg.norm(measured[:3] - target[:3]) < 0.005:
                    return measured
                if time.monotonic() > deadline:
                    self._stopped(self.filter.hold(measured, reason="home timeout").pose)
                    raise TimeoutError(
                        f"the arm did not reach the home pose within "
                        f"{self.params['home_timeout']} s (at "
                        f"{np.round(measured[:3], 3).tolist()}); it holds where it is"
                    )
            self._interrupt.wait(self.period)
        return measured

    # ------------------------------------------------------------------ reporting
    def _event(self, kind: str, detail: str = "", **data: Any) -> None:
        payload = {"stamp": rospy.Time.now().to_sec(), "event": kind, "detail": detail}
        payload.update(data)
        self.pub_events.publish(rc.json_msg(payload))

    def _publish_status(self) -> None:
        f = self.filter
        with self._slot:
            errors, culprits = dict(self.message_errors), dict(self.bad_publishers)
        self.pub_status.publish(
            rc.json_msg(
                {
                    "stamp": rospy.Time.now().to_sec(),
                    "backend": self.backend.name,
                    "estopped": f.estopped,
                    "held": f.held,
                    "counts": {**f.counts, "superseded": self.superseded},
                    "rejected": f.rejected,
                    "message_errors": errors,
                    "bad_publishers": culprits,
                    "release_service": self.release_name,
                    "control_hz": 1.0 / self.period,
                    "rate_limit": f.config.rate_limit,
                    "watchdog_timeout": f.config.watchdog_timeout,
                    "episode": self.info,
                }
            )
        )


def read_params() -> dict[str, Any]:
    defaults = {
        "backend": "sim",
        "task": "train",
        "control_hz": 10.0,
        "watchdog_timeout": 0.2,
        "tick": 0.01,
        "seed": -1,
        "full_image_size": 0,
        "controller": "cartesian_impedance_example_controller",
        "state_topic": "/franka_state_controller/franka_states",
        "recovery_action": "/franka_control/error_recovery",
        "auto_recover": True,
        "home_timeout": 20.0,
        "state_timeout": 10.0,
    }
    return {k: rospy.get_param(f"~{k}", v) for k, v in defaults.items()}


def build(params: dict[str, Any], node: list) -> tuple[ArmBackend, SafetyFilter]:
    limits = ControlLimits(step=replace(StepLimits(), control_hz=float(params["control_hz"])))
    safety = SafetyFilter(
        SafetyConfig(
            limits=limits,
            watchdog_timeout=float(params["watchdog_timeout"]),
            # franka_ros follows every message at once: the motion is limited per control
            # period; in sim one message is one period of physics (docs/ros.md)
            rate_limit=params["backend"] != "sim",
        )
    )
    if params["backend"] == "sim":
        from robot.sim.world import SimConfig

        seed = int(params["seed"])
        backend = make_backend(
            "sim",
            task=str(params["task"]),
            config=SimConfig(limits=limits),
            seed=None if seed < 0 else seed,
        )
    else:
        backend = make_backend(
            "franka",
            controller=str(params["controller"]),
            state_topic=str(params["state_topic"]),
            recovery_action=str(params["recovery_action"]),
            on_state=lambda pose, stamp: (
                node[0].pub_pose.publish(rc.pose6_to_msg(pose, stamp)) if node else None
            ),
        )
        backend.wait_for_state(float(params["state_timeout"]))
    return backend, safety


def main(argv: list[str] | None = None) -> int:
    # the loop thread's Python (the simulator's controller) must not keep a stop's service
    # thread waiting for the GIL for the default 5 ms per switch
    sys.setswitchinterval(0.0005)
    rospy.init_node("arm_node", argv=argv if argv is not None else sys.argv)
    params = read_params()
    node: list[ArmNode] = []  # filled below; the franka state callback publishes through it
    backend, safety = build(params, node)
    arm = ArmNode(backend, safety, params)
    node.append(arm)
    rospy.loginfo(
        "arm_node: backend=%s control_hz=%s watchdog=%ss in namespace %s",
        backend.name,
        params["control_hz"],
        params["watchdog_timeout"],
        rospy.get_namespace(),
    )
    loop = threading.Thread(target=arm.run, name="arm_node_loop", daemon=True)
    loop.start()
    try:
        rospy.spin()
    finally:
        loop.join(timeout=2.0)
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
