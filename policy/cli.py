"""`fosp train` (offline FOSP pretraining) and `fosp eval` (SR / CV in the simulator)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    train = sub.add_parser("train", help="offline FOSP training on a dataset folder")
    train.add_argument("--dataset", required=True, help="dataset folder of episodes")
    train.add_argument("--preset", default="small", help="paper | small | tiny")
    train.add_argument("--steps", type=int, required=True, help="total gradient steps")
    train.add_argument("--out", required=True, help="run folder (config, checkpoint, metrics)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="auto | cpu | cuda")
    train.add_argument("--batch", type=int)
    train.add_argument("--length", type=int)
    train.add_argument("--checkpoint-every", type=int)
    train.add_argument("--log-every", type=int)
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="success / violation rates of a trained policy in the sim")
    ev.add_argument("--checkpoint", required=True, help="run folder or checkpoint file")
    ev.add_argument("--task", default="train", help="train | unseen-1 | unseen-2 | unseen-3")
    ev.add_argument("--episodes", type=int, default=20)
    ev.add_argument("--seed", type=int, default=10_000)
    ev.add_argument("--sample", action="store_true", help="sample actions (default: the mean)")
    ev.add_argument("--json", help="also write the result as JSON here")
    ev.set_defaults(func=_eval)


def _train(args: argparse.Namespace) -> int:
    from policy.checkpoint import CheckpointError
    from policy.config import resolve
    from policy.replay import ReplayError
    from policy.train import set_threads, train

    set_threads()
    try:
        cfg = resolve(
            args.preset,
            seed=args.seed,
            device=args.device,
            batch=args.batch,
            length=args.length,
            checkpoint_every=args.checkpoint_every,
            log_every=args.log_every,
        )
        last = train(args.dataset, args.out, cfg, args.steps, args.resume, not args.no_progress)
    except (CheckpointError, ReplayError, ValueError) as err:
        print(f"fosp train: error: {err}", file=sys.stderr)
        return 2
    keys = ("wm/loss", "lagrange/lambda_p", "ref/u_mean", "rate/cost_true", "rate/cost_pred")
    print(" ".join(f"{k}={last[k]:.4g}" for k in keys if k in last))
    print(f"checkpoint: {args.out}/checkpoint.pt")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from policy.checkpoint import CheckpointError
    from policy.evaluate import evaluate
    from policy.train import load_agent, set_threads

    set_threads()
    run = Path(args.checkpoint)
    run = run.parent if run.is_file() else run
    try:
        agent = load_agent(run)
        result = evaluate(agent, args.task, args.episodes, args.seed, not args.sample, True)
    except CheckpointError as err:
        print(f"fosp eval: error: {err}", file=sys.stderr)
        return 2
    print(result.line())
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0
