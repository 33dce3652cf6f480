"""Cost labels suggested from the arm's contact force, for the operator to confirm.

FOSP's cost rule (App. D.1, Fig. 9) is 1 from the robot's first touch of an obstacle until the
obstacle stops moving. The force the arm measures (franka: the external force estimate
`O_F_ext_hat_K`; the sim: the robot-obstacle contact force, episode field `contact_force`) shows
the touch; the obstacle's sliding after the robot lets go is not in it, so every run of rows
above the threshold is extended by `settle_rows` (the obstacles' typical settling time). These
are suggestions: nothing here writes labels (docs/dataset.md, "label sources").
"""

from __future__ import annotations

import numpy as np

FORCE_THRESHOLD = 3.0  # N: the Panda's estimate is noisy at ~1-2 N in free motion
SETTLE_ROWS = 2  # rows an obstacle keeps moving after contact (0.2 s at 10 Hz)


def force_cost_rows(
    force: np.ndarray, threshold: float = FORCE_THRESHOLD, settle_rows: int = SETTLE_ROWS
) -> np.ndarray:
    """Per row: suggested cost (bool). Row 0 never (no action led to it)."""
    force = np.asarray(force, np.float64)
    touch = force > threshold
    touch[0] = False
    suggested = touch.copy()
    for k in range(1, settle_rows + 1):
        suggested[k:] |= touch[:-k]
    return suggested


def intervals(rows: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as (first, last) row pairs, for drawing and for one-key acceptance."""
    rows = np.asarray(rows, bool).astype(np.int8)
    edges = np.diff(np.r_[0, rows, 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def precision_recall(
    suggested: np.ndarray, truth: np.ndarray
) -> tuple[float, float, int, int, int]:
    """Row-level precision and recall of suggested cost rows against the truth, and the counts
    (true positives, suggested, true)."""
    s, t = np.asarray(suggested, bool), np.asarray(truth) > 0
    tp = int(np.sum(s & t))
    precision = tp / s.sum() if s.sum() else float("nan")
    recall = tp / t.sum() if t.sum() else float("nan")
    return precision, recall, tp, int(s.sum()), int(t.sum())
