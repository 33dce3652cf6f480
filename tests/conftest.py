import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")


def pytest_unconfigure(config):
    """A test that failed before its teardown may leave rospy's non-daemon threads (TCPROS,
    actionlib) running; they would keep the interpreter from exiting and hang CI."""
    rospy = sys.modules.get("rospy")
    if rospy is not None and rospy.core.is_initialized():
        rospy.signal_shutdown("pytest finished")
