"""``rlscale calibrate --from``: the step-time model fitted to what a load test measured.

The unknowns are the deployment's; the shapes come from the specs (the model's weight and KV bytes, FLOPs per
token; the chip's bandwidth and peak) of the deployment *as stated* in the load test's ``scenario.yaml``. Two
stages:

1. **Step times from requests** (:func:`step_times`). One JetStream engine serialises everything (interleaved
   mode), so a client's timestamps are sums of device operations. Three kinds of request give linear equations
   in the prefill time of each bucket ``pre[b]``, the insert's fixed cost ``o_i`` (its KV copy, ``2·b·κ/(β·e_m)``,
   priced with the stated chip's prior bandwidth: a fraction of a millisecond), the decode step ``d`` (a
   preallocated cache steps every slot, so ``d`` is one number per batch size) and the client's own latency
   ``δ`` (network, HTTP, the server's threads):

   * *idle* (nothing in flight when it was sent): ``TTFT = pre[b] + δ``;
   * *queued behind a prefill* (sent before the previous first token, a slot free): ``F_i − F_{i−1} = o_i +
     copy(b_{i−1}) + pre[b_i]`` (δ cancels);
   * *decoded with a slot free throughout*: ``D_i − F_i = o_i + copy(b_i) + Σ_j (pre[b_j] + o_i + copy(b_j)) +
     (n_i − 1)·d`` over the prefills ``j`` whose first token falls inside (they preempt decode), δ cancels.

   * *the server's own prefill times* where the load test scraped its pages: between two scrapes, the growth of
     ``jetstream_time_to_first_token``'s and ``jetstream_time_per_prefill_token``'s sums is a sum of ``pre[b]``
     over the requests prefilled in between (:mod:`rlscale.loadtest.server_prefill`); these alone tell ``pre``
     from ``o_i``, which the client sees only together.

   Solved by Huber regression, each group (client, server) with its own residual scale; each estimate has a
   standard error from the residuals.

2. **Parameters from step times** (:func:`fit_parameters`): the roofline's efficiencies and per-layer overheads
   fitted to the step times, each weighed by its standard error, with a weak prior at the stated chip's
   catalog values (a factor ~1.6 either way) so that what the data cannot see stays where it was. Which
   parameters the data identified is read off the posterior: the relative standard deviation of each, and the
   pairs the data cannot tell apart (|correlation| > 0.9), e.g. a decode overhead against HBM efficiency when
   every decode ran at one batch size, or no compute-bound prefill in a short-prompt load test.

The fitted model is checked by replaying the measured arrivals through the simulator: its latency percentiles
(plus ``δ``) against the measured ones.
"""

from __future__ import annotations

import csv
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import least_squares

from rlscale.loadtest.results import MeasuredRequests, read_scenario
from rlscale.loadtest.server_prefill import NoServerPrefills, server_prefills
from rlscale.planning.capacity import PERCENTILES
from rlscale.scenario import ScenarioConfig
from rlscale.serving.buckets import padded_length
from rlscale.serving.config import KVMode, PodConfig
from rlscale.serving.step_time import MS_PER_S, RooflineStepModel
from rlscale.simulation import run_scenario
from rlscale.specs import HardwareSpec, ModelSpec, load_hardware, load_model
from rlscale.specs.hardware import StepModelParams

PARAMETERS = (
    "mem_efficiency", "decode_matmul_efficiency", "prefill_matmul_efficiency", "attention_efficiency",
    "decode_overhead_ms_per_layer", "prefill_overhead_ms_per_layer",
)  # fmt: skip
PRIOR_SIGMA = 0.5  # the prior's spread, in log units: a factor e^0.5 = 1.65 either way
IDENTIFIED, PARTLY = 0.05, 0.25  # posterior relative sd below which a parameter counts as identified / partly
CONFOUNDED = 0.9  # |posterior correlation| above which two parameters are reported as not told apart
MIN_EQUATIONS = 5  # a bucket seen in fewer equations gets no step-time point
TOGETHER_S = 0.002  # answers ending closer than this (server s) ended at the same decode step
HUBER_K = 1.345  # Huber's threshold in robust standard deviations (95% efficiency under normal noise)
FLOOR = 1e-4  # parameters are fitted in log space; an overhead of 0 is fitted as this
SCALE_FLOOR_S = (1e-9, 1e-5)  # the smallest residual scale of the client's / the server's equations (s)
SCALE_ITERATIONS = 10  # rounds of re-estimating each group's scale, at most


@dataclass(frozen=True)
class Deployment:
    """What the load test stated: model, host and pod settings, and the load test folder they came from."""

    folder: Path
    scenario: ScenarioConfig
    model: ModelSpec
    hardware: HardwareSpec

    @classmethod
    def of(cls, folder: Path) -> Deployment:
        sc = read_scenario(folder)
        if sc.pod.kv_mode is not KVMode.PREALLOCATED:
            raise ValueError(
                f"{folder}: pod.kv_mode {sc.pod.kv_mode}: calibrate --from reads a preallocated cache's decode "
                "step (one per batch size); a paged cache's step varies with the batch and is not fitted yet"
            )
        return cls(folder, sc, load_model(sc.pod.model), load_hardware(sc.pod.hardware))

    @property
    def pod(self) -> PodConfig:
        return self.scenario.pod

    @property
    def slots(self) -> int:
        return self.pod.per_device_batch_size * self.hardware.chips_per_host

    def copy_ms_per_token(self) -> float:
        """An insert's KV copy per padded token (read and written once) at the stated chip's prior bandwidth."""
        hw = self.hardware
        return (
            2.0 * self.model.kv_bytes_per_token * MS_PER_S / (hw.total_hbm_bytes_per_s * hw.step_model.mem_efficiency)
        )


@dataclass(frozen=True)
class StepEstimate:
    """One step time recovered from requests: its value and standard error (ms), and how many equations saw it."""

    phase: str  # prefill | decode | insert | client
    label: str
    ms: float
    se_ms: float
    equations: int
    batch: int = 0  # decode: slots stepped
    kv_tokens: int = 0  # decode: KV tokens read per step
    tokens: int = 0  # prefill: the bucket


@dataclass
class StepTimes:
    """Stage 1's result for one load test folder."""

    deployment: Deployment
    estimates: list[StepEstimate]
    counts: dict[str, int]  # equations of each kind
    notes: list[str] = field(default_factory=list)

    def get(self, phase: str) -> list[StepEstimate]:
        return [e for e in self.estimates if e.phase == phase]


def step_times(deployment: Deployment) -> StepTimes:
    """Stage 1: prefill per bucket, insert overhead, decode step and client latency from one folder's requests."""
    req = MeasuredRequests.read(deployment.folder)
    pod = deployment.pod
    has_first = ~np.isnan(req.first_token_s)
    arrival, first = req.arrival_s, req.first_token_s
    done = np.where(req.completed, req.done_s, np.inf)
    buckets = np.array([padded_length(min(int(p), pod.max_prefill_predict_length), pod.max_prefill_predict_length)
                        for p in req.prompt_tokens])  # fmt: skip
    present = sorted(set(buckets[has_first].tolist()))
    column = {b: k for k, b in enumerate(present)}
    nb = len(present)
    o_i, d, delta = nb, nb + 1, nb + 2
    copy = deployment.copy_ms_per_token() / MS_PER_S  # s per padded token
    rows: list[np.ndarray] = []
    rhs: list[float] = []
    kinds: list[str] = []

    def add(coefs: dict[int, float], value: float, kind: str) -> None:
        row = np.zeros(nb + 3)
        for k, v in coefs.items():
            row[k] += v
        rows.append(row)
        rhs.append(value)
        kinds.append(kind)

    # requests with a first token, in first-token order (FIFO prefill: arrival order on one server)
    order = np.argsort(np.where(has_first, first, np.inf), kind="stable")[: int(has_first.sum())]
    f_sorted = first[order]
    d_sorted = np.sort(done[has_first])
    active_after = np.arange(1, len(order) + 1) - np.searchsorted(d_sorted, f_sorted, side="right")
    free = deployment.slots - 1  # a slot to spare: measured times are a few ms off
    # idle arrivals: nothing sent before was still in flight
    in_flight = np.searchsorted(np.sort(arrival), arrival, side="left") - np.searchsorted(
        np.sort(done), arrival, side="left"
    )
    for i in np.flatnonzero(has_first & (in_flight == 0)):
        add({column[buckets[i]]: 1.0, delta: 1.0}, first[i] - arrival[i], "idle")
    # queued behind the previous prefill, a slot free for its insert
    for k in range(1, len(order)):
        prev, cur = order[k - 1], order[k]
        if arrival[cur] < first[prev] and active_after[k - 1] <= free:
            add({o_i: 1.0, column[buckets[cur]]: 1.0}, first[cur] - first[prev] - copy * buckets[prev], "queued")
    # decode spans with a slot free throughout, ended alone: answers that end at the same step reach their
    # clients one after another (the server's and the client's threads take turns), a bias of a fraction of a
    # millisecond that would read as insert time
    ends = np.sort(done[np.isfinite(done)])
    pos = np.searchsorted(ends, done)
    gap_before = done - ends[np.clip(pos - 1, 0, None)]
    gap_after = ends[np.clip(pos + 1, None, len(ends) - 1)] - done
    alone = np.minimum(np.where(pos > 0, gap_before, np.inf), np.where(pos < len(ends) - 1, gap_after, np.inf))
    for k, i in enumerate(order):
        if not req.completed[i] or req.tokens[i] < 2 or alone[i] < TOGETHER_S:
            continue
        hi = int(np.searchsorted(f_sorted, done[i], side="left"))
        if active_after[k:hi].max(initial=0) > free:
            continue
        inside = order[k + 1 : hi]
        coefs = {o_i: 1.0 + len(inside), d: float(req.tokens[i] - 1)}
        for j in inside:
            coefs[column[buckets[j]]] = coefs.get(column[buckets[j]], 0.0) + 1.0
        span = done[i] - first[i] - copy * (buckets[i] + buckets[inside].sum())
        add(coefs, span, "decode")
    if not rows:
        raise ValueError(f"{deployment.folder}: no request the fit can read (none completed?)")
    x_mat, y = np.array(rows), np.array(rhs)
    seen = (x_mat != 0).sum(axis=0)
    keep = [k for k in range(nb + 3) if seen[k] >= (1 if k in (o_i, d) else MIN_EQUATIONS)]
    prompts = np.minimum(req.prompt_tokens, pod.max_prefill_predict_length)
    server_x, server_y, server_note = _server_rows(deployment, buckets[order], prompts[order], column, keep, nb + 3)
    x_mat, y = np.vstack([x_mat, server_x]), np.concatenate([y, server_y])
    kinds += ["server"] * len(server_y)
    seen = (x_mat != 0).sum(axis=0)
    notes = [server_note]
    if delta not in keep:
        notes.append(
            f"fewer than {MIN_EQUATIONS} requests found the server idle: the client's own latency (network, HTTP) is "
            "measured by the replay instead"
        )
    if d not in keep:
        notes.append("no decode span with a slot free throughout: the decode step is not measured")
    groups = np.array([kind == "server" for kind in kinds], dtype=int)
    solution, se_all = _robust_solve(x_mat[:, keep], y, groups, deployment.folder)
    value = dict(zip(keep, solution, strict=True))
    se = dict(zip(keep, se_all, strict=True))
    estimates = []
    for b in present:
        k = column[b]
        if k in value:
            estimates.append(
                StepEstimate("prefill", f"prompt={b}", value[k] * 1e3, se[k] * 1e3, int(seen[k]), tokens=b)
            )
    if d in value:
        kv = deployment.slots * pod.max_target_length
        label = f"b={deployment.slots} slots={deployment.slots}x{pod.max_target_length}"
        slots = deployment.slots
        estimates.append(StepEstimate("decode", label, value[d] * 1e3, se[d] * 1e3, int(seen[d]), slots, kv))
    estimates.append(StepEstimate("insert", "fixed cost", value[o_i] * 1e3, se[o_i] * 1e3, int(seen[o_i])))
    if delta in value:
        estimates.append(StepEstimate("client", "latency", value[delta] * 1e3, se[delta] * 1e3, int(seen[delta])))
    counts = {kind: kinds.count(kind) for kind in ("idle", "queued", "decode", "server")}
    return StepTimes(deployment, estimates, counts, notes)


def _server_rows(
    deployment: Deployment,
    buckets: np.ndarray,
    prompts: np.ndarray,
    column: dict[int, int],
    keep: list[int],
    width: int,
) -> tuple[np.ndarray, np.ndarray, str]:
    """The server's prefill equations (:mod:`rlscale.loadtest.server_prefill`) as rows of stage 1's system, for
    the requests with a first token in first-token order (their ``buckets`` and truncated ``prompts``), and a note
    saying what they were or why there were none. An equation that involves a bucket without a column of its
    own (too few client equations) is left out: it would charge that bucket's prefill time to the others."""
    try:
        server = server_prefills(deployment.folder, buckets, prompts)
    except NoServerPrefills as why:
        return (
            np.zeros((0, width)),
            np.zeros(0),
            (
                f"no server-side prefill times ({why}): the prefill's and the insert's fixed costs are told apart only "
                "by the client's sub-millisecond timing"
            ),
        )
    kept = set(keep)
    usable = [e for e in server.equations if all(column[b] in kept for b in e.weights)]
    x_mat = np.zeros((len(usable), width))
    for row, e in zip(x_mat, usable, strict=True):
        for b, w in e.weights.items():
            row[column[b]] = w
    return x_mat, np.array([e.seconds for e in usable]), server.note()


def _robust_solve(x_mat: np.ndarray, y: np.ndarray, groups: np.ndarray, where: Path) -> tuple[np.ndarray, np.ndarray]:
    """Huber regression of ``y`` on ``x_mat`` and the standard errors of its coefficients.

    A client's timestamps are mostly a millisecond or two off, sometimes tens (a thread that woke late, a
    scheduler's hiccup): ordinary least squares would let the tail set the answer, Huber's loss weighs it down.
    Rows come in ``groups`` (0: the client's equations, 1: the server's own timings) measured by different clocks,
    so each group's residuals get their own scale (their MAD, re-estimated until it settles): the server's
    equations, measured to microseconds, then weigh as much as they are worth instead of as much as a client's.
    """
    start, _, rank, _ = np.linalg.lstsq(x_mat, y, rcond=None)
    if rank < x_mat.shape[1]:
        raise ValueError(f"{where}: the requests cannot separate the step times (rank {rank} < {x_mat.shape[1]})")
    x, scale = start, np.ones(len(y))
    for _ in range(SCALE_ITERATIONS):
        previous, scale = scale, _group_scales(y - x_mat @ x, groups)
        x = least_squares(lambda b, s=scale: (x_mat @ b - y) / s, x, loss="huber", f_scale=HUBER_K).x
        if np.allclose(scale, previous, rtol=0.01):
            break
    z = np.abs(y - x_mat @ x) / scale
    weights = np.minimum(1.0, HUBER_K / np.maximum(z, 1e-12)) / scale**2
    cov = np.linalg.inv(x_mat.T @ (weights[:, None] * x_mat))
    return x, np.sqrt(np.diag(cov))


def _group_scales(residual: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each row's scale: its group's robust standard deviation (1.4826 MAD), floored at the group's clock's
    resolution."""
    scale = np.empty(len(residual))
    for g in np.unique(groups):
        r = residual[groups == g]
        scale[groups == g] = max(1.4826 * float(np.median(np.abs(r - np.median(r)))), SCALE_FLOOR_S[int(g)])
    return scale


@dataclass
class Identification:
    """How well the data pinned one parameter: its posterior relative sd, and what it could not be told from."""

    name: str
    prior: float
    fitted: float
    rel_sd: float
    confounded_with: list[str]

    @property
    def verdict(self) -> str:
        if self.rel_sd < IDENTIFIED:
            return f"identified (±{self.rel_sd:.1%})"
        if self.confounded_with and self.rel_sd < PARTLY:
            return f"identified only with the prior's help (±{self.rel_sd:.0%})"
        if self.rel_sd < PARTLY:
            return f"partly identified (±{self.rel_sd:.0%})"
        return f"not identified (±{self.rel_sd:.0%}): the prior holds it, or the data fix only a combination"


@dataclass
class DeploymentFit:
    """Stage 2's result: the fitted hardware and insert cost, every step-time point against its prediction."""

    hardware: HardwareSpec
    insert_overhead_ms: float
    client_latency_s: float
    steps: list[StepTimes]
    identification: list[Identification]

    def step_model(self, steps: StepTimes) -> RooflineStepModel:
        """The fitted model as the folder's deployment runs it (its launch, its insert cost)."""
        pod = steps.deployment.pod.model_copy(update={"insert_overhead_ms": self.insert_overhead_ms})
        return RooflineStepModel.for_deployment(steps.deployment.model, self.hardware, pod)

    def pod(self, deployment: Deployment, hardware_ref: str) -> PodConfig:
        """The deployment's pod settings with the fitted hardware (``hardware_ref``: where its file is)."""
        return deployment.pod.model_copy(
            update={"hardware": hardware_ref, "insert_overhead_ms": self.insert_overhead_ms}
        )


def _predict(estimate: StepEstimate, model: RooflineStepModel) -> float:
    if estimate.phase == "prefill":
        return model.prefill_ms(estimate.tokens)
    return model.decode_ms(estimate.batch, estimate.kv_tokens)


def fit_parameters(steps: list[StepTimes]) -> DeploymentFit:
    """Stage 2: the six step-model parameters from every folder's prefill and decode step times (one stated
    host), with a weak prior at its catalog values; the insert overhead and client latency as measured."""
    hosts = {s.deployment.hardware for s in steps}
    if len(hosts) != 1:
        raise ValueError(f"the load tests state different hosts ({sorted(h.name for h in hosts)}): fit one at a time")
    base = steps[0].deployment.hardware
    launch = steps[0].deployment.pod.prefill_launch
    prior = np.log([max(getattr(base.step_model, p), FLOOR) for p in PARAMETERS])
    points = [(s, e) for s in steps for e in s.estimates if e.phase in ("prefill", "decode")]
    if not points:
        raise ValueError("no prefill or decode step time was measured")

    def hardware_of(x: np.ndarray) -> HardwareSpec:
        values = dict(zip(PARAMETERS, np.exp(x).tolist(), strict=True))
        params = StepModelParams(**{**base.step_model.model_dump(), **values, "prefill_launch": launch})
        return base.model_copy(update={"step_model": params})

    def data_residuals(x: np.ndarray) -> np.ndarray:
        hw = hardware_of(x)
        models = {id(s): RooflineStepModel(s.deployment.model, hw) for s in steps}  # priced as measured
        return np.array([(_predict(e, models[id(s)]) - e.ms) / max(e.se_ms, 1e-3 * e.ms) for s, e in points])

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.concatenate([data_residuals(x), (x - prior) / PRIOR_SIGMA])

    lo = np.log([FLOOR if "overhead" in p else 0.01 for p in PARAMETERS])
    hi = np.log([5.0 if "overhead" in p else 1.5 for p in PARAMETERS])
    solution = least_squares(residuals, np.clip(prior, lo + 1e-9, hi - 1e-9), bounds=(lo, hi), x_scale=1.0)
    x = solution.x
    jac = solution.jac
    posterior = np.linalg.inv(jac.T @ jac)  # the prior's rows are in the Jacobian: always invertible
    sd = np.sqrt(np.diag(posterior))
    corr = posterior / np.outer(sd, sd)
    ident = [
        Identification(
            name, math.exp(prior[k]), math.exp(x[k]), float(sd[k]),
            [PARAMETERS[j] for j in range(len(PARAMETERS)) if j != k and abs(corr[k, j]) > CONFOUNDED],
        )
        for k, name in enumerate(PARAMETERS)
    ]  # fmt: skip
    inserts = [e for s in steps for e in s.get("insert")]
    weights = np.array([1 / max(e.se_ms, 1e-6) ** 2 for e in inserts])
    insert_ms = float(np.average([e.ms for e in inserts], weights=weights))
    clients = [e for s in steps for e in s.get("client")]
    client_s = float(np.mean([e.ms for e in clients])) / 1e3 if clients else 0.0
    params = hardware_of(np.round(x, 6)).step_model
    names = ", ".join(str(s.deployment.folder) for s in steps)
    hw = base.model_copy(
        update={"step_model": params.model_copy(update={"calibrated_on": f"rlscale calibrate --from {names}"})}
    )
    return DeploymentFit(hw, max(insert_ms, 0.0), client_s, steps, ident)


def calibrate(folders: list[Path]) -> DeploymentFit:
    """Both stages over one or more load test folders of one deployment (e.g. at several batch sizes)."""
    return fit_parameters([step_times(Deployment.of(Path(f))) for f in folders])


# ---- checks and report ------------------------------------------------------------------------------------
def replay_percentiles(fit: DeploymentFit, steps: StepTimes) -> dict[str, dict[str, tuple[float, float]]]:
    """The folder's arrivals replayed through the simulator with the fitted deployment on one pod: measured and
    predicted TTFT, TPOT and end-to-end percentiles. The client's own latency (network, HTTP, its threads) is
    the mean of measured minus simulated TTFT over the requests, added to TTFT and end-to-end (and kept in
    ``fit.client_latency_s``): the idle requests that measure it directly are few in a load test."""
    dep = steps.deployment
    req = MeasuredRequests.read(dep.folder)
    pod = dep.pod.model_copy(update={"insert_overhead_ms": fit.insert_overhead_ms})
    sc = dep.scenario.model_copy(
        update={
            "pod": pod,
            "fleet": dep.scenario.fleet.model_copy(update={"replicas": 1}),
            "schedule": [],
            "duration_s": float(np.nanmax(np.where(req.completed, req.done_s, np.nan))) + 60.0,
        }
    )
    outputs = np.where(req.completed, req.tokens, req.output_tokens)
    stream = [(float(a), int(p), int(o)) for a, p, o in zip(req.arrival_s, req.prompt_tokens, outputs, strict=True)]
    simulated = _simulate_with(sc, fit.hardware, stream)  # one row per request, in the measured order
    both = req.completed & ~np.isnan(simulated["first_token_s"]) & ~np.isnan(simulated["done_s"])
    # the mean, not the median: a request the server saw a little later than its client sent it may catch the next
    # decode step rather than this one, so single differences scatter by a step either way; their mean does not
    fit.client_latency_s = float(np.mean((req.first_token_s - simulated["first_token_s"])[both]))
    tokens = np.where(req.tokens > 1, req.tokens - 1, np.nan)
    pairs = {
        "TTFT": (req.first_token_s - req.arrival_s, simulated["first_token_s"] - req.arrival_s + fit.client_latency_s),
        "TPOT": (
            (req.done_s - req.first_token_s) / tokens,
            (simulated["done_s"] - simulated["first_token_s"]) / tokens,
        ),
        "E2E": (req.done_s - req.arrival_s, simulated["done_s"] - req.arrival_s + fit.client_latency_s),
    }
    out = {}
    for name, (measured, predicted) in pairs.items():
        ok = both & ~np.isnan(measured) & ~np.isnan(predicted)
        out[name] = {
            f"p{q:g}": (float(np.percentile(measured[ok], q)), float(np.percentile(predicted[ok], q)))
            for q in PERCENTILES
        }
    return out


def _simulate_with(sc: ScenarioConfig, hardware: HardwareSpec, stream: list[tuple[float, int, int]]) -> dict:
    """First-token and done times of ``stream``'s requests (by position) on one pod of ``sc`` whose host is
    ``hardware`` (written to a file the pod loads); NaN for a request that did not complete."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hardware.yaml"
        path.write_text(yaml.safe_dump(hardware_document(hardware), sort_keys=False))
        sc = sc.model_copy(update={"pod": sc.pod.model_copy(update={"hardware": str(path)})})
        run_scenario(sc, stream=stream, requests_csv=Path(tmp) / "requests.csv")
        first, done = np.full(len(stream), np.nan), np.full(len(stream), np.nan)
        with (Path(tmp) / "requests.csv").open(newline="") as f:
            for r in csv.DictReader(f):
                if r["outcome"] == "completed":
                    first[int(r["id"])], done[int(r["id"])] = float(r["first_token_s"]), float(r["done_s"])
    return {"first_token_s": first, "done_s": done}


def hardware_document(hardware: HardwareSpec) -> dict[str, Any]:
    """The fitted host as a flat hardware file (``--hardware``, ``pod.hardware``)."""
    return hardware.model_dump(mode="json")


def report_lines(fit: DeploymentFit, replays: list[dict[str, dict[str, tuple[float, float]]]]) -> list[str]:
    """The per-point table (as ``rlscale calibrate`` prints it), the parameters and what identified them, and the
    replay check."""
    hw = fit.hardware
    lines = [f"# Calibration of {hw.name} from {len(fit.steps)} load test(s)", ""]
    for steps, replay in zip(fit.steps, replays, strict=True):
        dep = steps.deployment
        counts = ", ".join(f"{n} {kind}" for kind, n in steps.counts.items())
        lines += [
            f"## {dep.folder}: {dep.model.name} on {dep.hardware.name}, {dep.slots} slots ({counts} equations)",
            "phase    point                        measured_ms (equations)   predicted_ms  error",
        ]
        model = fit.step_model(steps)
        for e in steps.estimates:
            measured = f"{e.ms:8.3f} ± {e.se_ms:.3f} ({e.equations})"
            if e.phase in ("prefill", "decode"):
                predicted = _predict(e, model)
                lines.append(
                    f"{e.phase:<8} {e.label:<28} {measured:<25} {predicted:>12.3f}  {predicted / e.ms - 1:+6.1%}"
                )
            elif e.phase == "insert":
                lines.append(
                    f"{e.phase:<8} {e.label:<28} {measured:<25} {fit.insert_overhead_ms:>12.3f}  (fitted as is)"
                )
            else:
                lines.append(f"{e.phase:<8} {e.label:<28} {measured:<25}  (from the idle requests alone)")
        lines += [f"note: {n}" for n in steps.notes]
        lines += ["", "check: the measured arrivals replayed through the simulator with the fitted deployment",
                  "metric  percentile  measured_s  predicted_s  error"]  # fmt: skip
        for metric, qs in replay.items():
            for q, (got, want) in qs.items():
                lines.append(f"{metric:<7} {q:<10}  {got:>10.4f}  {want:>11.4f}  {want / got - 1:+6.1%}")
        lines.append("")
    lines += [f"## parameters ({hw.accelerator} x {hw.chips_per_host}; prior: the catalog's values, a factor "
              f"{math.exp(PRIOR_SIGMA):.2f} either way)",
              "parameter                        catalog    fitted  identification"]  # fmt: skip
    for i in fit.identification:
        told = f"; not told apart from {', '.join(i.confounded_with)}" if i.confounded_with else ""
        lines.append(f"{i.name:<32} {i.prior:>7.4f}  {i.fitted:>8.4f}  {i.verdict}{told}")
    lines += [
        f"insert_overhead_ms (the deployment's)  {fit.insert_overhead_ms:.3f} ms",
        f"client latency (network, HTTP)         {fit.client_latency_s * 1e3:.3f} ms (mean measured - replayed TTFT)",
        "note: the insert's fixed cost and the prefill's fixed overhead are told apart only by how much longer a "
        "request's decode lasts than its steps (its own insert); a client that sees last tokens a fraction of a "
        "millisecond later or sooner than first tokens moves cost from one to the other (their sum is what "
        "latency sees)",
    ]
    return lines


def write_outputs(fit: DeploymentFit, out: Path) -> list[Path]:
    """``hardware.yaml`` (a host file: ``--hardware``, ``pod.hardware``), ``pod.yaml`` (the deployment's pod block on
    it) and ``scenario.yaml`` (the first load test's scenario on the fitted deployment), in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    hardware = out / "hardware.yaml"
    header = f"# Fitted by {fit.hardware.step_model.calibrated_on}; the published figures are the stated host's.\n"
    hardware.write_text(header + yaml.safe_dump(hardware_document(fit.hardware), sort_keys=False))
    dep = fit.steps[0].deployment
    pod = fit.pod(dep, str(hardware.resolve())).model_dump(mode="json")
    (out / "pod.yaml").write_text(yaml.safe_dump({"pod": pod}, sort_keys=False))
    scenario = dep.scenario.model_dump(mode="json") | {"name": f"{dep.scenario.name}-calibrated", "pod": pod}
    (out / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
    return [hardware, out / "pod.yaml", out / "scenario.yaml"]
