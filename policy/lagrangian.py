"""Multipliers: the augmented Lagrangian of FOSP's feasible part (eqs. 17, 26-29; As et al.
2022), the PID Lagrangian of the safedreamer finetuning strategy (Stooke et al. 2020) and
Marvel's adaptive PID (aPID, its eqs. 10-15) of the marvel strategy.

The hard constraint is V_c(s) = 0. Phi (eq. 17 = 29) is the penalty the actor sees; lambda_p
follows eq. 27 once per gradient step; the penalty mu never decreases (mu^{k+1} = mu^k (1 + nu)).
The multipliers are 0-d float64 tensors on the training device (float64: mu^0 (1 + nu) with
nu = 5e-9 must not round back to mu^0), so an update never syncs the host.
"""

from __future__ import annotations

import math
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
        self._adapt()
        raw = self.kp * self.p_error + self.ki * self.integral + self.kd * derivative
        self.lagrange = min(max(raw, 0.0), self.lambda_max)
        return self.lagrange

    def _adapt(self) -> None:
        """Gain schedule before lambda is formed (plain PID: fixed gains)."""

    def state_dict(self) -> dict:
        return {
            "integral": self.integral, "p_error": self.p_error, "cost": self.cost,
            "history": list(self.history), "lagrange": self.lagrange,
        }  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.integral, self.p_error = float(state["integral"]), float(state["p_error"])
        self.cost, self.lagrange = float(state["cost"]), float(state["lagrange"])
        self.history = deque((float(x) for x in state["history"]), maxlen=self.history.maxlen)


class AdaptivePIDLagrangian(PIDLagrangian):
    """Marvel's aPID (Chen et al., §4, eqs. 10-15): the position-form PID above on the episode
    cost, with gains adapted from the buffer B of the last `delay` smoothed costs (the one the
    lagged derivative reads), mean mu_B and std sigma_B. The extracted text lost eqs. 13-15;
    this reading follows its prose (docs/algorithm.md "marvel"):

        rho  = tanh((mu_B - d) / max(d, 1))                   relative violation, in (-1, 1)
        K_P <- clip(K_P (1 + eta_P rho))                      (13) strong far above the limit,
        K_I <- clip(K_I (1 + eta_I rho))                      (14) gentle at and below it
        K_D <- min(K_D (1 + eta_D sigma_B / (|mu_B| + max(d, 1))), 10 K_D^0)
                                                              (15) damping grows with
                                                              volatility, never falls, plateaus
                                                              once the smoothed cost is steady
    clip bounds each gain to [0.1, 10] x its initial value (Marvel's bounds)."""

    def __init__(
        self, kp: float, ki: float, kd: float, limit: float, delay: int = 10,
        ema: float = 0.95, lambda_max: float = float("inf"),
        eta: tuple[float, float, float] = (0.05, 0.05, 0.05),
        bounds: tuple[float, float] = (0.1, 10.0),
    ):  # fmt: skip
        super().__init__(kp, ki, kd, limit, delay, ema, 0.0, lambda_max)
        if min(eta) < 0 or not 0 < bounds[0] <= 1 <= bounds[1]:
            raise ValueError("need adaptation rates >= 0 and gain bounds lo <= 1 <= hi, lo > 0")
        self.initial = (kp, ki, kd)
        self.eta, self.bounds = eta, bounds

    def _adapt(self) -> None:
        buffer = list(self.history)
        mu = sum(buffer) / len(buffer)
        sigma = (sum((x - mu) ** 2 for x in buffer) / len(buffer)) ** 0.5
        unit = max(self.limit, 1.0)
        rho = math.tanh((mu - self.limit) / unit)
        lo, hi = self.bounds
        (kp0, ki0, kd0), (eta_p, eta_i, eta_d) = self.initial, self.eta
        self.kp = min(max(self.kp * (1 + eta_p * rho), lo * kp0), hi * kp0)
        self.ki = min(max(self.ki * (1 + eta_i * rho), lo * ki0), hi * ki0)
        self.kd = min(self.kd * (1 + eta_d * sigma / (abs(mu) + unit)), hi * kd0)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "gains": [self.kp, self.ki, self.kd]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.kp, self.ki, self.kd = (float(g) for g in state["gains"])
