"""Suggested cost labels from the contact force: the rule by hand, the sim's contact force is
exactly its robot-obstacle contacts, and episodes carry it (schema 2) with checked values."""

from __future__ import annotations

import numpy as np
import pytest

from data_collection.episode import EpisodeFormatError, write_episode
from data_collection.suggest import force_cost_rows, intervals, precision_recall
from tests.collection.factories import make_episode


def test_force_rows_extend_each_contact_by_the_settling_rows():
    force = np.array([9.0, 0, 0.5, 4.0, 6.0, 0, 0, 0, 0, 3.5, 0, 0])
    #                 row 0 never; 3-4 touch (+2: 5, 6); 9 touches (+2: 10, 11)
    expected = np.zeros(12, bool)
    expected[[3, 4, 5, 6, 9, 10, 11]] = True
    np.testing.assert_array_equal(force_cost_rows(force, threshold=3.0, settle_rows=2), expected)
    np.testing.assert_array_equal(
        force_cost_rows(force, threshold=5.0, settle_rows=0), np.arange(12) == 4
    )
    assert intervals(expected) == [(3, 6), (9, 11)]
    assert intervals(np.zeros(4, bool)) == []


def test_precision_recall_by_hand():
    suggested = np.array([0, 1, 1, 1, 0, 0], bool)
    truth = np.array([0, 0, 1, 1, 1, 0], float)
    p, r, tp, s, t = precision_recall(suggested, truth)
    assert (tp, s, t) == (2, 3, 3) and p == pytest.approx(2 / 3) and r == pytest.approx(2 / 3)
    p, r, *_ = precision_recall(np.zeros(3, bool), np.zeros(3))
    assert np.isnan(p) and np.isnan(r)


def test_the_sim_contact_force_is_its_robot_obstacle_contacts():
    """Per controller tick: force > 0 exactly when the robot touches an obstacle; the step's
    value is the largest tick's. A rule over a pushing episode, not a trajectory."""
    from robot.env import EnvConfig, SafeReachEnv

    env = SafeReachEnv(EnvConfig(task="train"))
    try:
        env.reset(options={"layout_seed": 1})
        target = env.sim.layout.obstacle_xy[0]
        touching = 0
        for _ in range(40):
            pos = env.sim.tcp_pose()[:3]
            goal = np.array([*target, 0.03])
            action = np.clip((goal - pos) / 0.02, -1, 1)
            obs, _, _, _, info = env.step(np.r_[action, 0, 0, 0].astype(np.float32))
            ticks = env.sim.last_labels.ticks
            np.testing.assert_array_equal(ticks.contact_force > 0, ticks.touched.any(axis=1))
            assert info["contact_force"] == pytest.approx(ticks.contact_force.max())
            touching += bool(ticks.touched.any())
        assert touching > 0, "the hand never reached the obstacle"
    finally:
        env.close()


def test_episode_contact_force_is_checked():
    episode = make_episode(3)
    n = len(episode)
    episode.metadata["schema_version"] = 2
    episode.steps["contact_force"] = np.zeros(n, np.float32)
    episode.steps["contact_force"][5] = -1.0
    with pytest.raises(EpisodeFormatError, match=">= 0") as err:
        write_episode(episode, "/nonexistent-never-written")
    assert err.value.field == "contact_force"
    episode.steps["contact_force"][5] = 2.0
    episode.metadata["schema_version"] = 1
    with pytest.raises(EpisodeFormatError, match="schema_version 2"):
        write_episode(episode, "/nonexistent-never-written")
