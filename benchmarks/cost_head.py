"""Does the world model see contacts? Its cost head and V_c on the dataset and on the policy's own
test episodes.

    .venv/bin/python benchmarks/cost_head.py --runs RUN [RUN ...] --dataset DATA
        [--tasks train unseen-3] [--tests 20]

Every episode is observed from its first row with the run's frozen world model (the features
behaviour learning uses, `policy.feature_cache`). Per source: rows with a recorded cost, the
cost head's AUC for them against the other rows, its mean on them, the share above the
`cost_event` threshold that imagination counts as a violation (on cost rows and on the others),
and V_c's AUC for the 5 rows before an episode's first contact against the rows of episodes that
stay safe (does the value see a contact coming?). The policy's tests are the evaluation's own
(`policy.evaluate`: same layouts, same latent seeds, so SR / CV match `fosp eval`); for the
dataset, SR / CV are its episodes' shares with a reward / a cost.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_collection.dataset import Dataset  # noqa: E402
from data_collection.rollout import rollout  # noqa: E402
from policy.evaluate import acting  # noqa: E402
from policy.feature_cache import FeatureCache  # noqa: E402
from policy.replay import Replay  # noqa: E402
from policy.train import load_agent, set_threads  # noqa: E402
from robot.task_spec import TEST_LAYOUT_SEED  # noqa: E402

BEFORE = 5  # rows before a first contact that count as "a contact is coming"


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties half (the Mann-Whitney AUC)."""
    pos, neg = score[positive], score[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    _, group, counts = np.unique(
        np.concatenate([pos, neg]), return_inverse=True, return_counts=True
    )
    mean_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based ranks, ties share their mean
    rank_sum = mean_rank[group[: len(pos)]].sum()
    return float((rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def contact_coming(cost: np.ndarray, episodes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Row masks: the `BEFORE` rows before each episode's first cost row, and every row of the
    episodes without a cost (the two classes of V_c's AUC)."""
    coming, safe = np.zeros_like(cost), np.zeros_like(cost)
    for rows in episodes:
        hit = np.flatnonzero(cost[rows])
        if hit.size:
            coming[rows[max(0, hit[0] - BEFORE) : hit[0]]] = True
        else:
            safe[rows] = True
    return coming, safe


def policy_episodes(agent, task: str, tests: int) -> list:
    """The evaluation's test episodes of `agent` on `task` (its layouts and latent seeds)."""
    from robot.env import EnvConfig, SafeReachEnv

    env = SafeReachEnv(EnvConfig(task=task))
    episodes = []
    with torch.random.fork_rng(devices=[]):
        try:
            for k in range(tests):
                torch.manual_seed(TEST_LAYOUT_SEED + k)
                result = rollout(env, acting(agent), {"task": task}, seed=TEST_LAYOUT_SEED + k)
                episodes.append(result.episode)
        finally:
            env.close()
    return episodes


@torch.no_grad()
def figures(agent, replay: Replay) -> dict[str, float]:
    """The cost head and V_c on every row of `replay`, each episode observed from its start."""
    cache = FeatureCache(replay, agent.cfg.agent.gamma)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        cache.refresh(agent.wm)
    cost = (cache.cost > 0).cpu().numpy()
    head = agent.wm.cost(cache.feat).cpu().numpy()
    v_c = agent.v_c(cache.feat).cpu().numpy()
    reward = (cache.reward > 0).cpu().numpy()
    episodes = [rows.cpu().numpy() for rows in replay.episode_rows()]
    coming, safe = contact_coming(cost, episodes)
    successful = sum(bool(reward[rows].any()) for rows in episodes)
    check = agent.cost_head_check(cache)
    pick = coming | safe
    return {
        "episodes": len(episodes),
        "violating": sum(bool(cost[rows].any()) for rows in episodes),
        "successful": successful,
        "rows": len(cost),
        "cost rows": int(cost.sum()),
        "head AUC": auc(head, cost),
        "head mean on cost rows": float(head[cost].mean()) if cost.any() else float("nan"),
        "above event, cost rows": check.get("check/cost_recall", 0.0),
        "above event, other rows": check.get("check/cost_false_alarm", 0.0),
        "V_c AUC, contact coming": auc(v_c[pick], coming[pick]),
    }


def table(rows: list[tuple[str, dict[str, float]]]) -> str:
    head = ("source", "episodes", "SR / CV %", "cost rows", "cost head AUC",
            "head mean on cost rows", "> cost_event: cost rows / others",
            f"V_c AUC, {BEFORE} rows before a first contact")  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows:
        n = r["episodes"]
        rates = f"{100 * r['successful'] / n:.0f} / {100 * r['violating'] / n:.0f}"
        cells = (name, n, rates, f"{r['cost rows']} of {r['rows']}",
                 f"{r['head AUC']:.3f}", f"{r['head mean on cost rows']:.3f}",
                 f"{100 * r['above event, cost rows']:.0f} % / "
                 f"{100 * r['above event, other rows']:.1f} %",
                 f"{r['V_c AUC, contact coming']:.3f}")  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="pretrained run folders")
    p.add_argument("--dataset", required=True, help="the dataset the runs trained on")
    p.add_argument("--tasks", nargs="+", default=["train", "unseen-3"])
    p.add_argument("--tests", type=int, default=20)
    args = p.parse_args()
    set_threads()
    data = Dataset(args.dataset)
    episodes = [ep for _, ep in data.episodes(skip_corrupt=True)]
    rows = []
    for run in args.runs:
        agent = load_agent(run, "cpu")
        dataset = Replay(agent.cfg.train.length, "cpu")
        dataset.add_many(episodes)
        rows.append((f"{Path(run).name}: dataset", figures(agent, dataset)))
        for task in args.tasks:
            tests = Replay(agent.cfg.train.length, "cpu")
            tests.add_many(policy_episodes(agent, task, args.tests))
            rows.append((f"{Path(run).name}: policy on {task}", figures(agent, tests)))
        print(table(rows[-1 - len(args.tasks) :]), flush=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
