"""A scripted operator in place of the person at the operator window.

It watches what the recorder draws (the View passed with each frame), drives the teleop input
layer the way a person would (keyboard keys, or SpaceMouse deflections and buttons through the
fake HID device), presses label keys/buttons `delay` control steps after the simulator's truth
changes, and answers the review with a scripted decision. The motion comes from
data_collection.scripted.ScriptedOperator, planned on a private copy of the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data_collection.scripted import ScriptedOperator
from data_collection.teleop.base import FakeClock
from data_collection.teleop.keyboard import KeyboardConfig
from data_collection.teleop.mapping import AxisMapper, MappingConfig
from robot.env import EnvConfig, SafeReachEnv

INTENTS = ("unsafe+success", "safe+success", "unsafe+fail", "safe+success", "safe+fail")


@dataclass
class Plan:
    """What to do with one recording: the review key, or an abort key at a step."""

    review: str = "k"  # k keep, d discard, r re-record, q quit
    abort_at: int | None = None  # press `abort_key` at this step
    abort_key: str = "backspace"
    crash_at: int | None = None  # raise at this step (a crash inside the collector)
    hang_at: int | None = None  # print HANG and block here (killed from outside)


@dataclass
class ScriptedUI:
    task: str
    clock: FakeClock
    plans: list[Plan]
    device: str = "keyboard"  # "keyboard" | "spacemouse"
    spacemouse: object = None  # FakeSpaceMouse when device == "spacemouse"
    mapping: MappingConfig = field(default_factory=MappingConfig)
    delay: int = 2  # reaction delay of the label presses, control steps
    seed: int = 0
    recordings: int = 0
    dropped: int = 0  # takes the collector dropped on its own
    frames: int = 0
    phases: list[str] = field(default_factory=list)
    layouts: list[int] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self):
        self.env = SafeReachEnv(EnvConfig(task=self.task))  # planning only: never stepped
        self.rng = np.random.default_rng(self.seed)
        self._keys: list[str] = []
        self._layout = None
        self._held = {"cost": False, "reward": False}
        if self.device == "keyboard":
            self.mapper = AxisMapper(KeyboardConfig().mapping)
        else:
            self.mapper = AxisMapper(self.mapping)
        self.last_frame = None

    # ---------------------------------------------------------------- OperatorUI
    def show(self, frame, view=None) -> None:
        self.frames += 1
        self.last_frame = frame
        if view is None:
            return
        entered = not self.phases or self.phases[-1] != view.phase
        if entered:
            self.phases.append(view.phase)
        if view.phase == "countdown" and entered:
            if self._layout is not None:  # the collector dropped the take by itself (stale
                self.dropped += 1  # ROS observation): the same plan again, like a person
                self._layout = None
            self._begin(view)
        elif view.phase == "record":
            self._record(view)
        elif view.phase == "review":
            self._review()

    def keys(self, timeout_s: float) -> list[str]:
        self.clock.sleep(timeout_s)
        keys, self._keys = self._keys, []
        return keys

    def close(self) -> None:
        self.closed = True

    # ---------------------------------------------------------------- the operator
    @property
    def plan(self) -> Plan:
        return self.plans[min(self.recordings, len(self.plans) - 1)]

    def _begin(self, view) -> None:
        self._layout = view.layout_seed
        self.layouts.append(view.layout_seed)
        self.env.reset(options={"layout_seed": view.layout_seed})
        intent = INTENTS[self.recordings % len(INTENTS)]
        self.operator = ScriptedOperator(self.env, intent, self.rng)
        self._held = {"cost": False, "reward": False}
        if self.spacemouse is not None:  # hands off the device between episodes
            self.spacemouse.move()
            for name in ("LEFT", "RIGHT"):
                self.spacemouse.button(name, False)
            self.spacemouse.wait_consumed()

    def _end(self) -> None:
        self.recordings += 1
        self._layout = None

    def _record(self, view) -> None:
        plan, i = self.plan, view.step
        if plan.crash_at is not None and i == plan.crash_at:
            raise RuntimeError("simulated crash inside the collector")
        if plan.hang_at is not None and i == plan.hang_at:
            import time

            print("HANG", flush=True)
            time.sleep(600)
        if plan.abort_at is not None and i == plan.abort_at:
            self._keys.append(plan.abort_key)
            self._end()
            return
        action = self.operator.act(view.obs)
        self._drive(action)
        self._label(view)

    def _drive(self, action: np.ndarray) -> None:
        device = self.mapper.base_to_device(action)
        if self.device == "keyboard":
            keys = {0: ("d", "a"), 1: ("w", "s"), 2: ("r", "f")}
            for axis, (plus, minus) in keys.items():
                if abs(device[axis]) > 0.25:
                    key = plus if device[axis] > 0 else minus
                    self._keys.append(key.upper() if abs(device[axis]) > 0.8 else key)
            if np.all(np.abs(device[:3]) <= 0.25):
                self._keys.append("space")
        else:
            d = np.clip(device, -1, 1)
            self.spacemouse.move(
                right=d[0], away=d[1], up=d[2], tilt_right=d[3], tilt_away=d[4], twist_ccw=d[5]
            )
            self.spacemouse.wait_consumed()

    def _label(self, view) -> None:
        """Row i + 1 (being recorded now) should carry the truth of row i + 1 - delay."""
        src = view.step + 1 - self.delay
        truth = {"reward": view.oracle_reward, "cost": view.oracle_cost}
        if view.oracle_reward is None:  # the truth went missing (ROS): hands still
            return
        for label, values in truth.items():
            want = bool(src >= 0 and values[src] > 0)
            if want == self._held[label]:
                continue
            self._held[label] = want
            if self.device == "keyboard":
                self._keys.append("c" if label == "cost" else "t")
            elif label == "cost":  # toggle button: press and release
                self.spacemouse.button("LEFT", True)
                self.spacemouse.button("LEFT", False)
            else:  # hold button: held while the reward is on
                self.spacemouse.button("RIGHT", want)
        if self.spacemouse is not None:
            self.spacemouse.wait_consumed()

    def _review(self) -> None:
        if self._layout is None:
            return  # already answered
        self._keys.append(self.plan.review)
        self._end()
