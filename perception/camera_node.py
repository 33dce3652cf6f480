"""camera_node: a RealSense (or a recording of one) -> the policy's 64x64 image over ROS.

`rosrun fosp_robot camera_node _serial:=123456789012 _crop:="[160, 60, 320, 320]"`

Publishes (relative to the node's namespace, /fosp in the launch files):
- `image` sensor_msgs/Image rgb8 size x size: the task area's crop, resized with OpenCV;
- `image_full` sensor_msgs/Image rgb8: the full frame for the operator (~publish_full).
Stamps are the time the capture thread received the frame.

Private parameters: the fields of `perception.realsense.CameraConfig` (~serial, ~width,
~height, ~fps, ~playback, ~loop, ~frame_timeout, ...) and of `ImageOutput` (~crop, ~size,
~publish_full, ~frame_id), with those classes' defaults; a bad value stops the node with one
line naming the parameter.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import rospy
from sensor_msgs.msg import Image

from fosp.config_flags import from_params, option
from fosp.errors import UserError
from perception import ros_image as rc
from perception.preprocess import parse_roi, preprocess
from perception.realsense import (
    CameraConfig,
    CameraEnded,
    CameraError,
    CameraTimeout,
    RealSenseCamera,
)


@dataclass(frozen=True)
class ImageOutput:
    """What camera_node publishes from each frame."""

    crop: str = ""  # [x, y, width, height] of the task area in the full frame (empty: all of it)
    size: int = option(64, check="positive")  # px of the square policy image
    publish_full: bool = False  # also publish the full frame (the operator's view)
    frame_id: str = "camera_color_optical_frame"


def read_config() -> tuple[CameraConfig, ImageOutput]:
    """The node's private parameters (unset or "" keeps the default); UserError names a bad one."""
    get = lambda name: rospy.get_param(f"~{name}", None)  # noqa: E731
    return CameraConfig(**from_params(CameraConfig, get)), ImageOutput(
        **from_params(ImageOutput, get)
    )


def main(argv: list[str] | None = None) -> int:
    rospy.init_node("camera_node", argv=argv if argv is not None else sys.argv)
    try:
        config, out = read_config()
    except UserError as err:
        rospy.logfatal("camera_node: %s", err)
        return 2
    pub = rospy.Publisher(rc.IMAGE, Image, queue_size=2)
    pub_full = rospy.Publisher(rc.IMAGE_FULL, Image, queue_size=1)
    camera = RealSenseCamera(config)
    try:
        camera.connect()
    except CameraError as exc:
        rospy.logfatal("camera_node: %s", exc)
        return 1
    rospy.loginfo(
        "camera_node: %s, crop %s -> %dx%d",
        camera.source,
        out.crop,
        out.size,
        out.size,
    )
    roi = None
    status = 0
    try:
        while not rospy.is_shutdown():
            try:
                frame = camera.read(timeout=2 * config.frame_timeout)
            except CameraTimeout as exc:
                rospy.logerr_throttle(2.0, f"camera_node: {exc}")
                continue
            except CameraEnded as exc:
                rospy.loginfo("camera_node: %s; no more images will be published", exc)
                rospy.spin()  # stay up (the launch keeps running); nothing more to publish
                break
            except CameraError as exc:
                rospy.logfatal("camera_node: %s", exc)
                status = 1
                break
            if roi is None and out.crop:
                roi = parse_roi(out.crop, frame.image.shape)  # checked on the first frame
            stamp = rospy.Time.now() - rospy.Duration.from_sec(time.monotonic() - frame.received)
            pub.publish(
                rc.image_to_msg(preprocess(frame.image, roi, out.size), stamp, out.frame_id)
            )
            if out.publish_full and pub_full.get_num_connections() > 0:
                pub_full.publish(rc.image_to_msg(frame.image, stamp, out.frame_id))
    finally:
        camera.disconnect()
    return status


if __name__ == "__main__":
    sys.exit(main())
