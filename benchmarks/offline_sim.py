"""Offline FOSP on the simulated paper-mix dataset: train, then SR / CV on `train` + 3 unseen tasks.

    .venv/bin/python benchmarks/offline_sim.py --dataset DIR [--preset small] [--steps 600]
        [--out RUN] [--episodes 20] [--skip-train]

The dataset is the 200-episode paper mix (`fosp sim collect --task train --episodes 200 --mix
paper --out DIR`); it is collected into DIR first if DIR is empty. Target on `train`: SR >= 70 %,
CV <= 15 %. Prints wall times, hardware and a table with Wilson 95 % intervals; --json saves it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy.config import resolve  # noqa: E402
from policy.evaluate import evaluate  # noqa: E402
from policy.train import load_agent, set_threads, train  # noqa: E402

TASKS = ("train", "unseen-1", "unseen-2", "unseen-3")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--out", default="out/bench_offline")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--skip-train", action="store_true", help="evaluate the run in --out as is")
    p.add_argument("--json")
    args = p.parse_args()
    set_threads()
    t_all = time.time()
    if not any(Path(args.dataset).glob("*.npz")):
        from data_collection.scripted import collect_mix

        t0 = time.time()
        collect_mix(args.dataset, task="train", episodes=200)
        print(f"collected 200 episodes in {time.time() - t0:.0f} s")
    t0 = time.time()
    if not args.skip_train:
        resume = (Path(args.out) / "checkpoint.pt").exists()
        cfg = resolve(args.preset)
        train(args.dataset, args.out, cfg, args.steps, resume=resume)
    train_s = time.time() - t0
    agent = load_agent(args.out, "auto")
    rows = []
    for task in TASKS:
        t0 = time.time()
        res = evaluate(agent, task, args.episodes)
        rows.append({**res.to_dict(), "eval_s": round(time.time() - t0, 1)})
        print(res.line(), f"[{time.time() - t0:.0f} s]")
    hw = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
    hw += f"{torch.get_num_threads()}" + (", CUDA" if torch.cuda.is_available() else ", CPU only")
    summary = {
        "preset": agent.cfg.preset,
        "steps": agent.step_count,
        "train_wall_s": round(train_s, 1),
        "total_wall_s": round(time.time() - t_all, 1),
        "hardware": hw,
        "results": rows,
        "target_train": {"sr_min": 0.70, "cv_max": 0.15},
    }
    train_row = rows[0]
    ok = train_row["sr"] >= 0.70 and train_row["cv"] <= 0.15
    print(f"steps {agent.step_count}, train {train_s:.0f} s, total {summary['total_wall_s']:.0f} s")
    print(f"hardware: {hw}")
    print(f"target on train (SR >= 70 %, CV <= 15 %): {'met' if ok else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
