"""The finetuning learning-curve plot reads a run's finetune.jsonl and writes a PNG."""

from __future__ import annotations

import json

import numpy as np

from policy.evaluate import EvalResult
from policy.table3 import plot_learning_curve


def test_learning_curve_png_from_a_finetune_log(tmp_path):
    log = tmp_path / "finetune.jsonl"
    rows = [
        {"index": i, "success": i % 2 == 0, "violation": i == 3, "sr_so_far": 0.5,
         "cv_so_far": 0.1, "steps_offline": 40, "steps_online": 40}
        for i in range(5)
    ]  # fmt: skip
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = plot_learning_curve(log, tmp_path / "curve.png", EvalResult("unseen-1", 20, 10, 2, 0, 0))
    import cv2

    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
    assert np.std(image) > 10  # something was drawn


def test_episode_line_shows_the_selection_only_where_there_is_one():
    from policy.finetune import EpisodeReport

    def report(p_offline: float, offline: int) -> str:
        return EpisodeReport(
            index=3, file="f", steps_offline=offline, steps_online=80 - offline,
            p_offline=p_offline, success=True, violation=False, sr_so_far=1.0, cv_so_far=0.0,
            losses={}, lambda_p=0.1, t_episode=1.0, t_updates=2.0, t_checkpoint=0.1,
        ).line()  # fmt: skip

    assert "offline 30/80 new 50/80 (P_off 0.41)" in report(0.41, 30)
    direct = report(float("nan"), 0)
    assert "new 80/80  S-" in direct and "nan" not in direct.split("wm")[0]
