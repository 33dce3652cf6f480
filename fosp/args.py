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


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def seed(text: str) -> int:
    """A seed for numpy / torch / Python: 0 <= seed < 2**63."""
    value = _int(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63), got {value}")
    return value


def finite_float(text: str) -> float:
    return _float(text)


def positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def unit_interval(text: str) -> float:
    """A fraction in [0, 1)."""
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value:g}")
    return value


def open_fraction(text: str) -> float:
    """A fraction in (0, 1)."""
    value = _float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1), got {value:g}")
    return value


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
