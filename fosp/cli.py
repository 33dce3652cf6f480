"""`fosp`: one entry point, one subcommand per job. Each package registers its own commands."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from data_collection import cli as data_cli
    from policy import cli as policy_cli
    from robot import cli as robot_cli

    parser = argparse.ArgumentParser(
        prog="fosp",
        description="Safe offline-to-online RL (FOSP) on a Franka Panda or its MuJoCo stand-in: "
        "collect and label SafeReach episodes, train, finetune, evaluate.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sim_sub = robot_cli.register(sub)
    data_cli.register(sub, sim_sub)
    policy_cli.register(sub)
    demo = sub.add_parser("demo", help="the end-to-end job of `make demo`")
    demo.add_argument("--out", default="out/demo", help="output folder")
    demo.add_argument("--episodes", type=int, default=200, help="paper-mix dataset size")
    demo.add_argument("--dataset", help="reuse this dataset folder (skips collection)")
    demo.add_argument("--checkpoint", help="reuse this pretrained run (skips pretraining)")
    demo.add_argument("--pretrain-steps", type=int, default=1000, help="small preset steps")
    demo.add_argument("--task", default="unseen-1", help="unseen task to finetune on")
    demo.add_argument("--tests", type=int, default=20, help="test episodes before / after")
    demo.add_argument("--finetune-episodes", type=int, default=10)
    demo.add_argument("--updates-per-episode", type=int, default=20)
    demo.add_argument("--seed", type=int, default=10_000, help="first test episode's seed")
    demo.set_defaults(func=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from fosp.demo import run_demo

    return run_demo(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
