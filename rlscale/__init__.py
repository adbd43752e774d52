"""rlscale: autoscaling JetStream LLM inference fleets, simulated and learned.

Reading guide (dependencies point down this list, never up):

* ``rlscale.specs`` — model (Hugging Face config.json fields) and hardware
  specs, the named catalog, calibration data and fitted step-model values.
* ``rlscale.serving`` — one JetStream pod: ``step_time`` (roofline model),
  ``calibration`` (fits it), ``pod`` (the orchestrator's pipeline in simpy,
  decode in closed form), ``hbm``, ``metrics`` (the /metrics pages).
* ``rlscale.workload`` — arrival processes and request lengths.
* ``scenario``, ``single_pod``, ``kpis`` — a run: configuration, wiring, results.
* ``cli`` — the ``rlscale`` command; ``plots`` — figures (matplotlib, lazily).

Start with ``rlscale.serving.pod.JetStreamPod`` and ``rlscale.serving.step_time``.
"""

import gymnasium as _gymnasium

_gymnasium.register(id="rlscale/JetStream-v0", entry_point="rlscale.envs.jetstream:JetStreamEnv")
