"""`fosp`: one entry point, one subcommand per job. Each package registers its own commands."""

from __future__ import annotations

import argparse
import sys

from fosp import args as types
from fosp.config_flags import add_flags
from fosp.demo import DemoConfig
from fosp.errors import UserError

# Error types of other packages that mean a user mistake: (module, class). Looked up only in
# modules already imported (an error cannot come from a module that was never loaded).
_FOREIGN_USER_ERRORS = (
    ("policy.replay", "ReplayError"),
    ("robot.task_spec", "TaskSpecError"),
    ("robot.errors", "ArmOutsideBox"),
)


def build_parser() -> argparse.ArgumentParser:
    from data_collection import cli as data_cli
    from policy import cli as policy_cli
    from robot import cli as robot_cli

    parser = types.Parser(
        prog="fosp",
        description="Safe offline-to-online RL (FOSP) on a Franka Panda or its MuJoCo stand-in: "
        "collect and label SafeReach episodes, train, finetune, evaluate.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sim_sub = robot_cli.register(sub)
    data_cli.register(sub, sim_sub, model_suggester=policy_cli.label_suggestions)
    policy_cli.register(sub)
    demo = sub.add_parser("demo", help="the end-to-end job of `make demo`")
    demo.add_argument("--out", default="out/demo", help="output folder")
    demo.add_argument("--dataset", help="reuse this dataset folder (skips collection)")
    demo.add_argument("--checkpoint", help="reuse this pretrained run (skips pretraining)")
    add_flags(demo.add_argument_group("budget (DemoConfig, fosp/demo.py)"), DemoConfig)
    demo.set_defaults(func=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from fosp.demo import run_demo

    return run_demo(args)


def is_user_error(err: BaseException) -> bool:
    """A mistake in the input (shown as one line), as opposed to a bug (keeps its traceback)."""
    if isinstance(err, UserError):
        return True
    for module, name in _FOREIGN_USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(err, cls):
            return True
    return False


def command_name(args: argparse.Namespace) -> str:
    parts = [args.command]
    for sub in ("sim_command", "dataset_command"):
        if getattr(args, sub, None):
            parts.append(getattr(args, sub))
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if not is_user_error(err):
            raise
        types.say(command_name(args), str(err))
        return 2


if __name__ == "__main__":
    sys.exit(main())
