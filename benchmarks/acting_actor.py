"""The acting actor (AgentConfig.actor_ema): the Polyak average against the trained actor itself.

    .venv/bin/python benchmarks/acting_actor.py --runs RUN [RUN ...] [--tasks train unseen-3]
        [--tests 20]
    .venv/bin/python benchmarks/acting_actor.py --runs RUN --dataset DATA --continue 1000
        [--streams 0 1 2] [--rate 0.01] [--tasks train] [--agent-set imagined_cost=10]

Paired: both actors of the same run are scored on the same seeded tests (the trained actor's
training does not depend on the average, so `actor_ema = 0` would train the same weights). With
`--continue N`, behaviour learning goes on N steps on the run's frozen world model (as settling
does) once per RNG stream, with a fresh average of rate `--rate` beside it, and both are scored:
how much a policy's safety depends on where its SGD iterates stop. `--agent-set KEY=VALUE` changes
AgentConfig fields for the continuation only (screening a behaviour-learning change on frozen
world models, against the same continuation without it). Prints SR / CV per actor and
task, pooled over runs or streams, with Wilson 95 % intervals.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.learner_ablation import pooled_table  # noqa: E402
from policy.agent import polyak  # noqa: E402
from policy.evaluate import evaluate  # noqa: E402
from policy.train import load_agent, load_replay, set_threads  # noqa: E402
from robot.task_spec import TEST_LAYOUT_SEED  # noqa: E402


def score(agent, actor, tasks: list[str], tests: int) -> dict[str, tuple[int, int, int]]:
    """SR / CV counts of `actor` acting on the agent's world model, per task."""
    saved = agent.actor_ema
    agent.actor_ema = actor  # acting_actor (actor_ema > 0) is this module
    try:
        out = {}
        for task in tasks:
            r = evaluate(agent, task, tests, TEST_LAYOUT_SEED)
            out[task] = (r.successes, r.violations, r.episodes)
        return out
    finally:
        agent.actor_ema = saved


def continued(
    run: str, dataset: str, steps: int, stream: int, rate: float, changes: dict | None = None
):
    """The run's agent after `steps` more behaviour steps on its frozen world model (RNG stream
    `stream`, AgentConfig fields `changes`), and a Polyak average of rate `rate` that followed
    them."""
    agent = load_agent(run, "cpu")
    if changes:
        agent.cfg = dataclasses.replace(
            agent.cfg, agent=dataclasses.replace(agent.cfg.agent, **changes)
        )
    replay, _ = load_replay(dataset, agent.cfg, torch.device("cpu"))
    agent.attach(replay)
    torch.manual_seed(stream)
    average = copy.deepcopy(agent.actor).requires_grad_(False)
    agent.train()
    agent._refresh_cache(only_new=False)
    for k in range(steps):
        agent._cached_behaviour_step(k, None)
        polyak(agent.actor, average, rate)
    agent.eval()
    return agent, average


def agent_changes(pairs: list[str], parser: argparse.ArgumentParser) -> dict:
    """KEY=VALUE strings -> AgentConfig fields, typed as the field's default."""
    from policy.config import AgentConfig

    defaults = AgentConfig()
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not hasattr(defaults, key):
            parser.error(f"--agent-set {pair!r}: expected KEY=VALUE with KEY an AgentConfig field")
        kind = type(getattr(defaults, key))
        try:
            out[key] = kind(value) if kind is not bool else value.lower() in ("1", "true", "yes")
        except ValueError:
            parser.error(f"--agent-set {pair!r}: {key} takes a {kind.__name__}")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="pretrained run folders")
    p.add_argument("--tasks", nargs="+", default=["train", "unseen-1", "unseen-2", "unseen-3"])
    p.add_argument("--tests", type=int, default=20)
    p.add_argument("--dataset", help="the runs' dataset (for --continue)")
    p.add_argument("--continue", dest="steps", type=int, default=0, help="behaviour steps")
    p.add_argument("--streams", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--rate", type=float, default=0.01)
    p.add_argument("--agent-set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="AgentConfig fields for --continue, e.g. imagined_cost=10")  # fmt: skip
    args = p.parse_args()
    changes = agent_changes(args.agent_set, p)
    set_threads()
    results: dict[str, list[dict]] = {"Polyak average (acting)": [], "trained actor": []}
    for run in args.runs:
        if args.steps:
            for stream in args.streams:
                agent, average = continued(
                    run, args.dataset, args.steps, stream, args.rate, changes
                )
                pair = (score(agent, average, args.tasks, args.tests),
                        score(agent, agent.actor, args.tasks, args.tests))  # fmt: skip
                print(f"{run} stream {stream}: average {pair[0]}, trained {pair[1]}", flush=True)
                results["Polyak average (acting)"].append(pair[0])
                results["trained actor"].append(pair[1])
        else:
            agent = load_agent(run, "cpu")
            pair = (score(agent, agent.actor_ema, args.tasks, args.tests),
                    score(agent, agent.actor, args.tasks, args.tests))  # fmt: skip
            print(f"{run}: average {pair[0]}, trained {pair[1]}", flush=True)
            results["Polyak average (acting)"].append(pair[0])
            results["trained actor"].append(pair[1])
    print(pooled_table(results, args.tasks, "actor"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
