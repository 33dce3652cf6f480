"""Drawing helpers shared by the collector's and the labeler's windows (BGR uint8 canvases)."""

from __future__ import annotations

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, GREY, DARK = (240, 240, 240), (150, 150, 150), (40, 40, 40)
RED, GREEN, YELLOW, CYAN = (40, 40, 230), (60, 200, 60), (0, 210, 230), (220, 200, 0)
BACKGROUND = (24, 24, 24)


def canvas(width: int, height: int) -> np.ndarray:
    out = np.empty((height, width, 3), np.uint8)
    out[:] = BACKGROUND
    return out


def text(img: np.ndarray, s: str, xy: tuple[int, int], color=WHITE, scale=0.5, thick=1) -> None:
    cv2.putText(img, s, xy, FONT, scale, color, thick, cv2.LINE_AA)


def camera(img: np.ndarray, rgb: np.ndarray, xy: tuple[int, int], size: int) -> None:
    """Paste an RGB observation upscaled with nearest neighbour (the pixels the policy sees)."""
    x, y = xy
    big = cv2.resize(rgb[:, :, ::-1], (size, size), interpolation=cv2.INTER_NEAREST)
    img[y : y + size, x : x + size] = big


def badge(img: np.ndarray, s: str, xy: tuple[int, int], on: bool, color) -> None:
    """A label indicator: filled in its colour when on, outlined when off."""
    x, y = xy
    w, h = 120, 26
    if on:
        cv2.rectangle(img, (x, y), (x + w, y + h), color, -1)
        text(img, s, (x + 8, y + 18), DARK, 0.55, 2)
    else:
        cv2.rectangle(img, (x, y), (x + w, y + h), GREY, 1)
        text(img, s, (x + 8, y + 18), GREY, 0.55, 1)


def timeline(
    img: np.ndarray,
    rows: list[tuple[str, np.ndarray, tuple[int, int, int]]],
    rect: tuple[int, int, int, int],
    cursor: int | None = None,
    selection: tuple[int, int] | None = None,
    length: int | None = None,
) -> None:
    """Label tracks over the episode's rows: one band per (name, 0/1 values, colour)."""
    x, y, w, h = rect
    n = length or max((len(v) for _, v, _ in rows), default=1)
    label_w = 70
    band = max(6, (h - 2 * (len(rows) - 1)) // max(1, len(rows)))
    step_w = (w - label_w) / max(1, n)
    if selection is not None:
        a, b = sorted(selection)
        sx0 = int(x + label_w + a * step_w)
        sx1 = int(x + label_w + (b + 1) * step_w)
        cv2.rectangle(img, (sx0, y - 2), (sx1, y + h + 2), (90, 70, 30), -1)
    for i, (name, values, color) in enumerate(rows):
        top = y + i * (band + 2)
        text(img, name, (x, top + band - 1), GREY, 0.4)
        cv2.rectangle(img, (x + label_w, top), (x + w, top + band), DARK, -1)
        on = np.flatnonzero(np.asarray(values) > 0)
        for j in on:
            x0 = int(x + label_w + j * step_w)
            x1 = max(x0 + 1, int(x + label_w + (j + 1) * step_w) - 1)
            cv2.rectangle(img, (x0, top), (x1, top + band), color, -1)
    if cursor is not None:
        cx = int(x + label_w + (cursor + 0.5) * step_w)
        cv2.line(img, (cx, y - 3), (cx, y + h + 3), YELLOW, 1)


def action_bars(img: np.ndarray, action: np.ndarray, xy: tuple[int, int], width: int = 120) -> None:
    """The commanded action as six centred bars (x y z rx ry rz)."""
    x, y = xy
    for i, name in enumerate(("x", "y", "z", "rx", "ry", "rz")):
        top = y + i * 14
        text(img, name, (x, top + 10), GREY, 0.38)
        mid = x + 28 + width // 2
        cv2.rectangle(img, (x + 28, top), (x + 28 + width, top + 10), DARK, -1)
        end = int(mid + float(np.clip(action[i], -1, 1)) * width / 2)
        cv2.rectangle(img, (min(mid, end), top), (max(mid, end), top + 10), CYAN, -1)
