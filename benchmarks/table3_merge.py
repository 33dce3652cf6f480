"""Pool Table 3 folders that ran different finetuning seeds into one table.

    .venv/bin/python benchmarks/table3_merge.py DIR [DIR ...] --out DIR

Table 3 at the paper's protocol runs for hours; its seeds are independent, so they can run as
separate processes (or machines), one slice each, with the same protocol flags:

    fosp eval table3 --checkpoint RUN ... --seeds 1 --first-seed 0 --out T/s0
    fosp eval table3 --checkpoint RUN ... --seeds 1 --first-seed 1 --out T/s1
    .venv/bin/python benchmarks/table3_merge.py T/s0 T/s1 --out T/all

The merged folder gets the same table3.md / .csv / _summary.csv / .png as one run over all the
seeds. With --across-checkpoints, folders made from different offline checkpoints (one
pretraining seed each, the same dataset and finetuning settings) pool into one table whose
intervals are across (checkpoint, finetuning seed) pairs, "before" across checkpoints; seeds.csv
says which pair each seed number is:

    .venv/bin/python benchmarks/table3_merge.py --across-checkpoints P1 P2 P3 --out T/all

Refused with a one-line error: a folder without a table3.csv, a corrupt row (file, line
and field named), a seed in two folders, or runs of one strategy and task made from different
checkpoints, datasets or finetuning settings (the field named).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy.table3 import Table3Error, merge, report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="`fosp eval table3 --out` folders")
    p.add_argument("--out", required=True, help="folder for the pooled table")
    p.add_argument(
        "--across-checkpoints",
        action="store_true",
        help="pool runs made from different offline checkpoints (one per pretraining seed)",
    )
    args = p.parse_args(argv)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"table3_merge: error: --out {args.out} is a file, not a folder", file=sys.stderr)
        return 2
    try:
        rows, summary = merge(args.folders, args.out, args.across_checkpoints)
    except Table3Error as err:
        print(f"table3_merge: error: {err}", file=sys.stderr)
        return 2
    print(report(rows, summary, shared_before=not args.across_checkpoints))
    extra = ", seeds.csv" if args.across_checkpoints else ""
    print(f"written: {args.out}/table3.md, table3.csv, table3_summary.csv, table3.png{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
