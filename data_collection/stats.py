"""Dataset statistics: the paper's category table and a reward-vs-cost scatter (cf. Fig. 10)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_collection.dataset import EpisodeSummary, category_counts

CATEGORY_COLORS = {
    "safe+success": "tab:blue",
    "safe+fail": "tab:cyan",
    "unsafe+success": "tab:orange",
    "unsafe+fail": "tab:red",
}


def format_stats(summaries: list[EpisodeSummary]) -> str:
    counts = category_counts(summaries)
    total = max(len(summaries), 1)
    lines = [f"{len(summaries)} episodes", "", "| category | episodes | share |", "|---|---:|---:|"]
    lines += [f"| {c} | {n} | {100 * n / total:.0f} % |" for c, n in counts.items()]
    if summaries:
        rewards = np.array([s.reward_return for s in summaries])
        costs = np.array([s.cost_return for s in summaries])
        lines += [
            "",
            f"reward return: mean {rewards.mean():.2f}, median {np.median(rewards):.1f}, "
            f"max {rewards.max():.0f}",
            f"cost return:   mean {costs.mean():.2f}, median {np.median(costs):.1f}, "
            f"max {costs.max():.0f}",
            "tasks: " + ", ".join(sorted({s.task for s in summaries})),
            "label sources: " + ", ".join(sorted({s.label_source for s in summaries})),
        ]
    return "\n".join(lines)


def plot_returns(summaries: list[EpisodeSummary], out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=120)
    rng = np.random.default_rng(0)  # a little jitter: returns are integers and overlap
    for category, color in CATEGORY_COLORS.items():
        pts = [(s.cost_return, s.reward_return) for s in summaries if s.category == category]
        if pts:
            c, r = np.array(pts).T
            ax.scatter(
                c + rng.uniform(-0.2, 0.2, len(c)),
                r + rng.uniform(-0.2, 0.2, len(r)),
                s=14,
                alpha=0.7,
                color=color,
                label=f"{category} ({len(pts)})",
            )
    ax.set_xlabel("cost return (steps in violation)")
    ax.set_ylabel("reward return (steps touching the target)")
    ax.set_title(f"{len(summaries)} trajectories")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
