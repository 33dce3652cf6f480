"""Keyboard teleoperation through the operator window (the fallback, and for simulation).

OpenCV reports key presses but no releases, so a motion key commands its axis for `hold_s`
after its last press; holding a key down keeps it going through the keyboard's auto-repeat
(shorten X's repeat delay with `xset r rate 200 30` for smoother starts). Space stops at once.
Keys are in the operator's frame (the same placement as the SpaceMouse, MappingConfig.yaw_deg):

    w / s   away from / towards you      a / d   left / right      r / f   up / down
    j / l   turn left / right (yaw)      i / k   tilt away / towards   u / o   roll left / right
    Shift   full speed (default speed 0.6 of the max step)    space   stop
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data_collection.teleop.base import Clock, EventQueue, LabelEvent, RealClock
from data_collection.teleop.mapping import AxisMapper, MappingConfig

# key -> (device axis index [x, y, z, roll, pitch, yaw], sign); device frame as the SpaceMouse's
MOTION_KEYS = {
    "w": (1, +1),
    "s": (1, -1),
    "a": (0, -1),
    "d": (0, +1),
    "r": (2, +1),
    "f": (2, -1),
    "j": (5, +1),
    "l": (5, -1),
    "i": (3, -1),  # tilt away = a negative rotation about the operator's x axis
    "k": (3, +1),
    "u": (4, -1),
    "o": (4, +1),
}


@dataclass(frozen=True)
class KeyboardConfig:
    mapping: MappingConfig = field(
        default_factory=lambda: MappingConfig(deadzone=0.0, smoothing=0.0, rotation_gain=1.0)
    )
    speed: float = 0.6
    fast_speed: float = 1.0
    hold_s: float = 0.35


class KeyboardTeleop:
    name = "keyboard"

    def __init__(self, config: KeyboardConfig | None = None, clock: Clock | None = None):
        self.config = config or KeyboardConfig()
        self.clock = clock or RealClock()
        self.mapper = AxisMapper(self.config.mapping)
        self._until = np.zeros(6)  # per device axis: commanded until this time
        self._value = np.zeros(6)
        self._events = EventQueue()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def reset(self) -> None:
        self._until[:] = 0.0
        self._value[:] = 0.0
        self.mapper.reset()

    def press(self, key: str) -> bool:
        """Feed one key from the window; True if it was a motion key."""
        if key == "space":
            self._until[:] = 0.0
            return True
        spec = MOTION_KEYS.get(key.lower()) if len(key) == 1 else None
        if spec is None:
            return False
        axis, sign = spec
        speed = self.config.fast_speed if key.isupper() else self.config.speed
        self._value[axis] = sign * speed
        self._until[axis] = self.clock.now() + self.config.hold_s
        return True

    def device_axes(self) -> np.ndarray:
        return np.where(self.clock.now() < self._until, self._value, 0.0)

    def action(self) -> np.ndarray:
        return self.mapper(self.device_axes())

    def events(self) -> list[LabelEvent]:
        return self._events.drain()  # label keys are the recorder's (they work with any device)
