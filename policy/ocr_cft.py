"""`ocr-cft` finetuning: OCR-CFT (Luo et al., "Optimistic Critic Reconstruction and Constrained
Fine-Tuning for General Offline-to-Online RL"), its O2SAC transition, made safe, in the
world-model agent. The soft actor-critic (targets, actor loss, on full-history latent states)
is policy/soft_ac.py's; before the first online episode:

1. Policy re-evaluation (§4.1): `ocr_reeval_steps` of soft fitted-Q evaluation of the frozen
   offline policy on the offline data (SAC's targets, alpha = `sac_alpha` in both).
2. Value alignment (§4.2, eqs. 10-13): SAC's optimal policy gives Q(s, a) = alpha log pi(a | s)
   + V(s), so no action should be worth more than the offline policy's most likely action mu(s)
   (the anchor) minus alpha times its log-probability gap. For actions a from a probe actor that
   seeks what the critics over-rate (eq. 2 on a copy of the offline actor, maximising Q - Q_c),

       Qhat_r(s, a) = min(Q_r(s, a), Q_r(s, mu) + alpha (log pi_0(a | s) - log pi_0(mu | s)))
       Qhat_c(s, a) = max(Q_c(s, a), Q_c(s, mu) - alpha (log pi_0(a | s) - log pi_0(mu | s)))

   and Q, Q_c learn sg(Qhat) at those actions plus the re-evaluation loss on the data (eq. 13's
   term that keeps them from underestimating), `ocr_align_steps` times. The second line is
   this project's safe variant: what OCR-CFT does to over-rated rewards it does to under-rated
   costs. The deployed actor stays the offline one (the critics were aligned to it); the probe
   is discarded.
3. Constrained fine-tuning (§4.3, eqs. 19-20): the actor loss gains beta KL(pi_ref(. | s) ||
   pi(. | s)) with pi_ref the best policy seen in online episodes so far (an episode's score:
   success minus violation, from its labels; the actor that acted in a strictly better episode
   becomes pi_ref), beta by dual ascent on E[KL] - epsilon (initial 2.0, the paper's), epsilon
   rising linearly from `ocr_kl_start` to `ocr_kl_end` over `ocr_kl_ramp` episodes (the paper's
   range for expert data).

OCR-CFT is unconstrained; here the cost enters three ways: Q_c is re-evaluated and aligned with
Q, and the actor's Lagrangian term lambda Q_c uses the same aPID multiplier as `marvel`
(policy/lagrangian.py), so the two strategies differ only in what happens before episode 0 and
in the KL constraint.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from data_collection.episode import Episode
from policy.agent import FOSPAgent, adam
from policy.config import FinetuneConfig
from policy.marvel import fitted_q_evaluation
from policy.networks import Actor
from policy.soft_ac import Log, SoftActorCritic


def aligned_targets(
    q_r: Tensor, q_c: Tensor, anchor_r: Tensor, anchor_c: Tensor, logp_gap: Tensor,
    alpha: float,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """OCR-CFT eq. 12 (and its cost mirror): logp_gap = log pi_0(a|s) - log pi_0(mu|s) <= 0."""
    return (
        torch.minimum(q_r, anchor_r + alpha * logp_gap),
        torch.maximum(q_c, anchor_c - alpha * logp_gap),
    )


def gaussian_kl(ref: torch.distributions.Normal, new: torch.distributions.Normal) -> Tensor:
    """KL(ref || new) of diagonal Gaussians, summed over action dimensions."""
    return torch.distributions.kl_divergence(ref, new).sum(-1)


def episode_score(episode: Episode) -> float:
    """success - violation from the episode's labels (the online "evaluation" of a policy)."""
    return float(episode.steps["reward"].max() > 0) - float(episode.steps["cost"].max() > 0)


class OcrCftFinetune(SoftActorCritic):
    name = "ocr-cft"

    def __init__(self, agent: FOSPAgent, cfg: FinetuneConfig):
        super().__init__(agent, cfg)
        self.alphas = (cfg.sac_alpha, cfg.sac_alpha)
        self.reference = self._copy(agent.actor)  # pi_ref: the offline actor to begin with
        self.acting = self._copy(agent.actor)  # the actor that acts in the next episode
        self.best_score = float("-inf")
        self.kl_weight = cfg.ocr_kl_init  # beta
        self.episodes_seen = 0

    @staticmethod
    def _copy(actor: Actor) -> Actor:
        return copy.deepcopy(actor).requires_grad_(False)

    # ------------------------------------------------------------------ before episode 0

    def align_step(self, probe: Actor, probe_opt: torch.optim.Optimizer) -> dict[str, float]:
        """One value-alignment step (eq. 13) and one probe step (eq. 2)."""
        agent, alpha = self.agent, self.cfg.sac_alpha
        rows = self.offline_rows()
        feat = rows["feat"]
        # the probe: SAC's actor loss on the critics, finding the actions they over-rate
        dist_p = probe.dist(feat)
        a_p = dist_p.rsample().clamp(-1.0, 1.0)
        probe_loss = (alpha * dist_p.log_prob(a_p).sum(-1) - agent.q_r(feat, a_p)
                      + agent.q_c(feat, a_p)).mean()  # fmt: skip
        probe_opt.zero_grad(set_to_none=True)
        probe_loss.backward()
        probe_opt.step()
        with torch.no_grad():
            d0 = self.acting_dist(agent.actor, feat)
            mu = d0.mean
            action = a_p.detach()
            gap = d0.log_prob(action).sum(-1) - d0.log_prob(mu).sum(-1)
            q_r, q_c = agent.q_r(feat, action), agent.q_c(feat, action)
            target_r, target_c = aligned_targets(q_r, q_c, agent.q_r(feat, mu),
                                                 agent.q_c(feat, mu), gap, alpha)  # fmt: skip
        reeval, _ = self.q_losses(rows, agent.actor)
        align = agent.q_r.loss(feat, target_r, action) + agent.q_c.loss(feat, target_c, action)
        loss = align.mean() + reeval["r"] + reeval["c"]
        self.critic_step(loss)
        return {
            "loss": float(loss.detach()),
            "suppressed_r": float((target_r < q_r).float().mean()),
            "raised_c": float((target_c > q_c).float().mean()),
        }

    def prepare(self, log: Log) -> dict[str, float]:
        """Policy re-evaluation, then value alignment, of the frozen offline policy."""
        out = fitted_q_evaluation(self, self.cfg.ocr_reeval_steps, log, "re-evaluation")
        steps = self.cfg.ocr_align_steps
        probe = copy.deepcopy(self.agent.actor)
        probe_opt = adam(probe.parameters(), self.agent.cfg.optim.lr_actor_critic,
                         self.agent.cfg.optim)  # fmt: skip
        stats: dict[str, float] = {}
        for k in range(steps):
            stats = self.align_step(probe, probe_opt)
            if (k + 1) % 500 == 0 or k + 1 == steps:
                log(f"value alignment {k + 1}/{steps}: loss {stats['loss']:.4f}, "
                    f"Q over the anchor on {100 * stats['suppressed_r']:.0f} % of probe "
                    f"actions, Q_c under it on {100 * stats['raised_c']:.0f} %")  # fmt: skip
        out.update({f"align_{k}": v for k, v in stats.items()})
        self.acting = self._copy(self.agent.acting_actor)
        self.prepared = True
        return out

    # ------------------------------------------------------------------ online

    def kl_limit(self) -> float:
        """epsilon: linear from ocr_kl_start to ocr_kl_end over ocr_kl_ramp episodes."""
        c = self.cfg
        frac = min(1.0, self.episodes_seen / max(1, c.ocr_kl_ramp))
        return c.ocr_kl_start + (c.ocr_kl_end - c.ocr_kl_start) * frac

    def penalty(self, rows: dict[str, Tensor], dist) -> tuple[Tensor, dict[str, Tensor]]:
        """beta KL(pi_ref || pi) per row; then beta's dual-ascent step on E[KL] - epsilon."""
        with torch.no_grad():
            ref = self.acting_dist(self.reference, rows["feat"])
        kl = gaussian_kl(ref, dist)
        valid = rows["valid"]
        mean_kl = float((kl.detach() * valid).sum() / valid.sum().clamp_min(1.0))
        weight, limit = self.kl_weight, self.kl_limit()
        self.kl_weight = max(0.0, weight + self.cfg.ocr_kl_lr * (mean_kl - limit))
        metrics = {
            "ocr-cft/kl": torch.tensor(mean_kl),
            "ocr-cft/kl_limit": torch.tensor(limit),
            "ocr-cft/beta": torch.tensor(weight),
        }
        return weight * kl, metrics

    def observe_episode(self, episode: Episode) -> None:
        super().observe_episode(episode)
        self.episodes_seen += 1
        score = episode_score(episode)
        if score > self.best_score:  # the actor that acted in it is the best seen
            self.best_score = score
            self.reference = self._copy(self.acting)

    def end_episode(self, episode: Episode) -> dict[str, float]:
        self.acting = self._copy(self.agent.acting_actor)  # acts in the next episode
        return {"ocr_best_score": self.best_score, "ocr_beta": self.kl_weight}

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "reference": self.reference.state_dict(),
            "acting": self.acting.state_dict(),
            "best_score": self.best_score,
            "kl_weight": self.kl_weight,
            "episodes_seen": self.episodes_seen,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.reference.load_state_dict(state["reference"])
        self.acting.load_state_dict(state["acting"])
        self.best_score = float(state["best_score"])
        self.kl_weight = float(state["kl_weight"])
        self.episodes_seen = int(state["episodes_seen"])
