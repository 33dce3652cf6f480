"""The world model's label suggestions: one value per row, row i read from the latent that has
seen observation i and action i - 1 and nothing later (the stored labels' alignment)."""

from __future__ import annotations

import numpy as np
import torch

from data_collection.dataset import Dataset
from data_collection.labeler import LabelSession
from data_collection.suggest import force_cost_rows
from policy.label_model import (
    model_cost_rows,
    model_suggestions,
    posterior_features,
    predicted_labels,
)
from policy.train import load_agent


def test_predicted_labels_are_causal_per_row(pretrained, offline_data):
    agent = load_agent(pretrained)
    _, episode = next(iter(Dataset(offline_data).episodes()))
    out = predicted_labels(agent, episode)
    n = len(episode)
    assert set(out) == {"reward", "cost"}
    assert all(v.shape == (n,) and np.isfinite(v).all() for v in out.values())
    # change the future: the last row's image and the last executed action
    later = type(episode)({k: v.copy() for k, v in episode.steps.items()}, episode.metadata)
    later.steps["image"][-1] = 255 - later.steps["image"][-1]
    later.steps["action"][-2] = -later.steps["action"][-2]
    again = predicted_labels(agent, later)
    for key in out:
        np.testing.assert_allclose(again[key][:-1], out[key][:-1], rtol=1e-5, atol=1e-6)
    # the last row reads its own inputs: its latent moves (the heads on it may not: either can
    # sit flat on its lowest bin for the tiny fixture model, so the latent is asked instead)
    feat, feat_later = posterior_features(agent, episode), posterior_features(agent, later)
    assert feat.shape[:2] == (1, n)
    torch.testing.assert_close(feat_later[0, :-1], feat[0, :-1])
    assert not torch.allclose(feat_later[0, -1], feat[0, -1])
    assert not model_cost_rows(agent, episode, threshold=-1.0)[0]  # row 0 is never a label
    assert model_cost_rows(agent, episode, threshold=-1.0)[1:].all()


def test_model_suggestions_are_the_heads_above_their_thresholds(pretrained, offline_data):
    """The opt-in suggestion source (`fosp label --suggest-from`, label_suggestions =
    force+model): rows where each head predicts above its threshold, never row 0; the labeller
    draws them beside the contact force's and stores nothing until they are accepted."""
    agent = load_agent(pretrained)
    path, episode = next(iter(Dataset(offline_data).episodes()))
    predicted = predicted_labels(agent, episode)
    rows = model_suggestions(agent, reward_threshold=0.3, cost_threshold=0.1)(episode)
    for key, threshold in (("reward", 0.3), ("cost", 0.1)):
        want = predicted[key] > threshold
        want[0] = False
        np.testing.assert_array_equal(rows[key], want)
    everything = model_suggestions(agent, reward_threshold=-1.0, cost_threshold=-1.0)
    session = LabelSession([path], suggest=everything)
    assert not session.suggested["cost"][0] and session.suggested["cost"][1:].all()
    assert session.suggested["reward"][1:].all()
    alone = LabelSession([path])  # the default: the contact force only
    force = force_cost_rows(episode.steps["contact_force"])
    np.testing.assert_array_equal(alone.suggested["cost"], force)
    assert not alone.suggested["reward"].any()
    np.testing.assert_array_equal(session.episode.steps["cost"], episode.steps["cost"])


def test_the_arm_loop_suggests_from_the_model_only_when_asked(pretrained, offline_data, tmp_path):
    """The finetuning loop's labelling window on the arm: the contact force alone by default;
    with label_suggestions = force+model, the heads of the agent being finetuned as well."""
    from policy.config import FinetuneConfig
    from policy.finetune import Finetuner
    from policy.policy_node import label_suggester

    plain = Finetuner(
        pretrained, tmp_path / "a", "unseen-1", FinetuneConfig(), offline_data, log=None
    )
    assert label_suggester(plain) is None
    fc = FinetuneConfig(label_suggestions="force+model")
    tuner = Finetuner(pretrained, tmp_path / "b", "unseen-1", fc, offline_data, log=None)
    _, episode = next(iter(Dataset(offline_data).episodes()))
    rows = label_suggester(tuner)(episode)
    want = model_suggestions(tuner.agent)(episode)
    for key in ("reward", "cost"):
        np.testing.assert_array_equal(rows[key], want[key])
