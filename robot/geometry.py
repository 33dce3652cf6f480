"""Rotation helpers (NumPy only) shared by the simulator, the safety filter and the franka backend.

Orientation convention used everywhere in the stack: the pose's rotation part is the rotation
vector (axis * angle, base frame) of R_ee @ R_home.T, i.e. the end effector's orientation relative
to the home orientation (gripper pointing down). It stays near zero in the task, so it never
wraps around at pi the way rpy or an absolute rotation vector of a downward gripper would.
"""

from __future__ import annotations

import math

import numpy as np


def skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues' formula, R = I + sin(t)/t K + (1 - cos(t))/t^2 K^2 with K = skew(rotvec), written
    out in scalars: the safety filter calls it several times per command."""
    x, y, z = (float(v) for v in np.asarray(rotvec, dtype=np.float64).reshape(3))
    angle_sq = x * x + y * y + z * z
    angle = math.sqrt(angle_sq)
    if angle < 1e-12:
        return np.array([[1.0, -z, y], [z, 1.0, -x], [-y, x, 1.0]])
    s = math.sin(angle) / angle
    c = (1.0 - math.cos(angle)) / angle_sq
    # K^2 = v v^T - |v|^2 I
    return np.array(
        [
            [1.0 + c * (x * x - angle_sq), c * x * y - s * z, c * x * z + s * y],
            [c * x * y + s * z, 1.0 + c * (y * y - angle_sq), c * y * z - s * x],
            [c * x * z - s * y, c * y * z + s * x, 1.0 + c * (z * z - angle_sq)],
        ]
    )


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """Inverse of rotvec_to_matrix, robust near 0 and near pi."""
    m = np.asarray(matrix, dtype=np.float64)
    cos_angle = np.clip((np.trace(m) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos_angle))
    axis_sin = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]]) / 2.0
    if angle < 1e-6:
        return axis_sin  # sin(angle) ~ angle
    if np.pi - angle > 1e-4:
        return axis_sin * (angle / np.sin(angle))
    # near pi: the axis comes from the symmetric part, its sign from the skew part
    b = (m + np.eye(3)) / 2.0
    axis = np.sqrt(np.clip(np.diag(b), 0.0, None))
    i = int(np.argmax(axis))
    axis = b[:, i] / axis[i]
    if axis_sin @ axis < 0:
        axis = -axis
    return axis / np.linalg.norm(axis) * angle


def quat_to_matrix(quat_wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(quat_wxyz, dtype=np.float64) / np.linalg.norm(quat_wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (w, x, y, z) with w >= 0."""
    m = np.asarray(matrix, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q
