"""benchmarks/cost_head.py's AUC and row classes on constructed values (counted by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.cost_head import BEFORE, auc, contact_coming


def test_auc_counts_pairs_and_halves_ties():
    # positives {0.9, 0.5}, negatives {0.1, 0.5}: 0.9 > both, 0.5 > 0.1, 0.5 = 0.5 (half): 3.5 / 4
    score = np.array([0.9, 0.1, 0.5, 0.5])
    assert auc(score, np.array([True, False, True, False])) == pytest.approx(0.875)
    assert auc(score, np.array([False, True, False, True])) == pytest.approx(0.125)
    assert math.isnan(auc(score, np.zeros(4, bool)))  # no positive: undefined, not 0 or 1
    # the rank form equals the pair count on many ties
    rng = np.random.default_rng(0)
    score, positive = rng.integers(0, 5, 300).astype(float), rng.random(300) < 0.3
    pos, neg = score[positive], score[~positive]
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert auc(score, positive) == pytest.approx(pairs, abs=1e-12)


def test_contact_coming_marks_the_rows_before_a_first_contact_and_safe_episodes():
    assert BEFORE == 5
    # episode A (rows 0-9): first contact at its row 7 -> rows 2-6 coming; a later contact ignored
    # episode B (rows 10-13): contact at its row 2 -> rows 10-11 (fewer than BEFORE exist)
    # episode C (rows 14-16): no contact -> safe
    cost = np.zeros(17, bool)
    cost[[7, 9, 12]] = True
    episodes = [np.arange(0, 10), np.arange(10, 14), np.arange(14, 17)]
    coming, safe = contact_coming(cost, episodes)
    assert np.flatnonzero(coming).tolist() == [2, 3, 4, 5, 6, 10, 11]
    assert np.flatnonzero(safe).tolist() == [14, 15, 16]
