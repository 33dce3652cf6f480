"""Live labels: operator label events -> one (reward, cost) pair per recorded row.

A row's labels are the label state when its observation arrives, OR-ed with anything switched on
during that control step, so a quick tap or an on-off toggle inside one step (100 ms at 10 Hz) is
never lost. A label switched off during a step is off for that row (its state on arrival).
Rewards and costs are binary in SafeReach (reward 1 while touching the target, cost 1 from an
obstacle's first touch until it rests: FOSP App. D.1).
"""

from __future__ import annotations

from data_collection.teleop.base import LabelEvent


class LiveLabels:
    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.state = {"reward": False, "cost": False}
        self._during = {"reward": False, "cost": False}
        self.log: list[dict] = []  # every event with the row it landed in (episode metadata)

    def apply(self, event: LabelEvent, row: int) -> None:
        label, action = event.label, event.action
        if action == "toggle":
            self.state[label] = not self.state[label]
        elif action == "on":
            self.state[label] = True
        elif action == "off":
            self.state[label] = False
        elif action != "mark":
            raise ValueError(f"unknown label action {action!r}")
        if action == "mark" or self.state[label]:
            self._during[label] = True
        self.log.append({"row": row, "label": label, "action": action, "source": event.source})

    def close_row(self) -> tuple[float, float]:
        """(reward, cost) of the row being recorded; starts the next step."""
        reward = float(self.state["reward"] or self._during["reward"])
        cost = float(self.state["cost"] or self._during["cost"])
        self._during = {"reward": False, "cost": False}
        return reward, cost
