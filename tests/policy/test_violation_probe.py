"""benchmarks/violations.py's post-touch figures on constructed episodes (counted by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.violations import post_touch


def _episode(reward: list[int], cost: list[int], a_z: list[float]) -> dict[str, np.ndarray]:
    action = np.zeros((len(a_z), 6), np.float32)
    action[:, 2] = a_z
    return {"reward": np.array(reward, float), "cost": np.array(cost, float), "action": action}


def test_post_touch_figures_by_hand():
    # touched at row 2; contact at row 4, after the touch; rows 2-4 act, row 5 is padding
    camping = _episode([0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 0], [0, 0, -1, -0.8, 0.2, 9])
    # a contact before the touch: a violation, but not one after the touch
    pushed_first = _episode([0, 0, 0, 1, 1, 1], [0, 1, 0, 0, 1, 0], [0, 0, 0, 0.5, 0.5, 9])
    safe_failure = _episode([0] * 4, [0] * 4, [0.1] * 4)
    r = post_touch([camping, pushed_first, safe_failure])
    assert (r["tests"], r["sr"], r["cv"]) == (3, pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert r["violations after the touch"] == 1
    # post-touch a_z: (-1, -0.8, 0.2) and (0.5, 0.5): mean -0.12, 2 of 5 pressing
    assert r["post-touch a_z"] == pytest.approx(-0.12)
    assert r["pressing share"] == pytest.approx(0.4)
    # post-touch contacts: row 4 of the first (rows 2-3 before it press: 100 %), row 4 of the
    # second (row 3 before it does not press: 0 %)
    assert r["post-touch contacts"] == 2
    assert r["pressing before contact"] == pytest.approx(0.5)
