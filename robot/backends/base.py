"""What arm_node needs from a backend (a small interface in the spirit of LeRobot's Robot)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

import numpy as np


class RobotMode(IntEnum):
    """franka_msgs/FrankaState.robot_mode (libfranka's RobotMode). The franka backend reports
    it; the controller only asks about REFLEX and USER_STOPPED, backends without such a state
    (the simulated arm) report None."""

    OTHER = 0
    IDLE = 1
    MOVE = 2
    GUIDING = 3
    REFLEX = 4
    USER_STOPPED = 5
    AUTOMATIC_ERROR_RECOVERY = 6


@dataclass
class BackendEvent:
    """Something the operator must hear about and the episode must be marked with."""

    kind: str  # "reflex" | "user_stopped" | "error" | "recovered" | "recovery_failed"
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class ArmBackend(Protocol):
    name: str
    steps_physics: bool  # True: send() executes one control period (the simulated world)
    publishes_images: bool  # True: image(), full_image() and labels_dict() have content

    @property
    def robot_mode(self) -> int | None:
        """The arm's RobotMode (an int from the driver), or None where there is none."""

    def measured_pose(self) -> np.ndarray | None:
        """Latest measured TCP pose [xyz, rotvec rel. home], or None before the first one."""

    def send(self, pose: np.ndarray) -> Any:
        """Command an equilibrium pose that passed the safety filter. A backend that steps
        physics returns the step's labels (for labels_dict); others return None."""

    def hold(self, pose: np.ndarray | None) -> None:
        """Hold `pose` now; called from a service thread under the filter's lock (e-stop, hold).
        Real arm: command it at once. Sim: nothing to do, the world only moves when arm_node's
        loop steps it, and it steps it with the held pose from then on."""

    def reset(self, layout_seed: int | None = None) -> dict[str, Any]:
        """Prepare an episode (sim: new layout and home pose; real: nothing to move here —
        arm_node drives the arm home through the safety filter)."""

    def image(self) -> np.ndarray | None:
        """The policy's 64x64 RGB image after the last step (None: a camera node publishes it)."""

    def full_image(self, width: int, height: int) -> np.ndarray | None:
        """A larger view for the operator (None: a camera node publishes it)."""

    def labels_dict(self, labels: Any) -> dict[str, Any]:
        """What send() returned as the JSON-ready fields of a `labels` message ({}: none)."""

    def poll_events(self) -> list[BackendEvent]:
        """Events since the last call (reflex, errors, user stop)."""

    def recover(self) -> bool:
        """Recover from a reflex/error; True on success."""

    def close(self) -> None: ...
