"""sensor_msgs/Image <-> NumPy without cv_bridge (it breaks under NumPy 2), and the camera's
topic names (relative to the node's namespace; the full contract is robot.ros_contract)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sensor_msgs.msg import Image

IMAGE, IMAGE_FULL = "image", "image_full"


def image_to_msg(image: np.ndarray, stamp: Any, frame_id: str = "camera") -> Image:
    """uint8 HxWx3 RGB -> sensor_msgs/Image rgb8 (NumPy only: no cv_bridge)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = image.shape[:2]
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = image.shape[1] * 3
    msg.data = image.tobytes()
    return msg


def msg_to_image(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8 or bgr8) -> uint8 HxWx3 RGB."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"unsupported image encoding {msg.encoding!r} (want rgb8 or bgr8)")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    image = buf.reshape(msg.height, msg.step)[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    return image[:, :, ::-1].copy() if msg.encoding == "bgr8" else image.copy()
