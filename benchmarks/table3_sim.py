"""FOSP Table 3 in the simulator: SR / CV before, during and after few-shot finetuning on each
unseen task, for safe policy expansion (`pex`) and the `direct` ablation, with wall times.

    .venv/bin/python benchmarks/table3_sim.py --checkpoint RUN --dataset DATA
        [--tasks unseen-1,unseen-2,unseen-3] [--tests 20] [--finetune-episodes 40]
        [--updates-per-episode 40] [--seeds 3] [--strategies pex,direct] [--out DIR]

The paper's protocol is 20 tests and 40 finetuning episodes per task; on 2 CPU cores a small
budget (e.g. --finetune-episodes 10 --updates-per-episode 10 --seeds 1) is what fits an hour.
Runs are resumable: rerunning with the same --out continues the finetune runs it finds.
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

from policy.table3 import markdown, run_table3  # noqa: E402
from policy.train import set_threads  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--tasks", default="unseen-1,unseen-2,unseen-3")
    p.add_argument("--tests", type=int, default=20)
    p.add_argument("--finetune-episodes", type=int, default=40)
    p.add_argument("--updates-per-episode", type=int, default=40)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--strategies", default="pex,direct")
    p.add_argument("--out", default="out/bench_table3")
    args = p.parse_args()
    set_threads()
    hw = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}"
    )
    start = time.perf_counter()
    _, summary = run_table3(
        args.checkpoint,
        args.dataset,
        args.out,
        args.tasks.split(","),
        tests=args.tests,
        finetune_episodes=args.finetune_episodes,
        seeds=args.seeds,
        strategies=tuple(args.strategies.split(",")),
        updates_per_episode=args.updates_per_episode,
    )
    wall = time.perf_counter() - start
    print()
    print(markdown(summary))
    print(f"hardware: {hw}; total wall {wall:.0f} s")
    info = {"hardware": hw, "wall_s": wall, "args": vars(args), "summary": summary}
    (Path(args.out) / "bench.json").write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
