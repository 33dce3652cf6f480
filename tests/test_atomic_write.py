"""fosp.files.atomic_write, the one atomic write of the stack (episodes, dataset index and
manifests, checkpoints, run metadata, results): never a half-written target, the temporary file
removed on any failure, the file fsynced before and the folder after the rename, the original
file intact when a write fails."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

import fosp.files
from fosp.errors import WriteError
from fosp.files import atomic_write, atomic_write_bytes

OLD = b"the original, complete content\n"
NEW = b"0123456789" * 1000


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def target(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(OLD)
    return path


def test_the_target_is_never_half_written(target):
    seen_meanwhile = []

    def write(f) -> None:
        f.write(NEW[: len(NEW) // 2])
        f.flush()
        seen_meanwhile.append(target.read_bytes())  # a reader in the middle of the write
        f.write(NEW[len(NEW) // 2 :])

    atomic_write(target, write)
    assert seen_meanwhile == [OLD]  # the old file, whole, until the new one replaced it
    assert target.read_bytes() == NEW
    assert _listing(target.parent) == [target.name]  # no temporary file left


@pytest.mark.parametrize("error", [ValueError("a bug in the writer"), KeyboardInterrupt()])
def test_a_writer_that_raises_leaves_the_original_and_no_temporary_file(target, error):
    def write(f) -> None:
        f.write(NEW[:100])
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, write)
    assert target.read_bytes() == OLD
    assert _listing(target.parent) == [target.name]


def test_a_full_disk_is_a_write_error_naming_the_path(target):
    def write(f) -> None:
        f.write(NEW[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(WriteError, match="no space left") as err:
        atomic_write(target, write)
    assert str(target) in str(err.value)
    assert target.read_bytes() == OLD
    assert _listing(target.parent) == [target.name]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_fsync_or_rename_keeps_the_original(target, monkeypatch, failing):
    def broken(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(fosp.files.os, failing, broken)
    with pytest.raises(WriteError, match="cannot write"):
        atomic_write_bytes(target, NEW)
    assert target.read_bytes() == OLD
    assert _listing(target.parent) == [target.name]


def _record_fsyncs(monkeypatch, target: Path) -> list[tuple[str, bytes]]:
    """Patch os.fsync: each call records what was synced (the folder or a file) and what the
    target held at that moment."""
    calls: list[tuple[str, bytes]] = []
    real_fsync = os.fsync
    folder_inode = target.parent.stat().st_ino

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            kind = "folder" if info.st_ino == folder_inode else "another folder"
        else:
            kind = "file"
        calls.append((kind, target.read_bytes() if target.exists() else b""))
        real_fsync(fd)

    monkeypatch.setattr(fosp.files.os, "fsync", fsync)
    return calls


def test_the_file_is_fsynced_before_and_the_folder_after_the_rename(target, monkeypatch):
    calls = _record_fsyncs(monkeypatch, target)
    atomic_write_bytes(target, NEW)
    # the data is on disk before the name points at it; the new name is on disk after
    assert calls == [("file", OLD), ("folder", NEW)]


def test_a_new_file_without_overwrite(tmp_path, monkeypatch):
    path = tmp_path / "episode.npz"
    calls = _record_fsyncs(monkeypatch, path)
    atomic_write_bytes(path, NEW, overwrite=False)
    assert path.read_bytes() == NEW and calls == [("file", b""), ("folder", NEW)]
    # the name is taken now: never replaced, the temporary file removed
    with pytest.raises(FileExistsError):
        atomic_write_bytes(path, b"other", overwrite=False)
    assert path.read_bytes() == NEW
    assert _listing(tmp_path) == [path.name]
