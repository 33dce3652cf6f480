"""`fosp collect --env sim` end to end, a scripted operator at the controls.

The operator drives the real teleop input layer (keyboard keys; SpaceMouse HID reports through
pyspacemouse and the fake hidapi) and presses the label keys/buttons `delay` steps after the
simulator's truth changes. The stored manual labels must equal the truth shifted by that delay,
row for row; discarded and re-recorded takes must leave nothing behind; a crash must leave every
earlier episode loadable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import HERE, REPO
from scripted_ui import Plan, ScriptedUI

from data_collection.dataset import Dataset
from data_collection.episode import read_episode
from data_collection.rollout import delayed_labels
from data_collection.teleop.base import FakeClock
from robot.errors import StaleObservationError
from robot.ros_processes import stop as stop_process

DELAY = 2


def label_agreement(dataset_dir, delay=DELAY) -> dict[str, float]:
    """Fraction of label rows equal to the truth (a) shifted by the delay, (b) unshifted, and
    (c) equal to it somewhere within the delay window [row - delay, row]."""
    exact = raw = window = total = 0
    for _, ep in Dataset(dataset_dir).episodes():
        for field in ("reward", "cost"):
            truth, labels = ep.steps[f"oracle_{field}"], ep.steps[field]
            exact += int((labels == delayed_labels(truth, delay)).sum())
            raw += int((labels == truth).sum())
            for j in range(len(labels)):
                lo = max(0, j - delay)
                window += int(labels[j] in truth[lo : j + 1])
            total += len(labels)
    return {"delayed": exact / total, "raw": raw / total, "within_delay": window / total}


def assert_clean(folder, n):
    names = sorted(os.listdir(folder))
    episodes = [x for x in names if x.endswith(".npz")]
    assert len(episodes) == n, names
    assert not [x for x in names if x.startswith(".")], names  # no temporary files
    assert set(names) - set(episodes) <= {"index.json"}, names


def test_keyboard_session_with_discard_and_rerecords(tmp_path, run_collect, capsys):
    clock = FakeClock()
    plans = [
        Plan(review="k"),  # 1: keep
        Plan(review="r"),  # 2: re-record from the review (same layout)
        Plan(review="k"),  # 3: keep (layout of 2)
        Plan(abort_at=30, abort_key="backspace"),  # 4: re-record mid-episode
        Plan(review="d"),  # 5: same layout as 4, discarded in the review
        Plan(review="k"),  # 6: keep
    ]
    ui = ScriptedUI("train", clock, plans, device="keyboard", delay=DELAY)
    out = tmp_path / "ds"
    argv = ["--env", "sim", "--task", "train", "--out", str(out), "--episodes", "3"]
    argv += ["--teleop", "keyboard", "--countdown", "1", "--seed", "7", "--operator", "script"]
    assert run_collect(ui, clock, argv) == 0
    assert ui.recordings == 6 and ui.closed
    assert_clean(out, 3)
    episodes = [e for _, e in Dataset(out).episodes()]
    layouts = [e.metadata["layout_seed"] for e in episodes]
    # 2 and 3 share a layout, 4 and 5 too; kept: 1, 3, 6. The discarded layout is nowhere.
    assert ui.layouts[1] == ui.layouts[2] and ui.layouts[3] == ui.layouts[4]
    assert sorted(layouts) == sorted([ui.layouts[0], ui.layouts[2], ui.layouts[5]])
    assert ui.layouts[4] not in layouts
    for ep in episodes:
        meta = ep.metadata
        assert meta["label_source"] == "manual" and meta["label_status"] == "live"
        assert (
            meta["teleop"] == "keyboard" and meta["env"] == "sim" and meta["operator"] == "script"
        )
        assert ep.num_actions == 80 and meta["status"] == "complete"
        for field in ("reward", "cost"):  # labels = truth, DELAY steps late, row for row
            truth = ep.steps[f"oracle_{field}"]
            np.testing.assert_array_equal(ep.steps[field], delayed_labels(truth, DELAY))
        assert meta["label_events"], "the keyboard label presses are logged"
    # the operator really labelled something: costs and rewards both occur
    assert any(e.steps["cost"].any() for e in episodes)
    assert any(e.steps["reward"].any() for e in episodes)
    assert Dataset(out).validate() == []
    agreement = label_agreement(out)
    with capsys.disabled():
        print(f"\nlabel agreement (keyboard, delay {DELAY}): {agreement}")
    assert agreement["delayed"] == 1.0 and agreement["within_delay"] == 1.0
    assert "kept 3, discarded 1, re-recorded 2" in capsys.readouterr().out


def test_spacemouse_session_appends(tmp_path, run_collect, monkeypatch):
    import fake_hid

    device = fake_hid.FakeSpaceMouse("SpaceMouseCompact")
    fake_hid.install(monkeypatch, [device])
    out = tmp_path / "ds"
    # an existing dataset: a first session of one episode, then a second of two
    for episodes, seed in ((1, 1), (2, 2)):
        clock = FakeClock()
        ui = ScriptedUI("train", clock, [Plan()], device="spacemouse", spacemouse=device)
        ui.seed = seed
        argv = ["--env", "sim", "--out", str(out), "--episodes", str(episodes), "--seed", "3"]
        argv += ["--teleop", "spacemouse", "--countdown", "0.5", "--smoothing", "0"]
        assert run_collect(ui, clock, argv) == 0
    assert_clean(out, 3)
    assert device.opened == 2 and device.closed == 2  # opened and closed once per session
    episodes = [e for _, e in Dataset(out).episodes()]
    assert len({e.metadata["layout_seed"] for e in episodes}) == 3  # appended, not repeated
    for ep in episodes:
        assert ep.metadata["teleop"] == "spacemouse"
        assert ep.metadata["teleop_mapping"]["yaw_deg"] == 90.0
        for field in ("reward", "cost"):
            truth = ep.steps[f"oracle_{field}"]
            np.testing.assert_array_equal(ep.steps[field], delayed_labels(truth, DELAY))
        sources = {e["source"] for e in ep.metadata["label_events"]}
        assert sources <= {"spacemouse"}
        # the SpaceMouse moved the arm: the TCP left home
        assert np.abs(ep.steps["pose"][:, :3] - ep.steps["pose"][0, :3]).max() > 0.05
    assert any(e.steps["cost"].any() for e in episodes)
    assert any(e.steps["reward"].any() for e in episodes)
    print(f"label agreement (spacemouse): {label_agreement(out)}")


def test_crash_mid_episode_keeps_earlier_episodes(tmp_path, run_collect):
    clock = FakeClock()
    plans = [Plan(), Plan(), Plan(crash_at=40)]
    ui = ScriptedUI("train", clock, plans, device="keyboard")
    out = tmp_path / "ds"
    argv = ["--env", "sim", "--out", str(out), "--episodes", "5", "--teleop", "keyboard"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_collect(ui, clock, [*argv, "--countdown", "0.2"])
    assert ui.closed  # the window was closed on the way out
    assert_clean(out, 2)
    assert Dataset(out).validate() == []
    assert len(Dataset(out).index()[0]) == 2


CHILD = """
import sys
sys.path.insert(0, {here!r})
from scripted_ui import Plan, ScriptedUI
from data_collection.teleop import base, window
from data_collection.teleop.base import FakeClock
clock = FakeClock()
ui = ScriptedUI("train", clock, [Plan(), Plan(), Plan(hang_at=40)])
window.CvWindow = lambda title: ui
base.RealClock = lambda: clock
from fosp.cli import main
sys.exit(main(["collect", "--env", "sim", "--out", {out!r}, "--episodes", "5",
               "--teleop", "keyboard", "--countdown", "0.2"]))
"""


def test_kill_9_mid_episode_keeps_earlier_episodes(tmp_path):
    out = tmp_path / "ds"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(here=str(HERE), out=str(out))],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        for line in proc.stdout:  # kept ..., kept ..., then HANG in the third episode
            lines.append(line)
            if line.strip() == "HANG":
                break
        assert lines and lines[-1].strip() == "HANG", "".join(lines)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        stop_process(proc, signal.SIGKILL)
    assert_clean(out, 2)
    for path in Dataset(out).episode_paths():
        assert read_episode(path).num_actions == 80


class StallingEnv:
    """The sim env whose observation goes stale at given (reset count, step) points."""

    def __init__(self, stalls):
        from robot.env import SafeReachEnv

        self.env = SafeReachEnv()
        self.metadata, self.config, self.task = self.env.metadata, self.env.config, self.env.task
        self.stalls, self.resets, self.steps = set(stalls), 0, 0

    def reset(self, **kw):
        self.resets += 1
        self.steps = 0
        return self.env.reset(**kw)

    def step(self, action):
        self.steps += 1
        if (self.resets, self.steps) in self.stalls:
            raise StaleObservationError("stale observation: newest image is 0.3 s old")
        return self.env.step(action)

    def close(self):
        self.env.close()


def recorder_for(env, ui, out, clock, episodes):
    from data_collection.recorder import CollectConfig, Recorder
    from data_collection.teleop.keyboard import KeyboardTeleop

    config = CollectConfig(episodes=episodes, countdown=0.2, seed=1)
    return Recorder(
        env, KeyboardTeleop(clock=clock), ui, Dataset(out), config, clock, lambda s: None
    )


def test_stale_observation_drops_the_take_and_records_the_layout_again(tmp_path):
    clock = FakeClock()
    env = StallingEnv({(1, 50)})  # the first take stalls at step 50
    ui = ScriptedUI("train", clock, [Plan()], device="keyboard")
    result = recorder_for(env, ui, tmp_path / "ds", clock, 1).run()
    assert result.rerecorded == 1 and result.aborted == 1 and len(result.kept) == 1
    assert ui.dropped == 1 and ui.layouts[0] == ui.layouts[1]  # the same layout again
    assert_clean(tmp_path / "ds", 1)
    # stale again and again: the session stops with the error, nothing half-written
    env = StallingEnv({(k, 5) for k in range(1, 10)})
    ui = ScriptedUI("train", clock, [Plan()], device="keyboard")
    with pytest.raises(StaleObservationError):
        recorder_for(env, ui, tmp_path / "ds2", clock, 1).run()
    assert env.resets == 4  # MAX_STALE = 3 re-records, then it gives up
    assert not (tmp_path / "ds2").exists() or not os.listdir(tmp_path / "ds2")


def test_escape_mid_episode_stops_without_saving(tmp_path, run_collect):
    clock = FakeClock()
    ui = ScriptedUI("train", clock, [Plan(), Plan(abort_at=20, abort_key="esc")])
    out = tmp_path / "ds"
    argv = ["--env", "sim", "--out", str(out), "--episodes", "3", "--teleop", "keyboard"]
    assert run_collect(ui, clock, [*argv, "--countdown", "0.2"]) == 0
    assert_clean(out, 1)
