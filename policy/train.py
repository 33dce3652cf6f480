"""Offline FOSP training runner: `fosp train --dataset DIR --preset small --steps N --out RUN`."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fosp.errors import UserError, WriteError
from fosp.files import mkdir
from policy import checkpoint as ckpt
from policy.agent import FOSPAgent
from policy.config import Config
from policy.replay import Replay, ReplayError

METRICS = "metrics.jsonl"
DEVICES = "auto | cpu | cuda | cuda:N"


def pick_device(name: str) -> torch.device:
    """The torch device for `name` (DEVICES); a UserError for an unknown name or a GPU that is
    not there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = str(name).partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise UserError(f"--device {name!r}: not a device; use {DEVICES}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"--device {name}: no CUDA GPU is available here (torch {torch.__version__}); "
                "use --device cpu or auto"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return torch.device(name)


def check_train_config(cfg: Config) -> None:
    """The TrainConfig values a run divides or loops by must be positive integers (flags or
    config.json); `length` may also be 0 (whole episodes, policy/replay.py)."""
    for name in ("batch", "length", "log_every", "checkpoint_every"):
        value = getattr(cfg.train, name)
        least = 0 if name == "length" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            flag = "--" + name.replace("_", "-")
            what = "an integer >= 0 (0: whole episodes)" if least == 0 else "a positive integer"
            raise UserError(f"{flag} must be {what}, got {value!r}")


def set_threads() -> None:
    """Two cores here, shared with other jobs: never oversubscribe them."""
    torch.set_num_threads(
        max(1, min(int(os.environ.get("FOSP_THREADS", "2")), os.cpu_count() or 1))
    )


def seed_everything(seed: int) -> None:
    """Python and torch RNGs (the learner draws no numpy random numbers)."""
    random.seed(seed)
    torch.manual_seed(seed)


def autocast(cfg: Config, device: torch.device):
    if cfg.train.bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def load_replay(
    dataset: str | Path,
    cfg: Config,
    device: torch.device,
    skip_bad_files: bool = False,
    warn: Callable[[str], None] | None = None,
) -> tuple[Replay, int]:
    """The replay of a dataset folder and the number of bad files skipped. By default one bad
    file refuses the whole dataset (EpisodeFormatError naming file and field); with
    `skip_bad_files` each bad file is named through `warn` and left out."""
    from data_collection.dataset import Dataset
    from data_collection.episode import EpisodeFormatError, read_episode

    if not skip_bad_files:
        try:
            return Replay.from_dataset(dataset, cfg.train.length, device, seed=cfg.train.seed), 0
        except EpisodeFormatError as err:
            raise UserError(f"{err} (fix or remove that file, or pass --skip-bad-files)") from err
    root = Path(dataset)
    if not root.is_dir():
        raise ReplayError(f"dataset folder {root} does not exist")
    warn = warn or (lambda line: print(line, file=sys.stderr))
    episodes, names, skipped = [], [], 0
    for path in Dataset(root).episode_paths():
        try:
            episodes.append(read_episode(path))
            names.append(str(path))
        except EpisodeFormatError as err:
            warn(f"skipping bad episode file: {err}")
            skipped += 1
    if not episodes:
        raise ReplayError(f"dataset {root} has no readable episodes ({skipped} bad files)")
    replay = Replay(cfg.train.length, device, seed=cfg.train.seed)
    replay.add_many(episodes, names)
    return replay, skipped


def build(
    cfg: Config, dataset: str | Path, device: torch.device, skip_bad_files: bool = False
) -> tuple[FOSPAgent, Replay, int]:
    replay, skipped = load_replay(dataset, cfg, device, skip_bad_files)
    agent = FOSPAgent(cfg, device)
    agent.attach(replay)  # behaviour learns on full-history features of every episode
    if cfg.train.compile:
        agent.wm.loss = torch.compile(agent.wm.loss)  # type: ignore[method-assign]
    return agent, replay, skipped


def train(
    dataset: str | Path,
    out: str | Path,
    cfg: Config,
    steps: int,
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
    skip_bad_files: bool = False,
) -> dict[str, Any]:
    """Train until `steps` total gradient steps; returns the last logged metrics (with
    `data/skipped_files`, the bad files left out under `skip_bad_files`). Every input is
    checked before anything is created in `out`."""
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a run folder")
    if Path(dataset).exists() and out.resolve() == Path(dataset).resolve():
        raise UserError(f"--out {out} is the dataset folder; choose a separate run folder")
    has_ckpt = (out / ckpt.CHECKPOINT).exists()
    if resume:
        if not has_ckpt:
            raise ckpt.CheckpointError(f"--resume: no checkpoint in {out}")
        saved = ckpt.read_config(out)
        if saved.architecture() != cfg.architecture():
            diff = ckpt._first_difference(saved.architecture(), cfg.architecture())
            raise ckpt.CheckpointError(
                f"--resume: {out} was trained with another config (its preset "
                f"{saved.preset!r}, asked {cfg.preset!r}; {diff})"
            )
        cfg = saved
    elif has_ckpt:
        raise ckpt.CheckpointError(f"{out} already holds a run; pass --resume or another --out")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise UserError(f"--steps must be a positive integer, got {steps!r}")
    check_train_config(cfg)
    device = pick_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    state = ckpt.load(out, cfg, map_location=device, keys=ckpt.TRAINING_KEYS) if resume else None
    agent, replay, skipped = build(cfg, dataset, device, skip_bad_files)
    if state is not None:
        with ckpt.restoring(out / ckpt.CHECKPOINT):
            agent.load_full_state(state["agent"])
            replay.load_state_dict(state["replay"])
            ckpt.set_rng_state(state["rng"])
    mkdir(out)
    ckpt.write_config(out, cfg)
    ckpt.write_trained_on(out, dataset)

    writer = None
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
    bar = tqdm(
        total=steps, initial=agent.step_count, desc=f"train {cfg.preset}", disable=not progress
    )
    last: dict[str, Any] = {"data/skipped_files": skipped}
    start = time.time()
    start_step = agent.step_count

    def save() -> None:
        ckpt.save(out, cfg, {"agent": agent.full_state(), "replay": replay.state_dict()})

    try:
        with _writing(out / METRICS), open(out / METRICS, "a") as log:
            while agent.step_count < steps:
                with autocast(cfg, device):
                    metrics = agent.train_step(replay.sample(cfg.train.batch))
                step = agent.step_count
                bar.update()
                if step % cfg.train.log_every == 0 or step == steps:
                    # the only host sync of the loop: once per log interval
                    last = {"data/skipped_files": skipped}
                    last.update({k: float(v) for k, v in metrics.items()})
                    last["time/steps_per_s"] = (step - start_step) / (time.time() - start)
                    log.write(json.dumps({"step": step, **last}) + "\n")
                    log.flush()
                    if writer is not None:
                        for k, v in last.items():
                            writer.add_scalar(k, v, step)
                    bar.set_postfix(
                        wm=f"{last['wm/loss']:.1f}",
                        lam=f"{last['lagrange/lambda_p']:.3g}",
                        u=f"{last['ref/u_mean']:.2f}",
                    )
                if step % cfg.train.checkpoint_every == 0 and step != steps:
                    save()
            n = cfg.agent.settle_steps
            if n > 0 and agent.cache is not None and agent.settled_at != agent.step_count:
                bar.set_description(f"settle {n} behaviour steps")
                metrics = agent.settle(n)
                last.update({k: float(v) for k, v in metrics.items()})
                last.update(agent.cost_head_check())  # no RNG: the checkpoint is unchanged
                log.write(json.dumps({"step": agent.step_count, "settle": n, **last}) + "\n")
        save()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return last


@contextlib.contextmanager
def _writing(path: Path):
    """A failed write of the metrics log (disk full) is a WriteError naming the path."""
    try:
        yield
    except OSError as err:
        raise WriteError(path, err) from err


def load_agent(run: str | Path, device: str = "auto") -> FOSPAgent:
    """The trained agent of a run folder (config.json + checkpoint.pt), in eval mode."""
    cfg = ckpt.read_config(run)
    dev = pick_device(device)
    state = ckpt.load(run, cfg, map_location=dev)
    agent = FOSPAgent(cfg, dev)
    with ckpt.restoring(Path(run) / ckpt.CHECKPOINT):
        agent.load_full_state(state["agent"])
    agent.eval()
    return agent
