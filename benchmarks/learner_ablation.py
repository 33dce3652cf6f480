"""Which learner changes matter: offline `small` runs with one change switched off at a time.

    .venv/bin/python benchmarks/learner_ablation.py --dataset DIR [--variants fosp no-cache ...]
        [--seeds 0 1] [--steps 500] [--tests 20] [--tasks train unseen-1] [--workers 2]
        [--out out/ablation]

Each (variant, seed) trains the `small` preset for `--steps` steps on the paper-mix dataset
(collected into DIR first if it is empty), then runs `--tests` greedy episodes per task. Runs go
in parallel, one torch thread each (`--workers`, default 2 = this VM's cores); a finished run is
not redone (its result is read from out/<variant>/seed<k>/result.json). Prints SR / CV per
variant and task, pooled over seeds, with Wilson 95 % intervals, and writes ablation.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy.evaluate import wilson  # noqa: E402

# variant -> AgentConfig overrides (what is switched off), plus "cache": False for window features
VARIANTS: dict[str, dict] = {
    "fosp": {},  # every change on (the `small` preset as shipped)
    "no-cache": {"cache": False, "settle_steps": 0},  # behaviour on 16-row window features
    "no-settle": {"settle_steps": 0},  # no behaviour steps on fresh features at the end
    "repeats4": {"behaviour_repeats": 4},  # 4 behaviour steps per world-model step, not 8
    "ref-gate": {"feasible_gate": "ref"},  # eq. 19's f = 1 - u(s) instead of the episode gate
    "in-sample-gate": {"feasible_gate": "in_sample"},  # f opens a violating episode's clean tail
    "upper-vc": {"expectile_c": 0.8},  # V_c at the upper expectile, as V_r (the old reading)
    "no-slow": {"slow_rate": 1.0},  # bootstraps read the current networks
    "beta3": {"beta_r": 3.0, "beta_c": 3.0},  # softer AWR temperatures on normalised advantages
    "no-actor-ema": {"actor_ema": 0.0},  # act with the trained actor, not its Polyak average
    "cost-branch": {"cost_branch": 1.0},  # eq. 19's cost branch on, as written (ambiguity 18)
}


def run_one(variant: str, seed: int, args) -> dict:
    out = Path(args.out) / variant / f"seed{seed}"
    result = out / "result.json"
    if result.exists():
        return json.loads(result.read_text())
    cmd = [sys.executable, __file__, "--worker", variant, "--seed-one", str(seed)]
    cmd += ["--dataset", args.dataset, "--steps", str(args.steps), "--tests", str(args.tests)]
    cmd += ["--out", args.out, "--tasks", *args.tasks]
    subprocess.run(cmd, check=True, env={**__import__("os").environ, "FOSP_THREADS": "1"})
    return json.loads(result.read_text())


def worker(variant: str, seed: int, args) -> None:
    from policy.config import resolve
    from policy.evaluate import evaluate
    from policy.train import load_agent, set_threads, train

    set_threads()
    overrides = dict(VARIANTS[variant])
    use_cache = overrides.pop("cache", True)
    cfg = resolve("small", seed=seed)
    cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, **overrides))
    out = Path(args.out) / variant / f"seed{seed}"
    t0 = time.time()
    if not (out / "checkpoint.pt").exists():
        if not use_cache:
            import policy.agent as agent_module

            agent_module.FOSPAgent.attach = lambda self, replay: None  # window features only
        train(args.dataset, out, cfg, args.steps, progress=False, tensorboard=False)
    train_s = time.time() - t0
    agent = load_agent(out, "cpu")
    res = {"variant": variant, "seed": seed, "steps": args.steps, "train_s": round(train_s)}
    for task in args.tasks:
        r = evaluate(agent, task, args.tests, 10_000)
        res[task] = [r.successes, r.violations, r.episodes]
    (out / "result.json").write_text(json.dumps(res) + "\n")


def pooled_table(groups: dict[str, list[dict]], tasks: list[str], label: str) -> str:
    """SR / CV per group and task, counts ([successes, violations, episodes] per task) pooled
    over the group's rows, with Wilson 95 % intervals."""
    head = " | ".join(f"{t} SR % [95 %] | {t} CV % [95 %]" for t in tasks)
    lines = [f"| {label} | n | {head} |", "|---|---|" + "---|---|" * len(tasks)]
    for name, rows in groups.items():
        cells = []
        for t in tasks:
            s, v, n = (sum(r[t][i] for r in rows) for i in range(3))
            lo, hi = wilson(s, n)
            clo, chi = wilson(v, n)
            cells.append(f"{100 * s / n:.0f} [{100 * lo:.0f}, {100 * hi:.0f}]")
            cells.append(f"{100 * v / n:.0f} [{100 * clo:.0f}, {100 * chi:.0f}]")
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(results: list[dict], tasks: list[str]) -> str:
    groups = {
        v: [r for r in results if r["variant"] == v]
        for v in dict.fromkeys(r["variant"] for r in results)
    }
    return pooled_table(groups, tasks, "variant")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--tests", type=int, default=20)
    p.add_argument("--tasks", nargs="+", default=["train", "unseen-1"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="out/ablation")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--seed-one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.seed_one, args)
        return 0
    if not any(Path(args.dataset).glob("*.npz")):
        from data_collection.scripted import collect_mix

        collect_mix(args.dataset, task="train", episodes=200)
    jobs = [(v, s) for v in args.variants for s in args.seeds]
    t0 = time.time()
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(lambda job: run_one(*job, args), jobs))
    text = table(results, args.tasks)
    print(text)
    print(f"{len(jobs)} runs, {args.steps} steps each, {time.time() - t0:.0f} s wall")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "ablation.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
