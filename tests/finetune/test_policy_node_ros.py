"""policy_node over ROS: `roslaunch fosp_robot deploy.launch` (sim.launch + policy_node) on a real
roscore runs full 80-step finetuning episodes, labels them, updates, checkpoints and exits; an
inference that misses its deadline holds the arm and is counted."""

from __future__ import annotations

import json
import time

import numpy as np

from data_collection.rollout import delayed_labels
from policy import checkpoint as ckpt
from policy.finetune import LOG, online_files


def deploy(roscore, name, pretrained, offline_data, out, episodes, **extra):
    args = {
        "checkpoint": pretrained,
        "dataset": offline_data,
        "out": out,
        "episodes": episodes,
        "updates_per_episode": 1,
        "task": "unseen-1",
        "ns": name,
        "seed": 3,
        "stale_grace": 1.0,  # a loaded 2-core machine must not fail the test on a late image
        "watchdog_timeout": 5.0,
        **extra,
    }
    argv = ["roslaunch", "fosp_robot", "deploy.launch", *[f"{k}:={v}" for k, v in args.items()]]
    proc = roscore.start(name, argv)
    deadline = time.monotonic() + 240
    while proc.poll() is None:  # policy_node is required: the launch ends when it is done
        assert time.monotonic() < deadline, roscore.log_of(name)
        time.sleep(0.5)
    return roscore.log_of(name)


def test_policy_node_finetunes_full_episodes_over_ros(roscore, pretrained, offline_data, tmp_path):
    out = tmp_path / "ros_run"
    log = deploy(roscore, "ft_ros", pretrained, offline_data, out, 2)
    files = online_files(out)
    assert len(files) == 2, log
    assert ckpt.load(out)["applied"] == [p.name for p in files]
    assert "policy_node done: 2 episodes" in log
    for path in files:
        from data_collection.dataset import Dataset

        ep = Dataset(out / "online").read(path)
        assert ep.metadata["env"] == "ros" and ep.num_actions == 80
        counts, misses = ep.metadata["policy_counts"], ep.metadata["deadline_misses"]
        assert sum(counts) + misses == 80
        assert len(ep.metadata["acted_by"]) == 80  # who acted, per step (-1: held)
        # the sim backend's truth, labelled by the simulated operator (2-step delay)
        for field in ("reward", "cost"):
            assert np.array_equal(ep.steps[field], delayed_labels(ep.steps[f"oracle_{field}"], 2))
    lines = [json.loads(x) for x in (out / LOG).read_text().splitlines()]
    assert [r["index"] for r in lines] == [0, 1]


def test_deadline_miss_holds_the_arm(roscore, pretrained, offline_data, tmp_path):
    out = tmp_path / "ros_miss"
    # a deadline no inference can meet: every step holds and executes no motion
    log = deploy(roscore, "ft_miss", pretrained, offline_data, out, 1, deadline=1e-7)
    (path,) = online_files(out)
    from data_collection.dataset import Dataset

    ep = Dataset(out / "online").read(path)
    assert ep.metadata["deadline_misses"] == 80 and ep.metadata["policy_counts"] == [0, 0]
    assert ep.metadata["acted_by"] == [-1] * 80  # no actor executed any step
    assert not ep.steps["action"].any()  # the stored actions are what the arm did: nothing
    assert "deadline miss" in log and "misses 80" in log
    # the arm node really held: its pose never moved
    assert np.allclose(ep.steps["pose"], ep.steps["pose"][0], atol=2e-3)


OPERATOR = """
import json, os, signal, sys, time
from xmlrpc.client import ServerProxy
import rosgraph, rospy
from std_msgs.msg import String
from std_srvs.srv import Trigger

ns = sys.argv[1]
rospy.init_node("operator", anonymous=True)
resets, step = [0], [0]
def on_event(msg):
    if json.loads(msg.data)["event"] == "reset":
        resets[0] += 1
        step[0] = 0
def on_labels(msg):
    step[0] = json.loads(msg.data)["step"]
rospy.Subscriber(f"{ns}/events", String, on_event)
rospy.Subscriber(f"{ns}/labels", String, on_labels)
def status():
    return json.loads(rospy.wait_for_message(f"{ns}/status", String, 5).data)
def at_step(after, n):
    # the first take after `after` resets that reaches step n: a loaded machine may drop a take
    # on a late image by itself, and the operator then acts in the next one
    while not (resets[0] > after and step[0] >= n):
        time.sleep(0.01)
    return resets[0]
# the operator's e-stop at step 15 of the first take; the node must stop and wait
stopped_take = at_step(0, 15)
print("ESTOP", rospy.ServiceProxy(f"{ns}/estop", Trigger)().success, flush=True)
time.sleep(2.0)
# still latched, and no reset meanwhile
print("WAITING", status()["estopped"], resets[0] == stopped_take, flush=True)
print("RELEASE", rospy.ServiceProxy(f"{ns}/release_estop", Trigger)().success, flush=True)
# a later take: arm_node stalls 1.5 s (stopped), the observation goes stale
at_step(stopped_take, 15)
uri = rosgraph.Master("/operator").lookupNode(f"{ns}/arm_node")
pid = ServerProxy(uri).getPid("/operator")[2]
os.kill(pid, signal.SIGSTOP)
time.sleep(1.5)
os.kill(pid, signal.SIGCONT)
print("STALLED", pid, flush=True)
rospy.spin()
"""


def test_policy_node_stops_on_estop_and_rerecords_a_stalled_episode(
    roscore, pretrained, offline_data, tmp_path
):
    """deploy.launch with an operator: an e-stop mid-episode ends it (stored marked, never
    trained on) and the node waits, latched, for the release; a 1.5 s stall of arm_node drops
    the take and records the episode again, without a traceback."""
    import sys

    from data_collection.dataset import Dataset
    from policy.policy_node import INTERRUPTED_DIR

    out = tmp_path / "ros_stop"
    operator = roscore.start("operator", [sys.executable, "-c", OPERATOR, "/ft_stop"])
    try:
        log = deploy(roscore, "ft_stop", pretrained, offline_data, out, 1)
    finally:
        roscore.stop(operator)
    said = roscore.log_of("operator")
    assert "ESTOP True" in said and "RELEASE True" in said and "STALLED" in said, said + log
    assert "WAITING True True" in said, said  # latched for 2 s, no reset meanwhile: it waited
    assert "ARM STOPPED (estop" in log and "stored as interrupted" in log, log
    assert "recording it again" in log and "Traceback" not in log, log
    assert "policy_node done: 1 episodes" in log, log
    files = online_files(out)
    assert len(files) == 1 and ckpt.load(out)["applied"] == [p.name for p in files]
    for path in files:
        ep = Dataset(out / "online").read(path)
        assert ep.num_actions == 80 and "interrupted" not in ep.metadata
    (stopped,) = [e for _, e in Dataset(out / INTERRUPTED_DIR).episodes()]
    assert stopped.metadata["interrupted"] == "estop" and stopped.metadata["status"] == "aborted"
    assert stopped.num_actions < 80
    # the interrupted take is the same layout as the kept episode 0, and is not in the replay
    ep0 = Dataset(out / "online").read(files[0])
    assert stopped.metadata["layout_seed"] == ep0.metadata["layout_seed"]
