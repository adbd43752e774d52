"""Trace replay: real request streams (arrival time, prompt and output lengths) played back, reshaped if asked.

Readers cover the Azure LLM inference trace CSV (``TIMESTAMP,ContextTokens,
GeneratedTokens``) and Mooncake's JSONL (``timestamp`` in ms,
``input_length``, ``output_length``). A bad row is a ``TraceError`` that
starts ``file:line:`` so it can be fixed in an editor; times are returned in
seconds from the first request.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from rlscale.workload.lengths import BUNDLED_TRACES, EmpiricalLengths, trace_text

TraceFormat = Literal["azure", "mooncake"]
FORMAT_BY_SUFFIX: dict[str, TraceFormat] = {".csv": "azure", ".jsonl": "mooncake", ".json": "mooncake"}
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length")

# 2023-11-16 18:15:46.6805900 (7 fractional digits: more than datetime takes), optionally with a zone.
_AZURE_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?")


class TraceError(ValueError):
    """A trace that cannot be used; for a bad row the message starts with ``file:line:``."""


class TraceRequest(NamedTuple):
    arrival_s: float
    prompt_tokens: int
    output_tokens: int


def _read(trace: str | Path) -> tuple[str, str]:
    try:
        return trace_text(trace)
    except OSError as exc:
        raise TraceError(f"{trace}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise TraceError(f"{trace}: not a text file ({exc})") from exc


def _tokens(value: Any, name: str, where: str) -> int:
    """A token count >= 1 from a CSV cell or JSON value."""
    if isinstance(value, bool):
        raise TraceError(f"{where}: {name} must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise TraceError(f"{where}: {name} must be an integer, got {value!r}") from None
    if not isinstance(value, int):
        raise TraceError(f"{where}: {name} must be an integer, got {value!r}")
    if value < 1:
        raise TraceError(f"{where}: {name} must be >= 1, got {value}")
    return value


def _azure_time(text: str, where: str) -> tuple[int, float]:
    """Whole epoch seconds and the fraction apart, so differences keep all 7 digits."""
    match = _AZURE_TIMESTAMP.fullmatch(text.strip())
    try:
        if match is None:
            raise ValueError("expected YYYY-MM-DD HH:MM:SS[.fraction]")
        date, clock, fraction, zone = match.groups()
        stamp = datetime.fromisoformat(f"{date}T{clock}{zone or ''}")
    except ValueError as exc:
        raise TraceError(f"{where}: TIMESTAMP {text!r} is not a timestamp ({exc})") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp()), float(f"0.{fraction}") if fraction else 0.0


def _finish(requests: list[TraceRequest], name: str) -> tuple[TraceRequest, ...]:
    if not requests:
        raise TraceError(f"{name}: empty trace (no requests)")
    return tuple(requests)


def read_azure_csv(path: str | Path) -> tuple[TraceRequest, ...]:
    """An Azure LLM inference trace CSV (or the bundled ``azure-conv``)."""
    text, name = _read(path)
    rows = csv.reader(text.splitlines())
    header = [h.strip() for h in next(rows, [])]
    missing = [c for c in AZURE_COLUMNS if c not in header]
    if missing:
        raise TraceError(f"{name}:1: header lacks column(s) {', '.join(missing)} (got {','.join(header) or 'nothing'})")
    cols = [header.index(c) for c in AZURE_COLUMNS]
    requests: list[TraceRequest] = []
    first: tuple[int, float] | None = None
    last_s = 0.0
    for line, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        where = f"{name}:{line}"
        if len(row) < len(header):
            raise TraceError(f"{where}: expected {len(header)} fields ({','.join(header)}), got {len(row)}")
        stamp, prompt, output = (row[c] for c in cols)
        seconds, fraction = _azure_time(stamp, where)
        first = first or (seconds, fraction)
        arrival = (seconds - first[0]) + (fraction - first[1])
        if arrival < last_s:
            raise TraceError(f"{where}: timestamp goes backwards ({stamp.strip()} is {last_s - arrival:.6f} s early)")
        requests.append(
            TraceRequest(arrival, _tokens(prompt, "ContextTokens", where), _tokens(output, "GeneratedTokens", where))
        )
        last_s = arrival
    return _finish(requests, name)


def read_mooncake_jsonl(path: str | Path) -> tuple[TraceRequest, ...]:
    """A Mooncake JSONL trace: one object per line, ``timestamp`` in ms; ``hash_ids`` (prefix blocks) is ignored."""
    text, name = _read(path)
    requests: list[TraceRequest] = []
    first_ms: float | None = None
    last_s = 0.0
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{name}:{line}"
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict):
            raise TraceError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [f for f in MOONCAKE_FIELDS if f not in record]
        if missing:
            raise TraceError(f"{where}: missing field(s) {', '.join(missing)}")
        stamp = record["timestamp"]
        if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp):
            raise TraceError(f"{where}: timestamp must be a number of ms, got {stamp!r}")
        first_ms = stamp if first_ms is None else first_ms
        arrival = (stamp - first_ms) / 1000.0
        if arrival < last_s:
            raise TraceError(f"{where}: timestamp goes backwards ({stamp} ms is {(last_s - arrival) * 1e3:g} ms early)")
        prompt = _tokens(record["input_length"], "input_length", where)
        requests.append(TraceRequest(arrival, prompt, _tokens(record["output_length"], "output_length", where)))
        last_s = arrival
    return _finish(requests, name)


@cache
def _bundled(name: str) -> tuple[TraceRequest, ...]:
    return read_azure_csv(name)


def trace_format(path_or_name: str | Path, format: TraceFormat | None = None) -> TraceFormat:
    """The format a trace is read as: the one given, else the bundled trace's, else the file extension's."""
    if format is not None:
        return format
    if str(path_or_name) in BUNDLED_TRACES:
        return "azure"
    found = FORMAT_BY_SUFFIX.get(Path(path_or_name).suffix.lower())
    if found is None:
        raise TraceError(
            f"{path_or_name}: cannot tell the trace format from the extension "
            f"(expected one of {', '.join(FORMAT_BY_SUFFIX)}); say which with --trace-format azure|mooncake "
            "(or format: in the scenario's workload.trace)"
        )
    return found


def load_trace(path_or_name: str | Path, format: TraceFormat | None = None) -> tuple[TraceRequest, ...]:
    """A trace by bundled name or path; the format comes from the extension unless given."""
    if format is None and str(path_or_name) in BUNDLED_TRACES:
        return _bundled(str(path_or_name))
    format = trace_format(path_or_name, format)
    if format == "azure":
        return read_azure_csv(path_or_name)
    if format == "mooncake":
        return read_mooncake_jsonl(path_or_name)
    raise TraceError(f"{path_or_name}: format must be 'azure' or 'mooncake', got {format!r}")


def trace_lengths(requests: Sequence[TraceRequest]) -> EmpiricalLengths:
    """The (prompt, output) pairs of a trace, to resample or fit."""
    return EmpiricalLengths(
        np.array([r.prompt_tokens for r in requests]), np.array([r.output_tokens for r in requests])
    )


@dataclass(frozen=True)
class TraceReplay:
    """Replay a window of a trace, stretched in time and thinned or multiplied in rate.

    The window [start_s, start_s + duration_s) of the trace (to its end when
    ``duration_s`` is None) is shifted to start at 0 and its times multiplied
    by ``time_scale`` (2 plays it at half speed). Then each request is emitted
    floor(rate_scale) times, plus once more with probability frac(rate_scale):
    0.5 keeps a random half, 2 doubles it. Copies after the first are jittered
    by uniform(0, mean gap) so that duplicates do not land on the same
    instant; arrival lengths stay with their request, so the length mix is
    the trace's.
    """

    requests: Sequence[TraceRequest]
    time_scale: float = 1.0
    rate_scale: float = 1.0
    start_s: float = 0.0
    duration_s: float | None = None
    _arrivals: np.ndarray = field(init=False, repr=False, compare=False)
    _prompts: np.ndarray = field(init=False, repr=False, compare=False)
    _outputs: np.ndarray = field(init=False, repr=False, compare=False)
    _window_s: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "requests", tuple(TraceRequest(*r) for r in self.requests))
        if not self.requests:
            raise ValueError("requests must hold at least one request, got none")
        if not (self.time_scale > 0 and math.isfinite(self.time_scale)):
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")
        if not (self.rate_scale > 0 and math.isfinite(self.rate_scale)):
            raise ValueError(f"rate_scale must be > 0, got {self.rate_scale}")
        if not self.start_s >= 0:
            raise ValueError(f"start_s must be >= 0, got {self.start_s}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0 or None, got {self.duration_s}")
        arrivals = np.array([r.arrival_s for r in self.requests], dtype=float)
        if np.any(np.diff(arrivals) < 0):
            i = int(np.argmax(np.diff(arrivals) < 0)) + 1
            raise ValueError(f"requests must be sorted by arrival_s; requests[{i}] arrives at {arrivals[i]}, earlier")
        end = math.inf if self.duration_s is None else self.start_s + self.duration_s
        keep = (arrivals >= self.start_s) & (arrivals < end)
        if not keep.any():
            raise ValueError(
                f"start_s={self.start_s}, duration_s={self.duration_s} selects no requests "
                f"(the trace spans [{arrivals[0]}, {arrivals[-1]}] s)"
            )
        window = self.duration_s if self.duration_s is not None else float(arrivals[keep][-1]) - self.start_s
        object.__setattr__(self, "_arrivals", (arrivals[keep] - self.start_s) * self.time_scale)
        object.__setattr__(self, "_prompts", np.array([r.prompt_tokens for r in self.requests])[keep])
        object.__setattr__(self, "_outputs", np.array([r.output_tokens for r in self.requests])[keep])
        object.__setattr__(self, "_window_s", window * self.time_scale)

    @property
    def window_s(self) -> float:
        """Length of the replayed window after ``time_scale``, s."""
        return self._window_s

    @property
    def mean_gap_s(self) -> float:
        """Mean inter-arrival time of the replayed window before ``rate_scale``: the copies' jitter range."""
        return self._window_s / self._arrivals.size

    @property
    def mean_rate_per_s(self) -> float:
        """Expected arrivals per second over the window (inf for a one-instant window)."""
        return self._arrivals.size * self.rate_scale / self._window_s if self._window_s > 0 else math.inf

    def describe(self, until_s: float) -> dict[str, float | int | None]:
        """The effective replay, for a run's header and summary: scales, the window of the trace it plays, and how
        much of it a run of ``until_s`` simulated seconds reaches."""
        arrivals = np.array([r.arrival_s for r in self.requests])
        played = int(np.searchsorted(self._arrivals, until_s, side="left"))
        return {
            "rate_scale": self.rate_scale,
            "time_scale": self.time_scale,
            "window_start_s": self.start_s,
            "window_s": self._window_s / self.time_scale,  # in the trace's own time
            "trace_span_s": float(arrivals[-1] - arrivals[0]),
            "trace_requests": len(self.requests),
            "window_requests": int(self._arrivals.size),
            "replayed_window_requests": played,  # before rate_scale: those arriving within the run
            "expected_arrivals": played * self.rate_scale,
            "mean_rate_per_s": self.mean_rate_per_s,
        }

    def times_and_lengths(self, rng: np.random.Generator, until_s: float) -> Iterator[tuple[float, int, int]]:
        n = self._arrivals.size
        whole = math.floor(self.rate_scale)
        extra = self.rate_scale - whole
        copies = np.full(n, whole, dtype=np.int64)
        if extra > 0:
            copies += rng.random(n) < extra
        source = np.repeat(np.arange(n), copies)
        rank = np.arange(source.size) - np.repeat(np.cumsum(copies) - copies, copies)  # 0 for each first copy
        times = self._arrivals[source]
        later = rank > 0
        times[later] += rng.uniform(0.0, self.mean_gap_s, size=int(later.sum()))
        order = np.argsort(times, kind="stable")
        for t, p, o in zip(
            times[order].tolist(),
            self._prompts[source[order]].tolist(),
            self._outputs[source[order]].tolist(),
            strict=True,
        ):
            if t >= until_s:
                return
            yield t, p, o

    def times(self, rng: np.random.Generator, until_s: float) -> Iterator[float]:
        for t, _, _ in self.times_and_lengths(rng, until_s):
            yield t
