"""Operator takeover: the SpaceMouse (through pyspacemouse and the real mapping, only the HID
C library faked) takes over on deflection and hands back after stillness; a rollout executes and
records the operator's actions and tells the policy what ran; the episode schema v2 stores who
acted and v1 episodes still load; the scripted sim operator takes over `reaction_delay` steps
after the hand comes within its margin of an obstacle."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fake_hid import FakeSpaceMouse, install

from data_collection.episode import (
    ACTOR_OPERATOR,
    EpisodeFormatError,
    read_episode,
    write_episode,
)
from data_collection.rollout import rollout
from data_collection.takeover import ScriptedTakeover, ScriptedTakeoverConfig, TeleopTakeover
from data_collection.teleop.base import FakeClock
from data_collection.teleop.mapping import MappingConfig
from data_collection.teleop.spacemouse import SpaceMouseConfig, SpaceMouseTeleop
from tests.collection.factories import make_episode

OBS = {"pose": np.zeros(6, np.float32)}


def test_spacemouse_deflection_takes_over_and_stillness_hands_back(monkeypatch):
    device = FakeSpaceMouse()
    install(monkeypatch, [device])
    mapping = MappingConfig(smoothing=0.0, deadzone=0.1, rotation_gain=0.5)
    teleop = SpaceMouseTeleop(SpaceMouseConfig(mapping=mapping), FakeClock())
    teleop.start()
    takeover = TeleopTakeover(teleop, release_steps=3)
    proposed = np.full(6, 0.3, np.float32)

    def step(**gesture):
        device.move(**gesture)
        device.wait_consumed()
        return takeover.action(OBS, proposed)

    try:
        assert step() is None and not takeover.in_control  # untouched: the policy acts
        assert step(up=0.05) is None  # inside the deadzone: still the policy
        np.testing.assert_allclose(step(up=1.0), [0, 0, 1, 0, 0, 0], atol=1e-6)  # lift: taken
        assert takeover.in_control
        np.testing.assert_allclose(step(away=-1.0), [1, 0, 0, 0, 0, 0], atol=1e-6)
        held = [step(), step()]  # let go: the operator's zero holds the arm ...
        assert all(a is not None and not a.any() for a in held) and takeover.in_control
        assert step() is None and not takeover.in_control  # ... 3 still steps hand back
        np.testing.assert_allclose(step(right=1.0), [0, 1, 0, 0, 0, 0], atol=1e-6)  # again
        takeover.reset()
        assert not takeover.in_control
    finally:
        teleop.stop()


class StepsTakeover:
    """Takes over for actions [first, last] with a fixed action (a stand-in operator)."""

    name = "steps"

    def __init__(self, first: int, last: int, action):
        self.first, self.last, self.command = first, last, np.asarray(action, np.float32)
        self.t, self.in_control = 0, False

    def reset(self) -> None:
        self.t = 0

    def action(self, obs, proposed):
        self.in_control = self.first <= self.t <= self.last
        self.t += 1
        return self.command if self.in_control else None


def test_a_rollout_executes_records_and_reports_the_operators_actions(tmp_path):
    from robot.env import EnvConfig, SafeReachEnv

    env = SafeReachEnv(EnvConfig(task="train"))
    told: list[np.ndarray] = []

    def policy(obs):
        return np.array([0.5, 0, 0, 0, 0, 0], np.float32)

    policy.executed = told.append
    try:
        result = rollout(
            env, policy, {"task": "train", "layout_seed": 3, "control_hz": 10.0,
                          "label_source": "oracle"},
            options={"layout_seed": 3}, takeover=StepsTakeover(5, 9, [0, -1, 0, 0, 0, 0]),
            max_steps=20,
        )  # fmt: skip
    finally:
        env.close()
    episode = result.episode
    actions = episode.steps["action"][:-1]
    operator = np.zeros(20, bool)
    operator[5:10] = True
    np.testing.assert_array_equal(episode.operator_steps, operator)
    np.testing.assert_allclose(actions[operator], np.tile([0, -1, 0, 0, 0, 0], (5, 1)))
    np.testing.assert_allclose(actions[~operator], np.tile([0.5, 0, 0, 0, 0, 0], (15, 1)))
    assert len(told) == 5 and all(np.array_equal(a, [0, -1, 0, 0, 0, 0]) for a in told)
    assert episode.interventions == 1 and episode.intervention_rate == pytest.approx(0.25)
    # the operator's sideways motion really ran: the hand moved in -y during the takeover only
    y = episode.steps["pose"][:, 1]
    assert y[10] - y[5] < -0.05 and abs(y[5] - y[0]) < 0.01 and abs(y[20] - y[10]) < 0.01
    path = write_episode(episode, tmp_path)
    again = read_episode(path)
    assert again.metadata["schema_version"] == 2 and again.steps["actor"][-1] == 0
    np.testing.assert_array_equal(again.operator_steps, operator)


def test_schema_v1_episodes_still_load_and_a_bad_actor_is_named(tmp_path):
    import zipfile

    old = make_episode(1)
    old.metadata["schema_version"] = 1
    path = write_episode(old, tmp_path)
    loaded = read_episode(path)  # a version-1 file: no actor, nobody took over
    assert "actor" not in loaded.steps and loaded.interventions == 0
    assert not loaded.operator_steps.any() and loaded.intervention_rate == 0.0
    for actor, version, problem in (
        ([0, 2], 2, "not 0 or 1"),
        ([0, 1], 2, "last row"),
        ([1, 0], 1, "schema_version 2"),
    ):
        episode = make_episode(2)
        n = len(episode)
        episode.steps["actor"] = np.asarray((actor * n)[:n], np.uint8)
        episode.metadata["schema_version"] = version
        if problem == "last row":
            episode.steps["actor"][-1] = ACTOR_OPERATOR
        with pytest.raises(EpisodeFormatError, match=problem) as err:
            write_episode(episode, tmp_path / f"bad{version}{actor}")
        assert err.value.field == "actor"
    with zipfile.ZipFile(path) as z:  # what a v1 reader sees: the version it wrote
        assert json.loads(np.load(z.open("metadata.npy")).item())["schema_version"] == 1


def test_scripted_operator_takes_over_after_its_reaction_delay():
    """Rule, not trajectory: the first takeover comes exactly reaction_delay steps after the
    robot first approached an obstacle within the margin (ground-truth clearance under it and
    shrinking), and it hands back above the obstacles and clear of them, or after max_control."""
    from robot.env import EnvConfig, SafeReachEnv

    env = SafeReachEnv(EnvConfig(task="unseen-3"))
    cfg = ScriptedTakeoverConfig()
    takeover = ScriptedTakeover(env, cfg)
    clearance: list[float] = []

    class Observed:
        """The takeover's own view each step, recorded before it decides."""

        def __init__(self):
            self.name, self.in_control = "observed", False

        def reset(self):
            takeover.reset()

        def action(self, obs, proposed):
            clearance.append(env.sim.obstacle_clearance())
            out = takeover.action(obs, proposed)
            self.in_control = takeover.in_control
            return out

    def straight_down_and_across(obs):  # a policy that ploughs through the obstacles
        z = obs["pose"][2]
        return np.array([0.6, 0.0, -1.0 if z > 0.03 else 0.0, 0, 0, 0], np.float32)

    try:
        result = rollout(
            env, straight_down_and_across,
            {"task": "unseen-3", "layout_seed": 11, "control_hz": 10.0, "label_source": "oracle"},
            options={"layout_seed": 11}, takeover=Observed(),
        )  # fmt: skip
    finally:
        env.close()
    episode = result.episode
    c = np.asarray(clearance)
    alarm = np.r_[False, (c[1:] < cfg.margin) & (c[:-1] - c[1:] > cfg.approach)]
    assert alarm.any(), "the policy never came near an obstacle: choose another layout"
    first_alarm = int(np.argmax(alarm))
    first_takeover = int(np.argmax(episode.operator_steps))
    assert episode.operator_steps.any() and first_takeover == first_alarm + cfg.reaction_delay
    assert not episode.operator_steps[:first_takeover].any()
    # it handed back: the first policy step after the takeover is above the obstacle tops and
    # clear of them, or the operator let go after max_control steps
    after = np.flatnonzero(~episode.operator_steps[first_takeover:]) + first_takeover
    assert len(after), "the operator never handed back"
    back = after[0]
    top = 2 * env.task.obstacles.half_height
    clear = episode.steps["pose"][back, 2] > top + cfg.clear_height and c[back] >= cfg.margin
    assert clear or back - first_takeover >= cfg.max_control


def test_the_control_view_says_who_is_in_control():
    from data_collection.takeover import CONTROL_VIEW, control_view
    from data_collection.teleop import draw

    image = np.full((64, 64, 3), (0, 0, 255), np.uint8)  # a blue RGB observation
    policy = control_view(image, operator=False, step=5, steps=80, takeovers=0)
    operator = control_view(image, operator=True, step=6, steps=80, takeovers=1)
    assert policy.shape == (CONTROL_VIEW[1], CONTROL_VIEW[0], 3)
    banner = (slice(0, 60), slice(300, 400))  # right of the banner's text
    assert (policy[banner] == draw.GREEN).all(axis=-1).all()
    assert (operator[banner] == draw.RED).all(axis=-1).all()
    np.testing.assert_array_equal(operator[200, 200], [255, 0, 0])  # the camera, in BGR
