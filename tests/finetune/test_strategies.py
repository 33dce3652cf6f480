"""The finetuning strategy interface (policy/strategy.py): one registry, every strategy resumes
after a crash with its own state, the pretrained run is never written; SafeDreamer's PID
Lagrangian and actor loss pinned by hand."""

from __future__ import annotations

import hashlib

import pytest
import torch

from policy import checkpoint as ckpt
from policy.config import STRATEGIES, FinetuneConfig
from policy.finetune import Finetuner, SimCollector, online_files
from policy.lagrangian import PIDLagrangian
from policy.objectives import reached_weights
from policy.safedreamer import SafeDreamerFinetune, lagrangian_advantage
from policy.strategy import REGISTRY, make_strategy, strategy_class
from policy.train import load_agent
from robot.spaces import EPISODE_STEPS


class Crash(RuntimeError):
    pass


def test_the_registry_names_every_strategy_the_flags_offer():
    assert set(REGISTRY) == set(STRATEGIES)
    for name in STRATEGIES:
        assert strategy_class(name).name == name
    with pytest.raises(ValueError, match="unknown finetuning strategy 'nope'"):
        strategy_class("nope")


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if torch.is_tensor(a):
        return torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_strategy_resumes_after_a_crash_with_its_own_state(
    name, pretrained, offline_data, tmp_path
):
    source = pretrained / ckpt.CHECKPOINT
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    out = tmp_path / name
    fc = FinetuneConfig(strategy=name, updates_per_episode=2, settle_steps=2, seed=3,
                        vpa_steps=50, ocr_reeval_steps=50, ocr_align_steps=50)  # fmt: skip

    def crash_on_second(path):
        if path.name.endswith("-ft0001.npz"):
            raise Crash(path.name)

    tuner = Finetuner(pretrained, out, "unseen-1", fc, offline_data, log=None)
    collector = SimCollector("unseen-1", fc.seed)
    with pytest.raises(Crash):
        tuner.run(collector, 2, after_write=crash_on_second)
    collector.close()
    saved = ckpt.load(out)["expansion"]
    assert saved["strategy"] == name and saved["prepared"]

    resumed = Finetuner(pretrained, out, "unseen-1", FinetuneConfig(), None, log=None)
    assert resumed.strategy.name == name
    assert _same(resumed.strategy.state_dict(), saved)  # restored as checkpointed
    collector = SimCollector("unseen-1", fc.seed)
    resumed.run(collector, 2)
    collector.close()
    files = [p.name for p in online_files(out)]
    assert len(files) == 2 and ckpt.load(out)["applied"] == files
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest  # pretrained run untouched


def test_a_checkpoint_of_one_strategy_does_not_load_into_another(pretrained):
    pex = make_strategy(
        load_agent(pretrained), FinetuneConfig(strategy="pex", horizon=EPISODE_STEPS)
    )
    other = make_strategy(
        load_agent(pretrained), FinetuneConfig(strategy="safedreamer", horizon=EPISODE_STEPS)
    )
    with pytest.raises(ValueError, match="strategy 'pex', not 'safedreamer'"):
        other.load_state_dict(pex.state_dict())


def test_pid_lagrangian_by_hand():
    """Stooke et al. 2020 Algorithm 2 with SafeDreamer's smoothing (policy/lagrangian.py)."""
    pid = PIDLagrangian(kp=1.0, ki=0.5, kd=2.0, limit=1.0, delay=2, ema=0.5, lambda_init=0.3)
    assert pid.lagrange == 0.3
    # J = 3: delta 2, I 2, P 0.5*0 + 0.5*2 = 1, D 0.5*3 = 1.5, dD = 1.5 - 0; 1 + 1 + 3 = 5
    assert pid.step(3.0) == pytest.approx(5.0)
    # J = 0: delta -1, I 1, P 0, D 0.75, dD = 0.75 - D two updates ago (0); 0 + 0.5 + 1.5
    assert pid.step(0.0) == pytest.approx(2.0)
    # J = 0: I = max(0, 0) (anti-windup), P -0.5, D 0.375 below 1.5: dD 0; clipped at 0
    assert pid.step(0.0) == 0.0 and pid.integral == 0.0
    capped = PIDLagrangian(kp=0.0, ki=10.0, kd=0.0, limit=0.0, lambda_max=4.0)
    assert capped.step(1.0) == 4.0  # 10 * 1 bounded by lambda_max
    restored = PIDLagrangian(kp=1.0, ki=0.5, kd=2.0, limit=1.0, delay=2, ema=0.5)
    restored.load_state_dict(pid.state_dict())
    assert restored.step(2.0) == pid.step(2.0)  # resume is exact


def test_lagrangian_advantage_and_reached_weights_by_hand():
    # (1 - 3 * 2) / (1 + 3) = -1.25; lambda = 0 leaves A^r
    adv = lagrangian_advantage(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0]), 3.0)
    assert torch.allclose(adv, torch.tensor([-1.25, -1.25]))
    assert torch.equal(lagrangian_advantage(torch.tensor([0.7]), torch.tensor([5.0]), 0.0),
                       torch.tensor([0.7]))  # fmt: skip
    cont = torch.tensor([[1.0], [0.5], [0.2]])  # continuation of imagined states 1, 2, 3
    assert torch.allclose(reached_weights(cont), torch.tensor([[1.0], [1.0], [0.5]]))


def _imagined(agent, ret_r: float, ret_c: float, horizon: int = 3, n: int = 64):
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(horizon + 1, n, agent.wm.feat_dim, generator=g)
    with torch.no_grad():
        action = agent.actor.dist(feat[:-1]).mean + 0.5  # one direction away from the mean
        base_r, base_c = agent.v_r_slow(feat[:-1]), agent.v_c_slow(feat[:-1])
    return {
        "feat": feat,
        "action": action.clamp(-1, 1),
        "cont": torch.ones(horizon, n),
        "ret_r": base_r + ret_r,  # advantage ret_r over the slow value
        "ret_c": base_c + ret_c,
    }


@pytest.mark.parametrize(("ret_r", "ret_c", "lam", "rises"), [
    (5.0, 0.0, 0.0, True),  # a rewarding imagined action becomes more likely
    (0.0, 5.0, 10.0, False),  # a costly one, with the multiplier up, less likely
])  # fmt: skip
def test_safedreamer_actor_loss_follows_the_lagrangian_advantage(
    pretrained, ret_r, ret_c, lam, rises
):
    agent = load_agent(pretrained)
    sd = SafeDreamerFinetune(agent, FinetuneConfig(strategy="safedreamer", horizon=EPISODE_STEPS,
                                                   pid_ki=0.0))  # fmt: skip
    sd.pid.lagrange = lam
    imagined = _imagined(agent, ret_r, ret_c)

    def logp() -> float:
        with torch.no_grad():
            d = agent.actor.dist(imagined["feat"][:-1])
            return float(d.log_prob(imagined["action"]).sum(-1).mean())

    before = logp()
    for _ in range(5):
        loss, metrics = sd.actor_loss(imagined)
        agent._update("actor", loss, agent.actor.parameters())
    assert (logp() > before) == rises
    assert float(metrics["safedreamer/j_c"]) == pytest.approx(float(imagined["ret_c"][0].mean()))


def test_safedreamer_multiplier_rises_while_the_imagined_cost_exceeds_the_limit(pretrained):
    agent = load_agent(pretrained)
    fc = FinetuneConfig(strategy="safedreamer", horizon=EPISODE_STEPS, pid_cost_limit=0.1)
    sd = make_strategy(agent, fc)
    assert agent.actor_objective == sd.actor_loss  # the agent's behaviour step calls it
    start = sd.multiplier()
    lams = []
    for _ in range(3):
        sd.actor_loss(_imagined(agent, 0.0, 1.0))  # J_c = V_c + 1 > 0.1
        lams.append(sd.multiplier())
    assert start < lams[0] < lams[1] < lams[2]


def test_a_frozen_world_model_keeps_the_offline_policy_exactly_the_offline_policy(
    pretrained, offline_data, tmp_path
):
    """Issue 10: on a learning world model the frozen offline actor reads features whose meaning
    changes (unseen-3: 90 / 55 before, 40 / 50 alone after 20 PEX episodes). With
    world_model = frozen the world model is not written and the frozen actor acts as offline."""
    from policy.finetune import finetune_sim

    fc = FinetuneConfig(strategy="pex", updates_per_episode=2, settle_steps=2, world_model="frozen")
    tuner = finetune_sim(pretrained, tmp_path / "wm", "unseen-1", 1, fc, offline_data, log=None)
    offline = load_agent(pretrained)
    for (name, p), q in zip(tuner.agent.wm.state_dict().items(), offline.wm.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(p, q), name
    assert tuner.agent.step_count > offline.step_count  # the updates ran
    learning = finetune_sim(
        pretrained, tmp_path / "learn", "unseen-1", 1,
        FinetuneConfig(updates_per_episode=2, settle_steps=2), offline_data, log=None,
    )  # fmt: skip
    pairs = zip(learning.agent.wm.parameters(), offline.wm.parameters(), strict=True)
    changed = [not torch.equal(p, q) for p, q in pairs]
    assert any(changed)  # the default keeps Algorithm 1's world-model updates


def test_world_model_heads_learns_the_heads_on_a_fixed_representation(
    pretrained, offline_data, tmp_path
):
    """world_model = heads: the encoders, RSSM and decoders stay the offline ones bit for bit
    (so the features keep their meaning), and the reward, cost and continuation heads learn."""
    from policy.finetune import finetune_sim
    from policy.world_model import HEADS

    fc = FinetuneConfig(updates_per_episode=2, settle_steps=2, world_model="heads")
    tuner = finetune_sim(pretrained, tmp_path / "heads", "unseen-1", 1, fc, offline_data, log=None)
    offline = load_agent(pretrained)
    offline_params = dict(offline.wm.named_parameters())
    moved = {
        name.split(".")[0]
        for name, p in tuner.agent.wm.named_parameters()
        if not torch.equal(p, offline_params[name])
    }
    assert moved and moved <= set(HEADS), moved


def test_representation_lr_scales_the_representations_adam_step_and_not_the_heads(
    pretrained, offline_data, tmp_path
):
    """FinetuneConfig.representation_lr = s: after the first update (the same episode, batch and
    gradient in every run) the encoders', RSSM's and decoders' step is s times the full one,
    the heads' step is the full one, and s = 0 leaves the representation bit for bit."""
    from policy.finetune import finetune_sim
    from policy.world_model import HEADS

    offline = dict(load_agent(pretrained).wm.named_parameters())
    moved = {}
    for share in (1.0, 0.5, 0.0):
        fc = FinetuneConfig(updates_per_episode=1, settle_steps=0, representation_lr=share)
        out = tmp_path / f"share{share}"
        tuner = finetune_sim(pretrained, out, "unseen-1", 1, fc, offline_data, log=None)
        moved[share] = {n: p.detach() - offline[n] for n, p in tuner.agent.wm.named_parameters()}
    full = moved[1.0]
    assert max(d.abs().max().item() for d in full.values()) > 1e-5
    for name, step in full.items():
        if name.split(".")[0] in HEADS:
            assert torch.equal(moved[0.5][name], step) and torch.equal(moved[0.0][name], step)
        else:
            assert torch.allclose(moved[0.5][name], 0.5 * step, atol=1e-6), name
            assert not moved[0.0][name].any(), name


def test_settling_moves_the_actor_on_a_fixed_world_model(pretrained, offline_data, tmp_path):
    """FinetuneConfig.settle_steps: after each episode's K updates, behaviour steps on the
    features the updated world model computes; the world model is not written and the
    training step count does not move (docs/algorithm.md "longer settling")."""
    from policy.finetune import finetune_sim

    fc = FinetuneConfig(updates_per_episode=1, settle_steps=0)
    tuner = finetune_sim(pretrained, tmp_path / "settle", "unseen-1", 1, fc, offline_data, log=None)
    agent = tuner.agent
    world_model = {name: v.clone() for name, v in agent.wm.state_dict().items()}
    actor = [p.detach().clone() for p in agent.actor.parameters()]
    steps = agent.step_count
    tuner.strategy.settle(3)
    for name, v in agent.wm.state_dict().items():
        assert torch.equal(v, world_model[name]), name
    assert any(not torch.equal(p, q) for p, q in zip(agent.actor.parameters(), actor, strict=True))
    assert agent.step_count == steps and agent.settled_at == steps


def test_finetuning_reads_the_in_sample_gate_unless_told_the_checkpoints(
    pretrained, offline_data, tmp_path, monkeypatch
):
    """FinetuneConfig.feasible_gate: by default the learning actor's eq. 19 reads the in-sample
    gate while the run's config.json keeps the pretraining's (`episode`); `checkpoint` keeps the
    pretraining's own."""
    from policy import objectives as O

    seen: list[str] = []
    original = O.feasibility
    monkeypatch.setattr(O, "feasibility", lambda gate, *a: seen.append(gate) or original(gate, *a))
    own = ckpt.read_config(pretrained).agent.feasible_gate
    assert own == "episode"
    fc = FinetuneConfig(updates_per_episode=1, settle_steps=0)
    tuner = Finetuner(pretrained, tmp_path / "default", "unseen-1", fc, offline_data, log=None)
    assert ckpt.read_config(tmp_path / "default").agent.feasible_gate == own
    tuner.updates(1)
    assert seen and set(seen) == {"in_sample"}
    seen.clear()
    fc = FinetuneConfig(updates_per_episode=1, settle_steps=0, feasible_gate="checkpoint")
    Finetuner(pretrained, tmp_path / "own", "unseen-1", fc, offline_data, log=None).updates(1)
    assert seen and set(seen) == {"episode"}


def test_finetuning_turns_on_the_imagined_cost_term_where_the_actor_imagines(
    pretrained, offline_data, tmp_path
):
    """FinetuneConfig.imagined_cost: the learning actor gets the term (AgentConfig.imagined_cost)
    while the run's config.json keeps the checkpoint's value; a strategy whose actor does not
    imagine its own rollouts refuses the flag instead of ignoring it."""
    fc = FinetuneConfig(updates_per_episode=1, settle_steps=0, imagined_cost=2.0)
    tuner = Finetuner(pretrained, tmp_path / "on", "unseen-1", fc, offline_data, log=None)
    own = ckpt.read_config(pretrained).agent.imagined_cost
    assert tuner.agent.cfg.agent.imagined_cost == 2.0 != own
    assert ckpt.read_config(tmp_path / "on").agent.imagined_cost == own
    metrics, _ = tuner.updates(1)
    assert "actor/imagined_cost_loss" in metrics
    off = Finetuner(
        pretrained, tmp_path / "off", "unseen-1", FinetuneConfig(), offline_data, log=None
    )
    assert "actor/imagined_cost_loss" not in off.updates(1)[0]
    for name in ("pex", "safedreamer"):
        fc = FinetuneConfig(strategy=name, imagined_cost=2.0)
        with pytest.raises(ValueError, match=f"--imagined-cost .* --strategy {name}"):
            Finetuner(pretrained, tmp_path / name, "unseen-1", fc, offline_data, log=None)


def test_offline_features_keep_the_frozen_actor_on_the_pretrained_world_model(
    pretrained, offline_data, tmp_path
):
    """FinetuneConfig.offline_features = offline: PEX's frozen actor reads a frozen copy of the
    pretrained world model, filtered beside the learning one (the learning world model's features
    drift: unseen-1 after 40 episodes, the frozen actor alone 45 % SR against 95 % offline). The
    copy stays bit for bit through updates and a checkpoint; the frozen proposal is the offline
    actor's mean on the copy's posterior, not on the learning model's."""
    from policy.finetune import finetune_sim
    from robot.env import EnvConfig, SafeReachEnv

    fc = FinetuneConfig(strategy="pex", updates_per_episode=2, settle_steps=2,
                        offline_features="offline")  # fmt: skip
    tuner = finetune_sim(pretrained, tmp_path / "pex", "unseen-1", 1, fc, offline_data, log=None)
    pex, offline = tuner.strategy, load_agent(pretrained)
    assert _same(pex.offline.state_dict(), offline.wm.state_dict())
    assert not _same(tuner.agent.wm.state_dict(), offline.wm.state_dict())  # the learning one
    saved = ckpt.load(tmp_path / "pex")["expansion"]["offline_model"]
    assert _same(saved, pex.offline.state_dict())

    env = SafeReachEnv(EnvConfig(task="unseen-1"))
    try:
        obs0, _ = env.reset(seed=5)
        _, state, _ = pex.act(obs0, None, deterministic=True)
        obs1 = env.step(state["action"][0].numpy())[0]
    finally:
        env.close()
    pex._chunk_left, pex._chunk_choice = 5, 0  # the next step is the frozen actor's
    torch.manual_seed(7)
    action, after, info = pex.act(obs1, state, deterministic=True)
    assert info["policy"] == 0
    torch.manual_seed(7)  # the same draws: the learning model's posterior first, then the copy's
    tuner.agent.filter_step(obs1, state["h"], state["z"], state["action"])
    h, z, feat = offline.filter_step(obs1, state["offline_h"], state["offline_z"], state["action"])
    assert torch.equal(after["offline_h"], h) and torch.equal(after["offline_z"], z)
    expected = pex.frozen.dist(feat).mean.clamp(-1.0, 1.0)[0].numpy()
    assert (action == expected).all()
    on_learning = pex.frozen.dist(after["feat"]).mean.clamp(-1.0, 1.0)[0].numpy()
    assert not (on_learning == expected).all()  # the two models' features differ


def test_cost_evidence_takes_each_actors_observed_cost_off_its_chunk_score(pretrained):
    """FinetuneConfig.cost_evidence = w: a chunk score falls by w * T * C_k / (N_k + T) / S_c,
    actor k's labelled cost steps C_k over its steps acted N_k (prior: one cost-free episode
    of T steps), over the cost return scale S_c. By hand: T = 80; the offline actor acted
    actions 0-39 and earned cost rows 31-34 (4 steps), the new actor acted 40-79 cost-free, and
    the cost on row 0 belongs to no action; S_c = 2: 80 * 4 / (40 + 80) / 2 = 4 / 3."""
    from types import SimpleNamespace

    import numpy as np

    from robot.env import EnvConfig, SafeReachEnv

    cost = np.zeros(81)
    cost[[0, 31, 32, 33, 34]] = 1.0
    episode = SimpleNamespace(steps={"cost": cost}, metadata={"acted_by": [0] * 40 + [1] * 40})
    pex = make_strategy(
        load_agent(pretrained), FinetuneConfig(strategy="pex", horizon=80, cost_evidence=1.0)
    )
    pex.agent.return_scale[1] = 2.0
    pex.observe_episode(episode)
    assert pex.observed_cost.tolist() == [4.0, 0.0]
    assert pex.observed_steps.tolist() == [40.0, 40.0]
    assert torch.allclose(pex.observed_penalty(), torch.tensor([4 / 3, 0.0]))

    # equal imagined scores: the observed cost alone decides, eq. 21 at 1/alpha = 10
    pex.imagined_scores = lambda feat: torch.zeros(2)
    env = SafeReachEnv(EnvConfig(task="unseen-3"))
    try:
        obs = env.reset(seed=3)[0]
    finally:
        env.close()
    _, _, info = pex.act(obs, None)
    p_off = 1 / (1 + np.exp(10 * 4 / 3))
    assert info["probs"][0] == pytest.approx(p_off, rel=1e-5)
    # ... and it is checkpointed with the strategy
    fresh = make_strategy(
        load_agent(pretrained), FinetuneConfig(strategy="pex", horizon=80, cost_evidence=1.0)
    )
    fresh.load_state_dict(pex.state_dict())
    assert fresh.observed_cost.tolist() == [4.0, 0.0]
    assert fresh.observed_steps.tolist() == [40.0, 40.0]
    # after the episode's updates the learning actor's record counts half, the frozen one's whole
    logged = pex.end_episode(episode)
    assert pex.observed_cost.tolist() == [4.0, 0.0]
    assert pex.observed_steps.tolist() == [40.0, 20.0]
    assert logged["pex/penalty_offline"] == pytest.approx(4 / 3)
    # w = 0: the imagined scores alone, as before the setting existed
    off = make_strategy(load_agent(pretrained), FinetuneConfig(strategy="pex", horizon=80))
    off.observe_episode(episode)
    off.imagined_scores = lambda feat: torch.zeros(2)
    assert off.act(obs, None)[2]["probs"][0] == pytest.approx(0.5)
