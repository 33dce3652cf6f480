"""One episode per file: the on-disk format every tool reads through `read_episode`.

Step alignment (DreamerV3's convention; docs/dataset.md has the table): an episode of T actions
is stored as T + 1 rows. Row i holds observation i, the reward and cost *received on arriving* at
observation i (the result of action i - 1; row 0 has 0), and action i, the action *taken at*
observation i (the last row's action is all zeros and never executed). is_first marks row 0,
is_last the final row, is_terminal a true end of the task (never in SafeReach: episodes end by
the time limit only).

Files are .npz (NumPy zip) written to a hidden temporary name, flushed, fsynced and renamed into
place, so a crash never leaves a partial episode under a valid name.
"""

from __future__ import annotations

import json
import math
import secrets
import tokenize
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from fosp.errors import UserError
from fosp.files import atomic_write, mkdir

SCHEMA_VERSION = 2  # 2: the optional per-step `actor` and `contact_force`
READABLE_VERSIONS = (1, 2)  # a version-1 file has no `actor`: the policy acted (or a person
# collected it), exactly what it meant when written
SUFFIX = ".npz"
LABEL_SOURCES = ("manual", "simulated-operator", "oracle", "imported")
IMAGE_SHAPE = (64, 64, 3)

# field -> (dtype, shape after the leading step axis)
STEP_FIELDS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "image": (np.dtype(np.uint8), IMAGE_SHAPE),
    "pose": (np.dtype(np.float32), (6,)),
    "action": (np.dtype(np.float32), (6,)),
    "reward": (np.dtype(np.float32), ()),
    "cost": (np.dtype(np.float32), ()),
    "is_first": (np.dtype(bool), ()),
    "is_last": (np.dtype(bool), ()),
    "is_terminal": (np.dtype(bool), ()),
}
# Optional per-step fields: the ground truth beside the labels, when a simulator knows it; who
# executed row i's action when an operator could take over (ACTOR_POLICY / ACTOR_OPERATOR); the
# largest external contact force (N) measured on arriving at row i (sim: robot-obstacle contact;
# franka: |O_F_ext_hat_K| force part), evidence for suggested cost labels.
OPTIONAL_FIELDS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "oracle_reward": (np.dtype(np.float32), ()),
    "oracle_cost": (np.dtype(np.float32), ()),
    "actor": (np.dtype(np.uint8), ()),
    "contact_force": (np.dtype(np.float32), ()),
    "label_origin": (np.dtype(np.uint8), ()),
}
# label_origin per row (schema 2, written by the labeller): where its labels came from
ORIGIN_RECORDED, ORIGIN_MANUAL, ORIGIN_ACCEPTED = 0, 1, 2  # as recorded / edited / suggested
ACTOR_POLICY, ACTOR_OPERATOR = 0, 1
ACTOR_NAMES = ("policy", "operator")
REQUIRED_METADATA = ("schema_version", "task", "layout_seed", "control_hz", "label_source")
# Label bounds (docs/dataset.md "Validation"): SafeReach labels are 0 or 1 per step, and FOSP's
# upper bounds (r_max = c_max = 1) assume it; a value outside [0, 1] is a defect of the file.
LABEL_RANGE = (0.0, 1.0)
LABEL_FIELDS = ("reward", "cost", "oracle_reward", "oracle_cost")
MAX_LAYOUT_SEED = 2**63 - 1
MAX_CONTROL_HZ = 10_000.0
# Everything numpy (and Python's tokenizer under it, for the .npy header) raises for a damaged
# member: a NUL byte in a header is ValueError on Python 3.11.2, SyntaxError or
# tokenize.TokenError on 3.11.7 / 3.12; a header claiming a huge shape is MemoryError.
PARSE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    SyntaxError,
    tokenize.TokenError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    MemoryError,
    UnicodeError,
)


class EpisodeFormatError(UserError, ValueError):
    """An episode file that cannot be used. Names the file and, where known, the field."""

    def __init__(self, path: str | Path, field: str | None, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        where = f" field '{field}'" if field else ""
        super().__init__(f"{path}:{where} {problem}")


@dataclass
class Episode:
    steps: dict[str, np.ndarray]  # STEP_FIELDS (+ OPTIONAL_FIELDS), each with N = T + 1 rows
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        """Number of rows (observations), T + 1."""
        return len(self.steps["reward"])

    @property
    def num_actions(self) -> int:
        return len(self) - 1

    @property
    def success(self) -> bool:
        return bool(self.steps["reward"].max(initial=0) > 0)

    @property
    def violation(self) -> bool:
        return bool(self.steps["cost"].max(initial=0) > 0)

    @property
    def category(self) -> str:
        return category_name(safe=not self.violation, success=self.success)

    @property
    def operator_steps(self) -> np.ndarray:
        """Per action (T): True where the operator, not the policy, executed it."""
        actor = self.steps.get("actor")
        if actor is None:
            return np.zeros(self.num_actions, bool)
        return actor[:-1] == ACTOR_OPERATOR

    @property
    def interventions(self) -> int:
        """Takeovers: runs of operator steps."""
        op = self.operator_steps.astype(np.int8)
        return int(np.sum(np.diff(op, prepend=0) == 1))

    @property
    def intervention_rate(self) -> float:
        """Share of the actions the operator executed."""
        return float(self.operator_steps.mean()) if self.num_actions else 0.0


def category_name(*, safe: bool, success: bool) -> str:
    return f"{'safe' if safe else 'unsafe'}+{'success' if success else 'fail'}"


CATEGORIES = tuple(category_name(safe=s, success=k) for s in (True, False) for k in (True, False))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class EpisodeBuilder:
    """Collects an episode step by step in the stored alignment.

    builder = EpisodeBuilder(metadata); builder.start(obs)
    for each step: builder.add(action, reward, cost, next_obs)   # labels of that action
    episode = builder.finish()
    """

    def __init__(self, metadata: dict[str, Any]):
        self.metadata = {"schema_version": SCHEMA_VERSION, "started_at": now_iso(), **metadata}
        self._rows: dict[str, list] = {k: [] for k in STEP_FIELDS}
        self._oracle: dict[str, list] = {"oracle_reward": [], "oracle_cost": []}
        self._actor: list[int] = []  # per action; stored only when someone could take over
        self.records_actor = False
        self._force: list[float | None] = [0.0]  # per row; stored when every step measured one

    def start(self, obs: dict[str, np.ndarray]) -> None:
        if self._rows["image"]:
            raise RuntimeError("EpisodeBuilder.start called twice")
        self._append_obs(obs, reward=0.0, cost=0.0, first=True, oracle=(0.0, 0.0))

    def add(
        self,
        action: np.ndarray,
        reward: float,
        cost: float,
        next_obs: dict[str, np.ndarray],
        oracle: tuple[float, float] | None = None,
        actor: int | None = None,
        force: float | None = None,
    ) -> None:
        """`actor`: ACTOR_POLICY or ACTOR_OPERATOR when a takeover was possible (None: no
        `actor` field, as before); `force`: the contact force (N) measured during the action."""
        if not self._rows["image"]:
            raise RuntimeError("EpisodeBuilder.add before start")
        if actor is not None:
            self.records_actor = True
        self._actor.append(ACTOR_POLICY if actor is None else int(actor))
        self._force.append(None if force is None else float(force))
        self._rows["action"].append(np.asarray(action, np.float32))
        self._append_obs(next_obs, reward, cost, first=False, oracle=oracle)

    @property
    def num_actions(self) -> int:
        return len(self._rows["action"])

    def column(self, field: str) -> np.ndarray | None:
        """The rows so far of a step field or of oracle_reward / oracle_cost (None while some
        row's truth is unknown)."""
        if field in self._oracle:
            rows = self._oracle[field]
            return None if any(v is None for v in rows) else np.asarray(rows, np.float32)
        return np.asarray(self._rows[field])

    def finish(self, *, terminal: bool = False, status: str = "complete") -> Episode:
        if not self._rows["image"]:
            raise RuntimeError("empty episode")
        actions = [*self._rows["action"], np.zeros(6, np.float32)]
        n = len(self._rows["image"])
        steps = {
            "image": np.stack(self._rows["image"]).astype(np.uint8),
            "pose": np.stack(self._rows["pose"]).astype(np.float32),
            "action": np.stack(actions).astype(np.float32),
            "reward": np.asarray(self._rows["reward"], np.float32),
            "cost": np.asarray(self._rows["cost"], np.float32),
            "is_first": np.arange(n) == 0,
            "is_last": np.arange(n) == n - 1,
            "is_terminal": (np.arange(n) == n - 1) & terminal,
        }
        if all(v is not None for v in self._oracle["oracle_reward"]):
            for k, v in self._oracle.items():
                steps[k] = np.asarray(v, np.float32)
        if len(self._force) > 1 and all(f is not None for f in self._force):
            steps["contact_force"] = np.asarray(self._force, np.float32)
        if self.records_actor:  # the last row's action was never executed: the policy's zeros
            steps["actor"] = np.asarray([*self._actor, ACTOR_POLICY], np.uint8)
        metadata = {**self.metadata, "finished_at": now_iso(), "status": status}
        metadata.setdefault("episode_id", secrets.token_hex(4))
        return Episode(steps, metadata)

    def _append_obs(self, obs, reward, cost, first, oracle) -> None:
        self._rows["image"].append(np.asarray(obs["image"], np.uint8))
        self._rows["pose"].append(np.asarray(obs["pose"], np.float32))
        self._rows["reward"].append(float(reward))
        self._rows["cost"].append(float(cost))
        self._oracle["oracle_reward"].append(None if oracle is None else float(oracle[0]))
        self._oracle["oracle_cost"].append(None if oracle is None else float(oracle[1]))


def episode_filename(metadata: dict[str, Any]) -> str:
    """Sortable, unique: episode-<UTC start time>-<id>.npz"""
    stamp = str(metadata.get("started_at", now_iso()))
    compact = stamp.replace("-", "").replace(":", "").replace("+0000", "").split(".")[0]
    return f"episode-{compact}-{metadata.get('episode_id', secrets.token_hex(4))}{SUFFIX}"


def _writer(episode: Episode):
    payload = dict(episode.steps)
    payload["metadata"] = np.asarray(json.dumps(episode.metadata, sort_keys=True))
    return lambda f: np.savez_compressed(f, **payload)


def write_episode(episode: Episode, directory: str | Path, filename: str | None = None) -> Path:
    """Validate and write atomically; returns the final path. Never overwrites a file. A failed
    write (disk full) removes its temporary file and raises WriteError naming the path."""
    directory = mkdir(directory)
    name = filename or episode_filename(episode.metadata)
    final = directory / name
    validate_episode(episode, final)
    if final.exists():
        raise FileExistsError(f"{final} exists; episodes are never overwritten")
    return atomic_write(final, _writer(episode))


def replace_episode(episode: Episode, path: str | Path) -> Path:
    """Atomically rewrite an existing episode file (e.g. after relabelling)."""
    path = Path(path)
    validate_episode(episode, path)
    return atomic_write(path, _writer(episode))


def read_episode(path: str | Path) -> Episode:
    """The one reader. Raises EpisodeFormatError naming the file and the field on any defect."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        try:
            target = path.readlink()
        except OSError:
            target = "?"
        problem = "symbolic link loop" if _is_loop(path) else f"dangling symbolic link to {target}"
        raise EpisodeFormatError(path, None, problem)
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = set(archive.files)
            if "metadata" not in names:
                raise EpisodeFormatError(path, "metadata", "missing")
            steps = {}
            for name in (*STEP_FIELDS, *OPTIONAL_FIELDS):
                if name in names:
                    steps[name] = _load_field(archive, name, path)
                elif name in STEP_FIELDS:
                    raise EpisodeFormatError(path, name, "missing")
            raw_meta = _load_field(archive, "metadata", path)
    except EpisodeFormatError:
        raise
    except FileNotFoundError:
        raise
    except PARSE_ERRORS as err:
        raise EpisodeFormatError(
            path, None, f"not a readable episode file ({_one_line(err)})"
        ) from err
    try:
        if raw_meta.shape != () or raw_meta.dtype.kind != "U":
            raise ValueError(f"a {raw_meta.dtype} array of shape {raw_meta.shape}, not a string")
        metadata = json.loads(str(raw_meta))
    except (ValueError, RecursionError) as err:
        raise EpisodeFormatError(path, "metadata", f"not valid JSON ({err})") from err
    if not isinstance(metadata, dict):
        raise EpisodeFormatError(path, "metadata", "must be a JSON object")
    episode = Episode(steps, metadata)
    validate_episode(episode, path)
    return episode


def _load_field(archive, name: str, path: Path) -> np.ndarray:
    try:
        return archive[name]
    except PARSE_ERRORS as err:
        problem = f"unreadable (truncated or corrupt: {_one_line(err)})"
        raise EpisodeFormatError(path, name, problem) from err


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _is_loop(path: Path) -> bool:
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python 3.11: "Symlink loop"
        return True
    except OSError as err:
        return err.errno == 40  # ELOOP
    return False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _validate_metadata(meta: dict[str, Any], path: str | Path) -> None:
    for key in REQUIRED_METADATA:
        if key not in meta:
            raise EpisodeFormatError(path, f"metadata.{key}", "missing")
    version = meta["schema_version"]
    if not _is_int(version) or version not in READABLE_VERSIONS:
        raise EpisodeFormatError(
            path,
            "metadata.schema_version",
            f"is {version!r}, this reader understands {', '.join(map(str, READABLE_VERSIONS))}",
        )
    if not isinstance(meta["task"], str) or not meta["task"]:
        raise EpisodeFormatError(path, "metadata.task", f"{meta['task']!r} is not a task name")
    seed = meta["layout_seed"]
    if not _is_int(seed) or not 0 <= seed <= MAX_LAYOUT_SEED:
        raise EpisodeFormatError(
            path, "metadata.layout_seed", f"{seed!r} is not an integer in [0, 2**63 - 1]"
        )
    hz = meta["control_hz"]
    if not _is_number(hz) or not 0 < hz <= MAX_CONTROL_HZ:
        raise EpisodeFormatError(
            path, "metadata.control_hz", f"{hz!r} is not a rate in (0, {MAX_CONTROL_HZ:g}] Hz"
        )
    if not isinstance(meta["label_source"], str) or meta["label_source"] not in LABEL_SOURCES:
        raise EpisodeFormatError(
            path, "metadata.label_source", f"{meta['label_source']!r} not in {LABEL_SOURCES}"
        )
    for key in ("status", "episode_id", "operator", "env", "started_at", "finished_at"):
        if key in meta and not isinstance(meta[key], str):
            raise EpisodeFormatError(path, f"metadata.{key}", f"{meta[key]!r} is not a string")
    if "label_delay_steps" in meta:
        delay = meta["label_delay_steps"]
        if not _is_int(delay) or delay < 0:
            raise EpisodeFormatError(
                path, "metadata.label_delay_steps", f"{delay!r} is not a non-negative integer"
            )


def validate_episode(episode: Episode, path: str | Path = "<memory>") -> None:
    """Schema, shapes, dtypes, finiteness and flag consistency; raises EpisodeFormatError."""
    if not isinstance(episode.metadata, dict):
        raise EpisodeFormatError(path, "metadata", "must be a JSON object")
    _validate_metadata(episode.metadata, path)
    steps = episode.steps
    n = None
    for name, (dtype, shape) in {**STEP_FIELDS, **OPTIONAL_FIELDS}.items():
        if name not in steps:
            if name in STEP_FIELDS:
                raise EpisodeFormatError(path, name, "missing")
            continue
        arr = steps[name]
        if arr.dtype != dtype:
            raise EpisodeFormatError(path, name, f"dtype {arr.dtype}, expected {dtype}")
        if arr.ndim != 1 + len(shape) or arr.shape[1:] != shape:
            raise EpisodeFormatError(
                path, name, f"shape {arr.shape}, expected (steps, {', '.join(map(str, shape))})"
            )
        n = len(arr) if n is None else n
        if len(arr) != n:
            raise EpisodeFormatError(path, name, f"has {len(arr)} rows, other fields have {n}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise EpisodeFormatError(path, name, "contains NaN or Inf")
    if n is None or n < 2:
        raise EpisodeFormatError(path, "reward", f"needs at least 2 rows, has {n}")
    if not steps["is_first"][0] or steps["is_first"][1:].any():
        raise EpisodeFormatError(path, "is_first", "must be true on row 0 only")
    if not steps["is_last"][-1] or steps["is_last"][:-1].any():
        raise EpisodeFormatError(path, "is_last", "must be true on the final row only")
    if steps["is_terminal"][:-1].any():
        raise EpisodeFormatError(path, "is_terminal", "may only be true on the final row")
    lo, hi = LABEL_RANGE
    for name in LABEL_FIELDS:
        if name in steps and ((steps[name] < lo) | (steps[name] > hi)).any():
            row = int(np.flatnonzero((steps[name] < lo) | (steps[name] > hi))[0])
            raise EpisodeFormatError(
                path, name, f"row {row} is {steps[name][row]:g}, outside [{lo:g}, {hi:g}]"
            )
    for name in ("reward", "cost"):
        if steps[name][0] != 0:
            raise EpisodeFormatError(path, name, "row 0 must be 0 (no action led to it)")
    if "contact_force" in steps:
        if episode.metadata["schema_version"] < 2:
            raise EpisodeFormatError(path, "contact_force", "needs metadata.schema_version 2")
        if (steps["contact_force"] < 0).any() or steps["contact_force"][0] != 0:
            raise EpisodeFormatError(path, "contact_force", "must be >= 0 N, 0 on row 0")
    if "label_origin" in steps:
        if episode.metadata["schema_version"] < 2:
            raise EpisodeFormatError(path, "label_origin", "needs metadata.schema_version 2")
        if (steps["label_origin"] > ORIGIN_ACCEPTED).any():
            raise EpisodeFormatError(path, "label_origin", "values are 0, 1 or 2")
    if "actor" in steps:
        if episode.metadata["schema_version"] < 2:
            raise EpisodeFormatError(path, "actor", "needs metadata.schema_version 2")
        bad = np.flatnonzero(steps["actor"] > ACTOR_OPERATOR)
        if len(bad):
            raise EpisodeFormatError(
                path, "actor", f"row {int(bad[0])} is {steps['actor'][bad[0]]}, not 0 or 1"
            )
        if steps["actor"][-1] != ACTOR_POLICY:
            raise EpisodeFormatError(path, "actor", "the last row's action is never executed: 0")
    if np.abs(steps["action"]).max(initial=0) > 1.0 + 1e-6:
        raise EpisodeFormatError(path, "action", "outside [-1, 1]")
