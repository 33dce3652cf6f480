"""Command-line flags generated from the typed configs (policy/config.py dataclasses).

Every field of a config dataclass becomes a flag: `--<prefix><name-with-dashes>`, typed by the
field's annotation, checked by its metadata (`check`: positive | non_negative | unit | seed,
`choices`), with the field's comment as its help. `values(args, cls, prefix)` gives back the
fields that were set, so a preset (the named base) is overridden by exactly what the command
line said, and the resolved config is written beside the run as before.

The standard library's argparse is enough (about 80 lines); tyro or simple-parsing would replace
the hand-made one-line errors that tests pin for every bad flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from functools import cache
from typing import Any

from fosp import args as types

_CHECKS = {
    ("int", None): types._int,
    ("int", "positive"): types.positive_int,
    ("int", "non_negative"): types.non_negative_int,
    ("int", "seed"): types.seed,
    ("float", None): types.finite_float,
    ("float", "positive"): types.positive_float,
    ("float", "non_negative"): types.non_negative_float,
    ("float", "unit"): types.unit_interval,
    ("str", None): str,
    ("str", "task"): types.task,
    ("str", "task_list"): types.task_list,
}
_FIELD = re.compile(r"^\s+(\w+)\s*:\s*[^=#]+(?:=[^#]*)?(?:#\s?(.*))?$")


@cache
def field_help(cls: type) -> dict[str, str]:
    """Each field's comment: the `#` lines right above it and the one on its line."""
    helps, pending = {}, []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# ").rstrip())
            continue
        match = _FIELD.match(line)
        if match and not stripped.startswith(("def ", '"""')):
            text = " ".join([*pending, match.group(2) or ""]).strip()
            helps[match.group(1)] = text.replace("%", "%%")  # argparse formats help with %
        pending = []
    return helps


def option(default: Any, **flag: Any) -> Any:
    """A config field whose flag (or ROS parameter) is checked: `choices=(...)` and/or `check=`
    positive | non_negative | unit | seed | task | task_list; `each_of=(...)`: a comma-separated
    list of those choices; `shown_default`: the default as the help text says it (when another
    flag sets it)."""
    return dataclasses.field(default=default, metadata=flag)


def check_choices(config: Any) -> None:
    """ValueError naming the first field of a config instance outside its `choices` (a config
    built in code, which no flag parser checked)."""
    for f in dataclasses.fields(config):
        allowed = f.metadata.get("choices")
        value = getattr(config, f.name)
        if allowed and value not in allowed:
            raise ValueError(f"{f.name} must be one of {allowed}, not {value!r}")


def _kind(f: dataclasses.Field) -> str:
    """The annotation's type name ("int | None" counts as int: unset stays None)."""
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    return kind.removesuffix(" | None")


def _converter(f: dataclasses.Field):
    """The checked flag type of a non-bool field (fosp/args.py), from its annotation + metadata."""
    if "each_of" in f.metadata:  # a comma-separated list of choices
        return types.choice_list(*f.metadata["each_of"])
    return _CHECKS[(_kind(f), f.metadata.get("check"))]


def _dest(prefix: str, name: str) -> str:
    return re.sub(r"\W", "_", prefix + name)


def flag(name: str, prefix: str = "") -> str:
    return "--" + (prefix + name).replace("_", "-")


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    prefix: str = "",
    skip: tuple[str, ...] = (),
    show_defaults: bool = True,
) -> None:
    """One flag per field of `cls`; unset flags stay None (`values` leaves them out)."""
    helps = field_help(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        text = helps.get(f.name, "")
        if show_defaults and f.default is not dataclasses.MISSING:
            text = f"{text} (default: {f.metadata.get('shown_default', f.default)})".strip()
        dest = _dest(prefix, f.name)
        if _kind(f) == "bool":
            parser.add_argument(
                flag(f.name, prefix), dest=dest, action=argparse.BooleanOptionalAction,
                default=None, help=text,
            )  # fmt: skip
            continue
        parser.add_argument(
            flag(f.name, prefix), dest=dest, type=_converter(f), default=None, help=text,
            choices=f.metadata.get("choices"), metavar=None if "choices" in f.metadata else "X",
        )  # fmt: skip


def values(args: argparse.Namespace, cls: type, prefix: str = "") -> dict[str, Any]:
    """The fields of `cls` the command line set."""
    out = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, _dest(prefix, f.name), None)
        if value is not None:
            out[f.name] = value
    return out


def from_params(cls: type, get: Any, where: str = "parameter ~") -> dict[str, Any]:
    """The fields of `cls` that a key-value source sets (a ROS node's private parameters:
    `get(name)` returns the value or None; "" counts as unset, so a launch file passes its
    args through without restating the defaults). Checked as the flags are; a bad value raises
    UserError naming the parameter."""
    from fosp.errors import UserError

    out = {}
    for f in dataclasses.fields(cls):
        value = get(f.name)
        if value is None or value == "":
            continue
        try:
            if _kind(f) == "bool":
                if isinstance(value, str) and value.lower() not in ("true", "false"):
                    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
                out[f.name] = value if isinstance(value, bool) else value.lower() == "true"
                continue
            converted = _converter(f)(str(value))
            choices = f.metadata.get("choices")
            if choices and converted not in choices:
                raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(choices)}")
        except (argparse.ArgumentTypeError, ValueError) as err:
            raise UserError(f"{where}{f.name}: {err}") from None
        out[f.name] = converted
    return out
