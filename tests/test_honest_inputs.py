"""No input is reinterpreted silently: long prompts are counted (or rejected), context lengths are checked, trace
replays say their scales, flags that cannot apply are errors, unknown metric names fail at load, an empty fleet is
called out, and a crashed pod is not drawn as ready."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rlscale.agents import load_agent
from rlscale.cli import app
from rlscale.scenario import ScenarioConfig, apply_overrides, load_scenario
from rlscale.serving.hbm import PodStartupError
from rlscale.serving.pod import PROMPT_TOO_LONG
from rlscale.simulation import run_scenario
from rlscale.specs import load_model
from rlscale.specs.catalog import SpecError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def fixed(prompt: int, output: int = 20, rate: float = 2.0, duration_s: float = 180.0, **pod) -> ScenarioConfig:
    return ScenarioConfig.model_validate({
        "pod": pod,
        "workload": {"arrival": {"process": "poisson", "rate_per_s": rate},
                     "lengths": {"kind": "fixed", "prompt_tokens": prompt, "output_tokens": output}},
        "duration_s": duration_s,
    })  # fmt: skip


def simulate(*args: str):
    return runner.invoke(app, ["simulate", *args])


# ---- long prompts ------------------------------------------------------------------------------------------------
def test_truncated_prompts_are_counted_per_run_and_per_minute():
    result = run_scenario(fixed(prompt=3000))  # 3000 > max_prefill_predict_length 1024
    k = result.kpis
    assert k.arrived > 300 and k.failed == 0
    served = k.completed + k.in_flight
    assert k.truncated_requests == served  # every request the pod took, 1976 tokens dropped each
    assert k.truncated_prompt_tokens == served * (3000 - 1024)
    # per minute: the requests that ended in that minute with a cut prompt
    assert sum(row["truncated"] for row in result.timeline) == k.completed
    assert any("truncated" in w and "max_prefill_predict_length (1024)" in w for w in result.warnings)


def test_prompts_that_fit_are_not_counted_and_raise_no_warning():
    result = run_scenario(fixed(prompt=1024))  # exactly the longest prefill: nothing cut
    assert result.kpis.truncated_requests == result.kpis.truncated_prompt_tokens == 0
    assert result.warnings == []


def test_answers_cut_by_max_target_length_are_counted():
    k = run_scenario(fixed(prompt=1000, output=1500)).kpis  # 1000 + 1500 > 2048: 452 tokens short each
    assert k.capped_output_requests == k.completed + k.in_flight
    assert k.capped_output_tokens == k.capped_output_requests * (1000 + 1500 - 2048)


def test_reject_mode_fails_long_prompts_with_their_cause(harness):
    h = harness(long_prompts="reject")
    long, short = h.submit_at(0.0, 1025, 10), h.submit_at(0.0, 1024, 10)
    h.run(10.0)
    assert (long.state.value, long.failure, long.finish_s) == ("failed", PROMPT_TOO_LONG, 0.0)
    assert short.state.value == "completed" and short.truncated_prompt_tokens == 0
    k = run_scenario(fixed(prompt=2000, long_prompts="reject")).kpis
    assert k.failures == {PROMPT_TOO_LONG: k.arrived} and k.completed == 0 and k.slo_attainment == 0.0
    assert k.truncated_requests == 0


def test_simulate_prints_and_records_truncation(tmp_path):
    scenario = tmp_path / "long.yaml"
    scenario.write_text(yaml.safe_dump(fixed(prompt=3000, duration_s=120.0).model_dump(mode="json")))
    out = simulate("--scenario", str(scenario), "--out", str(tmp_path / "run"))
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    k = summary["kpis"]
    assert k["truncated_requests"] > 0 and k["truncated_prompt_tokens"] == k["truncated_requests"] * 1976
    assert f"truncated  {k['truncated_requests']} prompts over 1024 tokens" in out.output
    assert f"{k['in_flight']} unfinished at the end" in out.output
    assert summary["warnings"] and "warning:" in out.output  # stderr is mixed into output by CliRunner


# ---- context length ----------------------------------------------------------------------------------------------
def test_a_target_beyond_the_models_context_is_an_error_naming_both(harness):
    with pytest.raises(PodStartupError, match=r"max_target_length \(8192\) exceeds llama2-7b's context length "
                                              r"\(max_position_embeddings 4096\)"):  # fmt: skip
        harness(max_prefill_predict_length=4096, max_target_length=8192, per_device_batch_size=1)


def test_the_long_context_model_takes_a_long_target(harness):
    model = load_model("llama3.1-8b")
    assert model.max_position_embeddings == 131072 and model.kv_heads == 8
    h = harness(model="llama3.1-8b", hardware="h200", kv_mode="paged", per_device_batch_size=8,
                max_prefill_predict_length=32768, max_target_length=131072)  # fmt: skip
    request = h.submit_at(0.0, 30000, 4)
    h.run(60.0)
    assert request.state.value == "completed" and request.truncated_prompt_tokens == 0
    with pytest.raises(PodStartupError, match="131073"):
        harness(model="llama3.1-8b", kv_mode="paged", max_prefill_predict_length=32768, max_target_length=131073)


# ---- trace replays -----------------------------------------------------------------------------------------------
def write_azure(path: Path, n: int = 200, gap_s: float = 0.5) -> Path:
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    rows += [f"2023-11-16 18:00:{i * gap_s // 1:02.0f}.{int(i * gap_s % 1 * 10)}000000,300,40" for i in range(n // 2)]
    rows += [f"2023-11-16 18:01:{i * gap_s // 1:02.0f}.{int(i * gap_s % 1 * 10)}000000,300,40" for i in range(n // 2)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_trace_given_on_the_command_line_plays_at_its_own_rate(tmp_path):
    base = load_scenario(ROOT / "envs" / "azure-trace.yaml")
    assert base.workload.trace.rate_scale == 3.0  # the scenario replays its own trace at 3x
    trace = str(write_azure(tmp_path / "mine.csv"))
    own = apply_overrides(base, trace=trace).workload.trace
    assert (own.path, own.rate_scale, own.time_scale, own.start_s, own.duration_s) == (trace, 1.0, 1.0, 0.0, None)
    assert apply_overrides(base, trace=trace, rate_scale=2.0).workload.trace.rate_scale == 2.0
    assert apply_overrides(base, rate_scale=0.5).workload.trace.rate_scale == 0.5  # the scenario's own trace


def test_simulate_says_and_records_the_effective_replay(tmp_path):
    trace = write_azure(tmp_path / "mine.csv")
    out = simulate("--scenario", "envs/azure-trace.yaml", "--trace", str(trace), "--duration", "100",
                   "--out", str(tmp_path / "run"))  # fmt: skip
    assert out.exit_code == 0, out.output
    assert f"replay     {trace} (azure): rate x1, time x1" in out.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    replay = summary["replay"]
    assert (replay["rate_scale"], replay["time_scale"], replay["format"]) == (1.0, 1.0, "azure")
    assert replay["trace_requests"] == 200 and replay["window_s"] == pytest.approx(109.5)
    # the trace spans 109.5 s: 100 requests in its first 49.5 s, 80 of the next 100 before the run ends at 100 s
    assert summary["kpis"]["arrived"] == replay["replayed_window_requests"] == 180
    assert summary["scenario"]["workload"]["trace"]["rate_scale"] == 1.0


def test_flags_that_cannot_apply_are_errors():
    out = simulate("--scenario", "envs/azure-trace.yaml", "--rate", "3")
    assert out.exit_code == 2 and "--rate does not apply to a trace replay" in out.output
    out = simulate("--scenario", "envs/steady.yaml", "--rate-scale", "2")
    assert out.exit_code == 2 and "--rate-scale applies to a trace replay" in out.output
    out = simulate("--scenario", "envs/diurnal.yaml", "--rate", "3")
    assert out.exit_code == 2 and "--rate only applies to a Poisson scenario, not 'diurnal'" in out.output


def test_trace_format_reads_a_file_whose_extension_does_not_say(tmp_path):
    trace = write_azure(tmp_path / "mine.txt")
    out = simulate("--scenario", "envs/azure-trace.yaml", "--trace", str(trace), "--duration", "20", "--json",
                   "--out", str(tmp_path / "a"))  # fmt: skip
    assert out.exit_code == 2 and "--trace-format azure|mooncake" in out.output
    out = simulate("--scenario", "envs/azure-trace.yaml", "--trace", str(trace), "--trace-format", "azure",
                   "--duration", "20", "--json", "--out", str(tmp_path / "b"))  # fmt: skip
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout.splitlines()[-1])["replay"]["format"] == "azure"


# ---- agents that could never scale -------------------------------------------------------------------------------
def hpa(metric: str, kind: str = "Pods") -> dict:
    source = (
        {"type": "Pods", "pods": {"metric": {"name": metric}, "target": {"type": "AverageValue", "averageValue": "5"}}}
        if kind == "Pods"
        else {"type": "External", "external": {"metric": {"name": metric}, "target": {"type": "Value", "value": "5"}}}
    )
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "jetstream"},
                     "minReplicas": 1, "maxReplicas": 4, "metrics": [source]}}  # fmt: skip


def test_an_agent_on_a_metric_nobody_exports_fails_at_load(tmp_path):
    scenario = load_scenario(ROOT / "envs" / "steady.yaml")
    bad = tmp_path / "typo.yaml"
    bad.write_text(yaml.safe_dump(hpa("jetstream_prefill_backlog")))
    with pytest.raises(SpecError) as err:
        load_agent(bad, scenario)
    message = str(err.value)
    assert message.startswith(f"{bad}: spec.metrics[0].pods.metric.name: 'jetstream_prefill_backlog' is not a Pods")
    assert "jetstream_prefill_backlog_size" in message and "memory_used_percentage" in message
    load_agent(bad)  # no scenario: a live cluster's adapter may serve names of its own
    out = simulate("--scenario", "envs/steady.yaml", "--agent", str(bad), "--duration", "10")
    assert out.exit_code == 2 and "is not a Pods metric the simulated cluster exports" in out.output


@pytest.mark.parametrize(
    ("metric", "kind"),
    [
        ("jetstream_prefill_backlog_size", "Pods"),
        ("prometheus.googleapis.com|jetstream_slots_used_percentage|gauge", "Pods"),
        ("memory_used", "Pods"),
        ("memory_used_percentage", "External"),
        ("jetstream_time_to_first_token_count", "External"),
    ],
)
def test_every_exported_name_loads(tmp_path, metric, kind):
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(hpa(metric, kind)))
    load_agent(path, load_scenario(ROOT / "envs" / "steady.yaml"))


def test_adapter_only_metrics_are_not_pods_metrics_and_other_kinds_are_checked_too(tmp_path):
    scenario = load_scenario(ROOT / "envs" / "steady.yaml")
    path = tmp_path / "pods.yaml"
    path.write_text(yaml.safe_dump(hpa("memory_used_percentage", "Pods")))
    with pytest.raises(SpecError, match=r"\(External only\)"):
        load_agent(path, scenario)
    kpa = tmp_path / "kpa.yaml"
    kpa.write_text(yaml.safe_dump({"kind": "KnativePodAutoscaler", "spec": {"metric": "queue_size"}}))
    with pytest.raises(SpecError, match=r"spec\.metric: 'queue_size' is not a Pods metric"):
        load_agent(kpa, scenario)


def test_the_exported_names_are_what_a_scrape_holds(harness):
    from rlscale.serving.metrics import DEVICE_SAMPLE_NAMES, SERVER_SAMPLE_NAMES

    pod = harness().pod
    assert set(pod.metrics.snapshot()) == SERVER_SAMPLE_NAMES
    assert set(pod.metrics.device_snapshot()) == DEVICE_SAMPLE_NAMES


def test_an_empty_fleet_nothing_scales_is_an_error_and_one_that_scales_later_a_warning():
    data = fixed(prompt=100).model_dump(mode="json")
    empty = ScenarioConfig.model_validate({**data, "fleet": {"replicas": 0}})
    with pytest.raises(ValueError, match=r"fleet\.replicas is 0 and nothing scales it up"):
        run_scenario(empty)
    out = simulate("--scenario", "envs/steady.yaml", "--replicas", "0", "--duration", "10")
    assert out.exit_code == 2 and "nothing scales it up" in out.output
    later = ScenarioConfig.model_validate({**data, "fleet": {"replicas": 0}, "schedule": [{"at_s": 60, "replicas": 1}]})
    result = run_scenario(later)
    assert any("the schedule's step at 60 s" in w for w in result.warnings)
    assert result.kpis.failures.get("no ready pod", 0) > 0  # what the warning said would happen


# ---- crashed pods ------------------------------------------------------------------------------------------------
def test_a_pod_restarting_after_an_oom_is_not_drawn_as_ready():
    # one paged pod on a v5e-4 with ~20k tokens of KV room, fed long answers: it overflows HBM and restarts
    scenario = ScenarioConfig.model_validate({
        "pod": {"hardware": "v5e-4", "kv_mode": "paged", "per_device_batch_size": 16, "hbm_workspace_fraction": 0.6},
        "workload": {"arrival": {"process": "poisson", "rate_per_s": 2.0},
                     "lengths": {"kind": "fixed", "prompt_tokens": 500, "output_tokens": 1500}},
        "duration_s": 600.0, "timeline_interval_s": 10.0,
    })  # fmt: skip
    result = run_scenario(scenario)
    assert result.kpis.ooms > 0
    rows = result.timeline
    assert sum(r["ooms"] for r in rows) == result.kpis.ooms
    down = [r for r in rows if r["restarting"]]
    assert down, "the restart (back-off + reload) spans whole 10 s rows"
    assert all(r["ready"] == 0 and r["restarting"] == 1 for r in down)
    assert all(r["ready"] + r["restarting"] == 1 for r in rows)


# ---- what a researcher gets ----------------------------------------------------------------------------------------
def test_requests_csv_has_one_row_per_request_matching_the_kpis(tmp_path):
    out = simulate("--scenario", "envs/single-pod.yaml", "--duration", "120", "--requests", "--percentiles",
                   "50,90,99.9", "--json", "--out", str(tmp_path / "run"))  # fmt: skip
    assert out.exit_code == 0, out.output
    kpis = json.loads(out.stdout.splitlines()[-1])
    assert set(kpis["ttft_s"]) == {"p50", "p90", "p99.9"} == set(kpis["latency_s"])
    with (tmp_path / "run" / "requests.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == kpis["arrived"]
    assert sorted(int(r["id"]) for r in rows) == list(range(kpis["arrived"]))
    outcomes = [r["outcome"] for r in rows]
    assert outcomes.count("completed") == kpis["completed"] and outcomes.count("unfinished") == kpis["in_flight"]
    truncated = [
        r for r in rows if r["prompt_tokens_served"] and int(r["prompt_tokens_served"]) < int(r["prompt_tokens"])
    ]
    assert len(truncated) == kpis["truncated_requests"]
    done = [r for r in rows if r["outcome"] == "completed"]
    ttft = sorted(float(r["first_token_s"]) - float(r["arrival_s"]) for r in done)
    assert ttft[len(ttft) // 2] == pytest.approx(kpis["ttft_s"]["p50"], rel=0.05)
    assert all(float(r["arrival_s"]) <= float(r["prefill_start_s"]) <= float(r["first_token_s"])
               <= float(r["insert_s"]) <= float(r["done_s"]) for r in done)  # fmt: skip


def test_bad_percentiles_are_an_error_naming_the_option():
    for bad in ("50,abc", "0,99", "99,99", "101"):
        out = simulate("--percentiles", bad, "--duration", "10")
        assert out.exit_code == 2 and "--percentiles" in out.output, bad
