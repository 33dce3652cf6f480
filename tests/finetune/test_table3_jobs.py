"""Table 3 in parallel units (`--jobs N`, policy/table3_jobs.py): the same table and the same
learning as one process, finished units skipped on a rerun, a failing unit named."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from policy.config import FinetuneConfig, Table3Config
from policy.finetune import FINETUNE_JSON, LOG
from policy.table3 import Table3Error, finetune_dir, read_rows, run_table3
from policy.table3_jobs import run_units, unit_folder

PROTOCOL = Table3Config(
    tasks="unseen-1", tests=1, finetune_episodes=1, seeds=2, strategies="direct"
)
FCFG = FinetuneConfig(updates_per_episode=1, settle_steps=1)


def _counts(rows):
    return sorted(
        ((r.strategy, r.task, r.seed, r.phase), r.episodes, r.successes, r.violations) for r in rows
    )


def _losses(run_dir):
    return [json.loads(line)["losses"] for line in (run_dir / LOG).read_text().splitlines()]


def test_parallel_units_equal_one_process_resume_and_name_a_failing_unit(
    pretrained, offline_data, tmp_path, monkeypatch
):
    monkeypatch.setenv("FOSP_THREADS", "1")  # the same thread count as this process: same sums
    one, par = tmp_path / "one", tmp_path / "par"
    quiet = lambda _: None  # noqa: E731
    one_rows, _ = run_table3(pretrained, offline_data, one, PROTOCOL, FCFG, log=quiet)
    said: list[str] = []
    protocol = dataclasses.replace(PROTOCOL, jobs=2)
    rows, _ = run_units(pretrained, offline_data, par, protocol, FCFG, log=said.append)

    assert _counts(rows) == _counts(one_rows) == _counts(read_rows(par))
    assert "| direct | unseen-1 | during |" in (par / "table3.md").read_text()  # walls differ
    assert (par / "table3.png").stat().st_size > 0
    units = [unit_folder(par, "unseen-1", seed, "direct") for seed in (0, 1)]
    for seed, unit in enumerate(units):
        # the same learning, update by update, as in the one process
        mine = finetune_dir(unit, "direct", seed, "unseen-1")
        assert _losses(mine) == _losses(finetune_dir(one, "direct", seed, "unseen-1"))
        assert f"finetuning (direct, seed {seed})" in unit.with_suffix(".log").read_text()
    assert "2 to run, 2 at a time with 1 torch thread(s) each" in said[0]
    finished = [re.fullmatch(r"\[(\d)/2\] (\S+) finished in \d+ s", line) for line in said[1:]]
    assert all(finished) and len(finished) == 2
    assert sorted(m[1] for m in finished) == ["1", "2"]
    assert sorted(m[2] for m in finished) == [u.name for u in units]
    walls = (par / "units.csv").read_text().splitlines()
    assert len(walls) == 3 and all(float(line.split(",")[3]) > 0 for line in walls[1:])

    # rerun: both units finished, nothing runs again, the same table
    logs = [u.with_suffix(".log").read_text() for u in units]
    said.clear()
    # through run_table3, which hands jobs > 1 to run_units
    again, _ = run_table3(pretrained, offline_data, par, protocol, FCFG, log=said.append)
    assert "2 finished earlier; 0 to run" in said[0] and len(said) == 1
    assert _counts(again) == _counts(rows)
    assert [u.with_suffix(".log").read_text() for u in units] == logs

    # one unit unfinished and its finetune record corrupt: it fails, named, the other is kept
    (units[1] / "table3.csv").unlink()
    (finetune_dir(units[1], "direct", 1, "unseen-1") / FINETUNE_JSON).write_text("{not json")
    with pytest.raises(Table3Error) as err:
        run_units(pretrained, offline_data, par, protocol, FCFG, log=quiet)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("1 of 1 units failed, first unseen-1_s1_direct: ")
    assert FINETUNE_JSON in message and "rerun the same command to resume" in message
    assert units[0].with_suffix(".log").read_text() == logs[0]
    assert (units[0] / "table3.csv").is_file()
