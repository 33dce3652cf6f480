"""The operator's OpenCV window: show a frame, collect key presses for a while.

Recorder and labeler talk to an `OperatorUI`; `CvWindow` is the real one, tests pass their own.
The window needs a GUI build of OpenCV (opencv-python, pinned in requirements.lock; the headless
wheel has no HighGUI) and an X display (the operator's desktop, `ssh -X`, or Xvfb in tests).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Protocol

import numpy as np

from data_collection.teleop.keys import key_name


class OperatorUI(Protocol):
    def show(self, frame_bgr: np.ndarray, view: Any = None) -> None:
        """Draw a frame. `view` is the state it was drawn from (scripted operators read it)."""
        ...

    def keys(self, timeout_s: float) -> list[str]:
        """Key names pressed within `timeout_s` (at least one event-loop turn)."""
        ...

    def close(self) -> None: ...


class WindowError(RuntimeError):
    pass


class CvWindow:
    def __init__(self, title: str = "fosp"):
        import cv2

        if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
            raise WindowError(
                "no X display for the operator window (DISPLAY is unset): run it on the "
                "operator's desktop, over `ssh -X`, or under `xvfb-run` for tests"
            )
        self.cv2, self.title = cv2, title
        try:
            # GUI_NORMAL: no Qt toolbar/status bar, the frame is the whole window
            cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as err:
            raise WindowError(
                "this OpenCV has no GUI (the headless wheel?): install the pinned opencv-python "
                f"from requirements.lock (`bash scripts/bootstrap.sh`). OpenCV said: {err}"
            ) from err
        self._shown = False

    def show(self, frame_bgr: np.ndarray, view: Any = None) -> None:
        self.cv2.imshow(self.title, frame_bgr)
        self._shown = True

    def keys(self, timeout_s: float) -> list[str]:
        deadline = time.monotonic() + max(0.0, timeout_s)
        out: list[str] = []
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            code = self.cv2.waitKeyEx(max(1, remaining_ms))
            name = key_name(code)
            if name is not None:
                out.append(name)
            if self._shown and self._closed():
                out.append("esc")  # the window's close button = quit
                return out
            if time.monotonic() >= deadline:
                return out

    def _closed(self) -> bool:
        try:
            return self.cv2.getWindowProperty(self.title, self.cv2.WND_PROP_VISIBLE) < 1
        except self.cv2.error:
            return True

    def close(self) -> None:
        try:
            self.cv2.destroyWindow(self.title)
            self.cv2.waitKey(1)
        except self.cv2.error:
            pass
