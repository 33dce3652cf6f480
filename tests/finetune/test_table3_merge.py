"""Table 3's summary (intervals across seeds and pooled) and pooling folders that ran different
seeds (benchmarks/table3_merge.py); no learning: the folders are written by hand."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from policy.config import FinetuneConfig, Table3Config
from policy.evaluate import newcombe, wilson
from policy.table3 import (
    Row,
    Table3Error,
    differences,
    finetune_dir,
    merge,
    read_rows,
    summarise,
    write_outputs,
)

ROOT = Path(__file__).resolve().parents[2]


def _rows(
    seed: int, during: tuple[int, int], after: tuple[int, int], before: tuple[int, int] = (18, 7)
) -> list[Row]:
    """One seed of one task: the shared "before" (18 / 7 of 20), then its own phases."""
    return [
        Row("direct", "unseen-3", seed, "before", 20, *before, 10.0),
        Row("direct", "unseen-3", seed, "during", 20, *during, 100.0, 3, 0.2),
        Row("direct", "unseen-3", seed, "after", 20, *after, 30.0),
    ]


def _folder(
    root: Path, name: str, rows: list[Row], source: str = "/run", dataset: str = "/data", **settings
) -> Path:
    """A finished `fosp eval table3` folder: table3.csv plus each run's finetune.json."""
    out = root / name
    out.mkdir()
    write_outputs(rows, summarise(rows), out)
    for r in rows:
        if r.phase == "during":
            cfg = dataclasses.asdict(FinetuneConfig(strategy=r.strategy, seed=r.seed, **settings))
            run = finetune_dir(out, r.strategy, r.seed, r.task)
            run.mkdir(parents=True)
            record = {"task": r.task, "dataset": dataset, "source": source, "finetune": cfg}
            (run / "finetune.json").write_text(json.dumps(record))
    return out


def test_pooled_intervals_are_wilson_on_the_summed_counts_and_before_counts_once():
    rows = _rows(0, (19, 0), (19, 1)) + _rows(1, (14, 2), (14, 3)) + _rows(2, (18, 1), (18, 0))
    by_phase = {s["phase"]: s for s in summarise(rows)}
    after = by_phase["after"]
    # 51 successes of 60: Wilson, z = 1.96, by hand: centre (0.85 + 3.8416 / 120) / (1 + 3.8416
    # / 60) = 0.82894, half 1.96 * sqrt(0.85 * 0.15 / 60 + 3.8416 / 14400) / 1.06403 = 0.09009
    assert after["sr"] == pytest.approx(0.85)
    assert after["sr_pooled_ci"] == pytest.approx((0.73885, 0.91903), abs=1e-4)
    assert after["seeds"] == 3 and after["wall_s"] == pytest.approx(90.0)
    # 4 violations of 60: the pooled interval is narrower than the t interval across 3 seeds
    lo, hi = after["cv_pooled_ci"]
    assert lo > 0 and hi - lo < after["cv_ci"][1] - after["cv_ci"][0]
    # "before": one evaluation copied to 3 rows is 20 episodes, not 60 (Wilson of 18 / 20)
    before = by_phase["before"]
    assert before["sr_ci"] == before["sr_pooled_ci"]
    assert before["sr_pooled_ci"] == pytest.approx((0.6990, 0.9721), abs=1e-3)
    assert before["seeds"] == 3 and before["wall_s"] == pytest.approx(30.0)


def test_first_seed_selects_the_slice_of_seeds():
    assert list(Table3Config(seeds=3).seed_ids) == [0, 1, 2]
    assert list(Table3Config(seeds=1, first_seed=2).seed_ids) == [2]


def test_merging_seed_slices_equals_one_table_over_all_seeds(tmp_path):
    s0, s1 = _rows(0, (19, 0), (19, 1)), _rows(1, (14, 2), (14, 3))
    a, b = _folder(tmp_path, "s0", s0), _folder(tmp_path, "s1", s1)
    rows, summary = merge([b, a], tmp_path / "all")
    assert rows == sorted(
        s0 + s1, key=lambda r: (r.seed, ("before", "during", "after").index(r.phase))
    )
    assert summary == summarise(s0 + s1)
    assert read_rows(tmp_path / "all") == rows
    table = (tmp_path / "all" / "table3.md").read_text()
    assert "| direct | unseen-3 | after | 82.5" in table and "82 [68, 91] / 10 [4, 23]" in table
    assert (tmp_path / "all" / "table3.png").stat().st_size > 0


def test_merge_refuses_a_seed_twice_other_settings_and_corrupt_rows(tmp_path):
    a = _folder(tmp_path, "a", _rows(0, (19, 0), (19, 1)))
    with pytest.raises(Table3Error, match="seed 0 before is in both"):
        merge([a, a], tmp_path / "out")
    # a takeover run is not pooled with one without
    b = _folder(tmp_path, "b", _rows(1, (14, 2), (14, 3)), takeover="scripted")
    with pytest.raises(Table3Error, match=r"differ in takeover \('none' vs 'scripted'\)"):
        merge([a, b], tmp_path / "out")
    # a setting missing from an older run's record counts as its default
    c = _folder(tmp_path, "c", _rows(2, (18, 1), (18, 0)))
    record_path = finetune_dir(c, "direct", 2, "unseen-3") / "finetune.json"
    record = json.loads(record_path.read_text())
    del record["finetune"]["imagined_cost"]
    record_path.write_text(json.dumps(record))
    assert len(merge([a, c], tmp_path / "ok")[0]) == 6
    # a corrupt row names the file, the line and the field
    text = (a / "table3.csv").read_text().replace(",during,20,19,", ",during,20,nineteen,")
    (a / "table3.csv").write_text(text)
    with pytest.raises(Table3Error, match=r"a/table3.csv line 3: successes = 'nineteen'"):
        merge([a, c], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written on a refusal


def test_merging_across_checkpoints_counts_before_once_per_checkpoint(tmp_path):
    # pretraining seeds 1 and 2 (finetuning seed 0 each), and seed 1 again with finetuning seed 1
    p1 = _folder(tmp_path, "p1", _rows(0, (19, 0), (19, 1)), source="/ckpt1")
    p2 = _folder(tmp_path, "p2", _rows(0, (14, 2), (14, 3), before=(16, 2)), source="/ckpt2")
    p1b = _folder(tmp_path, "p1b", _rows(1, (18, 1), (18, 0)), source="/ckpt1")
    with pytest.raises(Table3Error, match=r"differ in source \('/ckpt1' vs '/ckpt2'\)"):
        merge([p1, p2], tmp_path / "out")
    rows, summary = merge([p2, p1b, p1], tmp_path / "all", across_checkpoints=True)
    by_phase = {s["phase"]: s for s in summary}
    # seeds numbered by (checkpoint, finetuning seed): (/ckpt1, 0), (/ckpt1, 1), (/ckpt2, 0)
    during = {r.seed: r.successes for r in rows if r.phase == "during"}
    assert during == {0: 19, 1: 18, 2: 14}
    assert by_phase["during"]["seeds"] == 3 and by_phase["during"]["sr"] == pytest.approx(51 / 60)
    # "before": one row per checkpoint, 18 / 20 and 16 / 20: mean 0.85, Student t with 1 degree
    # of freedom: half = 12.706 * std(0.9, 0.8) / sqrt(2) = 12.706 * 0.070711 / 1.41421 = 0.6353
    before = by_phase["before"]
    assert before["seeds"] == 2 and before["sr"] == pytest.approx(0.85)
    assert before["sr_ci"] == pytest.approx((0.85 - 0.6353, 1.0), abs=1e-4)
    # two equal "before" evaluations from two checkpoints still count twice (40 episodes)
    p3 = _folder(tmp_path, "p3", _rows(0, (17, 0), (17, 0)), source="/ckpt3")
    _, summary = merge([p1, p3], tmp_path / "eq", across_checkpoints=True)
    before = next(s for s in summary if s["phase"] == "before")
    assert before["seeds"] == 2 and before["sr_pooled_ci"] == pytest.approx(wilson(36, 40))
    seeds = (tmp_path / "all" / "seeds.csv").read_text().splitlines()
    assert seeds[1:] == [
        f"direct,unseen-3,0,/ckpt1,0,{p1}",
        f"direct,unseen-3,1,/ckpt1,1,{p1b}",
        f"direct,unseen-3,2,/ckpt2,0,{p2}",
    ]
    # still refused: the same (checkpoint, seed) twice, another dataset
    with pytest.raises(Table3Error, match=r"seed 0 before is in both .* \(checkpoint /ckpt1\)"):
        merge([p1, p2, p1], tmp_path / "out", across_checkpoints=True)
    other = _folder(tmp_path, "o", _rows(0, (1, 0), (1, 0)), source="/ckpt4", dataset="/other")
    with pytest.raises(Table3Error, match=r"differ in dataset \('/data' vs '/other'\)"):
        merge([p1, other], tmp_path / "out", across_checkpoints=True)
    assert not (tmp_path / "out").exists()


def test_merge_command_gives_one_line_errors(tmp_path):
    script = [sys.executable, str(ROOT / "benchmarks" / "table3_merge.py")]
    done = subprocess.run([*script, str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"table3_merge: error: {tmp_path / 'nope'}: no table3.csv (not a finished "
        "`fosp eval table3` output)"
    ]
    a = _folder(tmp_path, "a", _rows(0, (19, 0), (19, 1)))
    done = subprocess.run([*script, str(a), "--out", str(tmp_path / "o")], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0 and "| direct | unseen-3 | during |" in done.stdout


def _unit(strategy: str, task: str, seed: int, *phases: tuple[int, int]) -> list[Row]:
    """One (strategy, task, seed): (successes, violations) of before (20 episodes), no-update
    (40), during (40) and after (20)."""
    sizes = {"before": 20, "no-update": 40, "during": 40, "after": 20}
    return [
        Row(strategy, task, seed, phase, sizes[phase], *counts, 1.0)
        for phase, counts in zip(sizes, phases, strict=True)
    ]


def _two_strategies() -> list[Row]:
    rows = []
    for strategy, during, after in (
        ("direct", ((38, 2), (39, 1)), ((20, 0), (19, 1))),
        ("pex", ((40, 1), (39, 0)), ((20, 0), (20, 0))),
    ):
        for seed in (0, 1):  # before and no-update are the offline policy's: shared
            no_update = ((36, 8), (35, 6))[seed]
            rows += _unit(strategy, "unseen-1", seed, (18, 4), no_update, during[seed], after[seed])
        rows += _unit(strategy, "unseen-2", 0, (20, 2), (40, 4), (40, 2), (20, 1))
    return rows


def test_differences_pool_the_seeds_count_a_shared_before_once_and_compare_with_direct():

    found = {(d["comparison"], d["strategy"], d["task"]): d for d in differences(_two_strategies())}
    gain = found[("after - before", "direct", "unseen-1")]
    # after: 39 of 40 over two seeds; before: 18 of 20 once, not 36 of 40
    assert gain["n"] == (40, 20)
    assert gain["sr"] == pytest.approx(39 / 40 - 18 / 20)
    assert gain["sr_ci"] == pytest.approx(newcombe(39, 40, 18, 20))
    assert gain["cv"] == pytest.approx(1 / 40 - 4 / 20)
    assert gain["cv_ci"] == pytest.approx(newcombe(1, 40, 4, 20))
    updates = found[("during - no-update", "pex", "unseen-1")]  # each seed its own no-update
    assert updates["n"] == (80, 80) and updates["sr"] == pytest.approx((79 - 71) / 80)
    versus = found[("during: pex - direct", "pex", "unseen-1")]
    assert versus["sr_ci"] == pytest.approx(newcombe(79, 80, 77, 80))
    assert versus["cv_ci"] == pytest.approx(newcombe(1, 80, 3, 80))
    # over both tasks: each task's shared before once (20 + 20), the after rows summed
    both = found[("after - before", "direct", "all")]
    assert both["n"] == (60, 40) and both["sr"] == pytest.approx(59 / 60 - 38 / 40)
    assert ("after: direct - direct", "direct", "unseen-1") not in found
    # one evaluation per checkpoint (across checkpoints): every before row counts
    apart = {(d["comparison"], d["strategy"], d["task"]): d
             for d in differences(_two_strategies(), shared_before=False)}  # fmt: skip
    assert apart[("after - before", "direct", "unseen-1")]["n"] == (40, 40)
    alone = differences([r for r in _two_strategies() if r.strategy == "pex"])
    assert alone and not any("direct" in d["comparison"] for d in alone)
    # pex on unseen-1 only: its comparison with direct never pools direct's unseen-2 in
    uneven = differences(
        [r for r in _two_strategies() if (r.strategy, r.task) != ("pex", "unseen-2")]
    )
    scopes = {(d["comparison"], d["task"]) for d in uneven}
    assert ("during: pex - direct", "unseen-1") in scopes and ("after - before", "all") in scopes
    assert not any(c.startswith("during: pex") and t != "unseen-1" for c, t in scopes)


def test_table3_md_shows_the_differences(tmp_path):
    rows = _two_strategies()
    write_outputs(rows, summarise(rows), tmp_path)
    table = (tmp_path / "table3.md").read_text()
    assert "| direct | unseen-1 | after |" in table  # the per-phase table stays first
    lo, hi = (round(100 * x) for x in newcombe(39, 40, 18, 20))
    assert f"| after - before | direct | unseen-1 | +7.5 [{lo:+d}, {hi:+d}] |" in table
    assert "| during: pex - direct | pex | all |" in table
