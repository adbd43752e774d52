"""Autoscaling policies behind one control pipeline: collect → recommend → safety → actuate.

A policy sees a :class:`~rlscale.policies.base.ClusterState` (the scale subresource, the pods, the metrics API) and
recommends a replica count. The simulator and a live cluster differ only in how that state is collected and how the
recommendation is applied, so this package imports neither the simulator (nor a planner, nor training) nor a pod:
it reads metrics through ``rlscale.metrics``' view.

Reading guide (each module imports only those above it):

* ``base`` — ``ClusterState``, the ``Autoscaler`` protocol; ``observation`` — the features every learned policy
  sees; ``actions`` — from an action to a replica count, shared with the environment;
* ``safety`` — the rules between a recommendation and the PATCH (``SafetySpec``, ``decide``); ``control`` — the
  loop the simulator, the environment and the live controller run;
* the policies: ``hpa`` (upstream's algorithm), ``kpa`` (Knative), ``saturation`` (llm-d), ``static`` (a fixed
  count), ``oracle`` (replays a plan ``rlscale.planning`` made), ``learned`` (a trained SB3 policy, its files and
  the environment arguments that travel with it; Stable-Baselines3 and torch are imported when a model loads).

Agent files become policies through ``rlscale.agents``.
"""
