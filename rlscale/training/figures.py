"""A training run's learning curve, from the SB3 logger's ``progress.csv`` (matplotlib imported lazily)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

PANELS = (  # (title, [(column, label, style)])
    ("return per episode", [("rollout/ep_rew_mean", "training episodes", "-"), ("eval/mean_reward", "held-out", "o-")]),
    ("cost per held-out episode, $", [("cost/usd", "policy", "o-"), ("cost/baseline_usd", "baseline", "--")]),
    ("SLO attainment, held-out", [("slo/attainment", "policy", "o-"), ("slo/baseline_attainment", "baseline", "--")]),
)
STEP_COLUMN = "time/total_timesteps"


def read_progress(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Each column's (env steps, value) points, skipping the rows where it was not logged."""
    series: dict[str, list[tuple[float, float]]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            step = row.get(STEP_COLUMN) or ""
            if not step:
                continue
            for column, value in row.items():
                if column != STEP_COLUMN and value not in ("", None):
                    series.setdefault(column, []).append((float(step), float(value)))
    return series


def learning_curve_plot(progress_csv: Path, path: Path, title: str, baseline: str | None = None) -> None:
    """Return, held-out cost and held-out SLO attainment against env steps; ``baseline`` names the reference
    agent's dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    series = read_progress(progress_csv)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(5.2 * len(PANELS), 3.8))
    for ax, (panel, lines) in zip(axes, PANELS, strict=True):
        for column, label, style in lines:
            points = [(x, y) for x, y in series.get(column, []) if math.isfinite(y)]
            if points:
                xs, ys = zip(*points, strict=True)
                name = f"{label} ({baseline})" if label == "baseline" and baseline else label
                ax.plot(xs, ys, style, label=name, markersize=3)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("env steps (15 s each)")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x / 1000:g}k" if x else "0"))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
