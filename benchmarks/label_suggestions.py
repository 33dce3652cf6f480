"""How good are the suggested labels? In the sim, episodes of the scripted collectors (the paper's
category mix) are scored row by row against the ground truth: cost suggested from the contact
force (data_collection/suggest.py), from the world model's cost head (policy/label_model.py) and
from either; reward from the reward head. Precision / recall over all rows, and the share of
violating episodes in which a cost suggestion appears at all.

    .venv/bin/python benchmarks/label_suggestions.py --checkpoint RUN [--episodes 40]
"""

from __future__ import annotations

import argparse

import numpy as np

from data_collection.scripted import PAPER_MIX, ScriptedOperator, mix_counts, run_episode
from data_collection.suggest import force_cost_rows, precision_recall
from policy.label_model import predicted_labels
from policy.train import load_agent
from robot.env import EnvConfig, SafeReachEnv


def episodes(task: str, count: int, seed: int):
    env = SafeReachEnv(EnvConfig(task=task))
    intents = [k for k, n in mix_counts(count, PAPER_MIX).items() for _ in range(n)]
    try:
        for i, intent in enumerate(intents):
            rng = np.random.default_rng([seed, i])
            yield run_episode(
                env, lambda env, intent=intent, rng=rng: ScriptedOperator(env, intent, rng).act,
                seed * 1000 + i, {},
            )  # fmt: skip
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--tasks", default="train,unseen-3")
    parser.add_argument("--cost-threshold", type=float, default=0.25)
    args = parser.parse_args()
    agent = load_agent(args.checkpoint)
    rows: dict[str, list] = {k: [] for k in ("force", "model", "either", "reward", "cost", "r")}
    flagged = {"force": 0, "model": 0, "either": 0}
    violating = 0
    for task in args.tasks.split(","):
        for episode in episodes(task, args.episodes // 2, seed=7):
            truth = episode.steps["oracle_cost"] > 0
            predicted = predicted_labels(agent, episode)
            force = force_cost_rows(episode.steps["contact_force"])
            model = predicted["cost"] > args.cost_threshold
            model[0] = False
            either = force | model
            for name, value in (("force", force), ("model", model), ("either", either)):
                rows[name].append(value)
                flagged[name] += bool(value.any() and truth.any())
            rows["cost"].append(truth)
            rows["reward"].append(predicted["reward"] > 0.5)
            rows["r"].append(episode.steps["oracle_reward"] > 0)
            violating += bool(truth.any())
    truth = np.concatenate(rows["cost"])
    n = len(rows["cost"])
    print(f"| suggestion ({n} episodes, {violating} violating) | precision % | recall % | "
          "violating episodes with a suggestion |")  # fmt: skip
    print("|---|---|---|---|")
    for name, label in (("force", "cost: contact force > 3 N, +2 rows"),
                        ("model", f"cost: world model's cost head > {args.cost_threshold}"),
                        ("either", "cost: either")):  # fmt: skip
        p, r, *_ = precision_recall(np.concatenate(rows[name]), truth)
        print(f"| {label} | {100 * p:.1f} | {100 * r:.1f} | {flagged[name]}/{violating} |")
    p, r, *_ = precision_recall(np.concatenate(rows["reward"]), np.concatenate(rows["r"]))
    print(f"| reward: world model's reward head > 0.5 | {100 * p:.1f} | {100 * r:.1f} | |")


if __name__ == "__main__":
    main()
