"""camera_node: a RealSense (or a recording of one) -> the policy's 64x64 image over ROS.

`rosrun fosp_robot camera_node _serial:=123456789012 _crop:="[160, 60, 320, 320]"`

Publishes (relative to the node's namespace, /fosp in the launch files):
- `image` sensor_msgs/Image rgb8 size x size: the task area's crop, resized with OpenCV;
- `image_full` sensor_msgs/Image rgb8: the full frame for the operator (~publish_full).
Stamps are the time the capture thread received the frame.

Private parameters (defaults): ~serial (""), ~width (640), ~height (480), ~fps (30),
~color_format (rgb8), ~playback ("": a device), ~real_time (true), ~loop (false: play once),
~crop ([] = whole frame), ~size (64), ~publish_full (false), ~frame_timeout (0.5),
~warmup_timeout (5.0), ~reset_after (3), ~max_failures (8).
"""

from __future__ import annotations

import sys
import time

import rospy
from sensor_msgs.msg import Image

from perception import ros_image as rc
from perception.preprocess import parse_roi, preprocess
from perception.realsense import (
    CameraConfig,
    CameraEnded,
    CameraError,
    CameraTimeout,
    RealSenseCamera,
)


def read_config() -> tuple[CameraConfig, dict]:
    g = lambda name, default: rospy.get_param(f"~{name}", default)  # noqa: E731
    config = CameraConfig(
        serial=str(g("serial", "")),
        width=int(g("width", 640)),
        height=int(g("height", 480)),
        fps=int(g("fps", 30)),
        color_format=str(g("color_format", "rgb8")),
        playback=str(g("playback", "")),
        real_time=bool(g("real_time", True)),
        loop=bool(g("loop", False)),
        frame_timeout=float(g("frame_timeout", 0.5)),
        warmup_timeout=float(g("warmup_timeout", 5.0)),
        reset_after=int(g("reset_after", 3)),
        max_failures=int(g("max_failures", 8)),
    )
    extra = {
        "crop": g("crop", []),
        "size": int(g("size", 64)),
        "publish_full": bool(g("publish_full", False)),
        "frame_id": str(g("frame_id", "camera_color_optical_frame")),
    }
    return config, extra


def main(argv: list[str] | None = None) -> int:
    rospy.init_node("camera_node", argv=argv if argv is not None else sys.argv)
    config, extra = read_config()
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
        extra["crop"],
        extra["size"],
        extra["size"],
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
            if roi is None and extra["crop"] not in ([], "", None):
                roi = parse_roi(extra["crop"], frame.image.shape)  # checked on the first frame
            stamp = rospy.Time.now() - rospy.Duration.from_sec(time.monotonic() - frame.received)
            pub.publish(
                rc.image_to_msg(
                    preprocess(frame.image, roi, extra["size"]), stamp, extra["frame_id"]
                )
            )
            if extra["publish_full"] and pub_full.get_num_connections() > 0:
                pub_full.publish(rc.image_to_msg(frame.image, stamp, extra["frame_id"]))
    finally:
        camera.disconnect()
    return status


if __name__ == "__main__":
    sys.exit(main())
