"""`fosp collect --env ros` against collect.launch (robot:=sim, i.e. sim.launch's arm_node) on a
real roscore of our own (free port, everything stopped by PID).

The collector runs in its own process, as on the operator's machine (rospy allows one master per
process, and the ROS tests of tests/ros keep theirs for the whole session); the scripted
operator drives its keyboard teleop layer and labels with a 2-step reaction delay. The arm_node
publishes the simulator's labels, so the stored manual labels can be checked against the truth.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import HERE, REPO

from data_collection.dataset import Dataset
from data_collection.rollout import delayed_labels
from robot.ros_processes import RosProcesses, free_port, private_ros_env

CHILD = """
import sys
sys.path.insert(0, {here!r})
from scripted_ui import Plan, ScriptedUI
from data_collection.teleop import window
from data_collection.teleop.base import RealClock
ui = ScriptedUI("train", RealClock(), [Plan(review="k"), Plan(review="d"), Plan(review="k")])
window.CvWindow = lambda title: ui
from fosp.cli import main
code = main(["collect", "--env", "ros", "--out", {out!r}, "--episodes", "2", "--seed", "4",
             "--teleop", "keyboard", "--countdown", "0.3", "--operator", "script"])
print("RECORDINGS", ui.recordings, "DROPPED", ui.dropped, "LAYOUTS", ui.layouts, flush=True)
sys.exit(code)
"""


@pytest.fixture(scope="module")
def ros_robot(tmp_path_factory):
    """roscore + `roslaunch fosp_robot collect.launch robot:=sim`; yields the environment."""
    import rosgraph

    tmp = tmp_path_factory.mktemp("ros_collect")
    env = private_ros_env(tmp, free_port())
    procs = RosProcesses(env, tmp)
    try:
        procs.start_master()
        launch = procs.start(
            "collect_launch", ["roslaunch", "fosp_robot", "collect.launch", "seed:=3"]
        )
        master = rosgraph.Master("/fosp_collect_test", master_uri=env["ROS_MASTER_URI"])
        deadline = time.monotonic() + 60
        while "/fosp/reset" not in {s for s, _ in master.getSystemState()[2]}:
            if launch.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(procs.log(launch))
            time.sleep(0.2)
        assert master.getParam("/fosp/arm_node/task") == "train"
        yield env, tmp
    finally:
        procs.stop_all()


def _run_collector(script: str, out, env) -> subprocess.CompletedProcess:
    """`fosp collect` in a child process, its UI scripted by `script`."""
    code = script.format(here=str(HERE), out=str(out))
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=150
    )


def test_collect_over_ros(ros_robot, tmp_path):
    env, _ = ros_robot
    out = tmp_path / "ds"
    child = _run_collector(CHILD, out, env)
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    # 3 recordings (keep, discard, keep), plus one re-record per take the collector dropped
    # for a stale observation (it happens on a loaded machine: the dropped take leaves nothing)
    dropped = int(child.stdout.split("DROPPED ")[1].split()[0])
    assert "RECORDINGS 3" in child.stdout, child.stdout[-3000:]
    assert f"kept 2, discarded 1, re-recorded {dropped}" in child.stdout, child.stdout[-3000:]
    names = os.listdir(out)
    assert len([n for n in names if n.endswith(".npz")]) == 2, names
    assert not [n for n in names if n.startswith(".")], names
    episodes = [e for _, e in Dataset(out).episodes()]
    for ep in episodes:
        meta = ep.metadata
        assert meta["env"] == "ros" and meta["label_source"] == "manual"
        assert meta["control_hz"] == 10.0 and ep.num_actions == 80
        # the env waits for each step's label message, so the truth is never lost
        assert "oracle_reward" in ep.steps, f"truth missing: {meta.get('oracle_missing_steps')}"
        for field in ("reward", "cost"):
            truth = ep.steps[f"oracle_{field}"]
            np.testing.assert_array_equal(ep.steps[field], delayed_labels(truth, 2))
    # the keyboard teleop moved the (simulated) arm over ROS
    moved = max(np.abs(e.steps["pose"][:, :3] - e.steps["pose"][0, :3]).max() for e in episodes)
    assert moved > 0.05


CHILD_ESTOP = """
import json, sys, time
sys.path.insert(0, {here!r})
import rospy
from std_msgs.msg import String
from std_srvs.srv import Trigger
from scripted_ui import Plan, ScriptedUI
from data_collection.teleop import window
from data_collection.teleop.base import RealClock


class StopUI(ScriptedUI):
    '''The operator presses the e-stop at step 20 of the first take, waits ~1.5 s looking at the
    stopped window (the arm must stay latched: nobody else releases it), then presses y.'''

    estop_done = False
    stopped_views = 0
    latched_while_waiting = None

    def show(self, frame, view=None):
        if view is not None and view.phase == "record" and view.step == 20 and not self.estop_done:
            self.estop_done = True
            print("ESTOP", rospy.ServiceProxy("/fosp/estop", Trigger)().success, flush=True)
        if view is not None and view.phase == "stopped":
            self.stopped_views += 1
            if self.stopped_views == 15:
                status = json.loads(rospy.wait_for_message("/fosp/status", String, 5).data)
                self.latched_while_waiting = status["estopped"]
                self._keys.append("y")
            self.frames += 1
            self.phases.append(view.phase)
            return
        super().show(frame, view)


ui = StopUI("train", RealClock(), [Plan(review="k")])
window.CvWindow = lambda title: ui
from fosp.cli import main
code = main(["collect", "--env", "ros", "--out", {out!r}, "--episodes", "1", "--seed", "5",
             "--teleop", "keyboard", "--countdown", "0.3", "--operator", "script"])
print("STOPPED_VIEWS", ui.stopped_views, "LATCHED", ui.latched_while_waiting, flush=True)
sys.exit(code)
"""


def test_collect_over_ros_estop_stops_marks_and_waits_for_the_release(ros_robot, tmp_path):
    """An e-stop mid-take: the take ends, is stored marked in <out>/interrupted (not in the
    dataset), the collector waits with the e-stop latched until the operator's key y releases
    it, then records the layout again."""
    env, _ = ros_robot
    out = tmp_path / "ds_estop"
    child = _run_collector(CHILD_ESTOP, out, env)
    text = child.stdout[-3000:] + child.stderr[-3000:]
    assert child.returncode == 0, text
    assert "ESTOP True" in child.stdout and "LATCHED True" in child.stdout, text
    assert "stored as interrupted" in child.stdout, text
    kept = [e for _, e in Dataset(out).episodes()]
    assert len(kept) == 1 and kept[0].num_actions == 80
    assert kept[0].metadata.get("status", "complete") == "complete"
    stopped = [e for _, e in Dataset(out / "interrupted").episodes()]
    assert len(stopped) == 1, text
    meta = stopped[0].metadata
    assert meta["interrupted"] == "estop" and meta["status"] == "aborted"
    assert stopped[0].num_actions < 80 and meta["layout_seed"] == kept[0].metadata["layout_seed"]
