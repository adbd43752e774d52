"""Cost split at the silences of a run (time without an arrival: a replayed trace's recording gaps), and the share of
the oracle's saving on the rest, against hand-computed numbers."""

from __future__ import annotations

import pytest

from rlscale.experiments.report import silence_lines
from rlscale.experiments.silences import outside_silences, silent_columns, silent_split
from rlscale.experiments.stats import mean_ci, saving_shares


def timeline(arrivals: list[int], cost: list[float], interval_s: float = 60.0) -> list[dict[str, float]]:
    """Rows as rlscale.timeline writes them: each for the interval ending at t_s, cost accumulated from the start."""
    return [
        {"t_s": interval_s * (i + 1), "arrivals": a, "cost_usd": c}
        for i, (a, c) in enumerate(zip(arrivals, cost, strict=True))
    ]


def test_only_whole_intervals_without_an_arrival_count_as_silent():
    # the first interval is silent too: it starts at 0, not at a previous row
    split = silent_split(timeline([0, 5, 0, 0, 3], [0.5, 1.0, 2.0, 3.0, 4.5]))
    assert split.silent_s == 180.0
    assert split.cost_usd == pytest.approx(0.5 + 1.0 + 1.0)
    assert silent_split(timeline([1, 2], [1.0, 2.0])).silent_s == 0.0
    columns = silent_columns(timeline([0, 5, 0, 0, 3], [0.5, 1.0, 2.0, 3.0, 4.5]), cost_usd=4.5)
    assert columns == pytest.approx({"silent_s": 180.0, "silent_cost_usd": 2.5, "traffic_cost_usd": 2.0})


def rows(agent: str, costs: list[tuple[float, float]], attainment: float) -> list[dict[str, object]]:
    """results.csv rows of one agent over seeds 0, 1: (whole cost, cost in silences) per seed."""
    return [
        {"scenario": "day", "agent": agent, "seed": seed, "cost_usd": whole, "silent_s": 6600.0,
         "silent_cost_usd": silent, "traffic_cost_usd": whole - silent, "slo_attainment": attainment}
        for seed, (whole, silent) in enumerate(costs)
    ]  # fmt: skip


def test_the_share_outside_the_silences_leaves_out_what_only_foresight_saves_there():
    # static: 100 a seed, 20 of it in silences; the oracle 60, 2 in silences (one pod through the gap);
    # the policy keeps its pods through the gap like the static count: 89, 20 in silences.
    static = rows("static", [(100.0, 20.0), (100.0, 20.0)], 0.998)
    oracle = rows("oracle", [(60.0, 2.0), (60.0, 2.0)], 0.998)
    policy = rows("policy", [(89.0, 20.0), (89.0, 20.0)], 0.995)
    results = static + oracle + policy
    whole = saving_shares(results, "static", "oracle", require_attainment=False)["day", "policy"]
    outside = saving_shares(outside_silences(results), "static", "oracle", require_attainment=False)["day", "policy"]
    assert whole.mean == pytest.approx((100 - 89) / (100 - 60))  # 27.5%
    assert outside.mean == pytest.approx((80 - 69) / (80 - 58))  # 50%
    assert saving_shares(results, "static", "oracle")["day", "policy"].missing == "misses"  # the default rule holds

    summary = {
        ("day", name): {c: mean_ci(float(r[c]) for r in runs) for c in ("silent_s", "silent_cost_usd",
                        "traffic_cost_usd", "cost_usd", "slo_attainment")}
        for name, runs in (("static", static), ("oracle", oracle), ("policy", policy))
    }  # fmt: skip
    outside_shares = saving_shares(outside_silences(results), "static", "oracle", require_attainment=False)
    lines = silence_lines("day", ["static", "oracle", "policy"], summary, outside_shares, "static")
    table = {
        line.split(" | ")[0][2:]: line.split(" | ") for line in lines if line.startswith("| ") and "---" not in line
    }
    assert "110 min of this scenario had no arrival" in lines[1]
    assert table["policy"][1:4] == ["110 ± 0", "20.00 ± 0.00", "69.00 ± 0.00"]
    assert table["policy"][4] == "50 [50, 50], *at lower attainment* |"
    assert table["oracle"][4] == "100 [100, 100] |"


def test_no_silence_section_when_traffic_never_stopped():
    summary = {("day", "a"): {"silent_s": mean_ci([0.0, 0.0]), "slo_attainment": mean_ci([1.0, 1.0])}}
    assert silence_lines("day", ["a"], summary, None, None) == []
