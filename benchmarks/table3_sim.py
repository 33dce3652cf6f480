"""FOSP Table 3 in the simulator: SR / CV before, during and after few-shot finetuning on each
unseen task, for safe policy expansion (`pex`) and the `direct` ablation, with wall times; and
`no-update`, the offline policy on the finetuning episodes' layouts and noise without updates.

    .venv/bin/python benchmarks/table3_sim.py --checkpoint RUN --dataset DATA
        [--tasks unseen-1,unseen-2,unseen-3] [--tests 20] [--finetune-episodes 40]
        [--seeds 3] [--strategies pex,direct] [any FinetuneConfig flag] [--out DIR]

The defaults are the paper's protocol (Table3Config: 3 tasks x 3 seeds x 20 tests, 40 finetuning
episodes of 40 updates) with both strategies. Its wall time on the 2-core Intel Xeon VM
(measured per episode, 1 thread per slice, 2-3 slices at once): 37-43 s per `direct` and ~46 s
per `pex` finetuning episode, 1-3 s per test or no-update episode, so ~30-35 min per (task,
seed, strategy) and ~5 h for the whole protocol in 2 slices; a small budget (e.g.
--finetune-episodes 10 --updates-per-episode 10 --seeds 1) is what fits an hour.
Runs are resumable: rerunning with the same --out continues the finetune runs it finds.
The 18 (task, seed, strategy) units are independent: --jobs N runs them N processes at a time
(cores // N torch threads each; a finished unit is skipped on a rerun, an unfinished one
resumes) and pools them into --out, with units.csv holding each unit's wall time; across
machines, run slices (--seeds 1 --first-seed K --out DIR/sK) and pool them with
benchmarks/table3_merge.py.
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

from fosp.config_flags import add_flags, values  # noqa: E402
from fosp.errors import UserError  # noqa: E402
from policy.config import FinetuneConfig, Table3Config  # noqa: E402
from policy.replay import ReplayError  # noqa: E402
from policy.table3 import report, run_table3  # noqa: E402
from policy.table3_jobs import threads_per_job  # noqa: E402
from policy.train import set_threads  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", required=True)
    add_flags(p.add_argument_group("protocol (Table3Config)"), Table3Config)
    add_flags(p.add_argument_group("finetuning"), FinetuneConfig, skip=("strategy", "seed"))
    p.add_argument("--out", default="out/bench_table3")
    args = p.parse_args()
    set_threads()
    protocol = Table3Config(**{"strategies": "pex,direct", **values(args, Table3Config)})
    threads = (
        f"{protocol.jobs} processes x {threads_per_job(protocol.jobs)} torch threads"
        if protocol.jobs > 1
        else f"torch threads {torch.get_num_threads()}"
    )
    hw = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads}, "
        f"{'CUDA' if torch.cuda.is_available() else 'CPU only'}"
    )
    start = time.perf_counter()
    fcfg = FinetuneConfig(**values(args, FinetuneConfig))
    try:
        rows, summary = run_table3(args.checkpoint, args.dataset, args.out, protocol, fcfg)
    except (UserError, ReplayError) as err:  # a bad checkpoint, dataset or unit: one line
        print(f"table3_sim: error: {err}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    print()
    print(report(rows, summary))
    print(f"hardware: {hw}; total wall {wall:.0f} s")
    info = {"hardware": hw, "wall_s": wall, "args": vars(args), "summary": summary}
    (Path(args.out) / "bench.json").write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
