"""Shared fixtures of the collection tests: the scripted operator wired into `fosp collect`,
small datasets, and process helpers (Xvfb, roscore) that are always stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # fake_hid, scripted_ui, xhelpers (importlib import mode)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 10.0) -> None:
    """Signal the process we started, wait, then SIGKILL its own process group (created with
    start_new_session, so its id is that PID)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=5)


@pytest.fixture
def run_collect(monkeypatch):
    """run_collect(ui, clock, argv) -> exit code of `fosp collect ...` with the scripted UI in
    place of the OpenCV window and `clock` in place of the real one."""
    from data_collection.teleop import base, window

    def run(ui, clock, argv: list[str]) -> int:
        from fosp.cli import main

        monkeypatch.setattr(window, "CvWindow", lambda title: ui)
        monkeypatch.setattr(base, "RealClock", lambda: clock)
        return main(["collect", *argv])

    return run
