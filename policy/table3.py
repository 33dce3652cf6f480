"""FOSP Table 3 protocol in the simulator: SR / CV over `tests` episodes before finetuning, during
it (the finetuning episodes themselves, ground truth) and after it, per unseen task, strategy and
seed; mean and a 95 % interval across seeds (Student t; one seed: Wilson on the counts).

One more phase, `no-update`: the offline policy on the finetuning episodes of the seed (the same
layouts, execution noise and takeover), without any update. "before" is 20 greedy tests on
other layouts; `no-update` is what "during" would score if finetuning learned nothing, so their
difference is what the updates did during finetuning, apart from exploration and layouts.

`fosp eval table3 --checkpoint RUN --dataset DATA --tasks unseen-1,unseen-2,unseen-3 --tests 20
--finetune-episodes 40 --seeds 3 [--strategies pex,direct] [any FinetuneConfig flag] --out DIR`
(flags: `Table3Config` and `FinetuneConfig`) writes table3.md (the per-phase table, then the
differences that answer the protocol's questions: what finetuning gained, what the updates did,
each strategy against `direct`), table3.csv (one row per seed and phase), table3_summary.csv and
table3.png.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_collection.episode import Episode
from fosp.errors import UserError
from policy.agent import FOSPAgent
from policy.config import EvalConfig, FinetuneConfig, Table3Config
from policy.evaluate import EvalResult, Rates, evaluate, newcombe, wilson
from policy.strategy import FinetuneStrategy

PHASES = ("before", "no-update", "during", "after")
# FinetuneConfig settings that only pex reads: the merge compares them between pex runs alone
PEX_ONLY = ("offline_features", "cost_evidence")
# two-sided 95 % Student t quantiles by degrees of freedom (no scipy in the environment)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}
_T95_LARGE = 1.96


class StrategyPolicy:
    """`evaluate` calls `agent.act(obs, state, deterministic=...)`; this gives it a finetuning
    strategy's policy (PEX: both proposals and eq. 21's choice, greedy when deterministic)."""

    def __init__(self, strategy: FinetuneStrategy):
        self.strategy = strategy

    def act(self, obs, state=None, deterministic: bool = True):
        action, state, _ = self.strategy.act(obs, state, deterministic)
        return action, state


@dataclass
class Row(Rates):
    strategy: str
    task: str
    seed: int
    phase: str
    episodes: int
    successes: int
    violations: int
    wall_s: float
    interventions: int = 0  # during: the operator's takeovers (--takeover)
    operator_rate: float = 0.0  # during: share of the actions the operator executed


def interval(values: list[float], counts: tuple[int, int] | None = None) -> tuple[float, float]:
    """95 % interval of the mean across seeds; with one seed, Wilson on (hits, n)."""
    if len(values) == 1:
        return wilson(*counts) if counts else (values[0], values[0])
    arr = np.asarray(values, float)
    half = _T95.get(len(arr) - 1, _T95_LARGE) * arr.std(ddof=1) / math.sqrt(len(arr))
    return max(0.0, arr.mean() - half), min(1.0, arr.mean() + half)


def summarise(rows: list[Row], shared_before: bool = True) -> list[dict]:
    """Per (strategy, task, phase): the mean over seeds with its interval across seeds, and the
    seeds' episodes pooled (Wilson on the summed counts). "before" is one evaluation of the
    offline policy copied to every seed's row: its copies count once (Wilson on one copy).
    shared_before=False: every "before" row is its own evaluation (one per checkpoint)."""
    out = []
    keys = sorted({(r.strategy, r.task) for r in rows})
    for strategy, task in keys:
        for phase in PHASES:
            sel = [r for r in rows if (r.strategy, r.task, r.phase) == (strategy, task, phase)]
            if not sel:
                continue
            one, seeds, wall = sel[0], len(sel), sum(r.wall_s for r in sel)
            sel = _counted(sel, shared_before)
            srs, cvs = [r.sr for r in sel], [r.cv for r in sel]
            n = sum(r.episodes for r in sel)
            out.append(
                {
                    "strategy": strategy,
                    "task": task,
                    "phase": phase,
                    "seeds": seeds,
                    "episodes": one.episodes,
                    "sr": float(np.mean(srs)),
                    "sr_ci": interval(srs, (one.successes, one.episodes)),
                    "cv": float(np.mean(cvs)),
                    "cv_ci": interval(cvs, (one.violations, one.episodes)),
                    # every seed's episodes pooled: Wilson on the summed counts
                    "sr_pooled_ci": wilson(sum(r.successes for r in sel), n),
                    "cv_pooled_ci": wilson(sum(r.violations for r in sel), n),
                    "wall_s": float(wall),
                    "interventions": float(np.mean([r.interventions for r in sel])),
                    "operator_rate": float(np.mean([r.operator_rate for r in sel])),
                }
            )
    return out


def _counted(rows: list[Row], shared_before: bool) -> list[Row]:
    """The rows of one (strategy, task, phase) whose episodes count: "before" copies that every
    seed shares (one evaluation, identical counts) count once."""
    counts = {(r.episodes, r.successes, r.violations) for r in rows}
    if shared_before and rows and rows[0].phase == "before" and len(counts) == 1:
        return rows[:1]
    return rows


def differences(rows: list[Row], shared_before: bool = True) -> list[dict]:
    """Differences of pooled rates with 95 % intervals (Newcombe's hybrid score interval on the
    pooled episodes): per strategy, what finetuning gained (after - before) and what the updates
    did during it (during - no-update); per phase, each strategy against `direct`; each per task
    and, over the tasks where both sides ran (two or more), together ("all" when every task)."""
    tasks = sorted({r.task for r in rows})

    def counted(strategy: str, phase: str, within: list[str]) -> list[Row]:
        return [
            r
            for t in within
            for r in _counted(
                [r for r in rows if (r.strategy, r.phase, r.task) == (strategy, phase, t)],
                shared_before,
            )
        ]

    comparisons = []  # (label, strategy shown, (strategy, phase) minus (strategy, phase))
    strategies = sorted({r.strategy for r in rows})
    for strategy in strategies:
        for a, b in (("after", "before"), ("during", "no-update")):
            comparisons.append((f"{a} - {b}", strategy, (strategy, a), (strategy, b)))
    for other in (s for s in strategies if s != "direct" and "direct" in strategies):
        for phase in ("during", "after"):
            comparisons.append(
                (f"{phase}: {other} - direct", other, (other, phase), ("direct", phase))
            )
    out = []
    for label, shown, first, second in comparisons:
        both = [t for t in tasks if counted(*first, [t]) and counted(*second, [t])]
        scopes = [(t, [t]) for t in both]
        if len(both) > 1:  # the same tasks on both sides, never one side's extra task
            scopes.append(("all" if both == tasks else ", ".join(both), both))
        for scope, within in scopes:
            (n1, s1, v1), (n2, s2, v2) = (
                (sum(r.episodes for r in sel), sum(r.successes for r in sel),
                 sum(r.violations for r in sel))
                for sel in (counted(*first, within), counted(*second, within))
            )  # fmt: skip
            out.append(
                {
                    "comparison": label, "strategy": shown, "task": scope, "n": (n1, n2),
                    "sr": s1 / n1 - s2 / n2, "sr_ci": newcombe(s1, n1, s2, n2),
                    "cv": v1 / n1 - v2 / n2, "cv_ci": newcombe(v1, n1, v2, n2),
                }
            )  # fmt: skip
    return out


def _points(value: float, ci: tuple[float, float]) -> str:
    lo, hi = (round(100 * x) + 0 for x in ci)  # + 0: no "-0"
    return f"{100 * value:+.1f} [{lo:+d}, {hi:+d}]"


def differences_markdown(diffs: list[dict]) -> str:
    """The differences as a table in percentage points; an interval that excludes 0 is a
    difference the pooled episodes resolve."""
    lines = [
        "| comparison | strategy | task | SR points [95 %] | CV points [95 %] | episodes |",
        "|---|---|---|---|---|---|",
    ]
    for d in diffs:
        lines.append(
            f"| {d['comparison']} | {d['strategy']} | {d['task']} | {_points(d['sr'], d['sr_ci'])}"
            f" | {_points(d['cv'], d['cv_ci'])} | {d['n'][0]} vs {d['n'][1]} |"
        )
    return "\n".join(lines) + "\n"


def report(rows: list[Row], summary: list[dict], shared_before: bool = True) -> str:
    """table3.md: the per-phase table, then the differences that answer Table 3's questions."""
    return (
        markdown(summary)
        + "\nDifferences of pooled rates, percentage points, 95 % Newcombe hybrid score "
        'intervals (a shared "before" counts once):\n\n'
        + differences_markdown(differences(rows, shared_before))
    )


def _pct(value: float, ci: tuple[float, float], digits: int = 1) -> str:
    return f"{100 * value:.{digits}f} [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]"


def markdown(summary: list[dict]) -> str:
    """The table: SR and CV as the mean over seeds with its Student-t interval, then every seed's
    episodes pooled with Wilson intervals (narrower, and defined for 2 seeds); with takeovers
    (any row), two more columns for the finetuning episodes: takeovers per seed and the share of
    actions the operator executed."""
    takeover = any(s.get("interventions") for s in summary)
    head = (
        "| strategy | task | phase | SR % [95 %] | CV % [95 %] | n × seeds "
        "| pooled SR / CV % [Wilson 95 %] | wall s |"
    )
    lines = [
        head + (" takeovers | operator % |" if takeover else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|---|" if takeover else ""),
    ]
    for s in summary:
        pooled = f"{_pct(s['sr'], s['sr_pooled_ci'], 0)} / {_pct(s['cv'], s['cv_pooled_ci'], 0)}"
        line = (
            f"| {s['strategy']} | {s['task']} | {s['phase']} | {_pct(s['sr'], s['sr_ci'])} | "
            f"{_pct(s['cv'], s['cv_ci'])} | {s['episodes']} × {s['seeds']} | {pooled} | "
            f"{s['wall_s']:.0f} |"
        )
        if takeover:
            during = s["phase"] == "during"
            line += (
                f" {s['interventions']:.1f} | {100 * s['operator_rate']:.1f} |"
                if during
                else " | |"
            )
        lines.append(line)
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(s["strategy"], s["task"]) for s in summary})
    # SR above CV, sharing the groups' axis: one row of 15 groups was too wide to read
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 1.1 * len(groups) + 1), 6.4), sharex=True)
    width = 0.8 / len(PHASES)
    for ax, metric, title in ((axes[0], "sr", "success rate"), (axes[1], "cv", "violation rate")):
        for j, phase in enumerate(PHASES):
            xs, ys, err = [], [], [[], []]
            for i, g in enumerate(groups):
                s = next((s for s in summary if (s["strategy"], s["task"]) == g and
                          s["phase"] == phase), None)  # fmt: skip
                if s is None:
                    continue
                xs.append(i + (j - (len(PHASES) - 1) / 2) * width)
                ys.append(100 * s[metric])
                lo, hi = s[f"{metric}_ci"]
                err[0].append(100 * (s[metric] - lo))
                err[1].append(100 * (hi - s[metric]))
            ax.bar(xs, ys, width, yerr=err, capsize=3, label=phase)
        ax.set_xticks(range(len(groups)), [f"{t}\n{s}" for s, t in groups], fontsize=8)
        ax.set_ylabel(f"{title} %")
        ax.set_ylim(0, 105)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncol=len(PHASES), loc="lower right", bbox_to_anchor=(1.0, 1.0))
    axes[0].set_title("mean over seeds, 95 % interval across seeds", loc="left", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_learning_curve(
    log: Path, path: Path, before: Rates | None = None, no_update: Rates | None = None
) -> Path:
    """Per-episode learning curve of one finetuning run (its finetune.jsonl): each successful
    episode (| at the top) and violating one (x), the running SR / CV, the share of steps the
    offline actor acted (and the operator, in a run with takeovers), the offline policy's SR / CV
    before finetuning as dashed lines and on the same episodes without updates as dotted ones."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    ep = [r["index"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(ep, [100 * r["sr_so_far"] for r in rows], "-o", color="tab:green", label="SR so far")
    ax.plot(ep, [100 * r["cv_so_far"] for r in rows], "-o", color="tab:red", label="CV so far")
    for key, y, marker, colour in (("success", 104, "|", "tab:green"),
                                   ("violation", 108, "x", "tab:red")):  # fmt: skip
        hits = [r["index"] for r in rows if r[key]]
        ax.scatter(hits, [y] * len(hits), marker=marker, color=colour)
    operator = [r.get("operator_steps", 0) for r in rows]  # takeovers: the operator acted
    actions = [
        max(1, r["steps_offline"] + r["steps_online"] + o)
        for r, o in zip(rows, operator, strict=True)
    ]
    share = [100 * r["steps_offline"] / n for r, n in zip(rows, actions, strict=True)]
    ax.plot(ep, share, ":", color="grey", label="offline actor's steps %")
    if any(operator):
        ax.plot(ep, [100 * o / n for o, n in zip(operator, actions, strict=True)], "-.",
                color="tab:purple", label="operator's steps % (takeover)")  # fmt: skip
    if before is not None:
        ax.axhline(100 * before.sr, ls="--", color="tab:green", lw=0.8, label="SR before")
        ax.axhline(100 * before.cv, ls="--", color="tab:red", lw=0.8, label="CV before")
    if no_update is not None:
        for value, colour, name in ((no_update.sr, "tab:green", "SR"),
                                    (no_update.cv, "tab:red", "CV")):  # fmt: skip
            ax.axhline(100 * value, ls=":", color=colour, lw=1.2, label=f"{name} no update")
    ax.set_xlabel("finetuning episode")
    ax.set_ylabel("%")
    ax.set_ylim(-12, 112)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def no_update_episodes(
    offline: FOSPAgent, task: str, seed: int, episodes: int, fcfg: FinetuneConfig
) -> list[Episode]:
    """The offline policy on finetuning seed `seed`'s first `episodes` episodes: the same layouts,
    execution noise (FinetuneConfig.action_std, its generator seeded with `seed`) and takeover as
    every strategy's finetuning run, acting as `direct` acts, and no update. The world model's
    latent samples draw on the global RNG, seeded here with `seed`: a rerun repeats the episodes
    on the same machine (a finetuning run's own draws differ: its setup consumes the RNG too)."""
    from policy.direct import DirectFinetune
    from policy.finetune import SimCollector
    from policy.train import seed_everything

    seed_everything(seed)
    cfg = dataclasses.replace(fcfg, strategy="direct", seed=seed, horizon=max(1, fcfg.horizon))
    acting = DirectFinetune(copy.deepcopy(offline), cfg)  # a strategy may rewrite its agent
    collector = SimCollector(task, seed, cfg.label_delay, cfg.takeover)
    try:
        return [collector.collect(acting, index) for index in range(episodes)]
    finally:
        collector.close()


@dataclass
class Outcomes(Rates):
    episodes: int
    successes: int
    violations: int


def outcome_rates(episodes: list[Episode]) -> Outcomes:
    """SR / CV counts of episodes from their ground truth (as "during" counts them)."""
    from policy.finetune import truth

    outcomes = [truth(episode) for episode in episodes]
    return Outcomes(len(outcomes), sum(s for s, _ in outcomes), sum(v for _, v in outcomes))


def _eval_row(result: EvalResult, strategy: str, seed: int, phase: str, wall: float) -> Row:
    return Row(
        strategy, result.task, seed, phase, result.episodes, result.successes, result.violations,
        wall,
    )  # fmt: skip


def finetune_dir(out: str | Path, strategy: str, seed: int, task: str) -> Path:
    """Where `run_table3` puts the finetune run of (strategy, seed, task)."""
    return Path(out) / strategy / f"seed{seed}" / task


def run_table3(
    checkpoint: str | Path,
    dataset: str | Path,
    out: str | Path,
    protocol: Table3Config,
    fcfg: FinetuneConfig | None = None,
    log: Callable[[str], None] = print,
    stage: Callable[[str], None] | None = None,
) -> tuple[list[Row], list[dict]]:
    """The whole protocol; finetune runs land in `finetune_dir(out, strategy, seed, task)`
    (resumable), each with `fcfg` (its strategy and seed set per row). `stage(text)` announces
    each phase (default: `log`); `fosp demo` runs this with one task, one seed and PEX.
    protocol.jobs > 1: each (task, seed, strategy) in its own process (policy/table3_jobs.py)."""
    if protocol.jobs > 1:
        from policy.table3_jobs import run_units

        return run_units(checkpoint, dataset, out, protocol, fcfg, log)
    stage = stage or log
    from policy.finetune import LOG, Finetuner, SimCollector
    from policy.train import load_agent

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = fcfg or FinetuneConfig()
    tests, eval_seed, seeds = protocol.tests, protocol.eval_seed, protocol.seeds
    finetune_episodes, strategies = protocol.finetune_episodes, protocol.strategy_names
    rows: list[Row] = []
    offline = load_agent(checkpoint)
    for task in protocol.task_names:
        stage(f"before finetuning: {tests} tests of the offline policy on {task}")
        start = time.perf_counter()
        before = evaluate(offline, task, tests, eval_seed)  # the offline policy: same for all
        t_before = time.perf_counter() - start
        log(f"before  {before.line()}  [{t_before:.0f} s]")
        untouched: dict[int, tuple[Outcomes, float]] = {}
        for seed in protocol.seed_ids:  # shared by every strategy, like "before"
            stage(f"no update (seed {seed}): the offline policy on the {finetune_episodes} "
                  f"finetuning episodes of {task}")  # fmt: skip
            start = time.perf_counter()
            rates = outcome_rates(no_update_episodes(offline, task, seed, finetune_episodes, base))
            untouched[seed] = (rates, time.perf_counter() - start)
            log(
                f"no-update seed {seed} {task}: SR {100 * rates.sr:5.1f} %  CV "
                f"{100 * rates.cv:5.1f} %  (n={rates.episodes})  [{untouched[seed][1]:.0f} s]"
            )
        for strategy in strategies:
            for seed in protocol.seed_ids:
                # one shared evaluation: its time is split over the rows that reuse it
                share = t_before / (len(strategies) * seeds)
                rows.append(_eval_row(before, strategy, seed, "before", share))
                rates, t_still = untouched[seed]
                rows.append(
                    Row(strategy, task, seed, "no-update", rates.episodes, rates.successes,
                        rates.violations, t_still / len(strategies))
                )  # fmt: skip
                cfg = dataclasses.replace(base, strategy=strategy, seed=seed)
                run_dir = finetune_dir(out, strategy, seed, task)
                stage(
                    f"finetuning ({strategy}, seed {seed}): {finetune_episodes} episodes on "
                    f"{task}, {cfg.updates_per_episode} updates each -> {run_dir}"
                )
                start = time.perf_counter()
                tuner = Finetuner(checkpoint, run_dir, task, cfg, dataset, log=log)
                collector = SimCollector(task, seed, cfg.label_delay, cfg.takeover)
                try:
                    tuner.run(collector, finetune_episodes)
                finally:
                    collector.close()
                s = tuner.summary()
                wall = time.perf_counter() - start
                curve = run_dir / "finetune_curve.png"
                plot_learning_curve(run_dir / LOG, curve, before, untouched[seed][0])
                rows.append(
                    Row(strategy, task, seed, "during", s["episodes"], s["successes"],
                        s["violations"], wall, s["interventions"],
                        s["operator_steps"] / max(1, s["actions"]))
                )  # fmt: skip
                stage(f"after finetuning ({strategy}, seed {seed}): {tests} tests on {task}")
                start = time.perf_counter()
                after = evaluate(StrategyPolicy(tuner.strategy), task, tests, eval_seed)
                wall = time.perf_counter() - start
                rows.append(_eval_row(after, strategy, seed, "after", wall))
                log(f"{strategy} seed {seed} after  {after.line()}  [{wall:.0f} s]")
    summary = summarise(rows)
    write_outputs(rows, summary, out)
    return rows, summary


def write_outputs(
    rows: list[Row], summary: list[dict], out: Path, shared_before: bool = True
) -> None:
    with open(out / "table3.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "task", "seed", "phase", "episodes", "successes", "violations",
                    "sr", "cv", "wall_s", "interventions", "operator_rate"])  # fmt: skip
        for r in rows:
            w.writerow([r.strategy, r.task, r.seed, r.phase, r.episodes, r.successes,
                        r.violations, f"{r.sr:.4f}", f"{r.cv:.4f}", f"{r.wall_s:.1f}",
                        r.interventions, f"{r.operator_rate:.4f}"])  # fmt: skip
    with open(out / "table3_summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["strategy", "task", "phase", "seeds", "episodes", "sr", "sr_lo", "sr_hi",
                    "cv", "cv_lo", "cv_hi", "wall_s", "sr_pooled_lo", "sr_pooled_hi",
                    "cv_pooled_lo", "cv_pooled_hi"])  # fmt: skip
        for s in summary:
            w.writerow([s["strategy"], s["task"], s["phase"], s["seeds"], s["episodes"],
                        f"{s['sr']:.4f}", f"{s['sr_ci'][0]:.4f}", f"{s['sr_ci'][1]:.4f}",
                        f"{s['cv']:.4f}", f"{s['cv_ci'][0]:.4f}", f"{s['cv_ci'][1]:.4f}",
                        f"{s['wall_s']:.1f}", *(f"{x:.4f}" for x in (*s["sr_pooled_ci"],
                        *s["cv_pooled_ci"]))])  # fmt: skip
    (out / "table3.md").write_text(report(rows, summary, shared_before))
    plot(summary, out / "table3.png")


class Table3Error(UserError, ValueError):
    """Table 3 folders that cannot be pooled (missing or corrupt table3.csv, a seed run twice,
    runs made with different settings); the message names the file and the field."""


_CSV_FIELDS = {
    "strategy": str, "task": str, "seed": int, "phase": str, "episodes": int, "successes": int,
    "violations": int, "wall_s": float, "interventions": int, "operator_rate": float,
}  # fmt: skip


def read_rows(folder: str | Path) -> list[Row]:
    """The per-seed rows of one `fosp eval table3` output folder (its table3.csv)."""
    path = Path(folder) / "table3.csv"
    if not path.is_file():
        raise Table3Error(f"{folder}: no table3.csv (not a finished `fosp eval table3` output)")
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [k for k in _CSV_FIELDS if k not in (reader.fieldnames or [])]
        if missing:
            raise Table3Error(f"{path}: no column {missing[0]!r}")
        for line, record in enumerate(reader, start=2):
            values = {}
            for key, kind in _CSV_FIELDS.items():
                try:
                    values[key] = kind(record[key])
                except (TypeError, ValueError):
                    raise Table3Error(f"{path} line {line}: {key} = {record[key]!r}") from None
            if values["phase"] not in PHASES:
                raise Table3Error(f"{path} line {line}: phase = {values['phase']!r}")
            if not 0 <= values["successes"] <= values["episodes"] or not (
                0 <= values["violations"] <= values["episodes"]
            ):
                raise Table3Error(f"{path} line {line}: counts outside 0..episodes")
            rows.append(Row(**values))
    return rows


def _run_settings(folder: Path, row: Row) -> dict:
    """What a finetune run was made from: its checkpoint, dataset and settings, seed left out.
    A setting added after the run was made counts at the value such runs used
    (`finetune.LEGACY_SETTINGS`); the settings only pex reads count for pex alone."""
    from policy.finetune import run_settings

    path = finetune_dir(folder, row.strategy, row.seed, row.task) / "finetune.json"
    try:
        record = json.loads(path.read_text())
        settings = dataclasses.asdict(run_settings(record, path))
        settings.pop("seed")
        if row.strategy != "pex":
            for name in PEX_ONLY:
                settings.pop(name)
        return {"source": str(record["source"]), "dataset": record["dataset"], **settings}
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise Table3Error(f"{path}: unreadable finetune record ({err})") from None


def merge(
    folders: list[str | Path], out: str | Path, across_checkpoints: bool = False
) -> tuple[list[Row], list[dict]]:
    """Pool `fosp eval table3` folders that ran different seeds of the same protocol (e.g. one
    process per seed with --seeds 1 --first-seed K) into one table in `out`. Refused: a
    (strategy, task, seed) in two folders, or runs of one (strategy, task) made from different
    checkpoints, datasets or finetuning settings (a takeover run pooled with one without, say).

    across_checkpoints: the folders' runs may come from different offline checkpoints (one per
    pretraining seed); a seed is then a (checkpoint, finetuning seed) pair, numbered 0, 1, ... in
    order of checkpoint path and finetuning seed per (strategy, task) and listed in seeds.csv,
    and "before" counts once per checkpoint, so its interval is across checkpoints."""
    found: list[tuple[Row, str, Path]] = []  # row, its checkpoint, its folder
    settings: dict[tuple, tuple[dict, Path]] = {}
    for folder in map(Path, folders):
        rows = read_rows(folder)
        sources: dict[tuple, str] = {}
        for row in rows:
            if row.phase != "during":
                continue
            mine = _run_settings(folder, row)
            sources[(row.strategy, row.task, row.seed)] = mine["source"]
            if across_checkpoints:
                mine.pop("source")
            first, where = settings.setdefault((row.strategy, row.task), (mine, folder))
            differ = [k for k in sorted(first.keys() | mine.keys()) if first.get(k) != mine.get(k)]
            if differ:
                k = differ[0]
                raise Table3Error(
                    f"{row.strategy} {row.task}: {where} and {folder} differ in {k} "
                    f"({first.get(k)!r} vs {mine.get(k)!r})"
                )
        for row in rows:
            key = (row.strategy, row.task, row.seed)
            if key not in sources:
                raise Table3Error(
                    f"{folder / 'table3.csv'}: {row.strategy} {row.task} seed {row.seed} has "
                    "no during row"
                )
            found.append((row, sources[key], folder))
    seen: dict[tuple, Path] = {}
    for row, source, folder in found:
        key = (row.strategy, row.task, row.seed, row.phase)
        if across_checkpoints:
            key = (*key, source)
        if key in seen:
            raise Table3Error(
                f"{row.strategy} {row.task} seed {row.seed} {row.phase} is in both "
                f"{seen[key]} and {folder}"
                + (f" (checkpoint {source})" if across_checkpoints else "")
            )
        seen[key] = folder
    rows = [row for row, _, _ in found]
    if across_checkpoints:
        rows, labels = _seeds_across_checkpoints(found)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows.sort(key=lambda r: (r.strategy, r.task, r.seed, PHASES.index(r.phase)))
    summary = summarise(rows, shared_before=not across_checkpoints)
    write_outputs(rows, summary, out, shared_before=not across_checkpoints)
    if across_checkpoints:
        with open(out / "seeds.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["strategy", "task", "seed", "checkpoint", "finetune_seed", "folder"])
            w.writerows(labels)
    return rows, summary


def _seeds_across_checkpoints(found: list[tuple[Row, str, Path]]) -> tuple[list[Row], list]:
    """Rows renumbered so that each (checkpoint, finetuning seed) of a (strategy, task) is one
    seed, and one "before" row per checkpoint (a folder's seeds share that evaluation)."""
    pairs: dict[tuple, dict[tuple, Path]] = {}
    for row, source, folder in found:
        pairs.setdefault((row.strategy, row.task), {})[(source, row.seed)] = folder
    number = {
        (group, pair): i
        for group, members in pairs.items()
        for i, pair in enumerate(sorted(members))
    }
    rows, before_of = [], set()
    for row, source, _ in found:
        group = (row.strategy, row.task)
        if row.phase == "before":
            if (group, source) in before_of:
                continue
            before_of.add((group, source))
        rows.append(dataclasses.replace(row, seed=number[(group, (source, row.seed))]))
    labels = [
        [*group, number[(group, pair)], pair[0], pair[1], str(folder)]
        for group, members in sorted(pairs.items())
        for pair, folder in sorted(members.items())
    ]
    return rows, labels


def table3_cli(args, run: Path) -> int:
    """`fosp eval table3 ...` (arguments from policy/cli.py)."""
    import sys

    from fosp.config_flags import values
    from policy.checkpoint import CheckpointError, trained_on
    from policy.replay import ReplayError

    args.dataset = args.dataset or trained_on(run)
    if not args.dataset:
        print(
            f"fosp eval table3: error: --dataset is required: {run} does not record the "
            "dataset it was trained on",
            file=sys.stderr,
        )
        return 2
    first_test = EvalConfig(**values(args, EvalConfig)).seed  # --seed, as in plain fosp eval
    protocol = Table3Config(**values(args, Table3Config), eval_seed=first_test)
    fcfg = FinetuneConfig(**values(args, FinetuneConfig))
    try:
        rows, summary = run_table3(run, args.dataset, args.out, protocol, fcfg)
    except (CheckpointError, ReplayError, ValueError) as err:
        print(f"fosp eval table3: error: {err}", file=sys.stderr)
        return 2
    print(report(rows, summary))
    print(f"written: {args.out}/table3.md, table3.csv, table3_summary.csv, table3.png")
    return 0
