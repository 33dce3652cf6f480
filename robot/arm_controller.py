"""ArmController: what arm_node does, as a plain object without ROS.

arm_node (`robot/arm_node.py`) is its adapter: ROS callbacks and services call the methods here,
and everything the controller has to say leaves through an `ArmOutputs` (topics, log). So the
rules below are unit-tested with a fake backend and a fake clock (tests/test_arm_controller.py)
and proven again over a real roscore by tests/ros.

Threads. One loop thread runs `run()`: the newest action, the watchdog, backend events, resets.
The operator's stops act in the calling (service) thread and never wait for it:

- `on_action` keeps only the newest action (the superseded ones are counted) and wakes the loop;
  in the loop it goes through SafetyFilter.command to the backend; rejected ones send nothing;
- `estop` / `hold`: under the safety filter's lock the filter latches (or holds), the waiting
  action is dropped and the backend is told to hold, all before they return; the loop holds the
  same lock from every latch check to the backend call it guards, so nothing sent before the
  stop runs after it. A walk home checks for a stop before every pose and ends at once;
- `release` is the operator's explicit release, the only way to clear the e-stop; it is refused
  while the external stop is pressed. `request_reset` refuses while the e-stop is latched and
  never clears it;
- the watchdog holds the measured pose when commands stop; while the arm is held or e-stopped a
  simulated world keeps running at the control rate (the real one does not stop either);
- reflex / user stop / error from the backend -> hold (user stop: the e-stop latch), an event
  (the episode is marked), an error log for the operator, recovery after a reflex or error;
- the measured TCP leaving the hard box (Workspace.beyond_hard_box: commands never lead there,
  so the arm was pushed, collided or reports a wrong pose) latches the e-stop, event "hard_box".
  The check arms once the TCP has been inside (an arm parked elsewhere at start-up, or released
  by the operator outside, is not stopped for it). Nothing is made from a pose out there (the
  filter's rule): actions are dropped, a reset is refused with where the arm is, stops keep
  the last pose sent; the operator brings the arm over the task area.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robot.backends.base import ArmBackend, BackendEvent, RobotMode
from robot.safety import OutsideHardBox, SafetyFilter
from robot.workspace import CONTROL_HZ

# how close (m) the measured TCP must come to the home position for a walk home to end
HOME_TOLERANCE = 0.005
STATUS_PERIOD = 1.0  # s between periodic status reports (and one on every change)
BAD_MESSAGE_LOG_EVERY = 100  # log a publisher's first bad message, then one in this many


@dataclass(frozen=True)
class Answer:
    """A service's answer (std_srvs/Trigger on the wire)."""

    success: bool
    message: str


@dataclass(frozen=True)
class SimFrame:
    """What the simulated world shows after one control period (or after a reset)."""

    stamp: Any  # the stamp of the command that produced it
    pose: np.ndarray
    image: np.ndarray
    labels: dict[str, Any] | None  # JSON-ready; None after a reset (no step simulated)
    render_full: Callable[[], np.ndarray] | None  # the operator's view, None when it is off


class ArmOutputs(Protocol):
    """Where the controller's results go (arm_node: topics and rospy's log)."""

    def commanded(self, pose: np.ndarray, stamp: Any) -> None:
        """A pose that passed the filter (or a hold pose) goes to the backend now."""

    def sim_frame(self, frame: SimFrame) -> None: ...

    def event(self, kind: str, detail: str, data: dict[str, Any]) -> None: ...

    def status(self, status: dict[str, Any]) -> None: ...

    def log(self, level: str, message: str) -> None:
        """level: "info" | "warn" | "error"."""


@dataclass(frozen=True)
class ControllerConfig:
    control_hz: float = CONTROL_HZ
    tick: float = 0.01  # s between loop passes without work (the watchdog's resolution)
    home_timeout: float = 20.0  # s for a walk home
    auto_recover: bool = True  # recover from a reflex or error at once
    full_image_size: int = 0  # px of the simulated operator view (0: off)
    # names the operator reads in answers and logs (arm_node resolves them in its namespace)
    release_service: str = "/fosp/release_estop"
    reset_service: str = "/fosp/reset"
    action_topic: str = "/fosp/action"


class Interrupted(RuntimeError):
    """A walk home stopped by an e-stop or a hold."""


Waiter = Callable[[threading.Event, float], bool]


def wait_on_event(event: threading.Event, seconds: float) -> bool:
    """The real waiter: up to `seconds`, less when `event` is set."""
    return event.wait(seconds)


class ArmController:
    """One backend behind one SafetyFilter; thread-safe as described in the module docstring.

    `clock` (monotonic seconds) times periods, the watchdog and the walk home; it should be the
    filter's clock. `wait(event, seconds)` sleeps in the loop and the walk home (a test's waiter
    advances its fake clock). `stamp()` stamps outgoing poses (arm_node: rospy.Time.now).
    """

    def __init__(
        self,
        backend: ArmBackend,
        safety: SafetyFilter,
        outputs: ArmOutputs,
        config: ControllerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        stamp: Callable[[], Any] | None = None,
        wait: Waiter = wait_on_event,
        is_shutdown: Callable[[], bool] = lambda: False,
    ):
        self.backend = backend
        self.filter = safety
        self.lock = safety.lock  # held from every latch check to the backend call it guards
        self.outputs = outputs
        self.config = config or ControllerConfig()
        self.period = 1.0 / float(self.config.control_hz)
        self.clock = clock
        self.stamp = stamp or clock
        self._wait = wait
        self.is_shutdown = is_shutdown
        self.last_step_time = 0.0
        self.step_count = 0
        self.info: dict[str, Any] = {}  # the current episode (reset's answer)
        self.stops = 0  # e-stops + holds so far: a walk home stops when this changes
        self.superseded = 0  # actions replaced by a newer one before the loop got to them
        self.message_errors = {"wrong_type": 0, "malformed": 0}
        self.bad_publishers: dict[str, str] = {}  # publisher -> what was wrong
        self._action: list[float] | None = None  # the newest action not executed yet
        self._slot = threading.Lock()  # guards _action and the message error counts
        self._wake = threading.Event()  # an action or a request is waiting for the loop
        self._interrupt = threading.Event()  # wakes a walk home early on a stop
        self._requests: queue.Queue = queue.Queue()  # resets, for the loop thread
        self._last_status = clock()
        self._last_logged: dict[str, float] = {}  # throttled log key -> when
        self._box_armed = False  # the measured TCP has been inside the hard box since start/latch

    # ------------------------------------------------------------------ actions (any thread)
    def on_action(self, data: list[float]) -> None:
        """A new action: it replaces one the loop has not executed yet (newest wins)."""
        with self._slot:
            if self._action is not None:
                self.superseded += 1
            self._action = data
        self._wake.set()

    def bad_message(self, kind: str, publisher: str, what: str) -> None:
        """A message on the action topic that is not an action ("wrong_type" | "malformed"):
        counted in the status and logged (a publisher's first, then one in 100)."""
        with self._slot:  # one receive thread per publisher
            self.message_errors[kind] += 1
            n = self.message_errors[kind]
            first = publisher not in self.bad_publishers
            self.bad_publishers[publisher] = f"{kind}: {what}"
        if first or n % BAD_MESSAGE_LOG_EVERY == 1:
            self._log(
                "error",
                f"arm_node: dropped a message on {self.config.action_topic} from {publisher}: "
                f"{what} ({n} {kind} so far)",
            )
        if first:
            self.publish_status()

    def _take_action(self) -> list[float] | None:
        with self._slot:
            data, self._action = self._action, None
        return data

    # ------------------------------------------------------------------ operator (any thread)
    def estop(self, by: str = "?") -> Answer:
        """Hold the measured pose now and latch until an operator's release()."""
        with self.lock:
            decision = self.filter.estop(self.backend.measured_pose())
            self._stopped(decision.pose)
        release = self.config.release_service
        message = f"e-stop latched: nothing moves until an operator calls {release}"
        self._event("estop", message, by=by)
        self._log(
            "warn",
            f"arm_node: E-STOP latched (by {by}). Check the arm and the scene, then release it: "
            f"rosservice call {release}",
        )
        self.publish_status()
        return Answer(True, message)

    def hold(self, by: str = "?") -> Answer:
        """Hold the measured pose now, no latch: the next command resumes."""
        with self.lock:
            decision = self.filter.hold(self.backend.measured_pose(), reason="hold service")
            self._stopped(decision.pose)
        self._event("hold", "hold requested", by=by)
        self.publish_status()
        return Answer(True, "holding the measured pose")

    def _stopped(self, pose: np.ndarray | None) -> None:
        """Under the lock: the backend holds `pose` now; queued commands and walks are void."""
        self.stops += 1
        self._interrupt.set()
        self._take_action()  # sent before the stop: never executed after it
        self.backend.hold(pose)
        if pose is not None:
            self.outputs.commanded(pose, self.stamp())

    def release(self, by: str = "?") -> Answer:
        """The operator's release: clears the e-stop (the arm keeps holding). Refused while the
        external stop is pressed. Without a latch it is the go-ahead after a hold or reflex."""
        release = self.config.release_service
        with self.lock:
            if self.external_stop_pressed():
                return Answer(
                    False,
                    f"the external stop is still pressed: release it, then call {release} again",
                )
            was_latched = self.filter.release()
        if was_latched:
            message = "e-stop released: the arm holds its pose; reset starts the next episode"
            self._log("warn", f"arm_node: e-stop released by {by}")
        else:
            message = "no e-stop was latched: go-ahead noted"
        self._event("released", message, by=by, estop=was_latched)
        self.publish_status()
        return Answer(True, message)

    def external_stop_pressed(self) -> bool:
        return self.backend.robot_mode == RobotMode.USER_STOPPED

    def request_reset(
        self,
        take_layout_seed: Callable[[], int | None] = lambda: None,
        timeout: float | None = None,
    ) -> Answer:
        """A new episode, run by the loop thread (the caller waits for it). Refused at once while
        the e-stop is latched. `take_layout_seed` runs in the loop thread just before the reset."""
        if self.filter.estopped:
            return Answer(False, self.estop_refusal())
        reply: queue.Queue = queue.Queue(maxsize=1)
        self._requests.put((take_layout_seed, reply))
        self._wake.set()
        if timeout is None:
            timeout = self.config.home_timeout + 10.0
        try:
            return reply.get(timeout=timeout)
        except queue.Empty:
            return Answer(False, "reset: arm_node loop did not answer")

    def estop_refusal(self) -> str:
        external = self.external_stop_pressed()
        return (
            "reset refused: the e-stop is latched"
            + (" (the external stop is pressed: release it first)" if external else "")
            + f". Check the arm, then an operator releases it (rosservice call "
            f"{self.config.release_service}) and resets again"
        )

    # ------------------------------------------------------------------ loop (one thread)
    def run(self) -> None:
        """The loop thread: until shutdown, a pass whenever work arrives or a tick passed."""
        self.publish_status()
        self._last_status = self.clock()
        while not self.is_shutdown():
            self._wait(self._wake, self.config.tick)
            self._wake.clear()
            self.loop_once()

    def loop_once(self) -> None:
        """One pass: a waiting reset, the hard box, the newest action, the watchdog, backend
        events and the periodic status. Errors are logged and the loop goes on (a dead loop in
        a live node would look like a working arm)."""
        self._serve_reset_request()
        try:
            self._hard_box()  # first: no action goes out from a pose outside the box
            data = self._take_action()
            if data is not None:
                self._handle_action(data)
            self._watchdog()
            self._backend_events()
        except Exception as exc:
            self._log_throttled("loop error", 1.0, "error", f"arm_node: loop error: {exc!r}")
        if self.clock() - self._last_status > STATUS_PERIOD:
            self.publish_status()
            self._last_status = self.clock()

    def _serve_reset_request(self) -> None:
        try:
            take_layout_seed, reply = self._requests.get_nowait()
        except queue.Empty:
            return
        try:
            answer = self.reset_episode(take_layout_seed())
        except Exception as exc:  # report, keep the loop alive
            self._log("error", f"arm_node: reset failed: {exc}")
            answer = Answer(False, f"reset failed: {exc}")
        reply.put(answer)

    def _measured(self) -> np.ndarray:
        pose = self.backend.measured_pose()
        if pose is None:
            raise RuntimeError("no measured pose from the backend yet")
        return pose

    def _handle_action(self, data: list[float]) -> None:
        with self.lock:  # the latch check (in command) and the issue are one step
            measured = self.backend.measured_pose()
            if measured is None:
                self._log_throttled(
                    "no pose", 2.0, "warn", "arm_node: command dropped, no measured pose yet"
                )
                return
            decision = self.filter.command(data, measured)
            pending = self._issue(decision.pose, "command") if decision.pose is not None else None
        if decision.pose is not None:
            self._simulate(pending)
        elif decision.kind == "rejected":
            self._log_throttled(
                "rejected", 1.0, "warn", f"arm_node: rejected command: {decision.reason}"
            )
        else:
            self._log_throttled(
                "dropped", 2.0, "warn", f"arm_node: command dropped: {decision.reason}"
            )

    def _issue(self, pose: np.ndarray, kind: str) -> tuple | None:
        """Under the lock: a pose goes out, stamped now. The real arm gets it at once; the
        simulated world runs its control period in _simulate(), outside the lock (a stop
        answered meanwhile holds from the next period on, as a real arm would)."""
        stamp = self.stamp()
        self.outputs.commanded(pose, stamp)
        if not self.backend.steps_physics:
            self.backend.send(pose)
            return None
        return pose, stamp, kind

    def _simulate(self, pending: tuple | None) -> None:
        if pending is None:
            return
        pose, stamp, kind = pending
        result = self.backend.send(pose)
        self.last_step_time = self.clock()
        self.step_count += 1
        self._publish_frame(stamp, result, kind)

    def _send(self, pose: np.ndarray, kind: str) -> None:
        """Issue and (sim) simulate at once: for the loop thread's own moves (reset, holds)."""
        self._simulate(self._issue(pose, kind))

    def _publish_frame(self, stamp: Any, labels: Any, kind: str) -> None:
        backend, size = self.backend, int(self.config.full_image_size)
        payload = None
        if labels is not None:
            payload = {"kind": kind, "step": self.step_count, **backend.labels_dict(labels)}
        render_full = (lambda: backend.full_image(size, size)) if size > 0 else None
        frame = SimFrame(stamp, backend.measured_pose(), backend.image(), payload, render_full)
        self.outputs.sim_frame(frame)

    def _watchdog(self) -> None:
        pending = None
        with self.lock:
            measured = self.backend.measured_pose()
            if measured is None:
                return
            decision = self.filter.tick(measured)
            if decision is not None:
                pending = self._issue(decision.pose, "hold")
            elif (
                self.backend.steps_physics
                and self.filter.commanded is not None
                and (self.filter.held or self.filter.estopped)
                and self.clock() - self.last_step_time >= self.period
            ):
                # the simulated world does not stop while the arm is held
                pending = self._issue(self.filter.commanded, "hold")
        self._simulate(pending)
        if decision is not None:
            self._event("watchdog_hold", decision.reason)

    def _hard_box(self) -> None:
        """Latch the e-stop when the measured TCP leaves the hard box; armed again once it is
        back inside (the hold pulls it in), so one excursion is told once."""
        with self.lock:
            measured = self.backend.measured_pose()
            if measured is None:
                return
            why = self.filter.limits.workspace.beyond_hard_box(measured)
            if not why:
                self._box_armed = True
                return
            if self.filter.estopped:
                return  # latched already: the hold pulls it in, the operator releases
            if not self._box_armed:
                self._log_throttled(
                    "outside box", 10.0, "warn",
                    f"arm_node: {why} (not inside since start-up or the last e-stop): "
                    "guide the arm over the task area",
                )  # fmt: skip
                return
            self._box_armed = False
            self._stopped(self.filter.estop(measured).pose)
        release = self.config.release_service
        self._event("hard_box", f"{why}: e-stop latched")
        self._log(
            "error",
            f"arm_node: {why}: E-STOP latched. Check the arm, the scene and the pose estimate, "
            f"then release it: rosservice call {release}",
        )
        self.publish_status()

    def _backend_events(self) -> None:
        for event in self.backend.poll_events():
            self._handle_backend_event(event)

    def _handle_backend_event(self, event: BackendEvent) -> None:
        recovering = "Recovering automatically." if event.kind in ("reflex", "error") else ""
        self._log(
            "error", f"arm_node: {event.kind} ({event.detail}). The episode is marked. {recovering}"
        )
        self._event(event.kind, event.detail, **event.data)
        if event.kind == "user_stopped":
            # the operator pressed the external stop: latch until they release it and us
            with self.lock:
                self._stopped(self.filter.estop(self.backend.measured_pose()).pose)
            self._log(
                "error",
                "arm_node: external stop pressed: e-stop latched. Release the external stop, "
                f"then rosservice call {self.config.release_service}",
            )
            self.publish_status()
            return
        with self.lock:
            self._stopped(self.filter.hold(self.backend.measured_pose(), reason=event.kind).pose)
        if event.kind in ("reflex", "error") and self.config.auto_recover:
            self._recover_from(event.kind)
        self.publish_status()

    def _recover_from(self, kind: str) -> None:
        ok = self.backend.recover()
        with self.lock:
            measured = self.backend.measured_pose()
            if ok and measured is not None:
                # re-sync: the next command starts from where the arm is now (an e-stop latched
                # meanwhile stays latched; this pose is a hold either way)
                self.filter.reset(measured)
                self.backend.send(self.filter.commanded)
        if ok and measured is not None:
            self._event("recovered", "error recovery succeeded")
            self._log("info", f"arm_node: recovered from {kind}")
            return
        with self.lock:
            self._stopped(self.filter.estop(measured).pose)
        self._event("recovery_failed", "error recovery failed: e-stop latched")
        self._log(
            "error",
            "arm_node: error recovery failed. Check the robot (Desk, external stop, collisions), "
            f"then rosservice call {self.config.release_service} and "
            f"{self.config.reset_service}.",
        )

    # ------------------------------------------------------------------ reset (loop thread)
    def reset_episode(self, layout_seed: int | None = None) -> Answer:
        """A new episode, in the loop thread (request_reset from any other): sim: a new layout
        at the home pose; real arm: a walk home through the filter. Refused while latched."""
        if self.backend.steps_physics:
            with self.lock:
                if self.filter.estopped:
                    return Answer(False, self.estop_refusal())
                info = self.backend.reset(layout_seed)
                home = self.backend.measured_pose()
                self.filter.reset(self.filter.limits.workspace.home_pose())
                self.step_count = 0
                self._take_action()  # sent before the episode began
                self._publish_frame(self.stamp(), None, "reset")
        else:
            if self.filter.estopped:  # before anything moves or recovers (checked again below)
                return Answer(False, self.estop_refusal())
            mode = self.backend.robot_mode
            if mode == RobotMode.USER_STOPPED:
                return Answer(False, "the external stop is pressed: release it, then reset again")
            if mode == RobotMode.REFLEX and not self.backend.recover():
                return Answer(
                    False, "error recovery failed: check the robot in Desk, then reset again"
                )
            info = self.backend.reset(layout_seed)
            try:
                home = self._walk_home()
            except Interrupted as stop:
                return Answer(False, str(stop))
            self._take_action()
        info["pose"] = np.asarray(home).tolist()
        self.info = info
        self._event("reset", "", **info)
        self.publish_status()
        return Answer(True, json.dumps(info))

    def _walk_home(self) -> np.ndarray:
        """Real arm: walk the command to the home pose through the filter, one step a period.
        An e-stop or hold (checked under the lock before every pose) ends the walk at once.
        Raises TimeoutError (holding where the arm is) after `home_timeout`."""
        workspace = self.filter.limits.workspace
        target = workspace.home_pose()
        with self.lock:
            if self.filter.estopped:
                raise Interrupted(self.estop_refusal())
            start = self._measured()  # one reading: the check and the walk's reference
            outside = workspace.beyond_hard_box(start)
            if outside:  # the first pose would be clipped into the box: a jump of the spring
                raise Interrupted(
                    f"reset refused, nothing was sent: {outside}. Bring the arm over the task "
                    "area first (docs/ros.md: franka_example_controllers' move_to_start.launch "
                    "or hand-guiding), then reset again"
                )
            stops = self.stops
            self._interrupt.clear()
            self.filter.reset(start)
        deadline = self.clock() + float(self.config.home_timeout)
        reached = False
        measured = self._measured()
        while not self.is_shutdown():
            with self.lock:
                if self.stops != stops:
                    why = "the e-stop was latched" if self.filter.estopped else "a hold"
                    raise Interrupted(
                        f"reset interrupted by {why}: the arm holds where it is; "
                        + ("release it, then " if self.filter.estopped else "")
                        + "reset again"
                    )
                if not reached:
                    try:
                        pose, reached = self.filter.step_towards(target, self._measured())
                    except OutsideHardBox as why:  # pushed out on the way: keep the last pose
                        self._stopped(self.filter.hold(self._measured(), "walk home").pose)
                        raise Interrupted(
                            f"reset interrupted: {why}; the arm holds the last pose sent"
                        ) from None
                    self._send(pose, "home")
                measured = self._measured()
                if reached and np.linalg.norm(measured[:3] - target[:3]) < HOME_TOLERANCE:
                    return measured
                if self.clock() > deadline:
                    self._stopped(self.filter.hold(measured, reason="home timeout").pose)
                    raise TimeoutError(
                        f"the arm did not reach the home pose within "
                        f"{self.config.home_timeout} s (at "
                        f"{np.round(measured[:3], 3).tolist()}); it holds where it is"
                    )
            self._wait(self._interrupt, self.period)
        return measured

    # ------------------------------------------------------------------ reporting
    def _event(self, kind: str, detail: str = "", **data: Any) -> None:
        self.outputs.event(kind, detail, data)

    def _log(self, level: str, message: str) -> None:
        self.outputs.log(level, message)

    def _log_throttled(self, key: str, period: float, level: str, message: str) -> None:
        """At most one message per `key` every `period` s (a 1 kHz stream of bad commands must
        not flood the log)."""
        now = self.clock()
        last = self._last_logged.get(key)
        if last is None or now - last >= period:
            self._last_logged[key] = now
            self._log(level, message)

    def status(self) -> dict[str, Any]:
        """The status report (arm_node adds the stamp)."""
        f = self.filter
        with self._slot:
            errors, culprits = dict(self.message_errors), dict(self.bad_publishers)
        return {
            "backend": self.backend.name,
            "estopped": f.estopped,
            "held": f.held,
            "counts": {**f.counts, "superseded": self.superseded},
            "rejected": dict(f.rejected),
            "message_errors": errors,
            "bad_publishers": culprits,
            "release_service": self.config.release_service,
            "control_hz": 1.0 / self.period,
            "rate_limit": f.config.rate_limit,
            "watchdog_timeout": f.config.watchdog_timeout,
            # the arm's own safety configuration (franka: collision thresholds, load, stiffness)
            "robot_settings": getattr(self.backend, "safety_settings", None),
            "episode": self.info,
        }

    def publish_status(self) -> None:
        self.outputs.status(self.status())
