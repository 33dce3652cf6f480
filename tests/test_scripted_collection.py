"""Scripted operators, the delayed simulated labeller, paper-mix collection, dataset CLI."""

import numpy as np
import pytest

from data_collection.dataset import Dataset, category_counts
from data_collection.rollout import delayed_labels
from data_collection.scripted import PAPER_MIX, collect_mix, mix_counts
from fosp.cli import main


def test_delayed_labels_shift_the_truth_late():
    truth = np.array([0, 0, 1, 1, 0, 0, 0, 1, 1], np.float32)  # row 0 never has a label
    np.testing.assert_array_equal(delayed_labels(truth, 0), truth)
    np.testing.assert_array_equal(delayed_labels(truth, 2), [0, 0, 0, 0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(delayed_labels(truth, 1), [0, 0, 0, 1, 1, 0, 0, 0, 1])


def test_mix_counts():
    assert mix_counts(200) == PAPER_MIX
    assert sum(mix_counts(7).values()) == 7
    assert mix_counts(8) == {
        "safe+success": 5,
        "safe+fail": 1,
        "unsafe+success": 2,
        "unsafe+fail": 0,
    }


@pytest.fixture(scope="module")
def small_dataset(paper_mix_8):
    return paper_mix_8  # the session's dataset (tests/conftest.py)


def test_collect_hits_the_mix_exactly(small_dataset):
    out, counts = small_dataset
    summaries, errors = Dataset(out).index()
    assert not errors
    assert category_counts(summaries) == mix_counts(8)
    assert counts["attempts"] >= 8


def test_labels_match_ground_truth_within_the_reaction_delay(small_dataset):
    out, _ = small_dataset
    for _, episode in Dataset(out).episodes():
        steps = episode.steps
        assert episode.metadata["label_source"] == "simulated-operator"
        assert episode.metadata["label_delay_steps"] == 2
        for field in ("reward", "cost"):
            truth = steps[f"oracle_{field}"]
            np.testing.assert_array_equal(steps[field], delayed_labels(truth, 2))
        assert len(episode) == 81


def test_rerun_completes_instead_of_duplicating(small_dataset):
    out, _ = small_dataset
    before = len(Dataset(out))
    counts = collect_mix(str(out), episodes=8, seed=1, progress=False)
    assert counts["attempts"] == 0 and len(Dataset(out)) == before


def test_dataset_cli(small_dataset, tmp_path, capsys):
    out, _ = small_dataset
    plot = tmp_path / "stats.png"
    assert main(["dataset", "stats", str(out), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "| safe+success | 5 |" in text and "| unsafe+fail | 0 |" in text
    assert plot.stat().st_size > 5000
    assert main(["dataset", "validate", str(out)]) == 0
    broken = tmp_path / "broken"
    broken.mkdir()
    first = Dataset(out).episode_paths()[0]
    (broken / first.name).write_bytes(first.read_bytes()[:2000])
    assert main(["dataset", "validate", str(broken)]) == 1
    assert first.name in capsys.readouterr().out


def test_sim_view_writes_both_views(tmp_path):
    import cv2

    out = tmp_path / "scene.png"
    assert main(["sim", "view", "--task", "unseen-3", "--seed", "0", "--out", str(out)]) == 0
    picture = cv2.imread(str(out))
    assert picture.shape == (480, 480 + 640, 3)
