"""Few-shot online finetuning (Algorithm 1 lines 12-24): episode -> labels -> dataset -> K updates
-> checkpoint, repeated. `fosp finetune --env sim|ros ...` and the ROS policy node drive it.

A finetune run folder RUN2 holds `config.json` (the pretrained run's), `finetune.json` (the
`FinetuneConfig`, task, dataset, source run), `online/` (the online episodes, a `Dataset`),
`checkpoint.pt` and `finetune.jsonl` (one line per episode).

Crash safety: an episode file is written atomically before its updates; the checkpoint records
the files whose K updates it contains (`applied`). On resume every online file on disk joins the
replay, a file not in `applied` gets its K updates (and a checkpoint) and is never re-run, and the
loop continues with the next episode index: nothing is lost or duplicated.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from data_collection.dataset import Dataset
from data_collection.episode import Episode
from policy import checkpoint as ckpt
from policy.agent import FOSPAgent
from policy.config import FinetuneConfig
from policy.replay import Replay
from policy.strategy import ONLINE, FinetuneStrategy, cost_by_actor, make_strategy
from policy.train import pick_device, seed_everything

FINETUNE_JSON = "finetune.json"
ONLINE_DIR = "online"
LOG = "finetune.jsonl"
_INDEX = re.compile(r"-ft(\d+)\.npz$")


class Collector(Protocol):
    """Runs one labelled online episode with the strategy's policy (sim, ROS, real arm)."""

    def collect(self, strategy: FinetuneStrategy, index: int) -> Episode: ...


def layout_seed(seed: int, index: int) -> int:
    """Layout of online episode `index`: fixed per (seed, index), so a resumed run continues with
    the layouts an uninterrupted one would have seen."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0] & 0x7FFFFFFF)


OPERATOR = 2  # acted_by of a step the operator executed (a takeover)


def policy_step(strategy: FinetuneStrategy, deterministic: bool = False):
    """A `run_episode`-style policy callable plus the per-episode count of who acted
    (`act.acted_by`: the actor of each step, 0 = offline, 1 = new, OPERATOR = a takeover).
    `act.executed(action)` tells it the operator's action ran instead of its own."""
    state: dict | None = None
    counts = [0, 0]
    acted_by: list[int] = []
    p_offline: list[float] = []  # eq. 21's probability of the offline proposal, per step

    def act(obs: dict) -> np.ndarray:
        nonlocal state
        action, state, info = strategy.act(obs, state, deterministic)
        counts[info["policy"]] += 1
        acted_by.append(int(info["policy"]))
        if "probs" in info:
            p_offline.append(float(info["probs"][0]))
        return action

    def executed(action: np.ndarray) -> None:
        nonlocal state
        state = with_executed(state, action)
        if acted_by and acted_by[-1] in (0, ONLINE):
            counts[acted_by[-1]] -= 1
        acted_by[-1] = OPERATOR

    act.p_offline = p_offline  # type: ignore[attr-defined]
    act.acted_by = acted_by  # type: ignore[attr-defined]
    act.executed = executed  # type: ignore[attr-defined]
    return act, counts


def with_executed(state: dict, action: np.ndarray) -> dict:
    """The recurrent state with the action that really ran (the next latent is computed from
    it: after a takeover, the operator's, not the policy's proposal)."""
    previous = state["action"]
    ran = torch.as_tensor(np.asarray(action), dtype=previous.dtype, device=previous.device)
    return {**state, "action": ran.reshape(previous.shape)}


def takeover_costs(episode: Episode, k: int) -> Episode:
    """The replay's view of an online episode when takeover_cost_steps = k > 0: the k actions
    before each takeover get cost 1 (cost row i labels action i - 1, so rows s - k + 1 .. s for
    a takeover at action s). The stored episode is not changed."""
    if k <= 0 or "actor" not in episode.steps:
        return episode
    op = episode.operator_steps.astype(np.int8)
    starts = np.flatnonzero(np.diff(op, prepend=0) == 1)
    cost = episode.steps["cost"].copy()
    for s in starts:
        cost[max(1, s - k + 1) : s + 1] = 1.0
    return Episode({**episode.steps, "cost": cost}, episode.metadata)


class SimCollector:
    """In-process sim; labels by the simulated operator (ground truth delayed `label_delay`
    steps, data_collection.scripted), the truth kept beside them."""

    def __init__(self, task: str, seed: int, label_delay: int = 2, takeover: str = "none"):
        from data_collection.takeover import make_takeover
        from robot.env import EnvConfig, SafeReachEnv

        if takeover not in ("none", "scripted"):
            raise ValueError(f"--takeover {takeover} needs --env ros; in the sim: scripted")
        self.env = SafeReachEnv(EnvConfig(task=task))
        self.seed, self.label_delay = seed, label_delay
        self.takeover = make_takeover(takeover, env=self.env)

    def collect(self, strategy: FinetuneStrategy, index: int) -> Episode:
        from data_collection.scripted import run_episode

        act, counts = policy_step(strategy, not strategy.cfg.sample_actions)
        episode = run_episode(
            self.env, lambda env: act, layout_seed(self.seed, index), {}, self.label_delay,
            takeover=self.takeover,
        )  # fmt: skip
        episode.metadata["policy_counts"] = list(counts)
        episode.metadata["acted_by"] = list(act.acted_by)
        if act.p_offline:
            episode.metadata["p_offline_mean"] = float(np.mean(act.p_offline))
        return episode

    def close(self) -> None:
        self.env.close()


@dataclass
class EpisodeReport:
    index: int
    file: str
    steps_offline: int
    steps_online: int
    cost_steps_offline: int  # ground-truth cost steps while the offline actor acted
    cost_steps_online: int  # ... while the new (learning) actor acted
    p_offline: float  # mean eq. 21 probability of the offline proposal (nan: direct)
    success: bool
    violation: bool
    sr_so_far: float
    cv_so_far: float
    losses: dict[str, float]
    lambda_p: float
    t_episode: float  # s to run and label the episode (nan when resumed)
    t_updates: float  # s for the K updates
    t_checkpoint: float  # s to write the checkpoint
    interventions: int = 0  # takeovers by the operator in this episode
    operator_steps: int = 0  # actions the operator executed

    def _cost_by_actor(self) -> str:
        if not self.violation or math.isnan(self.p_offline):  # nothing to attribute, or direct
            return ""
        return f" (cost steps off {self.cost_steps_offline} new {self.cost_steps_online})"

    def line(self) -> str:
        n = self.steps_offline + self.steps_online + self.operator_steps
        takeover = (
            f" operator {self.operator_steps:2d}/{n} ({self.interventions} takeovers)"
            if self.interventions
            else ""
        )
        choice = "" if math.isnan(self.p_offline) else f" (P_off {self.p_offline:.2f})"  # direct
        run = "resumed" if math.isnan(self.t_episode) else f"{self.t_episode:.1f} s"
        return (
            f"ep {self.index:3d}: offline {self.steps_offline:2d}/{n} new {self.steps_online:2d}/"
            f"{n}{choice}{takeover}  "
            f"{'S' if self.success else '-'}{'V' if self.violation else '-'}"
            f"{self._cost_by_actor()}  "
            f"SR {100 * self.sr_so_far:5.1f} % CV {100 * self.cv_so_far:5.1f} %  "
            f"wm {self.losses.get('wm/loss', float('nan')):.3g} "
            f"actor {self.losses.get('actor/loss', float('nan')):.3g}  "
            f"lambda {self.lambda_p:.4g}  "
            f"[run {run}, {self.t_updates:.1f} s updates, "
            f"ckpt {self.t_checkpoint:.2f} s]"
        )


def truth(episode: Episode) -> tuple[bool, bool]:
    """Success / violation of an episode from the ground truth when stored, else the labels."""
    r = episode.steps.get("oracle_reward", episode.steps["reward"])
    c = episode.steps.get("oracle_cost", episode.steps["cost"])
    return bool(np.max(r) > 0), bool(np.max(c) > 0)


def cost_steps_by_actor(episode: Episode) -> list[int]:
    """Cost steps (ground truth when stored) while each actor acted: [offline, new]
    (`strategy.cost_by_actor`). Episodes without a per-step `acted_by` (older runs) count as the
    new actor's."""
    c = np.asarray(episode.steps.get("oracle_cost", episode.steps["cost"]))
    acted = np.asarray(episode.metadata.get("acted_by", []), dtype=int)
    if len(acted) != len(c) - 1:
        acted = np.full(len(c) - 1, ONLINE)
    return cost_by_actor(acted, c)[0]


def online_files(out: Path) -> list[Path]:
    """Online episode files in episode order (the index is in the file name)."""
    paths = [p for p in Dataset(out / ONLINE_DIR).episode_paths() if _INDEX.search(p.name)]
    return sorted(paths, key=lambda p: int(_INDEX.search(p.name).group(1)))


class Finetuner:
    """Owns the agent, finetuning strategy, replay and run folder of one finetuning run."""

    def __init__(
        self,
        run: str | Path,
        out: str | Path,
        task: str,
        fcfg: FinetuneConfig,
        dataset: str | Path | None = None,
        device: str = "auto",
        log: Callable[[str], None] | None = print,
    ):
        self.out, self.task, self.log = Path(out), task, log or (lambda _: None)
        meta_path = self.out / FINETUNE_JSON
        _check_out(self.out, run, dataset)
        resume = (self.out / ckpt.CHECKPOINT).exists()
        if resume:
            meta = _read_meta(meta_path)
            if meta["task"] != task:
                raise ckpt.CheckpointError(f"{out} finetunes task {meta['task']!r}, not {task!r}")
            fcfg = run_settings(meta, meta_path)
            dataset = dataset or meta["dataset"]
            run = meta["source"]
        dataset = dataset or ckpt.trained_on(run)
        if dataset is None:
            raise ValueError(
                f"--dataset is required: {run} does not record the dataset it was trained on"
            )
        self.cfg = ckpt.read_config(run)
        dev = pick_device(device if device != "auto" else self.cfg.train.device)
        seed_everything(fcfg.seed)
        self.agent = FOSPAgent(self.cfg, dev)
        if not resume:
            with ckpt.restoring(Path(run) / ckpt.CHECKPOINT):
                self.agent.load_full_state(ckpt.load(run, self.cfg, map_location=dev)["agent"])
        self.replay = Replay.from_dataset(dataset, self.cfg.train.length, dev, seed=fcfg.seed)
        if fcfg.horizon == 0:  # Q*'s T: the control steps of the data's longest episode
            longest = max(len(rows) for rows in self.replay.episode_rows())
            fcfg = dataclasses.replace(fcfg, horizon=longest - 1)  # row 0: the first observation
        self.fcfg = fcfg
        self.strategy = make_strategy(self.agent, fcfg)  # pex freezes the loaded offline actor
        self.agent.attach(self.replay)
        self.agent.replay_online_from = len(self.replay)  # rows after this are online
        self.agent.online_share = fcfg.online_share
        self.agent.behaviour_repeats = fcfg.behaviour_repeats
        if fcfg.imagined_cost > 0:  # the run's config.json keeps the checkpoint's own value
            if self.agent.actor_objective is not None or not self.agent.imagines_with_actor():
                raise ValueError(
                    "--imagined-cost acts on eq. 19's actor imagining its own rollouts; "
                    f"--strategy {fcfg.strategy} (imagine with {fcfg.imagine_with}) has none: "
                    "use --strategy direct, or pex with --imagine-with new"
                )
            term = dataclasses.replace(self.cfg.agent, imagined_cost=fcfg.imagined_cost)
            self.agent.cfg = dataclasses.replace(self.cfg, agent=term)
        if fcfg.feasible_gate != "checkpoint":  # config.json keeps the pretraining's gate too
            gate = dataclasses.replace(self.agent.cfg.agent, feasible_gate=fcfg.feasible_gate)
            self.agent.cfg = dataclasses.replace(self.agent.cfg, agent=gate)
        self.agent.learn_world_model = fcfg.world_model != "frozen"
        self.agent.wm.learn_heads_only(fcfg.world_model == "heads")
        self.agent.representation_lr = fcfg.representation_lr
        self.applied: list[str] = []
        if resume:
            state = ckpt.load(self.out, self.cfg, map_location=dev, keys=ckpt.FINETUNE_KEYS)
            with ckpt.restoring(self.out / ckpt.CHECKPOINT):
                self.agent.load_full_state(state["agent"])
                self.strategy.load_state_dict(state["expansion"])
                self.replay.load_state_dict(state["replay"])
                ckpt.set_rng_state(state["rng"])
                self.applied = [str(name) for name in state["applied"]]
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            ckpt.write_config(self.out, self.cfg)
            meta = {
                "task": task,
                "dataset": str(Path(dataset).resolve()),
                "source": str(Path(run).resolve()),
                "finetune": dataclasses.asdict(fcfg),
            }
            ckpt.atomic_write_bytes(meta_path, (json.dumps(meta, indent=2) + "\n").encode())
        self.online = Dataset(self.out / ONLINE_DIR)
        self.outcomes: list[tuple[bool, bool]] = []
        self.takeovers: list[tuple[int, int, int]] = []  # (takeovers, operator steps, actions)
        for path in online_files(self.out):  # every online episode on disk is training data
            episode = self.online.read(path)
            self.replay.add(takeover_costs(episode, self.fcfg.takeover_cost_steps), str(path))
            self.outcomes.append(truth(episode))
            self.takeovers.append(_takeover_counts(episode))

    def save(self) -> float:
        start = time.perf_counter()
        payload = {
            "agent": self.agent.full_state(),
            "replay": self.replay.state_dict(),
            "expansion": self.strategy.state_dict(),  # the key predates other strategies
            "applied": list(self.applied),
        }
        ckpt.save(self.out, self.cfg, payload)
        return time.perf_counter() - start

    def updates(self, k: int) -> tuple[dict[str, float], float]:
        """K gradient steps; mean metrics (one host sync at the end) and the seconds taken."""
        self.agent.train()
        start = time.perf_counter()
        sums: dict[str, torch.Tensor] = {}
        for _ in range(k):
            batch = self.replay.sample(
                self.cfg.train.batch, self.agent.replay_online_from, self.fcfg.online_share
            )
            metrics = self.strategy.update(batch)
            for key, v in metrics.items():
                sums[key] = sums.get(key, 0) + v.float()
        if self.fcfg.settle_steps > 0:
            self.strategy.settle(self.fcfg.settle_steps)
        self.agent.eval()
        means = {key: float(v) / max(1, k) for key, v in sums.items()}
        return means, time.perf_counter() - start

    def _apply(self, path: Path, episode: Episode, t_episode: float) -> EpisodeReport:
        self.strategy.observe_episode(episode)
        losses, t_updates = self.updates(self.fcfg.updates_per_episode)
        losses.update(self.strategy.end_episode(episode))
        self.applied.append(path.name)
        t_ckpt = self.save()
        counts = episode.metadata.get("policy_counts", [0, 0])
        success, violation = truth(episode)
        cost_offline, cost_online = cost_steps_by_actor(episode)
        n = len(self.outcomes)
        report = EpisodeReport(
            index=int(_INDEX.search(path.name).group(1)),
            file=path.name,
            steps_offline=int(counts[0]),
            steps_online=int(counts[ONLINE]),
            cost_steps_offline=cost_offline,
            cost_steps_online=cost_online,
            p_offline=float(episode.metadata.get("p_offline_mean", float("nan"))),
            success=success,
            violation=violation,
            sr_so_far=sum(s for s, _ in self.outcomes) / max(1, n),
            cv_so_far=sum(v for _, v in self.outcomes) / max(1, n),
            losses=losses,
            lambda_p=self.strategy.multiplier(),
            t_episode=t_episode,
            t_updates=t_updates,
            t_checkpoint=t_ckpt,
            interventions=episode.interventions,
            operator_steps=int(episode.operator_steps.sum()),
        )
        with open(self.out / LOG, "a") as f:
            f.write(json.dumps(dataclasses.asdict(report)) + "\n")
        self.log(report.line())
        return report

    def run(
        self, collector: Collector, episodes: int, after_write: Callable[[Path], None] | None = None
    ) -> list[EpisodeReport]:
        """Finetune until `episodes` online episodes have their updates. `after_write(path)` is
        called between writing an episode and its updates (tests inject a crash there)."""
        reports = []
        if not self.strategy.prepared:  # before the first online episode, once per run
            prepared = self.strategy.prepare(self.log)
            for key, value in prepared.items():
                self.log(f"prepare {self.fcfg.strategy}: {key} {value:.4g}")
            if prepared:  # a strategy that did work before episode 0 keeps it on a crash
                self.save()
        for path in online_files(self.out):  # written before a crash, updates not applied
            if path.name not in self.applied:
                reports.append(self._apply(path, self.online.read(path), float("nan")))
        while len(online_files(self.out)) < episodes:
            index = len(online_files(self.out))
            start = time.perf_counter()
            episode = collector.collect(self.strategy, index)
            episode.metadata.update(
                episode_id=f"ft{index:04d}", finetune_index=index, strategy=self.fcfg.strategy
            )
            t_episode = time.perf_counter() - start
            path = self.online.add(episode)
            self.replay.add(takeover_costs(episode, self.fcfg.takeover_cost_steps), str(path))
            self.outcomes.append(truth(episode))
            self.takeovers.append(_takeover_counts(episode))
            if after_write is not None:
                after_write(path)
            reports.append(self._apply(path, episode, t_episode))
        return reports

    def summary(self) -> dict[str, Any]:
        n = len(self.outcomes)
        return {
            "episodes": n,
            "successes": sum(s for s, _ in self.outcomes),
            "violations": sum(v for _, v in self.outcomes),
            "interventions": sum(t[0] for t in self.takeovers),
            "operator_steps": sum(t[1] for t in self.takeovers),
            "actions": sum(t[2] for t in self.takeovers),
        }


def _takeover_counts(episode: Episode) -> tuple[int, int, int]:
    return episode.interventions, int(episode.operator_steps.sum()), episode.num_actions


def _check_out(out: Path, run: str | Path, dataset: str | Path | None) -> None:
    """A finetune run folder may not be a file, the pretrained run or the dataset."""
    if out.exists() and not out.is_dir():
        raise ckpt.CheckpointError(f"--out {out} is a file, not a finetune run folder")
    for other, what in ((run, "the pretrained run (--checkpoint)"), (dataset, "the dataset")):
        if other is not None and out.exists() and out.resolve() == Path(other).resolve():
            raise ckpt.CheckpointError(f"--out {out} is {what}; choose a new folder")
    if (out / ckpt.CHECKPOINT).exists() and not (out / FINETUNE_JSON).exists():
        raise ckpt.CheckpointError(
            f"--out {out} holds a training run, not a finetune run; choose a new folder"
        )


# settings added after runs were made, at the values those runs used (a default that changed
# later must not change an old run when it resumes or is evaluated)
LEGACY_SETTINGS = {"representation_lr": 1.0, "offline_features": "learning", "cost_evidence": 0.0}


def run_settings(meta: dict[str, Any], path: Path) -> FinetuneConfig:
    """The settings a finetune run was made with, from its finetune.json record."""
    try:
        return FinetuneConfig(**{**LEGACY_SETTINGS, **meta["finetune"]})
    except (TypeError, ValueError) as err:
        raise ckpt.CheckpointError(f"{path}: finetune settings: {err}") from err


def load_finetuned(run: str | Path, device: str = "auto") -> FinetuneStrategy:
    """A finetune run's policy as it acts, from its folder: the strategy around the agent, both
    restored from the run's checkpoint (pex: both actors and eq. 21's choice), in eval mode."""
    run = Path(run)
    fcfg = run_settings(_read_meta(run / FINETUNE_JSON), run / FINETUNE_JSON)
    cfg = ckpt.read_config(run)
    agent = FOSPAgent(cfg, pick_device(device if device != "auto" else cfg.train.device))
    strategy = make_strategy(agent, fcfg)  # first: pex copies, freezes or replaces the actor
    state = ckpt.load(run, cfg, map_location=agent.device, keys=ckpt.FINETUNE_KEYS)
    with ckpt.restoring(run / ckpt.CHECKPOINT):
        agent.load_full_state(state["agent"])
        strategy.load_state_dict(state["expansion"])
    agent.eval()
    return strategy


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
        for key in ("task", "finetune", "dataset", "source"):
            meta[key]  # noqa: B018 - named if missing
        return meta
    except OSError as err:
        raise ckpt.CheckpointError(f"cannot read {path}: {err.strerror or err}") from err
    except (ValueError, KeyError, TypeError) as err:
        raise ckpt.CheckpointError(f"{path} is not a valid finetune record: {err!r}") from err


def finetune_sim(
    run: str | Path,
    out: str | Path,
    task: str,
    episodes: int,
    fcfg: FinetuneConfig,
    dataset: str | Path | None = None,
    log: Callable[[str], None] | None = print,
) -> Finetuner:
    """`fosp finetune --env sim`: the whole loop in the in-process simulator."""
    tuner = Finetuner(run, out, task, fcfg, dataset, log=log)
    collector = SimCollector(task, tuner.fcfg.seed, tuner.fcfg.label_delay, tuner.fcfg.takeover)
    try:
        tuner.run(collector, episodes)
    finally:
        collector.close()
    return tuner
