"""Figures. matplotlib is imported lazily so the simulator never pays for it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlscale.serving.calibration import CalibrationResult


def calibration_plot(results: list[CalibrationResult], path: Path) -> None:
    """Predicted vs measured step time, one panel per calibration set, log-log with a ±10% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.5), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        for phase, marker in (("decode", "o"), ("prefill", "s")):
            pts = [f for f in result.fits if f.point.phase == phase]
            ax.scatter([f.point.ms for f in pts], [f.predicted_ms for f in pts], marker=marker, label=phase, s=22)
        lo = min(min(f.point.ms, f.predicted_ms) for f in result.fits) * 0.8
        hi = max(max(f.point.ms, f.predicted_ms) for f in result.fits) * 1.25
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="grey", alpha=0.15, label="±10%")
        ax.set(
            xscale="log",
            yscale="log",
            xlim=(lo, hi),
            ylim=(lo, hi),
            xlabel="measured ms",
            ylabel="predicted ms",
            title=f"{result.name} (mean |err| {result.errors().mean():.1%})",
        )
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_minor_formatter(NullFormatter())
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def timeline_plot(rows: list[dict[str, float]], path: Path, title: str, slo_ttft_s: float, slo_tpot_s: float) -> None:
    """Replicas, traffic, backlog, slots/HBM and latency over time, one panel each, shared time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = np.array([r["t_s"] for r in rows]) / 60.0
    col = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]} if rows else {}
    interval = (t[1] - t[0]) * 60 if len(t) > 1 else 60.0
    fig, axes = plt.subplots(5, 1, figsize=(11, 12), sharex=True)
    ax = axes[0]
    ax.step(t, col["desired"], where="post", label="desired", color="k", lw=1.2)
    ax.step(t, col["ready"], where="post", label="ready", lw=1.6)
    ax.step(t, col["pending"] + col["starting"], where="post", label="pending + starting", ls="--")
    ax.step(t, col["nodes"], where="post", label="nodes held", ls=":")
    if col["restarting"].any():
        ax.step(t, col["restarting"], where="post", label="restarting (OOM)", color="red", lw=1.2)
    ooms = col["ooms"] > 0
    if ooms.any():  # crashes marked where they happened, sized by how many
        ax.scatter(t[ooms], np.zeros(int(ooms.sum())), marker="x", color="red", s=20 + 15 * col["ooms"][ooms],
                   zorder=4, clip_on=False, label=f"OOM crashes ({int(col['ooms'].sum())})")  # fmt: skip
    ax.set_ylabel("replicas")
    ax.legend(loc="upper left", ncol=4, fontsize=8)
    ax = axes[1]
    ax.plot(t, col["arrivals"] / interval, label="arrivals")
    ax.plot(t, col["completed"] / interval, label="completed")
    ax.plot(t, col["failed"] / interval, label="failed", color="red")
    if col["truncated"].any():
        ax.plot(t, col["truncated"] / interval, label="prompt truncated", color="C4", ls="--")
    ax.set_ylabel("requests/s")
    ax.legend(loc="upper left", ncol=4, fontsize=8)
    ax = axes[2]
    ax.plot(t, col["prefill_backlog"], label="prefill backlog (all pods)")
    ax.plot(t, col["gateway_queue"], label="waiting at gateway")
    ax.set_ylabel("requests")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[3]
    ax.plot(t, col["slots_used"], label="slots used (mean over ready pods)")
    ax.plot(t, col["hbm_used_frac"], label="HBM used (mean)")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction")
    ax.legend(loc="lower left", fontsize=8)
    ax = axes[4]
    ax.semilogy(t, col["ttft_p50_s"], label="TTFT p50")
    ax.semilogy(t, col["ttft_p99_s"], label="TTFT p99")
    ax.semilogy(t, col["tpot_p99_s"], label="TPOT p99")
    ax.axhline(slo_ttft_s, color="C1", ls=":", lw=1, label=f"TTFT SLO {slo_ttft_s:g} s")
    ax.axhline(slo_tpot_s, color="C2", ls=":", lw=1, label=f"TPOT SLO {slo_tpot_s:g} s")
    ax.set_ylabel("seconds")
    ax.set_xlabel("time (min)")
    ax.legend(loc="upper left", ncol=5, fontsize=8)
    cost = col["cost_usd"][-1] if rows else 0.0
    fig.suptitle(f"{title} — cost ${cost:,.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tuning_plot(
    costs: list[float], attainments: list[float], slo_attainment: float, best: int | None, path: Path, title: str
) -> None:
    """A search's trials: mean cost against worst-seed SLO attainment, the target as a line, trial order as colour,
    the chosen setting ringed — the price of each extra point of attainment at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    points = ax.scatter(attainments, costs, c=range(len(costs)), cmap="viridis", s=22, zorder=3)
    fig.colorbar(points, ax=ax, label="trial")
    ax.axvline(slo_attainment, color="C3", linestyle="--", linewidth=1, label=f"target {slo_attainment:.1%}")
    if best is not None:
        ax.scatter([attainments[best]], [costs[best]], s=140, facecolors="none", edgecolors="C3", linewidths=1.5,
                   zorder=4, label="cheapest feasible")  # fmt: skip
    ax.set_xlabel("SLO attainment, worst seed")
    ax.set_ylabel("cost, $ (mean over seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
