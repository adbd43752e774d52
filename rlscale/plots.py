"""Figures. matplotlib is imported lazily so the simulator never pays for it."""

from __future__ import annotations

import itertools
import math
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


# A time axis reads in minutes up to 3 hours, in hours up to 3 days, in days beyond: a day in minutes is ticks at
# 200, 400, ... that nobody can place in the day.
TIME_UNITS = ((3 * 3600.0, 60.0, "min"), (3 * 86400.0, 3600.0, "h"), (math.inf, 86400.0, "days"))
ZOOM_AFTER_S = 3 * 3600.0  # a run longer than this gets a second figure on its worst hour
HOUR_S = 3600.0


def time_unit(span_s: float) -> tuple[float, str]:
    """Seconds per unit of a time axis spanning ``span_s``, and the unit's name."""
    return next((unit, name) for limit, unit, name in TIME_UNITS if span_s <= limit)


def scale_times(rows: list[dict[str, float]]) -> list[float]:
    """When the desired count changed: the end of each timeline row whose ``desired`` differs from the row before."""
    return [b["t_s"] for a, b in itertools.pairwise(rows) if b["desired"] != a["desired"]]


def worst_hour(rows: list[dict[str, float]], slo_ttft_s: float, span_s: float = HOUR_S) -> tuple[float, float] | None:
    """The ``span_s`` window of rows where the SLOs suffered most, (start, end) s: the most requests completed in
    intervals whose TTFT p99 broke the objective, plus failed ones; with none anywhere, the highest summed TTFT p99.
    None when the run is not longer than the window."""
    import numpy as np

    t = np.array([r["t_s"] for r in rows], dtype=float)
    if len(t) < 2 or t[-1] <= span_s:
        return None
    interval = t[1] - t[0]
    ttft = np.nan_to_num(np.array([r["ttft_p99_s"] for r in rows], dtype=float))
    late = np.array([r["completed"] for r in rows], dtype=float) * (ttft > slo_ttft_s)
    badness = late + np.array([r["failed"] for r in rows], dtype=float)
    if not badness.any():
        badness = ttft
    width = max(1, round(span_s / interval))
    totals = np.convolve(badness, np.ones(width), mode="valid")  # totals[k]: rows k .. k + width - 1
    first = int(np.argmax(totals))
    return float(t[first] - interval), float(t[first + width - 1])


def clock_label(t_s: float) -> str:
    """Time since the run started as ``[day d ]hh:mm`` (day 1 is the first): the zoom's ticks."""
    day, rest = divmod(round(t_s), 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    return f"day {day + 1} {text}" if day else text


def time_axis(ax, span_s: float, unit_s: float, name: str, zoomed: bool = False) -> None:
    """Ticks a reader can place: whole hours (1, 2, 3, 6 or 12 apart) or days on a long run, clock times on a zoom."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    if zoomed:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: clock_label(x * unit_s)))
        ax.set_xlabel("simulated time (hh:mm)")
        return
    if name == "h":
        ax.xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 3, 6, 10], integer=True))
    elif name == "days":
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    ax.set_xlabel(f"time ({name})")


def mark_scale_events(ax, times_s: list[float], unit_s: float, color: str = "0.35") -> None:
    """Thin ticks along the bottom of ``ax`` where the desired count changed: how often a policy moved."""
    if times_s:
        ax.vlines([t / unit_s for t in times_s], 0, 0.045, transform=ax.get_xaxis_transform(), color=color, lw=0.6)


def timeline_plot(
    rows: list[dict[str, float]], path: Path, title: str, slo_ttft_s: float, slo_tpot_s: float
) -> list[Path]:
    """Replicas, traffic, backlog, slots/HBM and latency over time, one panel each, shared time axis (minutes, hours
    or days as the run is long), scale events and OOM crashes marked. A run longer than ``ZOOM_AFTER_S`` also gets
    ``<stem>_worst_hour.png``, the same panels over its :func:`worst_hour`: a day's figure shows when it went wrong,
    the zoom shows how. Returns the files written."""
    written = [path]
    span_s = rows[-1]["t_s"] if rows else 0.0
    unit_s, name = time_unit(span_s)
    _timeline_figure(rows, path, title, slo_ttft_s, slo_tpot_s, unit_s, name)
    hour = worst_hour(rows, slo_ttft_s) if span_s > ZOOM_AFTER_S else None
    if hour is not None:
        zoom = path.with_name(f"{path.stem}_worst_hour{path.suffix}")
        shown = [r for r in rows if hour[0] < r["t_s"] <= hour[1]]
        label = f"{title} — worst hour, {clock_label(hour[0])}–{clock_label(hour[1])}"
        _timeline_figure(shown, zoom, label, slo_ttft_s, slo_tpot_s, 60.0, "min", window=hour)
        written.append(zoom)
    return written


def _timeline_figure(
    rows: list[dict[str, float]], path: Path, title: str, slo_ttft_s: float, slo_tpot_s: float, unit_s: float,
    unit: str, window: tuple[float, float] | None = None,
) -> None:  # fmt: skip
    """The panels of :func:`timeline_plot` over ``rows``; with a ``window`` (start, end) s, zoomed on it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = np.array([r["t_s"] for r in rows]) / unit_s
    col = {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]} if rows else {}
    interval = (t[1] - t[0]) * unit_s if len(t) > 1 else 60.0
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
    events = scale_times(rows)
    mark_scale_events(ax, events, unit_s)
    ax.plot([], [], "|", color="0.35", label=f"scale events ({len(events)})")
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
    ax.legend(loc="upper left", ncol=5, fontsize=8)
    time_axis(ax, t[-1] * unit_s if len(t) else 0.0, unit_s, unit, zoomed=window is not None)
    if window is not None:
        ax.set_xlim(window[0] / unit_s, window[1] / unit_s)
    cost = col["cost_usd"][-1] if rows else 0.0
    fig.suptitle(f"{title} — cost ${cost:,.2f}" if window is None else title)
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


def capacity_plot(
    title: str,
    points: list[dict],
    knee_rate: float | None,
    slo_ttft_s: float,
    slo_tpot_s: float,
    path: Path,
) -> None:
    """One batch size's load sweep (rlscale capacity): p99 TTFT and TPOT against their SLOs, throughput, and the
    guide's three metrics, against the offered rate, the knee marked. ``points``: LoadPoint records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted(points, key=lambda p: p["rate_per_s"])
    rate = [p["rate_per_s"] for p in pts]
    fig, (lat, tput, gauges) = plt.subplots(1, 3, figsize=(15, 4.2))
    lat.plot(rate, [p["ttft_s"]["p99"] for p in pts], "o-", label="TTFT p99")
    lat.plot(rate, [p["tpot_s"]["p99"] for p in pts], "s-", label="TPOT p99")
    lat.axhline(slo_ttft_s, color="C0", ls=":", label=f"TTFT SLO {slo_ttft_s:g} s")
    lat.axhline(slo_tpot_s, color="C1", ls=":", label=f"TPOT SLO {slo_tpot_s:g} s")
    lat.set(yscale="log", xlabel="offered req/s", ylabel="s", title="latency")
    tput.plot(rate, [p["throughput_req_per_s"] for p in pts], "o-", label="completed")
    tput.plot(rate, rate, "k:", lw=0.8, label="offered")
    tput.set(xlabel="offered req/s", ylabel="req/s", title="throughput")
    gauges.plot(rate, [p["slots_used"] for p in pts], "o-", label="slots used (fraction)")
    gauges.plot(rate, [p["hbm_used_frac"] for p in pts], "s-", label="HBM used (fraction)")
    backlog = gauges.twinx()
    backlog.plot(rate, [p["prefill_backlog"] for p in pts], "^-", color="C2", label="prefill backlog")
    backlog.set(ylabel="prefill backlog (requests)", yscale="symlog")  # from ~0 to thousands past the knee
    gauges.set(xlabel="offered req/s", ylabel="fraction", ylim=(0, 1.05), title="the guide's metrics (means)")
    gauges.legend(loc="upper left", handles=gauges.get_lines() + backlog.get_lines())
    for ax in (lat, tput, gauges):
        if knee_rate is not None:
            ax.axvline(knee_rate, color="red", lw=1, ls="--", label=f"knee {knee_rate:.2f} req/s")
        ax.grid(alpha=0.3)
    lat.legend(fontsize=8)
    tput.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
