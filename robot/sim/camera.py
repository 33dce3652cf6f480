"""Pinhole projection of world points into a MuJoCo camera's image (for checks and overlays)."""

from __future__ import annotations

import mujoco
import numpy as np


def project(
    model: mujoco.MjModel, data: mujoco.MjData, camera: str, points: np.ndarray, size: int
) -> np.ndarray:
    """Pixel (column, row) of each world point in a size x size render of `camera`."""
    cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if cam < 0:
        raise KeyError(f"no camera named {camera!r}")
    pos = data.cam_xpos[cam]
    rot = data.cam_xmat[cam].reshape(3, 3)  # columns: camera x (right), y (up), z (backwards)
    local = (np.atleast_2d(points) - pos) @ rot
    focal = 0.5 * size / np.tan(np.deg2rad(model.cam_fovy[cam]) / 2)
    col = 0.5 * size + focal * local[:, 0] / -local[:, 2]
    row = 0.5 * size - focal * local[:, 1] / -local[:, 2]
    return np.stack([col, row], axis=1)
