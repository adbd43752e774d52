"""rlscale: autoscaling JetStream LLM inference fleets, simulated, learned and deployed.

Reading guide (dependencies point down this list, never up):

* ``rlscale.specs`` — model (Hugging Face config.json fields) and hardware
  specs, the named catalog, calibration data and fitted step-model values.
* ``rlscale.serving`` — one JetStream pod: ``step_time`` (roofline model),
  ``calibration`` (fits it), ``pod`` (the orchestrator's pipeline in simpy,
  decode in closed form), ``hbm``, ``metrics`` (the /metrics pages).
* ``rlscale.workload`` — arrival processes, request lengths, trace replay.
* ``rlscale.cluster`` — the fleet: pod lifecycle, nodes and cost, routing.
* ``rlscale.metrics`` — the scrape/adapter pipeline a controller reads through.
* ``scenario``, ``simulation``, ``kpis``, ``timeline`` — a run: configuration, wiring, results.
* ``rlscale.hpa`` — the Kubernetes HPA algorithm, ported; ``rlscale.policies`` — autoscalers behind one
  interface (``Autoscaler.recommend(ClusterState)``) and the observation every learned policy sees.
* ``rlscale.envs`` — the Gymnasium environment ``rlscale/JetStream-v0`` and its action mapping.
* ``rlscale.training`` — Stable-Baselines3 training, MLflow tracking and registry, ``LearnedPolicy``.
* ``rlscale.experiments``, ``tuning``, ``tracking`` — comparisons over seeds, HPA tuning, MLflow.
* ``rlscale.deploy`` — the live controller (same observation code, Kubernetes API, Prometheus);
  ``rlscale.emulator`` — the simulated fleet behind a Kubernetes API subset, for end-to-end tests.
* ``cli`` — the ``rlscale`` command; ``plots`` — figures (matplotlib, lazily).

Start with ``rlscale.serving.pod.JetStreamPod``, ``rlscale.envs.jetstream.JetStreamEnv`` and
``rlscale.deploy.controller.Controller``.
"""

import gymnasium as _gymnasium

# The TimeLimit never comes before the environment's own truncation at the scenario's end: 14 days of 15 s syncs
# (the longest production record bundled, rlscale.workload.servegen). Shorter sync periods over weeks need
# gymnasium.make(..., max_episode_steps=N); rlscale's training passes the steps its scenarios need.
MAX_EPISODE_STEPS = 14 * 86_400 // 15
_gymnasium.register(
    id="rlscale/JetStream-v0",
    entry_point="rlscale.envs.jetstream:JetStreamEnv",
    max_episode_steps=MAX_EPISODE_STEPS,
)
