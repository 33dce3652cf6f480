"""`fosp demo` (the README's `make demo`): the stack end to end in the in-process simulator.

What exists so far: every task variant rendered, a paper-mix dataset collected by the scripted
operators, its statistics and plot, and a filmstrip of one trajectory per category.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def run_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[1/3] task variants -> {out / 'scenes.png'}")
    write_scene_grid(out / "scenes.png")
    dataset_dir = out / "dataset"
    print(f"[2/3] collecting {args.episodes} paper-mix episodes -> {dataset_dir}")
    from data_collection.scripted import collect_mix

    collect_mix(str(dataset_dir), task="train", episodes=args.episodes)
    print("[3/3] dataset statistics")
    from data_collection.dataset import Dataset
    from data_collection.stats import format_stats, plot_returns

    dataset = Dataset(dataset_dir)
    summaries, _ = dataset.index()
    print(format_stats(summaries))
    print(f"plot: {plot_returns(summaries, out / 'dataset_stats.png')}")
    print(f"filmstrips: {write_filmstrips(dataset, out / 'episodes.png')}")
    return 0


def write_scene_grid(path: Path) -> Path:
    import cv2

    from robot.env import SafeReachEnv
    from robot.task_spec import available_tasks

    tiles = []
    for task in available_tasks():
        env = SafeReachEnv(task=task)
        obs, _ = env.reset(options={"layout_seed": 0})
        small = cv2.resize(obs["image"], (240, 240), interpolation=cv2.INTER_NEAREST)
        large = env.sim.render(320, 240, camera="overview")
        env.close()
        tile = np.concatenate([small, large], axis=1)
        cv2.putText(tile, task, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 2)
        tiles.append(tile)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(tiles, axis=0), cv2.COLOR_RGB2BGR))
    return path


def write_filmstrips(dataset, path: Path, frames: int = 8) -> Path:
    """A row per category: evenly spaced 64x64 frames; red border = cost, yellow = reward."""
    import cv2

    summaries, _ = dataset.index()
    rows = []
    for category in ("safe+success", "safe+fail", "unsafe+success", "unsafe+fail"):
        match = [s for s in summaries if s.category == category]
        if not match:
            continue
        episode = dataset.read(match[0].file)
        idx = np.linspace(0, len(episode) - 1, frames).astype(int)
        tiles = []
        for i in idx:
            tile = cv2.resize(
                episode.steps["image"][i], (128, 128), interpolation=cv2.INTER_NEAREST
            )
            colour = None
            if episode.steps["cost"][i] > 0:
                colour = (220, 30, 30)
            elif episode.steps["reward"][i] > 0:
                colour = (240, 200, 0)
            if colour:
                cv2.rectangle(tile, (0, 0), (127, 127), colour, 4)
            cv2.putText(tile, f"t={i}", (4, 122), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
            tiles.append(tile)
        row = np.concatenate(tiles, axis=1)
        label = np.full((20, row.shape[1], 3), 255, np.uint8)
        cv2.putText(label, category, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        rows += [label, row]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return path
