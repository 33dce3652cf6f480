"""A private ROS 1 master and launch files as child processes, always stopped by PID.

For the tests, benchmarks and tools that need a roscore of their own: a free port, ROS_HOME and
ROS_LOG_DIR in a folder of their own, `ROS_PACKAGE_PATH` at this repository (its package.xml lets
roslaunch find `fosp_robot`), every child in its own session so stopping it stops its children.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_ros_env(folder: Path, port: int, base: Mapping[str, str] | None = None) -> dict:
    """Environment for processes that talk to a master on `port`, logging under `folder`."""
    env = dict(os.environ if base is None else base)
    env.update(
        ROS_MASTER_URI=f"http://127.0.0.1:{port}",
        ROS_HOSTNAME="127.0.0.1",
        ROS_HOME=str(folder / "home"),
        ROS_LOG_DIR=str(folder / "log"),
        ROS_PACKAGE_PATH=str(REPO),
        PYTHONUNBUFFERED="1",
        MUJOCO_GL=env.get("MUJOCO_GL", "egl"),
    )
    env.pop("ROS_IP", None)
    return env


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 10.0) -> None:
    """`sig` first (roslaunch and roscore shut their children down on SIGINT), then SIGKILL the
    process group created for it (its id is the PID we started)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=5)


class RosProcesses:
    """Children sharing one environment; each logs to `<logdir>/<name>.log`."""

    def __init__(self, env: dict[str, str], logdir: Path):
        self.env = env
        self.logdir = Path(logdir)
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        self.logdir.mkdir(parents=True, exist_ok=True)
        log_path = self.logdir / f"{name}.log"
        with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                argv,
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        proc.log_path = log_path
        self.procs.append(proc)
        return proc

    def start_master(self, timeout: float = 30.0) -> subprocess.Popen:
        """roscore on the environment's port; returns once the master answers."""
        import rosgraph

        uri = self.env["ROS_MASTER_URI"]
        core = self.start("roscore", ["roscore", "-p", uri.rsplit(":", 1)[1]])
        deadline = time.monotonic() + timeout
        while not rosgraph.is_master_online(uri):
            if core.poll() is not None or time.monotonic() > deadline:
                self.stop_all()
                raise RuntimeError("roscore did not start:\n" + self.log(core))
            time.sleep(0.1)
        return core

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
