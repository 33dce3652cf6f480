"""arm_node: the ROS face of the arm. `rosrun fosp_robot arm_node _backend:=sim|franka`.

Thin by design: ROS callbacks only queue messages; one loop thread owns the safety filter and
the backend (MuJoCo's GL context and the filter state never cross threads):

- an `action` message -> SafetyFilter.command -> backend.send (rejected messages are logged and
  dropped; nothing is sent). In sim one accepted command executes one control period of
  physics, then pose, image and labels are published;
- the watchdog (checked every `~tick` s) holds the measured pose when commands stop; while the
  arm is held or e-stopped the simulated world keeps running at the control rate;
- services `reset`, `estop`, `hold` (std_srvs/Trigger); reflex/user stop from franka_ros ->
  hold, `events` message (the episode is marked), an error log for the operator, recovery.

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


class ArmNode:
    def __init__(self, backend: ArmBackend, safety: SafetyFilter, params: dict[str, Any]):
        self.backend = backend
        self.filter = safety
        self.params = params
        self.period = 1.0 / float(params["control_hz"])
        self.tick = float(params["tick"])
        self.events: queue.Queue = queue.Queue()
        self.last_step_time = 0.0
        self.step_count = 0
        self.info: dict[str, Any] = {}
        self.pub_pose = rospy.Publisher(rc.POSE, PoseStamped, queue_size=10)
        self.pub_commanded = rospy.Publisher(rc.COMMANDED_POSE, PoseStamped, queue_size=10)
        self.pub_events = rospy.Publisher(rc.EVENTS, String, queue_size=50)
        self.pub_status = rospy.Publisher(rc.STATUS, String, queue_size=1, latch=True)
        if backend.publishes_images:
            self.pub_image = rospy.Publisher(rc.IMAGE, Image, queue_size=2)
            self.pub_full = rospy.Publisher(rc.IMAGE_FULL, Image, queue_size=1)
            self.pub_labels = rospy.Publisher(rc.LABELS, String, queue_size=10)
        rospy.Subscriber(rc.ACTION, Float32MultiArray, self._on_action, queue_size=10)
        rospy.Service(rc.RESET, Trigger, lambda _req: self._call("reset"))
        rospy.Service(rc.ESTOP, Trigger, lambda _req: self._call("estop"))
        rospy.Service(rc.HOLD, Trigger, lambda _req: self._call("hold"))

    # ------------------------------------------------------------------ callbacks (ROS threads)
    def _on_action(self, msg: Float32MultiArray) -> None:
        self.events.put(("action", list(msg.data), None))

    def _call(self, what: str) -> TriggerResponse:
        reply: queue.Queue = queue.Queue(maxsize=1)
        self.events.put((what, None, reply))
        try:
            ok, message = reply.get(timeout=float(self.params["home_timeout"]) + 10.0)
        except queue.Empty:
            ok, message = False, f"{what}: arm_node loop did not answer"
        return TriggerResponse(success=ok, message=message)

    # ------------------------------------------------------------------ loop (one thread)
    def run(self) -> None:
        self._publish_status()
        last_status = time.monotonic()
        while not rospy.is_shutdown():
            try:
                kind, data, reply = self.events.get(timeout=self.tick)
            except queue.Empty:
                kind = None
            if kind == "action":
                # newest command wins when several queued up (the loop was busy)
                while True:
                    try:
                        nxt = self.events.get_nowait()
                    except queue.Empty:
                        break
                    if nxt[0] != "action":
                        self.events.put(nxt)
                        break
                    data = nxt[1]
                self._handle_action(data)
            elif kind is not None:
                try:
                    result = getattr(self, f"_do_{kind}")()
                except Exception as exc:  # report, keep the node alive
                    rospy.logerr("arm_node: %s failed: %s", kind, exc)
                    result = (False, f"{kind} failed: {exc}")
                reply.put(result)
            self._watchdog()
            self._backend_events()
            if time.monotonic() - last_status > 1.0:
                self._publish_status()
                last_status = time.monotonic()

    def _measured(self) -> np.ndarray:
        pose = self.backend.measured_pose()
        if pose is None:
            raise RuntimeError("no measured pose from the backend yet")
        return pose

    def _handle_action(self, data: list[float]) -> None:
        measured = self.backend.measured_pose()
        if measured is None:
            rospy.logwarn_throttle(2.0, "arm_node: command dropped, no measured pose yet")
            return
        decision = self.filter.command(data, measured)
        if decision.pose is None:
            if decision.kind == "rejected":
                rospy.logwarn_throttle(1.0, f"arm_node: rejected command: {decision.reason}")
            else:
                rospy.logwarn_throttle(2.0, f"arm_node: command dropped: {decision.reason}")
            return
        self._send(decision.pose, "command")

    def _send(self, pose: np.ndarray, kind: str) -> None:
        result = self.backend.send(pose)
        now = rospy.Time.now()
        self.pub_commanded.publish(rc.pose6_to_msg(pose, now))
        if self.backend.steps_physics:
            self.last_step_time = time.monotonic()
            self.step_count += 1
            self._publish_sim(now, result, kind)

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
        measured = self.backend.measured_pose()
        if measured is None:
            return
        decision = self.filter.tick(measured)
        if decision is not None:
            self._event("watchdog_hold", decision.reason)
            self._send(decision.pose, "hold")
        elif (
            self.backend.steps_physics
            and (self.filter.held or self.filter.estopped)
            and time.monotonic() - self.last_step_time >= self.period
        ):
            # the simulated world does not stop while the arm is held
            self._send(self.filter.commanded, "hold")

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
        measured = self.backend.measured_pose()
        if event.kind == "user_stopped":
            # the operator pressed the external stop: latch until they reset
            if measured is not None:
                self.filter.estop(measured)
            self._publish_status()
            return
        if measured is not None:
            self.filter.hold(measured, reason=event.kind)
        if event.kind in ("reflex", "error") and self.params["auto_recover"]:
            ok = self.backend.recover()
            measured = self.backend.measured_pose()
            if ok and measured is not None:
                # re-sync: the next command starts from where the arm is now
                self.filter.reset(measured)
                self.backend.send(self.filter.commanded)
                self._event("recovered", "error recovery succeeded")
                rospy.loginfo("arm_node: recovered from %s", event.kind)
            else:
                if measured is not None:
                    self.filter.estop(measured)
                self._event("recovery_failed", "error recovery failed: e-stop latched")
                rospy.logerr(
                    "arm_node: error recovery failed. Check the robot (Desk, external stop, "
                    "collisions), then call %s.",
                    rospy.resolve_name(rc.RESET),
                )
        self._publish_status()

    # ------------------------------------------------------------------ services (loop thread)
    def _do_reset(self) -> tuple[bool, str]:
        seed = None
        if rospy.has_param(rc.RESET_LAYOUT_SEED):
            seed = int(rospy.get_param(rc.RESET_LAYOUT_SEED))
            rospy.delete_param(rc.RESET_LAYOUT_SEED)
        if self.backend.steps_physics:
            info = self.backend.reset(seed)
            home = self.backend.measured_pose()
            self.filter.reset(self.filter.limits.workspace.home_pose())
            self.step_count = 0
            self._publish_sim(rospy.Time.now(), None, "reset")
        else:
            mode = getattr(self.backend, "robot_mode", None)
            if mode == 5:  # user stopped
                return False, "the external stop is pressed: release it, then reset again"
            if mode == 4 and not self.backend.recover():  # reflex
                return False, "error recovery failed: check the robot in Desk, then reset again"
            info = self.backend.reset(seed)
            home = self._drive_home()
        info["pose"] = np.asarray(home).tolist()
        self.info = info
        self._event("reset", "", **info)
        self._publish_status()
        return True, json.dumps(info)

    def _drive_home(self) -> np.ndarray:
        """Real arm: walk the command to the home pose through the filter, one step a period."""
        target = self.filter.limits.workspace.home_pose()
        measured = self._measured()
        self.filter.reset(measured)
        deadline = time.monotonic() + float(self.params["home_timeout"])
        reached = False
        while not rospy.is_shutdown():
            if not reached:
                pose, reached = self.filter.step_towards(target, self._measured())
                self._send(pose, "home")
            measured = self._measured()
            if reached and np.linalg.norm(measured[:3] - target[:3]) < 0.005:
                return measured
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the arm did not reach the home pose within {self.params['home_timeout']} s"
                    f" (at {np.round(measured[:3], 3).tolist()})"
                )
            time.sleep(self.period)
        return measured

    def _do_estop(self) -> tuple[bool, str]:
        decision = self.filter.estop(self._measured())
        self._send(decision.pose, "hold")
        self._event("estop", "e-stop latched until reset")
        rospy.logwarn("arm_node: E-STOP latched; call reset to resume")
        self._publish_status()
        return True, "e-stop latched until reset"

    def _do_hold(self) -> tuple[bool, str]:
        decision = self.filter.hold(self._measured(), reason="hold service")
        self._send(decision.pose, "hold")
        self._event("hold", "hold requested")
        self._publish_status()
        return True, "holding the measured pose"

    # ------------------------------------------------------------------ reporting
    def _event(self, kind: str, detail: str = "", **data: Any) -> None:
        payload = {"stamp": rospy.Time.now().to_sec(), "event": kind, "detail": detail}
        payload.update(data)
        self.pub_events.publish(rc.json_msg(payload))

    def _publish_status(self) -> None:
        f = self.filter
        self.pub_status.publish(
            rc.json_msg(
                {
                    "stamp": rospy.Time.now().to_sec(),
                    "backend": self.backend.name,
                    "estopped": f.estopped,
                    "held": f.held,
                    "counts": f.counts,
                    "rejected": f.rejected,
                    "control_hz": 1.0 / self.period,
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
        SafetyConfig(limits=limits, watchdog_timeout=float(params["watchdog_timeout"]))
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
