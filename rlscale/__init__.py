"""rlscale: autoscaling JetStream LLM inference fleets, simulated, learned and deployed.

Reading guide, in layers from the bottom up: each imports only the layers below it (``|``: independent of each
other, ``:``: may import each other), imports inside functions included. The order is data in ``pyproject.toml``
(``[tool.importlinter]``), checked by ``lint-imports`` (``make lint``)::

    cli                                          the rlscale command
    deploy | emulator                            the live controller | the simulated fleet behind a Kubernetes API
    training | tuning                            SB3 training and sweeps | Optuna search of HPA settings
    envs | experiments | reports                 the Gymnasium env | comparisons on executors | a run's folder
    agents                                       agent files -> policies (kinds resolved lazily)
    planning                                     plans by simulating: the cheapest static count, the oracle
    simulation : kpis : kpi_stream : timeline : request_log      a run and what it measures
    policies | scenario                          the control loop and the policies | a scenario, composed
    cluster | metrics | plots | workload         the fleet | the metrics pipeline | figures | traffic
    data | hpa | serving                         shipped files by name | the HPA, ported | one JetStream pod
    clock | config | pods | specs | tracking     vocabulary and sinks: nothing of rlscale below them

* ``config``, ``clock``, ``pods`` — strict configuration models, the simpy clock, what a controller knows of a pod;
  ``rlscale.specs`` — model and hardware specs, the catalog, calibration data and fitted step-model values;
  ``rlscale.tracking`` — MLflow, a sink of plain records.
* ``rlscale.data`` — the shipped scenarios and agents, by name; ``rlscale.hpa`` — the Kubernetes HPA, ported;
  ``rlscale.serving`` — one JetStream pod: ``step_time`` (roofline model), ``calibration``, ``pod`` (the
  orchestrator's pipeline in simpy, decode in closed form), ``hbm``, ``metrics`` (the /metrics pages).
* ``rlscale.cluster`` — the fleet: lifecycle, nodes and cost, routing; ``rlscale.metrics`` — the scrape/adapter
  pipeline a controller reads through; ``rlscale.workload`` — traffic specs, arrival processes, lengths, traces.
* ``rlscale.policies`` — the control loop (``control``: collect → recommend → safety → actuate) and every policy
  behind one interface (``Autoscaler.recommend(ClusterState)``), the learned one included; ``scenario`` — a run's
  configuration.
* ``simulation`` (``kpis``, ``kpi_stream``, ``timeline``, ``request_log``) — a run: wiring and results.
* ``rlscale.planning`` — what plans by simulating; ``rlscale.agents`` — agent files to policies.
* ``rlscale.envs`` — the Gymnasium environment ``rlscale/JetStream-v0``; ``rlscale.experiments`` — comparisons
  over seeds; ``reports`` — a simulate run's folder.
* ``rlscale.training`` — Stable-Baselines3 training and sweeps; ``tuning`` — HPA tuning.
* ``rlscale.deploy`` — the live controller (same control loop, Kubernetes API, Prometheus), which never imports the
  simulator; ``rlscale.emulator`` — the simulated fleet behind a Kubernetes API subset, for end-to-end tests.
* ``cli`` — the ``rlscale`` command; ``plots`` — figures (matplotlib, lazily).

Start with ``rlscale.serving.pod.JetStreamPod``, ``rlscale.envs.jetstream.JetStreamEnv`` and
``rlscale.deploy.controller.Controller``.
"""

from rlscale import _core

CORE = _core.install()  # "compiled", "pure" or "stale": which build of the simulator's hot modules runs (_core.py)

import gymnasium as _gymnasium  # noqa: E402  (the core's mode is settled before anything imports a core module)

# The TimeLimit never comes before the environment's own truncation at the scenario's end: 14 days of 15 s syncs
# (the longest production record bundled, rlscale.workload.servegen). Shorter sync periods over weeks need
# gymnasium.make(..., max_episode_steps=N); rlscale's training passes the steps its scenarios need.
MAX_EPISODE_STEPS = 14 * 86_400 // 15
_gymnasium.register(
    id="rlscale/JetStream-v0",
    entry_point="rlscale.envs.jetstream:JetStreamEnv",
    max_episode_steps=MAX_EPISODE_STEPS,
)
