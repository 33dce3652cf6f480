"""Where a policy violates, and what it does once it has touched the target.

    .venv/bin/python benchmarks/violations.py --runs RUN [RUN ...] [--tasks train unseen-3]
        [--tests 20] [--dataset DATA]

Per run and task, on the evaluation's tests (`policy.evaluate.scored_episodes`): SR, CV, how many
violating tests touched the target before their first contact, and the z action after the first
touch (mean, share pressing down with a_z < -0.5) with the share of pressing steps among the 5
before each post-touch contact. With `--dataset`, the same post-touch figures per dataset
category: the operators the policy learnt from (docs/algorithm.md, "post-touch pressing").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_collection.dataset import Dataset  # noqa: E402
from policy.evaluate import scored_episodes  # noqa: E402
from policy.train import load_agent, set_threads  # noqa: E402

PRESSING = -0.5  # a_z below this: pushing down (the operators' touch waypoint gives about -0.7)
BEFORE = 5  # steps before a post-touch contact that are checked for pressing


def post_touch(episodes: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """SR / CV counts and the post-touch figures of a list of episodes (their step arrays)."""
    tests = len(episodes)
    success = violation = after_touch = 0
    a_z, pressing_before = [], []
    for steps in episodes:
        touched, hit = steps["reward"] > 0, steps["cost"] > 0
        success += bool(touched.any())
        violation += bool(hit.any())
        if not touched.any():
            continue
        first = int(np.argmax(touched))
        a_z.append(steps["action"][first:-1, 2])  # the last row's action is padding
        if hit[first + 1 :].any():
            contact = first + 1 + int(np.argmax(hit[first + 1 :]))
            after_touch += not hit[: first + 1].any()
            window = steps["action"][max(first, contact - BEFORE) : contact, 2]
            pressing_before.append(float((window < PRESSING).mean()))
    z = np.concatenate(a_z) if a_z else np.zeros(0)
    return {
        "tests": tests,
        "sr": success / max(1, tests),
        "cv": violation / max(1, tests),
        "violations after the touch": after_touch,
        "post-touch a_z": float(z.mean()) if z.size else float("nan"),
        "pressing share": float((z < PRESSING).mean()) if z.size else float("nan"),
        "post-touch contacts": len(pressing_before),
        "pressing before contact": float(np.mean(pressing_before)) if pressing_before else 0.0,
    }


def table(rows: list[tuple[str, dict[str, float]]]) -> str:
    head = ("source", "n", "SR %", "CV %", "violating after the touch", "post-touch mean a_z",
            "share a_z < -0.5", "post-touch contacts", "pressing, 5 steps before")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows:
        touched = np.isfinite(r["post-touch a_z"])  # else no episode touched the target
        cells = (name, r["tests"], f"{100 * r['sr']:.0f}", f"{100 * r['cv']:.0f}",
                 r["violations after the touch"],
                 f"{r['post-touch a_z']:+.2f}" if touched else "-",
                 f"{100 * r['pressing share']:.0f} %" if touched else "-", r["post-touch contacts"],
                 f"{100 * r['pressing before contact']:.0f} %")  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="pretrained run folders")
    p.add_argument("--tasks", nargs="+", default=["train", "unseen-3"])
    p.add_argument("--tests", type=int, default=20)
    p.add_argument("--dataset", help="also the dataset's categories")
    args = p.parse_args()
    set_threads()
    rows = []
    if args.dataset:
        by_category: dict[str, list] = {}
        for _, episode in Dataset(args.dataset).episodes(skip_corrupt=True):
            by_category.setdefault(episode.category, []).append(episode.steps)
        rows += [(f"dataset {c}", post_touch(e)) for c, e in sorted(by_category.items())]
    for run in args.runs:
        agent = load_agent(run, "cpu")
        for task in args.tasks:
            episodes = list(scored_episodes(agent, task, args.tests, progress=True))
            rows.append((f"{Path(run).name} {task}", post_touch(episodes)))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
