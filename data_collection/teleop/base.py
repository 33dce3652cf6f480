"""What every teleoperation device gives the recorder: a 6-D action and a queue of label events.

The recorder asks `action()` once per control step and drains `events()` after each step, so a
device only has to keep its newest state; reading it (a HID thread, OpenCV key presses) is the
device's business. Clocks are injected so that tests run the same code without waiting.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

LabelName = Literal["cost", "reward"]
# toggle: flip the label; on/off: a held button went down/up; mark: this control step only
LabelAction = Literal["toggle", "on", "off", "mark"]


class TeleopError(RuntimeError):
    """A teleoperation device cannot be used; the message says what to do about it."""


@dataclass(frozen=True)
class LabelEvent:
    """An operator's label input at time `t` (the device's clock)."""

    label: LabelName
    action: LabelAction
    t: float
    source: str = ""


class Teleop(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def action(self) -> np.ndarray:
        """The current command, float32[6] in [-1, 1], robot base frame (xyz, rotation vector)."""
        ...

    def events(self) -> list[LabelEvent]:
        """Label events since the last call, oldest first."""
        ...

    def reset(self) -> None:
        """Forget motion state (smoothing, held keys) between episodes."""
        ...


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """Virtual time for tests: sleep() advances it at once."""

    def __init__(self, start: float = 1000.0):
        self.t = float(start)

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, float(seconds))


class EventQueue:
    """Thread-safe FIFO of label events (a reader thread puts, the recorder drains)."""

    def __init__(self):
        self._q: queue.SimpleQueue[LabelEvent] = queue.SimpleQueue()

    def put(self, event: LabelEvent) -> None:
        self._q.put(event)

    def drain(self) -> list[LabelEvent]:
        out = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return out
