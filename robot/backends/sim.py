"""The simulated backend: the MuJoCo SafeReach world in-process.

It replaces both drivers at the topic boundary: arm_node publishes its pose like franka_ros
would and its 64x64 camera image like camera_node would. One `send` = one control period of
physics (SafeReachSim.step_to); the labels the simulator knows come back with it. So the
per-step limit of the safety filter is a limit per simulated control period whatever the rate of
the action messages (a faster stream only makes simulated time run faster): no rate limit here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot.backends.base import BackendEvent
from robot.sim.world import SafeReachSim, SimConfig, StepLabels
from robot.task_spec import load_task


class SimBackend:
    name = "sim"
    steps_physics = True
    publishes_images = True
    robot_mode = None  # no driver state machine: nothing to recover, no external stop

    def __init__(
        self, task: str = "train", config: SimConfig | None = None, seed: int | None = None
    ):
        config = config or SimConfig()
        if config.substeps // config.controller_every < 1:
            raise ValueError(
                f"control_hz {config.limits.step.control_hz} is too high for the simulator: one "
                f"control period must hold at least one {config.controller_every}-step "
                f"controller tick of {config.physics_dt} s (at most "
                f"{1 / (config.controller_every * config.physics_dt):.0f} Hz)"
            )
        self.task = load_task(task)
        self.sim = SafeReachSim(self.task, config)
        self.rng = np.random.default_rng(seed)
        self.reset()

    @property
    def period(self) -> float:
        return 1.0 / self.sim.limits.step.control_hz

    def measured_pose(self) -> np.ndarray:
        """The pose after the last control period (a snapshot: safe to read from any thread,
        also while send() is stepping the world)."""
        return self._pose.copy()

    def send(self, pose: np.ndarray) -> StepLabels:
        labels = self.sim.step_to(pose)
        self._pose = np.array(self.sim.tcp_pose(), dtype=np.float64)
        return labels

    def hold(self, pose: np.ndarray | None) -> None:
        """Nothing to do: physics runs only inside send() (one control period each), so the next
        period already runs with the held pose that arm_node's loop sends."""

    def reset(self, layout_seed: int | None = None) -> dict[str, Any]:
        if layout_seed is None:
            layout_seed = int(self.rng.integers(2**31 - 1))
        self.sim.reset(self.task.sample_layout(int(layout_seed)))
        self._pose = np.array(self.sim.tcp_pose(), dtype=np.float64)
        return {"layout_seed": int(layout_seed), "task": self.task.name}

    def image(self) -> np.ndarray:
        return self.sim.render()

    def full_image(self, width: int, height: int) -> np.ndarray:
        return self.sim.render(width, height, camera="overview")

    def labels_dict(self, labels: StepLabels) -> dict[str, Any]:
        return {
            "reward": labels.reward,
            "cost": labels.cost,
            "touched_target": bool(labels.touched_target),
            "touched_obstacles": labels.touched_obstacles.tolist(),
            "disturbed_obstacles": labels.disturbed_obstacles.tolist(),
            "obstacle_positions": self.sim.obstacle_positions().tolist(),
            "contact_force": float(labels.contact_force),
            "layout_seed": self.sim.layout.seed if self.sim.layout else None,
        }

    def poll_events(self) -> list[BackendEvent]:
        return []

    def recover(self) -> bool:
        return True

    def close(self) -> None:
        self.sim.close()
