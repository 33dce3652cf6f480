"""Dataset tools: merge datasets, split one (held-out evaluation), copy episodes safely.

Episodes are copied byte for byte after a full read (a damaged file is reported, never spread),
to a temporary name, fsynced, and hard-linked into place: the link fails if the name exists, so
no tool ever overwrites an episode, and a crash leaves at most a hidden .partial file behind.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_collection.dataset import Dataset, EpisodeSummary
from data_collection.episode import EpisodeFormatError, read_episode
from fosp.errors import UserError
from fosp.files import atomic_write, atomic_write_bytes, mkdir

SPLIT_BY = ("layout", "episode", "category", "task")
MANIFEST = "split.json"


@dataclass
class CopyReport:
    copied: list[str] = field(default_factory=list)
    identical: list[str] = field(default_factory=list)  # already there, same bytes: skipped
    conflicts: list[str] = field(default_factory=list)  # same name, different bytes: skipped
    unreadable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.unreadable

    def add(self, other: CopyReport) -> None:
        for name in ("copied", "identical", "conflicts", "unreadable"):
            getattr(self, name).extend(getattr(other, name))

    def line(self) -> str:
        return (
            f"{len(self.copied)} copied, {len(self.identical)} already present, "
            f"{len(self.conflicts)} conflicts, {len(self.unreadable)} unreadable"
        )


def copy_episode(src: Path, directory: Path, link: bool = False) -> str:
    """Copy (or hard-link) one episode into `directory` without ever overwriting.
    Returns "copied", "identical" or "conflict"."""
    mkdir(directory)
    final = directory / src.name
    if final.exists():
        return "identical" if filecmp.cmp(src, final, shallow=False) else "conflict"
    if link:
        try:
            os.link(src, final)
            return "copied"
        except FileExistsError:
            return copy_episode(src, directory)  # lost a race: compare
        except OSError:
            pass  # another file system: copy instead
    try:
        with open(src, "rb") as fin:
            # hard-linked into place: FileExistsError instead of overwriting; a failed write
            # (disk full) removes its temporary file and raises WriteError naming the path
            atomic_write(
                final, lambda fout: shutil.copyfileobj(fin, fout, 1 << 20), overwrite=False
            )
    except FileExistsError:
        return "identical" if filecmp.cmp(src, final, shallow=False) else "conflict"
    return "copied"


def _copy_checked(paths: list[Path], out: Path, link: bool) -> CopyReport:
    report = CopyReport()
    for path in paths:
        try:
            read_episode(path)  # never copy a damaged episode
        except EpisodeFormatError as err:
            report.unreadable.append(str(err))
            continue
        outcome = copy_episode(path, out, link)
        {"copied": report.copied, "identical": report.identical, "conflict": report.conflicts}[
            outcome
        ].append(str(path))
    return report


def merge(out: str | Path, sources: list[str | Path], link: bool = False) -> CopyReport:
    """Copy every episode of `sources` into `out` (created if needed). Episodes already in
    `out` with the same name and bytes are skipped; same name, different bytes (one copy was
    relabelled) is a conflict, reported and left alone."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: the output is a file, not a dataset folder")
    srcs = [Path(src) for src in sources]
    for src in srcs:  # every source checked before anything is created
        if not src.is_dir():
            raise UserError(f"{src}: no such dataset folder")
        if out.exists() and src.resolve() == out.resolve():
            raise UserError(f"{src} is the output folder; merge into a different folder")
    report = CopyReport()
    for src in srcs:
        report.add(_copy_checked(Dataset(src).episode_paths(), out, link))
    Dataset(out).index()
    return report


def split_groups(
    summaries: list[EpisodeSummary], by: str, holdout: float = 0.2, seed: int = 0
) -> dict[str, list[str]]:
    """group name -> episode file names.

    layout: "train"/"heldout", whole layouts held out (no layout on both sides), chosen per
            category so the held-out part keeps the dataset's category mix;
    episode: "train"/"heldout", episodes held out at random, per category;
    category / task: one group per value."""
    check_split_args(by, holdout)
    if by in ("category", "task"):
        groups: dict[str, list[str]] = defaultdict(list)
        for s in summaries:
            groups[s.category if by == "category" else s.task].append(s.file)
        return dict(groups)
    rng = np.random.default_rng(seed)
    units: dict[tuple, list[EpisodeSummary]] = defaultdict(list)
    for s in summaries:
        key = (s.task, s.layout_seed) if by == "layout" else (s.file,)
        units[key].append(s)
    by_category: dict[str, list[tuple]] = defaultdict(list)
    for key, members in units.items():
        majority = Counter(m.category for m in members).most_common(1)[0][0]
        by_category[majority].append(key)
    held: set[tuple] = set()
    for _category, keys in sorted(by_category.items()):
        keys = sorted(keys)
        n = int(round(holdout * len(keys)))
        for i in rng.permutation(len(keys))[:n]:
            held.add(keys[i])
    out: dict[str, list[str]] = {"train": [], "heldout": []}
    for key, members in units.items():
        out["heldout" if key in held else "train"].extend(m.file for m in members)
    return {k: sorted(v) for k, v in out.items()}


def split(
    src: str | Path,
    out: str | Path,
    by: str,
    holdout: float = 0.2,
    seed: int = 0,
    link: bool = False,
) -> tuple[dict[str, list[str]], CopyReport]:
    """Split dataset `src` into sub-datasets out/<group>/ and write out/split.json."""
    src, out = Path(src), Path(out)
    check_split_args(by, holdout)
    if not src.is_dir():
        raise UserError(f"{src}: no such dataset folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if out.exists() and out.resolve() == src.resolve():
        raise UserError(f"--out {out} is the dataset being split; choose another folder")
    summaries = Dataset(src).readable_index()
    groups = split_groups(summaries, by, holdout, seed)
    report = CopyReport()
    for name, files in groups.items():
        report.add(_copy_checked([src / f for f in files], out / name, link))
        Dataset(out / name).index()
    manifest = {
        "source": str(src.resolve()),
        "by": by,
        "holdout": holdout if by in ("layout", "episode") else None,
        "seed": seed,
        "groups": groups,
    }
    mkdir(out)
    atomic_write_bytes(out / MANIFEST, json.dumps(manifest, indent=1).encode())
    return groups, report


def check_split_args(by: str, holdout: float) -> None:
    if by not in SPLIT_BY:
        raise UserError(f"--by must be one of {', '.join(SPLIT_BY)}, got {by!r}")
    if by in ("layout", "episode") and not 0.0 < holdout < 1.0:
        raise UserError(f"--holdout must be a fraction in (0, 1), got {holdout:g}")
