"""Behaviour learning on full-history features (issue 10): the cache computes exactly what acting
computes, the in-sample returns, value sides and multiplier bound are the pinned equations, and a
constructed feasible state gets V_c near 0."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from policy import objectives as O
from policy.agent import FOSPAgent
from policy.config import resolve
from policy.lagrangian import AugmentedLagrangian
from policy.networks import Critic
from policy.replay import Replay


def test_dataset_lambda_returns_by_hand():
    # one episode of 3 rows, gamma 0.5, lambda 0.5; row t holds r_t (on arriving), c_t, V(s_t)
    r = torch.tensor([[0.0, 1.0, 2.0]])
    c = torch.ones(1, 3)
    v = torch.tensor([[9.0, 4.0, 8.0]])
    # G_1 = r_2 + 0.5 * V(s_2) = 2 + 4 = 6 (the last row bootstraps); G_0 = r_1 + 0.5 * (0.5 *
    # V(s_1) + 0.5 * G_1) = 1 + 0.5 * (2 + 3) = 3.5
    g = O.dataset_lambda_returns(r, c, v, 0.5, 0.5)
    assert g[0].tolist() == pytest.approx([3.5, 6.0])
    # a terminal arrival (continuation 0) stops the bootstrap: G_1 = r_2 = 2
    c[0, 2] = 0.0
    assert O.dataset_lambda_returns(r, c, v, 0.5, 0.5)[0, 1].item() == pytest.approx(2.0)


def test_discounted_cost_to_go_by_hand():
    cost = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]])
    cont = torch.ones(1, 5)
    # row t: sum_{k>=1} 0.5^(k-1) c_{t+k}: row 0 = 0 + 0.5 * 1 + 0.25 * 1, row 1 = 1 + 0.5,
    # row 2 = 1, row 3 = 0 (the episode stays clean after it), last row 0
    got = O.discounted_to_go(cost, cont, 0.5)[0]
    assert got.tolist() == pytest.approx([0.75, 1.5, 1.0, 0.0, 0.0])
    gate = O.feasibility("in_sample", torch.full((5,), 0.3), got, 0.1)
    assert gate.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert O.feasibility("ref", torch.full((5,), 0.3), got, 0.1).tolist() == pytest.approx(
        [0.7] * 5
    )


def test_expectile_weight_sides():
    target = torch.tensor([1.0, -1.0])
    value = torch.zeros(2)
    # eq. 7: kappa where the target is above V, 1 - kappa below
    assert O.expectile_weight(target, value, 0.8).tolist() == pytest.approx([0.8, 0.2])
    assert O.expectile_weight(target, value, 0.2).tolist() == pytest.approx([0.2, 0.8])


def test_ema_spread_starts_at_the_first_std_then_follows():
    x = torch.tensor([1.0, 3.0, 100.0])
    mask = torch.tensor([1.0, 1.0, 0.0])  # the masked row does not count: std of (1, 3) = 1
    s = O.ema_spread(torch.tensor(0.0), x, mask, 0.9)
    assert s.item() == pytest.approx(1.0)
    s = O.ema_spread(s, torch.tensor([0.0, 4.0, 0.0]), mask, 0.9)  # std 2
    assert s.item() == pytest.approx(0.9 * 1.0 + 0.1 * 2.0)


def test_lagrange_multiplier_is_bounded():
    al = AugmentedLagrangian(0.5, 4.0, 0.0, lagrange_max=1.0)
    al.step(torch.tensor(10.0))  # eq. 27 alone: 0.5 + 2 * 10 = 20.5
    assert float(al.lagrange) == 1.0
    al.step(torch.tensor(-10.0))
    assert float(al.lagrange) == 0.0


def test_two_hot_critic_fits_a_large_target():
    torch.manual_seed(0)
    critic = Critic(4, 32, 1, 63)
    opt = torch.optim.Adam(critic.parameters(), 1e-2)
    feat = torch.randn(64, 4)
    for _ in range(300):
        opt.zero_grad()
        critic.loss(feat, torch.full((64,), 25.0)).mean().backward()
        opt.step()
    assert critic(feat).mean().item() == pytest.approx(25.0, rel=0.05)


def _mode(wm):
    """Posterior samples replaced by the mode, so two computations of one state can match."""
    wm.sample = lambda logits: F.one_hot(logits.argmax(-1), wm.cfg.classes).float()


def _cached_agent(dataset_dir) -> tuple[FOSPAgent, Replay]:
    """A tiny agent with posterior modes for samples, its cache of the dataset filled."""
    replay = Replay.from_dataset(dataset_dir, 16, seed=0)
    agent = FOSPAgent(resolve("tiny"))
    agent.attach(replay)
    _mode(agent.wm)
    agent.cache.refresh(agent.wm)
    return agent, replay


@torch.no_grad()
def test_cache_features_are_the_acting_features(dataset_dir):
    torch.manual_seed(0)
    agent, replay = _cached_agent(dataset_dir)
    rows = agent.cache.layout[3]
    rows = rows[rows >= 0]
    data = replay.gather(rows)
    state, acting = None, []
    for t in range(len(rows)):
        obs = {"image": data["image"][t].numpy(), "pose": data["pose"][t].numpy()}
        _, state = agent.act(obs, state)
        acting.append(state["feat"][0])
        state["action"] = data["action"][t][None]  # what the operator did
    acting = torch.stack(acting)
    cached = agent.cache.feat[rows]
    assert (cached - acting).abs().max().item() < 1e-4
    # a 16-row training window starting mid-episode starts from zero: its first row differs
    window = {k: v[None, 20:36] for k, v in data.items()}
    window["is_first"][:, 0] = True
    embed = agent.wm.embed(window["image"], window["pose"])
    h, z, _, _ = agent.wm.observe(embed, window["action"], window["is_first"])
    gap = (agent.wm.feat(h, z)[0, 0] - acting[20]).norm().item()
    assert gap > 0.5, gap


def test_in_sample_returns_follow_the_recorded_rewards(dataset_dir):
    cfg = resolve("tiny")
    replay = Replay.from_dataset(dataset_dir, 16, seed=0)
    agent = FOSPAgent(cfg)
    agent.attach(replay)
    agent.cache.refresh(agent.wm)
    zero = lambda feat: torch.zeros(len(feat))  # noqa: E731
    agent.cache.update_returns(zero, zero, cfg.agent)
    rows = agent.cache.layout[0]
    rows = rows[rows >= 0]
    r = replay.data["reward"][rows].numpy()
    g, lam = cfg.agent.gamma, cfg.agent.lambda_r
    # with V = 0 the lambda-return is sum_k (gamma lam)^k r_{t+1+k} scaled as eq. 8 says:
    expected = np.zeros(len(rows))
    nxt = 0.0
    for t in reversed(range(len(rows) - 1)):
        nxt = r[t + 1] + g * lam * nxt
        expected[t] = nxt
    got = agent.cache.ret_r[rows].numpy()
    assert np.allclose(got[:-1], expected[:-1], atol=1e-5)


def test_episode_gate_closes_every_row_of_a_violating_episode_by_hand():
    """feasible_gate = episode: f = 1{C_0 <= d}, C_0 the whole episode's discounted cost. An
    episode that touches an obstacle at rows 2-3 and then camps safely: in_sample opens its
    clean tail (rows 3-4), the episode gate keeps all five rows closed; a clean episode is open."""
    cost = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0], [0.0] * 5])
    to_go = O.discounted_to_go(cost, torch.ones(2, 5), 0.5)
    episode = to_go[:, :1].expand_as(to_go)  # C_0 = 0.5 * 1 + 0.25 * 1 = 0.75 on every row; 0
    u = torch.full((2, 5), 0.3)
    assert O.feasibility("in_sample", u, to_go, 0.1)[0].tolist() == [0, 0, 0, 1, 1]
    gate = O.feasibility("episode", u, to_go, 0.1, episode)
    assert gate.tolist() == [[0.0] * 5, [1.0] * 5]
    with pytest.raises(ValueError, match="episode_cost"):
        O.feasibility("episode", u, to_go, 0.1)


def test_cache_holds_each_episodes_whole_cost_on_every_row(dataset_dir):
    agent, replay = _cached_agent(dataset_dir)
    c, gamma = agent.cache, agent.cfg.agent.gamma
    violating = 0
    for rows in c.layout:
        rows = rows[rows >= 0]
        cost = replay.data["cost"][rows].numpy()
        whole = sum(gamma ** (t - 1) * cost[t] for t in range(1, len(cost)))  # C_0, by hand
        assert np.allclose(c.episode_cost[rows].numpy(), whole, atol=1e-4)
        violating += bool(cost.any())
    assert 0 < violating < len(c.layout)  # the fixture holds both kinds


def test_cost_value_reaches_zero_on_a_constructed_feasible_state():
    """One state, 80 % of its dataset actions safe (G_c = 0) and 20 % unsafe (G_c = 1): V_c at
    the lower expectile goes near 0 (the state is feasible); the upper one would sit at ~0.5."""
    torch.manual_seed(0)
    cfg = resolve("tiny")
    agent = FOSPAgent(cfg)
    n = 256
    feat = torch.randn(1, agent.wm.feat_dim).expand(n, -1).clone()
    ret_c = (torch.arange(n) % 5 == 0).float()
    rows = {
        "feat": feat,
        "action": torch.zeros(n, 6),
        "ret_r": torch.zeros(n),
        "ret_c": ret_c,
        "cost_to_go": ret_c,
        "episode_cost": ret_c,
        "feat_next": feat,
        "has_next": torch.ones(n),
        "violation": torch.zeros(n),
        "valid": torch.ones(n),
    }
    for _ in range(400):
        agent.behaviour_step(rows)
    v_c = agent.v_c(feat[:1]).item()
    assert v_c < 0.12, v_c


@torch.no_grad()
def test_cache_takes_new_episodes_without_reobserving_the_old(dataset_dir, heldout_episodes):
    agent, replay = _cached_agent(dataset_dir)
    old_rows = len(replay)
    old = agent.cache.feat.clone()
    replay.add(heldout_episodes[0])
    assert agent.cache.stale()
    for p in agent.wm.parameters():  # the world model moved since: old rows keep their features
        p.add_(0.01)
    agent.cache.refresh(agent.wm, only_new=True)
    assert not agent.cache.stale()
    assert torch.equal(agent.cache.feat[:old_rows], old)
    new = agent.cache.feat[old_rows:].clone()
    agent.cache.refresh(agent.wm)  # a full refresh computes the new episode the same way
    assert (agent.cache.feat[old_rows:] - new).abs().max().item() < 1e-5
    assert not torch.equal(agent.cache.feat[:old_rows], old)


def _with_actor_ema(rate: float):
    cfg = resolve("tiny")
    return dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, actor_ema=rate))


def test_the_acting_actor_is_the_polyak_average_of_the_trained_one(dataset_dir):
    """AgentConfig.actor_ema: after every actor update the acting actor moves the rate of the
    way towards the trained one (by hand: 0 -> 0.25 -> 0.4375 with rate 0.25 and the trained
    weights at 1), and `act` acts with it; rate 0 acts with the trained actor."""
    agent = FOSPAgent(_with_actor_ema(0.25))
    with torch.no_grad():
        for p, q in zip(agent.actor.parameters(), agent.actor_ema.parameters(), strict=True):
            p.fill_(1.0)
            q.zero_()
    agent._follow_actor()
    agent._follow_actor()
    assert all(torch.allclose(q, torch.full_like(q, 0.4375)) for q in agent.actor_ema.parameters())
    assert agent.acting_actor is agent.actor_ema
    torch.manual_seed(0)
    agent.actor.load_state_dict(agent.new_actor().state_dict())  # two different policies
    agent.actor_ema.load_state_dict(agent.new_actor().state_dict())
    obs = {"image": np.zeros((64, 64, 3), np.uint8), "pose": np.zeros(6, np.float32)}
    action, state = agent.act(obs, None)
    assert np.allclose(action, agent.actor_ema.sample(state["feat"], True)[0].numpy())
    assert not np.allclose(action, agent.actor.sample(state["feat"], True)[0].detach().numpy())
    # one behaviour step: one actor update, then the average moves a quarter of the way
    agent.attach(Replay.from_dataset(dataset_dir, 16, seed=0))
    agent._refresh_cache(only_new=False)
    before = [q.clone() for q in agent.actor_ema.parameters()]
    agent._cached_behaviour_step(0, None)
    pairs = zip(before, agent.actor.parameters(), agent.actor_ema.parameters(), strict=True)
    for b, p, q in pairs:
        assert torch.allclose(q, b + 0.25 * (p.detach() - b), atol=1e-6)
    assert FOSPAgent(_with_actor_ema(0.0)).acting_actor.__class__ is type(agent.actor)
    plain = FOSPAgent(_with_actor_ema(0.0))
    assert plain.acting_actor is plain.actor


def test_a_checkpoint_without_the_acting_average_loads_with_it_equal_to_the_actor(
    dataset_dir, tmp_path
):
    """Runs written before AgentConfig.actor_ema existed (no actor_ema weights, no field in
    their architecture) still load; their acting actor is the actor that acted then."""
    from policy import checkpoint as ckpt

    cfg = resolve("tiny")
    agent = FOSPAgent(cfg)
    state = agent.full_state()
    state["modules"] = {k: v for k, v in state["modules"].items() if not k.startswith("actor_ema.")}
    arch = cfg.architecture()
    del arch["agent"]["actor_ema"]
    torch.save({"format": ckpt.FORMAT, "architecture": arch, "agent": state}, tmp_path / "c.pt")
    loaded = FOSPAgent(cfg)
    loaded.load_full_state(ckpt.load(tmp_path / "c.pt", cfg)["agent"])
    for p, q in zip(agent.actor.parameters(), loaded.actor_ema.parameters(), strict=True):
        assert torch.equal(p, q)


class _ConstantValue(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return torch.full(feat.shape[:-1], self.value)


def test_imagined_cost_term_by_hand():
    """AgentConfig.imagined_cost: mean_h,n [w_h log pi(a_h | s_h) sg(A^c_h)] with A^c_h =
    (R^c_h - V^c_slow(s_h)) / max(1, S_c), w_h = prod_{k<h} c_k. Two steps, one rollout:
    R^c = (3, 1), V^c = 1, S_c = 2 -> A^c = (1, 0); c_1 = 0.5 -> w = (1, 1)."""
    agent = FOSPAgent(resolve("tiny"))
    agent.v_c_slow = _ConstantValue(1.0)
    agent.return_scale[1] = 2.0
    feat = torch.randn(3, 1, agent.actor.net[0].in_features)
    action = torch.zeros(2, 1, 6)
    imagined = {"feat": feat, "action": action, "cont": torch.tensor([[0.5], [1.0]]),
                "ret_c": torch.tensor([[3.0], [1.0]])}  # fmt: skip
    logp = agent.actor.dist(feat[:-1]).log_prob(action).sum(-1)
    expected = (logp[0, 0] * 1.0 + logp[1, 0] * 0.0) / 2
    loss = agent.imagined_cost_loss(imagined)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # a return scale below 1 does not blow the advantage up: A^c = (2, 0)
    agent.return_scale[1] = 0.5
    assert agent.imagined_cost_loss(imagined).item() == pytest.approx(expected.item() * 2, 1e-5)
    # descending it makes the costly imagined action less likely
    loss = agent.imagined_cost_loss(imagined)
    loss.backward()
    with torch.no_grad():
        for p in agent.actor.parameters():
            p -= 0.1 * p.grad
    assert agent.actor.dist(feat[:1]).log_prob(action[:1]).sum().item() < logp[0, 0].item()


def test_imagined_cost_term_only_on_the_actors_own_rollouts(dataset_dir):
    """With imagined_cost > 0 a behaviour step reports the term; when the rollouts follow another
    actor (PEX imagines with its frozen policy) REINFORCE would be off-policy: the term is off."""
    cfg = resolve("tiny")
    agent = FOSPAgent(
        dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, imagined_cost=1.0))
    )
    agent.attach(Replay.from_dataset(dataset_dir, 16, seed=0))
    agent._refresh_cache(only_new=False)
    assert "actor/imagined_cost_loss" in agent._cached_behaviour_step(0, None)
    agent.set_imagination_actor(agent.new_actor())
    assert "actor/imagined_cost_loss" not in agent._cached_behaviour_step(1, None)


def test_cost_head_check_counts_flagged_cost_rows_and_false_alarms(dataset_dir, monkeypatch):
    from policy.cli import cost_head_summary

    agent = FOSPAgent(resolve("tiny", device="cpu"), torch.device("cpu"))
    agent.attach(Replay.from_dataset(dataset_dir, 16))
    agent._refresh_cache(only_new=False)
    hit = agent.cache.cost > 0
    hits, others = torch.nonzero(hit).squeeze(1), torch.nonzero(~hit).squeeze(1)
    assert len(hits) >= 2 and len(others) >= 4
    predicted = torch.zeros(len(hit))
    predicted[hits[::2]] = 0.9  # every other cost row flagged
    predicted[hits[1::2]] = 0.5  # at the threshold: not flagged (strictly above counts)
    predicted[others[:4]] = 0.51  # four false alarms
    monkeypatch.setattr(agent.wm, "cost", lambda feat: predicted[: len(feat)])
    check = agent.cost_head_check()
    assert check["check/cost_rows"] == len(hits)
    assert check["check/cost_recall"] == pytest.approx(len(hits[::2]) / len(hits))
    assert check["check/cost_false_alarm"] == pytest.approx(4 / len(others))
    line = cost_head_summary({**check, "check/cost_recall": 0.29}, 0.5)
    assert "flags 29 %" in line and "under-count" in line
    assert "under-count" not in cost_head_summary({**check, "check/cost_recall": 0.8}, 0.5)


def test_without_the_cost_branch_rows_heading_for_a_violation_teach_the_actor_nothing(
    dataset_dir, monkeypatch
):
    """AgentConfig.cost_branch reaches eq. 19 in the agent: with every row gated infeasible
    (f = 0), cost_branch 0 gives every row weight 0 and cost_branch 1 does not."""
    monkeypatch.setattr(O, "feasibility", lambda gate, u, *rest: torch.zeros_like(u))
    cfg = resolve("tiny")
    weight_max = {}
    for branch in (0.0, 1.0):
        agent = FOSPAgent(
            dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, cost_branch=branch))
        )
        agent.attach(Replay.from_dataset(dataset_dir, 16, seed=0))
        agent._refresh_cache(only_new=False)
        weight_max[branch] = float(agent._cached_behaviour_step(0, None)["actor/weight_max"])
    assert weight_max[0.0] == 0.0
    assert weight_max[1.0] > 0.5


def test_a_run_written_before_the_episode_gate_keeps_the_in_sample_gate(tmp_path):
    """The default gate became `episode` after `in_sample` had been written into configs: a
    config.json that does not list feasible_gate ran with in_sample and loads with it."""
    import json

    from policy import checkpoint as ckpt

    cfg = resolve("tiny")
    assert cfg.agent.feasible_gate == "episode"
    old = cfg.to_dict()
    del old["agent"]["feasible_gate"]
    (tmp_path / ckpt.CONFIG).write_text(json.dumps(old))
    assert ckpt.read_config(tmp_path).agent.feasible_gate == "in_sample"


def test_a_run_written_before_cost_branch_existed_keeps_eq_19_as_written(tmp_path):
    """The default dropped eq. 19's cost branch after the field was added: a config.json and a
    checkpoint that do not list it ran with 1 and load with 1, and match each other."""
    import json

    from policy import checkpoint as ckpt

    cfg = resolve("tiny")
    assert cfg.agent.cost_branch == 0.0
    old = cfg.to_dict()
    del old["agent"]["cost_branch"]
    (tmp_path / ckpt.CONFIG).write_text(json.dumps(old))
    read = ckpt.read_config(tmp_path)
    assert read.agent.cost_branch == 1.0
    arch = read.architecture()
    del arch["agent"]["cost_branch"]
    state = FOSPAgent(read).full_state()
    torch.save({"format": ckpt.FORMAT, "architecture": arch, "agent": state}, tmp_path / "c.pt")
    ckpt.load(tmp_path / "c.pt", read)  # matches the config read back
    with pytest.raises(ckpt.CheckpointError, match="cost_branch"):
        ckpt.load(tmp_path / "c.pt", cfg)  # today's default is another behaviour
