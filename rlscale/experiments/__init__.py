"""Comparing agents over scenarios and seeds (``rlscale compare``).

Reading guide (each module imports only those above it):

* ``config`` — an experiment file (``experiments/*.yaml``): scenarios × agents × seeds, strict, paths resolved.
* ``executors`` — where runs execute: a local process pool (default) or Ray tasks (``rlscale[ray]``), retried.
* ``runner`` — every run on an executor, deterministic whatever the worker count; keyed cells stored for ``--resume``.
* ``stats`` — KPIs flattened to columns (and as MLflow metrics); means with Student-t intervals over seeds; the
  Pareto front.
* ``report``, ``figures`` — results.csv, per-run timelines, report.md; pareto.png and timelines_<scenario>.png.
* ``compare`` — the pipeline: run → write → track (the comparison as plain records for ``rlscale.tracking``).

Start with ``compare.compare``.
"""
