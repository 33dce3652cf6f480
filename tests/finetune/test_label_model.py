"""The world model's label suggestions: one value per row, row i read from the latent that has
seen observation i and action i - 1 and nothing later (the stored labels' alignment)."""

from __future__ import annotations

import numpy as np

from data_collection.dataset import Dataset
from policy.label_model import model_cost_rows, predicted_labels
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
        assert not np.isclose(again[key][-1], out[key][-1]) or key == "reward"
    assert not model_cost_rows(agent, episode, threshold=-1.0)[0]  # row 0 is never a label
    assert model_cost_rows(agent, episode, threshold=-1.0)[1:].all()
