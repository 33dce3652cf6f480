"""Seconds per FOSP train step and peak memory per preset; policy latency per control step.

    .venv/bin/python benchmarks/train_step.py [--presets tiny small paper] [--steps 5]
        [--dataset DIR] [--threads 2] [--json OUT]

On CPU: eager PyTorch, float32. With a CUDA GPU it also measures torch.compile (of the world-model
loss) and bf16 autocast, each a row. Batches come from a small dataset made on the fly with random
actions in the simulator (or --dataset). Peak memory: max RSS growth of this process on CPU (the
first preset includes the dataset), torch.cuda.max_memory_allocated on GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy.agent import FOSPAgent  # noqa: E402
from policy.config import resolve  # noqa: E402
from policy.replay import Replay  # noqa: E402


def random_dataset(root: Path, episodes: int = 8) -> Path:
    from data_collection.dataset import Dataset
    from data_collection.episode import EpisodeBuilder
    from robot.env import EnvConfig, SafeReachEnv

    env = SafeReachEnv(EnvConfig(task="train"))
    rng = np.random.default_rng(0)
    ds = Dataset(root)
    for k in range(episodes):
        obs, _ = env.reset(seed=k)
        b = EpisodeBuilder(
            {"task": "train", "layout_seed": k, "control_hz": 10, "label_source": "oracle"}
        )
        b.start(obs)
        done = False
        while not done:
            a = rng.uniform(-1, 1, 6).astype(np.float32)
            obs, r, _, done, info = env.step(a)
            b.add(a, r, info["cost"], obs)
        ds.add(b.finish())
    env.close()
    return root


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(preset: str, dataset: Path, device: str, steps: int, compile_: bool, bf16: bool) -> dict:
    cfg = resolve(preset, device=device, compile=compile_, bf16=bf16)
    dev = torch.device(device)
    rss0 = rss_mb()
    replay = Replay.from_dataset(dataset, cfg.train.length, dev)
    agent = FOSPAgent(cfg, dev)
    agent.attach(replay)  # behaviour steps on the full-history feature cache, as `fosp train`
    if compile_:
        agent.wm.loss = torch.compile(agent.wm.loss)  # type: ignore[method-assign]
    ctx = torch.autocast("cuda", torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    with ctx:
        agent.train_step(replay.sample(cfg.train.batch))  # first call (compile / warm-up)
    sync()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        with ctx:
            agent.train_step(replay.sample(cfg.train.batch))
    sync()
    per_step = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else rss_mb() - rss0
    # one control step: encode + RSSM step + actor for a single observation (batch 1)
    obs = {"image": np.zeros((64, 64, 3), np.uint8), "pose": np.zeros(6, np.float32)}
    agent.eval()
    _, state = agent.act(obs, None)
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        _, state = agent.act(obs, state)
    latency = (time.perf_counter() - t0) / n
    params = sum(p.numel() for p in agent.parameters()) / 1e6
    return {
        "preset": preset,
        "device": device,
        "mode": ("compile" if compile_ else "eager") + ("+bf16" if bf16 else ""),
        "batch": f"{cfg.train.batch}x{cfg.train.length}",
        "params_M": round(params, 2),
        "first_s": round(first, 2),
        "s_per_step": round(per_step, 4),
        "peak_MB": round(peak, 1),
        "act_ms": round(1000 * latency, 2),
        "config": dataclasses.asdict(cfg.model),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["tiny", "small", "paper"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--dataset")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(args.dataset) if args.dataset else random_dataset(Path(tmp) / "data")
        runs = [("cpu", False, False)]
        if torch.cuda.is_available():
            runs = [("cuda", False, False), ("cuda", True, False), ("cuda", True, True)]
        rows = [bench(pr, dataset, d, args.steps, c, b) for pr in args.presets for d, c, b in runs]
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"torch {torch.__version__}, {name}, {torch.get_num_threads()} threads")
    cols = ["preset", "device", "mode", "batch", "params_M", "first_s", "s_per_step", "peak_MB",
            "act_ms"]  # fmt: skip
    print(" | ".join(f"{c:>10}" for c in cols))
    for r in rows:
        print(" | ".join(f"{r[c]!s:>10}" for c in cols))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
