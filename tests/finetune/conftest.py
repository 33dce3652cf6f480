"""A small paper-mix dataset and a tiny pretrained run, made once per session, and a roscore of
our own on a free port for the ROS test (robot/ros_processes.py: own ROS_HOME, every process
stopped by the PID we started)."""

from __future__ import annotations

import pytest
import torch

from robot.ros_processes import RosProcesses, free_port, private_ros_env

# one thread: the suite shares 2 cores with other jobs (tests/policy/conftest.py measured why)
torch.set_num_threads(1)

PRETRAIN_STEPS = 20


@pytest.fixture(scope="session")
def offline_data(paper_mix_8):
    return paper_mix_8[0]  # the session's dataset (tests/conftest.py)


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory, offline_data):
    from policy.config import resolve
    from policy.train import train

    run = tmp_path_factory.mktemp("finetune") / "run"
    train(offline_data, run, resolve("tiny"), PRETRAIN_STEPS, progress=False, tensorboard=False)
    return run


class Roscore(RosProcesses):
    """The test process never joins this master: rospy allows one master per process and
    tests/ros keeps its own for the whole session; everything runs in child processes."""

    def __init__(self, tmp):
        super().__init__(private_ros_env(tmp, free_port()), tmp)  # FOSP_THREADS=1 inherited
        self.start_master()

    def log_of(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def roscore(tmp_path_factory):
    core = Roscore(tmp_path_factory.mktemp("ros_finetune"))
    try:
        yield core
    finally:
        core.stop_all()
