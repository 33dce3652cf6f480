"""A dataset is a folder of episode files plus `index.json`, a summary the tools can rebuild.

The index is a cache: it is rebuilt whenever the set of files (names, sizes, mtimes) differs
from what it records, so it never goes stale silently. Corrupt files (and dangling symbolic links
or link loops) are listed as errors naming the file, not fatal. In a folder that cannot be
written (a read-only lab share) the index is used as found and not saved.

Hidden `.<name>.<pid>.partial` files are writes in progress; one older than `STALE_PARTIAL_S`
was left by a killed writer (`stale_partials`, removed by `remove_stale_partials`).
"""

from __future__ import annotations

import dataclasses
import json
import time
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
from fosp.errors import WriteError
from fosp.files import PARTIAL, atomic_write_bytes

INDEX_NAME = "index.json"
INDEX_VERSION = 1
STALE_PARTIAL_S = 600.0  # a write takes well under a second; an older .partial is abandoned


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

    def stale_partials(self, max_age_s: float = STALE_PARTIAL_S) -> list[Path]:
        """Hidden temporary files of writes that did not finish `max_age_s` ago (a writer killed
        mid-write): never read by any tool, safe to delete."""
        if not self.root.is_dir():
            return []
        now, stale = time.time(), []
        for path in sorted(self.root.glob(f".*{PARTIAL}")):
            try:
                if now - path.lstat().st_mtime > max_age_s:
                    stale.append(path)
            except OSError:
                continue  # removed meanwhile
        return stale

    def remove_stale_partials(self, max_age_s: float = STALE_PARTIAL_S) -> list[Path]:
        """Delete `stale_partials`; returns those removed (none in a read-only folder)."""
        removed = []
        for path in self.stale_partials(max_age_s):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
        return removed

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

    def readable_index(self, name: str | None = None) -> list[EpisodeSummary]:
        """Summaries of every episode; one line (UserError) naming the first unreadable file
        when any is (`name`: how the folder was given, e.g. "--out DIR")."""
        from fosp.errors import UserError

        summaries, errors = self.index()
        if errors:
            raise UserError(
                f"{name or self.root} has {len(errors)} unreadable episode file(s), first "
                f"{errors[0]}; run `fosp dataset validate {self.root}`"
            )
        return summaries

    def index(
        self, use_cache: bool = True
    ) -> tuple[list[EpisodeSummary], list[EpisodeFormatError]]:
        """Summaries of all readable episodes and the errors of the unreadable ones. Reuses the
        stored index for unchanged files, reads changed or new ones, and saves it back (unless
        the folder cannot be written)."""
        cached = self._load_index() if use_cache else {}
        summaries, errors = [], []
        for path in self.episode_paths():
            try:
                st = _stat(path)
            except EpisodeFormatError as err:
                errors.append(err)
                continue
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
        try:
            (self.root / INDEX_NAME).unlink(missing_ok=True)
        except OSError:
            pass  # read-only folder: rebuilt in memory, not saved
        return self.index(use_cache=False)

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
            entries = {e["file"]: EpisodeSummary(**e) for e in raw["episodes"]}
            if not all(_typed(e) for e in entries.values()):
                return {}
            return entries
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # missing or damaged cache: rebuild from the files

    def _save_index(self, summaries: list[EpisodeSummary]) -> None:
        if not self.root.is_dir():
            return
        payload = {"version": INDEX_VERSION, "episodes": [s.__dict__ for s in summaries]}
        try:
            atomic_write_bytes(self.root / INDEX_NAME, json.dumps(payload, indent=1).encode())
        except WriteError:
            pass  # read-only folder or full disk: the index is a cache, work without it


_FIELD_TYPES = {"str": str, "int": int, "float": (int, float)}


def _typed(summary: EpisodeSummary) -> bool:
    """A cached summary with the field types it declares (a hand-edited index is ignored)."""
    for f in dataclasses.fields(summary):
        value = getattr(summary, f.name)
        if isinstance(value, bool) or not isinstance(value, _FIELD_TYPES[str(f.type)]):
            return False
    return True


def _stat(path: Path):
    """os.stat of an episode file; a dangling link, a link loop or an unreadable entry is an
    EpisodeFormatError naming the file."""
    try:
        return path.stat()
    except OSError as err:
        if path.is_symlink():
            read_episode(path)  # raises, naming the dangling link or the loop
        raise EpisodeFormatError(path, None, f"cannot read ({err.strerror or err})") from err


def category_counts(summaries: list[EpisodeSummary]) -> dict[str, int]:
    counts = Counter(s.category for s in summaries)
    return {c: counts.get(c, 0) for c in CATEGORIES}
