"""`fosp sim collect` and `fosp dataset ...`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub, sim_sub) -> None:
    collect = sim_sub.add_parser(
        "collect", help="scripted operators collect a labelled dataset in the simulated world"
    )
    collect.add_argument("--task", default="train")
    collect.add_argument("--episodes", type=int, default=200)
    collect.add_argument(
        "--mix",
        choices=["paper"],
        default="paper",
        help="paper: 120/30/40/10 per 200 (FOSP App. D.1)",
    )
    collect.add_argument("--out", required=True, help="dataset folder (appended to / completed)")
    collect.add_argument("--seed", type=int, default=0)
    collect.add_argument(
        "--label-delay",
        type=int,
        default=2,
        help="simulated operator's reaction delay in control steps",
    )
    collect.set_defaults(func=_collect)

    dataset = sub.add_parser("dataset", help="inspect and check a dataset folder")
    ds_sub = dataset.add_subparsers(dest="dataset_command", required=True, metavar="DS_COMMAND")
    stats = ds_sub.add_parser("stats", help="category table, returns, reward-vs-cost plot")
    stats.add_argument("dir")
    stats.add_argument("--plot", help="where to write the scatter plot (default DIR/stats.png)")
    stats.set_defaults(func=_stats)
    validate = ds_sub.add_parser("validate", help="read every episode in full; list defects")
    validate.add_argument("dir")
    validate.set_defaults(func=_validate)
    index = ds_sub.add_parser("index", help="rebuild DIR/index.json from the episode files")
    index.add_argument("dir")
    index.set_defaults(func=_index)


def _collect(args: argparse.Namespace) -> int:
    from data_collection.scripted import collect_mix

    counts = collect_mix(
        args.out,
        task=args.task,
        episodes=args.episodes,
        seed=args.seed,
        label_delay=args.label_delay,
    )
    attempts = counts.pop("attempts")
    print(f"{args.out}: {counts} ({attempts} episodes simulated for the new ones)")
    return 0


def _require_dir(path: str) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise SystemExit(f"{root}: no such dataset folder")
    return root


def _stats(args: argparse.Namespace) -> int:
    from data_collection.dataset import Dataset
    from data_collection.stats import format_stats, plot_returns

    root = _require_dir(args.dir)
    summaries, errors = Dataset(root).index()
    print(format_stats(summaries))
    for err in errors:
        print(f"unreadable: {err}", file=sys.stderr)
    if summaries:
        out = plot_returns(summaries, args.plot or root / "stats.png")
        print(f"plot: {out}")
    return 1 if errors else 0


def _validate(args: argparse.Namespace) -> int:
    from data_collection.dataset import Dataset

    root = _require_dir(args.dir)
    dataset = Dataset(root)
    errors = dataset.validate()
    for err in errors:
        print(f"INVALID {err}")
    print(f"{len(dataset) - len(errors)} valid, {len(errors)} invalid episode files in {root}")
    return 1 if errors else 0


def _index(args: argparse.Namespace) -> int:
    from data_collection.dataset import Dataset

    summaries, errors = Dataset(_require_dir(args.dir)).rebuild_index()
    print(f"indexed {len(summaries)} episodes, {len(errors)} unreadable")
    return 1 if errors else 0
