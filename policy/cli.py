"""`fosp train` (offline FOSP pretraining) and `fosp eval` (SR / CV in the simulator)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fosp import args as types
from fosp.config_flags import add_flags, values
from fosp.errors import UserError
from policy.config import (
    AgentConfig,
    EvalConfig,
    FinetuneConfig,
    ModelConfig,
    OptimConfig,
    Table3Config,
    TrainConfig,
)


def register(sub) -> None:
    train = sub.add_parser("train", help="offline FOSP training on a dataset folder")
    train.add_argument("--dataset", required=True, help="dataset folder of episodes")
    train.add_argument("--preset", default="small", choices=["paper", "small", "tiny"])
    train.add_argument(
        "--steps", type=types.positive_int, required=True, help="total gradient steps"
    )
    train.add_argument("--out", required=True, help="run folder (config, checkpoint, metrics)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    # every config field is a flag; unset ones keep the preset's value (the preset is the base)
    add_flags(train.add_argument_group("training (TrainConfig)"), TrainConfig, show_defaults=False)
    for name, cls in (("model", ModelConfig), ("agent", AgentConfig), ("optim", OptimConfig)):
        group = train.add_argument_group(f"{name} ({cls.__name__}, policy/config.py)")
        add_flags(group, cls, prefix=f"{name}.", show_defaults=False)
    train.add_argument("--no-progress", action="store_true")
    train.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="leave out episode files that fail validation, each named on stderr "
        "(default: one bad file refuses the dataset)",
    )
    train.set_defaults(func=_train)

    ev = sub.add_parser(
        "eval",
        help="success / violation rates of a trained policy in the sim (`eval table3`: FOSP "
        "Table 3, before / during / after finetuning)",
    )
    ev.add_argument("mode", nargs="?", choices=["table3"], help="table3: the finetuning protocol")
    ev.add_argument("--checkpoint", required=True, help="run folder or checkpoint file")
    add_flags(ev, EvalConfig)
    ev.add_argument("--json", help="also write the result as JSON here")
    t3 = ev.add_argument_group(
        "table3 protocol (Table3Config, policy/config.py; --seed: the first test)"
    )
    add_flags(t3, Table3Config, skip=("eval_seed",))
    t3.add_argument("--dataset", help="offline dataset (default: the one the run was trained on)")
    t3.add_argument("--out", default="out/table3", help="table3 output folder")
    ft3 = ev.add_argument_group("table3 finetuning (FinetuneConfig; strategy and seed per row)")
    add_flags(ft3, FinetuneConfig, skip=("strategy", "seed"))
    ev.set_defaults(func=_eval)

    ft = sub.add_parser(
        "finetune", help="few-shot online finetuning with safe policy expansion (FOSP §4.3)"
    )
    ft.add_argument("--env", choices=["sim", "ros"], default="sim")
    ft.add_argument("--task", type=types.task, default="unseen-1", help="sim task (--env sim)")
    ft.add_argument("--checkpoint", required=True, help="pretrained run folder")
    ft.add_argument("--dataset", help="offline dataset (default: the one the run was trained on)")
    ft.add_argument(
        "--episodes", type=types.positive_int, default=40, help="online episodes in total"
    )
    ft.add_argument("--out", required=True, help="finetune run folder (resumes if it exists)")
    ft.add_argument("--namespace", default="/fosp", help="ROS namespace (--env ros)")
    ft.add_argument(
        "--labels",
        choices=["auto", "env", "labeler"],
        default="auto",
        help="ros: env = the sim backend's labels, labeler = the operator labels each episode "
        "in the labeler window (auto: env when the backend labels, else labeler)",
    )
    ft.add_argument(
        "--deadline", type=types.positive_float, help="s per inference before the arm holds"
    )
    settings = ft.add_argument_group("finetuning (FinetuneConfig, policy/config.py)")
    add_flags(settings, FinetuneConfig)
    ft.set_defaults(func=_finetune)


def config_from_args(args: argparse.Namespace):
    """`fosp train`'s config: the preset with every field the command line set."""
    from policy.config import resolve

    sections = {
        name: values(args, cls, f"{name}.")
        for name, cls in (("model", ModelConfig), ("agent", AgentConfig), ("optim", OptimConfig))
    }
    return resolve(args.preset, sections, **values(args, TrainConfig))


def _train(args: argparse.Namespace) -> int:
    from policy.train import set_threads, train

    set_threads()
    cfg = config_from_args(args)
    last = train(
        args.dataset,
        args.out,
        cfg,
        args.steps,
        args.resume,
        not args.no_progress,
        skip_bad_files=args.skip_bad_files,
    )
    keys = ("wm/loss", "lagrange/lambda_p", "ref/u_mean", "rate/cost_true", "rate/cost_pred")
    print(" ".join(f"{k}={last[k]:.4g}" for k in keys if k in last))
    if "check/cost_recall" in last:
        print(cost_head_summary(last, cfg.agent.cost_event))
    if args.skip_bad_files:
        print(f"skipped {last['data/skipped_files']} bad episode file(s) (named on stderr)")
    print(f"checkpoint: {args.out}/checkpoint.pt")
    return 0


def cost_head_summary(last: dict[str, float], event: float) -> str:
    """One line on how many of the dataset's cost rows the trained cost head flags."""
    recall, false_alarm = last["check/cost_recall"], last.get("check/cost_false_alarm", 0.0)
    line = (
        f"cost head: flags {100 * recall:.0f} % of the dataset's {last['check/cost_rows']:.0f} "
        f"cost rows and {100 * false_alarm:.1f} % of the others (prediction > {event:g})"
    )
    if recall < 0.5:
        line += (
            "; imagination will under-count violations (docs/algorithm.md, "
            '"does the world model see the policy\'s contacts")'
        )
    return line


def _writable_file(flag: str, path: str) -> None:
    """An output file we will write at the end: checked before the (long) work starts."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {path} is a folder, not a file")
    if not p.parent.is_dir():
        raise UserError(f"{flag} {path}: folder {p.parent} does not exist")


def _eval(args: argparse.Namespace) -> int:
    from policy import checkpoint as ckpt
    from policy.evaluate import evaluate
    from policy.train import set_threads

    set_threads()
    run = Path(args.checkpoint)
    run = run.parent if run.is_file() else run
    if args.json:
        _writable_file("--json", args.json)
    if args.mode == "table3":
        from policy.table3 import table3_cli

        if args.policy not in (None, "acting"):
            raise UserError("--policy: eval table3 tests each strategy's policy as it acts")

        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise UserError(f"--out {args.out} is a file, not a folder")
        if args.dataset and not Path(args.dataset).is_dir():
            raise UserError(f"--dataset {args.dataset}: no such dataset folder")
        ckpt.load(run, ckpt.read_config(run))  # before anything is created
        return table3_cli(args, run)
    cfg = EvalConfig(**values(args, EvalConfig))
    policy = _policy(run, cfg.policy)
    result = evaluate(policy, cfg.task, cfg.episodes, cfg.seed, not cfg.sample, True)
    print(result.line())
    if args.json:
        from fosp.files import atomic_write_bytes

        atomic_write_bytes(args.json, (json.dumps(result.to_dict(), indent=2) + "\n").encode())
    return 0


def _policy(run: Path, which: str):
    """What `fosp eval` tests: a pretrained run's agent, or a finetune run's policy (`--policy`)."""
    from policy.finetune import FINETUNE_JSON, load_finetuned
    from policy.strategy import OFFLINE, ONLINE
    from policy.table3 import StrategyPolicy
    from policy.train import load_agent

    if not (run / FINETUNE_JSON).exists():
        if which != "acting":
            raise UserError(f"--policy {which}: {run} is a pretrained run, not a finetune run")
        return load_agent(run)
    strategy = load_finetuned(run)
    if which != "acting":
        if strategy.name != "pex":
            raise UserError(
                f"--policy {which}: {run} was finetuned with --strategy {strategy.name}, which "
                "acts with one actor (only pex keeps two)"
            )
        strategy.only = OFFLINE if which == "offline" else ONLINE
    return StrategyPolicy(strategy)


def _finetune(args: argparse.Namespace) -> int:
    from policy.train import set_threads

    set_threads()
    fcfg = FinetuneConfig(**values(args, FinetuneConfig))
    try:
        if args.env == "sim":
            from policy.finetune import finetune_sim

            tuner = finetune_sim(
                args.checkpoint, args.out, args.task, args.episodes, fcfg, args.dataset
            )
        else:
            from policy.policy_node import finetune_ros

            tuner = finetune_ros(
                args.checkpoint,
                args.out,
                args.episodes,
                fcfg,
                args.dataset,
                task=args.task,
                namespace=args.namespace,
                labels=args.labels,
                deadline=args.deadline,
            )
    except ValueError as err:  # CheckpointError, ReplayError, EpisodeFormatError, bad values
        types.say("finetune", str(err))
        return 2
    s = tuner.summary()
    print(
        f"finetuned {s['episodes']} episodes: {s['successes']} successes, "
        f"{s['violations']} violations; checkpoint: {args.out}/checkpoint.pt"
    )
    return 0


def label_suggestions(run: str):
    """`fosp label --suggest-from RUN`: the run's world-model label suggestions (a checkpoint
    that cannot be read is a one-line error before any window opens)."""
    from policy.label_model import model_suggestions
    from policy.train import load_agent

    return model_suggestions(load_agent(run, "cpu"))
