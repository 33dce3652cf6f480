"""Keep a finished Table 3 folder's records in the repository, without its checkpoints and
episodes (~30 MB a unit): its tables, bench.json and each run's finetune.json and finetune.jsonl,
which is what `benchmarks/table3_merge.py` pools and what a learning curve is drawn from.

    .venv/bin/python benchmarks/table3_archive.py T/u1s0 --into benchmarks/results/table3/NAME/u1s0

The paper's protocol takes longer than one working session on two cores; archived units from
the same pretraining pool into one table with `table3_merge.py`, units from several
pretrainings with `table3_merge.py --across-checkpoints`. Refused with a one-line error: a
folder that is not a finished Table 3 output, or an `--into` that is a file or already holds
files; a refusal writes nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy.table3 import Table3Error, finetune_dir, read_rows  # noqa: E402

TABLE_FILES = ("table3.csv", "table3.md", "table3_summary.csv", "bench.json")
RUN_FILES = ("finetune.json", "finetune.jsonl")


def archive(folder: str | Path, into: str | Path) -> list[Path]:
    """Copy the records of `folder` (a finished `fosp eval table3` / table3_sim.py output) into
    `into`, at the same relative paths; returns the files written."""
    folder, into = Path(folder), Path(into)
    rows = read_rows(folder)  # refuses a folder without a readable table3.csv
    if into.exists() and not into.is_dir():
        raise Table3Error(f"--into {into} is a file, not a folder")
    if into.exists() and any(into.iterdir()):
        raise Table3Error(f"--into {into} already holds files: archive into an empty folder")
    wanted = [folder / name for name in TABLE_FILES if (folder / name).is_file()]
    runs = sorted({(r.strategy, r.seed, r.task) for r in rows if r.phase == "during"})
    for strategy, seed, task in runs:
        run = finetune_dir(folder, strategy, seed, task)
        if not (run / "finetune.json").is_file():
            raise Table3Error(f"{run}: no finetune.json (not a finished finetune run)")
        wanted += [run / name for name in RUN_FILES if (run / name).is_file()]
    written = []
    for path in wanted:
        target = into / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="a finished `fosp eval table3 --out` folder")
    p.add_argument("--into", required=True, help="an empty (or new) folder for its records")
    args = p.parse_args(argv)
    try:
        written = archive(args.folder, args.into)
    except Table3Error as err:
        print(f"table3_archive: error: {err}", file=sys.stderr)
        return 2
    size = sum(path.stat().st_size for path in written)
    print(f"archived {len(written)} files ({size / 1024:.0f} KiB) into {args.into}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
