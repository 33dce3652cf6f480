"""Small synthetic episodes for the labeler and tool tests."""

from __future__ import annotations

import numpy as np

from data_collection.episode import Episode, EpisodeBuilder


def make_episode(
    layout_seed: int, cost_rows=(), reward_rows=(), status=None, n=20, force_rows=()
) -> Episode:
    """`force_rows`: rows whose action pressed on an obstacle (8 N contact force; the episode
    then has the schema-2 field `contact_force`)."""
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
        force = (8.0 if t in force_rows else 0.0) if force_rows else None
        builder.add(np.zeros(6), float(t in reward_rows), float(t in cost_rows), obs(), force=force)
    return builder.finish()
