"""Checkpoints written atomically (temp file + fsync + os.replace) and checked on load.

A run folder holds `config.json` (the resolved config), `checkpoint.pt` (latest) and
`metrics.jsonl` / TensorBoard events. A checkpoint carries the model, optimisers, Lagrangian
state, every RNG and the step, so `--resume` continues exactly where it stopped.

A checkpoint holds only tensors and plain containers (dicts, lists, tuples, numbers, strings) and
is loaded with `torch.load(..., weights_only=True)`: a file with any other Python object (a pickle
payload that would run code) is refused, never executed. The keys a use needs are checked on load
and a missing one is named.
"""

from __future__ import annotations

import io
import json
import pickle
import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from fosp.errors import UserError
from fosp.files import PARTIAL, partial_name
from fosp.files import atomic_write_bytes as _atomic_write_bytes
from policy.config import LEGACY_AGENT, AgentConfig, Config, ModelConfig

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
DATASET_JSON = "dataset.json"
FORMAT = 2  # 2: two-hot critics, slow copies, behaviour RNG (issue 10)

# What each use of a checkpoint reads from it (dotted: nested keys); a missing one is named.
AGENT_KEYS = (
    "architecture",
    "agent",
    "agent.modules",
    "agent.optimizers",
    "agent.lagrangian",
    "agent.step",
    "agent.behaviour_rng",
    "agent.behaviour_steps",
)
TRAINING_KEYS = (*AGENT_KEYS, "rng", "rng.python", "rng.torch", "replay", "replay.generator")
FINETUNE_KEYS = (*TRAINING_KEYS, "expansion", "expansion.generator", "applied")


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used here (missing, corrupt, unsafe, or from another
    config)."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Atomic write (fosp.files); the folder is created. Failure: WriteError naming the path."""
    from fosp.files import mkdir

    mkdir(Path(path).parent)
    _atomic_write_bytes(path, data)


def write_config(run: str | Path, cfg: Config) -> None:
    text = json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(Path(run) / CONFIG, text.encode())


def write_trained_on(run: str | Path, dataset: str | Path) -> None:
    """Record the dataset a run was trained on, so finetuning can default to it."""
    payload = {"dataset": str(Path(dataset).resolve())}
    atomic_write_bytes(Path(run) / DATASET_JSON, (json.dumps(payload) + "\n").encode())


def trained_on(run: str | Path) -> str | None:
    """The dataset folder `fosp train` recorded for this run (None for older runs)."""
    try:
        return json.loads((Path(run) / DATASET_JSON).read_text())["dataset"]
    except (OSError, ValueError, KeyError):
        return None


def read_config(run: str | Path) -> Config:
    path = Path(run) / CONFIG
    try:
        return Config.from_dict(json.loads(path.read_text()))
    except FileNotFoundError as err:
        raise CheckpointError(f"{path} not found: is {run} a training run folder?") from err
    except IsADirectoryError as err:
        raise CheckpointError(f"{path} is a folder, not a config file") from err
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror or err}") from err
    except (ValueError, KeyError, TypeError, AttributeError) as err:  # JSON, fields, types
        raise CheckpointError(f"{path} is not a valid config: {err!r}") from err


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]  # (version, 625 ints, gauss); tuples come back as saved
    random.setstate((python[0], tuple(python[1]), python[2]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def restoring(path: str | Path) -> Iterator[None]:
    """Around `load_state_dict` calls on a loaded checkpoint: a state that does not fit (wrong
    shapes, missing entries) becomes a one-line CheckpointError naming the file."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
        if isinstance(err, UserError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: cannot restore the saved state ({first})") from err


def save(run: str | Path, cfg: Config, payload: dict[str, Any]) -> Path:
    """payload: agent.full_state() + replay state; RNG states and the architecture are added."""
    buf = io.BytesIO()
    full = {"format": FORMAT, "architecture": cfg.architecture(), "rng": rng_state(), **payload}
    torch.save(full, buf)
    path = Path(run) / CHECKPOINT
    _remove_stale_partials(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _remove_stale_partials(path: Path) -> None:
    """A trainer killed mid-write (kill -9) leaves .checkpoint.pt.<pid>.partial behind; one run
    folder has one writer, so every other process's partial file is stale."""
    mine = partial_name(path).name
    for stale in path.parent.glob(f".{path.name}.*{PARTIAL}"):
        if stale.name != mine:
            stale.unlink(missing_ok=True)


def load(
    path: str | Path,
    cfg: Config | None = None,
    map_location="cpu",
    keys: tuple[str, ...] = AGENT_KEYS,
) -> dict[str, Any]:
    """Load a checkpoint file (or the one in a run folder) without running any code in it;
    check it has `keys` (dotted for nested ones) and, with `cfg`, that it was made for the same
    architecture (naming the first difference if not)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the file is refused anyway
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        rest = str(err).partition("WeightsUnpickler error:")[2].strip()
        detail = rest.splitlines()[0].strip() if rest else ""
        if "global" not in detail.lower():  # damaged bytes, not a forbidden object
            first = detail or " ".join(str(err).split()[:12])
            raise CheckpointError(f"{path} is not a readable checkpoint: {first}") from err
        raise CheckpointError(
            f"{path}: refused: it holds Python objects other than tensors and plain containers "
            "(a checkpoint may not run code; only load files you trust)"
        ) from err
    except Exception as err:  # torch raises many types for a corrupt file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint: {first}") from err
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is not a FOSP checkpoint (format {FORMAT})")
    if state["format"] != FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {state['format']!r}; this version reads format "
            f"{FORMAT} (retrain it with this version)"
        )
    for key in keys:
        node: Any = state
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise CheckpointError(f"{path}: missing key '{key}' (incomplete checkpoint)")
            node = node[part]
    if cfg is not None and _with_defaults(state["architecture"]) != cfg.architecture():
        arch = _with_defaults(state["architecture"])
        diff = _first_difference(arch, cfg.architecture()) if isinstance(arch, dict) else ""
        raise CheckpointError(
            f"{path} was written for another config ({diff or 'architecture'}); "
            "use the run's own config.json or start a new run"
        )
    return state


def _with_defaults(arch: Any) -> Any:
    """A stored architecture with the fields added since it was written at their defaults,
    as `read_config` fills them in an older config.json (the behaviour the run had then)."""
    if not isinstance(arch, dict):
        return arch
    out = dict(arch)
    for name, cls in (("model", ModelConfig), ("agent", AgentConfig)):
        if isinstance(arch.get(name), dict):
            legacy = LEGACY_AGENT if name == "agent" else {}
            out[name] = {**asdict(cls()), **legacy, **arch[name]}
    return out


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            found = _first_difference(x, y, f"{prefix}{key}.")
            if found:
                return found
        elif x != y:
            return f"{prefix}{key}: checkpoint {x!r} vs config {y!r}"
    return ""
