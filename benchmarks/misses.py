"""Where failed finetuning episodes went: did the arm come down beside the target, or elsewhere?

    .venv/bin/python benchmarks/misses.py RUN2 [RUN2 ...]

RUN2: finetune run folders (`fosp finetune --out`, or a Table 3 folder's STRATEGY/seedK/TASK).
Each online episode file holds the end effector's path, the simulator's truth (oracle reward and
cost) and its layout seed, so the target and obstacle positions are rebuilt from the task file.
Per run and pooled: episodes, failures (never touched the target), failures that violated, and
for the failures: the median closest xy distance of the end effector to the target, the median
xy distance of the path's lowest point to the target and its x offset (> 0: beyond the target,
seen from the robot), and how many came down nearer another of the target's placement slots
than its own (docs/algorithm.md, "where the failures during finetuning go").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_collection.episode import read_episode  # noqa: E402
from policy.finetune import online_files  # noqa: E402
from robot.task_spec import Layout, load_task  # noqa: E402


def miss(steps: dict[str, np.ndarray], layout: Layout, slots: np.ndarray) -> dict[str, float]:
    """One episode against its layout: success and violation from the simulator's truth, and
    where the end effector (pose[:, :3]) came closest to the target and went lowest."""
    xyz = steps["pose"][:, :3]
    to_target = np.linalg.norm(xyz[:, :2] - layout.target_xy, axis=1)
    low = int(np.argmin(xyz[:, 2]))
    to_slots = np.linalg.norm(slots - xyz[low, :2], axis=1)
    return {
        "success": float(steps["oracle_reward"].max(initial=0) > 0),
        "violation": float(steps["oracle_cost"].max(initial=0) > 0),
        "closest": float(to_target.min()),
        "low": float(to_target[low]),
        "low_dx": float(xyz[low, 0] - layout.target_xy[0]),
        "other_slot": float(int(np.argmin(to_slots)) != layout.target_index),
    }


def summary(misses: list[dict[str, float]]) -> dict[str, float]:
    """Counts over all episodes; medians and the other-slot count over the failures only."""
    failed = [m for m in misses if not m["success"]]
    med = {k: float(np.median([m[k] for m in failed])) if failed else float("nan")
           for k in ("closest", "low", "low_dx")}  # fmt: skip
    return {
        "episodes": len(misses),
        "failures": len(failed),
        "violating failures": int(sum(m["violation"] for m in failed)),
        **med,
        "other slot": int(sum(m["other_slot"] for m in failed)),
    }


def run_misses(run: Path) -> list[dict[str, float]]:
    out = []
    for path in online_files(run):
        episode = read_episode(path)
        task = load_task(episode.metadata["task"])
        layout = task.sample_layout(int(episode.metadata["layout_seed"]))
        out.append(miss(episode.steps, layout, np.asarray(task.target.placements, float)))
    return out


def table(rows: list[tuple[str, dict[str, float]]]) -> str:
    head = ("run", "episodes", "failures", "of them violating", "closest to target, cm",
            "lowest point to target, cm", "its x offset, cm", "at another slot")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in rows:
        cells = (name, s["episodes"], s["failures"], s["violating failures"],
                 f"{100 * s['closest']:.1f}", f"{100 * s['low']:.1f}",
                 f"{100 * s['low_dx']:+.1f}", s["other slot"])  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="finetune run folders (with online/)")
    args = p.parse_args()
    rows, every = [], []
    for run in map(Path, args.runs):
        if not (run / "online").is_dir():
            print(
                f"misses: error: {run} has no online/ folder (not a finetune run)", file=sys.stderr
            )
            return 2
        mine = run_misses(run)
        every += mine
        rows.append((str(run), summary(mine)))
    if len(rows) > 1:
        rows.append(("all", summary(every)))
    print(table(rows))  # the benchmark's output: a markdown table
    return 0


if __name__ == "__main__":
    sys.exit(main())
