"""`marvel` finetuning: Marvel (Chen et al., "Towards Fast Safe Online RL via Policy
Finetuning") in the world-model agent: Value Pre-Alignment (VPA) before the first online
episode, then a Lagrangian actor-critic whose multiplier is an adaptive PID (aPID).

Everything runs on the agent's full-history posterior features (policy/feature_cache.py): a
replay row is a latent state s_t with its recorded action a_t, and the next row gives what
arriving at s_{t+1} brought (r', c', continuation c'). Marvel's eqs. 8-9 then read

    y^r = r' + gamma c' (Qbar_r(s', a') - alpha_r log pi(a' | s')),   a' ~ pi(. | s')
    y^c = c' + gamma c' (Qbar_c(s', a') - alpha_c log pi(a' | s'))

with Qbar the slow EMA copies of Q, Q_c (this strategy's own; the offline agent bootstraps
from V only), pi the policy as it acts (the actor's mean, std capped at `action_std`) and the
entropy term entering both targets with a + sign ("higher rewards and costs for state-action
pairs with high entropy"). Q and Q_c learn y by the two-hot cross-entropy of every critic here.

- VPA (`prepare`): `vpa_steps` of this fitted-Q evaluation of the frozen offline policy on the
  offline data alone; nothing but Q and Q_c moves.
- Online (`update`): the same loss with the current policy replaces eqs. 9-10 for Q and Q_c
  (SAC's soft policy evaluation); V, V_c and the REF learn as offline. The actor follows
  SAC-Lagrangian on replay states (half of them online, as every strategy's batches):

      L_pi = mean_s [ alpha log pi(a | s) - Q_r(s, a) + lambda Q_c(s, a) ],  a = mean + std eps

  lambda is Marvel's aPID (policy/lagrangian.py `AdaptivePIDLagrangian`), stepped after every
  actor update on J = the discounted cost of the latest online episode against
  `apid_cost_limit` (episode units), with Marvel's Table 6 gains as defaults.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from data_collection.episode import Episode
from policy.agent import FOSPAgent
from policy.config import FinetuneConfig
from policy.lagrangian import AdaptivePIDLagrangian
from policy.networks import Actor
from policy.strategy import FinetuneStrategy


def soft_td_target(
    signal_next: Tensor, cont_next: Tensor, q_next: Tensor, logp_next: Tensor,
    alpha: float, gamma: float,
) -> Tensor:  # fmt: skip
    """Marvel eqs. 8-9: y = s' + gamma c' (Qbar(s', a') - alpha log pi(a' | s'))."""
    return signal_next + gamma * cont_next * (q_next - alpha * logp_next)


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


def discounted_cost(episode: Episode, gamma: float) -> float:
    """Marvel's episode cost J = sum_t gamma^t c_t over the episode's steps."""
    cost = np.asarray(episode.steps["cost"], dtype=np.float64)
    return float((cost * gamma ** np.arange(len(cost))).sum())


class MarvelFinetune(FinetuneStrategy):
    name = "marvel"

    def __init__(self, agent: FOSPAgent, cfg: FinetuneConfig):
        super().__init__(agent, cfg)
        self.q_r_slow = copy.deepcopy(agent.q_r).requires_grad_(False)
        self.q_c_slow = copy.deepcopy(agent.q_c).requires_grad_(False)
        self.apid = AdaptivePIDLagrangian(
            cfg.apid_kp, cfg.apid_ki, cfg.apid_kd, cfg.apid_cost_limit, cfg.pid_delay,
            cfg.pid_ema, cfg.apid_lambda_max, (cfg.apid_eta_p, cfg.apid_eta_i, cfg.apid_eta_d),
        )  # fmt: skip
        self.latest_cost = 0.0  # J of the latest online episode (0 before the first)
        agent.set_imagination_actor(None)
        agent.q_objective = self.q_losses
        agent.actor_objective = self.actor_loss

    # ------------------------------------------------------------------ critics

    def acting_dist(self, actor: Actor, feat: Tensor) -> torch.distributions.Normal:
        """The policy as it acts: the actor's mean, std capped at `action_std`."""
        dist = actor.dist(feat)
        return torch.distributions.Normal(dist.mean, dist.stddev.clamp(max=self.cfg.action_std))

    def q_losses(
        self, d: dict[str, Tensor], actor: Actor | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Eqs. 8-9's soft fitted-Q losses of Q and Q_c on rows `d` for `actor` (default: the
        learning actor); the slow copies follow the fast ones first (one EMA step per loss)."""
        agent, a = self.agent, self.agent.cfg.agent
        with torch.no_grad():
            for fast, slow in ((agent.q_r, self.q_r_slow), (agent.q_c, self.q_c_slow)):
                for p, q in zip(fast.parameters(), slow.parameters(), strict=True):
                    q.lerp_(p, a.slow_rate)
            dist = self.acting_dist(actor or agent.actor, d["feat_next"])
            noise = torch.randn(dist.mean.shape, generator=self.generator).to(dist.mean.device)
            a_next = (dist.mean + dist.stddev * noise).clamp(-1.0, 1.0)
            logp = dist.log_prob(a_next).sum(-1)
            cont = d["cont_next"] * d["has_next"]
            y_r = soft_td_target(d["reward_next"], cont, self.q_r_slow(d["feat_next"], a_next),
                                 logp, self.cfg.vpa_alpha_r, a.gamma)  # fmt: skip
            y_c = soft_td_target(d["cost_next"], cont, self.q_c_slow(d["feat_next"], a_next),
                                 logp, self.cfg.vpa_alpha_c, a.gamma)  # fmt: skip
        valid = d["valid"]
        n = valid.sum().clamp_min(1.0)
        losses = {
            "r": (agent.q_r.loss(d["feat"], y_r, d["action"]) * valid).sum() / n,
            "c": (agent.q_c.loss(d["feat"], y_c, d["action"]) * valid).sum() / n,
        }
        metrics = {"marvel/target_r": y_r.mean(), "marvel/target_c": y_c.mean()}
        return losses, metrics

    def prepare(self, log: Callable[[str], None]) -> dict[str, float]:
        """VPA: `vpa_steps` soft fitted-Q steps of the frozen offline policy on the offline data."""
        agent, steps = self.agent, self.cfg.vpa_steps
        assert agent.cache is not None, "VPA needs the offline replay attached"
        start = time.perf_counter()
        agent._refresh_cache(only_new=False)
        params = [p for net in (agent.q_r, agent.q_c) for p in net.parameters()]
        first = last = float("nan")
        for k in range(steps):
            rows = agent.cache.sample(agent.cfg.agent.behaviour_batch, agent.generator)
            losses, _ = self.q_losses(agent._cache_rows(rows))
            loss = losses["r"] + losses["c"]
            agent._update("critic", loss, params)
            last = float(loss.detach())
            first = last if k == 0 else first
            if (k + 1) % 500 == 0 or k + 1 == steps:
                log(f"VPA {k + 1}/{steps}: soft fitted-Q loss {last:.4f}")
        self.prepared = True
        if steps == 0:
            return {}
        return {"vpa_loss_first": first, "vpa_loss_last": last,
                "vpa_seconds": time.perf_counter() - start}  # fmt: skip

    # ------------------------------------------------------------------ actor

    def actor_loss(
        self, imagined: dict[str, Tensor], rows: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """SAC-Lagrangian on the replay states `rows`; then the aPID step."""
        agent = self.agent
        feat, valid = rows["feat"], rows["valid"]
        n = valid.sum().clamp_min(1.0)
        dist = self.acting_dist(agent.actor, feat)
        action = dist.rsample().clamp(-1.0, 1.0)
        logp = dist.log_prob(action).sum(-1)
        q_r, q_c = agent.q_r(feat, action), agent.q_c(feat, action)
        lagrange = self.apid.lagrange
        loss = ((self.cfg.sac_alpha * logp - q_r + lagrange * q_c) * valid).sum() / n
        self.apid.step(self.latest_cost)
        metrics = {
            "marvel/q_r": ((q_r * valid).sum() / n).detach(),
            "marvel/q_c": ((q_c * valid).sum() / n).detach(),
            "marvel/lambda": torch.tensor(lagrange),
            "marvel/j_c": torch.tensor(self.latest_cost),
            "marvel/kp": torch.tensor(self.apid.kp),
            "marvel/ki": torch.tensor(self.apid.ki),
            "marvel/kd": torch.tensor(self.apid.kd),
        }
        return loss, metrics

    def observe_episode(self, episode: Episode) -> None:
        self.latest_cost = discounted_cost(episode, self.agent.cfg.agent.gamma)

    def multiplier(self) -> float:
        return self.apid.lagrange

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "apid": self.apid.state_dict(),
            "latest_cost": self.latest_cost,
            "q_r_slow": self.q_r_slow.state_dict(),
            "q_c_slow": self.q_c_slow.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.apid.load_state_dict(state["apid"])
        self.latest_cost = float(state["latest_cost"])
        self.q_r_slow.load_state_dict(state["q_r_slow"])
        self.q_c_slow.load_state_dict(state["q_c_slow"])
