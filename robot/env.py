"""SafeReachEnv: the gymnasium interface every consumer uses (collector, trainer, evaluator).

Observation {"image": uint8[64, 64, 3] RGB, "pose": float32[6]} (pose: TCP xyz in the robot base
frame, metres, + rotation vector relative to the home orientation, see robot.geometry). Action
float32[6] in [-1, 1] -> per-step pose delta. reward = 1 while the robot touches the target,
info["cost"] = 1 from an obstacle's first touch until it rests (FOSP App. D.1). An episode is 80
steps; it ends by truncation only (the paper's fixed-length trajectories).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from robot.outcome import EpisodeOutcome
from robot.sim.world import SafeReachSim, SimConfig
from robot.spaces import EPISODE_STEPS, safereach_spaces
from robot.task_spec import Layout, TaskSpec, load_task


@dataclass(frozen=True)
class EnvConfig:
    task: str = "train"
    episode_steps: int = EPISODE_STEPS
    sim: SimConfig = field(default_factory=SimConfig)
    render_size: tuple[int, int] = (480, 480)  # (width, height) of render() for people


class SafeReachEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: EnvConfig | None = None, task: str | TaskSpec | None = None):
        config = config or EnvConfig()
        spec = task if isinstance(task, TaskSpec) else load_task(task or config.task)
        self.config = config
        self.task = spec
        self.sim = SafeReachSim(spec, config.sim)
        size = config.sim.image_size
        self.render_mode = "rgb_array"
        self.observation_space, self.action_space = safereach_spaces(size)
        self.metadata = {**self.metadata, "render_fps": config.sim.limits.step.control_hz}
        self._steps = 0
        self.outcome = EpisodeOutcome()

    @property
    def layout(self) -> Layout | None:
        return self.sim.layout

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict, dict]:
        """New episode. The layout comes from options["layout_seed"] if given, else from the env's
        RNG (seeded by `seed`), so reset(seed=k) is reproducible."""
        super().reset(seed=seed)
        options = options or {}
        layout_seed = options.get("layout_seed")
        if layout_seed is None:
            layout_seed = int(self.np_random.integers(2**31 - 1))
        self.sim.reset(self.task.sample_layout(int(layout_seed)))
        self._steps = 0
        self.outcome.reset()
        return self._observation(), self._info(labels=None)

    def step(self, action: np.ndarray):
        labels = self.sim.step(np.asarray(action, dtype=np.float64))
        self._steps += 1
        self.outcome.update(labels.reward, labels.cost)
        truncated = self._steps >= self.config.episode_steps
        return self._observation(), labels.reward, False, truncated, self._info(labels)

    def render(self) -> np.ndarray:
        width, height = self.config.render_size
        return self.sim.render(width, height, camera="overview")

    def close(self) -> None:
        self.sim.close()

    def _observation(self) -> dict[str, np.ndarray]:
        return {"image": self.sim.render(), "pose": self.sim.tcp_pose().astype(np.float32)}

    def _info(self, labels) -> dict[str, Any]:
        n = self.sim.n_obstacles
        return {
            "cost": 0.0 if labels is None else labels.cost,
            "step": self._steps,
            "touched_target": False if labels is None else labels.touched_target,
            "touched_obstacles": np.zeros(n, bool) if labels is None else labels.touched_obstacles,
            "disturbed_obstacles": (
                np.zeros(n, bool) if labels is None else labels.disturbed_obstacles
            ),
            "obstacle_positions": self.sim.obstacle_positions(),
            "commanded_pose": self.sim.commanded_pose.copy(),
            "success": self.outcome.success,
            "violation": self.outcome.violation,
            "layout_seed": self.sim.layout.seed if self.sim.layout else None,
            # N, the step's largest robot-obstacle contact force (franka: |O_F_ext_hat_K|)
            "contact_force": 0.0 if labels is None else labels.contact_force,
        }
