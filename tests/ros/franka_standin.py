"""A stand-in for the real-time PC's side of franka_ros (franka_control, franka_state_controller,
the Cartesian impedance controller and franka_rt.launch's spawner), speaking franka_ros's topic
names, services and message types. Used in-process by test_franka_backend.py and, as
`python -m tests.ros.franka_standin`, as the "real-time machine" of test_two_machines.py (it then
prints what it was asked, one line each, for the test to read)."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import rospy
from geometry_msgs.msg import PoseStamped

from robot import ros_contract as rc

CONTROLLER = "cartesian_impedance_example_controller"


class FrankaStandIn:
    """franka_control + franka_state_controller + the impedance controller, as topics: state at
    100 Hz, the TCP follows the equilibrium pose, reflexes on demand, error recovery action, the
    collision-behaviour and load services; like franka_rt.launch's spawner, the controller
    (the equilibrium_pose subscriber) starts only once robot_configured is true."""

    def __init__(
        self,
        start_pose: np.ndarray,
        configured_topic: str,
        log: Callable[[str], None] | None = None,
    ):
        import actionlib
        from franka_msgs.msg import ErrorRecoveryAction, FrankaState
        from franka_msgs.srv import SetForceTorqueCollisionBehavior, SetLoad
        from std_msgs.msg import Bool

        from robot.backends.franka import pose6_to_o_t_ee

        self.FrankaState = FrankaState
        self.to_o_t_ee = pose6_to_o_t_ee
        self.lock = threading.Lock()
        self.pose = start_pose.copy()
        self.target = start_pose.copy()
        self.mode = 2  # move
        self.follow = True  # False: the arm does not follow its equilibrium pose (blocked)
        self.force = np.zeros(6)  # the external wrench estimate it reports (O_F_ext_hat_K)
        self.reflex_errors: list[str] = []
        self.commands: list[tuple[float, PoseStamped]] = []
        self.recovery_goals = 0
        self.published: list[np.ndarray] = []  # every pose sent in a FrankaState
        self.setup_calls: list[tuple[float, str, object]] = []  # (time, service, request)
        self.controller_started: float | None = None
        self.first_command: float | None = None
        self.stiffness: dict[str, float] = {}  # the compliance parameters when it started
        self.pub = rospy.Publisher(
            "/franka_state_controller/franka_states", FrankaState, queue_size=1
        )
        self.sub: rospy.Subscriber | None = None
        self.services = [
            rospy.Service(
                "/franka_control/set_force_torque_collision_behavior",
                SetForceTorqueCollisionBehavior,
                lambda r: self._setup("set_force_torque_collision_behavior", r),
            ),
            rospy.Service(
                "/franka_control/set_load", SetLoad, lambda r: self._setup("set_load", r)
            ),
        ]
        self.log = log or (lambda line: None)
        self.configured = rospy.Subscriber(configured_topic, Bool, self._on_configured)
        self.server = actionlib.SimpleActionServer(
            "/franka_control/error_recovery", ErrorRecoveryAction, self._recover, auto_start=False
        )
        self.server.start()
        self.timer = rospy.Timer(rospy.Duration(0.01), self._tick)

    def _setup(self, name: str, request):
        with self.lock:
            self.setup_calls.append((time.monotonic(), name, request))
        self.log(f"SETUP {name}")
        return {"success": True, "error": ""}

    def _on_configured(self, msg) -> None:
        with self.lock:
            if not msg.data or self.sub is not None:
                return
            self.controller_started = time.monotonic()
            ns = f"/{CONTROLLER}/dynamic_reconfigure_compliance_param_node"
            self.stiffness = {
                k: rospy.get_param(f"{ns}/{k}", None)
                for k in ("translational_stiffness", "rotational_stiffness", "nullspace_stiffness")
            }
            self.sub = rospy.Subscriber(
                f"/{CONTROLLER}/equilibrium_pose", PoseStamped, self._on_command, queue_size=100
            )
        self.log("CONTROLLER STARTED")

    def _on_command(self, msg: PoseStamped) -> None:
        with self.lock:
            self.first_command = self.first_command or time.monotonic()
            self.commands.append((time.monotonic(), msg))
            if self.mode == 2:
                self.target = rc.msg_to_pose6(msg)
        x, y, z = rc.msg_to_pose6(msg)[:3]
        self.log(f"COMMAND {x:.4f} {y:.4f} {z:.4f}")

    def _tick(self, _event) -> None:
        with self.lock:
            if self.mode == 2 and self.follow:
                self.pose = self.pose + 0.3 * (self.target - self.pose)
            msg = self.FrankaState()
            msg.header.stamp = rospy.Time.now()
            msg.O_T_EE = self.to_o_t_ee(self.pose)
            msg.robot_mode = self.mode
            msg.O_F_ext_hat_K = self.force.tolist()
            self.published.append(self.pose.copy())
            for name in self.reflex_errors:
                setattr(msg.current_errors, name, True)
                setattr(msg.last_motion_errors, name, True)
        self.pub.publish(msg)

    def _recover(self, _goal) -> None:
        with self.lock:
            self.recovery_goals += 1
        time.sleep(0.2)
        with self.lock:
            self.mode = 2
            self.reflex_errors = []
            self.target = self.pose.copy()
        self.server.set_succeeded()

    def reflex(self) -> None:
        with self.lock:
            self.mode = 4
            self.reflex_errors = ["cartesian_reflex"]

    def user_stop(self, stopped: bool) -> None:
        with self.lock:
            self.mode = 5 if stopped else 2

    def close(self) -> None:
        self.timer.shutdown()
        if self.sub is not None:
            self.sub.unregister()
        self.configured.unregister()
        for service in self.services:
            service.shutdown()
        self.pub.unregister()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configured-topic", default="/fosp/robot_configured")
    args = parser.parse_args(argv)
    rospy.init_node("franka_control", disable_signals=False)
    start = np.array([0.45, 0.02, 0.10, 0.0, 0.0, 0.0])
    stand_in = FrankaStandIn(start, args.configured_topic, log=lambda line: print(line, flush=True))
    print("REAL-TIME SIDE UP", flush=True)
    rospy.spin()
    stand_in.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
