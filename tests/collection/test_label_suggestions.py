"""Suggested labels in `fosp label`: drawn apart from the labels, nothing stored until the
operator accepts them with one key, then undoable edits whose per-row origin is kept."""

from __future__ import annotations

import numpy as np
from factories import make_episode

from data_collection.episode import (
    ORIGIN_ACCEPTED,
    ORIGIN_MANUAL,
    ORIGIN_RECORDED,
    read_episode,
    write_episode,
)
from data_collection.labeler import SUGGEST_COST, SUGGEST_REWARD, LabelSession


def _with_force(tmp_path, rows=(10, 11, 12), newton=6.0):
    episode = make_episode(7)
    force = np.zeros(len(episode), np.float32)
    force[list(rows)] = newton
    episode.steps["contact_force"] = force
    episode.metadata["schema_version"] = 2
    return write_episode(episode, tmp_path)


def _band_has(frame: np.ndarray, colour) -> bool:
    return bool((frame == np.asarray(colour, np.uint8)).all(axis=-1).any())


def test_force_suggestions_are_drawn_and_stored_only_when_accepted(tmp_path):
    path = _with_force(tmp_path)
    session = LabelSession([path])
    expected = np.zeros(len(session.episode), bool)
    expected[10:15] = True  # rows 10-12 above 3 N, +2 settling rows
    np.testing.assert_array_equal(session.suggested["cost"], expected)
    assert not session.episode.steps["cost"].any()  # a suggestion is not a label
    frame = session.render()
    assert _band_has(frame, SUGGEST_COST) and not _band_has(frame, SUGGEST_REWARD)
    assert session.handle("a")
    np.testing.assert_array_equal(session.episode.steps["cost"] > 0, expected)
    np.testing.assert_array_equal(
        session.episode.steps["label_origin"] == ORIGIN_ACCEPTED, expected
    )
    assert not _band_has(session.render(), SUGGEST_COST)  # accepted: drawn as a label now
    session.handle("u")  # undo takes it back
    assert not session.episode.steps["cost"].any()
    assert (session.episode.steps["label_origin"] == ORIGIN_RECORDED).all()
    for key in ("a", "home", "right", "c", "s"):  # accept, then one manual cost on row 1
        session.handle(key)
    saved = read_episode(path)
    assert saved.metadata["label_source"] == "manual" and saved.metadata["schema_version"] == 2
    origin = saved.steps["label_origin"]
    assert origin[1] == ORIGIN_MANUAL and (origin[10:15] == ORIGIN_ACCEPTED).all()
    assert (saved.steps["cost"][10:15] == 1).all() and saved.steps["cost"][1] == 1
    assert session.keystrokes == 5 + 2


def test_a_model_suggestion_adds_reward_rows(tmp_path):
    path = _with_force(tmp_path, rows=())
    reward = np.zeros(21, bool)
    reward[[0, 17, 18]] = True  # row 0 is never suggested
    session = LabelSession([path], suggest=lambda episode: {"reward": reward})
    assert not session.suggested["cost"].any()
    np.testing.assert_array_equal(np.flatnonzero(session.suggested["reward"]), [17, 18])
    assert _band_has(session.render(), SUGGEST_REWARD)
    session.handle("a")
    np.testing.assert_array_equal(np.flatnonzero(session.episode.steps["reward"]), [17, 18])


def test_a_schema_1_episode_opens_and_saves_as_schema_2(tmp_path):
    old = make_episode(8, cost_rows=(4,))
    old.metadata["schema_version"] = 1
    path = write_episode(old, tmp_path)
    session = LabelSession([path])
    assert not session.suggested["cost"].any()  # no force recorded: nothing suggested
    for key in ("home", "right", "right", "c", "s"):
        session.handle(key)
    saved = read_episode(path)
    assert saved.metadata["schema_version"] == 2 and saved.steps["label_origin"][2] == 1
