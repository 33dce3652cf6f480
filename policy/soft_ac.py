"""The soft actor-critic that the `marvel` and `ocr-cft` finetuning strategies share: the
model-free methods' SAC-Lagrangian, run on the world-model agent's full-history posterior
features (policy/feature_cache.py).

A replay row is a latent state s_t with its recorded action a_t; the next row gives what
arriving at s_{t+1} brought (r', c', continuation c'). Q and Q_c learn soft fitted-Q targets

    y^r = r' + gamma c' (Qbar_r(s', a') - alpha_r log pi(a' | s')),   a' ~ pi(. | s')
    y^c = c' + gamma c' (Qbar_c(s', a') - alpha_c log pi(a' | s'))

(Marvel eqs. 8-9; SAC's soft policy evaluation) by the two-hot cross-entropy of every critic
here, with Qbar slow EMA copies of Q and Q_c (the strategy's own: the offline agent bootstraps
from V only) and pi the policy as it acts (the actor's mean, std capped at `action_std`). These
losses replace eqs. 9-10 for Q and Q_c; V, V_c and the REF learn as offline. The actor follows
SAC-Lagrangian on replay states (half of them online, as every strategy's batches):

    L_pi = mean_s [ alpha log pi(a | s) - Q_r(s, a) + lambda Q_c(s, a) + penalty(s) ],
    a = mean + std eps (reparameterised)

with lambda Marvel's adaptive PID (policy/lagrangian.py `AdaptivePIDLagrangian`; `ocr-cft`
uses it too), stepped after every actor update on J = the discounted labelled cost of the
latest online episode (`observe_episode`) against `apid_cost_limit`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from data_collection.episode import Episode
from policy.agent import FOSPAgent, polyak
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


def discounted_cost(episode: Episode, gamma: float) -> float:
    """The episode cost J = sum_t gamma^t c_t over the episode's labelled steps."""
    cost = np.asarray(episode.steps["cost"], dtype=np.float64)
    return float((cost * gamma ** np.arange(len(cost))).sum())


class SoftActorCritic(FinetuneStrategy):
    """Subclasses set `alphas` (alpha_r, alpha_c of the targets), `prepare` and may add a
    `penalty` to the actor loss."""

    alphas: tuple[float, float] = (0.0, 0.0)

    def __init__(self, agent: FOSPAgent, cfg: FinetuneConfig):
        super().__init__(agent, cfg)
        self.q_r_slow = copy.deepcopy(agent.q_r).requires_grad_(False)
        self.q_c_slow = copy.deepcopy(agent.q_c).requires_grad_(False)
        self.latest_cost = 0.0  # J of the latest online episode (0 before the first)
        self.apid = AdaptivePIDLagrangian(
            cfg.apid_kp, cfg.apid_ki, cfg.apid_kd, cfg.apid_cost_limit, cfg.pid_delay,
            cfg.pid_ema, cfg.apid_lambda_max, (cfg.apid_eta_p, cfg.apid_eta_i, cfg.apid_eta_d),
        )  # fmt: skip
        agent.set_imagination_actor(None)
        agent.q_objective = self.q_losses
        agent.actor_objective = self.actor_loss

    # ------------------------------------------------------------------ critics

    def acting_dist(self, actor: Actor, feat: Tensor) -> torch.distributions.Normal:
        """The policy as it acts: the actor's mean, std capped at `action_std`."""
        dist = actor.dist(feat)
        return torch.distributions.Normal(dist.mean, dist.stddev.clamp(max=self.cfg.action_std))

    def follow_slow(self) -> None:
        rate = self.agent.cfg.agent.slow_rate
        for fast, slow in ((self.agent.q_r, self.q_r_slow), (self.agent.q_c, self.q_c_slow)):
            polyak(fast, slow, rate)

    def q_losses(
        self, d: dict[str, Tensor], actor: Actor | None = None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The soft fitted-Q losses of Q and Q_c on rows `d` for `actor` (default: the learning
        actor); the slow copies follow the fast ones first (one EMA step per loss)."""
        agent, gamma = self.agent, self.agent.cfg.agent.gamma
        self.follow_slow()
        with torch.no_grad():
            dist = self.acting_dist(actor or agent.actor, d["feat_next"])
            noise = torch.randn(dist.mean.shape, generator=self.generator).to(dist.mean.device)
            a_next = (dist.mean + dist.stddev * noise).clamp(-1.0, 1.0)
            logp = dist.log_prob(a_next).sum(-1)
            cont = d["cont_next"] * d["has_next"]
            (alpha_r, alpha_c), feat_next = self.alphas, d["feat_next"]
            y_r = soft_td_target(d["reward_next"], cont, self.q_r_slow(feat_next, a_next), logp,
                                 alpha_r, gamma)  # fmt: skip
            y_c = soft_td_target(d["cost_next"], cont, self.q_c_slow(feat_next, a_next), logp,
                                 alpha_c, gamma)  # fmt: skip
        valid = d["valid"]
        n = valid.sum().clamp_min(1.0)
        losses = {
            "r": (agent.q_r.loss(d["feat"], y_r, d["action"]) * valid).sum() / n,
            "c": (agent.q_c.loss(d["feat"], y_c, d["action"]) * valid).sum() / n,
        }
        return losses, {f"{self.name}/target_r": y_r.mean(), f"{self.name}/target_c": y_c.mean()}

    def offline_rows(self) -> dict[str, Tensor]:
        """Behaviour rows sampled from the (offline) replay, for work before episode 0."""
        agent = self.agent
        assert agent.cache is not None, "needs the offline replay attached"
        rows = agent.cache.sample(agent.cfg.agent.behaviour_batch, agent.generator)
        return agent._cache_rows(rows)

    def critic_step(self, loss: Tensor) -> None:
        params = [p for net in (self.agent.q_r, self.agent.q_c) for p in net.parameters()]
        self.agent._update("critic", loss, params)

    # ------------------------------------------------------------------ actor

    def penalty(self, rows: dict[str, Tensor], dist) -> tuple[Tensor, dict[str, Tensor]]:
        """An extra per-row term of the actor loss (default: none)."""
        return torch.zeros_like(rows["valid"]), {}

    def actor_loss(
        self, imagined: dict[str, Tensor], rows: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """SAC-Lagrangian on the replay states `rows`; then the multiplier's step."""
        agent = self.agent
        feat, valid = rows["feat"], rows["valid"]
        n = valid.sum().clamp_min(1.0)
        dist = self.acting_dist(agent.actor, feat)
        action = dist.rsample().clamp(-1.0, 1.0)
        logp = dist.log_prob(action).sum(-1)
        q_r, q_c = agent.q_r(feat, action), agent.q_c(feat, action)
        lagrange = self.apid.lagrange
        extra, metrics = self.penalty(rows, dist)
        per_row = self.cfg.sac_alpha * logp - q_r + lagrange * q_c + extra
        loss = (per_row * valid).sum() / n
        self.apid.step(self.latest_cost)
        mean = lambda x: ((x * valid).sum() / n).detach()  # noqa: E731
        metrics.update({
            f"{self.name}/q_r": mean(q_r),
            f"{self.name}/q_c": mean(q_c),
            f"{self.name}/lambda": torch.tensor(lagrange),
            f"{self.name}/j_c": torch.tensor(self.latest_cost),
        })  # fmt: skip
        return loss, metrics

    def observe_episode(self, episode: Episode) -> None:
        self.latest_cost = discounted_cost(episode, self.agent.cfg.agent.gamma)

    def multiplier(self) -> float:
        return self.apid.lagrange

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "latest_cost": self.latest_cost,
            "apid": self.apid.state_dict(),
            "q_r_slow": self.q_r_slow.state_dict(),
            "q_c_slow": self.q_c_slow.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.latest_cost = float(state["latest_cost"])
        self.apid.load_state_dict(state["apid"])
        self.q_r_slow.load_state_dict(state["q_r_slow"])
        self.q_c_slow.load_state_dict(state["q_c_slow"])


Log = Callable[[str], None]
