"""Safe policy expansion (FOSP §4.3, eqs. 21-23; Algorithm 1 lines 12-24).

`PolicyExpansion` is the `pex` finetuning strategy (policy/strategy.py) around a pretrained
`FOSPAgent`: the offline actor pi_psi is deep-copied and frozen (no gradient, no optimiser,
never written); `agent.actor` becomes the new policy pi_psi' (fresh or copied weights, `init`)
with its own optimiser. World model, critics, values, REF and multipliers are the pretrained ones
("transferred") and keep learning. Both actors propose an action for the *current* observation:
the new actor from the learning world model's latent, the frozen one from a frozen copy of the
pretrained world model's (`offline_features = offline`; on the learning model's features it was
no longer the offline policy); eq. 21 gives the probability of executing each (`step`: from Q
and Q_c of *its own* proposal, eq. 22).
(`direct`, ablation ii without expansion, is policy/direct.py.)

Selection (`FinetuneConfig.selection`): `step` is eqs. 21-22 at every control step; `chunk`
decides every `chunk` steps from each actor's imagined lambda-return (reward minus cost, each in
its learned return scale) from the current latent, so harm that builds up over steps counts.
The learning actor is trained with eq. 19's positive weights on replay actions (`awr`) or with
eq. 23's linear weight (`linear`, the ablation). Batches draw `online_share` of their rows from
the online episodes; the critics' imagined rollouts follow the frozen offline actor (an
immature new actor does not rewrite the transferred critics and REF).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor

from data_collection.episode import Episode
from policy import objectives as O
from policy.agent import FOSPAgent
from policy.config import FinetuneConfig
from policy.networks import Actor
from policy.objectives import linear_weights  # noqa: F401  (eq. 23; kept importable here)
from policy.strategy import OFFLINE, ONLINE, FinetuneStrategy, cost_by_actor
from policy.world_model import WorldModel

__all__ = ["OFFLINE", "ONLINE", "PolicyExpansion", "normalised_q", "selection_probs"]


# share of the learning actor's observed cost record kept after each episode's updates
# (cost_evidence): it is a different policy then; without it one bad early episode shut it out
# (unseen-1: 29 cost steps in episode 2, P_off 1.00 in episode 3; a record of an actor that
# no longer acts cannot shrink)
EVIDENCE_KEPT = 0.5


def return_upper_bound(per_step_max: float, gamma: float, horizon: int) -> float:
    """Q^* = sum_{t=0}^{T} gamma^t r_max (and C^* likewise with c_max), §4.3 under eq. 22."""
    return float(per_step_max * sum(gamma**t for t in range(horizon + 1)))


def normalised_q(q_r: Tensor, q_c: Tensor, q_star: float, c_star: float) -> Tensor:
    """Eq. 22: Q~(s, a) = Q(s, a) / Q^* - Q_c(s, a) / C^*."""
    return q_r / q_star - q_c / c_star


def selection_probs(q_tilde: Tensor, inv_temperature: float) -> Tensor:
    """Eq. 21: P[k] = exp(Q~_k / alpha) / sum_j exp(Q~_j / alpha) over the last axis (the two
    proposals), with 1 / alpha = `inv_temperature` (docs/algorithm.md: Table 4's 10 is 1/alpha)."""
    return torch.softmax(q_tilde * inv_temperature, dim=-1)


class PolicyExpansion(FinetuneStrategy):
    """Safe policy expansion: a frozen offline actor and a learning one, eq. 21 chooses."""

    name = "pex"

    def __init__(self, agent: FOSPAgent, cfg: FinetuneConfig):
        super().__init__(agent, cfg)
        if cfg.actor_moments == "keep" and cfg.init != "copy":
            raise ValueError("actor_moments = keep needs init = copy: a new network has no moments")
        gamma = agent.cfg.agent.gamma
        self.q_star = return_upper_bound(cfg.r_max, gamma, cfg.horizon)
        self.c_star = return_upper_bound(cfg.c_max, gamma, cfg.horizon)
        # the offline policy as it acted (the Polyak average, AgentConfig.actor_ema)
        self.frozen: Actor = copy.deepcopy(agent.acting_actor).requires_grad_(False).eval()
        if cfg.init == "scratch":
            agent.set_actor(agent.new_actor())
        # psi' is a new policy: its own optimiser state (the offline Adam moments belong to psi,
        # which no longer learns) unless actor_moments = keep
        if cfg.actor_moments == "reset" or cfg.init == "scratch":
            agent.reset_actor_optimiser()
        if cfg.imagine_with == "offline":
            agent.set_imagination_actor(self.frozen)
        # offline_features = offline: a frozen copy of the pretrained world model, so the frozen
        # actor reads the features it was trained on
        self.offline: WorldModel | None = None
        if cfg.offline_features == "offline":
            self.offline = copy.deepcopy(agent.wm).requires_grad_(False).eval()
        self._chunk_left, self._chunk_choice, self._chunk_probs = 0, 0, np.array([0.5, 0.5])
        # labelled cost steps and steps acted by each actor on this task (cost_evidence)
        self.observed_cost = torch.zeros(2, dtype=torch.float64)
        self.observed_steps = torch.zeros(2, dtype=torch.float64)
        # OFFLINE or ONLINE: that actor alone acts (`fosp eval --policy offline | learning`),
        # on the features it reads; None: eq. 21 chooses
        self.only: int | None = None

    # ------------------------------------------------------------------ acting

    @torch.no_grad()
    def imagined_scores(self, feat: Tensor) -> Tensor:
        """Each actor's mean imagined lambda-return from `feat` [1, F]: reward over its return
        scale minus cost over its own ([2]: offline, new). Both are imagined in the learning
        world model, the one that has seen the online episodes (with `offline_features =
        offline` the frozen actor acts on the pretrained model's features but is scored here:
        scored in the pretrained model, which has not seen the new task's hazards, it was chosen
        for whole episodes and violated in them, P_off 1.00)."""
        agent, a = self.agent, self.agent.cfg.agent
        n = self.cfg.rollouts
        scores = []
        for actor in (self.frozen, agent.acting_actor):
            feats, _ = agent._imagine(feat.expand(n, -1), a.horizon, actor)
            nxt = feats[1:]
            rew, cost, cont = agent.wm.reward(nxt), agent.wm.cost(nxt), agent.wm.cont(nxt)
            ret_r = O.lambda_returns(rew, cont, agent.v_r_slow(nxt), a.gamma, a.lambda_r)[0]
            ret_c = O.lambda_returns(cost, cont, agent.v_c_slow(nxt), a.gamma, a.lambda_c)[0]
            scale_r, scale_c = agent.return_scale.clamp_min(1e-3)
            scores.append((ret_r / scale_r - ret_c / scale_c).mean())
        return torch.stack(scores)

    def observed_penalty(self) -> Tensor:
        """Each actor's observed cost on this task in chunk-score units ([2]: offline, new):
        w * T * C_k / (N_k + T) / cost return scale, the cost one episode (T steps) at actor k's
        observed rate incurs, with a prior of one cost-free episode (`cost_evidence`)."""
        t = float(self.cfg.horizon)
        rate = self.observed_cost / (self.observed_steps + t)
        scale_c = float(self.agent.return_scale[1].clamp_min(1e-3))
        return (self.cfg.cost_evidence * t * rate / scale_c).float()

    def observe_episode(self, episode: Episode) -> None:
        """Count each actor's labelled cost steps and steps acted (action t earns cost row t + 1;
        the labels, not the simulator's truth: on the arm the labels are all there is)."""
        acted = np.asarray(episode.metadata.get("acted_by", []), dtype=int)
        if len(acted) != len(episode.steps["cost"]) - 1:  # no per-step attribution
            return
        cost, steps = cost_by_actor(acted, episode.steps["cost"])
        self.observed_cost += torch.tensor(cost, dtype=torch.float64)
        self.observed_steps += torch.tensor(steps, dtype=torch.float64)

    def end_episode(self, episode: Episode) -> dict[str, float]:
        """After the K updates the learning actor is a new policy: its observed cost counts half
        (the frozen actor's record stays whole: it is the same policy). Logs both penalties."""
        self.observed_cost[ONLINE] *= EVIDENCE_KEPT
        self.observed_steps[ONLINE] *= EVIDENCE_KEPT
        penalty = self.observed_penalty()
        return {"pex/penalty_offline": float(penalty[0]), "pex/penalty_new": float(penalty[1])}

    @torch.no_grad()
    def act(
        self,
        obs: dict[str, np.ndarray],
        state: dict[str, Tensor] | None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, dict[str, Tensor], dict[str, Any]]:
        """One control step. Returns the executed action, the recurrent state (its "action" is
        the executed one, so the world model follows what the arm did) and info: "policy"
        (0 = offline, 1 = online/new) and, for pex, "probs" (and "q_tilde" per step).
        Deterministic (evaluation): mean proposals and the more probable one is executed."""
        agent = self.agent
        if state is None:
            self._chunk_left = 0  # a new episode starts a new chunk
        previous = state
        # the world-model state of this observation (the frozen actor's action is replaced)
        _, state = agent.act(obs, state, deterministic, actor=self.frozen)
        feat = offline_feat = state["feat"]
        if self.offline is not None:  # the pretrained model's state, after the executed action
            if previous is None:
                h, z = self.offline.initial(1, feat.device)
                last = torch.zeros_like(state["action"])
            else:
                h, z, last = previous["offline_h"], previous["offline_z"], previous["action"]
            h, z, offline_feat = agent.filter_step(obs, h, z, last, self.offline)
            state = {**state, "offline_h": h, "offline_z": z}
        actors, reads = (self.frozen, agent.acting_actor), (offline_feat, feat)
        info: dict[str, Any] = {}
        if self.only is not None:
            k = self.only
            probs = torch.eye(2)[k]
            action = self.propose(actors[k], reads[k], deterministic)
        elif self.cfg.selection == "step":
            proposals = torch.cat(
                [self.propose(actors[k], reads[k], deterministic) for k in (0, 1)]
            )
            feats = feat.expand(2, -1)
            q_tilde = normalised_q(
                agent.q_r(feats, proposals), agent.q_c(feats, proposals), self.q_star, self.c_star
            )
            probs = selection_probs(q_tilde, self.cfg.inv_temperature)
            k = self._choose(probs, deterministic)
            action = proposals[k : k + 1]
            info["q_tilde"] = q_tilde.cpu().numpy()
        else:
            if self._chunk_left <= 0:
                scores = self.imagined_scores(feat)
                if self.cfg.cost_evidence > 0:
                    scores = scores - self.observed_penalty()
                probs = selection_probs(scores, self.cfg.inv_temperature)
                self._chunk_choice = self._choose(probs, deterministic)
                self._chunk_probs = probs.cpu().numpy()
                self._chunk_left = self.cfg.chunk
            self._chunk_left -= 1
            k = self._chunk_choice
            probs = torch.as_tensor(self._chunk_probs)
            action = self.propose(actors[k], reads[k], deterministic)
        state = {**state, "action": action}
        info.update(policy=k, probs=probs.cpu().numpy())
        return action[0].cpu().numpy(), state, info

    def _choose(self, probs: Tensor, deterministic: bool) -> int:
        if deterministic:
            return int(torch.argmax(probs))
        return int(torch.multinomial(probs.cpu(), 1, generator=self.generator))

    # ------------------------------------------------------------------ learning

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        out = {
            **super().state_dict(),
            "frozen": self.frozen.state_dict(),
            "observed_cost": self.observed_cost.clone(),
            "observed_steps": self.observed_steps.clone(),
        }
        if self.offline is not None:
            out["offline_model"] = self.offline.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.frozen.load_state_dict(state["frozen"])
        # runs before cost_evidence counted nothing (and selected without it)
        self.observed_cost = state.get("observed_cost", torch.zeros(2, dtype=torch.float64))
        self.observed_steps = state.get("observed_steps", torch.zeros(2, dtype=torch.float64))
        if self.offline is not None:
            if "offline_model" not in state:
                raise ValueError(
                    "checkpoint was finetuned with --offline-features learning, not offline"
                )
            self.offline.load_state_dict(state["offline_model"])
