"""Every bad command line gets one line on stderr naming the problem, a non-zero exit, no
traceback, no hang, and nothing created; no checkpoint can run code; a full disk leaves no
temporary file and names the path. `fosp` runs in-process (fast), a few cases in a subprocess."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data_collection.dataset import Dataset
from data_collection.episode import write_episode
from fosp.cli import main
from tests.collection.factories import make_episode

REPO = Path(__file__).resolve().parents[1]
CASE_TIMEOUT_S = 60


class Payload:
    """A pickle payload: unpickling it runs exec(...), which creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A scratch tree: a tiny dataset, a tiny trained run, damaged and malicious copies."""
    from policy.config import resolve
    from policy.train import train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli_errors")
    data = Dataset(root / "data")
    for seed in range(3):
        data.add(make_episode(seed, cost_rows=(3,), reward_rows=(9,), n=20))
    bad = root / "baddata"
    shutil.copytree(root / "data", bad)
    write_episode(make_episode(8, n=20), bad)
    path = write_episode(make_episode(9, n=20), bad)
    with_bad_meta(path, layout_seed="abc")  # what a hand edit or another tool may leave
    Dataset(bad).index()
    (root / "empty").mkdir()
    (root / "afile").write_text("not a folder\n")
    run = root / "run"
    cfg = resolve("tiny", length=8, batch=2, checkpoint_every=1000, log_every=1)
    train(root / "data", run, cfg, 1, progress=False, tensorboard=False)
    marker = root / "PWNED"
    for name, make in (("evil", _zip_payload), ("legacy", _legacy_payload)):
        shutil.copytree(run, root / name)
        make(root / name / "checkpoint.pt", marker)
    nokey = root / "nokey"
    shutil.copytree(run, nokey)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    del state["architecture"]
    torch.save(state, nokey / "checkpoint.pt")
    garbage = root / "garbage"
    shutil.copytree(run, garbage)
    (garbage / "checkpoint.pt").write_bytes(b"\x00not a checkpoint" * 10)
    return {"root": root, "marker": marker}


def with_bad_meta(path: Path, **changes) -> None:
    import numpy as np

    with np.load(path) as archive:
        members = {k: archive[k] for k in archive.files}
    meta = json.loads(str(members["metadata"]))
    meta.update(changes)
    members["metadata"] = np.asarray(json.dumps(meta))
    path.unlink()
    with open(path, "wb") as f:
        np.savez(f, **members)


def _zip_payload(path: Path, marker: Path) -> None:
    torch.save({"format": 1, "architecture": {}, "agent": Payload(marker)}, path)


def _legacy_payload(path: Path, marker: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump({"format": 1, "agent": Payload(marker)}, f, protocol=2)  # torch's legacy


TRAIN = "train --dataset {root}/data --preset tiny --steps 1 --out {new} --no-progress"
EVAL = "eval --checkpoint {root}/run --episodes 1"
TABLE3 = "eval table3 --checkpoint {root}/run --dataset {root}/data --tests 1 --seeds 1 "
TABLE3 += "--finetune-episodes 1 --out {new}"
FT = "finetune --checkpoint {root}/run --dataset {root}/data --episodes 1 "
FT += "--updates-per-episode 1 --out {new}"
COLLECT = "sim collect --episodes 1 --out {new}"
TELEOP = "collect --env sim --teleop keyboard --out {new}"
DEMO = "demo --out {new} --dataset {root}/data --checkpoint {root}/run"

# (id, command line, what the one error line must name)
CASES = [
    ("no-command", "", "COMMAND"),
    ("unknown-command", "banana", "banana"),
    # fosp train
    ("train-log-every-0", TRAIN + " --log-every 0", "--log-every"),
    ("train-checkpoint-every-0", TRAIN + " --checkpoint-every 0", "--checkpoint-every"),
    ("train-batch-0", TRAIN + " --batch 0", "--batch"),
    ("train-length-negative", TRAIN + " --length -1", "--length"),
    ("train-length-too-long", TRAIN + " --length 1000", "1000 rows"),
    ("train-device-cuda-no-gpu", TRAIN + " --device cuda", "--device cuda"),
    ("train-device-banana", TRAIN + " --device banana", "--device 'banana'"),
    ("train-out-file", TRAIN.replace("{new}", "{root}/afile"), "is a file"),
    ("train-out-dataset", TRAIN.replace("{new}", "{root}/data"), "dataset folder"),
    ("train-steps-0", TRAIN.replace("--steps 1", "--steps 0"), "--steps"),
    ("train-steps-text", TRAIN.replace("--steps 1", "--steps ten"), "--steps"),
    ("train-preset", TRAIN.replace("tiny", "huge"), "--preset"),
    ("train-seed-negative", TRAIN + " --seed -1", "--seed"),
    ("train-dataset-missing", TRAIN.replace("{root}/data", "{root}/nope"), "nope"),
    ("train-dataset-empty", TRAIN.replace("{root}/data", "{root}/empty"), "no episodes"),
    ("train-dataset-bad-file", TRAIN.replace("{root}/data", "{root}/baddata"), "layout_seed"),
    ("train-resume-nothing", TRAIN + " --resume", "no checkpoint"),
    ("train-resume-evil", TRAIN.replace("{new}", "{root}/evil") + " --resume", "refused"),
    ("train-resume-legacy", TRAIN.replace("{new}", "{root}/legacy") + " --resume", "refused"),
    ("train-resume-no-key", TRAIN.replace("{new}", "{root}/nokey") + " --resume", "architecture"),
    ("train-resume-garbage", TRAIN.replace("{new}", "{root}/garbage") + " --resume", "garbage"),
    # fosp eval
    ("eval-task-unknown", EVAL + " --task banana", "--task"),
    ("eval-episodes-0", EVAL.replace("--episodes 1", "--episodes 0"), "--episodes"),
    ("eval-episodes-negative", EVAL.replace("--episodes 1", "--episodes -3"), "--episodes"),
    ("eval-seed-text", EVAL + " --seed x", "--seed"),
    ("eval-checkpoint-missing", EVAL.replace("{root}/run", "{root}/nope"), "config.json"),
    ("eval-checkpoint-evil", EVAL.replace("{root}/run", "{root}/evil"), "refused"),
    ("eval-checkpoint-legacy", EVAL.replace("{root}/run", "{root}/legacy"), "refused"),
    ("eval-checkpoint-no-key", EVAL.replace("{root}/run", "{root}/nokey"), "'architecture'"),
    ("eval-checkpoint-garbage", EVAL.replace("{root}/run", "{root}/garbage"), "readable"),
    ("eval-json-no-folder", EVAL + " --json {new}/r.json", "--json"),
    ("eval-json-folder", EVAL + " --json {root}/empty", "--json"),
    ("table3-tests-0", TABLE3.replace("--tests 1", "--tests 0"), "--tests"),
    ("table3-seeds-0", TABLE3.replace("--seeds 1", "--seeds 0"), "--seeds"),
    ("table3-first-seed-negative", TABLE3 + " --first-seed -1", "--first-seed"),
    ("table3-finetune-0", TABLE3.replace("-episodes 1", "-episodes 0"), "--finetune-episodes"),
    ("table3-updates-negative", TABLE3 + " --updates-per-episode -1", "--updates-per-episode"),
    ("table3-strategy", TABLE3 + " --strategies pex,banana", "--strategies"),
    ("table3-tasks", TABLE3 + " --tasks unseen-1,banana", "--tasks"),
    ("table3-out-file", TABLE3.replace("{new}", "{root}/afile"), "is a file"),
    ("table3-dataset-missing", TABLE3.replace("{root}/data", "{root}/nope"), "--dataset"),
    ("table3-checkpoint-evil", TABLE3.replace("{root}/run", "{root}/evil"), "refused"),
    # fosp finetune
    ("finetune-out-pretrained", FT.replace("{new}", "{root}/run"), "pretrained run"),
    ("finetune-out-dataset", FT.replace("{new}", "{root}/data"), "dataset"),
    ("finetune-out-file", FT.replace("{new}", "{root}/afile"), "is a file"),
    ("finetune-updates-negative", FT.replace("episode 1", "episode -5"), "--updates-per-episode"),
    ("finetune-updates-0", FT.replace("episode 1", "episode 0"), "--updates-per-episode"),
    ("finetune-episodes-0", FT.replace("--episodes 1", "--episodes 0"), "--episodes"),
    ("finetune-task-unknown", FT + " --task banana", "--task"),
    ("finetune-inv-temperature-0", FT + " --inv-temperature 0", "--inv-temperature"),
    ("finetune-inv-temperature-nan", FT + " --inv-temperature nan", "--inv-temperature"),
    ("finetune-deadline-negative", FT + " --deadline -1", "--deadline"),
    ("finetune-strategy", FT + " --strategy banana", "--strategy"),
    ("finetune-checkpoint-missing", FT.replace("{root}/run", "{root}/nope"), "config.json"),
    ("finetune-checkpoint-evil", FT.replace("{root}/run", "{root}/evil"), "refused"),
    ("finetune-checkpoint-no-key", FT.replace("{root}/run", "{root}/nokey"), "'architecture'"),
    ("finetune-dataset-missing", FT.replace("{root}/data", "{root}/nope"), "nope"),
    ("finetune-dataset-bad-file", FT.replace("{root}/data", "{root}/baddata"), "layout_seed"),
    # fosp sim collect / sim view
    ("sim-collect-task-unknown", COLLECT + " --task banana", "--task"),
    ("sim-collect-label-delay-negative", COLLECT + " --label-delay -3", "--label-delay"),
    ("sim-collect-out-file", COLLECT.replace("{new}", "{root}/afile"), "is a file"),
    ("sim-collect-out-bad-dataset", COLLECT.replace("{new}", "{root}/baddata"), "layout_seed"),
    ("sim-collect-episodes-negative", COLLECT.replace("1", "-5"), "--episodes"),
    ("sim-collect-episodes-0", COLLECT.replace("1", "0"), "--episodes"),
    ("sim-collect-mix", COLLECT + " --mix banana", "--mix"),
    ("sim-view-task-unknown", "sim view --task banana --out {new}/v.png", "banana"),
    ("sim-view-size-0", "sim view --size 0 --out {new}/v.png", "--size"),
    ("sim-view-seed-negative", "sim view --seed -2 --out {new}/v.png", "--seed"),
    # fosp dataset
    ("dataset-merge-missing-source", "dataset merge {new} {root}/data {root}/nope", "nope"),
    ("dataset-merge-source-is-out", "dataset merge {root}/data {root}/data", "output folder"),
    ("dataset-merge-out-file", "dataset merge {root}/afile {root}/data", "is a file"),
    ("dataset-split-holdout-2", "dataset split {root}/data --out {new} --holdout 2", "--holdout"),
    ("dataset-split-holdout-0", "dataset split {root}/data --out {new} --holdout 0", "--holdout"),
    ("dataset-split-by", "dataset split {root}/data --out {new} --by banana", "--by"),
    ("dataset-split-out-file", "dataset split {root}/data --out {root}/afile", "is a file"),
    ("dataset-split-out-is-source", "dataset split {root}/data --out {root}/data", "split"),
    ("dataset-split-bad-file", "dataset split {root}/baddata --out {new}", "layout_seed"),
    ("dataset-split-missing", "dataset split {root}/nope --out {new}", "nope"),
    ("dataset-stats-missing", "dataset stats {root}/nope", "nope"),
    ("dataset-stats-plot-folder", "dataset stats {root}/data --plot {root}/empty", "--plot"),
    ("dataset-validate-missing", "dataset validate {root}/nope", "nope"),
    ("dataset-index-missing", "dataset index {root}/nope", "nope"),
    ("dataset-no-subcommand", "dataset", "DS_COMMAND"),
    # fosp label / collect (checked before any window or device is opened)
    ("label-missing", "label {root}/nope", "nope"),
    ("label-episode-out-of-range", "label {root}/data --episode 99", "--episode 99"),
    ("label-filter", "label {root}/data --filter banana", "--filter"),
    ("label-episode-unknown-file", "label {root}/data --episode nope.npz", "--episode nope.npz"),
    ("label-suggest-from-missing", "label {root}/data --suggest-from {root}/nope", "config.json"),
    ("label-suggest-from-evil", "label {root}/data --suggest-from {root}/evil", "refused"),
    ("collect-episodes-0", TELEOP + " --episodes 0", "--episodes"),
    ("collect-task-unknown", TELEOP + " --task banana", "--task"),
    ("collect-countdown-negative", TELEOP + " --countdown -1", "--countdown"),
    ("collect-control-hz-0", TELEOP + " --control-hz 0", "--control-hz"),
    ("collect-smoothing", TELEOP + " --smoothing 1.5", "--smoothing"),
    ("collect-deadzone", TELEOP + " --deadzone -0.1", "--deadzone"),
    ("collect-gain-0", TELEOP + " --translation-gain 0", "--translation-gain"),
    ("collect-out-file", TELEOP.replace("{new}", "{root}/afile"), "is a file"),
    ("collect-out-bad-dataset", TELEOP.replace("{new}", "{root}/baddata"), "layout_seed"),
    # fosp demo
    ("demo-episodes-0", DEMO + " --episodes 0", "--episodes"),
    ("demo-tests-0", DEMO + " --tests 0", "--tests"),
    ("demo-pretrain-steps-0", DEMO + " --pretrain-steps 0", "--pretrain-steps"),
    ("demo-finetune-episodes-0", DEMO + " --finetune-episodes 0", "--finetune-episodes"),
    ("demo-updates-negative", DEMO + " --updates-per-episode -1", "--updates-per-episode"),
    ("demo-task-unknown", DEMO + " --task banana", "--task"),
    ("demo-out-file", DEMO.replace("{new}", "{root}/afile"), "is a file"),
    ("demo-dataset-missing", DEMO.replace("{root}/data", "{root}/nope"), "nope"),
    ("demo-checkpoint-missing", DEMO.replace("{root}/run", "{root}/nope"), "config.json"),
    ("demo-checkpoint-evil", DEMO.replace("{root}/run", "{root}/evil") + " --tests 1", "refused"),
]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@contextlib.contextmanager
def time_limit(seconds: int):
    def on_alarm(signum, frame):
        raise TimeoutError(f"hung for {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_fosp(argv: list[str]) -> int:
    """main() as the `fosp` script runs it: a SystemExit message goes to stderr, status 1."""
    try:
        with time_limit(CASE_TIMEOUT_S):
            return main(argv)
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
            return 1
        return int(exit_.code or 0)


@pytest.mark.parametrize("name, line, names", CASES, ids=[c[0] for c in CASES])
def test_bad_command_line_gets_one_clean_line(world, capsys, monkeypatch, name, line, names):
    root = world["root"]
    new = root / f"new-{name}"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # same on a GPU machine
    before = snapshot(root)
    code = run_fosp(line.format(root=root, new=new).split())
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code != 0
    assert len(lines) == 1, err
    assert "Traceback" not in err and names in lines[0], err
    assert not new.exists()  # nothing created
    assert snapshot(root) == before  # nothing else touched either
    assert not world["marker"].exists()  # no checkpoint ran its payload


def test_the_payload_is_real_and_refused_in_a_real_process(world, tmp_path):
    """The same malicious file run by `fosp eval` in a subprocess is refused with one line, and
    the payload would have run with the old `weights_only=False` load (the test can fail)."""
    root, marker = world["root"], world["marker"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # FOSP_THREADS=1: tests/conftest.py
    for run in ("evil", "legacy"):
        proc = subprocess.run(
            [sys.executable, "-m", "fosp.cli", "eval", "--checkpoint", str(root / run)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=REPO,
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "refused" in proc.stderr
        assert not marker.exists()
    unsafe = tmp_path / "PWNED"
    _zip_payload(tmp_path / "c.pt", unsafe)
    torch.load(tmp_path / "c.pt", weights_only=False)  # what the old loader did
    assert unsafe.exists()


def _full_disk(monkeypatch, match: str):
    """Writes through fosp.files (every atomic write) of a file whose name contains `match`
    fail with ENOSPC after some bytes reached the disk."""
    import fosp.files

    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, attr):
            return getattr(self.f, attr)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return Full(f) if "w" in mode and match in Path(path).name else f

    monkeypatch.setattr(fosp.files, "open", fake_open, raising=False)


def test_disk_full_at_the_checkpoint_removes_the_temp_file(world, tmp_path, capsys, monkeypatch):
    _full_disk(monkeypatch, "checkpoint.pt")
    out = tmp_path / "run"
    line = TRAIN.format(root=world["root"], new=out) + " --length 8 --batch 2"
    code = run_fosp(line.split())
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"cannot write {out / 'checkpoint.pt'}: no space left" in err
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temp file
    assert not (out / "checkpoint.pt").exists()


def test_disk_full_while_finetuning_and_merging(world, tmp_path, capsys, monkeypatch):
    root = world["root"]
    _full_disk(monkeypatch, ".npz")
    out = tmp_path / "merged"
    code = run_fosp(["dataset", "merge", str(out), str(root / "data")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no space left" in err
    assert str(out) in err and list(out.iterdir()) == []  # no episode, no temp file
    _full_disk(monkeypatch, "checkpoint.pt")
    ft = tmp_path / "ft"
    code = run_fosp(FT.format(root=root, new=ft).split())
    err = capsys.readouterr().err
    assert code == 2 and f"cannot write {ft / 'checkpoint.pt'}: no space left" in err
    assert "Traceback" not in err
    assert not [p for p in ft.rglob(".*") if "partial" in p.name or "tmp" in p.name]


def test_stats_on_a_read_only_folder_works_without_its_cache(world, tmp_path, capsys, monkeypatch):
    import builtins

    data = tmp_path / "share"
    shutil.copytree(world["root"] / "data", data)
    (data / "index.json").unlink()
    (data / "stats.png").unlink(missing_ok=True)
    real_open = builtins.open

    def read_only(path, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and Path(path).resolve().parent == data.resolve():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    code = run_fosp(["dataset", "stats", str(data)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "safe+success" in captured.out and "Traceback" not in captured.err
    assert "not written" in captured.err  # the plot, said so in one line
    assert sorted(p.name for p in data.iterdir()) == sorted(
        p.name for p in (world["root"] / "data").iterdir() if p.name not in ("index.json",)
    )
    assert run_fosp(["dataset", "index", str(data)]) == 0  # rebuilt in memory, not saved


def test_skip_bad_files_names_each_and_counts_them(world, tmp_path, capsys):
    out = tmp_path / "run"
    line = TRAIN.replace("{root}/data", "{root}/baddata").format(root=world["root"], new=out)
    code = run_fosp([*line.split(), "--length", "8", "--batch", "2", "--skip-bad-files"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    skipped = [x for x in captured.err.splitlines() if x.startswith("skipping bad episode file")]
    assert len(skipped) == 1 and "metadata.layout_seed" in skipped[0]
    assert "skipped 1 bad episode file(s)" in captured.out
    assert (out / "checkpoint.pt").exists()


def test_stale_partial_is_reported_then_removed(world, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(world["root"] / "data", data)
    stale = data / ".episode-x.npz.999.partial"
    stale.write_bytes(b"half")
    os.utime(stale, (1e9, 1e9))
    assert run_fosp(["dataset", "validate", str(data)]) == 0
    assert "stale partial write (a killed writer's" in capsys.readouterr().err
    assert stale.exists()
    assert run_fosp(["dataset", "index", str(data)]) == 0
    assert f"removed stale partial write {stale}" in capsys.readouterr().err
    assert not stale.exists()


def test_symlinks_in_a_dataset_are_reported_by_stats(world, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(world["root"] / "data", data)
    (data / "episode-dangling.npz").symlink_to(tmp_path / "gone.npz")
    (data / "episode-loop.npz").symlink_to(data / "episode-loop.npz")
    assert run_fosp(["dataset", "stats", str(data)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "episode-dangling.npz: dangling symbolic link" in err
    assert "episode-loop.npz: symbolic link loop" in err


def test_resume_removes_a_killed_trainers_temp_checkpoint(world, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(world["root"] / "run", run)
    stale = run / ".checkpoint.pt.999999.partial"  # kill -9 during a checkpoint write
    stale.write_bytes(b"x" * 1000)
    line = TRAIN.replace("--steps 1", "--steps 2").format(root=world["root"], new=run)
    assert run_fosp([*line.split(), "--resume"]) == 0, capsys.readouterr().err
    assert not stale.exists()
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []


def test_a_reset_refused_outside_the_hard_box_is_one_line(capsys, monkeypatch):
    """The ROS env's refusal (the arm parked outside the hard box) ends a command with arm_node's
    line, no traceback: the operator brings the arm in and runs it again."""
    import fosp.cli
    from robot.errors import ArmOutsideBox

    line = "arm_node did not reset: reset refused, nothing was sent: measured TCP at [...]"

    def refused(args):
        raise ArmOutsideBox(line)

    parser = fosp.cli.build_parser()
    monkeypatch.setattr(fosp.cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", lambda argv: argparse.Namespace(
        command="collect", func=refused))  # fmt: skip
    assert main(["collect"]) == 2
    err = capsys.readouterr().err
    assert line in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
