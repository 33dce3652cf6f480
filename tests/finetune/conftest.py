"""A small paper-mix dataset and a tiny pretrained run, made once per session, and a roscore of
our own on a free port for the ROS test (the pattern of tests/ros/conftest.py: its helpers are
reused, every process is stopped by the PID we started)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import torch

from tests.ros.conftest import REPO, free_port, stop

# one thread: the suite shares 2 cores with other jobs (tests/policy/conftest.py measured why)
torch.set_num_threads(1)

PRETRAIN_STEPS = 20


@pytest.fixture(scope="session")
def offline_data(tmp_path_factory):
    from data_collection.scripted import collect_mix

    root = tmp_path_factory.mktemp("finetune") / "dataset"
    collect_mix(str(root), task="train", episodes=8, progress=False)
    return root


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory, offline_data):
    from policy.config import resolve
    from policy.train import train

    run = tmp_path_factory.mktemp("finetune") / "run"
    train(offline_data, run, resolve("tiny"), PRETRAIN_STEPS, progress=False, tensorboard=False)
    return run


class Roscore:
    """roscore on a free port; `start` runs more processes in its environment (own session, so
    `stop` can end each process group by the PID we started). The test process never joins it:
    rospy allows one master per process and tests/ros keeps its own for the whole session."""

    def __init__(self, tmp):
        import rosgraph

        self.tmp = tmp
        port = free_port()
        self.env = {
            **os.environ,
            "ROS_MASTER_URI": f"http://127.0.0.1:{port}",
            "ROS_HOSTNAME": "127.0.0.1",
            "ROS_HOME": str(tmp / "home"),
            "ROS_LOG_DIR": str(tmp / "log"),
            "ROS_PACKAGE_PATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "FOSP_THREADS": "1",
            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
        }
        self.env.pop("ROS_IP", None)
        self.procs: list[subprocess.Popen] = []
        core = self.start("roscore", ["roscore", "-p", str(port)])
        deadline = time.monotonic() + 30
        while not rosgraph.is_master_online(self.env["ROS_MASTER_URI"]):
            if core.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("roscore did not start:\n" + self.log("roscore"))
            time.sleep(0.1)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()


@pytest.fixture(scope="module")
def roscore(tmp_path_factory):
    core = Roscore(tmp_path_factory.mktemp("ros_finetune"))
    try:
        yield core
    finally:
        core.close()
