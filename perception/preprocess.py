"""Image preprocessing for the policy, in plain functions (no ROS, no camera).

The camera delivers a full frame; the policy sees the task area only: crop to its region of
interest, resize to 64x64 with OpenCV (INTER_AREA: the right filter for shrinking), RGB.
Colour order is handled once, at the boundary (`to_rgb`): everything after it is RGB.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Roi = tuple[int, int, int, int]  # x, y, width, height in pixels of the full frame


def parse_roi(roi: Sequence[int] | str | None, frame_shape: tuple[int, ...]) -> Roi | None:
    """[x, y, w, h] (or "x y w h", or empty/None for the whole frame) -> a checked Roi."""
    if roi is None or (isinstance(roi, str) and not roi.strip()):
        return None
    if isinstance(roi, str):
        roi = [int(v) for v in roi.replace(",", " ").replace("[", " ").replace("]", " ").split()]
    roi = tuple(int(v) for v in roi)
    if len(roi) == 0:
        return None
    if len(roi) != 4:
        raise ValueError(f"crop must be [x, y, width, height], got {roi}")
    x, y, w, h = roi
    height, width = frame_shape[:2]
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"crop {roi} is not inside the {width}x{height} frame")
    return x, y, w, h


def to_rgb(frame: np.ndarray, color_format: str) -> np.ndarray:
    """The one place colour order is handled: 'rgb8' passes, 'bgr8' is swapped."""
    if color_format == "rgb8":
        return frame
    if color_format == "bgr8":
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    raise ValueError(f"unsupported colour format {color_format!r} (use rgb8 or bgr8)")


def crop(frame: np.ndarray, roi: Roi | None) -> np.ndarray:
    if roi is None:
        return frame
    x, y, w, h = roi
    return frame[y : y + h, x : x + w]


def resize(image: np.ndarray, size: int = 64) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def preprocess(rgb_frame: np.ndarray, roi: Roi | None, size: int = 64) -> np.ndarray:
    """Full RGB frame -> the policy's uint8 size x size x 3 RGB image."""
    return resize(crop(rgb_frame, roi), size)
