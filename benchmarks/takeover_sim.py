"""What the scripted takeover operator does to a policy's episodes, without learning: the
scripted collectors' intents as the policy, each layout with and without the takeover
(data_collection/takeover.py), SR / CV with Wilson intervals and the operator's share.

    .venv/bin/python benchmarks/takeover_sim.py [--task unseen-3] [--layouts 20]
"""

from __future__ import annotations

import argparse

import numpy as np

from data_collection.scripted import ScriptedOperator, run_episode
from data_collection.takeover import ScriptedTakeover
from policy.evaluate import wilson
from robot.env import EnvConfig, SafeReachEnv


def _episode(env, intent: str, seed: int, takeover: bool):
    rng = np.random.default_rng(seed)
    return run_episode(
        env, lambda env: ScriptedOperator(env, intent, rng).act, seed, {},
        takeover=ScriptedTakeover(env) if takeover else None,
    )  # fmt: skip


def run(task: str, intent: str, layouts: int, takeover: bool) -> dict:
    env = SafeReachEnv(EnvConfig(task=task))
    v = s = operator = takeovers = actions = 0
    try:
        for seed in range(layouts):
            episode = _episode(env, intent, seed, takeover)
            # the ground truth (run_episode's stored labels are the delayed operator's)
            v += bool(episode.steps["oracle_cost"].max() > 0)
            s += bool(episode.steps["oracle_reward"].max() > 0)
            operator += int(episode.operator_steps.sum())
            takeovers += episode.interventions
            actions += episode.num_actions
    finally:
        env.close()
    return {"cv": v, "sr": s, "n": layouts, "operator": operator / actions, "takeovers": takeovers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="unseen-3")
    parser.add_argument("--layouts", type=int, default=20)
    args = parser.parse_args()
    print(f"| policy ({args.task}, {args.layouts} layouts) | takeover | SR % [95 %] | "
          "CV % [95 %] | operator % | takeovers / ep |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for intent in ("unsafe+success", "safe+success"):
        for takeover in (False, True):
            r = run(args.task, intent, args.layouts, takeover)
            sr, cv = wilson(r["sr"], r["n"]), wilson(r["cv"], r["n"])
            print(
                f"| scripted {intent} | {'scripted' if takeover else 'none'} | "
                f"{100 * r['sr'] / r['n']:.0f} [{100 * sr[0]:.0f}, {100 * sr[1]:.0f}] | "
                f"{100 * r['cv'] / r['n']:.0f} [{100 * cv[0]:.0f}, {100 * cv[1]:.0f}] | "
                f"{100 * r['operator']:.0f} | {r['takeovers'] / r['n']:.1f} |"
            )


if __name__ == "__main__":
    main()
