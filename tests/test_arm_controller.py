"""ArmController without ROS: a fake backend, a fake clock, recorded outputs.

The operator's stop rules at the controller level (tests/ros proves them again over a roscore,
under load): an e-stop latches under the filter's lock, tells the backend to hold and drops the
waiting action before it answers; nothing but the hold pose reaches the backend after it; a walk
home is checked before every pose; only release() clears the latch, never reset, and release is
refused while the external stop is pressed; bad actions never reach the backend.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from robot.arm_controller import Answer, ArmController, ControllerConfig, SimFrame
from robot.backends.base import BackendEvent, RobotMode
from robot.safety import MAX_STEP_FACTOR, SafetyConfig, SafetyFilter, within_limits
from robot.workspace import ControlLimits

LIMITS = ControlLimits()
HOME = LIMITS.workspace.home_pose()
FAR = np.array([0.60, 0.10, 0.05, 0.0, 0.0, 0.0])  # a corner of the box, ~0.23 m from home
PERIOD = 1.0 / LIMITS.step.control_hz
CONFIG = ControllerConfig(
    control_hz=LIMITS.step.control_hz,
    home_timeout=5.0,
    full_image_size=32,
    release_service="/test/release_estop",
    reset_service="/test/reset",
    action_topic="/test/action",
)


class FakeClock:
    """Monotonic time that moves only when told to; wait() advances it by the period asked for
    (less when the event is already set) and then runs `on_wait` (another thread's turn)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.waits = 0
        self.on_wait = None  # callable(number of waits so far)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if not event.is_set():
            self.t += seconds
        self.waits += 1
        if self.on_wait is not None:
            self.on_wait(self.waits)
        return event.is_set()


class FakeArm:
    """A backend. sim=True: send() steps physics and returns labels, like SimBackend; else it
    forwards poses, like FrankaBackend. The measured pose follows each command at once when
    `follow`, else it stays where it is (a blocked arm)."""

    name = "fake"

    def __init__(self, sim: bool, start: np.ndarray, follow: bool = True):
        self.steps_physics = self.publishes_images = sim
        self.robot_mode: int | None = None if sim else RobotMode.MOVE
        self.pose: np.ndarray | None = None if start is None else start.copy()
        self.follow = follow
        self.sent: list[np.ndarray] = []
        self.holds: list[dict] = []
        self.events: list[BackendEvent] = []
        self.resets: list[int | None] = []
        self.recover_ok = True
        self.recover_calls = 0
        self.on_send = None  # callable(pose): something that happens while a pose executes
        self.fail_next_send = False
        self.safety: SafetyFilter | None = None

    def measured_pose(self) -> np.ndarray | None:
        return None if self.pose is None else self.pose.copy()

    def send(self, pose: np.ndarray):
        if self.fail_next_send:
            self.fail_next_send = False
            raise OSError("the driver went away")
        self.sent.append(np.array(pose, dtype=float))
        if self.follow:
            self.pose = np.array(pose, dtype=float)
        if self.on_send is not None:
            self.on_send(pose)
        return {"n": len(self.sent)} if self.steps_physics else None

    def hold(self, pose: np.ndarray | None) -> None:
        lock = self.safety.lock
        free = []  # can another thread take the filter's lock while we are told to hold?
        probe = threading.Thread(target=lambda: free.append(lock.acquire(blocking=False)))
        probe.start()
        probe.join()
        if free[0]:
            lock.release()
        self.holds.append(
            {
                "pose": None if pose is None else np.array(pose),
                "under_lock": not free[0],
                "latched": self.safety.estopped,
            }
        )

    def reset(self, layout_seed: int | None = None) -> dict:
        self.resets.append(layout_seed)
        if self.steps_physics:
            self.pose = HOME.copy()
        return {"layout_seed": layout_seed}

    def image(self) -> np.ndarray | None:
        return np.zeros((64, 64, 3), np.uint8) if self.steps_physics else None

    def full_image(self, width: int, height: int) -> np.ndarray | None:
        return np.zeros((height, width, 3), np.uint8) if self.steps_physics else None

    def labels_dict(self, labels) -> dict:
        return {"sim_step": labels["n"]} if labels else {}

    def poll_events(self) -> list[BackendEvent]:
        events, self.events = self.events, []
        return events

    def recover(self) -> bool:
        self.recover_calls += 1
        if self.recover_ok:
            self.robot_mode = RobotMode.MOVE
        return self.recover_ok

    def close(self) -> None:
        pass


class Outputs:
    """Everything the controller says, in order."""

    def __init__(self) -> None:
        self.poses: list[tuple[np.ndarray, int]] = []  # commanded_pose: (pose, stamp)
        self.frames: list[SimFrame] = []
        self.events: list[dict] = []
        self.statuses: list[dict] = []
        self.logs: list[tuple[str, str]] = []

    def commanded(self, pose, stamp) -> None:
        self.poses.append((np.array(pose), stamp))

    def sim_frame(self, frame: SimFrame) -> None:
        self.frames.append(frame)

    def event(self, kind: str, detail: str, data: dict) -> None:
        self.events.append({"event": kind, "detail": detail, **data})

    def status(self, status: dict) -> None:
        json.dumps(status)  # it must be JSON-ready: arm_node publishes it as JSON
        self.statuses.append(status)

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]

    def logged(self, text: str) -> int:
        return sum(text in message for _, message in self.logs)


class Rig:
    def __init__(self, sim: bool, start=HOME, follow: bool = True, config=CONFIG):
        self.clock = FakeClock()
        self.filter = SafetyFilter(
            SafetyConfig(limits=LIMITS, rate_limit=not sim), clock=self.clock
        )
        self.arm = FakeArm(sim, start, follow)
        self.arm.safety = self.filter
        self.out = Outputs()
        self.stamps = iter(range(1, 10**6))
        self.ctrl = ArmController(
            self.arm,
            self.filter,
            self.out,
            config,
            clock=self.clock,
            stamp=lambda: next(self.stamps),
            wait=self.clock.wait,
        )

    def act(self, action, passes: int = 1) -> None:
        """An action message, then loop passes one control period apart."""
        self.ctrl.on_action(list(action))
        for _ in range(passes):
            self.ctrl.loop_once()
            self.clock.advance(PERIOD)


@pytest.fixture(params=[True, False], ids=["sim", "franka"])
def rig(request) -> Rig:
    return Rig(sim=request.param)


def expected_step(previous: np.ndarray, action, measured: np.ndarray) -> np.ndarray:
    delta = LIMITS.action_to_delta(np.asarray(action, float))
    return LIMITS.clip_pose(LIMITS.apply_delta(previous, delta), reference=measured)


# ---------------------------------------------------------------------------------------- actions
def test_an_action_goes_through_the_filter_to_the_backend(rig):
    rig.act([1, 0, -0.5, 0, 0, 0.25])
    assert len(rig.arm.sent) == 1
    np.testing.assert_allclose(rig.arm.sent[0], expected_step(HOME, [1, 0, -0.5, 0, 0, 0.25], HOME))
    # the same pose went out on commanded_pose, stamped when it was issued
    np.testing.assert_allclose(rig.out.poses[-1][0], rig.arm.sent[0])
    if rig.arm.steps_physics:  # one control period simulated, its frame published
        (frame,) = rig.out.frames
        assert frame.labels == {"kind": "command", "step": 1, "sim_step": 1}
        assert frame.stamp == rig.out.poses[-1][1]
        assert frame.render_full().shape == (32, 32, 3)


def test_bad_actions_never_reach_the_backend(rig):
    bad = [
        [float("nan")] * 6,
        [0, 0, float("inf"), 0, 0, 0],
        [0, 0, 0, 0, 0, -float("inf")],
        [0.0] * 5,
        [0.0] * 7,
        [],
        ["x", 0, 0, 0, 0, 0],
    ]
    for data in bad:
        rig.act(data)
    assert rig.arm.sent == [] and rig.filter.counts["rejected"] == len(bad)
    assert rig.out.logged("rejected command") == 1  # throttled: 1 a second
    rig.clock.advance(1.0)
    rig.act(bad[0])
    assert rig.out.logged("rejected command") == 2
    assert rig.ctrl.status()["counts"]["rejected"] == len(bad) + 1


def test_random_and_huge_actions_stay_within_the_limits(rig):
    """Hundreds of random, saturated, huge and non-finite actions: every pose the backend gets
    is finite, in the box and tilt limit, and at most one full step from the previous one."""
    rng = np.random.default_rng(3)
    for i in range(600):
        kind = i % 4
        if kind == 0:
            action = rng.uniform(-1, 1, 6)
        elif kind == 1:
            action = rng.choice([-1.0, 1.0], 6)
        elif kind == 2:
            action = rng.normal(0, 1, 6) * 10.0 ** rng.integers(1, 300)
        else:
            action = rng.uniform(-1, 1, 6)
            action[rng.integers(6)] = rng.choice([np.nan, np.inf, -np.inf])
        rig.act(action.tolist())
    assert len(rig.arm.sent) == 450  # the non-finite quarter sent nothing
    previous = HOME
    for pose in rig.arm.sent:
        ok, why = within_limits(pose, LIMITS)
        assert ok, why
        step = np.linalg.norm(pose[:3] - previous[:3])
        assert step <= MAX_STEP_FACTOR * LIMITS.step.max_translation + 1e-9
        previous = pose


def test_the_newest_action_wins(rig):
    rig.ctrl.on_action([1, 0, 0, 0, 0, 0])
    rig.ctrl.on_action([0, 1, 0, 0, 0, 0])
    rig.ctrl.on_action([0, -1, 0, 0, 0, 0])
    rig.ctrl.loop_once()
    (pose,) = rig.arm.sent
    np.testing.assert_allclose(pose, expected_step(HOME, [0, -1, 0, 0, 0, 0], HOME))
    assert rig.ctrl.status()["counts"]["superseded"] == 2


def test_no_measured_pose_yet_sends_nothing():
    rig = Rig(sim=False, start=None)
    rig.act([1, 0, 0, 0, 0, 0])
    assert rig.arm.sent == [] and rig.out.logged("no measured pose yet") == 1


def test_the_loop_survives_a_backend_error(rig):
    rig.arm.fail_next_send = True
    rig.act([1, 0, 0, 0, 0, 0])  # must not raise: the loop thread would die with the node up
    assert rig.out.logged("loop error") == 1 and rig.arm.sent == []
    rig.act([1, 0, 0, 0, 0, 0])
    assert len(rig.arm.sent) == 1


def test_bad_messages_are_counted_and_each_publisher_is_named(rig):
    rig.ctrl.bad_message("wrong_type", "/talker", "type std_msgs/String")
    rig.ctrl.bad_message("wrong_type", "/talker", "type std_msgs/String")
    rig.ctrl.bad_message("malformed", "/broken", "does not deserialize")
    status = rig.ctrl.status()
    assert status["message_errors"] == {"wrong_type": 2, "malformed": 1}
    assert set(status["bad_publishers"]) == {"/talker", "/broken"}
    assert rig.out.logged("dropped a message on /test/action from /talker") == 1
    assert rig.out.logged("from /broken") == 1
    assert len(rig.out.statuses) == 2  # a status on each new culprit


# ---------------------------------------------------------------------------------------- stops
def test_estop_latches_under_the_lock_holds_and_drops_the_waiting_action(rig):
    rig.act([1, 0, 0, 0, 0, 0])
    where = rig.arm.measured_pose()
    sent_before = len(rig.arm.sent)
    rig.ctrl.on_action([0, 1, 0, 0, 0, 0])  # waiting for the loop when the stop comes
    answer = rig.ctrl.estop(by="/operator")
    assert answer.success and "/test/release_estop" in answer.message
    # before it answered: latched, backend told to hold the measured pose, under the lock
    (hold,) = rig.arm.holds
    assert hold["latched"] and hold["under_lock"]
    np.testing.assert_allclose(hold["pose"], LIMITS.clip_pose(where))
    np.testing.assert_allclose(rig.out.poses[-1][0], hold["pose"])
    assert rig.out.events[-1]["event"] == "estop" and rig.out.events[-1]["by"] == "/operator"
    assert rig.out.statuses[-1]["estopped"]
    # the waiting action is gone (it never reaches the filter) and every new one is dropped
    rig.ctrl.loop_once()
    assert rig.filter.counts["estopped"] == 0 and rig.ctrl.status()["counts"]["superseded"] == 0
    for _ in range(5):
        rig.act([1, 1, 0, 0, 0, 0], passes=3)
    moved = [p for p in rig.arm.sent[sent_before:] if not np.allclose(p, hold["pose"])]
    assert moved == []
    assert rig.filter.counts["estopped"] == 5


def test_estop_during_a_simulated_period_holds_from_the_next_period_on():
    """The stop arrives while the world runs a command's period (outside the lock, as on the
    real arm): that period ends, every later one runs at the hold pose."""
    rig = Rig(sim=True)
    rig.act([1, 0, 0, 0, 0, 0], passes=2)
    rig.arm.on_send = lambda pose: rig.ctrl.estop(by="/operator")
    rig.ctrl.on_action([1, 0, 0, 0, 0, 0])
    rig.ctrl.loop_once()  # the period during which the stop is answered
    rig.arm.on_send = None
    hold = rig.arm.holds[-1]["pose"]
    after = len(rig.arm.sent)
    for _ in range(10):  # the world keeps running, held; the policy keeps sending
        rig.ctrl.on_action([1, 0, 0, 0, 0, 0])
        rig.ctrl.loop_once()
        rig.clock.advance(PERIOD)
    held = rig.arm.sent[after:]
    assert len(held) >= 9  # one period of simulated physics per control period
    for pose in held:
        np.testing.assert_allclose(pose, hold)
    assert all(f.labels["kind"] == "hold" for f in rig.out.frames[-len(held) :])


def test_hold_holds_without_latching(rig):
    rig.act([1, 0, 0, 0, 0, 0])
    answer = rig.ctrl.hold(by="/policy")
    assert answer == Answer(True, "holding the measured pose")
    assert rig.arm.holds[-1]["under_lock"] and not rig.filter.estopped
    measured = rig.arm.measured_pose()
    rig.act([0, 1, 0, 0, 0, 0])  # the next command resumes from the held pose
    np.testing.assert_allclose(
        rig.arm.sent[-1], expected_step(rig.arm.holds[-1]["pose"], [0, 1, 0, 0, 0, 0], measured)
    )


def test_a_hold_drops_the_action_sent_before_it(rig):
    rig.act([1, 0, 0, 0, 0, 0])
    sent = len(rig.arm.sent)
    rig.ctrl.on_action([1, 0, 0, 0, 0, 0])  # sent before the hold: never executed after it
    rig.ctrl.hold(by="/policy")
    rig.ctrl.loop_once()
    hold = rig.arm.holds[-1]["pose"]
    for pose in rig.arm.sent[sent:]:  # in sim the held world runs on, at the hold pose
        np.testing.assert_allclose(pose, hold)
    assert rig.filter.held and rig.filter.counts["command"] == 1


def test_reset_is_refused_while_latched_and_never_clears_it(rig):
    rig.ctrl.estop(by="/operator")
    for answer in (rig.ctrl.request_reset(), rig.ctrl.reset_episode(3)):
        assert not answer.success
        assert (
            "latched" in answer.message and "rosservice call /test/release_estop" in answer.message
        )
    assert rig.filter.estopped and rig.arm.resets == []
    assert rig.ctrl.hold().success and rig.filter.estopped  # a hold keeps the latch
    answer = rig.ctrl.release(by="/operator")
    assert answer.success and "released" in answer.message and not rig.filter.estopped
    assert rig.out.events[-1] == {
        "event": "released", "detail": answer.message, "by": "/operator", "estop": True
    }  # fmt: skip
    assert rig.ctrl.reset_episode(3).success
    rig.act([1, 0, 0, 0, 0, 0])
    assert not np.allclose(rig.arm.sent[-1], rig.arm.holds[-1]["pose"])  # moving again


def test_release_without_a_latch_is_only_a_go_ahead(rig):
    answer = rig.ctrl.release(by="/operator")
    assert answer.success and "no e-stop was latched" in answer.message
    assert rig.out.events[-1]["estop"] is False


def test_the_external_stop_latches_and_release_is_refused_while_it_is_pressed():
    rig = Rig(sim=False, start=FAR)
    rig.arm.robot_mode = RobotMode.USER_STOPPED
    rig.arm.events.append(BackendEvent("user_stopped", "robot_mode 5 (user_stopped)"))
    rig.ctrl.loop_once()
    assert rig.filter.estopped and rig.arm.holds[-1]["under_lock"]
    assert rig.out.kinds()[-1] == "user_stopped" and rig.arm.recover_calls == 0
    assert rig.out.logged("external stop pressed: e-stop latched") == 1
    refused = rig.ctrl.release(by="/operator")
    assert not refused.success and "external stop is still pressed" in refused.message
    assert rig.filter.estopped
    refused = rig.ctrl.request_reset()
    assert not refused.success and "external stop is pressed" in refused.message
    rig.arm.robot_mode = RobotMode.MOVE  # the operator released the external stop
    refused = rig.ctrl.reset_episode()
    assert not refused.success and "release" in refused.message  # our latch still holds
    assert rig.arm.sent == []
    assert rig.ctrl.release(by="/operator").success
    assert rig.ctrl.reset_episode().success


def test_a_reflex_holds_recovers_and_resyncs_to_the_arm():
    rig = Rig(sim=False)
    rig.act([1, 0, 0, 0, 0, 0])
    rig.arm.pose = rig.arm.pose + np.array([0.004, 0, 0, 0, 0, 0])  # pushed during the reflex
    rig.arm.robot_mode = RobotMode.REFLEX
    rig.arm.events.append(BackendEvent("reflex", "robot_mode 4 (reflex)", {"errors": ["x"]}))
    rig.ctrl.loop_once()
    assert rig.out.kinds()[-2:] == ["reflex", "recovered"]
    assert rig.out.events[-2]["errors"] == ["x"]
    assert rig.arm.recover_calls == 1 and not rig.filter.estopped
    np.testing.assert_allclose(rig.arm.sent[-1], rig.arm.pose)  # no jump after the recovery
    assert rig.out.logged("The episode is marked. Recovering automatically.") == 1


def test_a_failed_recovery_latches_the_estop():
    rig = Rig(sim=False)
    rig.arm.recover_ok = False
    rig.arm.events.append(BackendEvent("error", "joint limit", {"errors": ["joint_limit"]}))
    rig.ctrl.loop_once()
    assert rig.filter.estopped and rig.out.kinds()[-2:] == ["error", "recovery_failed"]
    assert rig.out.logged("rosservice call /test/release_estop and /test/reset") == 1


def test_a_reset_in_reflex_recovers_first():
    rig = Rig(sim=False, start=FAR)
    rig.arm.robot_mode = RobotMode.REFLEX
    rig.arm.recover_ok = False
    answer = rig.ctrl.reset_episode()
    assert not answer.success and "error recovery failed" in answer.message
    assert rig.arm.sent == [] and rig.arm.recover_calls == 1
    rig.arm.recover_ok = True
    assert rig.ctrl.reset_episode().success


# ---------------------------------------------------------------------------------------- watchdog
def test_the_watchdog_holds_once_and_the_simulated_world_keeps_running():
    rig = Rig(sim=True)
    rig.act([1, 0, 0, 0, 0, 0])
    rig.clock.advance(0.05)  # 0.15 s since the command: under the 0.2 s timeout
    rig.ctrl.loop_once()
    assert rig.out.kinds() == [] and len(rig.arm.sent) == 1
    rig.clock.advance(0.06)
    rig.ctrl.loop_once()
    assert rig.out.kinds() == ["watchdog_hold"] and rig.filter.held
    hold = rig.arm.sent[-1]
    np.testing.assert_allclose(hold, LIMITS.clip_pose(rig.arm.sent[0]))
    for _ in range(5):
        rig.clock.advance(0.06)
        rig.ctrl.loop_once()  # only every other pass is a full period after the last step
    assert len(rig.arm.sent) == 2 + 2 and rig.out.kinds() == ["watchdog_hold"]
    for pose in rig.arm.sent[1:]:
        np.testing.assert_allclose(pose, hold)
    rig.act([0, 1, 0, 0, 0, 0])  # the next command resumes from the held pose
    np.testing.assert_allclose(rig.arm.sent[-1], expected_step(hold, [0, 1, 0, 0, 0, 0], hold))


def test_the_watchdog_holds_the_real_arm_once():
    rig = Rig(sim=False)
    rig.act([1, 0, 0, 0, 0, 0])
    for _ in range(10):
        rig.clock.advance(0.1)
        rig.ctrl.loop_once()
    assert rig.out.kinds() == ["watchdog_hold"] and len(rig.arm.sent) == 2


# ---------------------------------------------------------------------------------------- reset
def test_a_sim_reset_starts_at_home_and_drops_a_waiting_action():
    rig = Rig(sim=True)
    rig.act([1, 0, 0, 0, 0, 0], passes=3)
    rig.ctrl.on_action([1, 0, 0, 0, 0, 0])  # sent before the episode began
    answer = rig.ctrl.reset_episode(7)
    assert answer.success and json.loads(answer.message) == {
        "layout_seed": 7, "pose": HOME.tolist()
    }  # fmt: skip
    assert rig.arm.resets == [7] and rig.ctrl.step_count == 0
    assert rig.out.frames[-1].labels is None  # a frame of the new layout, no step labels
    assert (
        rig.out.events[-1]["event"] == "reset"
        and rig.out.statuses[-1]["episode"]["layout_seed"] == 7
    )
    sent = len(rig.arm.sent)
    for _ in range(5):  # the world waits for the first command
        rig.ctrl.loop_once()
        rig.clock.advance(PERIOD)
    assert len(rig.arm.sent) == sent
    rig.act([0, 0, 1, 0, 0, 0])
    np.testing.assert_allclose(rig.arm.sent[-1], expected_step(HOME, [0, 0, 1, 0, 0, 0], HOME))


def test_the_walk_home_moves_in_filtered_steps():
    rig = Rig(sim=False, start=FAR)
    answer = rig.ctrl.reset_episode()
    assert answer.success, answer.message
    assert np.linalg.norm(np.asarray(json.loads(answer.message)["pose"])[:3] - HOME[:3]) < 0.005
    previous = FAR
    for pose in rig.arm.sent:
        assert within_limits(pose, LIMITS)[0]
        step = np.linalg.norm(pose[:3] - previous[:3])
        assert step <= MAX_STEP_FACTOR * LIMITS.step.max_translation + 1e-9
        previous = pose
    # 0.2 m in x at 2 cm a period: the walk took about 10 periods of (fake) time
    assert 10 <= len(rig.arm.sent) <= 12 and rig.clock.waits == len(rig.arm.sent) - 1


@pytest.mark.parametrize("stop", ["estop", "hold"])
def test_a_stop_ends_a_walk_home_before_the_next_pose(stop):
    """The arm does not follow, so the walk would go on for home_timeout; a stop between two
    poses (while the loop waits for the next period) ends it: no pose of the walk after it."""
    rig = Rig(sim=False, start=FAR, follow=False)
    stop_after = 3

    def operator(waits: int) -> None:
        if waits == stop_after:
            getattr(rig.ctrl, stop)(by="/operator")

    rig.clock.on_wait = operator
    answer = rig.ctrl.reset_episode()
    assert not answer.success and "reset interrupted by" in answer.message
    assert len(rig.arm.sent) == stop_after  # one pose per period, none after the stop
    np.testing.assert_allclose(rig.arm.holds[-1]["pose"], LIMITS.clip_pose(FAR))
    rig.clock.on_wait = None
    if stop == "estop":
        assert "the e-stop was latched" in answer.message and "release it" in answer.message
        refused = rig.ctrl.request_reset()
        assert not refused.success and "release" in refused.message
    else:
        assert "a hold" in answer.message and "release" not in answer.message
        assert not rig.filter.estopped


def test_a_walk_home_that_cannot_arrive_times_out_holding():
    rig = Rig(sim=False, start=FAR, follow=False)
    t0 = rig.clock()
    with pytest.raises(TimeoutError, match="did not reach the home pose within 5.0 s"):
        rig.ctrl.reset_episode()
    assert CONFIG.home_timeout < rig.clock() - t0 <= CONFIG.home_timeout + 1.5 * PERIOD
    assert rig.filter.held and rig.arm.holds[-1]["under_lock"]
    np.testing.assert_allclose(rig.arm.holds[-1]["pose"], LIMITS.clip_pose(FAR))


def test_request_reset_runs_in_the_loop_thread():
    rig = Rig(sim=False, start=FAR)
    done = threading.Event()
    ctrl = ArmController(
        rig.arm,
        rig.filter,
        rig.out,
        CONFIG,
        clock=rig.clock,
        wait=lambda event, seconds: event.wait(0.001),  # fake time stands still; keep going
        is_shutdown=done.is_set,
    )
    loop = threading.Thread(target=ctrl.run, daemon=True)
    loop.start()
    seed_taken_in = []
    try:
        answer = ctrl.request_reset(lambda: seed_taken_in.append(threading.current_thread()))
    finally:
        done.set()
        loop.join(timeout=10)
    assert answer.success, answer.message
    assert seed_taken_in == [loop] and not loop.is_alive()
    assert np.linalg.norm(rig.arm.pose[:3] - HOME[:3]) < 0.005


def test_the_measured_tcp_beyond_the_hard_box_latches_the_estop_once(rig):
    """Commands never lead outside the hard box (task area + 4 cm, tilt up to max_tilt): a
    measured TCP out there was pushed or collided, so the arm holds, the e-stop latches and the
    operator is told; within the margin (a compliant arm's tracking error) nothing happens."""
    ws = LIMITS.workspace
    inside_margin = np.array([ws.safe_high[0] - 0.001, 0.0, 0.08, 0.0, 0.0, 0.0])
    rig.arm.pose = inside_margin  # 3.9 cm beyond the command box: tracking error, allowed
    rig.ctrl.loop_once()
    assert not rig.filter.estopped and "hard_box" not in rig.out.kinds()
    rig.arm.pose = inside_margin + [0.011, 0, 0, 0, 0, 0]  # 10 mm beyond the hard box
    rig.ctrl.on_action([1, 0, 0, 0, 0, 0])  # waiting: dropped by the stop
    rig.ctrl.loop_once()
    assert rig.filter.estopped and rig.out.kinds().count("hard_box") == 1
    assert rig.ctrl._take_action() is None  # the waiting action was dropped, never sent
    event = rig.out.events[rig.out.kinds().index("hard_box")]
    assert "x 10.0 mm" in event["detail"] and "e-stop latched" in event["detail"], event
    assert rig.arm.holds[-1]["under_lock"] and rig.arm.holds[-1]["latched"]
    assert rig.out.logged("rosservice call /test/release_estop") == 1
    assert rig.out.statuses[-1]["estopped"]
    rig.ctrl.loop_once()  # still outside, already latched: told once
    assert rig.out.kinds().count("hard_box") == 1
    rig.arm.pose = inside_margin  # the hold pulled it back; the operator releases
    assert rig.ctrl.release("operator").success
    rig.ctrl.loop_once()
    assert not rig.filter.estopped and rig.out.kinds().count("hard_box") == 1
    rig.arm.pose = np.array([0.5, 0.0, 0.08, 0.0, ws.max_tilt + 0.05, 0.0])  # tipped over
    rig.ctrl.loop_once()
    assert rig.filter.estopped and rig.out.kinds().count("hard_box") == 2
    assert "tilt 0.050 rad" in rig.out.events[-1]["detail"]


def test_beyond_hard_box_by_hand():
    ws = LIMITS.workspace  # hard box x 0.335-0.665, y -0.165-0.165, z -0.005-0.175, tilt 0.40
    assert ws.beyond_hard_box(np.array([0.665, -0.165, 0.175, 0.2, 0.0, 0.0])) == ""
    text = ws.beyond_hard_box(np.array([0.30, 0.0, 0.20, 0.3, 0.3, 0.0]))
    assert "x 35.0 mm" in text and "z 25.0 mm" in text and "y" not in text.split("by")[1]
    assert "tilt 0.024 rad" in text  # |(0.3, 0.3, 0)| = 0.4243 - 0.40


def test_an_arm_that_starts_outside_the_hard_box_is_not_stopped_until_it_was_inside(rig):
    """A real arm may be parked anywhere at start-up (Franka's ready pose is ~35 cm above the
    box): latching there would leave no way home. The operator is warned instead; once the TCP
    has been inside, leaving latches."""
    ws = LIMITS.workspace
    parked = np.array([0.31, 0.0, 0.49, 0.0, 0.0, 0.0])
    rig.arm.pose = parked
    for _ in range(3):
        rig.ctrl.loop_once()
    assert not rig.filter.estopped and "hard_box" not in rig.out.kinds()
    assert rig.out.logged("guide the arm over the task area") == 1  # throttled
    rig.arm.pose = ws.home_pose()  # brought in (guided, or the walk home)
    rig.ctrl.loop_once()
    rig.arm.pose = parked
    rig.ctrl.loop_once()
    assert rig.filter.estopped and rig.out.kinds().count("hard_box") == 1


# Franka's ready pose (joints 0, -pi/4, 0, -3pi/4, 0, pi/2, pi/4): the TCP 35 cm above the
# command box (31 cm above the hard box)
READY = np.array([0.307, 0.0, 0.487, 0.0, 0.0, 0.0])


def test_an_arm_parked_outside_the_hard_box_is_never_commanded_into_it():
    """Clipping a pose far outside into the box moves the impedance controller's equilibrium
    by the whole distance in one message (here 36 cm): nothing is made from there. The reset
    is refused with where the arm is, actions are dropped, a stop sends nothing; once the arm
    is brought over the task area, the walk home starts from where it is."""
    rig = Rig(sim=False, start=READY)
    answer = rig.ctrl.reset_episode()
    assert not answer.success and "reset refused, nothing was sent" in answer.message
    assert "z 312.0 mm" in answer.message and "move_to_start.launch" in answer.message
    rig.act([1, 0, -1, 0, 0, 0], passes=3)
    assert rig.filter.counts["outside"] == 1 and rig.out.logged("command dropped") == 1
    assert rig.ctrl.estop("operator").success and rig.filter.estopped
    assert rig.arm.holds[-1]["pose"] is None  # nothing was ever sent: nothing to hold
    assert rig.arm.sent == [] and rig.out.poses == []
    assert rig.ctrl.release("operator").success
    rig.arm.pose = FAR  # brought over the task area
    answer = rig.ctrl.reset_episode()
    assert answer.success, answer.message
    assert np.linalg.norm(rig.arm.sent[0][:3] - FAR[:3]) <= (
        MAX_STEP_FACTOR * LIMITS.step.max_translation
    )


def test_an_arm_pushed_out_of_the_hard_box_on_the_walk_home_holds_the_last_pose_sent():
    """Pushed 30 cm up after the third pose: the walk ends without a pose made from out there,
    and the hold repeats the last walk pose (the equilibrium the controller already has)."""
    rig = Rig(sim=False, start=FAR, follow=True)

    def push(waits: int) -> None:
        if waits == 3:
            rig.arm.pose = rig.arm.pose + [0.0, 0.0, 0.30, 0.0, 0.0, 0.0]

    rig.clock.on_wait = push
    answer = rig.ctrl.reset_episode()
    assert not answer.success and "reset interrupted" in answer.message
    assert "outside the hard box by z" in answer.message
    assert "the arm holds the last pose sent" in answer.message
    assert len(rig.arm.sent) == 3
    np.testing.assert_allclose(rig.arm.holds[-1]["pose"], rig.arm.sent[-1])
