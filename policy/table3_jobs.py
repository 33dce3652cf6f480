"""Table 3's protocol as independent units, several processes at once (`--jobs N`).

A unit is one (task, finetuning seed, strategy): a `run_table3` of that slice in
OUT/units/TASK_sSEED_STRATEGY, in a fresh process with its own torch threads (cores // N unless
FOSP_THREADS says), its output in the unit's .log beside the folder. A finished unit (its
table3.csv written) is skipped and an unfinished one resumes its finetune run, so an interrupted
protocol continues where it stopped. The units' folders are pooled by `merge` into OUT, the same
table3.md / .csv / .png as one process over everything (units.csv adds each unit's wall time).
"""

from __future__ import annotations

import csv
import dataclasses
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from policy.config import FinetuneConfig, Table3Config
from policy.table3 import Row, Table3Error, merge, run_table3


def unit_folder(out: str | Path, task: str, seed: int, strategy: str) -> Path:
    return Path(out) / "units" / f"{task}_s{seed}_{strategy}"


def units(protocol: Table3Config) -> list[tuple[str, int, str]]:
    """Task-major, so a partly run protocol has whole tasks' worth of seeds and strategies."""
    return [
        (task, seed, strategy)
        for task in protocol.task_names
        for seed in protocol.seed_ids
        for strategy in protocol.strategy_names
    ]


def threads_per_job(jobs: int) -> int:
    """FOSP_THREADS if set, else the cores shared out: N jobs never oversubscribe them."""
    told = os.environ.get("FOSP_THREADS", "")
    if told.isdigit() and int(told) > 0:
        return int(told)
    return max(1, (os.cpu_count() or 1) // jobs)


def _run_unit(
    checkpoint: str, dataset: str, folder: Path, protocol: Table3Config,
    fcfg: FinetuneConfig, threads: int,
) -> float:  # fmt: skip
    """In the child process: one unit, everything it prints appended to its log."""
    import torch

    os.environ["FOSP_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    start = time.perf_counter()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_suffix(".log"), "a", buffering=1) as log:
        with redirect_stdout(log), redirect_stderr(log):
            run_table3(checkpoint, dataset, folder, protocol, fcfg, log=print)
    return time.perf_counter() - start


def run_units(
    checkpoint: str | Path,
    dataset: str | Path,
    out: str | Path,
    protocol: Table3Config,
    fcfg: FinetuneConfig | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[Row], list[dict]]:
    """The protocol in `protocol.jobs` processes (`run_table3` calls this when jobs > 1);
    returns `merge`'s rows and summary."""
    from policy.train import load_agent

    out, fcfg = Path(out), fcfg or FinetuneConfig()
    load_agent(checkpoint)  # a bad checkpoint: one error here, not one per unit
    every = units(protocol)
    todo = [u for u in every if not (unit_folder(out, *u) / "table3.csv").is_file()]
    threads = threads_per_job(protocol.jobs)
    log(
        f"table3: {len(every)} units (task x seed x strategy), {len(every) - len(todo)} finished "
        f"earlier; {len(todo)} to run, {protocol.jobs} at a time with {threads} torch "
        f"thread(s) each; logs in {out / 'units'}"
    )
    walls: dict[tuple, float] = {}
    failed: list[tuple[tuple, str]] = []
    # spawn: a fresh interpreter per unit (no forked torch threads; memory returned after each)
    pool = ProcessPoolExecutor(
        protocol.jobs, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=1
    )
    with pool:
        one = dataclasses.replace(protocol, tasks="", seeds=1, strategies="", jobs=1)
        futures = {
            pool.submit(
                _run_unit, str(checkpoint), str(dataset), unit_folder(out, *u),
                dataclasses.replace(one, tasks=u[0], first_seed=u[1], strategies=u[2]),
                fcfg, threads,
            ): u
            for u in todo
        }  # fmt: skip
        for done, future in enumerate(as_completed(futures), start=1):
            unit = futures[future]
            name = unit_folder(out, *unit).name
            try:
                walls[unit] = future.result()
            except Exception as err:  # noqa: BLE001 - one unit's failure must not stop the rest
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                failed.append((unit, reason))
                log(f"[{done}/{len(todo)}] {name} failed: {reason} (log: {name}.log)")
                continue
            log(f"[{done}/{len(todo)}] {name} finished in {walls[unit]:.0f} s")
    if failed:
        unit, reason = failed[0]
        first = unit_folder(out, *unit)
        raise Table3Error(
            f"{len(failed)} of {len(todo)} units failed, first {first.name}: {reason} (see "
            f"{first.with_suffix('.log')}); rerun the same command to resume"
        )
    rows, summary = merge([unit_folder(out, *u) for u in every], out)
    _write_walls(out, every, walls)
    return rows, summary


def _write_walls(out: Path, every: list[tuple], walls: dict[tuple, float]) -> None:
    """units.csv: each unit's wall time in this invocation (empty: finished earlier)."""
    with open(out / "units.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task", "seed", "strategy", "wall_s", "folder"])
        for u in every:
            wall = f"{walls[u]:.1f}" if u in walls else ""
            w.writerow([*u, wall, unit_folder(out, *u).relative_to(out)])
