"""Checkpoints written atomically (temp file + fsync + os.replace) and checked on load.

A run folder holds `config.json` (the resolved config), `checkpoint.pt` (latest) and
`metrics.jsonl` / TensorBoard events. A checkpoint carries the model, optimisers, Lagrangian
state, every RNG and the step, so `--resume` continues exactly where it stopped.
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path
from typing import Any

import torch

from policy.config import Config

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
DATASET_JSON = "dataset.json"
FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here (missing, corrupt, or from another config)."""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename itself durable
    finally:
        os.close(fd)


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
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} is not a valid config: {err}") from err


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run: str | Path, cfg: Config, payload: dict[str, Any]) -> Path:
    """payload: agent.full_state() + replay state; RNG states and the architecture are added."""
    buf = io.BytesIO()
    full = {"format": FORMAT, "architecture": cfg.architecture(), "rng": rng_state(), **payload}
    torch.save(full, buf)
    path = Path(run) / CHECKPOINT
    atomic_write_bytes(path, buf.getvalue())
    return path


def load(path: str | Path, cfg: Config | None = None, map_location="cpu") -> dict[str, Any]:
    """Load a checkpoint file (or the one in a run folder); with `cfg`, check it was made for the
    same architecture and name the first difference if not."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for a corrupt file
        raise CheckpointError(f"{path} is not a readable checkpoint: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a FOSP checkpoint (format {FORMAT})")
    if cfg is not None and state["architecture"] != cfg.architecture():
        diff = _first_difference(state["architecture"], cfg.architecture())
        raise CheckpointError(
            f"{path} was written for another config ({diff}); "
            "use the run's own config.json or start a new run"
        )
    return state


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
