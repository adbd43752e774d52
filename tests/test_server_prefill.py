"""The server's own prefill times read back from scraped histograms: between two scrapes, the increments of
``jetstream_time_to_first_token`` and ``jetstream_time_per_prefill_token`` are sums over the requests prefilled in
between, which the server's running count picks out in first-token order. Checked against hand-built pages."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rlscale.loadtest.engine import METRICS_FILE
from rlscale.loadtest.server_prefill import NoServerPrefills, server_prefills

URL = "http://pod-0/metrics"
PREFILL_S = {16: 0.010, 64: 0.020, 256: 0.050}  # the server's prefill time per bucket


def write_pages(
    folder: Path, prompts: list[int], buckets: list[int], cuts: list[int], bos: int = 1, servers: int = 1
) -> None:
    """Scrapes at the positions ``cuts`` (cumulative prefills counted), the first at 0, histograms of the
    prefills of ``prompts`` (in first-token order) padded to ``buckets``; the server counts ``bos`` extra tokens."""
    with (folder / METRICS_FILE).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "url", "name", "labels", "value"])
        for k, n in enumerate(cuts):
            seconds = sum(PREFILL_S[b] for b in buckets[:n])
            per_token = sum(PREFILL_S[b] / (p + bos) for p, b in zip(prompts[:n], buckets[:n], strict=True))
            tokens = sum(p + bos for p in prompts[:n])
            for s in range(servers):
                labels = json.dumps({"id": f"pod-{s}"})
                for name, value in (
                    ("jetstream_time_to_first_token", seconds),
                    ("jetstream_time_per_prefill_token", per_token),
                    ("jetstream_request_input_length", tokens),
                ):
                    for part, v in (("sum", value), ("count", n)):
                        w.writerow([3.0 * k, URL, f"{name}_{part}", labels, repr(float(v))])


PROMPTS = [10, 50, 200, 12, 60, 250, 16]
BUCKETS = [16, 64, 256, 16, 64, 256, 16]


def test_each_interval_gives_the_mean_prefill_of_its_requests(tmp_path: Path) -> None:
    write_pages(tmp_path, PROMPTS, BUCKETS, [0, 2, 2, 5, 7])
    server = server_prefills(tmp_path, np.array(BUCKETS), np.array(PROMPTS))
    assert server.extra_tokens == 1 and server.intervals == 3 and server.dropped == 0  # the empty interval skipped
    ttft = [e for e in server.equations if e.kind == "ttft"]
    assert ttft[0].weights == {16: 0.5, 64: 0.5} and ttft[0].seconds == pytest.approx(0.015)
    assert ttft[1].weights == pytest.approx({256: 1 / 3, 16: 1 / 3, 64: 1 / 3})  # requests 2-4, one per bucket
    for e in server.equations:  # every equation holds at the server's true prefill times
        assert sum(w * PREFILL_S[b] for b, w in e.weights.items()) == pytest.approx(e.seconds, rel=1e-9), e


def test_an_interval_whose_prompts_do_not_add_up_is_dropped(tmp_path: Path) -> None:
    write_pages(tmp_path, PROMPTS, BUCKETS, [0, 2, 5, 7])
    swapped = [PROMPTS[0], PROMPTS[2], PROMPTS[1], *PROMPTS[3:]]  # the client saw requests 1 and 2 the other way
    buckets = [BUCKETS[0], BUCKETS[2], BUCKETS[1], *BUCKETS[3:]]
    server = server_prefills(tmp_path, np.array(buckets), np.array(swapped))
    assert (server.intervals, server.dropped) == (1, 2)
    assert "2 dropped" in server.note()


def test_scrapes_after_a_restart_and_past_the_last_answer_are_not_used(tmp_path: Path) -> None:
    write_pages(tmp_path, PROMPTS, BUCKETS, [0, 2, 5, 7, 1])  # the server restarted: its counters fell to 1
    server = server_prefills(tmp_path, np.array(BUCKETS[:5]), np.array(PROMPTS[:5]))  # the client saw 5 answered
    assert server.intervals == 2  # [0, 2) and [2, 5); [5, 7) went past what the client saw, then the reset


def test_no_usable_pages_say_why(tmp_path: Path) -> None:
    with pytest.raises(NoServerPrefills, match=r"no metrics\.csv"):
        server_prefills(tmp_path, np.array(BUCKETS), np.array(PROMPTS))
    write_pages(tmp_path, PROMPTS, BUCKETS, [0, 2, 5], servers=2)
    with pytest.raises(NoServerPrefills, match="2 servers"):
        server_prefills(tmp_path, np.array(BUCKETS), np.array(PROMPTS))
