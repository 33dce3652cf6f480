"""The sim backend + safety filter reproduce SafeReachSim.step exactly; contract conversions."""

from __future__ import annotations

import numpy as np
import pytest
import rospy

from robot import ros_contract as rc
from robot.backends import make_backend
from robot.safety import SafetyFilter
from robot.sim.world import SafeReachSim
from robot.task_spec import load_task
from robot.workspace import ControlLimits


def test_filter_plus_step_to_equals_step():
    task = load_task("train")
    layout = task.sample_layout(11)
    ref = SafeReachSim(task)
    ref.reset(layout)
    backend = make_backend("sim", task="train")
    backend.reset(11)
    filt = SafetyFilter()
    filt.reset(ControlLimits().workspace.home_pose())  # what arm_node does after a reset
    rng = np.random.default_rng(2)
    for _ in range(40):
        action = np.clip(rng.uniform(-1.2, 1.2, 6) + [0.5, 0, -0.6, 0, 0, 0], -2, 2)
        expected = ref.step(action)
        got = backend.send(filt.command(action, backend.measured_pose()).pose)
        np.testing.assert_array_equal(backend.sim.commanded_pose, ref.commanded_pose)
        np.testing.assert_array_equal(backend.measured_pose(), ref.tcp_pose())
        assert (got.reward, got.cost) == (expected.reward, expected.cost)
        np.testing.assert_array_equal(got.touched_obstacles, expected.touched_obstacles)
    with pytest.raises(ValueError, match="finite"):
        backend.sim.step_to(np.array([np.nan] * 6))
    ref.close()
    backend.close()


def test_unknown_backend_and_too_fast_sim_are_refused():
    from robot.sim.world import SimConfig
    from robot.workspace import StepLimits

    with pytest.raises(ValueError, match="unknown arm backend"):
        make_backend("ur5")
    fast = SimConfig(limits=ControlLimits(step=StepLimits(control_hz=400)))
    with pytest.raises(ValueError, match="at most 250 Hz"):
        make_backend("sim", config=fast)


def test_pose_message_round_trip_and_absolute_orientation():
    rng = np.random.default_rng(0)
    for _ in range(200):
        pose = np.concatenate([rng.uniform(0.3, 0.7, 3), rng.normal(0, 0.3, 3)])
        msg = rc.pose6_to_msg(pose, rospy.Time(5, 6))
        np.testing.assert_allclose(rc.msg_to_pose6(msg), pose, atol=1e-12)
    home = rc.pose6_to_msg(ControlLimits().workspace.home_pose(), rospy.Time(0))
    q = home.pose.orientation  # hand pointing down: 180 deg about x
    np.testing.assert_allclose([q.w, q.x, q.y, q.z], [0, 1, 0, 0], atol=1e-12)
    action = rc.action_to_msg(np.arange(6, dtype=np.float32))
    assert list(action.data) == [0, 1, 2, 3, 4, 5] and action.layout.dim[0].size == 6
    payload = rc.msg_json(rc.json_msg({"a": np.arange(3), "b": np.float32(1.5)}))
    assert payload == {"a": [0, 1, 2], "b": 1.5}


def test_every_backend_implements_the_whole_interface():
    """The controller calls only ArmBackend's members, so each backend must have all of them
    (none reached for with getattr and a default)."""
    from robot.backends.base import ArmBackend
    from robot.backends.franka import FrankaBackend
    from robot.backends.sim import SimBackend

    members = set(ArmBackend.__annotations__) | {
        name for name in vars(ArmBackend) if not name.startswith("_")
    }
    assert {"robot_mode", "image", "full_image", "labels_dict", "hold", "recover"} <= members
    for backend in (SimBackend, FrankaBackend):
        missing = sorted(name for name in members if not hasattr(backend, name))
        assert missing == [], f"{backend.__name__} lacks {missing}"
