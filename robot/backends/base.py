"""What arm_node needs from a backend (a small interface in the spirit of LeRobot's Robot)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class BackendEvent:
    """Something the operator must hear about and the episode must be marked with."""

    kind: str  # "reflex" | "user_stopped" | "error" | "recovered" | "recovery_failed"
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class ArmBackend(Protocol):
    name: str
    steps_physics: bool  # True: send() executes one control period (the simulated world)
    publishes_images: bool

    def measured_pose(self) -> np.ndarray | None:
        """Latest measured TCP pose [xyz, rotvec rel. home], or None before the first one."""

    def send(self, pose: np.ndarray) -> Any:
        """Command an equilibrium pose that passed the safety filter."""

    def hold(self, pose: np.ndarray | None) -> None:
        """Hold `pose` now; called from a service thread under the filter's lock (e-stop, hold).
        Real arm: command it at once. Sim: nothing to do, the world only moves when arm_node's
        loop steps it, and it steps it with the held pose from then on."""

    def reset(self, layout_seed: int | None = None) -> dict[str, Any]:
        """Prepare an episode (sim: new layout and home pose; real: nothing to move here —
        arm_node drives the arm home through the safety filter)."""

    def poll_events(self) -> list[BackendEvent]:
        """Events since the last call (reflex, errors, user stop)."""

    def recover(self) -> bool:
        """Recover from a reflex/error; True on success."""

    def close(self) -> None: ...
