"""The franka_ros backend: talks to franka_ros as a lab runs it.

- commands: geometry_msgs/PoseStamped on `/<controller>/equilibrium_pose` (franka_ros's
  cartesian_impedance_example_controller by default; the controller name is a parameter);
- state: franka_msgs/FrankaState on `/franka_state_controller/franka_states`; `O_T_EE` is the
  TCP pose as a column-major 4x4; `robot_mode` 4 = reflex, 5 = user stopped;
- recovery: the `/franka_control/error_recovery` action (franka_msgs/ErrorRecoveryAction);
- start-up: `configure` sets the arm's collision behaviour, load and impedance stiffness through
  franka_control (robot/franka_config.py), then publishes `robot_configured` (latched
  std_msgs/Bool) for the spawner that starts the controller, and waits for the controller.

franka_msgs comes from franka_ros on a machine that has it, else from the classes bootstrap
generates from the definitions shipped in robot/franka_msgs (robot/franka_msgs_gen.py).

This module and robot/franka_config.py are the only ones that import franka_msgs (when a
FrankaBackend is made, so that the O_T_EE conversions here are usable without it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import actionlib
import numpy as np
import rospy
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Bool

from robot.backends.base import BackendEvent, RobotMode
from robot.franka_config import FrankaSafetySettings, RobotSetupError, apply_settings
from robot.ros_contract import (
    BASE_FRAME,
    FRANKA_CONTROLLER,
    FRANKA_RECOVERY_ACTION,
    FRANKA_STATE_TOPIC,
    matrix_to_pose6,
    pose6_to_matrix,
    pose6_to_msg,
)


def o_t_ee_to_pose6(o_t_ee: Any) -> np.ndarray:
    """franka_msgs/FrankaState.O_T_EE (16 floats, column-major) -> 6-D pose."""
    return matrix_to_pose6(np.asarray(o_t_ee, dtype=np.float64).reshape(4, 4, order="F"))


def pose6_to_o_t_ee(pose: np.ndarray) -> list[float]:
    """6-D pose -> 16 floats, column-major (what franka_ros puts in O_T_EE)."""
    return pose6_to_matrix(pose).reshape(-1, order="F").tolist()


def active_errors(errors: Any) -> list[str]:
    """Names of the true flags of a franka_msgs/Errors message."""
    return [slot for slot in getattr(errors, "__slots__", []) if getattr(errors, slot) is True]


class FrankaBackend:
    name = "franka"
    steps_physics = False
    publishes_images = False  # camera_node does

    def __init__(
        self,
        controller: str = FRANKA_CONTROLLER,
        state_topic: str = FRANKA_STATE_TOPIC,
        recovery_action: str = FRANKA_RECOVERY_ACTION,
        recovery_timeout: float = 10.0,
        on_state: Callable[[np.ndarray, Any, np.ndarray], None] | None = None,
    ):
        from franka_msgs.msg import ErrorRecoveryAction, ErrorRecoveryGoal, FrankaState

        self._goal_type = ErrorRecoveryGoal
        self.controller = controller.strip("/")
        self.command_topic = f"/{self.controller}/equilibrium_pose"
        self.recovery_timeout = recovery_timeout
        self.on_state = on_state
        self._lock = threading.Lock()
        self._pose: np.ndarray | None = None
        self._mode: int | None = None
        self._errors: list[str] = []
        self._events: list[BackendEvent] = []
        self.pub = rospy.Publisher(self.command_topic, PoseStamped, queue_size=1)
        self.sub = rospy.Subscriber(state_topic, FrankaState, self._on_state, queue_size=1)
        self.recovery_client = actionlib.SimpleActionClient(recovery_action, ErrorRecoveryAction)
        self.recovery_action = recovery_action
        self.state_topic = state_topic
        self.safety_settings: dict[str, Any] | None = None  # what configure() applied
        self._configured_pub: rospy.Publisher | None = None

    # ------------------------------------------------------------------ start-up
    def configure(
        self,
        settings: FrankaSafetySettings,
        configured_topic: str,
        service_ns: str = "/franka_control",
        service_timeout: float = 5.0,
        controller_timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Apply the robot-side safety settings, then let the controller start and wait for it
        (nothing is commanded before this returns). RobotSetupError names what failed."""
        self.safety_settings = apply_settings(
            settings, self.controller, service_ns=service_ns, timeout=service_timeout
        )
        self._configured_pub = rospy.Publisher(configured_topic, Bool, queue_size=1, latch=True)
        self._configured_pub.publish(Bool(data=True))
        deadline = rospy.get_time() + controller_timeout
        while self.pub.get_num_connections() == 0:
            if rospy.is_shutdown() or rospy.get_time() > deadline:
                raise RobotSetupError(
                    f"franka: no controller subscribed to {self.command_topic} within "
                    f"{controller_timeout:.0f} s after {rospy.resolve_name(configured_topic)}: is "
                    "the spawner of launch/franka_rt.launch running and waiting for that topic?"
                )
            rospy.sleep(0.02)
        return self.safety_settings

    # ------------------------------------------------------------------ state
    def _on_state(self, msg: Any) -> None:  # franka_msgs/FrankaState
        pose = o_t_ee_to_pose6(msg.O_T_EE)
        errors = active_errors(msg.current_errors)
        stamp = msg.header.stamp if msg.header.stamp.to_sec() > 0 else rospy.Time.now()
        with self._lock:
            self._pose = pose
            previous_mode, self._mode = self._mode, int(msg.robot_mode)
            if self._mode != previous_mode and self._mode in (
                RobotMode.REFLEX,
                RobotMode.USER_STOPPED,
            ):
                mode = RobotMode(self._mode)
                self._events.append(
                    BackendEvent(
                        mode.name.lower(),  # "reflex" | "user_stopped"
                        f"robot_mode {int(mode)} ({mode.name.lower()})",
                        {"errors": errors or active_errors(msg.last_motion_errors)},
                    )
                )
            elif errors and not self._errors and self._mode != RobotMode.REFLEX:
                self._events.append(BackendEvent("error", ", ".join(errors), {"errors": errors}))
            self._errors = errors
        if self.on_state is not None:  # pose, stamp, external wrench [F (N), torque (Nm)]
            self.on_state(pose, stamp, np.asarray(msg.O_F_ext_hat_K, dtype=np.float64))

    def wait_for_state(self, timeout: float) -> np.ndarray:
        deadline = rospy.get_time() + timeout
        while rospy.get_time() < deadline and not rospy.is_shutdown():
            pose = self.measured_pose()
            if pose is not None:
                return pose
            rospy.sleep(0.01)
        from franka_msgs.msg import FrankaState

        raise RobotSetupError(
            f"franka: no franka_msgs/FrankaState on {self.state_topic} within {timeout:.1f} s: is "
            "franka_control running (robot_ip, FCI enabled, brakes open) with "
            "franka_state_controller, and does `rosmsg md5 franka_msgs/FrankaState` on the "
            f"real-time machine print {FrankaState._md5sum} (franka_ros 0.9.0-0.10.2)?"
        )

    def measured_pose(self) -> np.ndarray | None:
        with self._lock:
            return None if self._pose is None else self._pose.copy()

    @property
    def robot_mode(self) -> int | None:
        with self._lock:
            return self._mode

    # ------------------------------------------------------------------ commands
    def send(self, pose: np.ndarray) -> None:
        """Forward one equilibrium pose now (arm_node's filter rate-limits the motion per control
        period: franka_ros's controller follows every message it gets)."""
        self.pub.publish(pose6_to_msg(pose, rospy.Time.now(), frame_id=BASE_FRAME))

    def hold(self, pose: np.ndarray | None) -> None:
        if pose is not None:
            self.send(pose)

    def reset(self, layout_seed: int | None = None) -> dict[str, Any]:
        return {"layout_seed": None}  # the real scene is arranged by the operator

    def image(self) -> None:
        return None  # camera_node publishes the images

    def full_image(self, width: int, height: int) -> None:
        return None

    def labels_dict(self, labels: Any) -> dict[str, Any]:
        return {}  # the operator labels the real arm's episodes

    def poll_events(self) -> list[BackendEvent]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def recover(self) -> bool:
        """franka_control's error recovery action; True when the robot left reflex mode."""
        if not self.recovery_client.wait_for_server(rospy.Duration(2.0)):
            rospy.logerr("franka: no error recovery action server at %s", self.recovery_action)
            return False
        self.recovery_client.send_goal(self._goal_type())
        if not self.recovery_client.wait_for_result(rospy.Duration(self.recovery_timeout)):
            self.recovery_client.cancel_goal()
            return False
        state = self.recovery_client.get_state()
        return state == actionlib.GoalStatus.SUCCEEDED

    def close(self) -> None:
        self.sub.unregister()
        self.pub.unregister()
        if self._configured_pub is not None:
            self._configured_pub.unregister()
