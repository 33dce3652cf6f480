"""Takeover in the finetuning loop: `fosp finetune --env sim --takeover scripted` records who
acted in every step and reports the takeovers; the recurrent state holds the action that ran;
the optional takeover cost marks the k actions before each takeover in the replay only."""

from __future__ import annotations

import json

import numpy as np
import torch

from data_collection.episode import ACTOR_OPERATOR, Episode
from fosp.cli import main
from policy.finetune import LOG, OPERATOR, online_files, takeover_costs, with_executed
from tests.collection.factories import make_episode


def test_the_state_holds_the_action_that_ran():
    state = {"action": torch.zeros(1, 6), "feat": torch.ones(1, 3)}
    ran = with_executed(state, np.array([0.1, -0.2, 0.3, 0, 0, 1], np.float32))
    assert ran["action"].shape == (1, 6) and torch.equal(ran["feat"], state["feat"])
    np.testing.assert_allclose(ran["action"][0].numpy(), [0.1, -0.2, 0.3, 0, 0, 1])
    assert not state["action"].any()  # the caller's state is not modified


def _with_actor(episode: Episode, operator_actions: list[int]) -> Episode:
    actor = np.zeros(len(episode), np.uint8)
    actor[operator_actions] = ACTOR_OPERATOR
    episode.steps["actor"] = actor
    return episode


def test_takeover_cost_marks_the_k_actions_before_each_takeover():
    # 20 actions; takeovers at actions 6-8 and 15; cost row i labels action i - 1
    episode = _with_actor(make_episode(4, cost_rows=(2,)), [6, 7, 8, 15])
    assert episode.interventions == 2
    marked = takeover_costs(episode, 3)
    expected = episode.steps["cost"].copy()
    expected[[4, 5, 6]] = 1  # actions 3, 4, 5 led to the state the operator took over at 6
    expected[[13, 14, 15]] = 1  # actions 12, 13, 14 before the takeover at 15
    np.testing.assert_array_equal(marked.steps["cost"], expected)
    assert episode.steps["cost"][[4, 5, 6, 13, 14, 15]].sum() == 0  # the stored one unchanged
    assert takeover_costs(episode, 0) is episode  # off by default
    early = takeover_costs(_with_actor(make_episode(5), [1]), 5)
    assert early.steps["cost"][0] == 0 and early.steps["cost"][1] == 1  # row 0 stays 0


def test_cli_finetune_with_the_scripted_takeover(pretrained, tmp_path, capsys):
    out = tmp_path / "takeover"
    args = ["finetune", "--env", "sim", "--task", "unseen-3", "--checkpoint", str(pretrained)]
    args += ["--episodes", "2", "--updates-per-episode", "1", "--settle-steps", "1"]
    args += ["--takeover", "scripted", "--takeover-cost-steps", "3", "--out", str(out)]
    assert main(args) == 0
    log = [json.loads(line) for line in (out / LOG).read_text().splitlines()]
    for path, row in zip(online_files(out), log, strict=True):
        from data_collection.episode import read_episode

        episode = read_episode(path)
        assert episode.metadata["schema_version"] == 2 and "actor" in episode.steps
        acted = np.asarray(episode.metadata["acted_by"])
        np.testing.assert_array_equal(acted == OPERATOR, episode.operator_steps)
        assert sum(episode.metadata["policy_counts"]) + (acted == OPERATOR).sum() == 80
        assert row["interventions"] == episode.interventions
        assert row["operator_steps"] == int(episode.operator_steps.sum())
    finetune = json.loads((out / "finetune.json").read_text())["finetune"]
    assert finetune["takeover"] == "scripted" and finetune["takeover_cost_steps"] == 3
