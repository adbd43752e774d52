"""The live controller: the simulator's control pipeline on a real (or emulated) Kubernetes cluster.

Reading guide (each module imports only those above it, plus ``rlscale.policies`` / ``rlscale.metrics``):

* ``config`` — the settings file (``kind: ControllerConfig``, a ConfigMap) and CLI overrides.
* ``timescale`` — the controller's clock (:class:`TimeScale`): simulated seconds, faster than wall time against an
  emulator (``clock_speed``), and the conversions at its edges (waits, PromQL windows, rates).
* ``pods`` — a pod as listed by the API (:class:`LivePod`): what policies see, where to scrape.
* ``sources`` — metric sources implementing ``MetricsView``: the Prometheus HTTP API (:class:`PrometheusMetrics`)
  or direct scraping (:class:`ScrapedPodMetrics`); ``refresh()`` raises ``MetricsUnavailable``.
* ``safety`` — pure rules from recommendation to replicas: bounds, step cap, holds, fallback (:func:`decide`).
* ``kube`` — every Kubernetes call (:class:`KubeCluster`), retries, ``REQUIRED_RULES`` for the Role.
* ``leader`` — leader election on a Lease (:class:`LeaseElector`).
* ``telemetry`` — JSON logs, the controller's own Prometheus metrics, ``/metrics`` and ``/healthz``.
* ``controller`` — the loop (:class:`Controller`): start with ``Controller.from_config`` and ``run_once``.
"""
