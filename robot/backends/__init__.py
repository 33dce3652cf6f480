"""Arm backends behind arm_node: the simulated SafeReach world and franka_ros.

Every backend receives only poses that passed robot.safety.SafetyFilter. `make_backend` imports
a backend's dependencies only when it is chosen (franka_msgs only for "franka").
"""

from __future__ import annotations

from typing import Any

from robot.backends.base import ArmBackend, BackendEvent


def make_backend(kind: str, **params: Any) -> ArmBackend:
    if kind == "sim":
        from robot.backends.sim import SimBackend

        return SimBackend(**params)
    if kind == "franka":
        from robot.backends.franka import FrankaBackend

        return FrankaBackend(**params)
    raise ValueError(f"unknown arm backend {kind!r}: use 'sim' or 'franka'")


__all__ = ["ArmBackend", "BackendEvent", "make_backend"]
