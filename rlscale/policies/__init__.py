"""Autoscaling policies behind one control pipeline: collect → recommend → actuate.

A policy sees a :class:`~rlscale.policies.base.ClusterState` (the scale
subresource, the pods, the metrics API) and recommends a replica count. The
simulator and a live cluster differ only in how that state is collected and
how the recommendation is applied.
"""
