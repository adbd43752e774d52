"""A comparison's figures: cost against SLO attainment (Pareto), and replicas and TTFT over time per agent.

matplotlib is imported lazily, as in ``rlscale.plots``. An agent keeps one colour
in every figure so the eye can follow it across panels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rlscale.experiments.runner import RunRecord
from rlscale.experiments.stats import Interval, pareto_front
from rlscale.plots import clock_label, mark_scale_events, scale_times, time_axis, time_unit, worst_hour
from rlscale.scenario import ScenarioConfig


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


@dataclass(frozen=True)
class AgentStyle:
    """How an agent is drawn in every figure: a colour, a marker (tells points apart where they overlap), and a line
    width that shrinks down the list so that a later agent's line shows inside an earlier one it coincides with."""

    color: tuple
    marker: str
    lw: float


def agent_styles(agents: Sequence[str]) -> dict[str, AgentStyle]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(agents) <= 10 else "tab20")
    widest, thinnest = 3.4, 1.2
    step = (widest - thinnest) / max(len(agents) - 1, 1)
    return {a: AgentStyle(cmap(i % cmap.N), MARKERS[i % len(MARKERS)], widest - i * step) for i, a in enumerate(agents)}


def _bars(interval: Interval, low: float, high: float, scale: float = 1.0) -> list[list[float]]:
    """Asymmetric error bars: the confidence interval cut to what the quantity can be (cost ≥ 0, share in [0, 1]);
    a Student-t interval over few seeds easily reaches past both."""
    if math.isnan(interval.half_width):
        return [[0.0], [0.0]]
    below = interval.mean - max(interval.low, low)
    above = min(interval.high, high) - interval.mean
    return [[below * scale], [above * scale]]


def pareto_plot(
    summary: dict[tuple[str, str], dict[str, Interval]],
    scenarios: Sequence[str],
    agents: Sequence[str],
    path: Path,
) -> None:
    """One panel per scenario: each agent's mean cost ($) against mean SLO attainment, with 95% CI bars both ways;
    the agents no other beats on both are joined as the Pareto front (cheaper is left, better is up)."""
    plt = _pyplot()
    ncols = min(2, len(scenarios))
    nrows = math.ceil(len(scenarios) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.6 * nrows + 0.8), squeeze=False)
    styles = agent_styles(agents)
    for ax, scenario in zip(axes.flat, scenarios, strict=False):
        present = [a for a in agents if (scenario, a) in summary]
        cost = [summary[scenario, a]["cost_usd"] for a in present]
        slo = [summary[scenario, a]["slo_attainment"] for a in present]
        for agent, c, s in zip(present, cost, slo, strict=True):
            style = styles[agent]
            ax.errorbar(
                c.mean, 100 * s.mean, xerr=_bars(c, 0.0, math.inf), yerr=_bars(s, 0.0, 1.0, 100), fmt=style.marker,
                ms=8, capsize=4, color=style.color, mec="white", mew=0.6, alpha=0.9, zorder=4,
            )  # fmt: skip
        front = pareto_front([(c.mean, s.mean) for c, s in zip(cost, slo, strict=True)])
        if front:
            xs, ys = [cost[i].mean for i in front], [100 * slo[i].mean for i in front]
            ax.plot(xs, ys, "-", color="0.55", lw=1.0, zorder=1)
            ax.scatter(xs, ys, s=260, facecolors="none", edgecolors="0.25", linewidths=1.2, zorder=3)
        ax.set_title(scenario, fontsize=11)
        ax.set_xlabel("cost, $ per run")
        ax.set_ylabel("SLO attained, % of requests")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(scenarios) :]:
        ax.set_visible(False)
    handles = [
        plt.Line2D([], [], marker=styles[a].marker, ls="", color=styles[a].color, markersize=8, label=a) for a in agents
    ]
    handles.append(
        plt.Line2D(
            [], [], marker="o", ls="-", color="0.55", mec="0.25", mfc="none", markersize=13, label="Pareto front"
        )
    )
    ncol = min(len(handles), 5)
    fig.suptitle("Cost against SLO attainment: mean and 95% CI over seeds (cheaper is left, better is up)", y=0.995)
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.965), ncol=ncol, fontsize=9, frameon=False)
    top = 1 - (0.05 + 0.035 * math.ceil(len(handles) / ncol)) / (nrows * 0.6 + 0.4)
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=110, bbox_inches="tight")  # a wide legend or title widens the canvas, never clipped
    plt.close(fig)


def timelines_plot(scenario: ScenarioConfig, records: Sequence[RunRecord], agents: Sequence[str], path: Path) -> None:
    """One scenario under one seed: traffic, then each agent's replicas (ready solid, desired dashed) and TTFT p99
    per interval, on a shared time axis in minutes, hours or days as the run is long."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    styles = agent_styles(agents)
    fig, (ax_rate, ax_rep, ax_ttft) = plt.subplots(
        3, 1, figsize=(11, 9.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.6, 1.6]}
    )
    most = 1
    unit_s, unit = time_unit(scenario.duration_s)
    for i, record in enumerate(records):
        rows = record.timeline
        if not rows:
            continue
        # A row describes the interval that ends at its t_s: draw it over that interval.
        edges_s = np.concatenate([[0.0], [r["t_s"] for r in rows]])
        edges = edges_s / unit_s
        style = styles[record.agent]
        if i == 0:  # arrivals come from the workload stream alone: the same for every agent under one seed
            arrivals = np.array([r["arrivals"] for r in rows]) / np.diff(edges_s)
            ax_rate.stairs(arrivals, edges, color="0.3", lw=1.4, baseline=None)
        ready, desired = [r["ready"] for r in rows], [r["desired"] for r in rows]
        most = max(most, *ready, *desired)
        ax_rep.stairs(ready, edges, color=style.color, lw=style.lw, baseline=None)
        ax_rep.stairs(desired, edges, color=style.color, lw=1.0, ls="--", alpha=0.8, baseline=None)
        ttft = [r["ttft_p99_s"] for r in rows]
        ax_ttft.plot(edges[1:], ttft, color=style.color, lw=style.lw * 0.7, marker=style.marker, ms=3)
    slo = scenario.slo.ttft_p99_s
    ax_rate.set_ylabel("arrivals, req/s")
    ax_rate.set_title("traffic (the same for every agent)", fontsize=9, loc="left")
    ax_rep.set_ylabel("replicas")
    ax_rep.set_ylim(0, most * 1.12 + 0.5)
    ax_rep.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_rep.set_title("replicas: ready (solid), desired (dashed)", fontsize=9, loc="left")
    ax_ttft.set_yscale("log")
    ax_ttft.axhline(slo, color="red", ls=":", lw=1.4)
    ax_ttft.set_title(f"TTFT p99 per interval; dotted red: the SLO, {slo:g} s", fontsize=9, loc="left")
    ax_ttft.set_ylabel("seconds")
    time_axis(ax_ttft, scenario.duration_s, unit_s, unit)
    ax_ttft.set_xlim(left=0)
    for ax in (ax_rate, ax_rep, ax_ttft):
        ax.grid(alpha=0.3)
    shown = [a for a in agents if any(r.agent == a for r in records)]
    handles = [plt.Line2D([], [], color=styles[a].color, lw=2.2, marker=styles[a].marker, ms=5, label=a) for a in shown]
    ncol = max(1, min(len(handles), 4))
    seed = records[0].seed if records else scenario.seed
    fig.suptitle(f"{scenario.name}, seed {seed}", y=0.995)
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.97), ncol=ncol, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.955 - 0.025 * (math.ceil(len(handles) / ncol) - 1)))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def worst_hours_plot(scenario: ScenarioConfig, records: Sequence[RunRecord], agents: Sequence[str], path: Path) -> None:
    """Each agent's own worst hour (``rlscale.plots.worst_hour``) of a long run, one column of panels per agent:
    arrivals against ready pods (solid) and desired (dashed), scale events ticked along the bottom, then TTFT p99
    per interval against the SLO. Where a day-long figure shows when a policy failed, this shows how."""
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plt = _pyplot()
    styles = agent_styles(agents)
    shown = [r for a in agents for r in records if r.agent == a and worst_hour(r.timeline, scenario.slo.ttft_p99_s)]
    ncols = min(3, max(1, len(shown)))
    nrows = math.ceil(len(shown) / ncols) if shown else 1
    fig = plt.figure(figsize=(5.4 * ncols, 4.4 * nrows + 0.5), layout="constrained")
    cells = fig.subfigures(nrows, ncols, squeeze=False, wspace=0.03, hspace=0.05).flat
    slo = scenario.slo.ttft_p99_s
    for panel, record in zip(cells, shown, strict=False):
        start, end = worst_hour(record.timeline, slo)
        rows = [r for r in record.timeline if start < r["t_s"] <= end]
        edges_s = np.array([start] + [r["t_s"] for r in rows])
        edges, style = edges_s / 60.0, styles[record.agent]
        ax_rep, ax_ttft = panel.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1.4, 1]})
        ax_rate = ax_rep.twinx()
        arrivals = np.array([r["arrivals"] for r in rows]) / np.diff(edges_s)
        ax_rate.stairs(arrivals, edges, color="0.6", lw=1.0, baseline=None)
        ax_rate.set_ylim(bottom=0)
        ax_rate.tick_params(labelsize=7)
        ax_rate.set_ylabel("arrivals, req/s", color="0.45", fontsize=8)
        ax_rep.stairs([r["ready"] for r in rows], edges, color=style.color, lw=2.0, baseline=None)
        ax_rep.stairs([r["desired"] for r in rows], edges, color=style.color, lw=1.0, ls="--", baseline=None)
        mark_scale_events(ax_rep, scale_times(rows), 60.0, color="k")
        ax_rep.set_ylim(bottom=0)
        ax_rep.set_ylabel("pods", fontsize=8)
        ttft = np.array([r["ttft_p99_s"] for r in rows], dtype=float)
        ax_ttft.plot(edges[1:], ttft, color=style.color, marker=style.marker, ms=3, lw=1.2)
        ax_ttft.axhline(slo, color="red", ls=":", lw=1.2)
        ax_ttft.set_yscale("log")
        ax_ttft.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # a label within any span
        ax_ttft.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax_ttft.yaxis.set_minor_formatter(NullFormatter())
        ax_ttft.set_ylabel("TTFT p99, s", fontsize=8)
        time_axis(ax_ttft, end - start, 60.0, "min", zoomed=True)
        for ax in (ax_rep, ax_ttft):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
        panel.suptitle(f"{record.agent}: {clock_label(start)}–{clock_label(end)}", fontsize=10)
    seed = records[0].seed if records else scenario.seed
    fig.suptitle(
        f"{scenario.name}, seed {seed}: each agent's worst hour (most requests in intervals over the TTFT SLO)\n"
        f"pods ready (solid) and desired (dashed), scale events ticked, arrivals in grey; TTFT p99, the SLO dotted red",
        fontsize=10,
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)
