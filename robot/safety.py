"""The safety filter: the one gate every arm command passes, on every backend.

It turns a raw 6-D action message into a target pose (the equilibrium pose of the impedance
controller, or the simulated one) that respects the limits of `robot.workspace.ControlLimits`,
the single definition of the limits in the stack:

- messages that are not 6 finite numbers are rejected (counted, logged, never sent);
- the action is clipped to [-1, 1] and scaled to a per-step delta (`action_to_delta`) applied to
  the previous command, so one step moves the command at most sqrt(3) * `max_translation`
  (a full diagonal step) and turns it at most sqrt(3) * `max_rotation`;
- the new pose is clipped to the maximum lead over the measured pose, then to the task box and
  the tilt limit (`clip_pose`). Lead clipping may move the command back *towards* the measured
  pose by more than one step; that only relaxes the spring and is the safe direction;
- a watchdog holds the current (measured) pose when no command arrived for `watchdog_timeout`
  seconds, and re-arms on the next command;
- an e-stop holds the measured pose and latches: every command is dropped until an operator
  calls `release()`. `reset()` (a new episode) never clears it;
- nothing is made from a measured pose outside the hard box (`Workspace.beyond_hard_box`: the
  task area + 4 cm, tilt up to 0.40 rad): commands are dropped, a walk home refuses to start
  (`OutsideHardBox`), and a hold keeps the last pose sent (or sends nothing when none was).
  Clipping such a pose into the box would move the impedance controller's equilibrium by up to
  the arm's distance from the box in one message (Franka's ready pose is ~35 cm above it);
  inside the hard box the clip moves it at most the tracking margin, 4 cm / 0.17 rad;
- optionally (`rate_limit`, the franka backend, where every message is forwarded at once) the
  motion is rate-limited per control period: a command moves at most the fraction of a full
  step that the time since the previous command earned (a budget refilled at one step per
  control period, capped at `RATE_BURST` steps), so a 100 Hz stream moves the command no faster
  than a 10 Hz one (0.2 m/s per axis with the default limits).

The filter is plain Python with an injectable clock. Every method takes `lock` (re-entrant):
arm_node's service threads latch the e-stop while its loop thread sends commands, and the loop
holds the same lock from the latch check to the backend call, so no command is sent after an
e-stop returned.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from robot.geometry import matrix_to_rotvec, rotvec_to_matrix
from robot.workspace import ControlLimits

log = logging.getLogger(__name__)

ACTION_DIM = 6


@dataclass(frozen=True)
class SafetyConfig:
    limits: ControlLimits = field(default_factory=ControlLimits)
    watchdog_timeout: float = 0.2  # s without a command -> hold the measured pose
    log_every: int = 100  # log the first rejection of each kind, then one in `log_every`
    rate_limit: bool = False  # scale each step by the time since the previous command


# Rate limit: a command arriving up to half a period early still gets its full step (jitter of a
# 10 Hz stream), so any interval T moves the command at most (RATE_BURST + T * control_hz) steps.
RATE_BURST = 1.5


@dataclass
class Decision:
    """What the filter did with one input. `pose` is None when nothing must be sent."""

    kind: str  # "command" | "rejected" | "estopped" | "outside" | "hold"
    pose: np.ndarray | None
    reason: str = ""


class EStopLatched(RuntimeError):
    """A scripted move (walk home) was asked for while the e-stop is latched."""


class OutsideHardBox(RuntimeError):
    """A scripted move (walk home) was asked for from a measured pose outside the hard box."""


class SafetyFilter:
    """Stateful gate between commands and a backend; thread-safe (one re-entrant `lock`)."""

    def __init__(
        self, config: SafetyConfig | None = None, clock: Callable[[], float] | None = None
    ):
        self.config = config or SafetyConfig()
        self.limits = self.config.limits
        self.clock = clock or time.monotonic
        self.commanded: np.ndarray | None = None  # last pose sent to the backend
        self.estopped = False
        self.held = False  # True after a watchdog/e-stop/explicit hold until the next command
        self.last_command_time: float | None = None
        self.rejected: dict[str, int] = {}
        self.counts = {"command": 0, "rejected": 0, "estopped": 0, "outside": 0, "hold": 0}
        self.lock = threading.RLock()
        self._budget = RATE_BURST  # steps of motion the rate limit allows now
        self._budget_time: float | None = None

    # ------------------------------------------------------------------ inputs
    def validate(self, data: Sequence[float] | np.ndarray | None) -> tuple[np.ndarray | None, str]:
        """(action, "") for 6 finite numbers, else (None, reason)."""
        try:
            arr = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            return None, f"not numeric: {exc}"
        if arr.ndim != 1 or arr.shape[0] != ACTION_DIM:
            return None, f"wrong length: expected {ACTION_DIM} numbers, got shape {arr.shape}"
        if not np.all(np.isfinite(arr)):
            return None, "non-finite value (NaN/Inf)"
        return arr, ""

    def command(self, data: Sequence[float] | np.ndarray | None, measured: np.ndarray) -> Decision:
        """One action message -> the pose to send (or a reason not to send anything)."""
        with self.lock:
            now = self.clock()
            measured = self._check_measured(measured)
            action, reason = self.validate(data)
            if action is None:
                self._reject(reason)
                return Decision("rejected", None, reason)
            if self.estopped:
                self.counts["estopped"] += 1
                return Decision("estopped", None, "e-stop latched: an operator must release it")
            outside = self.limits.workspace.beyond_hard_box(measured)
            if outside:
                self.counts["outside"] += 1
                return Decision("outside", None, f"{outside}: guide the arm over the task area")
            previous = self.commanded if self.commanded is not None else self._hold_pose(measured)
            delta = self.limits.action_to_delta(action) * self._rate_scale(now)
            proposed = self.limits.apply_delta(previous, delta)
            pose = self.limits.clip_pose(proposed, reference=measured)
            self.commanded = pose
            self.last_command_time = now
            self.held = False
            self.counts["command"] += 1
            return Decision("command", pose.copy())

    def _rate_scale(self, now: float) -> float:
        """Fraction of a full step this command may move (1 without the rate limit)."""
        if not self.config.rate_limit:
            return 1.0
        if self._budget_time is not None:
            earned = (now - self._budget_time) * self.limits.step.control_hz
            self._budget = min(RATE_BURST, self._budget + max(0.0, earned))
        self._budget_time = now
        scale = min(1.0, self._budget)
        self._budget -= scale
        return scale

    def tick(self, measured: np.ndarray) -> Decision | None:
        """Watchdog: call often (>= 50 Hz). Returns a hold decision once when commands stopped."""
        with self.lock:
            if self.held or self.estopped:
                return None
            now = self.clock()
            last = self.last_command_time
            if last is None or now - last < self.config.watchdog_timeout:
                return None
            return self.hold(measured, reason=f"watchdog: no command for {now - last:.3f} s")

    def hold(self, measured: np.ndarray | None, reason: str = "hold") -> Decision:
        """Hold the measured pose (clipped into the box) now. Without a measured pose (none yet),
        or with one outside the hard box, the last command is held; with neither, nothing has
        been sent and the pose is None."""
        with self.lock:
            if measured is not None:
                measured = self._check_measured(measured)
                outside = self.limits.workspace.beyond_hard_box(measured)
                if outside:
                    reason = f"{reason}; {outside}: the last command is kept"
                else:
                    self.commanded = self._hold_pose(measured)
            self.held = True
            self.counts["hold"] += 1
            log.info("safety: holding pose (%s)", reason)
            pose = None if self.commanded is None else self.commanded.copy()
            return Decision("hold", pose, reason)

    def estop(self, measured: np.ndarray | None) -> Decision:
        """Latch the e-stop and hold the measured pose. Commands are dropped until release()."""
        with self.lock:
            self.estopped = True  # first: nothing may pass from here on
            return self.hold(measured, reason="e-stop")

    def release(self) -> bool:
        """The operator's release of the e-stop (never automatic). The arm stays held: the next
        command starts from the held pose. Returns whether an e-stop was latched."""
        with self.lock:
            was = self.estopped
            self.estopped = False  # `held` stays as the e-stop left it
            self.last_command_time = None
            return was

    def reset(self, pose: np.ndarray | None = None) -> None:
        """A new episode: clear the hold; `pose` becomes the reference for the next command. An
        e-stop stays latched (only release() clears it). A pose outside the hard box is no
        reference (the next command starts from the measured pose, if that is inside)."""
        with self.lock:
            self.held = self.estopped
            self.last_command_time = None
            pose = None if pose is None else self._check_measured(pose)
            if pose is None or self.limits.workspace.beyond_hard_box(pose):
                self.commanded = None
            else:
                self.commanded = self._hold_pose(pose)
            self._budget, self._budget_time = RATE_BURST, None

    def step_towards(self, target: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray, bool]:
        """One safe step of a scripted move (reset to home): the action that heads for `target`,
        filtered like any command. Returns (pose to send, whether the command reached target).
        Raises EStopLatched while the e-stop is latched, OutsideHardBox from a measured pose
        outside the hard box."""
        with self.lock:
            if self.estopped:
                raise EStopLatched("e-stop latched: an operator must release it first")
            measured = self._check_measured(measured)
            outside = self.limits.workspace.beyond_hard_box(measured)
            if outside:
                raise OutsideHardBox(outside)
            return self._step_towards(target, measured)

    def _step_towards(self, target: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray, bool]:
        previous = self.commanded if self.commanded is not None else self._hold_pose(measured)
        step = self.limits.step
        dpos = (np.asarray(target[:3]) - previous[:3]) / step.max_translation
        drot = (
            matrix_to_rotvec(rotvec_to_matrix(target[3:]) @ rotvec_to_matrix(previous[3:]).T)
            / step.max_rotation
        )
        action = np.clip(np.concatenate([dpos, drot]), -1.0, 1.0)
        pose = self.limits.clip_pose(
            self.limits.apply_delta(previous, self.limits.action_to_delta(action)),
            reference=measured,
        )
        self.commanded = pose
        self.held = False
        self.last_command_time = self.clock()
        reached = bool(np.all(np.abs(np.concatenate([dpos, drot])) <= 1.0))
        return pose.copy(), reached

    # ------------------------------------------------------------------ helpers
    def _hold_pose(self, measured: np.ndarray) -> np.ndarray:
        return self.limits.clip_pose(measured)

    def _check_measured(self, measured: np.ndarray) -> np.ndarray:
        measured = np.asarray(measured, dtype=np.float64)
        if measured.shape != (6,) or not np.all(np.isfinite(measured)):
            raise ValueError(f"measured pose must be 6 finite numbers, got {measured!r}")
        return measured

    def _reject(self, reason: str) -> None:
        key = reason.split(":")[0]
        n = self.rejected.get(key, 0) + 1
        self.rejected[key] = n
        self.counts["rejected"] += 1
        if n == 1 or n % self.config.log_every == 0:
            log.warning("safety: rejected command (%s), %d so far of this kind", reason, n)


def within_limits(pose: np.ndarray, limits: ControlLimits, tol: float = 1e-9) -> tuple[bool, str]:
    """Is `pose` a command the filter could have produced? (box, tilt, finite)."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (6,) or not np.all(np.isfinite(pose)):
        return False, "not 6 finite numbers"
    ws = limits.workspace
    if np.any(pose[:3] < ws.low - tol) or np.any(pose[:3] > ws.high + tol):
        return False, f"outside the task box: {pose[:3]}"
    if float(np.linalg.norm(pose[3:])) > ws.command_tilt + tol:
        return False, f"tilt {np.linalg.norm(pose[3:]):.4f} > {ws.command_tilt}"
    return True, ""


def rotation_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (rad) of the rotation between two rotation vectors."""
    rel = rotvec_to_matrix(a) @ rotvec_to_matrix(b).T
    return float(np.arccos(np.clip((np.trace(rel) - 1.0) / 2.0, -1.0, 1.0)))


# Per-axis step limits -> bound on the length of one step (translation norm, rotation angle).
MAX_STEP_FACTOR = math.sqrt(3.0)
