"""The offline FOSP agent: world model + critics Q, Q_c, values V, V_c, REF u, actor, multipliers.

One `train_step(batch)` is Algorithm 1 lines 3-11: world model (eq. 1), imagined rollouts from
every posterior state (eq. 6), lambda-returns (eq. 8), critics (eqs. 9-11), expectile values
(eq. 7), the REF (eq. 30), policy extraction (eqs. 17-20) and the multiplier update (eq. 27).
The actor is its own module (deep-copy and freeze it for safe policy expansion); critics, values
and the REF are attributes; `act` runs one control step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from policy import objectives as O
from policy.config import Config
from policy.lagrangian import AugmentedLagrangian
from policy.networks import Actor, QNet, VNet, bce_soft
from policy.world_model import State, WorldModel

# (adv_r, adv_c, feasible, phi, valid) -> per-row weight of log pi (eq. 19 or eq. 23)
PolicyWeight = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


def _adam(params, lr: float, cfg) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, eps=cfg.eps, weight_decay=cfg.weight_decay)


class FOSPAgent(nn.Module):
    def __init__(self, cfg: Config, device: str | torch.device = "cpu"):
        super().__init__()
        self.cfg = cfg
        m, a = cfg.model, cfg.agent
        self.wm = WorldModel(m)
        f, u, n = self.wm.feat_dim, m.mlp_units, m.mlp_layers
        self.actor = Actor(f, m.action_dim, u, n, (a.actor_min_std, a.actor_max_std))
        self.q_r = QNet(f, m.action_dim, u, n)
        self.q_c = QNet(f, m.action_dim, u, n)
        self.v_r = VNet(f, u, n)
        self.v_c = VNet(f, u, n)
        self.ref = VNet(f, u, n)  # logit of u(s) = P(a violation lies ahead)
        self.to(device)
        self.device = torch.device(device)
        self.lagrangian = AugmentedLagrangian(
            a.lagrange_init, a.penalty_init, a.penalty_growth, self.device
        )
        o = cfg.optim
        critics = [*self.q_r.parameters(), *self.q_c.parameters()]
        critics += [*self.v_r.parameters(), *self.v_c.parameters()]
        self.opts = {
            "model": _adam(self.wm.parameters(), o.lr_model, o),
            "actor": _adam(self.actor.parameters(), o.lr_actor_critic, o),
            "critic": _adam(critics, o.lr_actor_critic, o),
            "ref": _adam(self.ref.parameters(), o.lr_ref, o),
        }
        self.step_count = 0
        # DreamerV3's return scale S = EMA of the 5-95 % percentile range of the lambda-returns,
        # one per critic; advantages are divided by max(1, S) before the AWR exponent (eq. 19)
        self.register_buffer("return_scale", torch.ones(2, device=device))

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
        """One gradient step of every part. Returns metrics as device tensors (no host sync).

        `policy_weight(adv_r, adv_c, feasible, phi, valid)` replaces eq. 19's weight and its 1/Z
        (finetuning's eq. 23, policy/expansion.py); None keeps the offline extraction."""
        a = self.cfg.agent
        wm_loss, metrics, feat = self.wm.loss(batch)
        metrics["wm/grad_norm"] = self._update("model", wm_loss, self.wm.parameters())

        feat = feat.detach()  # [B, T, F] posterior states s^0
        act_data = batch["action"]
        cont_data = 1.0 - batch["is_terminal"].float()
        valid = (~batch["is_last"]).float()  # rows whose action was executed

        # eq. 6: imagined rollouts of horizon H from every posterior state (no gradient into the
        # world model; the actor is trained on dataset actions, eqs. 18-20)
        with torch.no_grad():
            feats, actions = self._imagine(feat.reshape(-1, feat.shape[-1]), a.horizon)
            nxt = feats[1:]
            rew_i, cost_i, cont_i = self.wm.reward(nxt), self.wm.cost(nxt), self.wm.cont(nxt)
            cost_now = self.wm.cost(feats[:-1])

        # eqs. 8-11: critics on lambda-returns plus the dataset TD term with real rewards/costs
        critic_loss = torch.zeros((), device=feat.device)
        value_loss = torch.zeros((), device=feat.device)
        adv = {}
        for name, q_net, v_net, r_img, r_data, lam in (
            ("r", self.q_r, self.v_r, rew_i, batch["reward"], a.lambda_r),
            ("c", self.q_c, self.v_c, cost_i, batch["cost"], a.lambda_c),
        ):
            with torch.no_grad():
                ret = O.lambda_returns(r_img, cont_i, v_net(nxt), a.gamma, lam)  # eq. 8
                i = 0 if name == "r" else 1
                self.return_scale[i] = O.ema_return_scale(self.return_scale[i], ret, a.scale_decay)
                td = O.td_target(r_data[:, 1:], cont_data[:, 1:], v_net(feat[:, 1:]), a.gamma)
            q_img = q_net(feats[:-1], actions)
            loss_q1 = (q_img - ret).square().mean()  # eq. 9
            q_data = q_net(feat[:, :-1], act_data[:, :-1])
            loss_q2 = ((q_data - td).square() * valid[:, :-1]).sum() / valid[:, :-1].sum()
            critic_loss = critic_loss + loss_q1 + loss_q2  # eq. 11
            # eq. 7: V towards the upper (kappa) expectile of Q over the policy's actions
            value_loss = (
                value_loss + O.expectile_loss(q_img.detach(), v_net(feats[:-1]), a.expectile).mean()
            )
            with torch.no_grad():
                adv[name] = q_net(feat, act_data) - v_net(feat)
                adv[name] = adv[name] / self.return_scale[i].clamp_min(1.0)
            metrics[f"critic/q{name}_img"] = loss_q1
            metrics[f"critic/q{name}_data"] = loss_q2
            metrics[f"critic/return_{name}"] = ret.mean()
        critic_params = [
            p for m in (self.q_r, self.q_c, self.v_r, self.v_c) for p in m.parameters()
        ]
        metrics["critic/value_loss"] = value_loss
        self._update("critic", critic_loss + value_loss, critic_params)

        # eq. 30: REF from cost labels on dataset windows and predicted costs in imagination
        metrics.update(self._ref_loss(feat, batch, feats, cost_now))

        # eqs. 17-20: advantage-weighted extraction with the REF-mixed weight and Phi
        with torch.no_grad():
            v_c = self.v_c(feat)
            u = torch.sigmoid(self.ref(feat))
            phi = self.lagrangian.phi(v_c) / self.return_scale[0].clamp_min(1.0)
            if policy_weight is None:
                w = O.awr_weights(
                    adv["r"], adv["c"], 1.0 - u, phi, a.beta_r, a.beta_c, a.awr_max_exponent
                )
                w = w / ((w * valid).sum() / valid.sum()).clamp_min(1e-8)  # 1/Z (eq. 18)
            else:
                w = policy_weight(adv["r"], adv["c"], 1.0 - u, phi, valid)
        dist = self.actor.dist(feat)
        logp = dist.log_prob(act_data).sum(-1)
        entropy = dist.entropy().sum(-1)
        actor_loss = -((w * logp + a.entropy * entropy) * valid).sum() / valid.sum()
        metrics["actor/grad_norm"] = self._update("actor", actor_loss, self.actor.parameters())
        # eq. 20's -Phi u term: no gradient reaches psi (Phi and u are not functions of psi);
        # logged for completeness, its effect enters through Phi in the weight (docs)
        metrics["actor/loss"] = actor_loss
        metrics["actor/phi_u"] = (phi * (1 - u)).mean()
        metrics["actor/entropy"] = entropy.mean()
        metrics["actor/logp"] = logp.mean()
        metrics["actor/weight_max"] = w.max()

        # eq. 27: multiplier update from the batch's cost values, then the non-decreasing mu
        self.lagrangian.step(v_c.mean())
        metrics["lagrange/lambda_p"] = self.lagrangian.lagrange
        metrics["lagrange/mu"] = self.lagrangian.penalty
        metrics["lagrange/phi"] = phi.mean()
        metrics["value/return_scale_r"] = self.return_scale[0].clone()
        metrics["value/return_scale_c"] = self.return_scale[1].clone()
        metrics["value/v_r"] = self.v_r(feat).mean().detach()
        metrics["value/v_c"] = v_c.mean()
        metrics["ref/u_mean"] = u.mean()
        viol = (batch["cost"] > 0).float()
        metrics["ref/u_at_violation"] = (u * viol).sum() / viol.sum().clamp_min(1)
        metrics["ref/u_no_violation"] = (u * (1 - viol)).sum() / (1 - viol).sum().clamp_min(1)
        with torch.no_grad():
            pred_cost = self.wm.cost(feat)
            pred_rew = self.wm.reward(feat)
        metrics["rate/cost_true"] = viol.mean()
        metrics["rate/cost_pred"] = (pred_cost > a.cost_event).float().mean()
        metrics["rate/reward_true"] = (batch["reward"] > 0).float().mean()
        metrics["rate/reward_pred"] = (pred_rew > 0.5).float().mean()
        self.step_count += 1
        return {k: v.detach() if torch.is_tensor(v) else v for k, v in metrics.items()}

    def _imagine(self, start: Tensor, horizon: int) -> tuple[Tensor, Tensor]:
        """Eq. 6 from flat features [N, F]: features [H + 1, N, F] and actions [H, N, A]."""
        d = self.cfg.model.deter
        state: State = (
            start[:, :d],
            start[:, d:].reshape(-1, self.cfg.model.stoch, self.cfg.model.classes),
        )
        feats, actions = [start], []
        for _ in range(horizon):
            act = self.actor.sample(feats[-1])
            state = self.wm.imagine_step(state, act)
            feats.append(self.wm.feat(*state))
            actions.append(act)
        return torch.stack(feats), torch.stack(actions)

    def _ref_loss(
        self, feat: Tensor, batch: dict[str, Tensor], feats: Tensor, cost_now: Tensor
    ) -> dict[str, Tensor]:
        a = self.cfg.agent
        logits = self.ref(feat)
        with torch.no_grad():
            u_next = torch.sigmoid(logits[:, 1:])
            viol = (batch["cost"] > 0).float()
            # rows 0..T-2 bootstrap from the next row; the last row only where the episode ends
            target = O.ref_target(viol[:, :-1], u_next, a.gamma_u, torch.ones_like(u_next))
            last_t = viol[:, -1]
            mask_last = batch["is_last"][:, -1].float()
        loss = bce_soft(logits[:, :-1], target).mean()
        loss = loss + (bce_soft(logits[:, -1], last_t) * mask_last).sum() / feat.shape[0]
        out = {"ref/loss_data": loss}
        if a.ref_imagined:
            logits_i = self.ref(feats[:-1])
            with torch.no_grad():
                u_next_i = torch.sigmoid(self.ref(feats[1:]))
                viol_i = (cost_now > a.cost_event).float()
                target_i = O.ref_target(viol_i, u_next_i, a.gamma_u, torch.ones_like(u_next_i))
            loss_i = bce_soft(logits_i, target_i).mean()
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
    def act(
        self,
        obs: dict[str, np.ndarray],
        state: dict[str, Tensor] | None = None,
        deterministic: bool = True,
        actor: Actor | None = None,
    ) -> tuple[np.ndarray, dict[str, Tensor]]:
        """One control step for a single observation (batch 1). `state` None starts an episode.
        `actor` lets a caller act with another policy on the same world-model state (PEX)."""
        state = state or self.initial_state()
        image = torch.as_tensor(obs["image"], device=self.device)[None]
        pose = torch.as_tensor(obs["pose"], device=self.device, dtype=torch.float32)[None]
        h, _ = self.wm.img_step((state["h"], state["z"]), state["action"])
        z = self.wm.sample(self.wm.post_logits(h, self.wm.embed(image, pose)))
        feat = self.wm.feat(h, z)
        action = (actor or self.actor).sample(feat, deterministic)
        new_state = {"h": h, "z": z, "action": action, "feat": feat}
        return action[0].cpu().numpy(), new_state

    # ------------------------------------------------------------------ checkpoints

    def full_state(self) -> dict[str, Any]:
        return {
            "modules": self.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "lagrangian": self.lagrangian.state_dict(),
            "step": self.step_count,
        }

    def load_full_state(self, state: dict[str, Any]) -> None:
        self.load_state_dict(state["modules"])
        for k, o in self.opts.items():
            o.load_state_dict(state["optimizers"][k])
        self.lagrangian.load_state_dict(state["lagrangian"])
        self.step_count = int(state["step"])
