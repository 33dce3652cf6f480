"""Same-machine behaviour fingerprint, to check that a refactor changed nothing it should not.

    .venv/bin/python benchmarks/behaviour_reference.py --run RUN [--out ref.json]

Prints (and writes) a JSON of: the hash of a 6-episode scripted collection (seed 3), `evaluate`
of RUN on unseen-1 (4 tests: successes, violations, mean return, mean cost), and the hash and
metadata of the first PEX finetuning episode from RUN. Run it before and after a change on the
same machine and compare: equal fingerprints mean the collection, evaluation and finetuning
loops produce the same episodes. Across machines MuJoCo contact dynamics differ (CPU), so only
compare fingerprints taken on one machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VOLATILE = ("started_at", "finished_at", "episode_id")


def digest(episode, with_metadata: bool = True) -> str:
    import numpy as np

    h = hashlib.sha256()
    for k in sorted(episode.steps):
        h.update(np.ascontiguousarray(episode.steps[k]).tobytes())
    if with_metadata:
        meta = {k: v for k, v in episode.metadata.items() if k not in VOLATILE}
        h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def fingerprint(run: str) -> dict:
    import torch

    from data_collection.dataset import Dataset
    from data_collection.episode import read_episode
    from data_collection.scripted import collect_mix
    from policy.config import FinetuneConfig
    from policy.evaluate import evaluate
    from policy.expansion import PolicyExpansion
    from policy.finetune import SimCollector
    from policy.train import load_agent, set_threads
    from robot.spaces import EPISODE_STEPS

    set_threads()
    out: dict = {}
    folder = tempfile.mkdtemp()
    try:
        collect_mix(folder, "train", 6, seed=3, progress=False)
        h = hashlib.sha256()
        # as a set: file names sort by their random id where two episodes share a timestamp
        for one in sorted(digest(read_episode(p)) for p in Dataset(folder).episode_paths()):
            h.update(one.encode())
        out["collect"] = h.hexdigest()[:16]
    finally:
        shutil.rmtree(folder)
    agent = load_agent(run, "cpu")
    r = evaluate(agent, "unseen-1", 4, 10_000)
    out["eval"] = [r.successes, r.violations, round(r.mean_return, 6), round(r.mean_cost, 6)]
    torch.manual_seed(0)
    collector = SimCollector("unseen-1", 0)
    try:
        episode = collector.collect(
            PolicyExpansion(agent, FinetuneConfig(strategy="pex", horizon=EPISODE_STEPS)), 0
        )
    finally:
        collector.close()
    out["finetune_episode"] = digest(episode, with_metadata=False)
    out["finetune_metadata"] = {k: v for k, v in episode.metadata.items() if k not in VOLATILE}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a trained run folder (fosp train --out)")
    p.add_argument("--out", help="also write the fingerprint here")
    args = p.parse_args()
    text = json.dumps(fingerprint(args.run), default=str, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
