"""docs/algorithm.md points at code by name; every `module.name` it cites must exist."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "algorithm.md"
MODULES = (
    "objectives", "lagrangian", "networks", "expansion", "world_model", "feature_cache",
    "strategy", "safedreamer", "soft_ac", "marvel", "ocr_cft",
)  # fmt: skip


def test_every_cited_function_exists():
    text = DOC.read_text()
    cited = re.findall(rf"`(?:policy\.)?({'|'.join(MODULES)})\.(\w+)", text)
    assert len(cited) > 10, "the table cites code by module.name"
    missing = [
        f"{m}.{name}"
        for m, name in cited
        if not hasattr(importlib.import_module(f"policy.{m}"), name)
    ]
    assert not missing, f"docs/algorithm.md cites names that do not exist: {missing}"
