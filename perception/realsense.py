"""RealSense capture over pyrealsense2: a device by serial number, or a recording played back
through the same code.

`RealSenseCamera` (shape after LeRobot's Camera: connect / read / disconnect) runs a capture
thread that keeps only the newest colour frame. Timeouts are handled, never waited out forever:

- warm-up: the first frame may take seconds (USB enumeration, auto-exposure); `warmup_timeout`
  and `warmup_frames` discarded frames;
- a frame that does not come within `frame_timeout` is retried; after `reset_after` consecutive
  timeouts a device gets `hardware_reset()` and the pipeline is restarted; after
  `max_failures` the camera gives up with an error naming what to check;
- a recording that ends is reported as ended (CameraEnded); one that stalls times out like a
  device (`read` raises CameraTimeout).

Playback facts (pyrealsense2 2.59.1): recordings from `rs.recorder` are `.db3` (ROS 2 bag)
since 2.58; `set_real_time(False)` plays back deterministically, as fast as frames are read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception.preprocess import to_rgb

log = logging.getLogger(__name__)


class CameraError(RuntimeError):
    """The camera cannot deliver frames; the message says what to check."""


class CameraTimeout(CameraError):
    """No new frame within the timeout."""


class CameraEnded(CameraError):
    """A played-back recording has no more frames."""


@dataclass(frozen=True)
class CameraConfig:
    serial: str = ""  # empty: the only connected device
    width: int = 640
    height: int = 480
    fps: int = 30
    color_format: str = "rgb8"  # what the device is asked for (rgb8 needs no conversion)
    playback: str = ""  # path of a recording (.db3 / .bag) to play instead of a device
    real_time: bool = True  # playback pacing; False: deterministic, as fast as frames are read
    loop: bool = False  # playback: start over at the end of the recording
    frame_timeout: float = 0.5  # s per wait for a frame
    warmup_timeout: float = 5.0
    warmup_frames: int = 5  # discarded after start (auto-exposure settling)
    reset_after: int = 3  # consecutive timeouts -> hardware_reset (device) and restart
    max_failures: int = 8  # consecutive timeouts -> give up


@dataclass
class Frame:
    image: np.ndarray  # RGB uint8 H x W x 3 (full frame)
    number: int  # device frame counter
    timestamp: float  # device timestamp, ms
    received: float  # time.monotonic() when the capture thread got it
    seq: int  # capture-thread counter (new frame <=> larger seq)


def _rs():
    import pyrealsense2 as rs

    return rs


class RealSenseCamera:
    def __init__(self, config: CameraConfig, pipeline_factory: Callable[[], Any] | None = None):
        self.config = config
        self._pipeline_factory = pipeline_factory
        self._pipeline: Any = None
        self._profile: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._seq = 0
        self._last_read_seq = 0
        self._error: CameraError | None = None
        self._first_timestamp: float | None = None
        self.resets = 0
        self.timeouts = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def source(self) -> str:
        c = self.config
        if c.playback:
            return f"recording {c.playback}"
        return f"RealSense {c.serial or '(first device)'} {c.width}x{c.height}@{c.fps}"

    def connect(self) -> None:
        self._start_pipeline()
        deadline = time.monotonic() + self.config.warmup_timeout
        kept = 0
        while kept <= self.config.warmup_frames and not self.config.playback:
            if time.monotonic() > deadline:
                self._stop_pipeline()
                raise CameraError(
                    self._what_to_check(
                        f"no frames within the warm-up time ({self.config.warmup_timeout:.1f} s)"
                    )
                )
            ok, _ = self._wait(min(self.config.frame_timeout, self.config.warmup_timeout))
            kept += int(ok)
        self._stop.clear()
        self._thread = threading.Thread(target=self._capture, name="realsense", daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._stop_pipeline()

    def __enter__(self) -> RealSenseCamera:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    # ------------------------------------------------------------------ reading
    def read(self, timeout: float | None = None) -> Frame:
        """The newest frame not returned before; waits up to `timeout` (default: 2 frame
        timeouts) for it. Raises CameraTimeout / CameraEnded / CameraError, never hangs."""
        timeout = 2 * self.config.frame_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._frame is not None and self._frame.seq > self._last_read_seq:
                    self._last_read_seq = self._frame.seq
                    return self._frame
                if self._error is not None:
                    raise self._error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    age = (
                        "none yet"
                        if self._frame is None
                        else f"the newest is {time.monotonic() - self._frame.received:.2f} s old"
                    )
                    raise CameraTimeout(
                        self._what_to_check(f"no new frame within {timeout:.2f} s ({age})")
                    )
                self._cond.wait(remaining)

    def latest(self) -> Frame | None:
        with self._cond:
            return self._frame

    # ------------------------------------------------------------------ capture thread
    def _capture(self) -> None:
        failures = 0
        while not self._stop.is_set():
            ok, frame = self._wait(self.config.frame_timeout)
            if ok:
                failures = 0
                with self._cond:
                    if self._first_timestamp is None:
                        self._first_timestamp = frame.timestamp
                    self._seq += 1
                    frame.seq = self._seq
                    self._frame = frame
                    self._cond.notify_all()
                continue
            failures += 1
            self.timeouts += 1
            if self.config.playback and not self.config.loop and self._playback_stopped():
                self._fail(CameraEnded(f"{self.source}: the recording ended"))
                return
            log.warning(
                "camera: frame timeout %d/%d (%s)", failures, self.config.max_failures, self.source
            )
            if failures >= self.config.max_failures:
                what = (
                    "the recording stalled"
                    if self.config.playback
                    else f"{failures} frame timeouts in a row"
                )
                self._fail(CameraError(self._what_to_check(what)))
                return
            if failures % self.config.reset_after == 0 and not self.config.playback:
                self._hardware_reset()

    def _fail(self, error: CameraError) -> None:
        log.error("camera: %s", error)
        with self._cond:
            self._error = error
            self._cond.notify_all()

    def _wait(self, timeout: float) -> tuple[bool, Frame | None]:
        try:
            ok, frames = self._pipeline.try_wait_for_frames(int(timeout * 1000))
        except RuntimeError as exc:  # device gone mid-wait
            log.warning("camera: %s", exc)
            time.sleep(min(timeout, 0.1))
            return False, None
        if not ok:
            return False, None
        color = frames.get_color_frame()
        if not color:
            return False, None
        fmt = str(color.get_profile().format()).rsplit(".", 1)[-1]
        raw = np.asanyarray(color.get_data())
        image = np.array(to_rgb(raw, fmt), copy=True)  # own the memory: librealsense reuses it
        return True, Frame(
            image=image,
            number=int(color.get_frame_number()),
            timestamp=float(color.get_timestamp()),
            received=time.monotonic(),
            seq=0,
        )

    # ------------------------------------------------------------------ pipeline
    def _start_pipeline(self) -> None:
        c = self.config
        if self._pipeline_factory is not None:
            self._pipeline = self._pipeline_factory()
            self._profile = self._pipeline.start()
            return
        rs = _rs()
        cfg = rs.config()
        if c.playback:
            if not Path(c.playback).is_file():
                raise CameraError(f"recording {c.playback} does not exist")
            cfg.enable_device_from_file(c.playback, repeat_playback=c.loop)
        else:
            if c.serial:
                cfg.enable_device(c.serial)
            fmt = getattr(rs.format, c.color_format)
            cfg.enable_stream(rs.stream.color, c.width, c.height, fmt, c.fps)
        self._pipeline = rs.pipeline()
        try:
            self._profile = self._pipeline.start(cfg)
        except RuntimeError as exc:
            raise CameraError(self._what_to_check(f"could not start: {exc}")) from exc
        if c.playback:
            self._profile.get_device().as_playback().set_real_time(c.real_time)

    def _stop_pipeline(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass
            self._pipeline = None

    def _playback_stopped(self) -> bool:
        """End of a recording: the status says stopped, or the newest frame we got is the last
        one of the file (its time from the first frame reaches the file's duration). Neither
        the reader's position (it reads ahead) nor the status (it stays "playing" at the end)
        tells an end from a stall on its own."""
        try:
            playback = self._profile.get_device().as_playback()
            if str(playback.current_status()).rsplit(".", 1)[-1] == "stopped":
                return True
            duration_ms = playback.get_duration().total_seconds() * 1000.0
        except (RuntimeError, AttributeError):
            return False
        with self._cond:
            first, last = self._first_timestamp, self._frame
        if first is None or last is None:
            return False
        return last.timestamp - first >= duration_ms - 5.0

    def _hardware_reset(self) -> None:
        log.warning("camera: hardware_reset of %s after repeated frame timeouts", self.source)
        self.resets += 1
        try:
            device = self._profile.get_device()
            self._stop_pipeline()
            device.hardware_reset()
            time.sleep(2.0 if self._pipeline_factory is None else 0.0)  # re-enumeration
            self._start_pipeline()
        except (RuntimeError, CameraError) as exc:
            log.error("camera: restart after hardware_reset failed: %s", exc)

    def _what_to_check(self, what: str) -> str:
        c = self.config
        if c.playback:
            return f"{self.source}: {what}. Check the file (rs-enumerate-devices -p / a viewer)."
        return (
            f"{self.source}: {what}. Check: the USB 3 cable and port (rs-enumerate-devices shows "
            f"the device as USB 3.x), the serial number ({c.serial or 'any'}), that no other "
            f"process holds the camera, that {c.width}x{c.height}@{c.fps} {c.color_format} is a "
            "supported colour mode, and the udev rules (99-realsense-libusb.rules)."
        )
