"""`fosp sim ...` commands that belong to the simulated robot."""

from __future__ import annotations

import argparse
from pathlib import Path

from fosp import args as types


def register(sub) -> argparse._SubParsersAction:
    """Adds the `sim` group and its `view` command; returns the group for other packages."""
    sim = sub.add_parser("sim", help="the simulated SafeReach world")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True, metavar="SIM_COMMAND")
    view = sim_sub.add_parser("view", help="write the 64x64 observation beside a large view")
    view.add_argument("--task", default="train", help="task variant name or a .toml file")
    view.add_argument("--seed", type=types.seed, default=0, help="layout seed")
    view.add_argument("--out", default="scene.png")
    view.add_argument(
        "--size", type=types.positive_int, default=480, help="height of the picture in pixels"
    )
    view.set_defaults(func=_view)
    return sim_sub


def _view(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from robot.env import SafeReachEnv

    env = SafeReachEnv(task=args.task)
    try:
        obs, info = env.reset(options={"layout_seed": args.seed})
        small = cv2.resize(obs["image"], (args.size, args.size), interpolation=cv2.INTER_NEAREST)
        large = env.sim.render(args.size * 4 // 3, args.size, camera="overview")
    finally:
        env.close()
    picture = np.concatenate([small, large], axis=1)
    for text, x in (
        ("policy input 64x64", 8),
        (f"{args.task}, layout seed {args.seed}", args.size + 8),
    ):
        cv2.putText(picture, text, (x, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise SystemExit(f"could not write {args.out}")
    print(f"wrote {args.out}")
    return 0
