"""Test helpers: a pod on a fresh simpy clock with requests submitted at given times; an executor that refuses
work; a ramp scenario for tuning."""

from __future__ import annotations

from rlscale.clock import Clock
from rlscale.scenario import ScenarioConfig
from rlscale.serving.config import PodConfig
from rlscale.serving.pod import JetStreamPod
from rlscale.serving.request import Request


class PodHarness:
    def __init__(self, **config) -> None:
        self.env = Clock()
        self.pod = JetStreamPod(self.env, "pod-0", PodConfig(**config))
        self.requests: list[Request] = []
        self.submitted: list[Request] = []

    def submit_at(self, t: float, prompt: int, output: int) -> Request:
        request = Request(len(self.requests), t, prompt, output)
        self.requests.append(request)

        def arrive():
            yield self.env.timeout(t - self.env.now)
            self.pod.submit(request)
            self.submitted.append(request)

        self.env.process(arrive())
        return request

    def run(self, until: float) -> None:
        self.env.run(until=until)


def device_samples(pod, name: str) -> list[float]:
    """One value per chip of a device-plugin gauge."""
    return [s.value for f in pod.metrics.device_registry.collect() for s in f.samples if s.name == name]


class RefusingExecutor:
    """An executor that must not be asked for any work: a resumed sweep should find every unit in its store."""

    name = "refusing"

    def map_unordered(self, fn, items, cpus=1):
        if items:
            raise AssertionError(f"asked to run {len(items)} unit(s)")
        return iter(())


def ramp_scenario(to_rate_per_s: float = 24.0, start_s: float = 120, end_s: float = 2400) -> ScenarioConfig:
    """A 1-pod fleet (nodes in 30 s) under a ramp from 8 req/s of fixed 300/120-token requests: where the HPA's
    target decides both cost and attainment."""
    return ScenarioConfig.model_validate({
        "fleet": {"replicas": 1, "lifecycle": {"node_provisioning": {"kind": "fixed", "seconds": 30.0}}},
        "workload": {"arrival": {"process": "ramp", "from_rate_per_s": 8.0, "to_rate_per_s": to_rate_per_s,
                                 "start_s": start_s, "end_s": end_s},
                     "lengths": {"kind": "fixed", "prompt_tokens": 300, "output_tokens": 120}},
        "duration_s": end_s,
    })  # fmt: skip
