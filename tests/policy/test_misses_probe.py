"""benchmarks/misses.py's figures on constructed paths and layouts (computed by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.misses import miss, summary
from robot.task_spec import Layout

SLOTS = np.array([[0.585, -0.075], [0.585, 0.0], [0.585, 0.075]])


def _layout(slot: int) -> Layout:
    return Layout(
        task="t", seed=0, target_index=slot, obstacle_indices=(0,), target_xy=SLOTS[slot],
        target_yaw=0.0, obstacle_xy=np.zeros((1, 2)), obstacle_yaw=np.zeros(1),
    )  # fmt: skip


def _steps(path: list[tuple[float, float, float]], touched: bool, hit: bool):
    pose = np.zeros((len(path), 6), np.float32)
    pose[:, :3] = path
    reward, cost = np.zeros(len(path)), np.zeros(len(path))
    reward[-1], cost[-1] = float(touched), float(hit)
    return {"pose": pose, "oracle_reward": reward, "oracle_cost": cost}


def test_a_miss_at_another_slot_by_hand():
    # target in the middle slot; the arm passes 3 cm beside it at z 0.12 and comes down at
    # (0.625, 0.07): 4 cm beyond the target in x, nearest the +y slot
    path = [(0.40, 0.0, 0.12), (0.585, 0.03, 0.12), (0.625, 0.07, 0.03)]
    m = miss(_steps(path, touched=False, hit=True), _layout(1), SLOTS)
    assert (m["success"], m["violation"]) == (0.0, 1.0)
    assert m["closest"] == pytest.approx(0.03, abs=1e-6)
    assert m["low"] == pytest.approx(np.hypot(0.04, 0.07), abs=1e-6)
    assert m["low_dx"] == pytest.approx(0.04, abs=1e-6)
    assert m["other_slot"] == 1.0
    # the same path with the target in the +y slot: the lowest point is at the target's slot
    m = miss(_steps(path, touched=True, hit=False), _layout(2), SLOTS)
    assert (m["success"], m["other_slot"]) == (1.0, 0.0)
    assert m["low"] == pytest.approx(np.hypot(0.04, 0.005), abs=1e-6)


def test_summary_counts_every_episode_and_describes_the_failures_only():
    near = _steps([(0.40, 0.0, 0.12), (0.60, 0.0, 0.05)], touched=True, hit=False)
    wide = _steps([(0.40, 0.0, 0.12), (0.625, 0.07, 0.03)], touched=False, hit=False)
    short = _steps([(0.40, 0.0, 0.12), (0.565, 0.0, 0.03)], touched=False, hit=True)
    s = summary([miss(e, _layout(1), SLOTS) for e in (near, wide, short)])
    assert (s["episodes"], s["failures"], s["violating failures"]) == (3, 2, 1)
    # failures' lowest points: (0.04, 0.07) and (-0.02, 0): medians of the two
    assert s["low"] == pytest.approx((np.hypot(0.04, 0.07) + 0.02) / 2, abs=1e-6)
    assert s["low_dx"] == pytest.approx((0.04 - 0.02) / 2, abs=1e-6)
    assert s["closest"] == s["low"]  # both failures come closest at their lowest point
    assert s["other slot"] == 1
