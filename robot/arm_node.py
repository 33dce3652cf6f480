"""arm_node: the ROS face of the arm. `rosrun fosp_robot arm_node _backend:=sim|franka`.

An adapter, ROS in and ROS out, over one `robot.arm_controller.ArmController`, which holds the
behaviour (commands, watchdog, reset and the walk home, e-stop / hold / release, reflex recovery)
and is unit-tested without ROS:

- `action` (subscribed as AnyMsg) -> ArmController.on_action; a message of another type, or one
  that does not deserialize, -> ArmController.bad_message (logged and counted in `status`,
  instead of rospy dropping that publisher silently);
- the `estop`, `hold` and `release_estop` services call the controller in the service's own
  thread (a stop never waits for the loop); `reset` takes the layout seed parameter and waits
  for the loop thread to run it;
- the controller's outputs go to `commanded_pose`, `pose` / `image` / `image_full` / `labels`
  (sim), `events`, `status` and rospy's log.

Private parameters: the fields of `ArmNodeParams` (~backend, ~task, ~seed, ~control_hz, ...),
each defaulting to the value of the config it feeds (ControllerConfig, SafetyConfig, the franka
names in ros_contract); with the franka backend also those of
`robot.franka_config.FrankaSafetySettings` (~contact_torque, ~collision_force, ~load_mass,
~translational_stiffness, ...), applied on the arm before the first command. A bad value, or a
franka start-up that fails, stops the node with one line naming the parameter or the cause.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import rospy
from geometry_msgs.msg import PoseStamped, WrenchStamped
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray, String
from std_srvs.srv import Trigger, TriggerResponse

from fosp.config_flags import from_params, option
from fosp.errors import UserError
from robot import ros_contract as rc
from robot.arm_controller import Answer, ArmController, ControllerConfig, SimFrame
from robot.backends import ArmBackend, make_backend
from robot.franka_config import read_settings
from robot.safety import SafetyConfig, SafetyFilter
from robot.workspace import ControlLimits, StepLimits

_LOG = {"info": rospy.loginfo, "warn": rospy.logwarn, "error": rospy.logerr}


def _caller(request: Any) -> str:
    return str((getattr(request, "_connection_header", None) or {}).get("callerid", "?"))


def _trigger(answer: Answer) -> TriggerResponse:
    return TriggerResponse(success=answer.success, message=answer.message)


def _take_layout_seed() -> int | None:
    """The seed a client set for this reset (used once: the parameter is deleted)."""
    if not rospy.has_param(rc.RESET_LAYOUT_SEED):
        return None
    seed = int(rospy.get_param(rc.RESET_LAYOUT_SEED))
    rospy.delete_param(rc.RESET_LAYOUT_SEED)
    return seed


class ArmNode:
    """Topics and services around one ArmController; also its `ArmOutputs`."""

    def __init__(self, backend: ArmBackend, safety: SafetyFilter, params: ArmNodeParams):
        self.params = params
        # latched: a subscriber that connects just after a frame still gets it (the sim publishes
        # a frame only when it moves or resets, so a missed reset frame was never followed)
        self.pub_pose = rospy.Publisher(rc.POSE, PoseStamped, queue_size=10, latch=True)
        self.pub_commanded = rospy.Publisher(rc.COMMANDED_POSE, PoseStamped, queue_size=10)
        self.pub_events = rospy.Publisher(rc.EVENTS, String, queue_size=50)
        self.pub_status = rospy.Publisher(rc.STATUS, String, queue_size=1, latch=True)
        self.pub_wrench = rospy.Publisher(rc.WRENCH, WrenchStamped, queue_size=10)
        if backend.publishes_images:
            self.pub_image = rospy.Publisher(rc.IMAGE, Image, queue_size=2, latch=True)
            self.pub_full = rospy.Publisher(rc.IMAGE_FULL, Image, queue_size=1)
            self.pub_labels = rospy.Publisher(rc.LABELS, String, queue_size=10)
        config = ControllerConfig(
            control_hz=params.control_hz,
            tick=params.tick,
            home_timeout=params.home_timeout,
            auto_recover=params.auto_recover,
            full_image_size=params.full_image_size,
            release_service=rospy.resolve_name(rc.RELEASE),
            reset_service=rospy.resolve_name(rc.RESET),
            action_topic=rospy.resolve_name(rc.ACTION),
        )
        self.controller = ArmController(
            backend,
            safety,
            self,
            config,
            clock=safety.clock,
            stamp=rospy.Time.now,
            is_shutdown=rospy.is_shutdown,
        )
        # AnyMsg: publishers of any type connect, so a wrong one is seen and reported (with the
        # action type rospy would refuse the connection and say nothing on /rosout)
        rospy.Subscriber(rc.ACTION, rospy.AnyMsg, self._on_action, queue_size=10)
        rospy.Service(rc.RESET, Trigger, self._srv_reset)
        rospy.Service(rc.ESTOP, Trigger, lambda r: _trigger(self.controller.estop(_caller(r))))
        rospy.Service(rc.HOLD, Trigger, lambda r: _trigger(self.controller.hold(_caller(r))))
        rospy.Service(rc.RELEASE, Trigger, lambda r: _trigger(self.controller.release(_caller(r))))

    # ------------------------------------------------------------------ ROS in
    def _on_action(self, raw: rospy.AnyMsg) -> None:
        header = getattr(raw, "_connection_header", None) or {}
        caller = header.get("callerid", "?")
        kind = header.get("type", "?")
        if kind != Float32MultiArray._type or header.get("md5sum") != Float32MultiArray._md5sum:
            self.controller.bad_message(
                "wrong_type", caller, f"type {kind}, not {Float32MultiArray._type}"
            )
            return
        try:
            data = list(Float32MultiArray().deserialize(raw._buff).data)
        except Exception as exc:  # genpy.DeserializationError, struct.error, ...
            self.controller.bad_message("malformed", caller, f"does not deserialize ({exc})")
            return
        self.controller.on_action(data)

    def _srv_reset(self, request: Any) -> TriggerResponse:
        return _trigger(self.controller.request_reset(_take_layout_seed))

    def run(self) -> None:
        try:
            self.controller.run()
        except rospy.ROSException:
            if not rospy.is_shutdown():
                raise
            # shutting down: a last publish raced rospy closing its topics; nothing is lost

    # ------------------------------------------------------------------ ROS out (ArmOutputs)
    def commanded(self, pose: np.ndarray, stamp: rospy.Time) -> None:
        self.pub_commanded.publish(rc.pose6_to_msg(pose, stamp))

    def sim_frame(self, frame: SimFrame) -> None:
        self.pub_pose.publish(rc.pose6_to_msg(frame.pose, frame.stamp))
        self.pub_image.publish(rc.image_to_msg(frame.image, frame.stamp))
        if frame.render_full is not None and self.pub_full.get_num_connections() > 0:
            self.pub_full.publish(rc.image_to_msg(frame.render_full(), frame.stamp))
        if frame.labels is not None:
            self.pub_labels.publish(rc.json_msg({"stamp": frame.stamp.to_sec(), **frame.labels}))

    def franka_state(self, pose: np.ndarray, stamp: rospy.Time, wrench: np.ndarray) -> None:
        """Every FrankaState: the measured pose and the external wrench estimate."""
        self.pub_pose.publish(rc.pose6_to_msg(pose, stamp))
        self.pub_wrench.publish(rc.wrench_to_msg(wrench, stamp))

    def event(self, kind: str, detail: str, data: dict[str, Any]) -> None:
        payload = {"stamp": rospy.Time.now().to_sec(), "event": kind, "detail": detail}
        payload.update(data)
        self.pub_events.publish(rc.json_msg(payload))

    def status(self, status: dict[str, Any]) -> None:
        self.pub_status.publish(rc.json_msg({"stamp": rospy.Time.now().to_sec(), **status}))

    def log(self, level: str, message: str) -> None:
        _LOG[level](message)


@dataclass(frozen=True)
class ArmNodeParams:
    """arm_node's private parameters; defaults are those of the configs they feed."""

    backend: str = option("sim", choices=("sim", "franka"))
    task: str = "train"  # sim: the task whose layouts the simulated world draws
    seed: int = -1  # sim: the layouts' seed (-1: a fresh one)
    control_hz: float = option(ControllerConfig.control_hz, check="positive")
    watchdog_timeout: float = option(SafetyConfig.watchdog_timeout, check="positive")
    tick: float = option(ControllerConfig.tick, check="positive")  # s between idle loop passes
    home_timeout: float = option(ControllerConfig.home_timeout, check="positive")  # s per walk home
    auto_recover: bool = ControllerConfig.auto_recover  # recover from a reflex or error at once
    full_image_size: int = option(ControllerConfig.full_image_size, check="non_negative")
    controller: str = rc.FRANKA_CONTROLLER  # franka: the controller taking equilibrium poses
    state_topic: str = rc.FRANKA_STATE_TOPIC  # franka: franka_msgs/FrankaState
    recovery_action: str = rc.FRANKA_RECOVERY_ACTION  # franka: the error-recovery action
    state_timeout: float = option(10.0, check="positive")  # franka: s to wait for a first state
    service_ns: str = "/franka_control"  # franka: where franka_control's services are
    service_timeout: float = option(5.0, check="positive")  # franka: s per configuration service
    configured_topic: str = "robot_configured"  # franka: latched Bool the controller spawner awaits
    controller_timeout: float = option(30.0, check="positive")  # franka: s for the controller


def read_params() -> ArmNodeParams:
    """The node's private parameters (unset or "" keeps the default); UserError names a bad one."""
    return ArmNodeParams(**from_params(ArmNodeParams, lambda k: rospy.get_param(f"~{k}", None)))


def build(params: ArmNodeParams, node: list) -> tuple[ArmBackend, SafetyFilter]:
    limits = ControlLimits(step=replace(StepLimits(), control_hz=params.control_hz))
    safety = SafetyFilter(
        SafetyConfig(
            limits=limits,
            watchdog_timeout=params.watchdog_timeout,
            # franka_ros follows every message at once: the motion is limited per control
            # period; in sim one message is one period of physics (docs/ros.md)
            rate_limit=params.backend != "sim",
        )
    )
    if params.backend == "sim":
        from robot.sim.world import SimConfig

        seed = params.seed
        backend = make_backend(
            "sim",
            task=params.task,
            config=SimConfig(limits=limits),
            seed=None if seed < 0 else seed,
        )
    else:
        backend = make_backend(
            "franka",
            controller=params.controller,
            state_topic=params.state_topic,
            recovery_action=params.recovery_action,
            on_state=lambda pose, stamp, wrench: (
                node[0].franka_state(pose, stamp, wrench) if node else None
            ),
        )
        backend.wait_for_state(params.state_timeout)
        settings = read_settings(lambda k: rospy.get_param(f"~{k}", None))
        applied = backend.configure(
            settings,
            params.configured_topic,
            service_ns=params.service_ns,
            service_timeout=params.service_timeout,
            controller_timeout=params.controller_timeout,
        )
        rospy.loginfo("arm_node: franka configured: %s", applied)
    return backend, safety


def main(argv: list[str] | None = None) -> int:
    # the loop thread's Python (the simulator's controller) must not keep a stop's service
    # thread waiting for the GIL for the default 5 ms per switch
    sys.setswitchinterval(0.0005)
    rospy.init_node("arm_node", argv=argv if argv is not None else sys.argv)
    try:
        params = read_params()
    except UserError as err:
        rospy.logfatal("arm_node: %s", err)
        return 2
    node: list[ArmNode] = []  # filled below; the franka state callback publishes through it
    try:
        backend, safety = build(params, node)
    except UserError as err:  # no state, a configuration service failed, no controller
        rospy.logfatal("arm_node: %s", err)
        return 1
    arm = ArmNode(backend, safety, params)
    node.append(arm)
    rospy.loginfo(
        "arm_node: backend=%s control_hz=%s watchdog=%ss in namespace %s",
        backend.name,
        params.control_hz,
        params.watchdog_timeout,
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
