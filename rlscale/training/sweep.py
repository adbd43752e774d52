"""Training sweeps: one agent file × a grid of settings × seeds, every training run a keyed cell on an executor.

Workers train untracked, in a scratch folder, and send the run folder's files back (a policy is kilobytes); the
driver writes them to ``out/runs/<cell>/``, logs each as an MLflow run (a child of the sweep's run, tagged with its
cell) and registers its policy. So only the driver needs MLflow — a SQLite store never sees two writers, and Ray
workers on a cluster need neither the store nor a shared disk — and a run is logged once: a resumed sweep skips
the cells stored in ``out/cells/``, and a cell whose run was logged before the store recorded it finds that run.

A sweep is a grid, not an adaptive search, so each run is one plain Ray task (reserving the agent's ``n_envs`` CPUs)
rather than a Ray Tune trial: Tune's schedulers earn their keep by stopping trials early, which would make a sweep's
result depend on the cluster's timing, and its trial folders and logging would duplicate ``rlscale train``'s.

The sweep's best setting is the one with the highest mean held-out return over seeds (the reward the agents are
trained on) — unless the grid changes the reward itself, when returns are on different scales and the rule is the
cheapest held-out cost at the target SLO attainment (``--select``); the registry alias goes to that setting's best
seed. ``sweep.csv``, ``sweep.md`` and ``sweep.png`` say how every cell did.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlscale.experiments.cells import CellStore, run_cells
from rlscale.experiments.config import MIN_SEEDS_FOR_CI
from rlscale.experiments.executors import LocalExecutor, RayExecutor
from rlscale.experiments.runner import RunFailed
from rlscale.experiments.stats import mean_ci
from rlscale.training.run_files import PROGRESS_CSV, RUN_FILES

SWEEP_CSV, SWEEP_MD, SWEEP_PNG = "sweep.csv", "sweep.md", "sweep.png"
SCENARIO_PREFIX = "scenario."  # --set scenario.reward.slo_violation_weight=[…] sets the scenario's field
CELL_TAG = "rlscale.cell"  # <sweep>/<cell label>: how a cell finds the MLflow run it logged before
Grid = list[tuple[str, list[Any]]]  # (dotted spec path, values)
GRID_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")  # hyperparams.gamma, scenario.reward.x


def parse_grid(items: Sequence[str]) -> Grid:
    """``--set`` options: ``path=value`` where the value is YAML; a list is the axis's values (``[1e-4, 3e-4]``),
    anything else a single value (a list-valued setting is a list of one list: ``[[64, 64]]``). A path is a field
    of the agent file's ``spec`` (``hyperparams.gamma``) or, under ``scenario.``, of the scenario
    (``scenario.reward.slo_violation_weight``)."""
    grid: Grid = []
    for item in items:
        path, sep, text = item.partition("=")
        path = path.strip()
        if not sep or not GRID_PATH.fullmatch(path):
            raise ValueError(f"--set {item!r}: expected <spec path>=<YAML value>, e.g. hyperparams.gamma=[0.99, 0.995]")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {path}: not a YAML value: {text!r} ({exc})") from None
        values = [as_number(v) for v in (value if isinstance(value, list) else [value])]
        if not values:
            raise ValueError(f"--set {path}: an empty list sweeps nothing")
        if any(path == seen for seen, _ in grid):
            raise ValueError(f"--set {path}: given twice")
        grid.append((path, values))
    return grid


def as_number(value: Any) -> Any:
    """YAML 1.1 (PyYAML) reads ``1e-4`` as a string (it wants ``1.0e-4``); a sweep means the number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def settings_of(grid: Grid) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of the grid's values, first axis slowest; one empty setting for an empty grid."""
    return [tuple(zip([p for p, _ in grid], combo, strict=True)) for combo in itertools.product(*(v for _, v in grid))]


def setting_label(setting: Sequence[tuple[str, Any]]) -> str:
    """``learning_rate=0.0001__ent_coef=0``: each path's last part and its value, file-safe; ``base`` when empty."""
    if not setting:
        return "base"
    parts = []
    for path, value in setting:
        text = re.sub(r'[\[\]"{} ]', "", json.dumps(value, separators=(",", ":")))  # [64, 64] -> 64,64
        parts.append(f"{path.rsplit('.', 1)[-1]}={re.sub(r'[^A-Za-z0-9_=.,+:-]+', '_', text)}")
    return "__".join(parts)


@dataclass(frozen=True)
class TrainCell:
    """One training run of a sweep, and its key: the sweep, the files, the seed, the setting and the run length."""

    sweep: str
    agent_path: str
    scenario_path: str
    seed: int
    setting: tuple[tuple[str, Any], ...] = ()
    timesteps: int | None = None
    eval_every: int | None = None

    @property
    def setting_label(self) -> str:
        return setting_label(self.setting)

    @property
    def label(self) -> str:
        return f"{self.setting_label}__seed{self.seed}"


def split_setting(cell: TrainCell) -> tuple[dict[str, Any], Any]:
    """The setting's agent-spec fields, and the scenario to train on: the file, or with the setting's
    ``scenario.*`` fields set (reward weights, randomization …)."""
    from rlscale.envs.jetstream import resolve_scenario
    from rlscale.scenario import with_fields

    agent_fields = {p: v for p, v in cell.setting if not p.startswith(SCENARIO_PREFIX)}
    scenario_fields = {p.removeprefix(SCENARIO_PREFIX): v for p, v in cell.setting if p.startswith(SCENARIO_PREFIX)}
    if not scenario_fields:
        return agent_fields, cell.scenario_path
    return agent_fields, with_fields(resolve_scenario(cell.scenario_path), scenario_fields)


def train_cell(cell: TrainCell, command: str = "") -> dict[str, Any]:
    """Train one cell untracked in a scratch folder; a worker's whole job. Returns its summary and the run folder's
    files (bytes, checkpoints left out)."""
    from rlscale.training.train import train

    try:
        agent_fields, scenario = split_setting(cell)
        with tempfile.TemporaryDirectory(prefix="rlscale-sweep-") as scratch:
            result = train(
                cell.agent_path, scenario, cell.timesteps, cell.seed, None, Path(scratch) / cell.label,
                cell.eval_every, progress=False, overrides=agent_fields, command=command or None,
                run_name=f"{cell.sweep}__{cell.label}",
            )  # fmt: skip
            files = {name: (result.out / name).read_bytes() for name in RUN_FILES if (result.out / name).exists()}
    except Exception as exc:
        # A plain message naming the cell, which pickles whatever the original held; the traceback rides along.
        failed = RunFailed(f"training {cell.sweep}, {cell.label}: {type(exc).__name__}: {exc}")
        failed.add_note(traceback.format_exc())
        raise failed from None
    final = result.evaluations[-1] if result.evaluations else None
    return {
        "run_name": result.run_name,
        "timesteps": result.timesteps,
        "wall_s": result.wall_s,
        "eval_mean_reward": final.mean_reward if final else math.nan,
        "eval_std_reward": final.std_reward if final else math.nan,
        "eval_kpis": dict(final.kpis) if final else {},
        "baseline_kpis": dict(result.baseline_kpis or {}),
        "params": {k: str(v) for k, v in result.params.items()},
        "obs_dim": result.obs_dim,
        "files": files,
    }


@dataclass
class SweepResult:
    """A finished sweep: its cells (in grid order), their records, the best setting and where everything is."""

    name: str
    out: Path
    cells: list[TrainCell]
    records: list[dict[str, Any]]
    wall_s: float
    executor: str
    skipped: int = 0
    selection: str = "return"  # how the best setting is chosen: see _choose_champion
    slo_attainment: float = 0.99
    best_setting: str | None = None
    champion: TrainCell | None = None
    registered_model: str | None = None
    alias: str | None = None
    champion_version: str | None = None
    tracking_uri: str | None = None
    mlflow_run_id: str | None = None
    files: dict[str, Path] = field(default_factory=dict)


def plan_cells(
    agent: str | Path,
    scenario: str | Path,
    seeds: Sequence[int],
    grid: Grid,
    timesteps: int | None,
    eval_every: int | None,
    name: str,
) -> tuple[list[TrainCell], int]:
    """The sweep's cells, setting by setting then seed by seed, and the CPUs a cell needs (the largest ``n_envs``
    of any setting). Every setting is checked (the agent file with the overrides applied) before anything runs, so
    a typo fails in a second, not after an hour."""
    from rlscale.training.train import plan_run

    if not seeds:
        raise ValueError("--seeds: give at least one")
    cells, cpus = [], 1
    for setting in settings_of(grid):
        setting_cells = [
            TrainCell(name, str(agent), str(scenario), seed, setting, timesteps, eval_every) for seed in seeds
        ]
        agent_fields, built = split_setting(setting_cells[0])
        plan = plan_run(
            agent, built, timesteps, seeds[0], Path(tempfile.gettempdir()), eval_every, overrides=agent_fields
        )
        cpus = max(cpus, plan.spec.n_envs)
        cells += setting_cells
    return cells, cpus


def sweep(
    agent: str | Path,
    scenario: str | Path,
    seeds: Sequence[int],
    grid: Grid | None = None,
    *,
    timesteps: int | None = None,
    eval_every: int | None = None,
    out: Path | None = None,
    name: str | None = None,
    tracking_uri: str | None = None,
    model_name: str | None = None,
    alias: str = "champion",
    executor: LocalExecutor | RayExecutor | None = None,
    resume: bool = False,
    progress: bool = True,
    select: str | None = None,
    slo_attainment: float = 0.99,
) -> SweepResult:
    """Train every (setting, seed) cell on ``executor`` (default: here, one at a time), write the sweep's files
    in ``out`` and, with ``tracking_uri``, log every cell and the sweep to MLflow; see the module docstring."""
    from tqdm import tqdm

    from rlscale.envs.jetstream import resolve_scenario

    if resume and out is None:
        raise ValueError("--resume needs --out: the folder of the sweep to resume")
    if alias.lower() == "latest":
        raise ValueError("alias: 'latest' is reserved by MLflow (models:/<name>/latest is the newest version)")
    grid = grid or []
    selection = selection_for(grid, select)
    scenario_name = resolve_scenario(scenario).name
    agent_name = Path(agent).stem  # as agent files name runs and models
    name = name or f"{scenario_name}__{agent_name}"
    out = Path(out) if out is not None else Path("runs") / "sweeps" / f"{name}__{time.strftime('%Y%m%d-%H%M%S')}"
    cells, cpus = plan_cells(agent, scenario, seeds, grid, timesteps, eval_every, name)
    store = CellStore(out / "cells")
    skipped = store.count(cells) if resume else 0
    executor = executor or LocalExecutor(1)
    result = SweepResult(name, out, cells, [], 0.0, executor.name, skipped, selection, slo_attainment)
    result.registered_model = model_name or f"rlscale-{agent_name}-{scenario_name}"
    tracker = None
    if tracking_uri is not None:
        from rlscale.training.sweep_tracking import SweepTracker

        tracker = SweepTracker.open(tracking_uri, f"train-{scenario_name}", out, resume, result.registered_model)
        tracker.log_sweep_params(name, agent, scenario, seeds, grid, executor.name, len(cells), {
            "select": selection, "slo_attainment": slo_attainment,
        })  # fmt: skip

    def collect(i: int, record: dict[str, Any]) -> dict[str, Any]:
        cell = cells[i]
        folder = out / "runs" / cell.label
        folder.mkdir(parents=True, exist_ok=True)
        for file_name, data in record.pop("files").items():
            (folder / file_name).write_bytes(data)
        record["folder"] = str(folder)
        if tracker is not None:
            record["run_id"], record["model_version"] = tracker.log_cell(cell, folder, record)
        return record

    start = time.perf_counter()
    call = functools.partial(train_cell, command=shlex.join(sys.argv))  # picklable: a module-level function
    try:
        with tqdm(total=len(cells), unit="run", desc=f"sweep {name}", disable=not progress) as bar:
            result.records = run_cells(
                executor, call, cells, cells, store, resume, on_done=bar.update, collect=collect, cpus=cpus
            )
    except BaseException as exc:
        if tracker is not None:
            tracker.abort("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    result.wall_s = time.perf_counter() - start
    _choose_champion(result)
    result.files = write_sweep_files(result)
    if tracker is not None:
        result.alias = alias
        result.champion_version = tracker.finish(result, alias)
        result.tracking_uri, result.mlflow_run_id = tracking_uri, tracker.run_id
    return result


SELECTIONS = ("return", "cost-at-slo")
COST, ATTAINMENT = "cost/usd", "slo/attainment"  # held-out KPIs as the evaluation logs them


def selection_for(grid: Grid, select: str | None) -> str:
    """How the best setting is chosen: by held-out return, unless the grid changes the reward, when returns are on
    different scales and only the KPIs compare (``cost-at-slo``); asking for ``return`` then is an error."""
    changes_reward = any(path.startswith(f"{SCENARIO_PREFIX}reward") for path, _ in grid)
    if select is None:
        return "cost-at-slo" if changes_reward else "return"
    if select not in SELECTIONS:
        raise ValueError(f"--select: one of {', '.join(SELECTIONS)}, got {select!r}")
    if select == "return" and changes_reward:
        raise ValueError(
            "--select return: the grid changes the reward, so held-out returns are not comparable between "
            "settings; use --select cost-at-slo"
        )
    return select


def _choose_champion(result: SweepResult) -> None:
    """The best setting by ``result.selection`` over the seeds' means, and within it the best seed by the same rule:

    * ``return``: the highest held-out return;
    * ``cost-at-slo``: the cheapest held-out cost among those whose held-out SLO attainment reaches
      ``result.slo_attainment``; if none does, the highest attainment.
    """
    by_setting: dict[str, list[tuple[TrainCell, dict[str, Any]]]] = {}
    for cell, record in zip(result.cells, result.records, strict=True):
        by_setting.setdefault(cell.setting_label, []).append((cell, record))

    def score(records: Sequence[dict[str, Any]]) -> tuple[float, ...]:  # higher is better
        if result.selection == "return":
            return (mean_ci(r["eval_mean_reward"] for r in records).mean,)
        cost = mean_ci(_num(r["eval_kpis"].get(COST)) for r in records).mean
        attainment = mean_ci(_num(r["eval_kpis"].get(ATTAINMENT)) for r in records).mean
        feasible = attainment >= result.slo_attainment
        return (1.0, -cost) if feasible else (0.0, attainment)

    scores = {s: score([r for _, r in group]) for s, group in by_setting.items()}
    finite = {s: v for s, v in scores.items() if all(math.isfinite(x) for x in v)}
    if not finite:
        return
    result.best_setting = max(finite, key=finite.__getitem__)
    best = by_setting[result.best_setting]
    result.champion = max(best, key=lambda pair: tuple(-math.inf if math.isnan(x) else x for x in score([pair[1]])))[0]


def selection_text(result: SweepResult) -> str:
    if result.selection == "return":
        return "the highest mean held-out return over seeds"
    return (
        f"the cheapest mean held-out cost among settings whose mean held-out SLO attainment reaches "
        f"{result.slo_attainment:.0%} (else the highest attainment)"
    )


SUMMARY_KPIS = (("cost/usd", "cost $"), ("slo/attainment", "SLO attainment"), ("fleet/scale_events", "scale events"))


def rows(result: SweepResult) -> tuple[list[str], list[dict[str, Any]]]:
    """``sweep.csv``: one row per cell — setting, seed, held-out return and KPIs of the last evaluation, speed,
    MLflow run and model version."""
    paths = [p for p, _ in result.cells[0].setting] if result.cells else []
    kpi_columns = sorted({k for r in result.records for k in r.get("eval_kpis", {})})
    columns = [
        "setting", *paths, "seed", "eval_mean_reward", "eval_std_reward", *kpi_columns, "timesteps", "wall_s",
        "steps_per_s", "run_id", "model_version", "folder",
    ]  # fmt: skip
    table = []
    for cell, record in zip(result.cells, result.records, strict=True):
        wall = record.get("wall_s", math.nan)
        table.append({
            "setting": cell.setting_label, **dict(cell.setting), "seed": cell.seed,
            "eval_mean_reward": record["eval_mean_reward"], "eval_std_reward": record["eval_std_reward"],
            **{k: record.get("eval_kpis", {}).get(k, "") for k in kpi_columns},
            "timesteps": record["timesteps"], "wall_s": wall,
            "steps_per_s": record["timesteps"] / wall if wall else math.nan,
            "run_id": record.get("run_id", ""), "model_version": record.get("model_version", ""),
            "folder": record.get("folder", ""),
        })  # fmt: skip
    return columns, table


def write_sweep_files(result: SweepResult) -> dict[str, Path]:
    """``sweep.csv``, ``sweep.md`` (mean ± 95% CI over seeds per setting) and ``sweep.png`` in ``out``."""
    import csv

    from rlscale.training.figures import sweep_plot

    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    files = {SWEEP_CSV: out / SWEEP_CSV, SWEEP_MD: out / SWEEP_MD, SWEEP_PNG: out / SWEEP_PNG}
    columns, table = rows(result)
    with files[SWEEP_CSV].open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(table)
    files[SWEEP_MD].write_text(summary_markdown(result, table))
    pairs = zip(result.cells, result.records, strict=True)
    curves = {cell.label: Path(record["folder"]) / PROGRESS_CSV for cell, record in pairs}
    settings = {cell.label: cell.setting_label for cell in result.cells}
    sweep_plot(curves, settings, files[SWEEP_PNG], result.name)
    return files


def summary_markdown(result: SweepResult, table: list[dict[str, Any]]) -> str:
    """Per setting: mean ± 95% CI over seeds of the held-out return and KPIs; the champion named."""
    seeds = sorted({row["seed"] for row in table})
    lines = [
        f"# Training sweep {result.name}",
        "",
        f"{len(table)} training runs ({len({r['setting'] for r in table})} settings × seeds {seeds}) on "
        f"{result.executor} in {result.wall_s:.0f} s; held-out evaluation at the end of each run, mean ± 95% CI "
        "over seeds.",
        *(
            [
                "",
                f"**Only {len(seeds)} seed(s): too few for the intervals to mean much (use ≥{MIN_SEEDS_FOR_CI}); "
                "read the per-run rows in sweep.csv.**",
            ]
            if len(seeds) < MIN_SEEDS_FOR_CI
            else []
        ),
        "",
        "| setting | held-out return | " + " | ".join(label for _, label in SUMMARY_KPIS) + " |",
        "|---|---|" + "---|" * len(SUMMARY_KPIS),
    ]
    for setting in dict.fromkeys(r["setting"] for r in table):
        group = [r for r in table if r["setting"] == setting]
        cells = [
            _fmt(mean_ci(_num(r.get(c)) for r in group)) for c in ("eval_mean_reward", *(k for k, _ in SUMMARY_KPIS))
        ]
        mark = " **(best)**" if setting == result.best_setting else ""
        lines.append(f"| {setting}{mark} | " + " | ".join(cells) + " |")
    if result.champion is not None:
        lines += ["", f"Best setting: {selection_text(result)}. Champion: {result.champion.label}, its best seed."]
    return "\n".join(lines) + "\n"


def _num(value: Any) -> float:
    return math.nan if value in ("", None) else float(value)


def _fmt(interval: Any) -> str:
    if not math.isfinite(interval.mean):
        return "–"
    if not math.isfinite(interval.half_width):
        return f"{interval.mean:.4g}"
    return f"{interval.mean:.4g} ± {interval.half_width:.2g}"
