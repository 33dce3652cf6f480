"""Augmented Lagrangian of FOSP's feasible part (eqs. 17, 26-29; As et al. 2022).

The hard constraint is V_c(s) = 0. Phi (eq. 17 = 29) is the penalty the actor sees; lambda_p
follows eq. 27 once per gradient step; the penalty mu never decreases (mu^{k+1} = mu^k (1 + nu)).
The multipliers are 0-d float64 tensors on the training device (float64: mu^0 (1 + nu) with
nu = 5e-9 must not round back to mu^0), so an update never syncs the host.
"""

from __future__ import annotations

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
