"""Shared fixtures of the collection tests: the scripted operator wired into `fosp collect`,
small datasets, and process helpers (Xvfb, roscore) that are always stopped by PID."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # fake_hid, scripted_ui, xhelpers (importlib import mode)


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
