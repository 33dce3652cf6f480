"""Success and violation of the episode so far, as FOSP's Table 3 counts them: success = any
reward (the target was touched), violation = any cost (an obstacle was disturbed). One tracker
for the in-process env and the ROS env, so both report the same rule."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EpisodeOutcome:
    success: bool = False
    violation: bool = False

    def reset(self) -> None:
        self.success = self.violation = False

    def update(self, reward: float, cost: float) -> None:
        self.success |= bool(reward > 0)
        self.violation |= bool(cost > 0)
