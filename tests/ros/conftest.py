"""Fixtures for the ROS integration tests: a real roscore (distro ROS 1) on a free port, roslaunch
and node processes, all with ROS_HOME/ROS_LOG_DIR in a temp dir and all stopped by PID."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from robot.ros_processes import RosProcesses, free_port, private_ros_env

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def ros(tmp_path_factory):
    """A roscore of our own on a free port; the test process joins it as one rospy node."""
    tmp = tmp_path_factory.mktemp("ros")
    env = private_ros_env(tmp, free_port())
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    procs = RosProcesses(env, tmp)
    procs.start_master()
    from robot.ros_env import ensure_node

    ensure_node("fosp_tests")
    try:
        yield procs
    finally:
        import rospy

        rospy.signal_shutdown("tests done")  # ends rospy's threads (actionlib servers too)
        procs.stop_all()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def wait_for(predicate, timeout: float, what: str, proc=None, procs=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited:\n{procs.log(proc)}")
        time.sleep(0.02)
    log = procs.log(proc) if proc is not None and procs is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


@pytest.fixture(scope="session")
def franka_msgs_path(tmp_path_factory) -> Path:
    """franka_msgs importable in this process and (via PYTHONPATH) in the nodes we start: the
    classes bootstrap generated into the venv from robot/franka_msgs, or (a checkout not
    bootstrapped since) the same generation into a temp dir."""
    try:
        import franka_msgs.msg  # noqa: F401
        import franka_msgs.srv  # noqa: F401

        return Path(franka_msgs.__file__).parents[1]
    except ImportError:
        pass
    from robot.franka_msgs_gen import generate

    py = generate(tmp_path_factory.mktemp("franka_msgs"))
    sys.path.insert(0, str(py))
    return py


@pytest.fixture(scope="session")
def wait():
    """wait(predicate, timeout, what, proc=None, procs=None): poll until true or fail clearly."""
    return wait_for


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
