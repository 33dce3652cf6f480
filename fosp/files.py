"""Atomic file writes: a hidden temporary file in the same folder, flushed, fsynced, renamed (or
hard-linked) into place, the folder fsynced. On any failure the temporary file is removed and an
OSError becomes a `WriteError` naming the path (a full disk says so), so nothing half-written and
no temporary file is left behind to keep a disk full."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from fosp.errors import WriteError

PARTIAL = ".partial"


def partial_name(path: Path) -> Path:
    """The temporary name a write of `path` uses: .<name>.<pid>.partial (hidden, ignored)."""
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL}")


def atomic_write(
    path: str | Path, write: Callable[[BinaryIO], None], *, overwrite: bool = True
) -> Path:
    """Write `path` through `write(file)`. overwrite=False never replaces an existing file: it
    raises FileExistsError instead (the temporary file is hard-linked into place)."""
    path = Path(path)
    tmp = partial_name(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic and exclusive
        fsync_dir(path.parent)
    except FileExistsError:
        raise
    except OSError as err:
        raise WriteError(path, err) from err
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # e.g. the folder is read-only: then the file was never created
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, overwrite: bool = True) -> Path:
    return atomic_write(path, lambda f: f.write(data), overwrite=overwrite)


def fsync_dir(directory: str | Path) -> None:
    """Make a rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mkdir(path: str | Path) -> Path:
    """mkdir -p that reports a failure (a file in the way, no permission) as a WriteError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(path, err) from err
    return path
