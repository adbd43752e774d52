"""Write a comparison to disk: every run's numbers (CSV), its timelines, and a report with CIs over seeds."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlscale.experiments.config import MIN_SEEDS_FOR_CI, Experiment
from rlscale.experiments.runner import RunRecord
from rlscale.experiments.stats import CONFIDENCE, Interval, SavingShare
from rlscale.timeline import COLUMNS as TIMELINE_COLUMNS


@dataclass(frozen=True)
class ReportColumn:
    """One column of a scenario's table: its header, the results.csv column it summarises, how to print it."""

    header: str
    column: str
    fmt: Callable[[float], str]


def _fixed(digits: int) -> Callable[[float], str]:
    return lambda x: f"{x:,.{digits}f}"


def _percent(x: float) -> str:
    return f"{100 * x:.2f}"


SHARE_POSITION = 3  # the share of the oracle's saving follows cost and SLO attainment, the axes it is measured on
REPORT_COLUMNS = (  # the two axes of the trade-off first, then what went wrong, then the latency detail
    ReportColumn("cost $", "cost_usd", _fixed(2)),
    ReportColumn("chip-hours", "chip_hours", _fixed(2)),
    ReportColumn("SLO attained %", "slo_attainment", _percent),
    ReportColumn("TTFT SLO %", "ttft_attainment", _percent),
    ReportColumn("TPOT SLO %", "tpot_attainment", _percent),
    ReportColumn("e2e SLO %", "e2e_attainment", _percent),
    ReportColumn("failed", "failed", _fixed(1)),
    ReportColumn("unfinished", "in_flight", _fixed(1)),
    ReportColumn("prompts truncated", "truncated_requests", _fixed(1)),
    ReportColumn("OOMs", "ooms", _fixed(1)),
    ReportColumn("scale events", "scale_events", _fixed(1)),
    ReportColumn("planning s", "planning_s", _fixed(1)),
    *(
        ReportColumn(f"{label} p{q} s", f"{column}_p{q}_s", _fixed(3))
        for label, column in (("TTFT", "ttft"), ("TPOT", "tpot"), ("latency", "latency"))
        for q in (50, 95, 99)
    ),
)


def cell(interval: Interval, fmt: Callable[[float], str]) -> str:
    """``mean ± half-width``; a lone value without the ±; ``n/a`` when no run measured it."""
    if interval.n == 0:
        return "n/a"
    if math.isnan(interval.half_width):
        return fmt(interval.mean)
    return f"{fmt(interval.mean)} ± {fmt(interval.half_width)}"


SHARE_HEADER = "oracle's saving %"


def share_cell(share: SavingShare | None) -> str:
    """The share of the oracle's saving of the mean costs, in % (the static count 0, the oracle 100), and in brackets
    the 95% interval of the per-seed shares; why there is none when there is none."""
    if share is None:
        return "n/a"
    if share.missing is not None:
        return f"n/a: {share.missing}"
    text = f"{100 * share.mean:.0f}"
    if math.isfinite(share.per_seed.half_width):
        text += f" [{100 * share.per_seed.low:.0f}, {100 * share.per_seed.high:.0f}]"
    return text


def share_note(static: str, oracle: str) -> str:
    """What the share column says, under each table that has one."""
    return (
        f"{SHARE_HEADER}: ({static} − agent) / ({static} − {oracle}) on cost: of what the oracle saves over the static "
        f"count, the share this agent saves too (0 costs as much as {static}, 100 as little as {oracle}, below 0 "
        f"more than {static}); the mean costs' share, then in brackets the {CONFIDENCE:.0%} interval of the per-seed "
        "shares (a seed's runs share their arrivals). Only where the agent's mean SLO attainment is at least "
        f"{static}'s: *n/a: misses* where it saves by missing more."
    )


SILENCE_HEADER = "| agent | silent min | cost in silences $ | cost outside them $ |"
SILENCE_SHARE = " oracle's saving % outside them |"


def silence_lines(
    scenario: str,
    agents: Sequence[str],
    summary: Mapping[tuple[str, str], Mapping[str, Interval]],
    outside: Mapping[tuple[str, str], SavingShare] | None,
    static: str | None,
) -> list[str]:
    """Under a scenario's table, when its runs had time without an arrival: what each agent spent in it and outside
    it, and (with ``oracle_saving``) each one's share of the oracle's saving outside it, the share of cost alone,
    marked where the agent's SLO attainment is below the static count's. None when nothing was silent."""
    rows = {a: summary[scenario, a] for a in agents if (scenario, a) in summary and "silent_s" in summary[scenario, a]}
    silent = [r["silent_s"].mean for r in rows.values() if r["silent_s"].n]
    if not silent or max(silent) <= 0:
        return []
    attained = {a: r["slo_attainment"].mean for a, r in rows.items()}
    lines = [
        "",
        f"**Silences.** {max(silent) / 60:,.0f} min of this scenario had no arrival (timeline intervals that counted "
        "none; in a replayed production trace, mostly recording gaps). A planner that knows the run can scale "
        "through them to one pod and back just in time; a causal policy cannot tell a gap from a lull until traffic "
        "returns. What each agent spent in them and outside them"
        + (", and its share of the oracle's saving outside them (on cost alone: *at lower attainment* where its SLO "
        f"attainment is below {static}'s):" if outside is not None else ":"),
        "",
        SILENCE_HEADER + (SILENCE_SHARE if outside is not None else ""),
        "|---|---:|---:|---:|" + ("---:|" if outside is not None else ""),
    ]  # fmt: skip
    for agent, row in rows.items():
        minutes = row["silent_s"]
        cells = [
            cell(Interval(minutes.mean / 60, minutes.half_width / 60, minutes.n), _fixed(0)),
            cell(row["silent_cost_usd"], _fixed(2)),
            cell(row["traffic_cost_usd"], _fixed(2)),
        ]
        if outside is not None:
            share = share_cell(outside.get((scenario, agent)))
            lower = static in attained and attained[agent] < attained[static]
            cells.append(share + (", *at lower attainment*" if lower and not share.startswith("n/a") else ""))
        lines.append(f"| {agent} | " + " | ".join(cells) + " |")
    return lines


POOL_NOTE = (
    "Rows in bold pool one training recipe's policies, each trained under another seed: each cell is the mean over the "
    f"policies of their means over the evaluation seeds, ± the {CONFIDENCE:.0%} interval over the policies (Student t, "
    "training seeds − 1 degrees of freedom), so it holds the spread of training as well as of the traffic; the share "
    "of the oracle's saving is the pooled mean cost's, in brackets the interval of the policies' shares."
)


@dataclass(frozen=True)
class PooledRow:
    """A ``training_seeds`` row of one scenario: the policies it pools (those that ran), its intervals over them and
    its share of the oracle's saving (None without ``oracle_saving``)."""

    members: tuple[str, ...]
    intervals: dict[str, Interval]
    share: SavingShare | None


def write_results_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def write_timelines(folder: Path, records: Sequence[RunRecord]) -> dict[str, Path]:
    """``<scenario>__<agent>__seed<k>.csv`` per run (the simulator's ground truth, one row per interval)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for record in records:
        path = folder / f"{record.label}.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=TIMELINE_COLUMNS)
            writer.writeheader()
            writer.writerows(record.timeline)
        paths[record.label] = path
    return paths


def write_manifest(
    path: Path, experiment: Experiment, git_commit: str, wall_s: float, workers: int, executor: str = "local",
    skipped: int = 0,
) -> None:  # fmt: skip
    """``experiment.json``: the experiment as run (resolved paths, seeds), the command and commit: the run describes
    itself."""
    manifest = {
        "experiment": experiment.config.model_dump(mode="json"),
        "file": str(experiment.path),
        "scenario_paths": [str(p) for p in experiment.scenario_paths],
        "agent_paths": [str(p) for p in experiment.agent_paths],
        "workers": workers,
        "executor": executor,
        "resumed_cells": skipped,
        "wall_s": wall_s,
        "command": sys.argv,
        "git_commit": git_commit,
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def missed_targets(records: Sequence[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    """Per (scenario, agent), the runs whose planner's checked plan missed its own target (the oracle within its
    max_replicas): such a row cannot anchor the comparison, and the report must say so."""
    missed: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        if record.plan_met_target is False:
            missed.setdefault((record.scenario, record.agent), []).append(record)
    return missed


def missed_line(agent: str, runs: Sequence[RunRecord]) -> str:
    """The sentence under a scenario's table for an agent whose plan missed its target on ``runs``."""
    plans = [r.plan or {} for r in runs]
    target = plans[0].get("target", math.nan)
    attained = ", ".join(f"{100 * p.get('attainment', math.nan):.1f}%" for p in plans)
    return (
        f"**{agent} missed its own {100 * target:g}% SLO-attainment target** on seed(s) "
        f"{', '.join(str(r.seed) for r in runs)}: its checked plan attained {attained} at best within its "
        "max_replicas, so its row is no reference that meets the SLOs."
    )


def report_markdown(
    experiment: Experiment,
    summary: dict[tuple[str, str], dict[str, Interval]],
    *,
    runs: int,
    git_commit: str,
    wall_s: float,
    figures: Sequence[str] = (),
    missed: Mapping[tuple[str, str], Sequence[RunRecord]] | None = None,
    shares: Mapping[tuple[str, str], SavingShare] | None = None,
    pools: Mapping[tuple[str, str], PooledRow] | None = None,
    outside_shares: Mapping[tuple[str, str], SavingShare] | None = None,
) -> str:
    """``report.md``: one table per scenario, one row per agent, each cell the mean and 95% CI over seeds
    (``summary`` as ``stats.summarize`` gives it, over at least the ``REPORT_COLUMNS``); ``missed``: per (scenario,
    agent), the runs whose planner missed its own target (:func:`missed_targets`), said next to their rows; ``shares``:
    per (scenario, agent), its share of the oracle's saving (``stats.saving_shares``), a column when the experiment
    names its ``oracle_saving`` references; ``pools``: per (scenario, row of ``training_seeds``), its pooled row;
    ``outside_shares``: the shares on the cost outside silences (:func:`silence_lines`)."""
    missed = missed or {}
    reference = experiment.config.oracle_saving
    columns: list[str] = [c.header for c in REPORT_COLUMNS]
    if reference is not None:
        columns.insert(SHARE_POSITION, SHARE_HEADER)
    seeds = experiment.seeds
    lines = [
        f"# Comparison: {experiment.name}",
        "",
        *([experiment.config.description, ""] if experiment.config.description else []),
        f"- experiment: `{experiment.path}`; git commit `{git_commit or 'unknown'}`",
        f"- {len(experiment.scenarios)} scenarios × {len(experiment.agent_paths)} agents × {len(seeds)} seeds "
        f"({', '.join(map(str, seeds))}) = {runs} runs in {wall_s:,.1f} s",
        f"- each cell: mean ± half-width of the {CONFIDENCE:.0%} confidence interval over seeds "
        f"(Student t, n−1 degrees of freedom); latency percentiles are per run, then averaged",
        "- SLO attained: requests completed within every objective (TTFT, TPOT, and e2e when the scenario sets one), "
        "over requests that ended plus those still waiting for a first token past the TTFT objective when the run "
        "stopped (they have missed it already); *unfinished* counts every request still in the system at the end",
    ]
    if len(seeds) < MIN_SEEDS_FOR_CI:
        lines.append(
            f"- **only {len(seeds)} seed(s): too few for the intervals to mean much (use ≥{MIN_SEEDS_FOR_CI})**"
        )
    for scenario in experiment.scenarios:
        slo = scenario.slo
        lines += [
            "",
            f"## {scenario.name}",
            "",
            f"{scenario.description or ''} {scenario.duration_s:g} s simulated; SLOs: TTFT ≤ {slo.ttft_p99_s:g} s, "
            f"TPOT ≤ {slo.tpot_p99_s:g} s.".strip(),
            "",
            "| agent | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for agent in experiment.agent_names:
            share = (shares or {}).get((scenario.name, agent))
            cells = _row_cells(summary.get((scenario.name, agent), {}), share, with_share=reference is not None)
            flag = " **(missed its target)**" if missed.get((scenario.name, agent)) else ""
            lines.append(f"| {agent}{flag} | " + " | ".join(cells) + " |")
        pooled_here = [(row, pool) for (name, row), pool in (pools or {}).items() if name == scenario.name]
        for row, pool in pooled_here:
            cells = _row_cells(pool.intervals, pool.share, with_share=reference is not None)
            label = f"**{row}** ({len(pool.members)} training seeds: {', '.join(pool.members)})"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        if reference is not None:
            lines += ["", share_note(reference.static, reference.oracle)]
        if pooled_here:
            lines += ["", POOL_NOTE]
        for agent in experiment.agent_names:
            if runs := missed.get((scenario.name, agent)):
                lines += ["", missed_line(agent, runs)]
        static = reference.static if reference is not None else None
        lines += silence_lines(scenario.name, experiment.agent_names, summary, outside_shares, static)
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def _row_cells(intervals: Mapping[str, Interval], share: SavingShare | None, *, with_share: bool) -> list[str]:
    """A table row's cells after its name: each report column's interval, the share of the oracle's saving third."""
    cells = [cell(intervals[c.column], c.fmt) if c.column in intervals else "n/a" for c in REPORT_COLUMNS]
    if with_share:
        cells.insert(SHARE_POSITION, share_cell(share))
    return cells
