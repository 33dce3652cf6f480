"""Marvel's Table 1 in the simulator: does Value Pre-Alignment rank Q and Q_c like the offline
policy's true returns?

    .venv/bin/python benchmarks/marvel_vpa.py --run RUN [--dataset D] [--starts 24]
        [--rollouts 5] [--vpa-steps 2000] [--seed 0] [--out vpa.json]

For each start (s_t, a_t) it takes Q(s_t, a_t) and Q_c(s_t, a_t) from the pretrained agent,
then runs VPA (policy/marvel.py, the marvel strategy's `prepare`) and takes them again. The
truth is Monte Carlo (Marvel App. G.2): from s_t, execute a_t, then follow the offline policy as
it acts (mean, std capped at `action_std`) to the episode's end, `rollouts` times; the
discounted sums sum_k gamma^(k-1) r_(t+k) (and c) are averaged. Spearman's rank correlation
(App. G.1) of predictions against the truth, over the starts, is the table:

- dataset: (s_t, a_t) is a row of the offline data, reached in the simulator by replaying the
  episode's recorded actions from its layout (same-machine determinism; the replay's distance
  to the recorded pose is printed, and a start whose replay drifted by over 1 mm is dropped);
- random: a train-task layout, t uniform random actions, then a uniform random a_t (states and
  actions outside the data's support).

The agent's latent at s_t comes from observing the replayed prefix with the executed actions,
as acting computes it. Each rollout restarts the simulator and replays the prefix (no state
copying), so every rollout starts from the same state.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def fisher_interval(r: float, n: int) -> tuple[float, float, float]:
    """r with its approximate 95 % interval (Fisher's z, se 1.03 / sqrt(n - 3) for Spearman)."""
    if not np.isfinite(r) or n < 4:
        return r, float("nan"), float("nan")
    z, half = np.arctanh(np.clip(r, -0.999999, 0.999999)), 1.96 * 1.03 / np.sqrt(n - 3)
    return r, float(np.tanh(z - half)), float(np.tanh(z + half))


def observe(agent, env, layout_seed: int, prefix: np.ndarray):
    """The agent's state at s_t after the prefix (actions a_0 .. a_(t-1) executed) and s_t's
    pose."""
    obs, _ = env.reset(options={"layout_seed": layout_seed})
    state = None
    for action in prefix:
        _, state = agent.act(obs, state)
        state["action"] = torch.as_tensor(action, dtype=torch.float32)[None]
        obs, *_ = env.step(action)
    _, state = agent.act(obs, state)
    return state, obs["pose"]


def monte_carlo(strategy, env, layout_seed, prefix, first, state, rollouts, gamma, seed):
    """Mean discounted reward and cost after (s_t, first), following the offline policy."""
    agent = strategy.agent
    totals = np.zeros((rollouts, 2))
    for m in range(rollouts):
        strategy.generator.manual_seed(seed * 1000 + m)
        torch.manual_seed(seed * 1000 + m)
        env.reset(options={"layout_seed": layout_seed})
        for action in prefix:
            env.step(action)
        obs, reward, _, done, info = env.step(first)
        s = {**state, "action": torch.as_tensor(first, dtype=torch.float32)[None]}
        totals[m] = reward, info["cost"]
        discount = gamma
        while not done:
            action, s = strategy.act_with(agent.actor, obs, s, deterministic=False)
            obs, reward, _, done, info = env.step(action)
            totals[m] += discount * np.array([reward, info["cost"]])
            discount *= gamma
    return totals.mean(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="pretrained run folder")
    p.add_argument("--dataset", help="its offline data (default: the one the run records)")
    p.add_argument("--starts", type=int, default=24, help="starts per column")
    p.add_argument("--rollouts", type=int, default=5, help="Monte-Carlo rollouts per start")
    p.add_argument("--vpa-steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the table as JSON here")
    args = p.parse_args()

    from tqdm import tqdm

    from data_collection.dataset import Dataset
    from policy import checkpoint as ckpt
    from policy.config import FinetuneConfig
    from policy.marvel import MarvelFinetune, spearman
    from policy.replay import Replay
    from policy.train import load_agent
    from robot.env import EnvConfig, SafeReachEnv
    from robot.spaces import EPISODE_STEPS

    torch.manual_seed(args.seed)
    dataset = args.dataset or ckpt.trained_on(args.run)
    agent = load_agent(args.run)
    gamma = agent.cfg.agent.gamma
    fc = FinetuneConfig(strategy="marvel", horizon=EPISODE_STEPS, vpa_steps=args.vpa_steps,
                        seed=args.seed)  # fmt: skip
    strategy = MarvelFinetune(agent, fc)
    agent.attach(Replay.from_dataset(dataset, agent.cfg.train.length, agent.device, seed=0))
    env = SafeReachEnv(EnvConfig(task="train"))
    rng = np.random.default_rng(args.seed)
    episodes = [ep for _, ep in Dataset(dataset).episodes()]
    action_dim = episodes[0].steps["action"].shape[1]

    starts = []  # (kind, layout_seed, prefix, first)
    drift = []
    while sum(s[0] == "dataset" for s in starts) < args.starts:
        ep = episodes[int(rng.integers(len(episodes)))]
        steps = len(ep.steps["action"]) - 1
        t = int(rng.integers(0, max(1, steps - 10)))
        prefix, first = ep.steps["action"][:t], ep.steps["action"][t]
        _, pose = observe(agent, env, int(ep.metadata["layout_seed"]), prefix)
        drift.append(float(np.abs(pose[:3] - ep.steps["pose"][t][:3]).max()))
        if drift[-1] <= 1e-3:
            starts.append(("dataset", int(ep.metadata["layout_seed"]), prefix, first))
    for _ in range(args.starts):
        t = int(rng.integers(0, EPISODE_STEPS - 10))
        prefix = rng.uniform(-1, 1, (t, action_dim)).astype(np.float32)
        first = rng.uniform(-1, 1, action_dim).astype(np.float32)
        starts.append(("random", int(rng.integers(2**31 - 1)), prefix, first))

    began = time.perf_counter()
    rows = []
    for i, (kind, layout, prefix, first) in enumerate(tqdm(starts, desc="Monte Carlo")):
        state, _ = observe(agent, env, layout, prefix)
        action = torch.as_tensor(first, dtype=torch.float32)[None]
        with torch.no_grad():
            q_before = (
                float(agent.q_r(state["feat"], action)),
                float(agent.q_c(state["feat"], action)),
            )
        mc = monte_carlo(strategy, env, layout, prefix, first, state, args.rollouts, gamma, i)
        rows.append({"kind": kind, "feat": state["feat"], "action": action,
                     "q_before": q_before, "mc": mc.tolist()})  # fmt: skip
    t_mc = time.perf_counter() - began
    out = strategy.prepare(lambda line: print(line, flush=True))
    with torch.no_grad():
        for r in rows:
            r["q_after"] = (float(agent.q_r(r["feat"], r["action"])),
                            float(agent.q_c(r["feat"], r["action"])))  # fmt: skip
    env.close()

    table = {}
    for kind in ("dataset", "random"):
        sel = [r for r in rows if r["kind"] == kind]
        mc = np.array([r["mc"] for r in sel])
        for j, name in enumerate(("Q", "Q_c")):
            for phase in ("before", "after"):
                pred = np.array([r[f"q_{phase}"][j] for r in sel])
                table[f"{name} {phase} {kind}"] = spearman(pred, mc[:, j])
        table[f"MC reward mean {kind}"] = float(mc[:, 0].mean())
        table[f"MC cost mean {kind}"] = float(mc[:, 1].mean())
    t_vpa = out.get("vpa_seconds", 0.0)
    print(
        f"\nSpearman rank correlation with Monte Carlo ({args.starts} starts per column, "
        f"{args.rollouts} rollouts each; VPA {args.vpa_steps} steps, {t_vpa:.0f} s; Monte Carlo "
        f"{t_mc:.0f} s; dataset replay drift max {max(drift) * 1000:.3f} mm, "
        f"{len(drift) - args.starts} of {len(drift)} dropped)\n"
    )
    print("| VPA | value | dataset [95 %] | random [95 %] |\n|---|---|---|---|")
    for name in ("Q", "Q_c"):
        for phase in ("before", "after"):
            cells = [fisher_interval(table[f"{name} {phase} {kind}"], args.starts)
                     for kind in ("dataset", "random")]  # fmt: skip
            print(f"| {phase} | {name} | " + " | ".join(
                f"{r:.3f} [{lo:.2f}, {hi:.2f}]" for r, lo, hi in cells) + " |")  # fmt: skip
    for kind in ("dataset", "random"):
        print(f"MC {kind}: reward {table[f'MC reward mean {kind}']:.3f}, "
              f"cost {table[f'MC cost mean {kind}']:.3f}")  # fmt: skip
    if args.out:
        starts_out = [{"kind": r["kind"], "q_before": r["q_before"], "q_after": r["q_after"],
                       "mc": r["mc"]} for r in rows]  # fmt: skip
        result = {"args": vars(args), "table": table, "vpa": out, "mc_seconds": t_mc,
                  "starts": starts_out}  # fmt: skip
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
