"""Small drivers shared by tests: move the TCP to points with a P-controller on the observation."""

from __future__ import annotations

import numpy as np

from robot.task_spec import Layout


def go_to(env, obs, point, steps, gain=1.5):
    """Step towards `point` (xyz) for `steps` steps; returns the per-step records."""
    limits = env.sim.limits
    records = []
    for _ in range(steps):
        err = np.asarray(point) - obs["pose"][:3]
        action = np.zeros(6, np.float32)
        action[:3] = np.clip(gain * err / limits.step.max_translation, -1, 1)
        action[3:] = np.clip(-obs["pose"][3:] / limits.step.max_rotation, -1, 1)
        before = env.sim.obstacle_positions().copy()
        obs, reward, _, _, info = env.step(action)
        records.append(
            {
                "obs": obs,
                "reward": reward,
                "cost": info["cost"],
                "touched": info["touched_obstacles"].copy(),
                "moved": np.linalg.norm(env.sim.obstacle_positions() - before, axis=1),
                "labels": env.sim.last_labels,  # with the per-tick truth (TickRecord)
            }
        )
    return obs, records


def custom_layout(task, target_xy, obstacle_xy) -> Layout:
    obstacle_xy = np.asarray(obstacle_xy, float).reshape(-1, 2)
    return Layout(
        task=task.name,
        seed=-1,
        target_index=0,
        obstacle_indices=tuple(range(len(obstacle_xy))),
        target_xy=np.asarray(target_xy, float),
        target_yaw=0.0,
        obstacle_xy=obstacle_xy,
        obstacle_yaw=np.zeros(len(obstacle_xy)),
    )
