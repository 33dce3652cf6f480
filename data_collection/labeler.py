"""`fosp label`: scrub an episode frame by frame and set or clear its reward and cost labels.

Keys (also drawn in the window):

    <- -> or , .    previous / next frame        PgUp PgDn or [ ]   10 frames   Home End
    m or space      start / drop a selection (from here to the cursor)
    c / C           set / clear cost on the selection (or the frame under the cursor)
    r / R           set / clear reward on the selection (or the frame)
    a               accept the suggested labels (drawn as "suggest" bands; nothing is stored
                    until accepted, then they are edits like any other: undo, save)
    v               mark reviewed without changing labels
    u or z          undo
    s               save (only when something changed; atomic)
    n / p           next / previous episode      q or Esc   quit
    (n, p, q with unsaved changes warn once; pressed again they drop the changes)

Row 0 is never labelled: no action led to it (episode format). A save appends an entry to the
episode's metadata["label_history"] (when, what changed, the label source before), sets
label_source "manual" and label_status "reviewed", and rewrites the file with replace_episode.

Suggestions: cost rows from the episode's contact force (data_collection/suggest.py), plus
whatever a `suggest(episode) -> {"reward": rows, "cost": rows}` callable adds (the finetuning
loop passes the world model's heads). The per-row origin of the labels is kept in the episode
(`label_origin`: 0 recorded, 1 manual edit, 2 suggested and accepted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_collection.dataset import Dataset
from data_collection.episode import (
    ORIGIN_ACCEPTED,
    ORIGIN_MANUAL,
    ORIGIN_RECORDED,
    SCHEMA_VERSION,
    Episode,
    now_iso,
    read_episode,
    replace_episode,
)
from data_collection.suggest import force_cost_rows
from data_collection.teleop import draw
from data_collection.teleop.window import OperatorUI

SCALE = 6
SUGGEST_COST, SUGGEST_REWARD = (0, 140, 255), (160, 220, 120)  # BGR orange / pale green
WIDTH, HEIGHT = 720, 520
FILTERS = ("all", "unlabelled", "safe+success", "safe+fail", "unsafe+success", "unsafe+fail")
HELP = (
    "<- -> , .: frame   [ ] PgUp PgDn: 10   m/space: select",
    "c/C: set/clear cost   r/R: set/clear reward   a: accept suggested",
    "v: reviewed",
    "u/z: undo   s: save   n/p: next/prev episode   q: quit",
)


def is_unlabelled(episode: Episode) -> bool:
    """Waiting for labels: marked pending by its collector, or all-zero labels that no person or
    simulator ever set (e.g. imported from a bag of the real arm)."""
    meta = episode.metadata
    if meta.get("label_status") == "pending":
        return True
    if meta.get("label_status") or meta.get("label_history"):
        return False
    blank = not episode.steps["reward"].any() and not episode.steps["cost"].any()
    return blank and meta.get("label_source") in ("manual", "imported")


def select_episodes(root: str | Path, which: str = "all") -> list[Path]:
    if which not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}")
    out = []
    for path, episode in Dataset(root).episodes(skip_corrupt=True):
        if which == "all":
            out.append(path)
        elif which == "unlabelled":
            if is_unlabelled(episode):
                out.append(path)
        elif episode.category == which:
            out.append(path)
    return out


@dataclass
class _Edit:
    label: str  # "reward" | "cost"
    value: float  # 1 set, 0 clear
    rows: tuple[int, int]  # inclusive
    before: np.ndarray  # the rows' values before, for undo
    origin_before: np.ndarray  # the rows' label_origin before
    keys: int = 1  # operator key presses the edit took (for the keystroke count)


@dataclass
class LabelSession:
    """The labeler's state and key handling, independent of any window."""

    paths: list[Path]
    index: int = 0
    cursor: int = 0
    anchor: int | None = None
    message: str = ""
    saved: list[Path] = field(default_factory=list)
    suggest: Callable[[Episode], dict[str, np.ndarray]] | None = None
    keystrokes: int = 0  # keys pressed in this session (the labelling effort)

    def __post_init__(self):
        if not self.paths:
            raise ValueError("no episodes to label")
        self.index = int(np.clip(self.index, 0, len(self.paths) - 1))
        self._load()

    # ------------------------------------------------------------------ state
    def _load(self) -> None:
        self.episode = read_episode(self.paths[self.index])
        steps = self.episode.steps
        if "label_origin" not in steps:
            steps["label_origin"] = np.full(len(self.episode), ORIGIN_RECORDED, np.uint8)
        self.suggested = self._suggestions()
        self._original = {k: self.episode.steps[k].copy() for k in ("reward", "cost")}
        self.edits: list[_Edit] = []
        self.reviewed = False
        self.cursor, self.anchor = 0, None
        self._armed: str | None = None  # a guarded key pressed once with unsaved changes

    def _suggestions(self) -> dict[str, np.ndarray]:
        """Suggested rows per label (bool), never including row 0."""
        n = len(self.episode)
        out = {k: np.zeros(n, bool) for k in ("reward", "cost")}
        if "contact_force" in self.episode.steps:
            out["cost"] |= force_cost_rows(self.episode.steps["contact_force"])
        if self.suggest is not None:
            for k, rows in self.suggest(self.episode).items():
                out[k] |= np.asarray(rows, bool)
        for rows in out.values():
            rows[0] = False
        return out

    @property
    def path(self) -> Path:
        return self.paths[self.index]

    @property
    def rows(self) -> int:
        return len(self.episode)

    @property
    def dirty(self) -> bool:
        steps = self.episode.steps
        changed = any(not np.array_equal(steps[k], self._original[k]) for k in self._original)
        return changed or self.reviewed

    def selection(self) -> tuple[int, int]:
        a = self.cursor if self.anchor is None else self.anchor
        return min(a, self.cursor), max(a, self.cursor)

    # ------------------------------------------------------------------ keys
    def handle(self, key: str) -> bool:
        """Apply one key; False when the session should end."""
        armed, self._armed = self._armed, None
        self.keystrokes += 1
        last = self.rows - 1
        moves = {
            "left": -1,
            ",": -1,
            "right": 1,
            ".": 1,
            "pageup": -10,
            "[": -10,
            "pagedown": 10,
            "]": 10,
        }
        if key in moves:
            self.cursor = int(np.clip(self.cursor + moves[key], 0, last))
        elif key == "home":
            self.cursor = 0
        elif key == "end":
            self.cursor = last
        elif key in ("m", "space"):
            self.anchor = self.cursor if self.anchor is None else None
        elif key in ("c", "C", "r", "R"):
            self._edit("cost" if key.lower() == "c" else "reward", 1.0 if key.islower() else 0.0)
        elif key == "a":
            self._accept()
        elif key in ("u", "z"):
            self._undo()
        elif key == "v":
            self.reviewed = True
            self.message = "marked reviewed (s saves)"
        elif key == "s":
            self.save()
        elif key in ("n", "p", "q", "esc"):
            if self.dirty and armed != key:
                self._armed = key
                self.message = "unsaved changes: s saves, the same key again drops them"
                return True
            if key in ("q", "esc"):
                return False
            step = 1 if key == "n" else -1
            if not 0 <= self.index + step < len(self.paths):
                self.message = "no more episodes" if key == "n" else "first episode"
                return True
            self.index += step
            self._load()
            self.message = ""
        return True

    def _edit(self, label: str, value: float) -> None:
        a, b = self.selection()
        a = max(a, 1)  # row 0: no action led to it, it has no labels
        if b < a:
            self.message = "row 0 has no labels (no action led to it)"
            return
        values, origin = self.episode.steps[label], self.episode.steps["label_origin"]
        edit = _Edit(label, value, (a, b), values[a : b + 1].copy(), origin[a : b + 1].copy())
        values[a : b + 1] = value
        origin[a : b + 1] = ORIGIN_MANUAL
        self.edits.append(edit)
        self.anchor = None
        verb = "set" if value else "cleared"
        self.message = f"{label} {verb} on rows {a}-{b}"

    def _accept(self) -> None:
        """Every suggested row becomes a label (one edit per label and run: undo takes them
        back one by one); rows already labelled so are left as they are."""
        from data_collection.suggest import intervals

        steps, accepted = self.episode.steps, 0
        for label, rows in self.suggested.items():
            for a, b in intervals(rows & ~(steps[label] > 0)):
                origin = steps["label_origin"]
                edit = _Edit(label, 1.0, (a, b), steps[label][a : b + 1].copy(),
                             origin[a : b + 1].copy(), keys=0)  # fmt: skip
                steps[label][a : b + 1] = 1.0
                origin[a : b + 1] = ORIGIN_ACCEPTED
                self.edits.append(edit)
                accepted += b - a + 1
        self.message = f"accepted {accepted} suggested rows" if accepted else "no suggestions"

    def _undo(self) -> None:
        if not self.edits:
            self.message = "nothing to undo"
            return
        edit = self.edits.pop()
        a, b = edit.rows
        self.episode.steps[edit.label][a : b + 1] = edit.before
        self.episode.steps["label_origin"][a : b + 1] = edit.origin_before
        self.message = f"undone: {edit.label} rows {a}-{b}"

    # ------------------------------------------------------------------ save
    def save(self) -> bool:
        """Rewrite the episode atomically if anything changed; True if it wrote."""
        if not self.dirty:
            self.message = "nothing changed: not saved"
            return False
        meta = self.episode.metadata
        entry = {
            "at": now_iso(),
            "tool": "fosp label",
            "previous_label_source": meta.get("label_source"),
            "previous_label_status": meta.get("label_status"),
            "edits": [
                {"label": e.label, "value": e.value, "rows": list(e.rows)} for e in self.edits
            ],
            "category": self.episode.category,
        }
        meta["label_history"] = [*meta.get("label_history", []), entry]
        meta["label_source"] = "manual"
        meta["label_status"] = "reviewed"
        meta["schema_version"] = SCHEMA_VERSION  # label_origin is a schema-2 field
        replace_episode(self.episode, self.path)
        self.saved.append(self.path)
        self._original = {k: self.episode.steps[k].copy() for k in ("reward", "cost")}
        self.edits, self.reviewed = [], False
        self.message = f"saved {self.path.name} ({self.episode.category})"
        return True

    # ------------------------------------------------------------------ drawing
    def render(self) -> np.ndarray:
        img = draw.canvas(WIDTH, HEIGHT)
        s = self.episode.steps
        size = 64 * SCALE
        draw.camera(img, s["image"][self.cursor], (12, 12), size)
        x = size + 28
        draw.text(img, "LABEL", (x, 34), draw.CYAN, 0.7, 2)
        draw.text(img, f"episode {self.index + 1}/{len(self.paths)}", (x, 60))
        draw.text(img, self.path.name[-28:], (x, 80), draw.GREY, 0.38)
        draw.text(img, f"frame {self.cursor}/{self.rows - 1}", (x, 106), draw.WHITE, 0.6, 2)
        draw.badge(img, "COST", (x, 120), s["cost"][self.cursor] > 0, draw.RED)
        draw.badge(img, "REWARD", (x + 140, 120), s["reward"][self.cursor] > 0, draw.GREEN)
        meta = self.episode.metadata
        draw.text(img, f"category: {self.episode.category}", (x, 172), draw.WHITE, 0.5)
        draw.text(
            img,
            f"source: {meta.get('label_source')} / {meta.get('label_status', '-')}",
            (x, 192),
            draw.GREY,
            0.42,
        )
        draw.text(
            img, f"history: {len(meta.get('label_history', []))} saves", (x, 210), draw.GREY, 0.42
        )
        if self.anchor is not None:
            a, b = self.selection()
            draw.text(img, f"selection: rows {a}-{b}", (x, 232), draw.YELLOW, 0.45)
        state = "UNSAVED CHANGES" if self.dirty else "saved"
        draw.text(img, state, (x, 254), draw.YELLOW if self.dirty else draw.GREY, 0.5)
        for i, line in enumerate(HELP):
            draw.text(img, line, (x, 300 + 18 * i), draw.GREY, 0.36)
        if self.message:
            draw.text(img, self.message[:44], (x, 370), draw.YELLOW, 0.42)
        rows = [("reward", s["reward"], draw.GREEN), ("cost", s["cost"], draw.RED)]
        # suggestions, drawn apart from the labels (hatched colours, own bands): not stored
        rows += [
            ("suggest r", self.suggested["reward"] & ~(s["reward"] > 0), SUGGEST_REWARD),
            ("suggest c", self.suggested["cost"] & ~(s["cost"] > 0), SUGGEST_COST),
        ]
        if "oracle_reward" in s:
            rows += [
                ("sim rew", s["oracle_reward"], (40, 110, 40)),
                ("sim cost", s["oracle_cost"], (40, 40, 130)),
            ]
        sel = self.selection() if self.anchor is not None else None
        draw.timeline(img, rows, (12, size + 24, WIDTH - 24, HEIGHT - size - 36), self.cursor, sel)
        return img


def run_labeler(session: LabelSession, ui: OperatorUI) -> LabelSession:
    """The window loop: draw, wait for keys, apply them, until quit."""
    try:
        while True:
            frame = session.render()
            ui.show(frame, session)
            for key in ui.keys(0.05):
                if not session.handle(key):
                    return session
    finally:
        ui.close()
