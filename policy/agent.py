"""The offline FOSP agent: world model + critics Q, Q_c, values V, V_c, REF u, actor, multipliers.

One `train_step(batch)` is Algorithm 1 lines 3-11. The world model learns on the batch's
windows (eq. 1). Behaviour learning then runs `behaviour_repeats` steps on full-history
posterior features (policy/feature_cache.py, the states the policy acts from): imagined
rollouts (eq. 6) and lambda-returns (eq. 8) train Q, Q_c with eq. 9, in-sample lambda-returns
of the recorded rewards/costs train them with eq. 10 and give V, V_c (eq. 7: V at the upper
expectile, V_c at the lower one), the REF (eq. 30), advantage-weighted extraction (eqs. 17-20,
advantages normalised by their own spread) and the bounded multiplier update (eq. 27). Every
bootstrap reads a slow EMA copy. Without an attached replay (`attach`) behaviour learning runs
on the batch's own window features. The actor is its own module (deep-copy and freeze it for
safe policy expansion); the policy that acts (`acting_actor`) is a Polyak average of it
(`AgentConfig.actor_ema`); `act` runs one control step.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from policy import objectives as O
from policy.config import Config
from policy.feature_cache import FeatureCache
from policy.lagrangian import AugmentedLagrangian
from policy.networks import Actor, Critic, VNet, bce_soft
from policy.replay import Replay
from policy.world_model import State, WorldModel

# (adv_r, adv_c, feasible, phi, valid) -> per-row weight of log pi (eq. 19 or eq. 23)
PolicyWeight = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]
# a strategy's actor loss: (imagined rollouts, behaviour rows) -> (loss, metrics)
ActorObjective = Callable[[dict[str, Tensor], dict[str, Tensor]], tuple[Tensor, dict]]
# a strategy's Q losses: behaviour rows -> ({"r": loss of Q, "c": loss of Q_c}, metrics)
QObjective = Callable[[dict[str, Tensor]], tuple[dict[str, Tensor], dict]]


def adam(params, lr: float, cfg) -> torch.optim.Adam:
    """The optimiser of every part (OptimConfig's eps and weight decay)."""
    return torch.optim.Adam(params, lr=lr, eps=cfg.eps, weight_decay=cfg.weight_decay)


def _slow(net: nn.Module) -> nn.Module:
    return copy.deepcopy(net).requires_grad_(False)


@torch.no_grad()
def polyak(fast: nn.Module, slow: nn.Module, rate: float) -> None:
    """Move `slow`'s weights `rate` of the way towards `fast`'s (slow targets, acting average)."""
    for p, q in zip(fast.parameters(), slow.parameters(), strict=True):
        q.lerp_(p, rate)


class FOSPAgent(nn.Module):
    def __init__(self, cfg: Config, device: str | torch.device = "cpu"):
        super().__init__()
        self.cfg = cfg
        m, a = cfg.model, cfg.agent
        self.wm = WorldModel(m)
        f, u, n = self.wm.feat_dim, m.mlp_units, m.mlp_layers
        self.actor = self.new_actor()
        # the policy that acts: a Polyak average of the trained actor (AgentConfig.actor_ema)
        self.actor_ema = _slow(self.actor)
        self.q_r = Critic(f, u, n, m.bins, m.action_dim)
        self.q_c = Critic(f, u, n, m.bins, m.action_dim)
        self.v_r = Critic(f, u, n, m.bins)
        self.v_c = Critic(f, u, n, m.bins)
        self.ref = VNet(f, u, n)  # logit of u(s) = P(a violation lies ahead)
        # slow EMA copies: the only networks a target bootstraps from
        self.v_r_slow, self.v_c_slow, self.ref_slow = map(_slow, (self.v_r, self.v_c, self.ref))
        self.to(device)
        self.device = torch.device(device)
        self.lagrangian = AugmentedLagrangian(
            a.lagrange_init, a.penalty_init, a.penalty_growth, self.device, a.lagrange_max
        )
        o = cfg.optim
        critics = [p for net in (self.q_r, self.q_c, self.v_r, self.v_c) for p in net.parameters()]
        self.opts = {
            "model": adam(self.wm.parameters(), o.lr_model, o),
            "actor": adam(self.actor.parameters(), o.lr_actor_critic, o),
            "critic": adam(critics, o.lr_actor_critic, o),
            "ref": adam(self.ref.parameters(), o.lr_ref, o),
        }
        self.step_count = 0
        # DreamerV3's return scale S (EMA of the 5-95 % range of the imagined lambda-returns, one
        # per critic): the unit in which PEX compares proposals (policy/expansion.py)
        self.register_buffer("return_scale", torch.ones(2, device=device))
        # EMA of the std of A_r and A_c over dataset rows: eq. 19's exponents see A / std(A)
        self.register_buffer("adv_scale", torch.zeros(2, device=device))
        self.cache: FeatureCache | None = None
        self.generator = torch.Generator(device="cpu").manual_seed(cfg.train.seed)
        # finetuning: replay rows from this index on are online; their share of each batch
        self.replay_online_from, self.online_share = -1, 0.0
        self._behaviour_steps = 0
        self.settled_at = -1  # world-model step at which `settle` last ran
        self.behaviour_repeats = 0  # finetuning's override of cfg.agent.behaviour_repeats
        self.learn_world_model = True  # finetuning may freeze it (FinetuneConfig.world_model)
        self.representation_lr = 1.0  # finetuning may slow it (FinetuneConfig.representation_lr)
        # finetuning strategies with their own actor loss (policy/safedreamer.py, marvel.py):
        # called with the imagined rollouts {feat, action, cont, ret_r, ret_c} and the behaviour
        # rows, returns (loss, metrics)
        self.actor_objective: ActorObjective | None = None
        # ... and with their own Q losses (policy/marvel.py: soft fitted-Q evaluation): called
        # with the behaviour rows, returns ({"r": loss of Q, "c": loss of Q_c}, metrics); they
        # replace eqs. 9-10 for Q and Q_c (V, V_c and the REF learn as offline)
        self.q_objective: QObjective | None = None

    def new_actor(self) -> Actor:
        """A freshly initialised actor of this agent's architecture (on its device once the
        agent is)."""
        m, a = self.cfg.model, self.cfg.agent
        actor = Actor(
            self.wm.feat_dim, m.action_dim, m.mlp_units, m.mlp_layers,
            (a.actor_min_std, a.actor_max_std),
        )  # fmt: skip
        device = getattr(self, "device", None)
        return actor if device is None else actor.to(device)

    @property
    def acting_actor(self) -> Actor:
        """The policy that acts (and that finetuning freezes or copies): the Polyak average of
        the trained actor, or the trained actor itself when `actor_ema` is 0."""
        return self.actor_ema if self.cfg.agent.actor_ema > 0 else self.actor

    def set_actor(self, actor: Actor) -> None:
        """Replace the trained actor; the acting average restarts from it."""
        self.actor = actor
        self.actor_ema = _slow(actor)

    def _follow_actor(self) -> None:
        """One Polyak step of the acting actor towards the trained one (after an actor update)."""
        if self.cfg.agent.actor_ema > 0:
            polyak(self.actor, self.actor_ema, self.cfg.agent.actor_ema)

    def reset_actor_optimiser(self) -> None:
        """A new Adam state for `self.actor` (a new policy's moments start at zero)."""
        o = self.cfg.optim
        self.opts["actor"] = adam(self.actor.parameters(), o.lr_actor_critic, o)

    def attach(self, replay: Replay) -> None:
        """Learn behaviour on the full-history features of every row of `replay`."""
        self.cache = FeatureCache(replay, self.cfg.agent.gamma)

    # ------------------------------------------------------------------ training

    def _update(self, name: str, loss: Tensor, params) -> Tensor:
        opt = self.opts[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        opt.step()
        return norm

    def train_step(
        self, batch: dict[str, Tensor], policy_weight: PolicyWeight | None = None
    ) -> dict[str, Tensor]:
        """One world-model step and `behaviour_repeats` behaviour steps. Returns metrics as device
        tensors (no host sync). `policy_weight(adv_r, adv_c, feasible, phi, valid)` replaces
        eq. 19's weight and its 1/Z (finetuning, policy/expansion.py); None keeps eq. 19."""
        a = self.cfg.agent
        if self.learn_world_model:
            wm_loss, metrics, feat = self.wm.loss(batch)
            slow = self.wm.representation() if self.representation_lr < 1 else []
            before = [p.detach().clone() for p in slow]
            metrics["wm/grad_norm"] = self._update("model", wm_loss, self.wm.parameters())
            with torch.no_grad():  # Adam's step times the share: its learning rate times it
                for p, old in zip(slow, before, strict=True):
                    p.lerp_(old, 1 - self.representation_lr)
        else:  # finetuning with a frozen representation: the loss is reported, not followed
            with torch.no_grad():
                wm_loss, metrics, feat = self.wm.loss(batch)
        with torch.no_grad():  # how often the heads predict the events the labels hold
            feat_d = feat.detach()
            metrics["rate/cost_true"] = (batch["cost"] > 0).float().mean()
            metrics["rate/cost_pred"] = (self.wm.cost(feat_d) > a.cost_event).float().mean()
            metrics["rate/reward_true"] = (batch["reward"] > 0).float().mean()
            metrics["rate/reward_pred"] = (self.wm.reward(feat_d) > 0.5).float().mean()
        if self.cache is None:
            rows = self._window_rows(feat.detach(), batch)
            for _ in range(a.behaviour_repeats):
                metrics.update(self.behaviour_step(rows, policy_weight))
        else:
            if self.cache.stale() or self.step_count % a.cache_every == 0:
                # every cache_every steps all rows; in between, new episodes only
                self._refresh_cache(only_new=self.step_count % a.cache_every != 0)
            for _ in range(self.behaviour_repeats or a.behaviour_repeats):
                metrics.update(self._cached_behaviour_step(self._behaviour_steps, policy_weight))
                self._behaviour_steps += 1
        self.step_count += 1
        return {k: v.detach() if torch.is_tensor(v) else v for k, v in metrics.items()}

    @torch.no_grad()
    def cost_head_check(
        self, cache: FeatureCache | None = None, chunk: int = 8192
    ) -> dict[str, float]:
        """How many of the replay's cost rows the cost head flags (prediction > `cost_event`) on
        the cached full-history features of the last refresh (`cache`: another replay's, default
        the agent's own), and how many other rows. Imagined rollouts count a violation only
        where it flags one (docs/algorithm.md, "does the world model see the policy's contacts")."""
        cache = cache if cache is not None else self.cache
        assert cache is not None and len(cache.feat), "cost_head_check needs a refreshed cache"
        predicted = torch.cat(
            [self.wm.cost(cache.feat[k : k + chunk]) for k in range(0, len(cache.feat), chunk)]
        )
        assert predicted.shape == cache.cost.shape, (predicted.shape, cache.cost.shape)
        flagged, hit = predicted > self.cfg.agent.cost_event, cache.cost > 0
        out = {"check/cost_rows": float(hit.sum())}
        if hit.any():
            out["check/cost_recall"] = flagged[hit].float().mean().item()
        if (~hit).any():
            out["check/cost_false_alarm"] = flagged[~hit].float().mean().item()
        return out

    def settle(self, steps: int, policy_weight: PolicyWeight | None = None) -> dict[str, Tensor]:
        """`steps` behaviour steps on a freshly refreshed cache with the world model frozen, so
        critics, REF and actor end on the features the final world model computes."""
        assert self.cache is not None, "settle needs an attached replay"
        behaviour_steps = self._behaviour_steps  # the training schedule's counter is not moved
        self._refresh_cache(only_new=False)
        self._behaviour_steps = behaviour_steps
        metrics: dict[str, Tensor] = {}
        for k in range(steps):
            metrics = self._cached_behaviour_step(k, policy_weight)
        self.settled_at = self.step_count
        return {k: v.detach() for k, v in metrics.items()}

    def _refresh_cache(self, only_new: bool) -> None:
        """Recompute the cached features (eval mode: no training-time behaviour in the model)."""
        assert self.cache is not None
        self.wm.eval()
        self.cache.refresh(self.wm, only_new=only_new)
        self.wm.train()
        self._behaviour_steps = 0

    def _cached_behaviour_step(
        self, index: int, policy_weight: PolicyWeight | None
    ) -> dict[str, Tensor]:
        """Behaviour step `index` since the last refresh, on rows sampled from the cache; the
        in-sample returns are recomputed every `returns_every` steps."""
        a, cache = self.cfg.agent, self.cache
        assert cache is not None
        if index % a.returns_every == 0:
            cache.update_returns(self.v_r_slow, self.v_c_slow, a)
        rows = cache.sample(
            a.behaviour_batch, self.generator, self.replay_online_from, self.online_share
        )
        return self.behaviour_step(self._cache_rows(rows), policy_weight)

    @torch.no_grad()
    def _window_rows(self, feat: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Behaviour rows from the batch's windows (no cache): rows 0 .. T-2 of each window, the
        in-sample returns bootstrapped at the window's end."""
        a = self.cfg.agent
        cont = 1.0 - batch["is_terminal"].float()
        rets = [
            O.dataset_lambda_returns(batch[k], cont, v(feat), a.gamma, lam)
            for k, v, lam in (
                ("reward", self.v_r_slow, a.lambda_r),
                ("cost", self.v_c_slow, a.lambda_c),
            )
        ]
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        to_go = O.discounted_to_go(batch["cost"], cont, a.gamma)
        return {
            "feat": flat(feat[:, :-1]),
            "action": flat(batch["action"][:, :-1]),
            "ret_r": flat(rets[0]),
            "ret_c": flat(rets[1]),
            "cost_to_go": flat(to_go[:, :-1]),
            # the window's own cost: the episode's when windows are whole episodes
            "episode_cost": flat(to_go[:, :1].expand_as(to_go)[:, :-1]),
            "feat_next": flat(feat[:, 1:]),
            "has_next": torch.ones_like(flat(rets[0])),
            "reward_next": flat(batch["reward"][:, 1:]),
            "cost_next": flat(batch["cost"][:, 1:]),
            "cont_next": flat(cont[:, 1:]),
            "violation": flat((batch["cost"][:, :-1] > 0).float()),
            "valid": flat((~batch["is_last"][:, :-1]).float()),
        }

    def _cache_rows(self, rows: Tensor) -> dict[str, Tensor]:
        c = self.cache
        assert c is not None
        return {
            "feat": c.feat[rows],
            "action": c.action[rows],
            "ret_r": c.ret_r[rows],
            "ret_c": c.ret_c[rows],
            "cost_to_go": c.cost_to_go[rows],
            "episode_cost": c.episode_cost[rows],
            "feat_next": c.feat[c.next[rows]],
            "has_next": c.has_next[rows].float(),
            "reward_next": c.reward[c.next[rows]],
            "cost_next": c.cost[c.next[rows]],
            "cont_next": c.cont[c.next[rows]],
            "violation": (c.cost[rows] > 0).float(),
            "valid": c.valid[rows].float(),
        }

    def behaviour_step(
        self, d: dict[str, Tensor], policy_weight: PolicyWeight | None = None
    ) -> dict[str, Tensor]:
        """Critics, values, REF, actor and multipliers on rows `d` (features, dataset actions,
        in-sample returns, next features, violation and validity flags)."""
        a = self.cfg.agent
        feat, act, valid = d["feat"], d["action"], d["valid"]
        n_valid = valid.sum().clamp_min(1.0)

        def mean_valid(x: Tensor) -> Tensor:
            return (x * valid).sum() / n_valid

        # eq. 6 from a subset of the rows; eq. 8 bootstrapped from the slow values
        with torch.no_grad():
            feats, actions = self._imagine(feat[: a.imagine_starts], a.horizon)
            nxt = feats[1:]
            rew_i, cost_i, cont_i = self.wm.reward(nxt), self.wm.cost(nxt), self.wm.cont(nxt)
            ret_i = {
                "r": O.lambda_returns(rew_i, cont_i, self.v_r_slow(nxt), a.gamma, a.lambda_r),
                "c": O.lambda_returns(cost_i, cont_i, self.v_c_slow(nxt), a.gamma, a.lambda_c),
            }
            for i, k in enumerate("rc"):
                self.return_scale[i] = O.ema_return_scale(
                    self.return_scale[i], ret_i[k], a.scale_decay
                )
        metrics: dict[str, Tensor] = {}
        critic_loss = torch.zeros((), device=feat.device)
        adv = {}
        q_losses = None
        if self.q_objective is not None:
            q_losses, q_metrics = self.q_objective(d)
            metrics.update(q_metrics)
        for k, q_net, v_net, kappa in (
            ("r", self.q_r, self.v_r, a.expectile),
            ("c", self.q_c, self.v_c, a.expectile_c),
        ):
            ret_d = d[f"ret_{k}"]
            if q_losses is None:
                loss_q1 = q_net.loss(feats[:-1], ret_i[k], actions).mean()  # eq. 9
                loss_q2 = mean_valid(q_net.loss(feat, ret_d, act))  # eq. 10 (in-sample lambda)
            else:  # the strategy's Q loss (reported in the eq. 10 slot)
                loss_q1, loss_q2 = torch.zeros((), device=feat.device), q_losses[k]
            v_pred = v_net(feat)
            weight = O.expectile_weight(ret_d, v_pred.detach(), kappa)  # eq. 7
            loss_v = mean_valid(weight * v_net.loss(feat, ret_d))
            critic_loss = critic_loss + loss_q1 + loss_q2 + loss_v
            with torch.no_grad():
                adv[k] = ret_d - v_pred
                i = 0 if k == "r" else 1
                self.adv_scale[i] = O.ema_spread(self.adv_scale[i], adv[k], valid, a.adv_decay)
            metrics[f"critic/q{k}_img"] = loss_q1
            metrics[f"critic/q{k}_data"] = loss_q2
            metrics[f"critic/v{k}_loss"] = loss_v
            metrics[f"critic/return_{k}"] = ret_i[k].mean()
            metrics[f"value/v_{k}"] = mean_valid(v_pred.detach())
            metrics[f"value/adv_scale_{k}"] = self.adv_scale[i].clone()
        params = [p for net in (self.q_r, self.q_c, self.v_r, self.v_c) for p in net.parameters()]
        metrics["critic/grad_norm"] = self._update("critic", critic_loss, params)

        metrics.update(self._ref_loss(d, feats))  # eq. 30

        with torch.no_grad():
            v_c = self.v_c(feat)
            u = torch.sigmoid(self.ref(feat))
            phi = self.lagrangian.phi(v_c) / self.adv_scale[0].clamp_min(1e-3)
        imagined = {"feat": feats, "action": actions, "cont": cont_i,
                    "ret_r": ret_i["r"], "ret_c": ret_i["c"]}  # fmt: skip
        if self.actor_objective is None:
            metrics.update(self._extraction_step(d, adv, phi, u, policy_weight, imagined))
        else:  # a finetuning strategy's own actor loss on the imagined rollouts
            actor_loss, actor_metrics = self.actor_objective(imagined, d)
            metrics.update(actor_metrics)
            metrics["actor/grad_norm"] = self._update("actor", actor_loss, self.actor.parameters())
            metrics["actor/loss"] = actor_loss.detach()
        self._follow_actor()

        # eq. 27 on the states the REF calls feasible (App. A.1: the constraint V_c = 0 holds
        # there; where it does not, lambda_p grows), bounded by lagrange_max
        feasible = (u < 0.5).float() * valid
        v_feasible = (v_c * feasible).sum() / feasible.sum().clamp_min(1.0)  # 0 if none
        self.lagrangian.step(v_feasible)
        metrics["lagrange/lambda_p"] = self.lagrangian.lagrange
        metrics["lagrange/mu"] = self.lagrangian.penalty
        metrics["lagrange/phi"] = phi.mean()
        metrics["value/return_scale_r"] = self.return_scale[0].clone()
        metrics["value/return_scale_c"] = self.return_scale[1].clone()
        metrics["value/v_c_feasible"] = v_feasible
        metrics["ref/u_mean"] = u.mean()
        viol = d["violation"]
        metrics["ref/u_at_violation"] = (u * viol).sum() / viol.sum().clamp_min(1)
        metrics["ref/u_no_violation"] = (u * (1 - viol)).sum() / (1 - viol).sum().clamp_min(1)

        for fast, slow in ((self.v_r, self.v_r_slow), (self.v_c, self.v_c_slow),
                           (self.ref, self.ref_slow)):  # fmt: skip
            polyak(fast, slow, a.slow_rate)  # slow copies follow
        return metrics

    def _extraction_step(
        self, d: dict[str, Tensor], adv: dict[str, Tensor], phi: Tensor, u: Tensor,
        policy_weight: PolicyWeight | None, imagined: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:  # fmt: skip
        """Eqs. 17-20: advantage-weighted extraction with the REF-mixed weight and Phi; with
        `imagined_cost` > 0, plus the imagined cost term (`imagined_cost_loss`)."""
        a = self.cfg.agent
        feat, act, valid = d["feat"], d["action"], d["valid"]

        def mean_valid(x: Tensor) -> Tensor:
            return (x * valid).sum() / valid.sum().clamp_min(1.0)

        with torch.no_grad():
            scale_r, scale_c = self.adv_scale.clamp_min(1e-3)
            adv_r, adv_c = adv["r"] / scale_r, adv["c"] / scale_c
            f = O.feasibility(
                a.feasible_gate, u, d["cost_to_go"], a.cost_limit, d.get("episode_cost")
            )
            weight = policy_weight or self.eq19_weights
            w = weight(adv_r, adv_c, f, phi, valid)
        dist = self.actor.dist(feat)
        logp = dist.log_prob(act).sum(-1)
        entropy = dist.entropy().sum(-1)
        actor_loss = -mean_valid(w * logp + a.entropy * entropy)
        extra = {}
        if a.imagined_cost > 0 and imagined is not None and self.imagines_with_actor():
            cost_loss = self.imagined_cost_loss(imagined)
            actor_loss = actor_loss + a.imagined_cost * cost_loss
            extra["actor/imagined_cost_loss"] = cost_loss.detach()
        return {
            **extra,
            "actor/grad_norm": self._update("actor", actor_loss, self.actor.parameters()),
            "actor/loss": actor_loss.detach(),
            "actor/entropy": entropy.mean().detach(),
            "actor/logp": mean_valid(logp.detach()),
            "actor/weight_max": w.max(),
            "actor/weight_std": w.std(),
            "actor/feasible": mean_valid(f),
        }

    def eq19_weights(
        self, adv_r: Tensor, adv_c: Tensor, feasible: Tensor, phi: Tensor, valid: Tensor
    ) -> Tensor:
        """Eq. 19's weight per row over its batch mean on the valid rows (1/Z, eq. 18), with
        this agent's temperatures, clip and cost branch."""
        a = self.cfg.agent
        w = O.awr_weights(
            adv_r, adv_c, feasible, phi, a.beta_r, a.beta_c, a.awr_max_exponent, a.cost_branch
        )
        return w / ((w * valid).sum() / valid.sum().clamp_min(1.0)).clamp_min(1e-8)

    def imagined_cost_loss(self, imagined: dict[str, Tensor]) -> Tensor:
        """mean_h,n [w_h log pi(a_h | s_h) sg(A^c_h)] with A^c_h = (R^c_h - V^c_slow(s_h)) /
        max(1, S_c) and w_h = prod_{k<h} c_k. Lowering it makes imagined actions that led to more
        cost than expected less likely (REINFORCE, as SafeDreamer's actor; the reward side is left
        to eq. 20 offline, where imagined rewards would be exploited)."""
        feat, action = imagined["feat"][:-1], imagined["action"]  # [H, N, F], [H, N, A]
        with torch.no_grad():
            adv_c = (imagined["ret_c"] - self.v_c_slow(feat)) / self.return_scale[1].clamp_min(1.0)
            reached = O.reached_weights(imagined["cont"])
        logp = self.actor.dist(feat).log_prob(action).sum(-1)
        return (reached * logp * adv_c).mean()

    def imagines_with_actor(self) -> bool:
        """The imagined actions are the trained actor's own (REINFORCE needs on-policy samples)."""
        other = self.__dict__.get("_imagine_actor")
        return other is None or other is self.actor

    def set_imagination_actor(self, actor: Actor | None) -> None:
        """The actor the critics' imagined rollouts follow (None: `self.actor`). Kept out of the
        module tree: its weights belong to whoever owns it (PEX saves its frozen actor)."""
        self.__dict__["_imagine_actor"] = actor

    def _imagine(
        self, start: Tensor, horizon: int, actor: Actor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Eq. 6 from flat features [N, F]: features [H + 1, N, F] and actions [H, N, A]."""
        actor = actor or self.__dict__.get("_imagine_actor") or self.actor
        d = self.cfg.model.deter
        state: State = (
            start[:, :d],
            start[:, d:].reshape(-1, self.cfg.model.stoch, self.cfg.model.classes),
        )
        feats, actions = [start], []
        for _ in range(horizon):
            act = actor.sample(feats[-1])
            state = self.wm.imagine_step(state, act)
            feats.append(self.wm.feat(*state))
            actions.append(act)
        return torch.stack(feats), torch.stack(actions)

    def _ref_loss(self, d: dict[str, Tensor], feats: Tensor) -> dict[str, Tensor]:
        """Eq. 30 on dataset rows (violation from the cost labels) and on imagined rollouts (from
        the cost decoder), bootstrapped from the slow REF."""
        a = self.cfg.agent
        with torch.no_grad():
            u_next = torch.sigmoid(self.ref_slow(d["feat_next"]))
            target = O.ref_target(d["violation"], u_next, a.gamma_u, d["has_next"])
        loss = bce_soft(self.ref(d["feat"]), target).mean()
        out = {"ref/loss_data": loss}
        if a.ref_imagined:
            with torch.no_grad():
                cost_now = self.wm.cost(feats[:-1])
                viol_i = (cost_now > a.cost_event).float()
                u_next_i = torch.sigmoid(self.ref_slow(feats[1:]))
                target_i = O.ref_target(viol_i, u_next_i, a.gamma_u, torch.ones_like(u_next_i))
            loss_i = bce_soft(self.ref(feats[:-1]), target_i).mean()
            out["ref/loss_imagined"] = loss_i
            loss = loss + loss_i
        self._update("ref", loss, self.ref.parameters())
        return out

    # ------------------------------------------------------------------ acting

    def initial_state(self) -> dict[str, Tensor]:
        h, z = self.wm.initial(1, self.device)
        return {
            "h": h,
            "z": z,
            "action": torch.zeros(1, self.cfg.model.action_dim, device=self.device),
        }

    @torch.no_grad()
    def filter_step(
        self, obs: dict[str, np.ndarray], h: Tensor, z: Tensor, action: Tensor,
        wm: WorldModel | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """The posterior state of one observation after `action` from (h, z): (h, z, feat)."""
        wm = wm or self.wm
        image = torch.as_tensor(obs["image"], device=self.device)[None]
        pose = torch.as_tensor(obs["pose"], device=self.device, dtype=torch.float32)[None]
        h, _ = wm.img_step((h, z), action)
        z = wm.sample(wm.post_logits(h, wm.embed(image, pose)))
        return h, z, wm.feat(h, z)

    @torch.no_grad()
    def act(
        self,
        obs: dict[str, np.ndarray],
        state: dict[str, Tensor] | None = None,
        deterministic: bool = True,
        actor: Actor | None = None,
    ) -> tuple[np.ndarray, dict[str, Tensor]]:
        """One control step for a single observation (batch 1). `state` None starts an episode.
        `actor` lets a caller act with another policy on the same world-model state (PEX);
        default: `acting_actor`."""
        state = state or self.initial_state()
        h, z, feat = self.filter_step(obs, state["h"], state["z"], state["action"])
        action = (actor or self.acting_actor).sample(feat, deterministic)
        new_state = {"h": h, "z": z, "action": action, "feat": feat}
        return action[0].cpu().numpy(), new_state

    # ------------------------------------------------------------------ checkpoints

    def full_state(self) -> dict[str, Any]:
        return {
            "modules": self.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "lagrangian": self.lagrangian.state_dict(),
            "step": self.step_count,
            "behaviour_rng": self.generator.get_state(),
            "behaviour_steps": self._behaviour_steps,
            "settled_at": self.settled_at,
        }

    def load_full_state(self, state: dict[str, Any]) -> None:
        modules = dict(state["modules"])
        if not any(k.startswith("actor_ema.") for k in modules):
            # written before the acting average existed: it starts as the actor that acted then
            for key, value in state["modules"].items():
                if key.startswith("actor."):
                    modules["actor_ema." + key.removeprefix("actor.")] = value
        self.load_state_dict(modules)
        for k, o in self.opts.items():
            o.load_state_dict(state["optimizers"][k])
        self.lagrangian.load_state_dict(state["lagrangian"])
        self.step_count = int(state["step"])
        self.generator.set_state(state["behaviour_rng"])
        self._behaviour_steps = int(state["behaviour_steps"])
        self.settled_at = int(state.get("settled_at", -1))
