"""Replay, checkpoints (atomic, exact resume, config check), acting, evaluation and the CLI."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from data_collection.dataset import Dataset
from policy import checkpoint as ckpt
from policy.agent import FOSPAgent
from policy.config import resolve
from policy.evaluate import evaluate, newcombe, wilson
from policy.replay import Replay, ReplayError
from policy.train import load_agent, train


def test_replay_windows_stay_inside_one_episode(dataset_dir, heldout_episodes):
    replay = Replay.from_dataset(dataset_dir, 16, seed=0)
    n_before = replay.num_episodes
    batch = replay.sample(64)
    assert batch["image"].shape == (64, 16, 64, 64, 3) and batch["image"].dtype == torch.uint8
    assert batch["is_first"][:, 0].all()
    # an episode boundary (is_last) may only be the window's final row
    assert not batch["is_last"][:, :-1].any()
    replay.add(heldout_episodes[0])  # online episodes are appended (finetuning)
    assert replay.num_episodes == n_before + 1
    assert len(replay) == sum(len(e) for _, e in Dataset(dataset_dir).episodes()) + len(
        heldout_episodes[0]
    )


def test_length_zero_samples_whole_episodes(dataset_dir):
    # --length 0: every window is one whole episode, from its true first row to its last, so the
    # RSSM state of each row carries the full history the policy has when it acts
    episodes = [e for _, e in Dataset(dataset_dir).episodes()]
    replay = Replay.from_dataset(dataset_dir, 0, seed=0)
    assert replay.length == min(len(e) for e in episodes) == len(episodes[0])
    batch = replay.sample(5)
    assert batch["is_first"][:, 0].all() and batch["is_last"][:, -1].all()
    assert not batch["is_first"][:, 1:].any() and not batch["is_last"][:, :-1].any()
    windows = replay.episode_windows()
    assert windows.shape == (len(episodes), replay.length)
    rewards = replay.gather(windows)["reward"]
    for row, ep in zip(rewards, episodes, strict=True):
        np.testing.assert_array_equal(row.numpy(), np.asarray(ep.steps["reward"]))


def test_replay_rejects_bad_input(tmp_path, heldout_episodes):
    with pytest.raises(ReplayError, match="no episodes"):
        Replay.from_dataset(tmp_path, 16)
    bad = copy.deepcopy(heldout_episodes[0])
    bad.steps["pose"] = bad.steps["pose"][:, :5]
    with pytest.raises(ReplayError, match="'pose' has shape"):
        Replay(16).add(bad, "bad.npz")
    with pytest.raises(ReplayError, match=">= 100 rows"):
        Replay(100).add(heldout_episodes[0])


def _params(agent):
    return torch.cat([p.detach().flatten() for p in agent.parameters()])


def test_exact_resume_and_atomic_checkpoints(dataset_dir, tmp_path):
    # resume is exact at a feature-cache refresh (cache_every divides checkpoint_every in the
    # presets): the resumed run recomputes the cache where the straight one did
    cfg = resolve("tiny", checkpoint_every=1000, log_every=1)
    cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, cache_every=2))
    train(dataset_dir, tmp_path / "straight", cfg, 4, progress=False, tensorboard=False)
    train(dataset_dir, tmp_path / "split", cfg, 2, progress=False, tensorboard=False)
    with pytest.raises(ckpt.CheckpointError, match="already holds a run"):
        train(dataset_dir, tmp_path / "split", cfg, 4, progress=False, tensorboard=False)
    train(dataset_dir, tmp_path / "split", cfg, 4, resume=True, progress=False, tensorboard=False)
    a, b = load_agent(tmp_path / "straight", "cpu"), load_agent(tmp_path / "split", "cpu")
    assert a.step_count == b.step_count == 4
    assert torch.equal(_params(a), _params(b))
    assert a.lagrangian.state_dict() == b.lagrangian.state_dict()
    sa = ckpt.load(tmp_path / "straight")["agent"]["optimizers"]["model"]["state"]
    sb = ckpt.load(tmp_path / "split")["agent"]["optimizers"]["model"]["state"]
    assert all(torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) for k in sa)
    logs = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs] == [1, 2, 3, 4]
    assert {"lagrange/lambda_p", "lagrange/mu", "ref/u_mean", "rate/cost_pred"} <= set(logs[0])
    # atomic write: no temporary files left; the config is saved beside the checkpoint
    assert sorted(p.name for p in (tmp_path / "split").iterdir() if p.name.startswith(".")) == []
    assert ckpt.read_config(tmp_path / "split") == cfg
    # a checkpoint from another config is refused with the difference named
    with pytest.raises(ckpt.CheckpointError, match="another config"):
        ckpt.load(tmp_path / "split", resolve("small"))
    with pytest.raises(
        ckpt.CheckpointError,
        match="another config \\(its preset 'tiny', asked 'small'; agent\\.",
    ):
        train(dataset_dir, tmp_path / "split", resolve("small"), 6, resume=True, progress=False)


def test_act_eval_and_frozen_actor_copy(dataset_dir, tmp_path):
    cfg = resolve("tiny")
    agent = FOSPAgent(cfg)
    env_obs = {"image": np.zeros((64, 64, 3), np.uint8), "pose": np.zeros(6, np.float32)}
    action, state = agent.act(env_obs, None)
    assert action.shape == (6,) and np.all(np.abs(action) <= 1)
    action2, _ = agent.act(env_obs, state)
    assert action2.shape == (6,)
    frozen = copy.deepcopy(agent.actor).requires_grad_(False)  # PEX's prior policy
    feat = state["feat"]
    assert torch.equal(frozen.sample(feat, True), agent.actor.sample(feat, True))
    assert not any(p.requires_grad for p in frozen.parameters())
    a_frozen, _ = agent.act(env_obs, state, actor=frozen)
    assert a_frozen.shape == (6,)
    result = evaluate(agent, "train", episodes=2)
    assert result.episodes == 2 and 0 <= result.sr <= 1 and 0 <= result.cv <= 1
    assert "SR" in result.line() and "CV" in result.line()
    # same machine, same policy, same seeds: the same score (the latent samples are seeded),
    # and the caller's torch stream is not consumed
    before = torch.get_rng_state()
    again = evaluate(agent, "train", episodes=2)
    assert torch.equal(torch.get_rng_state(), before)
    assert (again.mean_return, again.mean_cost) == (result.mean_return, result.mean_cost)


def test_newcombe_interval_matches_the_published_examples():
    # Newcombe (1998), Stat. Med. 17: 873-890, Table II, method 10 (hybrid score), 4 decimals
    published = {
        (56, 70, 48, 80): (0.0524, 0.3339),
        (9, 10, 3, 10): (0.1705, 0.8090),
        (6, 7, 2, 7): (0.0582, 0.8062),
        (5, 56, 0, 29): (-0.0381, 0.1926),
        (0, 10, 0, 20): (-0.1611, 0.2775),
    }
    for counts, interval in published.items():
        assert newcombe(*counts) == pytest.approx(interval, abs=1e-4), counts
    # the order of the samples flips the interval's sign
    assert newcombe(48, 80, 56, 70) == pytest.approx((-0.3339, -0.0524), abs=1e-4)


def test_wilson_interval_hand_values():
    lo, hi = wilson(14, 20)  # p = 0.7, n = 20
    assert lo == pytest.approx(0.4810, abs=1e-3) and hi == pytest.approx(0.8545, abs=1e-3)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0


def test_cli_errors_are_clear(tmp_path, capsys):
    from fosp.cli import main

    (tmp_path / "empty").mkdir()
    code = main(["train", "--dataset", str(tmp_path / "empty"), "--preset", "tiny", "--steps",
                 "2", "--out", str(tmp_path / "run"), "--no-progress"])  # fmt: skip
    assert code == 2 and "has no episodes" in capsys.readouterr().err
    code = main(["eval", "--checkpoint", str(tmp_path / "nothing")])
    assert code == 2 and "config.json not found" in capsys.readouterr().err
