"""`marvel` finetuning: Marvel (Chen et al., "Towards Fast Safe Online RL via Policy
Finetuning") in the world-model agent: Value Pre-Alignment (VPA) before the first online
episode, then SAC-Lagrangian finetuning whose multiplier is an adaptive PID (aPID). The soft
actor-critic itself (targets, actor loss, on full-history latent states) is
policy/soft_ac.py's.

- VPA (`prepare`): `vpa_steps` of soft fitted-Q evaluation of the frozen offline policy on the
  offline data alone (Marvel eqs. 8-9, entropy coefficients alpha_r = `vpa_alpha_r`, alpha_c =
  `vpa_alpha_c`, the entropy term entering both targets with a + sign: "higher rewards and costs
  for state-action pairs with high entropy"); nothing but Q and Q_c moves.
- Online: the same targets with the current policy (SAC), the actor by SAC-Lagrangian, lambda
  Marvel's aPID (policy/lagrangian.py `AdaptivePIDLagrangian`), stepped after every actor update
  on J = the discounted cost of the latest online episode against `apid_cost_limit` (episode
  units), Table 6's gains as defaults.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from policy.agent import FOSPAgent
from policy.config import FinetuneConfig
from policy.soft_ac import Log, SoftActorCritic


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Marvel App. G.1): Pearson's r of the ranks, ties given
    their average rank; nan when either side is constant."""

    def ranks(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=np.float64)
        for value in np.unique(v):  # ties: the mean of their ranks
            tied = v == value
            r[tied] = r[tied].mean()
        return r

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def fitted_q_evaluation(strategy: SoftActorCritic, steps: int, log: Log, label: str) -> dict:
    """`steps` soft fitted-Q steps of the current (frozen) actor on the offline replay."""
    start = time.perf_counter()
    strategy.agent._refresh_cache(only_new=False)
    first = last = float("nan")
    for k in range(steps):
        losses, _ = strategy.q_losses(strategy.offline_rows())
        loss = losses["r"] + losses["c"]
        strategy.critic_step(loss)
        last = float(loss.detach())
        first = last if k == 0 else first
        if (k + 1) % 500 == 0 or k + 1 == steps:
            log(f"{label} {k + 1}/{steps}: soft fitted-Q loss {last:.4f}")
    if steps == 0:
        return {}
    key = label.lower().replace(" ", "_")
    return {f"{key}_loss_first": first, f"{key}_loss_last": last,
            f"{key}_seconds": time.perf_counter() - start}  # fmt: skip


class MarvelFinetune(SoftActorCritic):
    name = "marvel"

    def __init__(self, agent: FOSPAgent, cfg: FinetuneConfig):
        super().__init__(agent, cfg)
        self.alphas = (cfg.vpa_alpha_r, cfg.vpa_alpha_c)

    def prepare(self, log: Log) -> dict[str, float]:
        """VPA: soft fitted-Q evaluation of the frozen offline policy on the offline data."""
        out = fitted_q_evaluation(self, self.cfg.vpa_steps, log, "VPA")
        self.prepared = True
        return out

    def actor_loss(self, imagined, rows):
        loss, metrics = super().actor_loss(imagined, rows)
        gains = {"kp": self.apid.kp, "ki": self.apid.ki, "kd": self.apid.kd}
        metrics.update({f"marvel/{k}": torch.tensor(v) for k, v in gains.items()})
        return loss, metrics
