"""Device axes -> robot action: deadzone, gain, frame rotation, clamping and smoothing.

Device frame: pyspacemouse's HID_Z_UP convention (right-handed): +x = cap pushed to the
operator's right, +y = pushed away from the operator, +z = pulled up; roll/pitch/yaw = right-hand
rotations about those axes (yaw positive counter-clockwise seen from above).

Robot base frame (panda_link0): +x forward from the robot base, +y to the robot's left, +z up.
The device frame is the base frame rotated by `yaw_deg` about z, which covers every placement of
the SpaceMouse flat on the table:

- yaw_deg = 90 (default, "facing"): the operator sits across the table facing the arm. Pushing the
  cap away moves the TCP towards the robot base (-x), pushing right moves it to the operator's
  right = the robot's left (+y), pulling up lifts it (+z).
- yaw_deg = -90 ("behind"): the operator stands behind the robot looking where it looks.
- yaw_deg = 0 ("base"): device axes = base axes (the operator stands at the robot's right side,
  looking along +y).

Translations and rotations (axial vectors) are rotated by the same matrix, so twisting the cap
counter-clockwise always turns the hand counter-clockwise seen from above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fosp.config_flags import option

PLACEMENTS = {"facing": 90.0, "behind": -90.0, "base": 0.0}
AXES = ("x", "y", "z", "roll", "pitch", "yaw")


@dataclass(frozen=True)
class MappingConfig:
    """Device -> action mapping; its fields are `fosp collect`'s teleop flags."""

    # the device frame's yaw in the base frame, degrees
    yaw_deg: float = option(PLACEMENTS["facing"], shown_default="--placement's")
    # per device axis, of full scale; the rest is rescaled to [0, 1]
    deadzone: float = option(0.1, check="unit")
    # full deflection -> this fraction of the max step
    translation_gain: float = option(1.0, check="positive")
    rotation_gain: float = option(0.5, check="non_negative")  # as translation_gain, for rotations
    lock_rotation: bool = False  # command translations only (SafeReach needs no rotation)
    # weight of the previous command per control step, in [0, 1) (0: none)
    smoothing: float = option(0.3, check="unit")

    def __post_init__(self):
        if not 0.0 <= self.deadzone < 1.0:
            raise ValueError("deadzone must be in [0, 1)")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError("smoothing must be in [0, 1)")


def rotation_z(yaw_deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    m = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return np.where(np.abs(m) < 1e-12, 0.0, m)  # exact zeros for the 90-degree placements


def apply_deadzone(values: np.ndarray, deadzone: float) -> np.ndarray:
    """0 inside the deadzone, then linear from 0 so there is no jump at its edge."""
    v = np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0)
    mag = np.maximum(np.abs(v) - deadzone, 0.0) / (1.0 - deadzone)
    return np.sign(v) * mag


class AxisMapper:
    """Stateful (smoothing) map from a device reading to an action in the base frame."""

    def __init__(self, config: MappingConfig | None = None):
        self.config = config or MappingConfig()
        self.rotation = rotation_z(self.config.yaw_deg)
        self._previous = np.zeros(6)

    def reset(self) -> None:
        self._previous = np.zeros(6)

    def raw_to_base(self, device: np.ndarray) -> np.ndarray:
        """Deadzone, gain, frame rotation and clamping; no smoothing (stateless)."""
        cfg = self.config
        d = apply_deadzone(device, cfg.deadzone)
        out = np.zeros(6)
        out[:3] = self.rotation @ (cfg.translation_gain * d[:3])
        if not cfg.lock_rotation:
            out[3:] = self.rotation @ (cfg.rotation_gain * d[3:])
        return np.clip(out, -1.0, 1.0)

    def __call__(self, device: np.ndarray) -> np.ndarray:
        """device: [x, y, z, roll, pitch, yaw] in the device frame, nominally in [-1, 1]."""
        target = self.raw_to_base(device)
        a = self.config.smoothing
        # a convex combination of values in [-1, 1] stays in [-1, 1]: no second clamp needed
        self._previous = a * self._previous + (1.0 - a) * target
        return self._previous.astype(np.float32)

    def base_to_device(self, action: np.ndarray) -> np.ndarray:
        """The device deflection that commands `action` (no smoothing): for scripted operators
        and tests. Values that need more than full deflection come back > 1 in magnitude."""
        cfg = self.config
        action = np.asarray(action, dtype=np.float64)
        dev = np.zeros(6)
        dev[:3] = self.rotation.T @ action[:3] / cfg.translation_gain
        if not cfg.lock_rotation and cfg.rotation_gain > 0:
            dev[3:] = self.rotation.T @ action[3:] / cfg.rotation_gain
        # undo the deadzone rescaling
        return np.sign(dev) * (np.abs(dev) * (1.0 - cfg.deadzone) + cfg.deadzone) * (dev != 0)
