"""Finetuning turnaround per episode on this machine: labels in (simulated operator's labels,
atomic append to the online dataset, replay append), K gradient steps, atomic checkpoint.

    .venv/bin/python benchmarks/finetune_turnaround.py --dataset DATA [--presets tiny small]
        [--updates 10 40] [--episodes 3]

The networks start from a fresh initialisation of each preset (turnaround does not depend on
what they learned); the "new" episodes are episodes of DATA relabelled as an operator would.
Prints a table (median over --episodes per row) and the hardware.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_collection.dataset import Dataset  # noqa: E402
from data_collection.rollout import delayed_labels  # noqa: E402
from policy import checkpoint as ckpt  # noqa: E402
from policy.agent import FOSPAgent  # noqa: E402
from policy.config import FinetuneConfig, resolve  # noqa: E402
from policy.finetune import Finetuner  # noqa: E402
from policy.train import set_threads  # noqa: E402


def pretrained_stub(preset: str, root: Path) -> Path:
    cfg = resolve(preset)
    run = root / f"pre_{preset}"
    ckpt.write_config(run, cfg)
    ckpt.save(run, cfg, {"agent": FOSPAgent(cfg).full_state(), "replay": {}})
    return run


def measure(preset: str, k: int, dataset: Path, episodes: int, root: Path) -> dict[str, float]:
    run = pretrained_stub(preset, root)
    out = root / f"ft_{preset}_{k}"
    tuner = Finetuner(run, out, "unseen-1", FinetuneConfig(updates_per_episode=k), dataset,
                      log=None)  # fmt: skip
    sources = [ep for _, (_, ep) in zip(range(episodes), Dataset(dataset).episodes(), strict=False)]
    rows = []
    for i, episode in enumerate(sources):
        t0 = time.perf_counter()
        if "oracle_reward" in episode.steps:
            for field in ("reward", "cost"):
                episode.steps[field] = delayed_labels(episode.steps[f"oracle_{field}"], 2)
        episode.metadata.update(episode_id=f"ft{i:04d}", started_at=f"2026-01-01T00:00:{i:02d}")
        path = tuner.online.add(episode)
        tuner.replay.add(episode, str(path))
        t_labels = time.perf_counter() - t0
        _, t_updates = tuner.updates(k)
        tuner.applied.append(path.name)
        t_ckpt = tuner.save()
        rows.append((t_labels, t_updates, t_ckpt))
    med = [statistics.median(c) for c in zip(*rows, strict=True)]
    return {"labels_s": med[0], "updates_s": med[1], "checkpoint_s": med[2], "total_s": sum(med)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--presets", nargs="+", default=["tiny", "small"])
    p.add_argument("--updates", nargs="+", type=int, default=[10, 40])
    p.add_argument("--episodes", type=int, default=3)
    args = p.parse_args()
    set_threads()
    torch.manual_seed(0)
    hw = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}"
    )
    print("| preset | K | labels in s | K updates s | per update s | checkpoint s | total s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            for k in args.updates:
                r = measure(preset, k, Path(args.dataset), args.episodes, Path(tmp))
                print(
                    f"| {preset} | {k} | {r['labels_s']:.3f} | {r['updates_s']:.2f} | "
                    f"{r['updates_s'] / k:.3f} | {r['checkpoint_s']:.3f} | {r['total_s']:.2f} |",
                    flush=True,
                )
    print(f"hardware: {hw} (median of {args.episodes} episodes per row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
