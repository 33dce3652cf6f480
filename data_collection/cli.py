"""`fosp collect`, `fosp label`, `fosp sim collect` and `fosp dataset ...`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_collection.recorder import CollectConfig
from data_collection.scripted import MixConfig
from data_collection.teleop.mapping import PLACEMENTS, MappingConfig
from fosp import args as types
from fosp.config_flags import add_flags, values
from fosp.errors import UserError
from robot.workspace import CONTROL_HZ


def register(sub, sim_sub, model_suggester=None) -> None:
    """`model_suggester(run)`: a labeller suggestion source from a trained run (the learner's,
    handed in by fosp/cli.py so this package does not import it); enables `label
    --suggest-from`."""
    collect = sim_sub.add_parser(
        "collect", help="scripted operators collect a labelled dataset in the simulated world"
    )
    collect.add_argument("--out", required=True, help="dataset folder (appended to / completed)")
    add_flags(collect, MixConfig)
    collect.set_defaults(func=_collect)

    dataset = sub.add_parser("dataset", help="inspect and check a dataset folder")
    ds_sub = dataset.add_subparsers(dest="dataset_command", required=True, metavar="DS_COMMAND")
    stats = ds_sub.add_parser("stats", help="category table, returns, reward-vs-cost plot")
    stats.add_argument("dir")
    stats.add_argument("--plot", help="where to write the scatter plot (default DIR/stats.png)")
    stats.set_defaults(func=_stats)
    validate = ds_sub.add_parser("validate", help="read every episode in full; list defects")
    validate.add_argument("dir")
    validate.set_defaults(func=_validate)
    index = ds_sub.add_parser(
        "index",
        help="rebuild DIR/index.json from the episode files; removes stale .partial files",
    )
    index.add_argument("dir")
    index.set_defaults(func=_index)
    merge = ds_sub.add_parser(
        "merge", help="copy the episodes of SRC... into OUT (never overwrites)"
    )
    merge.add_argument("out")
    merge.add_argument("sources", nargs="+", metavar="SRC")
    merge.add_argument("--link", action="store_true", help="hard-link instead of copying")
    merge.set_defaults(func=_merge)
    split = ds_sub.add_parser(
        "split", help="split DIR into OUT/<group>/ datasets (held-out layouts, categories, tasks)"
    )
    split.add_argument("dir")
    split.add_argument("--out", required=True)
    split.add_argument(
        "--by",
        choices=["layout", "episode", "category", "task"],
        default="layout",
        help="layout: OUT/train + OUT/heldout with whole layouts held out (per category); "
        "episode: the same per episode; category/task: one folder per value",
    )
    split.add_argument(
        "--holdout", type=types.open_fraction, default=0.2, help="held-out fraction, in (0, 1)"
    )
    split.add_argument("--seed", type=types.seed, default=0)
    split.add_argument("--link", action="store_true", help="hard-link instead of copying")
    split.set_defaults(func=_split)

    _register_collect(sub)
    _register_label(sub, model_suggester)


_NOT_FLAGS = ("pace", "env_kind")  # set from --env


def _register_collect(sub) -> None:
    p = sub.add_parser(
        "collect",
        help="teleoperate episodes (SpaceMouse/keyboard) with live manual labels",
        description="Record teleoperated episodes: reset, countdown, the episode at the control "
        "rate, then review (keep / discard / re-record). docs/collecting.md",
    )
    p.add_argument("--env", choices=["sim", "ros"], default="sim")
    p.add_argument("--out", required=True, help="dataset folder (appended to)")
    p.add_argument("--teleop", choices=["spacemouse", "keyboard"], default="spacemouse")
    add_flags(p.add_argument_group("session (CollectConfig)"), CollectConfig, skip=_NOT_FLAGS)
    p.add_argument("--ns", default="/fosp", help="ROS namespace of the robot (--env ros)")
    p.add_argument(
        "--control-hz",
        type=types.positive_float,
        default=CONTROL_HZ,
        help="--env ros: the launch's rate",
    )
    m = p.add_argument_group("teleop mapping (docs/collecting.md)")
    m.add_argument(
        "--placement",
        choices=["facing", "behind", "base"],
        default="facing",
        help="where the operator is: facing = across the table facing the arm (default)",
    )
    add_flags(m, MappingConfig)
    m.add_argument(
        "--spacemouse-device", default=None, help="pyspacemouse name, e.g. SpaceMouseCompact"
    )
    m.add_argument("--spacemouse-path", default=None, help="/dev/hidraw* of the SpaceMouse")
    m.add_argument("--cost-button", default=None, help="button name (default LEFT or BTN_1)")
    m.add_argument("--reward-button", default=None, help="button name (default RIGHT or BTN_2)")
    p.set_defaults(func=_collect_teleop)


def _register_label(sub, model_suggester=None) -> None:
    p = sub.add_parser(
        "label",
        help="scrub episodes and set/clear reward and cost labels (OpenCV window)",
        description="Keys: see `data_collection/labeler.py` or docs/collecting.md.",
    )
    p.add_argument("dir")
    p.add_argument("--episode", default="0", help="index in the filtered list, or a file name")
    p.add_argument(
        "--filter",
        default="all",
        choices=["all", "unlabelled", "safe+success", "safe+fail", "unsafe+success", "unsafe+fail"],
    )
    if model_suggester is not None:
        p.add_argument(
            "--suggest-from",
            metavar="RUN",
            help="also suggest reward and cost rows from this trained run's world model "
            "(default: cost from the contact force only; docs/collecting.md)",
        )
    p.set_defaults(func=_label, model_suggester=model_suggester)


def _output_dataset(path: str) -> Path:
    """A dataset folder episodes will be added to: not a file, and no unreadable episodes in it
    (checked before anything is created)."""
    from data_collection.dataset import Dataset

    root = Path(path)
    if root.exists() and not root.is_dir():
        raise UserError(f"--out {root} is a file, not a dataset folder")
    Dataset(root).readable_index(f"--out {root}")
    return root


def _report_partials(root: Path, remove: bool = False) -> None:
    """Name hidden .partial files left by a killed writer (remove them with `remove`)."""
    from data_collection.dataset import Dataset

    dataset = Dataset(root)
    if remove:
        for path in dataset.remove_stale_partials():
            print(f"removed stale partial write {path}", file=sys.stderr)
    for path in dataset.stale_partials():
        print(
            f"stale partial write (a killed writer's; `fosp dataset index {root}` removes it): "
            f"{path}",
            file=sys.stderr,
        )


def _collect(args: argparse.Namespace) -> int:
    from data_collection.scripted import collect_mix

    _output_dataset(args.out)
    cfg = MixConfig(**values(args, MixConfig))  # mix: only "paper" (PAPER_MIX) so far
    counts = collect_mix(
        args.out, task=cfg.task, episodes=cfg.episodes, seed=cfg.seed, label_delay=cfg.label_delay
    )
    attempts = counts.pop("attempts")
    print(f"{args.out}: {counts} ({attempts} episodes simulated for the new ones)")
    return 0


def _require_dir(path: str) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise SystemExit(f"{root}: no such dataset folder")
    return root


def _stats(args: argparse.Namespace) -> int:
    from data_collection.dataset import Dataset
    from data_collection.stats import format_stats, plot_returns

    root = _require_dir(args.dir)
    if args.plot:
        _writable_plot(args.plot)
    summaries, errors = Dataset(root).index()
    print(format_stats(summaries))
    for err in errors:
        print(f"unreadable: {err}", file=sys.stderr)
    _report_partials(root)
    if summaries:
        try:
            out = plot_returns(summaries, args.plot or root / "stats.png")
            print(f"plot: {out}")
        except OSError as err:
            if args.plot:
                raise UserError(f"--plot {args.plot}: cannot write ({err.strerror})") from err
            print(
                f"plot: not written ({root} is not writable: {err.strerror}); pass --plot PATH",
                file=sys.stderr,
            )
    return 1 if errors else 0


def _writable_plot(path: str) -> None:
    p = Path(path)
    if p.is_dir():
        raise UserError(f"--plot {path} is a folder, not a file")


def _validate(args: argparse.Namespace) -> int:
    from data_collection.dataset import Dataset

    root = _require_dir(args.dir)
    dataset = Dataset(root)
    errors = dataset.validate()
    for err in errors:
        print(f"INVALID {err}")
    _report_partials(root)
    print(f"{len(dataset) - len(errors)} valid, {len(errors)} invalid episode files in {root}")
    return 1 if errors else 0


def _index(args: argparse.Namespace) -> int:
    from data_collection.dataset import Dataset

    root = _require_dir(args.dir)
    _report_partials(root, remove=True)
    summaries, errors = Dataset(root).rebuild_index()
    for err in errors:
        print(f"unreadable: {err}", file=sys.stderr)
    print(f"indexed {len(summaries)} episodes, {len(errors)} unreadable")
    return 1 if errors else 0


def _merge(args: argparse.Namespace) -> int:
    from data_collection.tools import merge

    report = merge(args.out, args.sources, link=args.link)
    for item in report.conflicts:
        print(f"CONFLICT (same name, different content; left alone): {item}", file=sys.stderr)
    for item in report.unreadable:
        print(f"UNREADABLE (not copied): {item}", file=sys.stderr)
    print(f"{args.out}: {report.line()}")
    return 0 if report.ok else 1


def _split(args: argparse.Namespace) -> int:
    from data_collection.dataset import Dataset, category_counts
    from data_collection.tools import split

    groups, report = split(
        _require_dir(args.dir), args.out, args.by, args.holdout, args.seed, args.link
    )
    for name in groups:
        summaries, _ = Dataset(Path(args.out) / name).index()
        counts = " ".join(f"{c}={n}" for c, n in category_counts(summaries).items())
        print(f"{Path(args.out) / name}: {len(groups[name])} episodes ({counts})")
    for item in report.conflicts + report.unreadable:
        print(f"problem: {item}", file=sys.stderr)
    print(f"{report.line()}; manifest {Path(args.out) / 'split.json'}")
    return 0 if report.ok else 1


def _collect_teleop(args: argparse.Namespace) -> int:
    from data_collection.dataset import Dataset
    from data_collection.recorder import Recorder, make_teleop
    from data_collection.teleop.base import RealClock, TeleopError
    from data_collection.teleop.window import CvWindow, WindowError

    dataset = Dataset(_output_dataset(args.out))
    mapping = {"yaw_deg": PLACEMENTS[args.placement], **values(args, MappingConfig)}
    clock = RealClock()  # one clock for the teleop and the recorder (tests swap in a fake)
    try:
        teleop = make_teleop(
            args.teleop,
            clock,
            **mapping,
            device=args.spacemouse_device,
            path=args.spacemouse_path,
            cost_button=args.cost_button,
            reward_button=args.reward_button,
        )
        teleop.start()
    except (TeleopError, ValueError) as err:
        print(f"fosp collect: {err}", file=sys.stderr)
        return 2
    config = CollectConfig(**values(args, CollectConfig), pace=args.env == "sim", env_kind=args.env)
    env = ui = None
    try:
        ui = CvWindow(f"fosp collect ({args.env}, {config.task})")  # fails fast without a display
        env = _make_env(args, config.task)
        result = Recorder(env, teleop, ui, dataset, config, clock).run()
    except (TeleopError, WindowError) as err:
        print(f"fosp collect: {err}", file=sys.stderr)
        return 2
    finally:
        teleop.stop()
        if ui is not None:
            ui.close()
        if env is not None:
            env.close()
    print(
        f"{args.out}: kept {len(result.kept)}, discarded {result.discarded}, "
        f"re-recorded {result.rerecorded}; `fosp dataset stats {args.out}` for the table"
    )
    return 0


def _make_env(args: argparse.Namespace, task: str):
    if args.env == "sim":
        from robot.env import EnvConfig, SafeReachEnv

        return SafeReachEnv(EnvConfig(task=task))
    import os

    import rosgraph
    import rospy

    from robot.ros_env import RosSafeReachEnv, ensure_node

    uri = os.environ.get("ROS_MASTER_URI", "http://localhost:11311")
    if not rosgraph.is_master_online(uri):  # rospy would wait for it forever
        raise SystemExit(
            f"no ROS master at {uri}: start the robot side first "
            "(`roslaunch fosp_robot collect.launch`, docs/collecting.md)"
        )
    ensure_node("fosp_collect")
    ns = args.ns.rstrip("/")
    launched = rospy.get_param(f"{ns}/arm_node/task", None)
    if launched is not None and launched != task:
        raise SystemExit(f"the robot runs task {launched!r}, not --task {task!r}")
    try:
        return RosSafeReachEnv(ns, control_hz=args.control_hz)
    except (rospy.ROSException, TimeoutError) as err:
        raise SystemExit(f"{err}: is arm_node running in {ns}? (collect.launch)") from err


def _label(args: argparse.Namespace) -> int:
    from data_collection.labeler import LabelSession, run_labeler, select_episodes
    from data_collection.teleop.window import CvWindow, WindowError

    root = _require_dir(args.dir)
    paths = select_episodes(root, args.filter)
    if not paths:
        print(f"{root}: no episodes match --filter {args.filter}")
        return 1
    if args.episode.isdigit():
        index = int(args.episode)
        if index >= len(paths):
            raise UserError(
                f"--episode {index}: --filter {args.filter} selects {len(paths)} episode(s) "
                f"(indices 0 to {len(paths) - 1})"
            )
    else:
        names = [p.name for p in paths]
        if Path(args.episode).name not in names:
            raise UserError(
                f"--episode {args.episode}: not among the {len(paths)} episodes of "
                f"--filter {args.filter}"
            )
        index = names.index(Path(args.episode).name)
    suggest = None
    if getattr(args, "suggest_from", None):
        suggest = args.model_suggester(args.suggest_from)  # a bad run: one line, no window
    try:
        ui = CvWindow(f"fosp label {root}")
    except WindowError as err:
        print(f"fosp label: {err}", file=sys.stderr)
        return 2
    session = run_labeler(LabelSession(paths, index=index, suggest=suggest), ui)
    print(f"saved {len(session.saved)} episode(s)")
    if session.saved:
        from data_collection.dataset import Dataset

        Dataset(root).index()
    return 0
