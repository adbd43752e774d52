"""ServeGen client pools: per-client traffic of production LLM services, read from the original files or a bundle.

ServeGen (Xiang et al., NSDI 2026; Alibaba Cloud Model Studio, Apache-2.0)
describes each *client* (an API customer) of a model service over 14 days:

- ``chunk-<id>-trace.csv``, no header, one row per 600 s window: window start
  s, mean rate req/s, CV of inter-arrival gaps, ``Gamma`` | ``Weibull`` | empty
  (idle), and the fitted distribution's shape and scale.
- ``chunk-<id>-dataset.json`` (some clients only): per 6-hour window, prompt and
  output token pdfs as Python dict literals ``{tokens: probability}``.

:func:`load_service` takes a bundled service name (``m-large``, ``m-mid``,
``m-small``: the compact form in ``data/servegen-<name>.npz``, made by
``scripts/bundle_servegen.py``), a folder of the original files, or a bundle.
A bad row is a ``TraceError`` starting ``file:line:``.

The compact form keeps traffic sparse (only the windows where a client sent
requests) and reduces each length pdf to its quantiles at :data:`QUANTILE_GRID`,
denser in the tail so that the share of long prompts (what truncates) is kept.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rlscale.workload.traces import TraceError

WINDOW_S = 600  # a trace row's window, s (ServeGen's)
LENGTH_WINDOW_S = 21_600  # a dataset entry's window, s (6 hours)
DAY_S = 86_400
FAMILIES = ("Gamma", "Weibull")  # index = the family code in the arrays; -1 = idle
# Probabilities at which a length pdf's quantiles are kept: every 1% and a tail to the maximum.
QUANTILE_GRID = np.concatenate([np.linspace(0.0, 0.99, 100), [0.995, 0.999, 0.9999, 1.0]])
BUNDLED_SERVICES = ("m-large", "m-mid", "m-small")
BUNDLE_VERSION = 1
_CHUNK = re.compile(r"chunk-(\d+)-trace\.csv")
_TRAFFIC_KEYS = ("client", "window", "rate_per_s", "cv", "family", "shape", "scale")
_LENGTH_KEYS = ("length_client", "length_window", "prompt_quantiles", "output_quantiles")


@dataclass(frozen=True, eq=False)
class ServeGenService:
    """One service's client pool. Traffic rows (one per client and active window) are sorted by (window, client);
    length rows (one per client and 6-hour window with data) by (client, window)."""

    name: str
    client_ids: np.ndarray  # (C,) ServeGen client ids, ascending
    n_windows: int  # 600 s windows in the record
    client: np.ndarray  # (A,) index into client_ids
    window: np.ndarray  # (A,) window index
    rate_per_s: np.ndarray  # (A,) > 0
    cv: np.ndarray  # (A,) the data's CV of gaps in the window
    family: np.ndarray  # (A,) index into FAMILIES
    shape: np.ndarray  # (A,) Gamma k or Weibull c
    scale: np.ndarray  # (A,) Gamma θ or Weibull λ as fitted (the generator rescales them to the rate)
    length_client: np.ndarray  # (L,) index into client_ids
    length_window: np.ndarray  # (L,) 6-hour window index
    prompt_quantiles: np.ndarray  # (L, len(QUANTILE_GRID)) tokens
    output_quantiles: np.ndarray  # (L, len(QUANTILE_GRID)) tokens

    @property
    def days(self) -> int:
        """Whole days the record spans."""
        return self.n_windows * WINDOW_S // DAY_S

    def requests_per_client(self, first_window: int, end_window: int) -> np.ndarray:
        """Requests each client sent in windows [first_window, end_window), by client index."""
        inside = (self.window >= first_window) & (self.window < end_window)
        return np.bincount(
            self.client[inside], weights=self.rate_per_s[inside] * WINDOW_S, minlength=self.client_ids.size
        )

    def client_index(self, ids: list[int]) -> np.ndarray:
        """Indices of the given client ids; an unknown id is an error that lists the known ones."""
        known = {int(c): i for i, c in enumerate(self.client_ids)}
        missing = [c for c in ids if c not in known]
        if missing:
            raise ValueError(f"{self.name}: no client(s) {missing}; it has {sorted(known)}")
        return np.array([known[c] for c in ids], dtype=np.int64)


# ---- the original files ------------------------------------------------------------------------
def _number(text: str, name: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{where}: {name} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"{where}: {name} must be a finite number >= 0, got {text!r}")
    return value


def _trace_row(fields: list[str], index: int, where: str) -> tuple[float, float, int, float, float]:
    """(rate, cv, family code, shape, scale) of one CSV row, checked."""
    if len(fields) != 6:
        raise TraceError(
            f"{where}: expected 6 fields (window start s, rate req/s, CV, Gamma|Weibull|empty, shape, scale), "
            f"got {len(fields)}"
        )
    start, rate, cv, family, shape, scale = (f.strip() for f in fields)
    if start != str(index * WINDOW_S):
        raise TraceError(
            f"{where}: window start must be {index * WINDOW_S} (windows of {WINDOW_S} s from 0), got {start!r}"
        )
    rate_v, cv_v = _number(rate, "rate", where), _number(cv, "CV", where)
    shape_v, scale_v = _number(shape, "shape", where), _number(scale, "scale", where)
    if family == "":
        if rate_v > 0:
            raise TraceError(f"{where}: rate {rate} req/s but no fitted distribution (Gamma or Weibull)")
        return 0.0, cv_v, -1, 0.0, 0.0
    if family not in FAMILIES:
        raise TraceError(f"{where}: distribution must be Gamma, Weibull or empty (idle), got {family!r}")
    if rate_v == 0:
        raise TraceError(f"{where}: a fitted {family} in an idle window (rate 0)")
    if shape_v == 0 or scale_v == 0:
        raise TraceError(f"{where}: {family} shape and scale must be > 0, got {shape}, {scale}")
    return rate_v, cv_v, FAMILIES.index(family), shape_v, scale_v


def read_trace_csv(path: str | Path) -> np.ndarray:
    """One client's ``chunk-<id>-trace.csv``: a (windows, 5) array of rate req/s, CV, family code, shape, scale."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read ({exc})") from exc
    rows = [
        _trace_row(line.split(","), index, f"{path}:{number}")
        for index, (number, line) in enumerate((n, line) for n, line in enumerate(lines, start=1) if line.strip())
    ]
    if not rows:
        raise TraceError(f"{path}: empty trace (no windows)")
    return np.array(rows, dtype=float)


def _line_of(text: str, needle: str, start: int = 0) -> tuple[int, int]:
    """1-based line of ``needle``'s first occurrence from ``start``, and its offset (-1 and ``start`` if absent)."""
    at = text.find(needle, start)
    return (text.count("\n", 0, at) + 1, at) if at >= 0 else (-1, start)


def _pdf(literal: Any, name: str, where: str) -> dict[int, float]:
    """A ``{tokens: probability}`` pdf from its Python-literal string; probabilities are normalised if they sum to
    1 within 1e-6 (as ServeGen's own check)."""
    if not isinstance(literal, str):
        raise TraceError(f"{where}: {name} must be a string holding a dict literal, got {type(literal).__name__}")
    try:
        pdf = ast.literal_eval(literal)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise TraceError(f"{where}: {name} is not a Python dict literal ({type(exc).__name__}: {exc})") from None
    if not isinstance(pdf, dict):
        raise TraceError(f"{where}: {name} must be a dict {{tokens: probability}}, got {type(pdf).__name__}")
    for tokens, p in pdf.items():
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise TraceError(f"{where}: {name} keys must be token counts (integers >= 0), got {tokens!r}")
        if isinstance(p, bool) or not isinstance(p, int | float) or not (math.isfinite(p) and p >= 0):
            raise TraceError(f"{where}: {name}[{tokens}] must be a probability >= 0, got {p!r}")
    if pdf and not math.isclose(total := math.fsum(pdf.values()), 1.0, abs_tol=1e-6):
        raise TraceError(f"{where}: {name} probabilities sum to {total}, not 1")
    return pdf


def quantile_table(pdf: dict[int, float]) -> np.ndarray:
    """The pdf's quantiles at :data:`QUANTILE_GRID` (the smallest token count whose CDF reaches each probability)."""
    tokens = np.array(sorted(pdf), dtype=np.int64)
    cdf = np.cumsum([pdf[t] for t in tokens])
    cdf /= cdf[-1]
    at = np.searchsorted(cdf, QUANTILE_GRID * (1 - 1e-12), side="left")
    return tokens[np.minimum(at, tokens.size - 1)]


def read_dataset_json(path: str | Path, n_windows: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """One client's ``chunk-<id>-dataset.json``: (6-hour window index, prompt quantiles, output quantiles) for each
    window with both pdfs; a window with an empty pdf has no data (ServeGen skips it too)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read ({exc})") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise TraceError(f"{path}:1: expected an object {{window start s: {{input_tokens, output_tokens}}}}")
    tables: list[tuple[int, np.ndarray, np.ndarray]] = []
    offset = 0
    for key, entry in doc.items():
        line, offset = _line_of(text, json.dumps(key), offset)
        where = f"{path}:{line}"
        if not (key.isdigit() and int(key) % LENGTH_WINDOW_S == 0 and int(key) < n_windows * WINDOW_S):
            raise TraceError(
                f"{where}: window start {key!r} must be a multiple of {LENGTH_WINDOW_S} s within the trace's "
                f"{n_windows * WINDOW_S} s"
            )
        if not isinstance(entry, dict) or not {"input_tokens", "output_tokens"} <= entry.keys():
            raise TraceError(f"{where}: window {key} must hold input_tokens and output_tokens")
        pdfs, field_at = [], offset
        for name in ("input_tokens", "output_tokens"):
            field_line, field_at = _line_of(text, json.dumps(entry[name]), field_at)
            pdfs.append(_pdf(entry[name], name, f"{path}:{field_line if field_line > 0 else line}"))
        if all(pdfs):
            tables.append((int(key) // LENGTH_WINDOW_S, quantile_table(pdfs[0]), quantile_table(pdfs[1])))
    return tables


def read_service_folder(folder: str | Path) -> ServeGenService:
    """Every ``chunk-<id>-trace.csv`` in ``folder`` and the ``chunk-<id>-dataset.json`` files beside them."""
    folder = Path(folder)
    files = sorted((int(m.group(1)), p) for p in folder.glob("chunk-*-trace.csv") if (m := _CHUNK.fullmatch(p.name)))
    if not files:
        raise TraceError(f"{folder}: no ServeGen chunk-<id>-trace.csv files")
    traces = [read_trace_csv(path) for _, path in files]
    n_windows = traces[0].shape[0]
    for (_, path), trace in zip(files, traces, strict=True):
        if trace.shape[0] != n_windows:
            raise TraceError(f"{path}: {trace.shape[0]} windows, but {files[0][1].name} has {n_windows}")
    dense = np.stack(traces)  # (clients, windows, 5)
    window, client = np.nonzero(dense[:, :, 2].T >= 0)  # sorted by (window, client)
    rows = dense[client, window]
    lengths = [
        (c, w, p, o)
        for c, (cid, _) in enumerate(files)
        if (dataset := folder / f"chunk-{cid}-dataset.json").exists()
        for w, p, o in read_dataset_json(dataset, n_windows)
    ]
    width = QUANTILE_GRID.size
    return ServeGenService(
        name=str(folder),
        client_ids=np.array([cid for cid, _ in files], dtype=np.int64),
        n_windows=n_windows,
        client=client,
        window=window,
        rate_per_s=rows[:, 0],
        cv=rows[:, 1],
        family=rows[:, 2].astype(np.int64),
        shape=rows[:, 3],
        scale=rows[:, 4],
        length_client=np.array([c for c, _, _, _ in lengths], dtype=np.int64),
        length_window=np.array([w for _, w, _, _ in lengths], dtype=np.int64),
        prompt_quantiles=np.array([p for _, _, p, _ in lengths], dtype=np.int64).reshape(-1, width),
        output_quantiles=np.array([o for _, _, _, o in lengths], dtype=np.int64).reshape(-1, width),
    )


# ---- the compact form ------------------------------------------------------------------------------
def save_bundle(service: ServeGenService, path: str | Path) -> None:
    """Write ``service`` compactly: small integer types, float32 parameters, compressed."""
    np.savez_compressed(
        path,
        version=np.array(BUNDLE_VERSION),
        client_ids=service.client_ids.astype(np.int32),
        n_windows=np.array(service.n_windows),
        client=service.client.astype(np.uint16),
        window=service.window.astype(np.uint16),
        rate_per_s=service.rate_per_s.astype(np.float32),
        cv=service.cv.astype(np.float32),
        family=service.family.astype(np.uint8),
        shape=service.shape.astype(np.float32),
        scale=service.scale.astype(np.float32),
        length_client=service.length_client.astype(np.uint16),
        length_window=service.length_window.astype(np.uint16),
        prompt_quantiles=service.prompt_quantiles.astype(np.int32),
        output_quantiles=service.output_quantiles.astype(np.int32),
    )


def load_bundle(path: str | Path, name: str | None = None) -> ServeGenService:
    """A service written by :func:`save_bundle`; a file that is not one is an error naming it."""
    try:
        with np.load(path) as npz:
            data = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as exc:
        raise TraceError(f"{path}: not a ServeGen bundle (.npz) ({exc})") from exc
    missing = [k for k in ("version", "client_ids", "n_windows", *_TRAFFIC_KEYS, *_LENGTH_KEYS) if k not in data]
    if missing:
        raise TraceError(f"{path}: not a ServeGen bundle (lacks {', '.join(missing)})")
    if int(data["version"]) != BUNDLE_VERSION:
        raise TraceError(f"{path}: bundle version {int(data['version'])}, this reader takes {BUNDLE_VERSION}")
    floats = {k: data[k].astype(np.float64) for k in ("rate_per_s", "cv", "shape", "scale")}
    ints = {k: data[k].astype(np.int64) for k in ("client", "window", "family", *_LENGTH_KEYS)}
    return ServeGenService(
        name=name or str(path),
        client_ids=data["client_ids"].astype(np.int64),
        n_windows=int(data["n_windows"]),
        **floats,
        **ints,
    )


@cache
def load_service(ref: str) -> ServeGenService:
    """A bundled service by name, a bundle ``.npz``, or a folder of ServeGen files (read once per process)."""
    if ref in BUNDLED_SERVICES:
        with resources.as_file(resources.files("rlscale.workload").joinpath("data", f"servegen-{ref}.npz")) as path:
            return load_bundle(path, name=ref)
    path = Path(ref)
    if path.is_dir():
        return read_service_folder(path)
    if path.suffix == ".npz":
        return load_bundle(path)
    raise TraceError(
        f"{ref}: not a bundled ServeGen service ({', '.join(BUNDLED_SERVICES)}), a folder of chunk-<id>-trace.csv "
        "files or a bundle .npz"
    )
