"""The world model's own reading of an episode's labels: its reward and cost heads over the
posterior latents of every row (the checkpoint being finetuned), suggested to the operator
beside the contact-force suggestion (data_collection/suggest.py) when asked for: `fosp label
--suggest-from RUN`, or `label_suggestions = force+model` in the finetuning loop on the arm.
Off by default: measured, its reward rows cost more keys to correct than they save and its cost
head finds a third of the cost rows (docs/collecting.md, "Suggested labels")."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from data_collection.episode import Episode
from policy.agent import FOSPAgent


@torch.no_grad()
def predicted_labels(agent: FOSPAgent, episode: Episode) -> dict[str, np.ndarray]:
    """Per row: the predicted reward and cost (row i from the latent of row i, which has seen
    action i - 1 and observation i: the alignment of the stored labels)."""
    wm = agent.wm
    feat = posterior_features(agent, episode)
    out = {"reward": wm.reward(feat), "cost": wm.cost(feat)}
    return {k: v[0].reshape(-1).float().cpu().numpy() for k, v in out.items()}


@torch.no_grad()
def posterior_features(agent: FOSPAgent, episode: Episode) -> torch.Tensor:
    """The world model's posterior features of every row, (1, T, F). The posterior samples are
    drawn from a fixed seed, so an episode always gets the same suggestions."""
    wm, dev = agent.wm, agent.device
    device = torch.device(dev)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        image = torch.as_tensor(episode.steps["image"], device=dev)[None]
        pose = torch.as_tensor(episode.steps["pose"], device=dev, dtype=torch.float32)[None]
        action = torch.as_tensor(episode.steps["action"], device=dev, dtype=torch.float32)[None]
        first = torch.as_tensor(episode.steps["is_first"], device=dev)[None]
        h, z, _, _ = wm.observe(wm.embed(image, pose), action, first)
        return wm.feat(h, z)


# the thresholds benchmarks/label_suggestions.py measured (docs/collecting.md)
REWARD_THRESHOLD = 0.5
COST_THRESHOLD = 0.25


def model_suggestions(
    agent: FOSPAgent, reward_threshold: float = REWARD_THRESHOLD,
    cost_threshold: float = COST_THRESHOLD,
) -> Callable[[Episode], dict[str, np.ndarray]]:  # fmt: skip
    """A labeller suggestion source (data_collection.labeler.LabelSession's `suggest`): rows
    where the reward head predicts more than `reward_threshold`, and the cost head more than
    `cost_threshold`; row 0 never (no action led to it)."""

    def suggest(episode: Episode) -> dict[str, np.ndarray]:
        predicted = predicted_labels(agent, episode)
        rows = {
            "reward": predicted["reward"] > reward_threshold,
            "cost": predicted["cost"] > cost_threshold,
        }
        for r in rows.values():
            r[0] = False
        return rows

    return suggest


def model_cost_rows(agent: FOSPAgent, episode: Episode, threshold: float = 0.5) -> np.ndarray:
    """Per row: suggested cost where the cost head predicts more than `threshold`."""
    rows = predicted_labels(agent, episode)["cost"] > threshold
    rows[0] = False
    return rows
