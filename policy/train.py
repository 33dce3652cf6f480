"""Offline FOSP training runner: `fosp train --dataset DIR --preset small --steps N --out RUN`."""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import torch

from policy import checkpoint as ckpt
from policy.agent import FOSPAgent
from policy.config import Config
from policy.replay import Replay

METRICS = "metrics.jsonl"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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


def build(cfg: Config, dataset: str | Path, device: torch.device) -> tuple[FOSPAgent, Replay]:
    replay = Replay.from_dataset(dataset, cfg.train.length, device, seed=cfg.train.seed)
    agent = FOSPAgent(cfg, device)
    if cfg.train.compile:
        agent.wm.loss = torch.compile(agent.wm.loss)  # type: ignore[method-assign]
    return agent, replay


def train(
    dataset: str | Path,
    out: str | Path,
    cfg: Config,
    steps: int,
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
) -> dict[str, Any]:
    """Train until `steps` total gradient steps; returns the last logged metrics."""
    from tqdm import tqdm

    out = Path(out)
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
    if steps <= 0:
        raise ValueError("--steps must be positive")
    device = pick_device(cfg.train.device)
    seed_everything(cfg.train.seed)
    agent, replay = build(cfg, dataset, device)
    if resume:
        state = ckpt.load(out, cfg, map_location=device)
        agent.load_full_state(state["agent"])
        replay.load_state_dict(state["replay"])
        ckpt.set_rng_state(state["rng"])
    out.mkdir(parents=True, exist_ok=True)
    ckpt.write_config(out, cfg)
    ckpt.write_trained_on(out, dataset)

    writer = None
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
    bar = tqdm(
        total=steps, initial=agent.step_count, desc=f"train {cfg.preset}", disable=not progress
    )
    last: dict[str, Any] = {}
    start = time.time()
    start_step = agent.step_count

    def save() -> None:
        ckpt.save(out, cfg, {"agent": agent.full_state(), "replay": replay.state_dict()})

    try:
        with open(out / METRICS, "a") as log:
            while agent.step_count < steps:
                with autocast(cfg, device):
                    metrics = agent.train_step(replay.sample(cfg.train.batch))
                step = agent.step_count
                bar.update()
                if step % cfg.train.log_every == 0 or step == steps:
                    # the only host sync of the loop: once per log interval
                    last = {k: float(v) for k, v in metrics.items()}
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
        save()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return last


def load_agent(run: str | Path, device: str = "auto") -> FOSPAgent:
    """The trained agent of a run folder (config.json + checkpoint.pt), in eval mode."""
    cfg = ckpt.read_config(run)
    dev = pick_device(device)
    agent = FOSPAgent(cfg, dev)
    state = ckpt.load(run, cfg, map_location=dev)
    agent.load_full_state(state["agent"])
    agent.eval()
    return agent
