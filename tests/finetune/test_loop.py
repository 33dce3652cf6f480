"""The finetuning loop: a crash between writing an episode and its checkpoint loses and
duplicates nothing; `fosp finetune` and `fosp eval table3` from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_collection.rollout import delayed_labels
from fosp.cli import main
from policy import checkpoint as ckpt
from policy.config import FinetuneConfig
from policy.finetune import FINETUNE_JSON, LOG, Finetuner, SimCollector, online_files


class Crash(RuntimeError):
    pass


def test_resume_after_a_crash_loses_and_duplicates_nothing(pretrained, offline_data, tmp_path):
    out, k = tmp_path / "ft", 2
    fc = FinetuneConfig(strategy="pex", updates_per_episode=k, seed=5)

    def crash_on_second(path):
        if path.name.endswith("-ft0001.npz"):
            raise Crash(path.name)  # after the episode file, before its updates and checkpoint

    tuner = Finetuner(pretrained, out, "unseen-1", fc, offline_data, log=None)
    collector = SimCollector("unseen-1", fc.seed)
    with pytest.raises(Crash):
        tuner.run(collector, 3, after_write=crash_on_second)
    collector.close()
    files = [p.name for p in online_files(out)]
    assert len(files) == 2
    state = ckpt.load(out)
    assert state["applied"] == files[:1]  # the second file's updates were never checkpointed
    step_before = state["agent"]["step"]
    before_resume = list(files)

    # resume: a new process would do exactly this (no --dataset needed, it is recorded)
    resumed = Finetuner(pretrained, out, "unseen-1", FinetuneConfig(), None, log=None)
    assert resumed.fcfg.updates_per_episode == k  # the run's own settings, not the new ones
    # Q*'s T came from the dataset's episodes (horizon 0 = resolve) and was recorded as such
    steps = len(resumed.replay.episode_rows()[0]) - 1  # rows: the first observation + 80 steps
    assert tuner.fcfg.horizon == resumed.fcfg.horizon == steps == 80
    assert json.loads((out / FINETUNE_JSON).read_text())["finetune"]["horizon"] == 80
    assert resumed.replay.num_episodes == 8 + 2  # offline + both online files on disk
    collector = SimCollector("unseen-1", fc.seed)
    reports = resumed.run(collector, 3)
    collector.close()
    files = [p.name for p in online_files(out)]
    assert len(files) == 3 and len(set(files)) == 3
    assert files[:2] == before_resume  # the crashed episode was kept, not re-run
    state = ckpt.load(out)
    assert state["applied"] == files  # every episode's updates exactly once, in order
    assert state["agent"]["step"] == step_before + 2 * k
    assert [r.index for r in reports] == [1, 2]
    log = [json.loads(line) for line in (out / LOG).read_text().splitlines()]
    assert [r["index"] for r in log] == [0, 1, 2]
    # the simulated operator's labels: truth delayed 2 steps, the truth stored beside
    ep = resumed.online.read(online_files(out)[-1])
    for field in ("reward", "cost"):
        assert np.array_equal(ep.steps[field], delayed_labels(ep.steps[f"oracle_{field}"], 2))
    assert ep.metadata["finetune_index"] == 2 and sum(ep.metadata["policy_counts"]) == 80


def test_cli_finetune_and_table3(pretrained, offline_data, tmp_path, capsys):
    from policy.checkpoint import trained_on
    from policy.table3 import read_rows

    # `fosp train` recorded its dataset: finetune and table3 default to it (no --dataset)
    assert trained_on(pretrained) == str(offline_data.resolve())
    out = tmp_path / "cli"
    args = ["finetune", "--env", "sim", "--task", "unseen-3", "--checkpoint", str(pretrained)]
    args += ["--episodes", "1", "--updates-per-episode", "1"]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ep   0: offline" in text and "lambda" in text and "finetuned 1 episodes" in text
    assert main([*args, "--episodes", "1", "--out", str(out)]) == 0  # resume: nothing to do
    assert len(online_files(out)) == 1

    t3 = tmp_path / "t3"
    code = main(
        ["eval", "table3", "--checkpoint", str(pretrained),
         "--tasks", "unseen-1", "--tests", "1", "--finetune-episodes", "1", "--seeds", "1",
         "--first-seed", "1",
         "--strategies", "pex,direct,safedreamer,marvel,ocr-cft", "--updates-per-episode", "1",
         "--settle-steps", "1", "--vpa-steps", "2", "--ocr-reeval-steps", "2",
         "--ocr-align-steps", "2", "--out", str(t3)]
    )  # fmt: skip
    assert code == 0
    table = (t3 / "table3.md").read_text()
    for strategy in ("pex", "direct", "safedreamer", "marvel", "ocr-cft"):
        for phase in ("before", "no-update", "during", "after"):
            assert f"| {strategy} | unseen-1 | {phase} |" in table
        # a per-episode learning curve per strategy, in the run of the one seed asked for
        assert (t3 / strategy / "seed1" / "unseen-1" / "finetune_curve.png").stat().st_size > 0
        assert not (t3 / strategy / "seed0").exists()
    assert (t3 / "table3.png").stat().st_size > 0
    assert len((t3 / "table3.csv").read_text().splitlines()) == 1 + 20
    # the no-update phase is one run per seed, the same row for every strategy
    still = {(r.successes, r.violations) for r in read_rows(t3) if r.phase == "no-update"}
    assert len(still) == 1
    assert {r.seed for r in read_rows(t3)} == {1}
    # the plain form still works
    assert (
        main(["eval", "--checkpoint", str(pretrained), "--task", "train", "--episodes", "1"]) == 0
    )


def test_finetune_over_ros_without_a_master_fails_fast_and_creates_nothing(
    pretrained, tmp_path, monkeypatch, capsys
):
    import time

    from robot.ros_processes import free_port

    monkeypatch.setenv("ROS_MASTER_URI", f"http://127.0.0.1:{free_port()}")
    out = tmp_path / "no_master"
    t0 = time.monotonic()
    code = main(
        ["finetune", "--env", "ros", "--checkpoint", str(pretrained), "--out", str(out),
         "--episodes", "1"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code != 0 and time.monotonic() - t0 < 10
    assert len(err.splitlines()) == 1 and "no ROS master at" in err, err
    assert "Traceback" not in err and not out.exists()


def test_the_no_update_phase_runs_the_untouched_offline_policy_on_the_finetuning_layouts(
    pretrained, tmp_path
):
    """Table 3's no-update phase: the offline policy on a seed's finetuning layouts (the layout
    seeds every strategy's run uses), with finetuning's execution noise, and no update: its
    weights are unchanged afterwards, a rerun repeats it exactly (same machine), and its rates are
    counted from the ground truth as "during" counts them."""
    import torch

    from policy.finetune import layout_seed
    from policy.table3 import no_update_episodes, outcome_rates
    from policy.train import load_agent

    agent = load_agent(pretrained)
    weights = {k: v.clone() for k, v in agent.state_dict().items()}
    still = no_update_episodes(agent, "unseen-2", 4, 2, FinetuneConfig())
    assert all(torch.equal(v, agent.state_dict()[k]) for k, v in weights.items())
    again = no_update_episodes(load_agent(pretrained), "unseen-2", 4, 2, FinetuneConfig())
    for first, second in zip(still, again, strict=True):
        np.testing.assert_array_equal(first.steps["action"], second.steps["action"])
    assert [ep.metadata["layout_seed"] for ep in still] == [layout_seed(4, i) for i in range(2)]
    greedy = no_update_episodes(
        load_agent(pretrained), "unseen-2", 4, 1, FinetuneConfig(sample_actions=False)
    )
    assert not np.allclose(greedy[0].steps["action"], still[0].steps["action"])  # noise acted
    rates = outcome_rates(still)
    hits = [
        (ep.steps["oracle_reward"].max() > 0, ep.steps["oracle_cost"].max() > 0) for ep in still
    ]
    assert (rates.episodes, rates.successes, rates.violations) == (
        2,
        sum(s for s, _ in hits),
        sum(v for _, v in hits),
    )


def test_eval_of_a_finetune_run_tests_its_policy_as_it_acts(pretrained, offline_data, tmp_path,
                                                            capsys):  # fmt: skip
    """`fosp eval --checkpoint RUN2` tests the finetuned policy as Table 3's "after" does (pex:
    both actors and eq. 21's choice, restored from disk), `--policy learning | offline` one actor
    alone; a pretrained run or a one-actor strategy refuses the choice in one line."""
    from policy.cli import _policy
    from policy.evaluate import scored_episodes
    from policy.finetune import finetune_sim
    from policy.table3 import StrategyPolicy

    fc = FinetuneConfig(strategy="pex", updates_per_episode=1, settle_steps=1)
    out = tmp_path / "pex"
    tuner = finetune_sim(pretrained, out, "unseen-1", 1, fc, offline_data, log=None)

    def actions(policy) -> np.ndarray:
        return np.concatenate([s["action"] for s in scored_episodes(policy, "unseen-1", 2)])

    in_memory = actions(StrategyPolicy(tuner.strategy))
    assert np.array_equal(actions(_policy(out, "acting")), in_memory)
    alone = {which: actions(_policy(out, which)) for which in ("learning", "offline")}
    assert not np.array_equal(alone["learning"], alone["offline"])
    chosen = _policy(out, "offline").strategy
    assert chosen.only == 0 and chosen.act(*_first_obs(), None, True)[2]["policy"] == 0

    assert main(["eval", "--checkpoint", str(out), "--task", "unseen-1", "--episodes", "1"]) == 0
    assert main(["eval", "--checkpoint", str(pretrained), "--policy", "offline"]) == 2
    assert "is a pretrained run, not a finetune run" in capsys.readouterr().err
    direct = tmp_path / "direct"
    one = FinetuneConfig(updates_per_episode=1, settle_steps=1)
    finetune_sim(pretrained, direct, "unseen-1", 1, one, offline_data, log=None)
    assert main(["eval", "--checkpoint", str(direct), "--policy", "learning"]) == 2
    assert "acts with one actor" in capsys.readouterr().err


def _first_obs():
    from robot.env import EnvConfig, SafeReachEnv

    env = SafeReachEnv(EnvConfig(task="unseen-1"))
    try:
        return (env.reset(seed=0)[0],)
    finally:
        env.close()


def test_a_run_made_before_a_setting_existed_resumes_and_loads_with_the_value_it_used(
    pretrained, offline_data, tmp_path
):
    """A finetune.json written before `representation_lr` and `offline_features` existed (runs
    then used 1.0 and the learning world model's features) is read with those values, not with
    today's defaults: an old pex run still loads, resumes and is evaluated as it was made."""
    from policy.finetune import finetune_sim, load_finetuned

    fc = FinetuneConfig(strategy="pex", updates_per_episode=1, settle_steps=1,
                        representation_lr=1.0, offline_features="learning")  # fmt: skip
    out = tmp_path / "old"
    finetune_sim(pretrained, out, "unseen-1", 1, fc, offline_data, log=None)
    record = json.loads((out / FINETUNE_JSON).read_text())
    for name in ("representation_lr", "offline_features"):
        del record["finetune"][name]
    (out / FINETUNE_JSON).write_text(json.dumps(record))
    strategy = load_finetuned(out)
    assert strategy.cfg.representation_lr == 1.0 and strategy.cfg.offline_features == "learning"
    assert strategy.offline is None
    tuner = Finetuner(pretrained, out, "unseen-1", FinetuneConfig(), offline_data, log=None)
    assert tuner.fcfg.representation_lr == 1.0 and tuner.agent.representation_lr == 1.0
