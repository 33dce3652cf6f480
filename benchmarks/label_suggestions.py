"""How good are the suggested labels? In the sim, episodes of the scripted collectors (the paper's
category mix) are scored row by row against the ground truth: cost suggested from the contact
force (data_collection/suggest.py), from the world model's cost head (policy/label_model.py) and
from either; reward from the reward head. Precision / recall over all rows, and the share of
violating episodes in which a cost suggestion appears at all.

    .venv/bin/python benchmarks/label_suggestions.py --checkpoint RUN [--episodes 40]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from data_collection.episode import write_episode
from data_collection.labeler import LabelSession
from data_collection.scripted import PAPER_MIX, ScriptedOperator, mix_counts, run_episode
from data_collection.suggest import force_cost_rows, intervals, precision_recall
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


def _moves(src: int, dst: int) -> list[str]:
    """Cursor keys from row `src` to row `dst`: 10-row jumps, then single rows."""
    big, small = divmod(abs(dst - src), 10)
    forward = dst > src
    return ["pagedown" if forward else "pageup"] * big + ["right" if forward else "left"] * small


def scripted_labelling(path: Path, truth: dict[str, np.ndarray], accept: bool, suggest=None) -> int:
    """Keys a scripted operator presses in `fosp label` to make the labels equal the truth,
    starting from the suggestions accepted (`a`) or from blank labels; every key goes through
    LabelSession, and the result is checked."""
    session = LabelSession([path], suggest=suggest)

    def press(keys: list[str]) -> None:
        for key in keys:
            session.handle(key)

    if accept:
        press(["a"])
    for label, key in (("cost", "c"), ("reward", "r")):
        for want in (True, False):  # set the missing runs, then clear the extra ones
            wrong = ((session.episode.steps[label] > 0) != truth[label]) & (truth[label] == want)
            wrong[0] = False
            for a, b in intervals(wrong):
                press([*_moves(session.cursor, a), "m", *_moves(a, b)])
                press([key if want else key.upper()])
    press(["s"])
    for label in ("cost", "reward"):
        got = session.episode.steps[label] > 0
        assert np.array_equal(got[1:], truth[label][1:]), "the scripted labelling failed"
    return session.keystrokes


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
    keys = {"blank": [], "force": [], "force + reward head": []}
    violated: list[bool] = []

    def reward_head(ep):
        return {"reward": predicted_labels(agent, ep)["reward"] > 0.5}

    staging = Path(tempfile.mkdtemp(prefix="label_suggestions_"))
    for task in args.tasks.split(","):
        for episode in episodes(task, args.episodes // 2, seed=7):
            truth = episode.steps["oracle_cost"] > 0
            # the operator's session on the arm: blank labels, the force recorded
            blank = type(episode)(
                {k: v.copy() for k, v in episode.steps.items()}, dict(episode.metadata)
            )
            for field in ("reward", "cost"):
                blank.steps[field] = np.zeros_like(blank.steps[field])
            for field in ("oracle_reward", "oracle_cost"):
                blank.steps.pop(field)
            blank.metadata["label_source"] = "manual"
            goal = {"cost": truth, "reward": episode.steps["oracle_reward"] > 0}
            violated.append(bool(truth.any()))
            for mode in keys:
                path = write_episode(blank, staging / mode.replace(" + ", "_"))
                suggest = reward_head if "reward" in mode else None
                keys[mode].append(scripted_labelling(path, goal, mode != "blank", suggest))
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
    v = np.asarray(violated)
    print("\n| scripted labelling in `fosp label` | keys / episode (median, mean) | "
          "violating episodes (median, mean) |")  # fmt: skip
    print("|---|---|---|")
    for mode, counts in keys.items():
        c = np.asarray(counts)
        print(f"| {mode} | {np.median(c):.0f}, {c.mean():.1f} | "
              f"{np.median(c[v]):.0f}, {c[v].mean():.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
