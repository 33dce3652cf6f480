"""policy_node over ROS: `roslaunch fosp_robot deploy.launch` (sim.launch + policy_node) on a real
roscore runs full 80-step finetuning episodes, labels them, updates, checkpoints and exits; an
inference that misses its deadline holds the arm and is counted."""

from __future__ import annotations

import json
import time

import numpy as np

from data_collection.scripted import delayed_labels
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
    assert not ep.steps["action"].any()  # the stored actions are what the arm did: nothing
    assert "deadline miss" in log and "misses 80" in log
    # the arm node really held: its pose never moved
    assert np.allclose(ep.steps["pose"], ep.steps["pose"][0], atol=2e-3)
