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


def sweep_plot(curves: dict[str, Path], settings: dict[str, str], path: Path, title: str) -> None:
    """Held-out return against env steps for every run of a sweep, one colour per setting (its seeds share it),
    so the spread between seeds sits beside the gap between settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    colours = {s: f"C{i % 10}" for i, s in enumerate(dict.fromkeys(settings.values()))}
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    labelled: set[str] = set()
    for run, csv_path in curves.items():
        points = [(x, y) for x, y in read_progress(csv_path).get("eval/mean_reward", []) if math.isfinite(y)]
        if not points:
            continue
        setting = settings[run]
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, "o-", color=colours[setting], markersize=3, alpha=0.8,
                label=None if setting in labelled else setting)  # fmt: skip
        labelled.add(setting)
    ax.set_title(f"{title}: held-out return per run (colour: setting)", fontsize=10)
    ax.set_xlabel("env steps (15 s each)")
    ax.set_ylabel("held-out return")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x / 1000:g}k" if x else "0"))
    ax.grid(alpha=0.3)
    if labelled:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
