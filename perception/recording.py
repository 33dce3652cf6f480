"""Make a RealSense recording without hardware: pyrealsense2's software device + recorder.

Used by the tests (and handy to turn any image sequence into something camera_node can play).
pyrealsense2 >= 2.58 writes `.db3` (ROS 2 bag). Frames are pushed paced by their timestamps:
unpaced frames play back unreliably through a real-time pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def record(
    path: str | Path,
    frames: Sequence[np.ndarray],
    fps: int = 30,
    color_format: str = "rgb8",
    timestamps_ms: Sequence[float] | None = None,
) -> Path:
    """Write `frames` (H x W x 3 uint8, in `color_format` channel order) as a colour stream."""
    import pyrealsense2 as rs

    path = Path(path)
    if path.suffix != ".db3":
        raise ValueError(f"pyrealsense2 >= 2.58 records .db3 files, got {path.name}")
    height, width = frames[0].shape[:2]
    if timestamps_ms is None:
        timestamps_ms = [i * 1000.0 / fps for i in range(len(frames))]
    device = rs.software_device()
    sensor = device.add_sensor("Color")
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.color, 0, 0
    stream.width, stream.height, stream.fps, stream.bpp = width, height, fps, 3
    stream.fmt = getattr(rs.format, color_format)
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height = width, height
    intrinsics.fx = intrinsics.fy = float(width)
    intrinsics.ppx, intrinsics.ppy = width / 2.0, height / 2.0
    stream.intrinsics = intrinsics
    profile = sensor.add_video_stream(stream)
    recorder = rs.recorder(str(path), device)
    sensor.open(profile)
    sensor.start(lambda _frame: None)
    start = time.monotonic()
    try:
        for i, (image, stamp) in enumerate(zip(frames, timestamps_ms, strict=True)):
            delay = start + stamp / 1000.0 - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pace: recorded times must match the stamps
            frame = rs.software_video_frame()
            frame.pixels = np.ascontiguousarray(image, dtype=np.uint8)
            frame.bpp, frame.stride = 3, width * 3
            frame.timestamp = float(stamp)
            frame.domain = rs.timestamp_domain.system_time
            frame.frame_number = i
            frame.profile = profile.as_video_stream_profile()
            sensor.on_video_frame(frame)
        time.sleep(2.0 / fps)
    finally:
        sensor.stop()
        sensor.close()
        del recorder  # flushes and closes the file
    return path
