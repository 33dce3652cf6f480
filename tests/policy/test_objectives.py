"""Each FOSP equation the code implements, on values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from policy import objectives as O
from policy.lagrangian import AugmentedLagrangian, lagrange_update, phi


def t(*x):
    return torch.tensor(x, dtype=torch.float32)


def test_expectile_direction_eq7():
    # eq. 7: |kappa - 1{Q - V < 0}| (Q - V)^2 -> kappa = 0.8 where Q > V, 0.2 where Q < V
    loss = O.expectile_loss(q=t(1.0, 0.0), v=t(0.0, 1.0), kappa=0.8)
    assert loss.tolist() == pytest.approx([0.8, 0.2])
    # so the minimiser over V of a two-point Q distribution lies above its mean
    v = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([v], lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        O.expectile_loss(t(0.0, 1.0), v, 0.8).mean().backward()
        opt.step()
    assert v.item() == pytest.approx(0.8, abs=1e-3)  # 0.8 (1 - v) = 0.2 v


def test_lambda_returns_eq8():
    # H = 2, gamma = 0.9, lam = 0.5; r^1 = 1, r^2 = 2, V(s^1) = 10, V(s^2) = 20, cont = 1
    # R^2 = V(s^2) = 20; R^1 = r^2 + 0.9 (0.5 * 20 + 0.5 * 20) = 2 + 18 = 20
    # R^0 = r^1 + 0.9 (0.5 * V(s^1) + 0.5 * R^1) = 1 + 0.9 * 15 = 14.5
    rewards, conts, values = t(1.0, 2.0), t(1.0, 1.0), t(10.0, 20.0)
    out = O.lambda_returns(rewards[:, None], conts[:, None], values[:, None], 0.9, 0.5)
    assert out[:, 0].tolist() == pytest.approx([14.5, 20.0])
    # lam = 0 is the one-step TD target, lam = 1 the discounted return with bootstrap
    td0 = O.lambda_returns(rewards, conts, values, 0.9, 0.0)
    assert td0.tolist() == pytest.approx([1 + 0.9 * 10, 2 + 0.9 * 20])
    mc = O.lambda_returns(rewards, conts, values, 0.9, 1.0)
    assert mc[0].item() == pytest.approx(1 + 0.9 * 2 + 0.81 * 20)
    # a terminal (cont = 0) stops the bootstrap
    end = O.lambda_returns(rewards, t(0.0, 1.0), values, 0.9, 0.5)
    assert end[0].item() == pytest.approx(1.0)


def test_dataset_td_target_eq10():
    # eq. 10: r_t + gamma V(s^0_{t+1}) with the dataset reward = the in-sample lambda-return at
    # lambda = 0; rows 1 and 2 hold (r, continuation, V) of the arrivals, the second terminal
    rewards, conts, values = t(0.0, 1.0, 0.0)[None], t(1.0, 1.0, 0.0)[None], t(0.0, 5.0, 5.0)[None]
    g = O.dataset_lambda_returns(rewards, conts, values, 0.997, 0.0)
    assert g[0].tolist() == pytest.approx([1 + 0.997 * 5, 0.0])


def test_ref_targets_on_known_cost_sequence_eq30():
    # costs 0 0 1 0 0 (end). u at the violation is 1; before it gamma_u^k; after it, only what
    # follows (here nothing, so 0). Iterate eq. 30 to its fixed point on the exact sequence.
    cost = t(0, 0, 1, 0, 0)
    violation = (cost > 0).float()
    has_next = t(1, 1, 1, 1, 0)
    u = torch.zeros(5)
    for _ in range(10):
        u_next = torch.cat([u[1:], torch.zeros(1)])
        u = O.ref_target(violation, u_next, 0.99, has_next)
    assert u.tolist() == pytest.approx([0.99**2, 0.99, 1.0, 0.0, 0.0])
    # the target does not depend on the current prediction: only on the cost and u(s_{t+1})
    a = O.ref_target(t(0.0), t(0.5), 0.99, t(1.0))
    assert a.item() == pytest.approx(0.495)


def test_phi_both_branches_eq17():
    # active branch: lambda + mu/2 V >= 0 -> lambda V + mu/4 V^2
    lam, mu = 0.5, 2.0
    assert phi(t(3.0), lam, mu).item() == pytest.approx(0.5 * 3 + 2 / 4 * 9)
    # inactive branch: 0.5 + 1 * (-1) < 0 -> -lambda^2 / mu
    assert phi(t(-1.0), lam, mu).item() == pytest.approx(-0.25 / 2)
    # at the boundary (== 0) the first branch applies: 0.5 * -0.5 + 0.5 * 0.25 = -0.125
    assert phi(t(-0.5), lam, mu).item() == pytest.approx(-0.125)


def test_lagrange_update_eq27_and_nondecreasing_penalty():
    lam = torch.tensor(0.01, dtype=torch.float64)
    assert lagrange_update(lam, 2.0, torch.tensor(3.0)).item() == pytest.approx(0.01 + 3.0)
    assert lagrange_update(lam, 2.0, torch.tensor(-1.0)).item() == 0.0  # clipped at 0
    al = AugmentedLagrangian(0.01, 1e-6, 5e-9)
    al.step(torch.tensor(4.0))
    assert float(al.lagrange) == pytest.approx(0.01 + 1e-6 / 2 * 4.0, rel=1e-12)
    assert float(al.penalty) == 1e-6 * (1 + 5e-9)  # grew (float64 keeps the tiny nu)
    mus = []
    for v in (-5.0, 0.0, 2.0):
        al.step(torch.tensor(v))
        mus.append(float(al.penalty))
    assert mus == sorted(mus) and mus[0] > 1e-6
    state = al.state_dict()
    other = AugmentedLagrangian(0.0, 1.0, 0.0)
    other.load_state_dict(state)
    assert other.state_dict() == state


def test_awr_weights_eq19():
    # feasible state (f = 1): exp(beta_1 (A_r - Phi)); infeasible (f = 0): exp(-beta_2 A_c)
    w = O.awr_weights(
        adv_r=t(0.1, 0.1, 0.1),
        adv_c=t(-0.2, -0.2, -0.2),
        feasible=t(1.0, 0.0, 0.25),
        phi=t(0.0, 0.0, 0.05),
        beta_r=10.0,
        beta_c=10.0,
        max_exponent=10.0,
    )
    assert w[0].item() == pytest.approx(math.e)
    assert w[1].item() == pytest.approx(math.exp(2.0))
    assert w[2].item() == pytest.approx(0.25 * math.exp(0.5) + 0.75 * math.exp(2.0))
    # the documented clip: each exponent is capped at max_exponent
    big = O.awr_weights(t(5.0), t(-5.0), t(0.5), 0.0, 10.0, 10.0, max_exponent=2.0)
    assert big.item() == pytest.approx(math.exp(2.0))


def test_awr_cost_branch_scales_only_the_infeasible_term_of_eq19():
    # b (1 - f) exp(-beta_2 A_c): b = 0.5 halves the cost branch, the reward branch is untouched
    args = dict(adv_r=t(0.1, 0.1), adv_c=t(-0.2, -0.2), feasible=t(1.0, 0.25), phi=t(0.0, 0.05))
    w = O.awr_weights(**args, beta_r=10.0, beta_c=10.0, max_exponent=10.0, cost_branch=0.5)
    assert w[0].item() == pytest.approx(math.e)
    assert w[1].item() == pytest.approx(0.25 * math.exp(0.5) + 0.5 * 0.75 * math.exp(2.0))
    none = O.awr_weights(**args, beta_r=10.0, beta_c=10.0, max_exponent=10.0, cost_branch=0.0)
    assert none[1].item() == pytest.approx(0.25 * math.exp(0.5))


def test_kl_balancing_and_free_bits_eq1():
    post = torch.tensor([[[2.0, 0.0]]])  # one latent, two classes
    prior = torch.zeros(1, 1, 2)
    p = torch.softmax(post, -1)[0, 0]
    kl = (p * (p.log() - math.log(0.5))).sum().item()
    loss, dyn, rep = O.kl_balance(post, prior, dyn_scale=1.0, rep_scale=0.1, free=0.0)
    assert dyn.item() == pytest.approx(kl) and rep.item() == pytest.approx(kl)
    assert loss.item() == pytest.approx(1.1 * kl)
    # gradients: dyn reaches only the prior, rep only the posterior (scaled by beta)
    post_p = post.clone().requires_grad_()
    prior_p = prior.clone().requires_grad_()
    _, d, _ = O.kl_balance(post_p, prior_p, 1.0, 0.1, 0.0)
    d.sum().backward()
    assert post_p.grad is None and prior_p.grad.abs().sum() > 0
    _, _, r = O.kl_balance(post_p, prior_p, 1.0, 0.1, 0.0)
    prior_p.grad = None
    r.sum().backward()
    assert prior_p.grad is None and post_p.grad.abs().sum() > 0
    # free bits: below 1 nat the clipped terms are constant -> no gradient at all
    post_p.grad = None
    prior_p.grad = None
    loss, _, _ = O.kl_balance(post_p, prior_p, 1.0, 0.1, free=1.0)
    assert kl < 1.0 and loss.item() == pytest.approx(1.1)
    loss.sum().backward()
    for g in (post_p.grad, prior_p.grad):
        assert g is None or g.abs().sum() == 0


def test_twohot_round_trip_and_symlog():
    bins = O.twohot_bins(255)
    for y in (0.0, 1.0, -3.5, 42.0, 1e4):
        enc = O.twohot(O.symlog(torch.tensor(y)), bins)
        assert enc.sum().item() == pytest.approx(1.0)
        assert (enc > 0).sum() <= 2
        logits = enc.clamp_min(1e-30).log()
        assert O.twohot_mean(logits, bins).item() == pytest.approx(y, rel=1e-4, abs=1e-4)
    x = t(-100.0, -1.0, 0.0, 2.0)
    assert O.symexp(O.symlog(x)).tolist() == pytest.approx(x.tolist(), rel=1e-5)
    # hand value: 1.0 sits between bins 0 and 1 of [0, 2, 4] with weights 0.5 / 0.5
    assert O.twohot(t(1.0), t(0.0, 2.0, 4.0))[0].tolist() == pytest.approx([0.5, 0.5, 0.0])


def test_return_scale_is_ema_of_percentile_range():
    # DreamerV3 normaliser: 5-95 % range of returns 0..100 (linear) is 90; EMA 0.9 from 1
    ret = torch.linspace(0, 100, 101)
    assert O.ema_return_scale(torch.tensor(1.0), ret, 0.9).item() == pytest.approx(
        0.9 * 1 + 0.1 * 90, rel=1e-5
    )


def test_world_model_losses_match_their_scales_and_shapes_are_checked():
    from policy.config import PRESETS
    from policy.world_model import LOSS_SCALES, WorldModel

    cfg = PRESETS["tiny"].model
    wm = WorldModel(cfg)
    b, t = 2, 3
    batch = {
        "image": torch.zeros(b, t, 64, 64, 3, dtype=torch.uint8),
        "pose": torch.zeros(b, t, 6),
        "action": torch.zeros(b, t, 6),
        "reward": torch.zeros(b, t),
        "cost": torch.zeros(b, t),
        "is_first": torch.zeros(b, t, dtype=torch.bool),
        "is_terminal": torch.zeros(b, t, dtype=torch.bool),
    }
    loss, metrics, feat = wm.loss(batch)
    assert {k.removeprefix("wm/") for k in metrics} >= set(LOSS_SCALES) - {"kl"}
    assert feat.shape == (b, t, wm.feat_dim) and torch.isfinite(loss)
    with pytest.raises(AssertionError, match="action"):
        wm.loss({**batch, "action": torch.zeros(b, t, 7)})
    with pytest.raises(AssertionError, match="cost"):
        wm.loss({**batch, "cost": torch.zeros(b, t + 1)})


def test_cost_scale_weighs_only_the_cost_term_of_eq_1():
    """total(cost_scale = 4) - total(cost_scale = 1) = 3 x the batch mean of the cost term."""
    import dataclasses

    from policy.config import PRESETS
    from policy.world_model import WorldModel

    cfg = PRESETS["tiny"].model
    torch.manual_seed(0)
    wm = WorldModel(cfg)
    b, t = 2, 3
    batch = {
        "image": torch.randint(0, 255, (b, t, 64, 64, 3), dtype=torch.uint8),
        "pose": torch.randn(b, t, 6),
        "action": torch.rand(b, t, 6) * 2 - 1,
        "reward": torch.zeros(b, t),
        "cost": torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]),
        "is_first": torch.tensor([[True, False, False]] * b),
        "is_terminal": torch.zeros(b, t, dtype=torch.bool),
    }
    totals = {}
    for scale in (1.0, 4.0):
        wm.cfg = dataclasses.replace(cfg, cost_scale=scale)
        torch.manual_seed(1)  # the same latent samples for both
        totals[scale], metrics, _ = wm.loss(batch)
    assert metrics["wm/cost"].item() > 0
    expected = 3.0 * metrics["wm/cost"].item()
    assert (totals[4.0] - totals[1.0]).item() == pytest.approx(expected, rel=1e-4)
