"""argparse types and a parser whose errors are one line: every `fosp` flag is checked where it
is parsed, before a command creates anything."""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2); subcommand
    parsers made from it are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` for usage)\n")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _checked(parse, ok, message: str, doc: str):
    """A flag type: `parse` the text, then refuse values where `ok` is false with `message`."""

    def check(text: str):
        value = parse(text)
        if not ok(value):
            shown = f"{value:g}" if isinstance(value, float) else f"{value}"
            raise argparse.ArgumentTypeError(f"{message}, got {shown}")
        return value

    check.__doc__ = doc
    return check


positive_int = _checked(_int, lambda v: v >= 1, "must be a positive integer", "An integer >= 1.")
non_negative_int = _checked(_int, lambda v: v >= 0, "must be >= 0", "An integer >= 0.")
seed = _checked(
    _int, lambda v: 0 <= v < 2**63, "must be in [0, 2**63)",
    "A seed for numpy / torch / Python: 0 <= seed < 2**63.",
)  # fmt: skip


def finite_float(text: str) -> float:
    return _float(text)


positive_float = _checked(_float, lambda v: v > 0, "must be > 0", "A float > 0.")
non_negative_float = _checked(_float, lambda v: v >= 0, "must be >= 0", "A float >= 0.")
unit_interval = _checked(_float, lambda v: 0 <= v < 1, "must be in [0, 1)", "A fraction in [0, 1).")
open_fraction = _checked(
    _float, lambda v: 0 < v < 1, "must be a fraction in (0, 1)", "A fraction in (0, 1)."
)


def task(text: str) -> str:
    """A packaged task name (robot/tasks/*.toml) or the path of a .toml task file."""
    from pathlib import Path

    from robot.task_spec import available_tasks

    if text.endswith(".toml"):
        if not Path(text).is_file():
            raise argparse.ArgumentTypeError(f"task file {text} not found")
        return text
    if text not in available_tasks():
        raise argparse.ArgumentTypeError(
            f"unknown task {text!r}; packaged tasks: {', '.join(available_tasks())}"
        )
    return text


def task_list(text: str) -> str:
    """Comma separated task names, each checked; returned as given."""
    names = [t for t in text.split(",") if t]
    if not names:
        raise argparse.ArgumentTypeError("no task given")
    for name in names:
        task(name)
    return text


def choice_list(*choices: str):
    """Comma separated values, each one of `choices`; returned as given."""

    def parse(text: str) -> str:
        values = [v for v in text.split(",") if v]
        if not values or any(v not in choices for v in values):
            raise argparse.ArgumentTypeError(
                f"{text!r}: choose from {', '.join(choices)} (comma separated)"
            )
        return text

    return parse


def say(command: str, message: str) -> None:
    """One error line on stderr, `fosp <command>: error: <message>`."""
    text = " ".join(str(message).split())
    print(f"fosp {command}: error: {text}", file=sys.stderr)
