"""The Table 3 results kept in the repository (benchmarks/results/table3, written by
benchmarks/table3_archive.py) stay poolable by benchmarks/table3_merge.py as the code moves on,
and the archiver copies the records only, refusing what it cannot keep whole."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from benchmarks.table3_archive import archive
from benchmarks.table3_archive import main as archive_main
from policy.table3 import Table3Error, merge, read_rows

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "table3"
PRETRAININGS = sorted(p for p in RESULTS.iterdir() if (p / "defaults").is_dir())


def test_results_are_archived():
    assert PRETRAININGS, RESULTS
    for pretraining in PRETRAININGS:
        assert (pretraining / "README.md").is_file(), pretraining  # how it was made


@pytest.mark.parametrize("pretraining", PRETRAININGS, ids=lambda p: p.name)
def test_archived_units_of_one_pretraining_pool_into_one_table(pretraining, tmp_path):
    units = sorted(p for p in (pretraining / "defaults").iterdir() if p.is_dir())
    # a renamed or removed FinetuneConfig field, or a changed record or table format, fails here
    rows, summary = merge(units, tmp_path)
    during = [r for r in rows if r.phase == "during"]
    assert sum(r.episodes for r in during) == sum(
        r.episodes for u in units for r in read_rows(u) if r.phase == "during"
    )
    pooled = {(s["strategy"], s["task"], s["phase"]): s for s in summary}
    for (strategy, task, phase), s in pooled.items():
        if phase == "during":
            mine = [r for r in during if (r.strategy, r.task) == (strategy, task)]
            assert s["seeds"] == len(mine) and s["episodes"] * s["seeds"] == sum(
                r.episodes for r in mine
            )  # episodes per seed
            total = sum(r.episodes for r in mine)
            assert s["sr"] == pytest.approx(sum(r.successes for r in mine) / total)
            assert s["cv"] == pytest.approx(sum(r.violations for r in mine) / total)
    with open(tmp_path / "table3.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(rows)


def test_archive_keeps_the_records_and_refuses_what_it_cannot_keep(tmp_path, capsys):
    unit = next(u for u in sorted((PRETRAININGS[0] / "defaults").iterdir()) if u.is_dir())
    written = archive(unit, tmp_path / "copy")
    originals = sorted(p.relative_to(unit) for p in unit.rglob("*") if p.is_file())
    assert sorted(p.relative_to(tmp_path / "copy") for p in written) == originals
    for name in originals:
        assert (tmp_path / "copy" / name).read_bytes() == (unit / name).read_bytes()
    # a full output folder: checkpoints and episodes stay behind
    run = next(p.parent for p in (tmp_path / "copy").rglob("finetune.json"))
    (run / "checkpoint.pt").write_bytes(b"x" * 1000)
    (run / "online").mkdir()
    (run / "online" / "episode.npz").write_bytes(b"x")
    kept = archive(tmp_path / "copy", tmp_path / "again")
    assert not [p for p in kept if p.suffix in (".pt", ".npz")] and len(kept) == len(originals)

    assert archive_main([str(unit), "--into", str(tmp_path / "copy")]) == 2  # not empty
    assert "already holds files" in capsys.readouterr().err
    with pytest.raises(Table3Error, match="no table3.csv"):
        archive(tmp_path / "copy" / "nothing", tmp_path / "new")
    (run / "finetune.json").unlink()
    with pytest.raises(Table3Error, match="no finetune.json"):
        archive(tmp_path / "copy", tmp_path / "new")
    assert not (tmp_path / "new").exists()  # a refusal writes nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(Table3Error, match="not a folder"):
        archive(unit, tmp_path / "file")
