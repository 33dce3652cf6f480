"""The Panda's own safety configuration, set through franka_control before the first command.

The safety filter (robot/safety.py) bounds what this stack asks for; these settings bound what
the arm does when the world pushes back:

- collision behaviour (`/franka_control/set_force_torque_collision_behavior`, libfranka's
  setCollisionBehavior, nominal thresholds): above the *contact* (lower) thresholds the arm
  flags a contact in FrankaState (`cartesian_contact`, `joint_contact`); above the *collision*
  (upper) thresholds it stops with a reflex, which arm_node reports and recovers from.
- end-effector load (`/franka_control/set_load`): a payload beyond the hand configured in Desk;
  a wrong one makes the model's torques disagree with the measured ones, which trips
  `power_limit_violation` / `cartesian_reflex` in free motion.
- impedance stiffness of the Cartesian impedance controller, as the parameters its
  dynamic_reconfigure server reads when the controller starts.

franka_control only answers these services while no motion controller runs (the control loop
holds the robot's lock), so the order is: franka_control up -> arm_node applies the settings ->
arm_node publishes `robot_configured` -> the controller spawner on the real-time machine, which
waits for it (launch/franka_rt.launch), starts the controller. Values and why: docs/ros.md.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from fosp.errors import UserError

# the compliance parameters of franka_example_controllers' cartesian_impedance_example_controller
# (cfg/compliance_param.cfg): name -> allowed range
STIFFNESS_RANGES = {
    "translational_stiffness": (0.0, 400.0),  # N/m
    "rotational_stiffness": (0.0, 30.0),  # Nm/rad
    "nullspace_stiffness": (0.0, 100.0),  # Nm/rad
}


class RobotSetupError(UserError):
    """The arm could not be configured; arm_node stops with this one line."""


@dataclass(frozen=True)
class FrankaSafetySettings:
    """What arm_node sets on the Panda at start-up (docs/ros.md, "Robot-side safety")."""

    # joint torques [Nm] above which a contact is flagged (light boxes touch at ~1-3 Nm)
    contact_torque: tuple[float, ...] = (10.0, 10.0, 9.0, 9.0, 8.0, 7.0, 6.0)
    # joint torques [Nm] above which the arm stops with a reflex (franka_control's defaults)
    collision_torque: tuple[float, ...] = (20.0, 20.0, 18.0, 18.0, 16.0, 14.0, 12.0)
    # Cartesian wrench [N, N, N, Nm, Nm, Nm] above which a contact is flagged (a light box ~1-2 N)
    contact_force: tuple[float, ...] = (5.0, 5.0, 5.0, 5.0, 5.0, 5.0)
    # Cartesian wrench [N, N, N, Nm, Nm, Nm] for a reflex (franka_control's defaults)
    collision_force: tuple[float, ...] = (20.0, 20.0, 20.0, 25.0, 25.0, 25.0)
    load_mass: float = 0.0  # kg carried beyond the hand configured in Desk (0: nothing)
    # m, the load's centre of mass in the flange frame
    load_com: tuple[float, ...] = (0.0, 0.0, 0.0)
    # kg m^2, column-major 3x3 about the centre of mass
    load_inertia: tuple[float, ...] = (0.0,) * 9
    translational_stiffness: float = 200.0  # N/m: 6 N at the filter's 3 cm equilibrium lead
    rotational_stiffness: float = 10.0  # Nm/rad
    nullspace_stiffness: float = 0.5  # Nm/rad toward the start-up joint configuration

    def check(self) -> FrankaSafetySettings:
        lengths = {"contact_torque": 7, "collision_torque": 7, "contact_force": 6,
                   "collision_force": 6, "load_com": 3, "load_inertia": 9}  # fmt: skip
        for name, n in lengths.items():
            value = getattr(self, name)
            if len(value) != n or not all(math.isfinite(v) for v in value):
                raise RobotSetupError(
                    f"franka setting {name}: expected {n} finite numbers, got {list(value)}"
                )
        for lower, upper in (
            ("contact_torque", "collision_torque"),
            ("contact_force", "collision_force"),
        ):
            for i, (lo, hi) in enumerate(
                zip(getattr(self, lower), getattr(self, upper), strict=True)
            ):
                if not 0 < lo <= hi:
                    raise RobotSetupError(
                        f"franka setting {lower}[{i}] = {lo}: must be > 0 and at most "
                        f"{upper}[{i}] = {hi}"
                    )
        if not (math.isfinite(self.load_mass) and 0 <= self.load_mass <= 3.0):
            raise RobotSetupError(
                f"franka setting load_mass = {self.load_mass}: 0 to 3 kg (the Panda's payload)"
            )
        for name, (lo, hi) in STIFFNESS_RANGES.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and lo <= value <= hi):
                raise RobotSetupError(f"franka setting {name} = {value}: must be in [{lo}, {hi}]")
        return self

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def read_settings(get: Callable[[str], Any]) -> FrankaSafetySettings:
    """Settings from a key-value source (arm_node's private parameters); unset keeps the default.
    Lists may come as YAML lists or as their text ("[1, 2, 3]")."""
    import yaml

    values: dict[str, Any] = {}
    for f in fields(FrankaSafetySettings):
        raw = get(f.name)
        if raw is None or raw == "":
            continue
        if isinstance(raw, str):
            try:
                raw = yaml.safe_load(raw)
            except yaml.YAMLError as err:
                raise RobotSetupError(
                    f"parameter ~{f.name}: not a number or list ({err})"
                ) from None
        try:
            if isinstance(f.default, tuple):
                values[f.name] = tuple(float(v) for v in raw)
            else:
                values[f.name] = float(raw)
        except (TypeError, ValueError):
            raise RobotSetupError(f"parameter ~{f.name}: expected numbers, got {raw!r}") from None
    return FrankaSafetySettings(**values).check()


def compliance_params(controller: str, settings: FrankaSafetySettings) -> dict[str, float]:
    """The ROS parameters the controller's dynamic_reconfigure server starts from."""
    ns = f"/{controller.strip('/')}/dynamic_reconfigure_compliance_param_node"
    return {f"{ns}/{name}": float(getattr(settings, name)) for name in STIFFNESS_RANGES}


def _call(proxy: Callable[..., Any], request: Any, timeout: float) -> Any:
    """A service call that gives up after `timeout` (rospy's own call has no timeout)."""
    result: list[Any] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(proxy(request))
        except BaseException as exc:  # rospy.ServiceException, ROSInterruptException
            error.append(exc)

    worker = threading.Thread(target=run, name="franka_setup_call", daemon=True)
    worker.start()
    worker.join(timeout)
    if error:
        raise error[0]
    if not result:
        raise TimeoutError
    return result[0]


def apply_settings(
    settings: FrankaSafetySettings,
    controller: str,
    service_ns: str = "/franka_control",
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Set stiffness parameters, collision behaviour and load; returns what was applied (for the
    episode metadata). Any failure raises RobotSetupError before a command was sent."""
    import rospy
    from franka_msgs.srv import (
        SetForceTorqueCollisionBehavior,
        SetForceTorqueCollisionBehaviorRequest,
        SetLoad,
        SetLoadRequest,
    )

    for name, value in compliance_params(controller, settings).items():
        rospy.set_param(name, value)
    calls = (
        (
            "set_force_torque_collision_behavior",
            SetForceTorqueCollisionBehavior,
            SetForceTorqueCollisionBehaviorRequest(
                lower_torque_thresholds_nominal=list(settings.contact_torque),
                upper_torque_thresholds_nominal=list(settings.collision_torque),
                lower_force_thresholds_nominal=list(settings.contact_force),
                upper_force_thresholds_nominal=list(settings.collision_force),
            ),
        ),
        (
            "set_load",
            SetLoad,
            SetLoadRequest(
                mass=settings.load_mass,
                F_x_center_load=list(settings.load_com),
                load_inertia=list(settings.load_inertia),
            ),
        ),
    )
    for short, kind, request in calls:
        name = f"{service_ns.rstrip('/')}/{short}"
        try:
            rospy.wait_for_service(name, timeout)
        except rospy.ROSException:
            raise RobotSetupError(
                f"franka: no service {name} within {timeout:.0f} s: is franka_control running "
                "on the real-time machine, and do both machines use the same ROS_MASTER_URI?"
            ) from None
        try:
            response = _call(rospy.ServiceProxy(name, kind), request, timeout)
        except TimeoutError:
            raise RobotSetupError(
                f"franka: {name} did not answer within {timeout:.0f} s: franka_control answers "
                "only while no motion controller runs; start the controller after arm_node "
                "(launch/franka_rt.launch waits for robot_configured) or stop it first"
            ) from None
        except Exception as exc:  # rospy.ServiceException: the server raised or went away
            raise RobotSetupError(f"franka: {name} failed: {exc}") from None
        if not response.success:
            raise RobotSetupError(f"franka: {name} refused: {response.error or 'no reason given'}")
    return {"service_ns": service_ns, "controller": controller, **settings.as_dict()}
