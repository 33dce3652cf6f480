"""Human takeover during deployment and finetuning: at any step an operator may execute the action
instead of the policy; the step is recorded as the operator's (episode field `actor`).

A `Takeover` is asked once per control step, after the policy proposed its action, and returns
the operator's action while the operator is in control, else None. The executed action goes
through the same path as the policy's (the env, and on the arm the safety filter of arm_node).

- `TeleopTakeover`: a teleoperation device (the SpaceMouse, the keyboard). Any deflection beyond
  the device's deadzone takes over at once (no button to find in a hurry); control returns to the
  policy after `release_steps` consecutive steps without deflection (1 s at 10 Hz), during which
  the operator's zero action holds the arm where it is.
- `ScriptedTakeover`: the simulated operator, for tests and measurement. From the ground truth
  it sees the robot approach an obstacle (clearance under `margin` and shrinking) and,
  `reaction_delay` steps later, takes over: straight up above the obstacle tops (a sideways
  escape can meet the next obstacle), then over them towards the target; it hands back once the
  hand is above the tops and clear of every obstacle, or after `max_control` steps. What it sees
  after handing back can make it take over again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from data_collection.teleop.base import Teleop
    from robot.env import SafeReachEnv


class Takeover(Protocol):
    name: str

    def reset(self) -> None:
        """A new episode: the policy is in control."""

    def action(self, obs: dict[str, np.ndarray], proposed: np.ndarray) -> np.ndarray | None:
        """The operator's action for this step while in control, else None (the policy's
        `proposed` action runs)."""

    @property
    def in_control(self) -> bool: ...


class TeleopTakeover:
    """Takeover by a teleoperation device: deflection takes over, `release_steps` hand back."""

    name = "teleop"

    def __init__(self, teleop: Teleop, release_steps: int = 10):
        if release_steps < 1:
            raise ValueError("release_steps must be >= 1")
        self.teleop, self.release_steps = teleop, int(release_steps)
        self._control, self._still = False, 0

    @property
    def in_control(self) -> bool:
        return self._control

    def reset(self) -> None:
        self._control, self._still = False, 0
        self.teleop.reset()

    def action(self, obs: dict[str, np.ndarray], proposed: np.ndarray) -> np.ndarray | None:
        command = np.asarray(self.teleop.action(), np.float32)
        deflected = bool(np.any(np.abs(command) > 0))  # the mapping applied the deadzone
        if deflected:
            self._control, self._still = True, 0
        elif self._control:
            self._still += 1
            if self._still >= self.release_steps:
                self._control = False
        return command if self._control else None


@dataclass(frozen=True)
class ScriptedTakeoverConfig:
    margin: float = 0.05  # m of robot-obstacle clearance under which an approach alarms
    approach: float = 0.003  # m per step the clearance must shrink to count as an approach
    reaction_delay: int = 2  # steps between seeing the danger and acting (200 ms at 10 Hz)
    clear_height: float = 0.03  # m above the obstacle tops the operator lifts the hand to
    max_control: int = 20  # steps at most before handing back (the operator lets go)
    gain: float = 1.5  # action per (error / max step), as the scripted collectors


class ScriptedTakeover:
    """The simulated operator's takeover: ground-truth clearance, a reaction delay, a path up
    and over towards the target, handing back when clear (docs/algorithm.md, "Takeover")."""

    name = "scripted"

    def __init__(self, env: SafeReachEnv, config: ScriptedTakeoverConfig | None = None):
        self.env = env
        self.config = config or ScriptedTakeoverConfig()
        self.reset()

    @property
    def in_control(self) -> bool:
        return self._control

    def reset(self) -> None:
        self._clearance: list[float] = []
        self._control, self._since, self._returned = False, 0, -1

    def alarms(self) -> list[bool]:
        """Per step so far: was the robot approaching an obstacle within the margin?"""
        c, cfg = self._clearance, self.config
        return [
            i > 0 and c[i] < cfg.margin and c[i - 1] - c[i] > cfg.approach for i in range(len(c))
        ]

    def action(self, obs: dict[str, np.ndarray], proposed: np.ndarray) -> np.ndarray | None:
        cfg, sim = self.config, self.env.sim
        pos = np.asarray(obs["pose"][:3], np.float64)
        top = 2 * self.env.task.obstacles.half_height
        t = len(self._clearance)
        self._clearance.append(sim.obstacle_clearance())
        c = self._clearance
        # what the operator saw reaction_delay steps ago, if it was after they last handed back
        seen = t - cfg.reaction_delay
        alarm = (
            seen > max(0, self._returned)
            and c[seen] < cfg.margin
            and c[seen - 1] - c[seen] > cfg.approach
        )
        if not self._control and alarm:
            self._control, self._since = True, t
        if self._control:
            clear = pos[2] > top + cfg.clear_height and c[-1] >= cfg.margin
            if clear or t - self._since >= cfg.max_control:
                self._control, self._returned = False, t  # hand back
        if not self._control:
            return None
        return self._detour(pos, np.asarray(obs["pose"][3:], np.float64), top)

    def _detour(self, pos: np.ndarray, rot: np.ndarray, top: float) -> np.ndarray:
        """Up to the clear height first, then over the obstacles towards the target."""
        cfg, sim = self.config, self.env.sim
        step = sim.limits.step
        goal = pos.copy()
        goal[2] = top + cfg.clear_height + 0.01
        if pos[2] > top + cfg.clear_height - 0.005:  # high enough: head for the target
            target = np.asarray(sim.layout.target_xy, np.float64)
            goal[:2] = pos[:2] + np.clip(
                target - pos[:2], -step.max_translation, step.max_translation
            )
        action = np.zeros(6)
        action[:3] = cfg.gain * (goal - pos) / step.max_translation
        action[3:] = -cfg.gain * rot / step.max_rotation  # keep the hand level
        return np.clip(action, -1.0, 1.0).astype(np.float32)


CONTROL_VIEW = (400, 460)  # width, height of the "who is in control" window


def control_view(image: np.ndarray, operator: bool, step: int, steps: int, takeovers: int):
    """The operator's "who is in control" frame (BGR): the policy's camera view and a banner,
    red OPERATOR while the SpaceMouse drives, green POLICY otherwise."""
    from data_collection.teleop import draw

    width, height = CONTROL_VIEW
    frame = draw.canvas(width, height)
    colour = draw.RED if operator else draw.GREEN
    frame[:60] = colour
    draw.text(frame, "OPERATOR" if operator else "POLICY", (16, 42), draw.DARK, 1.1, 3)
    draw.camera(frame, np.asarray(image, np.uint8), (8, 68), 384)
    status = f"step {step}/{steps}   takeovers {takeovers}   (move the SpaceMouse to take over)"
    draw.text(frame, status, (8, height - 6), draw.WHITE, 0.4)
    return frame


class ControlWindow:
    """Shows `control_view` once per step (on the operator's display); without a display the
    run goes on and says once that the window is missing."""

    def __init__(self, title: str = "fosp finetune: who is in control", log=print):
        from data_collection.teleop.window import CvWindow, WindowError

        try:
            self.window: Any = CvWindow(title)
        except WindowError as err:
            log(f"takeover: no control window ({err}); the SpaceMouse still takes over")
            self.window = None
        self.takeovers, self._operator = 0, False

    def update(self, image: np.ndarray, operator: bool, step: int, steps: int) -> None:
        if operator and not self._operator:
            self.takeovers += 1
        self._operator = operator
        if self.window is not None:
            self.window.show(control_view(image, operator, step, steps, self.takeovers))
            self.window.keys(0.001)  # lets the window draw

    def close(self) -> None:
        if self.window is not None:
            self.window.close()


def make_takeover(kind: str, env: Any = None, teleop: Any = None) -> Takeover | None:
    """`none` | `scripted` (needs the in-process sim env) | `teleop` (needs a device)."""
    if kind == "none":
        return None
    if kind == "scripted":
        if env is None or not hasattr(env, "sim"):
            raise ValueError("the scripted takeover needs the in-process simulated env")
        return ScriptedTakeover(env)
    if kind == "teleop":
        if teleop is None:
            raise ValueError("the teleop takeover needs a teleoperation device")
        return TeleopTakeover(teleop)
    raise ValueError(f"unknown takeover {kind!r}: use none, scripted or teleop")
