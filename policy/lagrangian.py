"""Multipliers: the augmented Lagrangian of FOSP's feasible part (eqs. 17, 26-29; As et al.
2022) and the PID Lagrangian of the safedreamer finetuning strategy (Stooke et al. 2020).

The hard constraint is V_c(s) = 0. Phi (eq. 17 = 29) is the penalty the actor sees; lambda_p
follows eq. 27 once per gradient step; the penalty mu never decreases (mu^{k+1} = mu^k (1 + nu)).
The multipliers are 0-d float64 tensors on the training device (float64: mu^0 (1 + nu) with
nu = 5e-9 must not round back to mu^0), so an update never syncs the host.
"""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor


def phi(v_c: Tensor, lagrange: Tensor | float, penalty: Tensor | float) -> Tensor:
    """Eq. 17 / 29: lambda V_c + mu/4 V_c^2 if lambda + mu/2 V_c >= 0, else -lambda^2 / mu."""
    active = lagrange + penalty / 2 * v_c >= 0
    quad = lagrange * v_c + penalty / 4 * v_c.square()
    return torch.where(active, quad, -(lagrange**2) / penalty + torch.zeros_like(v_c))


def lagrange_update(lagrange: Tensor, penalty: Tensor | float, v_c: Tensor) -> Tensor:
    """Eq. 27: lambda^{k+1} = lambda^k + mu^k/2 V_c if that is >= 0, else 0."""
    return torch.clamp(lagrange + penalty / 2 * v_c, min=0.0)


class AugmentedLagrangian:
    def __init__(
        self,
        lagrange_init: float,
        penalty_init: float,
        penalty_growth: float,
        device="cpu",
        lagrange_max: float = float("inf"),
    ):
        if penalty_init <= 0 or penalty_growth < 0 or lagrange_init < 0:
            raise ValueError("need mu^0 > 0, nu >= 0, lambda_p^0 >= 0")
        self.lagrange = torch.tensor(float(lagrange_init), dtype=torch.float64, device=device)
        self.penalty = torch.tensor(float(penalty_init), dtype=torch.float64, device=device)
        self.growth = float(penalty_growth)
        self.lagrange_max = float(lagrange_max)

    def phi(self, v_c: Tensor) -> Tensor:
        return phi(v_c, self.lagrange, self.penalty)

    @torch.no_grad()
    def step(self, v_c_mean: Tensor) -> None:
        """One update after a gradient step, from the mean of V_c over the batch's feasible
        states; lambda_p stays within [0, lagrange_max]."""
        new = lagrange_update(self.lagrange, self.penalty, v_c_mean.detach())
        self.lagrange = new.clamp(max=self.lagrange_max)
        self.penalty = self.penalty * (1.0 + self.growth)  # non-decreasing mu

    def state_dict(self) -> dict[str, float]:
        return {
            "lagrange": float(self.lagrange),
            "penalty": float(self.penalty),
            "growth": self.growth,
        }

    def load_state_dict(self, state: dict[str, float]) -> None:
        device = self.lagrange.device
        self.lagrange = torch.tensor(float(state["lagrange"]), dtype=torch.float64, device=device)
        self.penalty = torch.tensor(float(state["penalty"]), dtype=torch.float64, device=device)
        self.growth = float(state["growth"])


class PIDLagrangian:
    """Stooke et al. 2020's PID Lagrangian (their Algorithm 2) with SafeDreamer's smoothing. Per
    update, from the cost measure J_c and the limit d:

        delta = J_c - d
        I     = max(0, I + delta)                      integral; anti-windup: never below 0
        P     = a P + (1 - a) delta                    smoothed proportional error
        D     = a D + (1 - a) J_c                      smoothed cost
        dD    = max(0, D - D[`delay` updates ago])     lagged derivative: only a rising cost
        lambda = clip(kp P + ki I + kd dD, 0, lambda_max)

    Before the first update lambda = `lambda_init`. Host floats: a strategy updates it once per
    behaviour step, where one sync does not matter."""

    def __init__(
        self, kp: float, ki: float, kd: float, limit: float, delay: int = 10,
        ema: float = 0.95, lambda_init: float = 0.0, lambda_max: float = float("inf"),
    ):  # fmt: skip
        if min(kp, ki, kd) < 0 or delay < 1 or not 0 <= ema <= 1 or lambda_max <= 0:
            raise ValueError("need gains >= 0, delay >= 1, 0 <= ema <= 1, lambda_max > 0")
        self.kp, self.ki, self.kd, self.limit = kp, ki, kd, limit
        self.ema, self.lambda_max = ema, lambda_max
        self.integral = self.p_error = self.cost = 0.0
        self.history: deque[float] = deque([0.0], maxlen=delay)
        self.lagrange = float(min(max(lambda_init, 0.0), lambda_max))

    def step(self, j_c: float) -> float:
        delta = float(j_c) - self.limit
        self.integral = max(0.0, self.integral + delta)
        self.p_error = self.ema * self.p_error + (1 - self.ema) * delta
        self.cost = self.ema * self.cost + (1 - self.ema) * float(j_c)
        derivative = max(0.0, self.cost - self.history[0])
        self.history.append(self.cost)
        raw = self.kp * self.p_error + self.ki * self.integral + self.kd * derivative
        self.lagrange = min(max(raw, 0.0), self.lambda_max)
        return self.lagrange

    def state_dict(self) -> dict:
        return {
            "integral": self.integral, "p_error": self.p_error, "cost": self.cost,
            "history": list(self.history), "lagrange": self.lagrange,
        }  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.integral, self.p_error = float(state["integral"]), float(state["p_error"])
        self.cost, self.lagrange = float(state["cost"]), float(state["lagrange"])
        self.history = deque((float(x) for x in state["history"]), maxlen=self.history.maxlen)
