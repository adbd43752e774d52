"""``requests.csv``: one row per request, streamed to disk as requests end, for analysis outside rlscale.

Rows are written in the order requests end (completed or failed), then the
requests still in flight when the run stops (``outcome`` ``unfinished``), so
the file never needs the whole run in memory. Times are simulated seconds
from the start of the run, written exactly (shortest round-trip decimal); a
time the request never reached is left empty.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from rlscale.serving.request import Request, RequestState

REQUEST_COLUMNS = {
    "id": "Arrival order, from 0.",
    "arrival_s": "Arrival at the gateway, s.",
    "prompt_tokens": "Prompt length as given by the workload or trace.",
    "prompt_tokens_served": "Prompt tokens the server prefilled (after truncation to max_prefill_predict_length).",
    "padded_tokens": "The prefill bucket actually computed.",
    "output_tokens": "Output length as given.",
    "output_tokens_served": "Output tokens the server generated or was to generate (max_target_length cap).",
    "pod": "The server it was routed to (empty if it never left the gateway).",
    "prefill_start_s": "Prefill start, s.",
    "first_token_s": "First token (prefill end), s.",
    "insert_s": "Insert into a decode slot, s.",
    "done_s": "Completion or failure, s.",
    "outcome": "completed, failed or unfinished (still in flight at the end of the run).",
    "failure": "Why it failed (empty otherwise).",
}


def _time(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


def _row(request: Request) -> tuple:
    if request.state is RequestState.COMPLETED:
        outcome = "completed"
    elif request.state is RequestState.FAILED:
        outcome = "failed"
    else:
        outcome = "unfinished"
    served = request.prefill_tokens > 0
    return (
        request.id,
        repr(request.arrival_s),
        request.prompt_tokens,
        request.prefill_tokens if served else "",
        request.padded_tokens if served else "",
        request.output_tokens,
        request.target_tokens if served else "",
        request.pod,
        _time(request.prefill_start_s),
        _time(request.first_token_s),
        _time(request.insert_s),
        _time(request.finish_s) if outcome != "unfinished" else "",
        outcome,
        request.failure,
    )


class RequestLog:
    """Writes ``requests.csv`` as requests end; :meth:`close` adds the unfinished ones."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(REQUEST_COLUMNS)
        self.rows = 0

    def ended(self, request: Request) -> None:
        self._writer.writerow(_row(request))
        self.rows += 1

    def close(self, unfinished: Iterable[Request] = ()) -> None:
        for request in unfinished:
            self.ended(request)
        self._file.close()
