import os
import sys

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
# one torch thread in every test and every process a test starts: the CLI's set_threads reads
# it (default 2), and an in-process CLI call kept 2 threads for the rest of a worker's tests.
# With 2 pytest workers on 2 cores, OpenMP threads spin-waiting for a busy core made a CLI test
# 4.5x and the learning fixture 6x slower than in one process
os.environ["FOSP_THREADS"] = "1"


def pytest_unconfigure(config):
    """A test that failed before its teardown may leave rospy's non-daemon threads (TCPROS,
    actionlib) running; they would keep the interpreter from exiting and hang CI."""
    rospy = sys.modules.get("rospy")
    if rospy is not None and rospy.core.is_initialized():
        rospy.signal_shutdown("pytest finished")


@pytest.fixture(scope="session")
def paper_mix_8(tmp_path_factory):
    """One small paper-mix dataset for the whole session (8 scripted episodes, seed 1, labels
    2 steps late): the collection tests read it, the finetuning tests pretrain on it. Tests
    must not write into it. Returns (folder, collect_mix's counts)."""
    from data_collection.scripted import collect_mix

    root = tmp_path_factory.mktemp("paper_mix_8") / "dataset"
    counts = collect_mix(str(root), episodes=8, seed=1, label_delay=2, progress=False)
    return root, counts
