"""`fosp demo` (the README's `make demo`): FOSP end to end in the in-process simulator on a CPU.

1. every task variant rendered (scenes.png);
2. the paper-mix dataset collected by the scripted operators (200 episodes), its statistics,
   plot and a filmstrip per category (dataset_stats.png, episodes.png);
3. offline pretraining (`small` preset);
4. FOSP's Table 3 protocol (policy/table3.py `run_table3`, one task, one seed, the default
   finetuning strategy `direct`): SR / CV of
   the offline policy on an unseen task (before), few-shot online finetuning there with safe
   policy expansion (during: the episodes themselves), SR / CV of the finetuned composite policy
   (after); the table (table3.md / .csv), its bar plot (table3.png) and the finetuning run's
   per-episode learning curve (finetune_curve.png).

Sized for <= 20 min on 2 CPU cores (timings printed per stage). `--checkpoint RUN` reuses a
pretrained run, `--dataset DIR` an existing dataset; every stage resumes from what `--out`
already holds.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fosp.config_flags import option, values
from fosp.errors import UserError
from fosp.files import mkdir
from robot.task_spec import TEST_LAYOUT_SEED


@dataclass(frozen=True)
class DemoConfig:
    """`fosp demo`'s budget: sized for <= 20 min on 2 CPU cores."""

    episodes: int = option(200, check="positive")  # paper-mix dataset size
    pretrain_steps: int = option(500, check="positive")  # small preset steps
    task: str = option("unseen-1", check="task")  # unseen task to finetune on
    tests: int = option(20, check="positive")  # test episodes before / after
    finetune_episodes: int = option(10, check="positive")  # online finetuning episodes
    updates_per_episode: int = option(20, check="positive")  # gradient steps per online episode
    seed: int = option(TEST_LAYOUT_SEED, check="seed")  # the first test episode's layout seed


def run_demo(args: argparse.Namespace) -> int:
    from policy.train import set_threads

    set_threads()
    out = Path(args.out)
    check_demo_args(args)
    cfg = DemoConfig(**values(args, DemoConfig))
    mkdir(out)
    start = time.perf_counter()
    stage_t = start

    def stage(text: str) -> None:
        nonlocal stage_t
        now = time.perf_counter()
        print(f"{text}  [{now - start:.0f} s elapsed, last stage {now - stage_t:.0f} s]",
              flush=True)  # fmt: skip
        stage_t = now

    stage(f"[1/4] task variants -> {out / 'scenes.png'}")
    write_scene_grid(out / "scenes.png")

    dataset_dir = Path(args.dataset) if args.dataset else out / "dataset"
    stage(f"[2/4] paper-mix dataset ({cfg.episodes} episodes) -> {dataset_dir}")
    from data_collection.dataset import Dataset
    from data_collection.scripted import collect_mix
    from data_collection.stats import format_stats, plot_returns

    if not args.dataset:  # resumes: episodes already there count towards the mix
        collect_mix(str(dataset_dir), task="train", episodes=cfg.episodes)
    dataset = Dataset(dataset_dir)
    summaries, _ = dataset.index()
    print(format_stats(summaries))
    print(f"plot: {plot_returns(summaries, out / 'dataset_stats.png')}")
    print(f"filmstrips: {write_filmstrips(dataset, out / 'episodes.png')}")

    run = Path(args.checkpoint) if args.checkpoint else out / "pretrain"
    if args.checkpoint:
        stage(f"[3/4] reusing the pretrained run {run}")
    else:
        stage(f"[3/4] offline pretraining, small preset, {cfg.pretrain_steps} steps -> {run}")
        from policy import checkpoint as ckpt
        from policy.config import resolve
        from policy.train import load_agent, train

        done, settled = 0, False
        if (run / ckpt.CHECKPOINT).exists():
            previous = load_agent(run)
            done = previous.step_count
            settled = previous.cfg.agent.settle_steps == 0 or previous.settled_at == done
        if done < cfg.pretrain_steps or not settled:  # a crash before settling resumes there
            small = resolve("small")
            last = train(dataset_dir, run, small, max(done, cfg.pretrain_steps),
                         resume=done > 0, tensorboard=False)  # fmt: skip
            if "check/cost_recall" in last:
                from policy.cli import cost_head_summary

                print(cost_head_summary(last, small.agent.cost_event))

    from policy.config import FinetuneConfig, Table3Config
    from policy.table3 import finetune_dir, plot_learning_curve, report, run_table3

    task = cfg.task
    protocol = Table3Config(
        tasks=task, tests=cfg.tests, finetune_episodes=cfg.finetune_episodes, seeds=1,
        strategies=FinetuneConfig.strategy, eval_seed=cfg.seed,
    )  # fmt: skip
    finetuning = FinetuneConfig(updates_per_episode=cfg.updates_per_episode)
    rows, summary = run_table3(
        run, dataset_dir, out, protocol, finetuning,
        stage=lambda text: stage(f"[4/4] Table 3 protocol: {text}"),
    )  # fmt: skip
    before = next(r for r in rows if r.phase == "before")
    still = next(r for r in rows if r.phase == "no-update")
    log = finetune_dir(out, FinetuneConfig.strategy, 0, task) / "finetune.jsonl"
    curve = plot_learning_curve(log, out / "finetune_curve.png", before, still)
    print(f"table: {out / 'table3.md'}, table3.csv, table3.png; learning curve: {curve}")
    print(report(rows, summary))
    print(f"demo wall time: {time.perf_counter() - start:.0f} s")
    return 0


def check_demo_args(args: argparse.Namespace) -> None:
    """Everything `run_demo` is given, checked before it creates anything."""
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a file, not a folder")
    if args.dataset and not Path(args.dataset).is_dir():
        raise UserError(f"--dataset {args.dataset}: no such dataset folder")
    if args.checkpoint:
        from policy import checkpoint as ckpt

        # CheckpointError naming what is missing, damaged or unsafe
        ckpt.load(args.checkpoint, ckpt.read_config(args.checkpoint))


def write_scene_grid(path: Path) -> Path:
    import cv2

    from robot.env import SafeReachEnv
    from robot.task_spec import available_tasks

    tiles = []
    for task in available_tasks():
        env = SafeReachEnv(task=task)
        obs, _ = env.reset(options={"layout_seed": 0})
        small = cv2.resize(obs["image"], (240, 240), interpolation=cv2.INTER_NEAREST)
        large = env.sim.render(320, 240, camera="overview")
        env.close()
        tile = np.concatenate([small, large], axis=1)
        cv2.putText(tile, task, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 2)
        tiles.append(tile)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(tiles, axis=0), cv2.COLOR_RGB2BGR))
    return path


def write_filmstrips(dataset, path: Path, frames: int = 8) -> Path:
    """A row per category: evenly spaced 64x64 frames; red border = cost, yellow = reward."""
    import cv2

    summaries, _ = dataset.index()
    rows = []
    for category in ("safe+success", "safe+fail", "unsafe+success", "unsafe+fail"):
        match = [s for s in summaries if s.category == category]
        if not match:
            continue
        episode = dataset.read(match[0].file)
        idx = np.linspace(0, len(episode) - 1, frames).astype(int)
        tiles = []
        for i in idx:
            tile = cv2.resize(
                episode.steps["image"][i], (128, 128), interpolation=cv2.INTER_NEAREST
            )
            colour = None
            if episode.steps["cost"][i] > 0:
                colour = (220, 30, 30)
            elif episode.steps["reward"][i] > 0:
                colour = (240, 200, 0)
            if colour:
                cv2.rectangle(tile, (0, 0), (127, 127), colour, 4)
            cv2.putText(tile, f"t={i}", (4, 122), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
            tiles.append(tile)
        row = np.concatenate(tiles, axis=1)
        label = np.full((20, row.shape[1], 3), 255, np.uint8)
        cv2.putText(label, category, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        rows += [label, row]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return path
