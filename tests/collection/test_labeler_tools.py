"""`fosp label` key handling as code, and the dataset tools (merge, split)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from factories import make_episode

from data_collection.dataset import Dataset
from data_collection.episode import read_episode, write_episode
from data_collection.labeler import LabelSession, run_labeler, select_episodes
from data_collection.tools import copy_episode, merge, split, split_groups


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    write_episode(make_episode(1, cost_rows=range(3, 6), reward_rows=(15,), status="live"), root)
    write_episode(make_episode(2, reward_rows=(10, 11), status="live"), root)
    write_episode(make_episode(3), root)  # blank labels, no status: unlabelled
    write_episode(make_episode(4, status="pending"), root)
    write_episode(make_episode(5, status="live"), root)  # a labelled safe+fail
    return root


def seeds(paths):
    return [read_episode(p).metadata["layout_seed"] for p in paths]


def test_filters(dataset):
    assert sorted(seeds(select_episodes(dataset, "all"))) == [1, 2, 3, 4, 5]
    assert sorted(seeds(select_episodes(dataset, "unlabelled"))) == [3, 4]
    assert seeds(select_episodes(dataset, "unsafe+success")) == [1]
    assert sorted(seeds(select_episodes(dataset, "safe+fail"))) == [3, 4, 5]


def press(session, *keys):
    for key in keys:
        assert session.handle(key)


def test_scrub_set_clear_undo_and_save(dataset):
    path = select_episodes(dataset, "unlabelled")[0]
    before = os.stat(path).st_mtime_ns
    s = LabelSession([path])
    press(s, "left")
    assert s.cursor == 0  # clamped at the first frame
    press(s, ".", ".", ".", "right")
    assert s.cursor == 4
    press(s, "m", "]", ",")  # select rows 4..13
    assert s.selection() == (4, 13)
    press(s, "c")  # cost on 4..13
    assert s.anchor is None and s.episode.steps["cost"][4:14].all()
    assert not s.episode.steps["cost"][:4].any() and not s.episode.steps["cost"][14:].any()
    press(s, "end", "r")  # a reward step on the last row
    assert s.episode.steps["reward"][-1] == 1 and s.episode.steps["reward"].sum() == 1
    press(s, "home", "m", "pagedown", "C")  # clear cost over 0..10: row 0 untouched anyway
    assert s.episode.steps["cost"].sum() == 3  # rows 11..13 left
    press(s, "u")  # undo the clear
    assert s.episode.steps["cost"].sum() == 10
    press(s, "home", "c")  # row 0 cannot carry labels
    assert s.episode.steps["cost"][0] == 0 and "row 0" in s.message
    assert s.dirty
    press(s, "s")
    saved = read_episode(path)
    assert saved.steps["cost"].sum() == 10 and saved.steps["reward"][-1] == 1
    assert saved.category == "unsafe+success"
    meta = saved.metadata
    assert meta["label_source"] == "manual" and meta["label_status"] == "reviewed"
    (entry,) = meta["label_history"]
    assert entry["edits"] == [
        {"label": "cost", "value": 1.0, "rows": [4, 13]},
        {"label": "reward", "value": 1.0, "rows": [20, 20]},
    ]
    assert entry["previous_label_status"] in (None, "pending")  # the two unlabelled ones
    assert entry["category"] == "unsafe+success"
    assert os.stat(path).st_mtime_ns != before
    assert not s.dirty
    # a second save with nothing changed does not touch the file
    mtime = os.stat(path).st_mtime_ns
    press(s, "s")
    assert "nothing changed" in s.message and os.stat(path).st_mtime_ns == mtime
    assert not [p for p in os.listdir(dataset) if p.startswith(".")]


def test_set_then_undo_is_not_a_change(dataset):
    path = select_episodes(dataset, "all")[0]
    mtime = os.stat(path).st_mtime_ns
    s = LabelSession([path])
    press(s, "right", "c", "u")
    assert not s.dirty
    assert not s.handle("q")  # no unsaved changes: quits at once
    assert os.stat(path).st_mtime_ns == mtime


def test_unsaved_changes_are_guarded(dataset):
    paths = select_episodes(dataset, "all")
    s = LabelSession(paths, index=1)
    original = read_episode(paths[1]).steps["cost"].copy()
    press(s, "right", "c")
    press(s, "n")  # warned, stays
    assert s.index == 1 and "unsaved" in s.message
    press(s, "n")  # again: changes dropped, next episode
    assert s.index == 2 and not s.dirty
    np.testing.assert_array_equal(read_episode(paths[1]).steps["cost"], original)
    press(s, "p", "p", "p")
    assert s.index == 0 and "first" in s.message
    press(s, "right", "c")
    assert s.handle("q")  # warned
    assert not s.handle("q")  # quits, nothing written
    assert s.saved == []


def test_mark_reviewed_saves_without_label_changes(dataset):
    path = select_episodes(dataset, "unlabelled")[0]
    s = LabelSession([path])
    press(s, "v", "s")
    meta = read_episode(path).metadata
    assert meta["label_status"] == "reviewed" and len(meta["label_history"]) == 1
    assert path not in select_episodes(dataset, "unlabelled")


class KeysUI:
    def __init__(self, keys):
        self.keys_left, self.frames, self.closed = list(keys), [], False

    def show(self, frame, view=None):
        self.frames.append(frame)

    def keys(self, timeout_s):
        return [self.keys_left.pop(0)] if self.keys_left else ["q"]

    def close(self):
        self.closed = True


def test_run_labeler_loop_renders_and_saves(dataset):
    paths = select_episodes(dataset, "all")
    ui = KeysUI(["right", "right", "c", "s", "n", "q"])
    session = run_labeler(LabelSession(paths), ui)
    assert ui.closed and session.saved == [paths[0]]
    assert ui.frames[0].shape == (520, 720, 3) and ui.frames[0].dtype == np.uint8
    # the camera area shows the frame under the cursor, upscaled 6x (nearest)
    ep = read_episode(paths[0])
    np.testing.assert_array_equal(
        ui.frames[0][12 : 12 + 384 : 6, 12 : 12 + 384 : 6], ep.steps["image"][0][:, :, ::-1]
    )
    np.testing.assert_array_equal(
        ui.frames[2][12 : 12 + 384 : 6, 12 : 12 + 384 : 6], ep.steps["image"][2][:, :, ::-1]
    )


# ---------------------------------------------------------------------- dataset tools
def test_merge_copies_skips_identical_and_reports_conflicts(dataset, tmp_path):
    other = tmp_path / "other"
    write_episode(make_episode(7, cost_rows=(4,)), other)
    out = tmp_path / "merged"
    report = merge(out, [dataset, other])
    assert len(report.copied) == 6 and report.ok
    again = merge(out, [dataset, other])  # idempotent
    assert len(again.identical) == 6 and not again.copied
    # the same episode relabelled in one copy: a conflict, the merged copy is left alone
    victim = Dataset(other).episode_paths()[0]
    ep = read_episode(victim)
    ep.steps["cost"][5] = 1
    from data_collection.episode import replace_episode

    replace_episode(ep, victim)
    conflict = merge(out, [other])
    assert conflict.conflicts == [str(victim)] and not conflict.ok
    assert read_episode(out / victim.name).steps["cost"][5] == 0
    summaries, errors = Dataset(out).index()
    assert len(summaries) == 6 and not errors
    # a damaged source episode is reported and not copied
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "episode-x.npz").write_bytes(b"PK\x03\x04 truncated")
    report = merge(out, [bad])
    assert report.unreadable and not (out / "episode-x.npz").exists()
    assert not [p for p in os.listdir(out) if p.startswith(".")]


def test_copy_never_overwrites(dataset, tmp_path):
    src = Dataset(dataset).episode_paths()[0]
    assert copy_episode(src, tmp_path / "o") == "copied"
    assert copy_episode(src, tmp_path / "o") == "identical"
    assert copy_episode(src, tmp_path / "o", link=True) == "identical"


def test_split_by_layout_holds_out_whole_layouts(tmp_path):
    root = tmp_path / "ds"
    for seed in range(40):  # 2 episodes per layout, two categories
        for k in range(2):
            cost = (3,) if seed % 4 == 0 else ()
            ep = make_episode(seed, cost_rows=cost, reward_rows=(5,), n=6)
            ep.metadata["episode_id"] = f"{seed:03d}{k}"
            write_episode(ep, root)
    groups, report = split(root, tmp_path / "split", "layout", holdout=0.25, seed=1)
    assert report.ok and set(groups) == {"train", "heldout"}
    train = {
        read_episode(tmp_path / "split/train" / f).metadata["layout_seed"] for f in groups["train"]
    }
    held = {
        read_episode(tmp_path / "split/heldout" / f).metadata["layout_seed"]
        for f in groups["heldout"]
    }
    assert not train & held and len(train | held) == 40
    assert len(held) == 10  # 25 % of the layouts, per category: 2 of 10 unsafe, 8 of 30 safe
    assert len([s for s in held if s % 4 == 0]) == 2
    assert (tmp_path / "split/split.json").exists()
    assert len(Dataset(tmp_path / "split/heldout")) == 20
    # deterministic for a seed
    summaries, _ = Dataset(root).index()
    assert split_groups(summaries, "layout", 0.25, 1) == groups


def test_split_by_category(dataset, tmp_path):
    groups, report = split(dataset, tmp_path / "bycat", "category")
    assert report.ok
    assert {k: len(v) for k, v in groups.items()} == {
        "unsafe+success": 1,
        "safe+success": 1,
        "safe+fail": 3,
    }
    assert len(Dataset(tmp_path / "bycat/safe+fail")) == 3


def test_cli_merge_split(dataset, tmp_path, capsys):
    from fosp.cli import main

    assert main(["dataset", "merge", str(tmp_path / "m"), str(dataset)]) == 0
    assert "5 copied" in capsys.readouterr().out
    assert (
        main(
            [
                "dataset",
                "split",
                str(tmp_path / "m"),
                "--out",
                str(tmp_path / "s"),
                "--by",
                "category",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "safe+fail=3" in out and "split.json" in out
