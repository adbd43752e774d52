"""Agent files (``agents/*.yaml``) to policies: the registry of agent kinds and the loader every entry point uses.

An agent file is a Kubernetes ``autoscaling/v2`` HorizontalPodAutoscaler manifest, or an rlscale agent: ``kind``
plus a ``spec`` of the policy's config (and an optional ``safety:`` block). Each kind is built by one function,
found through :data:`rlscale.agents.loader.KINDS` (``kind`` → ``"module:function"``) and imported only when a
file of that kind is loaded. That keeps the layers honest at run time as well as in the import graph: loading an
HPA manifest or a trained policy (the live controller does) imports neither the simulator, which the planned
kinds run (the cheapest static count, the clairvoyant oracle: ``rlscale.planning``), nor Stable-Baselines3.

* ``loader`` — ``load_agent``, ``load_control_loop`` (the agent behind its safety layer), the registry;
* ``baselines`` — the HPA, KPA, saturation scaler and a fixed static count;
* ``planned`` — the kinds that plan by simulating the scenario they will run in;
* ``forecasting`` — ``kind: ForecastingAutoscaler`` (its capacity measured on the scenario only when not given);
* ``learned`` — ``kind: LearnedPolicy`` and ``load_learned`` (a trained policy, its residual baseline loaded).
"""

from rlscale.agents.loader import load_agent, load_control_loop

__all__ = ["load_agent", "load_control_loop"]
