"""A pod on a fresh simpy clock, with requests submitted at given times."""

from __future__ import annotations

import simpy

from rlscale.serving.config import PodConfig
from rlscale.serving.pod import JetStreamPod
from rlscale.serving.request import Request


class PodHarness:
    def __init__(self, **config) -> None:
        self.env = simpy.Environment()
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
