"""The SafeReach env contract shared by the in-process env (robot/env.py) and the ROS env
(robot/ros_env.py), importable without MuJoCo or rospy (the policy node on the real arm)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

EPISODE_STEPS = 80  # control steps per episode (the paper's real-robot trajectories: 80 steps)


def safereach_spaces(image_size: int) -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    """The observation and action spaces of every SafeReach env (in-process and over ROS): a
    uint8 RGB image and the 6-D TCP pose; a 6-D action in [-1, 1]."""
    observation = gym.spaces.Dict(
        {
            "image": gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
            "pose": gym.spaces.Box(-np.inf, np.inf, (6,), np.float32),
        }
    )
    return observation, gym.spaces.Box(-1.0, 1.0, (6,), np.float32)
