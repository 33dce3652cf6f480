"""The FOSP equations as pure tensor functions (no modules, no state), each pinned by a unit test.

Equation numbers are those of the FOSP paper (Cao et al., ICLR 2025); docs/algorithm.md maps
every equation to its line here and lists the readings chosen where the paper is ambiguous.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# ---------------------------------------------------------------- DreamerV3 transforms


def symlog(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.expm1(torch.abs(x))


def twohot_bins(n: int, limit: float = 20.0, device=None) -> Tensor:
    """Equally spaced bins in symlog space (DreamerV3: 255 bins on [-20, 20])."""
    return torch.linspace(-limit, limit, n, device=device)


def twohot(y: Tensor, bins: Tensor) -> Tensor:
    """Two-hot encoding of `y` (already in bin space) over sorted `bins`: the two neighbouring
    bins share the mass so that sum(p * bins) == y (clamped to the bin range)."""
    y = y.clamp(bins[0], bins[-1])
    hi = torch.searchsorted(bins, y.contiguous(), right=True).clamp(1, len(bins) - 1)
    lo = hi - 1
    w_hi = (y - bins[lo]) / (bins[hi] - bins[lo])
    out = torch.zeros(*y.shape, len(bins), device=y.device, dtype=y.dtype)
    out.scatter_(-1, lo.unsqueeze(-1), (1 - w_hi).unsqueeze(-1))
    out.scatter_add_(-1, hi.unsqueeze(-1), w_hi.unsqueeze(-1))
    return out


def twohot_mean(logits: Tensor, bins: Tensor) -> Tensor:
    """Expected value of a two-hot symlog head, back in the original space."""
    return symexp((torch.softmax(logits, -1) * bins).sum(-1))


def twohot_loss(logits: Tensor, target: Tensor, bins: Tensor) -> Tensor:
    """-ln p(target) of a two-hot symlog head (cross-entropy against the two-hot of symlog y)."""
    return -(twohot(symlog(target), bins) * F.log_softmax(logits, -1)).sum(-1)


# ---------------------------------------------------------------- world model, eq. 1


def categorical_kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """KL(p || q) of N_l independent categoricals [..., N_l, C_l], summed over the latents."""
    p_log = F.log_softmax(p_logits, -1)
    q_log = F.log_softmax(q_logits, -1)
    return (p_log.exp() * (p_log - q_log)).sum((-2, -1))


def kl_balance(
    post_logits: Tensor, prior_logits: Tensor, dyn_scale: float, rep_scale: float, free: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 1's KL terms with KL balancing and free bits.

    dyn = KL[sg(q) || p] trains the prior, rep = KL[q || sg(p)] the posterior (weight beta).
    Free bits: each term is max(free, KL), so below `free` nats it gives no gradient.
    Returns (loss per element, dyn KL, rep KL) (the KLs before clipping, for logging)."""
    dyn = categorical_kl(post_logits.detach(), prior_logits)
    rep = categorical_kl(post_logits, prior_logits.detach())
    loss = dyn_scale * torch.clamp(dyn, min=free) + rep_scale * torch.clamp(rep, min=free)
    return loss, dyn, rep


# ---------------------------------------------------------------- critics, eqs. 7-11


def expectile_loss(q: Tensor, v: Tensor, kappa: float) -> Tensor:
    """Eq. 7: |kappa - 1{Q - V < 0}| (Q - V)^2, i.e. weight kappa where Q > V (V is pushed up
    towards the upper expectile of Q) and 1 - kappa where Q < V. Elementwise."""
    return expectile_weight(q, v, kappa) * (q - v).square()


def lambda_returns(
    rewards: Tensor, conts: Tensor, values: Tensor, gamma: float, lam: float
) -> Tensor:
    """Eq. 8, TD(lambda) along an imagined rollout; time is the leading axis of length H.

    Index h refers to the transition from s^h to s^{h+1}: rewards[h] and conts[h] are the
    predicted reward / continuation of s^{h+1} and values[h] = V(s^{h+1}). Then
    R^H = V(s^H) and R^h = r^{h+1} + gamma c^{h+1} ((1 - lam) V(s^{h+1}) + lam R^{h+1}).
    Returns R^0 .. R^{H-1}, the targets of Q(s^h, a^h) in eq. 9."""
    out = []
    nxt = values[-1]
    for h in reversed(range(rewards.shape[0])):
        nxt = rewards[h] + gamma * conts[h] * ((1 - lam) * values[h] + lam * nxt)
        out.append(nxt)
    return torch.stack(out[::-1])


def dataset_lambda_returns(
    rewards: Tensor, conts: Tensor, values: Tensor, gamma: float, lam: float
) -> Tensor:
    """Eq. 8 along recorded episodes [E, L] (batch first) with the real rewards and costs: row t
    holds what arriving at s_t gave (reward, continuation) and V(s_t). Returns [E, L - 1], the
    in-sample target of Q(s_t, a_t) for t = 0 .. L - 2 (eq. 10 with lambda instead of one step):
    G_t = r_{t+1} + gamma c_{t+1} ((1 - lam) V(s_{t+1}) + lam G_{t+1}), G_{L-1} = V(s_{L-1})."""
    ret = lambda_returns(rewards[:, 1:].T, conts[:, 1:].T, values[:, 1:].T, gamma, lam)
    return ret.T


def discounted_to_go(signal: Tensor, conts: Tensor, gamma: float) -> Tensor:
    """Monte-Carlo discounted sum of what follows each row of recorded episodes [E, L]: row t
    gets sum_{k >= 1} gamma^(k-1) signal_{t+k} (continuations c_{t+k} stop it at a terminal);
    the last row gets 0. Nothing is bootstrapped, so a row after which the episode stays
    clean gets exactly 0."""
    out = torch.zeros_like(signal)
    nxt = torch.zeros_like(signal[:, 0])
    for t in reversed(range(signal.shape[1] - 1)):
        nxt = signal[:, t + 1] + gamma * conts[:, t + 1] * nxt
        out[:, t] = nxt
    return out


def expectile_weight(target: Tensor, value: Tensor, kappa: float) -> Tensor:
    """Eq. 7's asymmetric weight |kappa - 1{target - V < 0}| for a cross-entropy value loss:
    kappa > 0.5 fits an upper expectile of the targets, kappa < 0.5 a lower one."""
    return torch.where(target < value, 1.0 - kappa, kappa)


def ema_spread(scale: Tensor, values: Tensor, mask: Tensor, decay: float) -> Tensor:
    """EMA of the standard deviation of `values` over the rows where `mask` is 1; a scale of 0
    (the buffer's initial value) is replaced by the first batch's spread."""
    n = mask.sum().clamp_min(1.0)
    mean = (values * mask).sum() / n
    std = (((values - mean).square() * mask).sum() / n).sqrt()
    return torch.where(scale > 0, decay * scale + (1 - decay) * std, std)


def ema_return_scale(scale: Tensor, returns: Tensor, decay: float) -> Tensor:
    """DreamerV3's return normaliser: EMA of the 95th minus the 5th percentile of the returns.
    Advantages are divided by max(1, scale), so the AWR temperatures act on a unit-free scale."""
    flat = returns.detach().flatten().float().sort().values  # sort, not quantile: no host sync
    n = flat.numel() - 1
    lo, hi = flat[int(0.05 * n)], flat[int(0.95 * n)]
    return decay * scale + (1 - decay) * (hi - lo)


# ---------------------------------------------------------------- REF, eq. 30


def ref_target(violation: Tensor, u_next: Tensor, gamma_u: float, has_next: Tensor) -> Tensor:
    """Eq. 30 (RESPO): u(s_t) <- max(1{s_t violates}, gamma_u u(s_{t+1})).

    `violation` comes from the cost labels (or the cost decoder in imagination), never from u
    itself; `has_next` = 0 at the end of a trajectory, where only the indicator remains.
    u is the probability of a future violation; FOSP's feasibility weight is 1 - u."""
    return torch.maximum(violation, gamma_u * u_next * has_next)


# ---------------------------------------------------------------- policy extraction, eqs. 18-20


def awr_weights(
    adv_r: Tensor,
    adv_c: Tensor,
    feasible: Tensor,
    phi: Tensor | float,
    beta_r: float,
    beta_c: float,
    max_exponent: float,
    cost_branch: float = 1.0,
) -> Tensor:
    """Eq. 19 with eq. 16's penalty: w = f exp(beta_1 (A_r - Phi)) + b (1 - f) exp(-beta_2 A_c),
    b = `cost_branch` (1: eq. 19 as written; 0: states heading for a violation teach nothing).

    f = 1 - u is the probability of staying feasible (paper §4.2 defines u^pi this way), so
    feasible states learn from the reward advantage and states heading for a violation from the
    cost advantage. Each exponent is clipped to <= max_exponent (weights <= e^max, as IQL does)."""
    w_r = torch.exp(torch.clamp(beta_r * (adv_r - phi), max=max_exponent))
    w_c = torch.exp(torch.clamp(-beta_c * adv_c, max=max_exponent))
    return feasible * w_r + cost_branch * (1 - feasible) * w_c


GATES = ("ref", "in_sample", "both", "episode")


def feasibility(
    gate: str,
    u: Tensor,
    cost_to_go: Tensor,
    cost_limit: float,
    episode_cost: Tensor | None = None,
) -> Tensor:
    """Eq. 19's f per row: `ref` = 1 - u(s) (the REF's probability of staying feasible, §4.2);
    `in_sample` = 1{C <= d}, whether the recorded episode's discounted cost to go after this
    action stays within the cost limit d (FISOR's hard feasibility gate, in-sample); `both` =
    their product; `episode` = 1{C_0 <= d} with C_0 the whole recorded episode's discounted cost
    (`episode_cost`: its first row's cost to go): every row of an episode that violates
    anywhere is infeasible, its post-contact tail included (the behaviour was unsafe)."""
    if gate not in GATES:
        raise ValueError(f"feasible_gate must be one of {GATES}, not {gate!r}")
    if gate == "episode":
        if episode_cost is None:
            raise ValueError("feasible_gate 'episode' needs each row's episode_cost")
        return (episode_cost <= cost_limit).to(u.dtype)
    within = (cost_to_go <= cost_limit).to(u.dtype)
    return {"ref": 1.0 - u, "in_sample": within, "both": (1.0 - u) * within}[gate]


def linear_weights(
    adv_r: Tensor,
    adv_c: Tensor,
    feasible: Tensor,
    phi: Tensor | float,
    beta_r: float,
    beta_c: float,
    valid: Tensor,
) -> Tensor:
    """Eq. 23, w = f beta_1 (A_r - Phi) - (1 - f) beta_2 A_c, with the offline reading of u:
    f = 1 - u is the feasibility (docs/algorithm.md ambiguity 3) and Phi sits where eq. 16 puts
    it (pass phi = 0 for the literal eq. 23). Linear, so w may be negative: actions worse than
    V are pushed down. Divided by the batch mean of |w| over executed rows: the sign and the
    ratios stay, the step size no longer depends on the advantages' units (eq. 18's 1/Z plays
    this role offline)."""
    w = feasible * beta_r * (adv_r - phi) - (1 - feasible) * beta_c * adv_c
    scale = (w.abs() * valid).sum() / valid.sum().clamp_min(1)
    return w / scale.clamp_min(1e-8)


def reached_weights(cont: Tensor) -> Tensor:
    """w_h = prod_{k<h} c_k for imagined steps h = 0 .. H-1 from the continuations c [H, N] of
    states 1 .. H: the probability that step h is reached (w_0 = 1)."""
    return torch.cat([torch.ones_like(cont[:1]), torch.cumprod(cont[:-1], 0)], 0)
