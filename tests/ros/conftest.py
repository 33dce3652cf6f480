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


SEPARATOR = "\n" + "=" * 80 + "\nMSG: "


def _own_definition(msg_class) -> str:
    """A message's own .msg text (its _full_text minus the appended dependencies)."""
    return msg_class._full_text.split(SEPARATOR)[0]


def generate_franka_msgs(out: Path) -> Path:
    """Python classes of franka_msgs (FrankaState, Errors, ErrorRecoveryAction) generated with
    genpy from the definitions under tests/ros/franka_msgs, as a catkin build would. Returns the
    folder to put on sys.path / PYTHONPATH."""
    from actionlib_msgs.msg import GoalID, GoalStatus
    from genpy.generate_initpy import write_modules
    from genpy.generator import MsgGenerator
    from std_msgs.msg import Header

    deps = out / "deps"
    for pkg, cls in (
        ("std_msgs", Header),
        ("actionlib_msgs", GoalID),
        ("actionlib_msgs", GoalStatus),
    ):
        (deps / pkg / "msg").mkdir(parents=True, exist_ok=True)
        (deps / pkg / "msg" / f"{cls.__name__}.msg").write_text(_own_definition(cls))
    src = HERE / "franka_msgs"
    msg_dir = out / "franka_msgs_src" / "msg"
    msg_dir.mkdir(parents=True)
    for f in (src / "msg").glob("*.msg"):
        (msg_dir / f.name).write_text(f.read_text())
    # expand each .action like genaction.py: Goal/Result/Feedback + the Action* wrappers
    for action in (src / "action").glob("*.action"):
        name = action.stem
        goal, result, feedback = action.read_text().split("---")
        parts = {
            f"{name}Goal": goal,
            f"{name}Result": result,
            f"{name}Feedback": feedback,
            f"{name}ActionGoal": f"Header header\nactionlib_msgs/GoalID goal_id\n{name}Goal goal\n",
            f"{name}ActionResult": (
                f"Header header\nactionlib_msgs/GoalStatus status\n{name}Result result\n"
            ),
            f"{name}ActionFeedback": (
                f"Header header\nactionlib_msgs/GoalStatus status\n{name}Feedback feedback\n"
            ),
            f"{name}Action": (
                f"{name}ActionGoal action_goal\n{name}ActionResult action_result\n"
                f"{name}ActionFeedback action_feedback\n"
            ),
        }
        for msg_name, text in parts.items():
            (msg_dir / f"{msg_name}.msg").write_text(text.strip() + "\n")
    py = out / "py"
    pkg_out = py / "franka_msgs" / "msg"
    search = {
        "franka_msgs": [str(msg_dir)],
        "std_msgs": [str(deps / "std_msgs" / "msg")],
        "actionlib_msgs": [str(deps / "actionlib_msgs" / "msg")],
    }
    files = sorted(str(f) for f in msg_dir.glob("*.msg"))
    if MsgGenerator().generate_messages("franka_msgs", files, str(pkg_out), search) != 0:
        raise RuntimeError("genpy failed to generate franka_msgs")
    write_modules(str(pkg_out))
    (py / "franka_msgs" / "__init__.py").write_text("")
    return py


@pytest.fixture(scope="session")
def franka_msgs_path(tmp_path_factory) -> Path:
    """franka_msgs importable in this process and (via PYTHONPATH) in the nodes we start."""
    try:
        import franka_msgs.msg  # noqa: F401  (a lab machine with franka_ros)

        return Path(franka_msgs.__file__).parents[1]
    except ImportError:
        pass
    py = generate_franka_msgs(tmp_path_factory.mktemp("franka_msgs"))
    sys.path.insert(0, str(py))
    return py


@pytest.fixture(scope="session")
def wait():
    """wait(predicate, timeout, what, proc=None, procs=None): poll until true or fail clearly."""
    return wait_for


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
