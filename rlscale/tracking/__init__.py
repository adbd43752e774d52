"""Experiment tracking in MLflow, as a sink: it takes plain records (names, params, metrics, files) and imports
nothing of rlscale, so any layer may log through it and none is pulled in by it.

* ``store`` — the tracking URI, a reachability check, experiments, the tags every run carries, artifact downloads
  (a registered policy's files); ``keys`` — the namespaced metric keys every run shares;
* ``logged`` — which MLflow run a results folder was logged as (resumed work reuses it);
* ``mlflow_tracker`` — a comparison (``ComparisonLog``), ``tune_tracker`` — a tuning search.

MLflow is imported only inside the functions that log.
"""
