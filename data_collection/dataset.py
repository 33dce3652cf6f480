"""A dataset is a folder of episode files plus `index.json`, a summary the tools can rebuild.

The index is a cache: it is rebuilt whenever the set of files (names, sizes, mtimes) differs
from what it records, so it never goes stale silently. Corrupt files are listed, not fatal.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data_collection.episode import (
    CATEGORIES,
    SUFFIX,
    Episode,
    EpisodeFormatError,
    read_episode,
    write_episode,
)

INDEX_NAME = "index.json"
INDEX_VERSION = 1


@dataclass(frozen=True)
class EpisodeSummary:
    file: str
    size: int
    mtime_ns: int
    task: str
    layout_seed: int
    steps: int  # actions
    reward_return: float
    cost_return: float
    category: str
    label_source: str
    status: str

    @classmethod
    def of(cls, path: Path, episode: Episode) -> EpisodeSummary:
        st = path.stat()
        meta = episode.metadata
        return cls(
            file=path.name,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            task=str(meta["task"]),
            layout_seed=int(meta["layout_seed"]),
            steps=episode.num_actions,
            reward_return=float(episode.steps["reward"].sum()),
            cost_return=float(episode.steps["cost"].sum()),
            category=episode.category,
            label_source=str(meta["label_source"]),
            status=str(meta.get("status", "complete")),
        )


class Dataset:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def episode_paths(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.glob(f"*{SUFFIX}") if not p.name.startswith("."))

    def __len__(self) -> int:
        return len(self.episode_paths())

    def add(self, episode: Episode) -> Path:
        """Write one episode atomically and record it in the index."""
        path = write_episode(episode, self.root)
        self.index()  # refresh incrementally: only the new file is read
        return path

    def read(self, name_or_path: str | Path) -> Episode:
        path = Path(name_or_path)
        return read_episode(path if path.is_absolute() or path.exists() else self.root / path)

    def episodes(self, *, skip_corrupt: bool = False) -> Iterator[tuple[Path, Episode]]:
        for path in self.episode_paths():
            try:
                yield path, read_episode(path)
            except EpisodeFormatError:
                if not skip_corrupt:
                    raise

    def index(self) -> tuple[list[EpisodeSummary], list[EpisodeFormatError]]:
        """Summaries of all readable episodes and the errors of the unreadable ones. Reuses the
        stored index for unchanged files, reads changed or new ones, and saves it back."""
        cached = self._load_index()
        summaries, errors = [], []
        for path in self.episode_paths():
            st = path.stat()
            old = cached.get(path.name)
            if old and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
                summaries.append(old)
                continue
            try:
                summaries.append(EpisodeSummary.of(path, read_episode(path)))
            except EpisodeFormatError as err:
                errors.append(err)
        if [s.file for s in summaries] != sorted(cached) or any(
            cached.get(s.file) != s for s in summaries
        ):
            self._save_index(summaries)
        return summaries, errors

    def rebuild_index(self) -> tuple[list[EpisodeSummary], list[EpisodeFormatError]]:
        (self.root / INDEX_NAME).unlink(missing_ok=True)
        return self.index()

    def validate(self) -> list[EpisodeFormatError]:
        """Reads every file in full (ignores the index); returns what is wrong."""
        errors = []
        for path in self.episode_paths():
            try:
                read_episode(path)
            except EpisodeFormatError as err:
                errors.append(err)
        return errors

    def _load_index(self) -> dict[str, EpisodeSummary]:
        try:
            raw = json.loads((self.root / INDEX_NAME).read_text())
            if raw.get("version") != INDEX_VERSION:
                return {}
            return {e["file"]: EpisodeSummary(**e) for e in raw["episodes"]}
        except (OSError, ValueError, KeyError, TypeError):
            return {}  # missing or damaged cache: rebuild from the files

    def _save_index(self, summaries: list[EpisodeSummary]) -> None:
        if not self.root.is_dir():
            return
        payload = {"version": INDEX_VERSION, "episodes": [s.__dict__ for s in summaries]}
        tmp = self.root / f".{INDEX_NAME}.{os.getpid()}.partial"
        tmp.write_text(json.dumps(payload, indent=1))
        os.replace(tmp, self.root / INDEX_NAME)


def category_counts(summaries: list[EpisodeSummary]) -> dict[str, int]:
    counts = Counter(s.category for s in summaries)
    return {c: counts.get(c, 0) for c in CATEGORIES}
