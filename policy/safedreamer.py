"""`safedreamer` finetuning: SafeDreamer's (Huang et al. 2024) online Lagrangian actor-critic in
imagination, started from the pretrained world model, critics and actor (FOSP Fig. 12's
"finetuned SafeDreamer" baseline).

From replay states, imagined rollouts follow the learning actor (on-policy; no frozen actor);
the transferred critics keep learning on them and on the data as offline. The actor has no
behaviour constraint: it is trained by REINFORCE on its own imagined actions, as DreamerV3,
with the Lagrangian advantage

    A_h = (A^r_h - lambda A^c_h) / (1 + lambda),    A^k_h = (R^k_h - V^k(s_h)) / max(1, S_k)

(R^k: imagined lambda-returns, V^k: the slow values, S_k: the return scales, the 1 / (1 + lambda)
normalisation of Stooke et al.'s PID Lagrangian with `sum_norm` as SafeDreamer runs it), and

    L = -mean_h,n [ w_h (log pi(a_h | s_h) sg(A_h) + eta H[pi(. | s_h)]) ],  w_h = prod_{k<h} c_k

(c: the continuation of the imagined states). lambda is a PID Lagrangian (policy/lagrangian.py)
on J_c = the mean imagined cost return of the start states against `pid_cost_limit`, updated
after every actor step as SafeDreamer does. It acts alone, like `direct`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from policy.agent import FOSPAgent
from policy.config import FinetuneConfig
from policy.lagrangian import PIDLagrangian
from policy.objectives import reached_weights
from policy.strategy import FinetuneStrategy


def lagrangian_advantage(adv_r: Tensor, adv_c: Tensor, lagrange: float) -> Tensor:
    """(A^r - lambda A^c) / (1 + lambda): the reward-cost trade-off at the scale of A^r."""
    return (adv_r - lagrange * adv_c) / (1.0 + lagrange)


class SafeDreamerFinetune(FinetuneStrategy):
    name = "safedreamer"

    def __init__(self, agent: FOSPAgent, cfg: FinetuneConfig):
        super().__init__(agent, cfg)
        self.pid = PIDLagrangian(
            cfg.pid_kp, cfg.pid_ki, cfg.pid_kd, cfg.pid_cost_limit, cfg.pid_delay, cfg.pid_ema,
            cfg.pid_lambda_init, cfg.pid_lambda_max,
        )  # fmt: skip
        agent.set_imagination_actor(None)  # imagine with the learning actor
        agent.actor_objective = self.actor_loss

    def actor_loss(
        self, imagined: dict[str, Tensor], rows: dict[str, Tensor] | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """REINFORCE on imagined actions with the Lagrangian advantage; then the PID step."""
        agent, a = self.agent, self.agent.cfg.agent
        feat, action = imagined["feat"][:-1], imagined["action"]  # [H, N, F], [H, N, A]
        lagrange = self.pid.lagrange
        with torch.no_grad():
            scale_r, scale_c = agent.return_scale.clamp_min(1.0)
            adv_r = (imagined["ret_r"] - agent.v_r_slow(feat)) / scale_r
            adv_c = (imagined["ret_c"] - agent.v_c_slow(feat)) / scale_c
            adv = lagrangian_advantage(adv_r, adv_c, lagrange)
            weight = reached_weights(imagined["cont"])
            j_c = imagined["ret_c"][0].mean()
        dist = agent.actor.dist(feat)
        logp = dist.log_prob(action).sum(-1)
        entropy = dist.entropy().sum(-1)
        loss = -(weight * (logp * adv + a.entropy * entropy)).mean()
        self.pid.step(float(j_c))
        metrics = {
            "actor/entropy": entropy.mean().detach(),
            "actor/adv_std": adv.std(),
            "safedreamer/j_c": j_c,
            "safedreamer/lambda": torch.tensor(lagrange),
        }
        return loss, metrics

    def multiplier(self) -> float:
        return self.pid.lagrange

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pid": self.pid.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pid.load_state_dict(state["pid"])
