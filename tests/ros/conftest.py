"""Fixtures for the ROS integration tests: a real roscore (distro ROS 1) on a free port, roslaunch
and node processes, all with ROS_HOME/ROS_LOG_DIR in a temp dir and all stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGINT (roslaunch/roscore shut their children down), then SIGKILL the process group we
    created for it (its id is the PID we started)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers in the group of the PID we started
    except ProcessLookupError:
        pass
    proc.wait(timeout=5)


class RosProcesses:
    def __init__(self, env: dict[str, str], logdir: Path):
        self.env = env
        self.logdir = logdir
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        log = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            argv,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        proc.log_path = self.logdir / f"{name}.log"
        self.procs.append(proc)
        return proc

    def log(self, proc) -> str:
        return proc.log_path.read_text(errors="replace")[-4000:]

    def stop(self, proc) -> None:
        stop(proc)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()


@pytest.fixture(scope="session")
def ros(tmp_path_factory):
    """A roscore of our own on a free port; the test process joins it as one rospy node."""
    tmp = tmp_path_factory.mktemp("ros")
    port = free_port()
    env = dict(os.environ)
    env.update(
        ROS_MASTER_URI=f"http://127.0.0.1:{port}",
        ROS_HOSTNAME="127.0.0.1",
        ROS_HOME=str(tmp / "home"),
        ROS_LOG_DIR=str(tmp / "log"),
        ROS_PACKAGE_PATH=str(REPO),
        PYTHONUNBUFFERED="1",
        MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"),
    )
    env.pop("ROS_IP", None)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    procs = RosProcesses(env, tmp)
    core = procs.start("roscore", ["roscore", "-p", str(port)])
    import rosgraph

    deadline = time.monotonic() + 30
    while not rosgraph.is_master_online(env["ROS_MASTER_URI"]):
        if core.poll() is not None or time.monotonic() > deadline:
            procs.stop_all()
            raise RuntimeError("roscore did not start:\n" + procs.log(core))
        time.sleep(0.1)
    from robot.ros_env import ensure_node

    ensure_node("fosp_tests")
    try:
        yield procs
    finally:
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
def wait():
    """wait(predicate, timeout, what, proc=None, procs=None): poll until true or fail clearly."""
    return wait_for


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
