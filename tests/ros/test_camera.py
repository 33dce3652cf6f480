"""Camera: preprocessing pixel-wise against OpenCV, capture on a RealSense recording made here
with pyrealsense2's software device, timeouts (end, stall, dead device), camera_node over ROS."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import rospy
from sensor_msgs.msg import Image

from perception.preprocess import crop, parse_roi, preprocess, resize, to_rgb
from perception.realsense import (
    CameraConfig,
    CameraEnded,
    CameraError,
    CameraTimeout,
    RealSenseCamera,
)
from perception.recording import record
from perception.ros_image import image_to_msg, msg_to_image

W, H, FPS = 160, 120, 30
ROI = (30, 10, 96, 96)


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]


def reference(rgb: np.ndarray, roi=ROI, size: int = 64) -> np.ndarray:
    """Independent reference: slice + cv2.resize(INTER_AREA), nothing from perception."""
    x, y, w, h = roi
    return cv2.resize(rgb[y : y + h, x : x + w], (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("realsense")
    imgs = frames(20)
    rgb = record(tmp / "rgb.db3", imgs, FPS, "rgb8")
    # stored in BGR order: the capture must convert once, to the same RGB images
    bgr = record(tmp / "bgr.db3", [im[:, :, ::-1] for im in imgs[:8]], FPS, "bgr8")
    stamps = [i * 1000 / FPS for i in range(6)] + [3000 + i * 1000 / FPS for i in range(3)]
    stall = record(tmp / "stall.db3", imgs[:9], FPS, "rgb8", timestamps_ms=stamps)
    return {"frames": imgs, "rgb": rgb, "bgr": bgr, "stall": stall}


def test_preprocess_pixelwise_against_opencv():
    rng = np.random.default_rng(3)
    for _ in range(20):
        h, w = rng.integers(64, 480, 2)
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        x, y = rng.integers(0, w - 32), rng.integers(0, h - 32)
        roi = (int(x), int(y), int(rng.integers(32, w - x + 1)), int(rng.integers(32, h - y + 1)))
        out = preprocess(frame, parse_roi(list(roi), frame.shape))
        assert out.shape == (64, 64, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, reference(frame, roi))
    frame = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize(crop(frame, None)), frame)  # already 64x64: untouched
    np.testing.assert_array_equal(to_rgb(frame, "bgr8"), frame[:, :, ::-1])
    assert to_rgb(frame, "rgb8") is frame
    assert parse_roi("[1, 2, 30, 40]", (100, 100, 3)) == (1, 2, 30, 40)
    assert parse_roi([], (100, 100, 3)) is None
    with pytest.raises(ValueError, match="not inside"):
        parse_roi([90, 0, 20, 20], (100, 100, 3))
    msg = image_to_msg(frame, rospy.Time(1, 2))
    np.testing.assert_array_equal(msg_to_image(msg), frame)
    msg.encoding = "bgr8"
    np.testing.assert_array_equal(msg_to_image(msg), frame[:, :, ::-1])


@pytest.mark.parametrize("kind", ["rgb", "bgr"])
def test_capture_plays_a_recording_through_the_real_code(recordings, kind):
    imgs = recordings["frames"]
    config = CameraConfig(playback=str(recordings[kind]), frame_timeout=0.3, max_failures=3)
    seen = []
    with RealSenseCamera(config) as cam:
        t0 = time.monotonic()
        with pytest.raises(CameraEnded, match="ended"):
            while time.monotonic() - t0 < 10:
                frame = cam.read(timeout=1.0)
                np.testing.assert_array_equal(frame.image, imgs[frame.number])  # RGB, exact
                np.testing.assert_array_equal(
                    preprocess(frame.image, ROI), reference(imgs[frame.number])
                )
                seen.append(frame.number)
        assert time.monotonic() - t0 < 5  # the end is noticed, not waited out
    n = 20 if kind == "rgb" else 8
    assert seen == sorted(seen) and len(seen) >= n - 2 and seen[-1] == n - 1


def test_deterministic_playback(recordings):
    config = CameraConfig(playback=str(recordings["rgb"]), real_time=False, frame_timeout=0.3)
    with RealSenseCamera(config) as cam:
        numbers = []
        with pytest.raises(CameraEnded):
            for _ in range(100):
                numbers.append(cam.read(timeout=1.0).number)
    assert numbers == sorted(set(numbers)) and numbers[-1] == 19


def test_a_stalled_recording_times_out_instead_of_hanging(recordings):
    config = CameraConfig(playback=str(recordings["stall"]), frame_timeout=0.2, max_failures=4)
    with RealSenseCamera(config) as cam:
        numbers = []
        t0 = time.monotonic()
        with pytest.raises(CameraTimeout, match="no new frame within 0.50 s"):
            for _ in range(50):
                numbers.append(cam.read(timeout=0.5).number)
        assert numbers[-1] == 5 and time.monotonic() - t0 < 2.0
        # the capture thread gives up after max_failures timeouts with a clear error
        with pytest.raises(CameraError, match="stalled"):
            cam.read(timeout=2.0)
        assert time.monotonic() - t0 < 3.0  # 3 s gap: gave up before it ended


class DeadPipeline:
    """A device that enumerates, delivers the warm-up frames, then never another one."""

    instances: list = []

    def __init__(self, good: int = 10):
        self.good = good
        self.stopped = 0
        DeadPipeline.instances.append(self)
        self.device = self

    def start(self):
        return self

    def get_device(self):
        return self

    def hardware_reset(self):
        DeadPipeline.resets += 1

    def stop(self):
        self.stopped += 1

    def try_wait_for_frames(self, timeout_ms: int):
        if self.good > 0:
            self.good -= 1
            return True, FakeFrames()
        time.sleep(timeout_ms / 1000)
        return False, None


DeadPipeline.resets = 0


class FakeFrames:
    def get_color_frame(self):
        return self

    def __bool__(self):
        return True

    def get_profile(self):
        return self

    def format(self):
        return "format.bgr8"

    def get_data(self):
        return np.zeros((4, 4, 3), np.uint8)

    def get_frame_number(self):
        return 1

    def get_timestamp(self):
        return 0.0


def test_repeated_timeouts_reset_the_device_then_fail_clearly():
    DeadPipeline.resets = 0
    DeadPipeline.instances.clear()
    config = CameraConfig(
        serial="123456789012", frame_timeout=0.05, warmup_frames=2, reset_after=3, max_failures=7
    )
    # the first start delivers the warm-up frames; after each hardware_reset it stays dead
    cam = RealSenseCamera(
        config, pipeline_factory=lambda: DeadPipeline(good=3 if not DeadPipeline.instances else 0)
    )
    cam.connect()
    try:
        error = None
        deadline = time.monotonic() + 10
        while error is None and time.monotonic() < deadline:
            try:
                cam.read(timeout=0.5)
            except CameraTimeout:
                continue  # each read times out cleanly until the capture thread gives up
            except CameraError as exc:
                error = exc
        message = str(error)
        assert "7 frame timeouts" in message and "123456789012" in message
        assert "USB 3" in message  # names what to check
        assert DeadPipeline.resets == 2  # after 3 and 6 timeouts
        assert len(DeadPipeline.instances) == 3  # restarted after each reset
    finally:
        cam.disconnect()


def test_camera_node_publishes_cropped_64px_images(ros, recordings, wait):
    imgs = recordings["frames"]
    expected = [reference(im) for im in imgs]
    received: list[np.ndarray] = []
    full: list[np.ndarray] = []
    subs = [
        rospy.Subscriber("/fosp_cam/image", Image, lambda m: received.append(msg_to_image(m))),
        rospy.Subscriber("/fosp_cam/image_full", Image, lambda m: full.append(msg_to_image(m))),
    ]
    node = ros.start(
        "camera_node",
        [
            "scripts/camera_node",
            "__ns:=/fosp_cam",
            f"_playback:={recordings['rgb']}",
            "_loop:=true",  # however late our subscription connects, frames keep coming
            f"_crop:=[{', '.join(map(str, ROI))}]",
            "_publish_full:=true",
            "_frame_timeout:=0.3",
        ],
    )
    try:
        wait(lambda: len(received) >= 30, 30, "images from camera_node", node, ros)
        for image in list(received):
            assert image.shape == (64, 64, 3)
            assert any(np.array_equal(image, e) for e in expected), "not a crop+resize of a frame"
        matched = [
            next(i for i, e in enumerate(expected) if np.array_equal(im, e)) for im in received
        ]
        # in recording order, starting over at the end of the file
        wraps = sum(b < a for a, b in zip(matched, matched[1:], strict=False))
        assert wraps >= 1 and len(set(matched)) >= 15
        wait(lambda: full, 5, "full frames")
        assert any(np.array_equal(full[-1], im) for im in imgs)
        assert node.poll() is None
    finally:
        ros.stop(node)
        for s in subs:
            s.unregister()
