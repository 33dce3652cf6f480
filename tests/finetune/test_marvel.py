"""The marvel and ocr-cft finetuning strategies (policy/marvel.py, ocr_cft.py, soft_ac.py):
aPID, the soft fitted-Q target, Spearman's rank correlation, value alignment's targets and the
KL pinned by hand; what runs before episode 0 moves Q and Q_c only; the multipliers rise while
the episode cost (or the KL) exceeds its limit; the reference policy is the best one seen."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from policy.config import FinetuneConfig
from policy.lagrangian import AdaptivePIDLagrangian
from policy.marvel import MarvelFinetune, spearman
from policy.ocr_cft import OcrCftFinetune, aligned_targets, gaussian_kl
from policy.replay import Replay
from policy.soft_ac import discounted_cost, soft_td_target
from policy.train import load_agent
from robot.spaces import EPISODE_STEPS


def test_apid_by_hand():
    """Marvel eqs. 10-15 as read in policy/lagrangian.py (position form, adaptive gains)."""
    pid = AdaptivePIDLagrangian(1.0, 1.0, 1.0, limit=1.0, delay=2, ema=0.5, eta=(0.1, 0.1, 0.1))
    # J = 3: delta 2, I 2, P 1, smoothed cost 1.5, derivative 1.5 - 0; buffer [0, 1.5]:
    # mu 0.75, sigma 0.75, rho = tanh(-0.25); K_P = K_I = 1 + 0.1 rho; K_D = 1 + 0.1 0.75 / 1.75
    rho = math.tanh(-0.25)
    kp = ki = 1 + 0.1 * rho
    kd = 1 + 0.1 * 0.75 / 1.75
    assert pid.step(3.0) == pytest.approx(kp * 1 + ki * 2 + kd * 1.5)
    assert (pid.kp, pid.ki, pid.kd) == pytest.approx((kp, ki, kd))
    restored = AdaptivePIDLagrangian(1.0, 1.0, 1.0, limit=1.0, delay=2, ema=0.5,
                                     eta=(0.1, 0.1, 0.1))  # fmt: skip
    restored.load_state_dict(pid.state_dict())
    assert restored.step(2.0) == pid.step(2.0)  # resume is exact, gains included


def test_apid_gains_stay_within_their_bounds_and_kd_never_falls():
    high = AdaptivePIDLagrangian(1.0, 1.0, 1.0, limit=1.0, delay=3, ema=0.0, eta=(5.0, 5.0, 5.0))
    kds = []
    for j in [50.0, 0.0] * 10:  # far above the limit and volatile
        high.step(j)
        kds.append(high.kd)
    assert high.kp == pytest.approx(10.0) and high.ki == pytest.approx(10.0)
    assert high.kd == pytest.approx(10.0) and kds == sorted(kds)
    low = AdaptivePIDLagrangian(1.0, 1.0, 1.0, limit=5.0, delay=3, ema=0.0, eta=(5.0, 5.0, 5.0))
    for _ in range(20):  # always below the limit, steady: K_P, K_I fall to 0.1 x, K_D stays
        low.step(0.0)
    assert (low.kp, low.ki, low.kd) == pytest.approx((0.1, 0.1, 1.0))
    assert low.lagrange == 0.0


def test_soft_td_target_by_hand():
    """Marvel eqs. 8-9: y = s' + gamma c' (Qbar(s', a') - alpha log pi(a' | s'))."""
    y = soft_td_target(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0]), torch.tensor([2.0, 2.0]),
                       torch.tensor([0.5, 0.5]), alpha=0.1, gamma=0.9)  # fmt: skip
    assert torch.allclose(y, torch.tensor([1 + 0.9 * (2 - 0.05), 1.0]))  # a terminal: s' only


def test_spearman_by_hand():
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    # ties share their mean rank: x ranks [0, 1.5, 1.5, 3]: 4.5 / sqrt(4.5 * 5)
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 2, 3, 4])) == pytest.approx(
        4.5 / math.sqrt(22.5)
    )
    assert math.isnan(spearman(np.ones(3), np.arange(3)))


def test_discounted_episode_cost_by_hand():
    episode = SimpleNamespace(steps={"cost": np.array([0.0, 1.0, 0.0, 1.0])})
    assert discounted_cost(episode, 0.5) == pytest.approx(0.5 + 0.125)


def _strategy(cls, pretrained, offline_data, **kw):
    """A `cls` strategy around the pretrained agent, its offline replay attached."""
    agent = load_agent(pretrained)
    strategy = cls(agent, FinetuneConfig(strategy=cls.name, horizon=EPISODE_STEPS, **kw))
    agent.attach(Replay.from_dataset(offline_data, agent.cfg.train.length, "cpu", seed=0))
    return strategy


def _marvel(pretrained, offline_data, **kw) -> MarvelFinetune:
    return _strategy(MarvelFinetune, pretrained, offline_data, **kw)


def test_vpa_moves_q_and_q_c_only(pretrained, offline_data):
    marvel = _marvel(pretrained, offline_data, vpa_steps=30)
    agent = marvel.agent
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    out = marvel.prepare(lambda _: None)
    assert marvel.prepared and math.isfinite(out["vpa_loss_last"])
    after = agent.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"q_r", "q_c"}  # the offline actor, world model, V, REF untouched


def test_the_multiplier_rises_while_the_episode_cost_exceeds_the_limit(pretrained, offline_data):
    marvel = _marvel(pretrained, offline_data, apid_ki=0.01, apid_cost_limit=1.0)
    agent = marvel.agent
    assert agent.actor_objective == marvel.actor_loss and agent.q_objective == marvel.q_losses
    g = torch.Generator().manual_seed(0)
    rows = {"feat": torch.randn(16, agent.wm.feat_dim, generator=g), "valid": torch.ones(16)}
    marvel.observe_episode(SimpleNamespace(steps={"cost": np.zeros(80)}))
    marvel.actor_loss({}, rows)
    assert marvel.multiplier() == 0.0  # a safe episode: J = 0 < d
    marvel.observe_episode(SimpleNamespace(steps={"cost": np.ones(80)}))
    lams = []
    for _ in range(3):
        loss, metrics = marvel.actor_loss({}, rows)
        assert loss.requires_grad and float(metrics["marvel/j_c"]) > 1.0
        lams.append(marvel.multiplier())
    assert 0.0 < lams[0] < lams[1] < lams[2]


# ---------------------------------------------------------------------- ocr-cft


def test_ocr_cft_aligned_targets_by_hand():
    """OCR-CFT eq. 12 and its cost mirror: an action whose Q exceeds the anchor's Q plus alpha
    times its log-probability gap is pulled down to it; Q_c below the mirror is raised."""
    q_r, q_c = torch.tensor([5.0, 1.0]), torch.tensor([0.0, 3.0])
    anchor_r, anchor_c = torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0])
    gap = torch.tensor([-10.0, -10.0])  # log pi_0(a) - log pi_0(mu)
    r, c = aligned_targets(q_r, q_c, anchor_r, anchor_c, gap, alpha=0.1)
    assert torch.allclose(r, torch.tensor([1.0, 1.0]))  # min(5, 2 - 1), min(1, 1)
    assert torch.allclose(c, torch.tensor([2.0, 3.0]))  # max(0, 1 + 1), max(3, 2)


def test_gaussian_kl_by_hand():
    ref = torch.distributions.Normal(torch.tensor([[0.0]]), torch.tensor([[1.0]]))
    new = torch.distributions.Normal(torch.tensor([[1.0]]), torch.tensor([[2.0]]))
    # log(2 / 1) + (1 + 1) / (2 * 4) - 1/2
    assert float(gaussian_kl(ref, new)) == pytest.approx(math.log(2) + 0.25 - 0.5)


def _ocr(pretrained, offline_data, **kw) -> OcrCftFinetune:
    return _strategy(OcrCftFinetune, pretrained, offline_data, **kw)


def _episode(success: bool, violation: bool):
    reward, cost = np.zeros(80), np.zeros(80)
    reward[5], cost[6] = float(success), float(violation)
    return SimpleNamespace(steps={"reward": reward, "cost": cost})


def test_ocr_cft_before_episode_0_moves_q_and_q_c_only(pretrained, offline_data):
    ocr = _ocr(pretrained, offline_data, ocr_reeval_steps=10, ocr_align_steps=10)
    agent = ocr.agent
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    out = ocr.prepare(lambda _: None)
    assert ocr.prepared and math.isfinite(out["align_loss"])
    after = agent.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"q_r", "q_c"}  # the deployed actor is the offline one


def test_ocr_cft_reference_is_the_best_policy_seen_and_the_kl_limit_ramps(pretrained, offline_data):
    ocr = _ocr(pretrained, offline_data, ocr_kl_start=0.0, ocr_kl_end=1.0, ocr_kl_ramp=4)
    actor = ocr.agent.acting_actor  # what acts in an episode: the trained actor's average
    assert ocr.kl_limit() == 0.0
    ocr.observe_episode(_episode(False, True))  # score -1: better than nothing
    first = ocr.reference.state_dict()
    with torch.no_grad():
        for p in actor.parameters():
            p.add_(0.1)
    ocr.end_episode(None)  # the changed actor acts next
    ocr.observe_episode(_episode(False, True))  # not strictly better: pi_ref stays
    assert all(torch.equal(first[k], v) for k, v in ocr.reference.state_dict().items())
    ocr.observe_episode(_episode(True, False))  # better: the changed actor becomes pi_ref
    assert all(torch.equal(actor.state_dict()[k], v)
               for k, v in ocr.reference.state_dict().items())  # fmt: skip
    assert ocr.kl_limit() == pytest.approx(0.75)  # 3 of 4 ramp episodes


def test_ocr_cft_kl_weight_rises_while_the_policy_leaves_the_reference(pretrained, offline_data):
    ocr = _ocr(pretrained, offline_data, ocr_kl_init=1.0, ocr_kl_lr=0.1, ocr_kl_start=0.0,
               ocr_kl_end=0.0)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    rows = {"feat": torch.randn(16, ocr.agent.wm.feat_dim, generator=g), "valid": torch.ones(16)}
    with torch.no_grad():
        for p in ocr.agent.actor.parameters():
            p.add_(0.05)  # pi moved away from pi_ref (the offline actor)
    loss, metrics = ocr.actor_loss({}, rows)
    assert float(metrics["ocr-cft/kl"]) > 0 and loss.requires_grad
    assert ocr.kl_weight == pytest.approx(1.0 + 0.1 * float(metrics["ocr-cft/kl"]))
