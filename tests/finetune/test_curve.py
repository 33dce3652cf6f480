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
    from policy.table3 import Outcomes

    with_still = plot_learning_curve(
        log, tmp_path / "still.png", EvalResult("unseen-1", 20, 10, 2, 0, 0), Outcomes(5, 2, 1)
    )
    assert not np.array_equal(cv2.imread(str(with_still)), image)  # the no-update lines


def test_learning_curve_shows_the_operators_share_only_with_takeovers(tmp_path):
    def purple_pixels(operator_steps: int) -> int:
        log = tmp_path / f"finetune-{operator_steps}.jsonl"
        rows = [
            {"index": i, "success": True, "violation": False, "sr_so_far": 1.0,
             "cv_so_far": 0.0, "steps_offline": 0, "steps_online": 80 - operator_steps,
             "operator_steps": operator_steps, "interventions": int(operator_steps > 0)}
            for i in range(5)
        ]  # fmt: skip
        log.write_text("".join(json.dumps(r) + "\n" for r in rows))
        import cv2

        image = cv2.imread(str(plot_learning_curve(log, tmp_path / f"c{operator_steps}.png")))
        purple = np.array([189, 103, 148])  # BGR of matplotlib's tab:purple
        return int((np.abs(image.astype(int) - purple).max(axis=2) < 30).sum())

    assert purple_pixels(0) == 0
    assert purple_pixels(20) > 200  # the 25 % line across the episodes, and its legend entry


def test_episode_line_shows_the_selection_only_where_there_is_one():
    from policy.finetune import EpisodeReport

    def report(p_offline: float, offline: int, violation: bool = False, t_run=1.0) -> str:
        return EpisodeReport(
            index=3, file="f", steps_offline=offline, steps_online=80 - offline,
            cost_steps_offline=4, cost_steps_online=1,
            p_offline=p_offline, success=True, violation=violation, sr_so_far=1.0, cv_so_far=0.0,
            losses={}, lambda_p=0.1, t_episode=t_run, t_updates=2.0, t_checkpoint=0.1,
        ).line()  # fmt: skip

    assert "offline 30/80 new 50/80 (P_off 0.41)" in report(0.41, 30)
    direct = report(float("nan"), 0)
    assert "new 80/80  S-" in direct and "nan" not in direct.split("wm")[0]
    assert "cost steps" not in report(0.41, 30)  # a safe episode has nothing to attribute
    assert "SV (cost steps off 4 new 1)" in report(0.41, 30, violation=True)
    assert "[run 1.0 s, 2.0 s updates" in report(0.41, 30)
    # an episode run before a crash and updated on resume has no run time to show
    assert "[run resumed, 2.0 s updates" in report(0.41, 30, t_run=float("nan"))


def test_cost_steps_are_attributed_to_the_actor_that_acted():
    from data_collection.episode import Episode
    from policy.finetune import cost_steps_by_actor

    cost = np.zeros(7, np.float32)  # 7 rows, 6 actions: action t earns row t + 1
    cost[[2, 3, 6]] = 1.0  # actions 1, 2 by the offline actor, 5 by the new one, 3 held
    ep = Episode(metadata={"acted_by": [0, 0, 0, -1, 1, 1]}, steps={"cost": cost})
    assert cost_steps_by_actor(ep) == [2, 1]
    ep.steps["oracle_cost"] = np.array([0, 0, 0, 0, 1, 1, 0], np.float32)  # the truth wins
    assert cost_steps_by_actor(ep) == [0, 1]  # the held action 3 is no actor's
    del ep.metadata["acted_by"]  # an older run: everything is the new actor's
    assert cost_steps_by_actor(ep) == [0, 2]
