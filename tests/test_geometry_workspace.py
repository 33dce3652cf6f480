import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robot.geometry import matrix_to_quat, matrix_to_rotvec, quat_to_matrix, rotvec_to_matrix
from robot.workspace import ControlLimits

finite = st.floats(-1e6, 1e6, allow_nan=False)


def test_rotvec_round_trip_including_near_pi():
    rng = np.random.default_rng(0)
    for angle in [0.0, 1e-8, 0.3, 2.0, np.pi - 1e-6, np.pi]:
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        rv = axis * angle
        back = matrix_to_rotvec(rotvec_to_matrix(rv))
        np.testing.assert_allclose(rotvec_to_matrix(back), rotvec_to_matrix(rv), atol=1e-6)


def test_quaternion_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        np.testing.assert_allclose(matrix_to_quat(quat_to_matrix(q)), q, atol=1e-9)


def test_rotation_about_z_by_90_degrees():
    m = rotvec_to_matrix([0, 0, np.pi / 2])
    np.testing.assert_allclose(m @ [1, 0, 0], [0, 1, 0], atol=1e-12)


@settings(max_examples=300, deadline=None)
@given(st.lists(finite, min_size=6, max_size=6), st.lists(finite, min_size=6, max_size=6))
def test_clip_pose_always_inside_limits(pose, reference):
    limits = ControlLimits()
    ws = limits.workspace
    ref = limits.clip_pose(np.asarray(reference))  # a measured pose is physically valid
    out = limits.clip_pose(np.asarray(pose), reference=ref)
    assert np.all(np.isfinite(out))
    assert np.all(out[:3] >= ws.low - 1e-12) and np.all(out[:3] <= ws.high + 1e-12)
    assert np.linalg.norm(out[3:]) <= ws.command_tilt + 1e-9


def test_action_scaling_clips_to_unit_box():
    limits = ControlLimits()
    delta = limits.action_to_delta(np.array([5, -5, 0.5, 9, 0, -0.25]))
    step = limits.step
    np.testing.assert_allclose(
        delta,
        [
            step.max_translation,
            -step.max_translation,
            0.5 * step.max_translation,
            step.max_rotation,
            0,
            -0.25 * step.max_rotation,
        ],
    )
