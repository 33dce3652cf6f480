"""Small synthetic episodes for the labeler and tool tests."""

from __future__ import annotations

import numpy as np

from data_collection.episode import Episode, EpisodeBuilder


def make_episode(layout_seed: int, cost_rows=(), reward_rows=(), status=None, n=20) -> Episode:
    meta = {"task": "train", "layout_seed": layout_seed, "control_hz": 10, "label_source": "manual"}
    if status:
        meta["label_status"] = status
    builder = EpisodeBuilder(meta)
    rng = np.random.default_rng(layout_seed)

    def obs():
        return {
            "image": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8),
            "pose": np.zeros(6, np.float32),
        }

    builder.start(obs())
    for t in range(1, n + 1):
        builder.add(np.zeros(6), float(t in reward_rows), float(t in cost_rows), obs())
    return builder.finish()
