"""Episode files: exact round trip, named errors, atomic writes that survive kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
import tokenize
import zipfile

import numpy as np
import pytest

from data_collection.dataset import Dataset
from data_collection.episode import (
    EpisodeBuilder,
    EpisodeFormatError,
    read_episode,
    write_episode,
)


def make_episode(steps=80, seed=0, **meta):
    rng = np.random.default_rng(seed)
    builder = EpisodeBuilder(
        {
            "task": "train",
            "layout_seed": seed,
            "control_hz": 10.0,
            "label_source": "oracle",
            "operator": "test",
            **meta,
        }
    )
    obs = lambda: {  # noqa: E731
        "image": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
        "pose": rng.normal(size=6).astype(np.float32),
    }
    builder.start(obs())
    for t in range(steps):
        builder.add(
            rng.uniform(-1, 1, 6),
            float(t % 7 == 0),
            float(t % 11 == 0),
            obs(),
            oracle=(float(t % 7 == 0), float(t % 11 == 0)),
        )
    return builder.finish()


def test_round_trip_is_exact(tmp_path):
    episode = make_episode()
    path = write_episode(episode, tmp_path)
    back = read_episode(path)
    assert back.metadata == json.loads(json.dumps(episode.metadata))
    assert set(back.steps) == set(episode.steps)
    for key, value in episode.steps.items():
        assert back.steps[key].dtype == value.dtype
        np.testing.assert_array_equal(back.steps[key], value)


def test_builder_alignment():
    """Row i: obs i, reward/cost of action i-1, action i; one more row than actions."""
    builder = EpisodeBuilder(
        {"task": "t", "layout_seed": 0, "control_hz": 10.0, "label_source": "manual"}
    )
    obs = [
        {"image": np.full((64, 64, 3), i, np.uint8), "pose": np.full(6, i, np.float32)}
        for i in range(4)
    ]
    builder.start(obs[0])
    for i, (r, c) in enumerate([(0, 1), (1, 0), (1, 1)]):
        builder.add(np.full(6, 0.1 * (i + 1)), r, c, obs[i + 1])
    ep = builder.finish()
    assert len(ep) == 4 and ep.num_actions == 3
    np.testing.assert_array_equal(ep.steps["reward"], [0, 0, 1, 1])
    np.testing.assert_array_equal(ep.steps["cost"], [0, 1, 0, 1])
    np.testing.assert_allclose(ep.steps["action"][:, 0], [0.1, 0.2, 0.3, 0.0])
    np.testing.assert_array_equal(ep.steps["pose"][:, 0], [0, 1, 2, 3])
    assert ep.steps["is_first"].tolist() == [True, False, False, False]
    assert ep.steps["is_last"].tolist() == [False, False, False, True]
    assert not ep.steps["is_terminal"].any()
    assert ep.category == "unsafe+success"


def rewrite(path, **changes):
    with np.load(path) as archive:
        data = {k: archive[k] for k in archive.files}
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    os.remove(path)
    with open(path, "wb") as f:
        np.savez(f, **data)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"pose": np.zeros((81, 5), np.float32)}, "pose"),
        ({"image": np.zeros((81, 32, 32, 3), np.uint8)}, "image"),
        ({"action": np.zeros((81, 6), np.float64)}, "action"),
        ({"reward": np.zeros(80, np.float32)}, "reward"),
        ({"cost": None}, "cost"),
        ({"pose": np.full((81, 6), np.nan, np.float32)}, "pose"),
        ({"metadata": np.asarray("{not json")}, "metadata"),
        ({"metadata": np.asarray(json.dumps({"task": "x"}))}, "metadata.schema_version"),
        ({"is_first": np.zeros(81, bool)}, "is_first"),
    ],
)
def test_malformed_file_names_file_and_field(tmp_path, changes, field):
    path = write_episode(make_episode(), tmp_path)
    rewrite(path, **changes)
    with pytest.raises(EpisodeFormatError) as err:
        read_episode(path)
    assert err.value.field == field
    assert str(path) in str(err.value) and field in str(err.value)


def test_truncated_and_garbage_files(tmp_path):
    path = write_episode(make_episode(), tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EpisodeFormatError, match=str(path)):
        read_episode(path)
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(EpisodeFormatError, match="not a readable episode"):
        read_episode(path)


def test_corrupt_member_names_the_field(tmp_path):
    path = write_episode(make_episode(), tmp_path)
    # flip bytes inside the compressed 'image' member: the zip CRC check fails on that field
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("image.npy")
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    raw[start : start + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    with pytest.raises(EpisodeFormatError) as err:
        read_episode(path)
    assert err.value.field == "image"


def test_one_bad_file_does_not_affect_the_rest(tmp_path):
    good = [write_episode(make_episode(seed=i), tmp_path) for i in range(3)]
    bad = write_episode(make_episode(seed=9), tmp_path)
    bad.write_bytes(b"garbage")
    summaries, errors = Dataset(tmp_path).index()
    assert sorted(s.file for s in summaries) == sorted(p.name for p in good)
    assert [e.path for e in errors] == [str(bad)]
    assert [e.path for e in Dataset(tmp_path).validate()] == [str(bad)]


def test_never_overwrites(tmp_path):
    episode = make_episode()
    write_episode(episode, tmp_path, filename="a.npz")
    with pytest.raises(FileExistsError):
        write_episode(episode, tmp_path, filename="a.npz")


def test_index_is_rebuilt_when_files_change(tmp_path):
    ds = Dataset(tmp_path)
    ds.add(make_episode(seed=1))
    summaries, _ = ds.index()
    assert len(summaries) == 1
    write_episode(make_episode(seed=2), tmp_path)  # written behind the index's back
    summaries, _ = ds.index()
    assert len(summaries) == 2
    (tmp_path / "index.json").write_text("{broken")
    assert len(ds.index()[0]) == 2


WRITER = """
import sys, numpy as np
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from test_episode_format import make_episode
from data_collection.episode import write_episode
i = 0
while True:
    write_episode(make_episode(steps=300, seed=i), sys.argv[1])
    i += 1
"""


def test_kill_during_writes_leaves_only_complete_files(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=root, tests=os.path.join(root, "tests")))
    out = tmp_path / "episodes"
    rng = np.random.default_rng(0)
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, str(script), str(out)])
        time.sleep(1.0 + rng.uniform(0, 0.8))  # mid-stream: writing dominates the loop
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    files = Dataset(out).episode_paths()
    assert files, "the writer should have finished some episodes"
    partial = [p for p in out.iterdir() if p.name.endswith(".partial")]
    assert partial, "no kill landed inside a write (each lands there ~3 times in 4)"
    assert all(p.name.startswith(".") for p in partial)  # hidden: never a valid episode name
    for path in files:
        read_episode(path)  # every valid-named file is complete
    assert Dataset(out).validate() == []


def _put_nul_in_header(path, member):
    """Rewrite `member`.npy of the archive with a NUL byte inside its header dict (same length,
    so the file is otherwise intact): the damage numpy meets in a corrupted header."""
    with zipfile.ZipFile(path) as z:
        members = {info.filename: z.read(info) for info in z.infolist()}
    raw = members[f"{member}.npy"]
    assert b"'descr'" in raw[:128]
    members[f"{member}.npy"] = raw.replace(b"'descr'", b"'de\x00cr'", 1)
    os.remove(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _parse_like_python_312(monkeypatch, error):
    """numpy parses an .npy header with ast.literal_eval and, on SyntaxError, retries through
    tokenize. Which error a NUL byte gives depends on the Python version: ValueError on 3.11.2,
    SyntaxError / tokenize.TokenError escaping numpy on 3.11.7 and 3.12. Make this interpreter
    behave like those for a text with a NUL byte (everything else parses as usual)."""
    import ast
    import io

    real_eval, real_tokens = ast.literal_eval, tokenize.generate_tokens

    def literal_eval(text):
        if isinstance(text, str) and "\x00" in text:
            raise SyntaxError("source code string cannot contain null bytes")
        return real_eval(text)

    def generate_tokens(readline):
        text = "".join(iter(readline, ""))
        if "\x00" in text:
            raise error("source code cannot contain null bytes")
        return real_tokens(io.StringIO(text).readline)

    monkeypatch.setattr(ast, "literal_eval", literal_eval)
    monkeypatch.setattr(tokenize, "generate_tokens", generate_tokens)


@pytest.mark.parametrize("error", [None, SyntaxError, tokenize.TokenError])
@pytest.mark.parametrize("member", ["reward", "metadata"])
def test_nul_byte_in_an_npy_header_names_file_and_field(tmp_path, monkeypatch, error, member):
    """None: this interpreter's own behaviour; the others: what 3.11.7 / 3.12 raise."""
    path = write_episode(make_episode(), tmp_path)
    _put_nul_in_header(path, member)
    if error is not None:
        _parse_like_python_312(monkeypatch, error)
        with np.load(path) as archive, pytest.raises(error):
            archive[member]  # the error numpy lets through on those versions
    with pytest.raises(EpisodeFormatError) as err:
        read_episode(path)
    assert err.value.field == member and str(path) in str(err.value)
    # the dataset tools keep their contract: listed, not a crash
    summaries, errors = Dataset(tmp_path).index()
    assert summaries == [] and [e.path for e in errors] == [str(path)]


@pytest.mark.parametrize(
    "key, value",
    [
        ("layout_seed", "abc"),
        ("layout_seed", None),
        ("layout_seed", -1),
        ("layout_seed", 1.5),
        ("layout_seed", True),
        ("layout_seed", 2**64),
        ("control_hz", "10"),
        ("control_hz", 0),
        ("control_hz", float("nan")),
        ("task", 5),
        ("task", ""),
        ("schema_version", True),
        ("schema_version", "1"),
        ("label_source", ["manual"]),
        ("status", 3),
        ("episode_id", None),
        ("label_delay_steps", -2),
    ],
)
def test_wrong_metadata_types_and_ranges_name_the_key(tmp_path, key, value):
    path = write_episode(make_episode(), tmp_path)
    with np.load(path) as archive:
        meta = json.loads(str(archive["metadata"]))
    meta[key] = value
    rewrite(path, metadata=np.asarray(json.dumps(meta)))
    with pytest.raises(EpisodeFormatError) as err:
        read_episode(path)
    assert err.value.field == f"metadata.{key}" and str(path) in str(err.value)
    summaries, errors = Dataset(tmp_path).index()  # stats / split / merge see an error, no crash
    assert summaries == [] and errors[0].field == f"metadata.{key}"


@pytest.mark.parametrize(
    "field, row, value",
    [
        ("reward", 5, 1e30),
        ("reward", 5, 2.0),
        ("reward", 5, -0.5),
        ("cost", 7, -1.0),
        ("cost", 7, 1.0001),
        ("oracle_cost", 3, 5.0),
        ("oracle_reward", 3, -1e-3),
    ],
)
def test_out_of_range_labels_are_refused(tmp_path, field, row, value):
    path = write_episode(make_episode(), tmp_path)
    with np.load(path) as archive:
        arr = archive[field].copy()
    arr[row] = value
    rewrite(path, **{field: arr})
    with pytest.raises(EpisodeFormatError, match=f"row {row} is") as err:
        read_episode(path)
    assert err.value.field == field and str(path) in str(err.value)


def test_labels_at_the_bounds_are_valid(tmp_path):
    episode = make_episode()
    episode.steps["reward"][1:] = 1.0
    episode.steps["cost"][1:] = 0.0
    read_episode(write_episode(episode, tmp_path))


def test_dangling_symlink_and_loop_are_listed_not_fatal(tmp_path):
    good = write_episode(make_episode(), tmp_path)
    dangling = tmp_path / "episode-dangling.npz"
    dangling.symlink_to(tmp_path / "gone.npz")
    loop_a, loop_b = tmp_path / "episode-loop-a.npz", tmp_path / "episode-loop-b.npz"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    summaries, errors = Dataset(tmp_path).index()
    assert [s.file for s in summaries] == [good.name]
    problems = {e.path: e.problem for e in errors}
    assert "dangling symbolic link" in problems[str(dangling)]
    assert "loop" in problems[str(loop_a)] and "loop" in problems[str(loop_b)]
    assert sorted(e.path for e in Dataset(tmp_path).validate()) == sorted(problems)


def test_stale_partials_are_found_and_only_old_ones_removed(tmp_path):
    ds = Dataset(tmp_path)
    ds.add(make_episode())
    old = tmp_path / ".episode-x.npz.4242.partial"
    fresh = tmp_path / ".episode-y.npz.4243.partial"
    old.write_bytes(b"half an episode")
    fresh.write_bytes(b"a write in progress")
    stamp = time.time() - 3600
    os.utime(old, (stamp, stamp))
    assert ds.stale_partials() == [old]
    assert ds.remove_stale_partials() == [old]
    assert not old.exists() and fresh.exists()
    assert len(ds.index()[0]) == 1  # never read as an episode


def test_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    import errno

    import fosp.files
    from fosp.errors import WriteError

    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:100])  # some bytes reach the disk, then it is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(fosp.files, "open", lambda p, m: FullDisk(real_open(p, m)), raising=False)
    with pytest.raises(WriteError, match="no space left") as err:
        write_episode(make_episode(), tmp_path, filename="e.npz")
    assert str(tmp_path / "e.npz") in str(err.value)
    assert list(tmp_path.iterdir()) == []
