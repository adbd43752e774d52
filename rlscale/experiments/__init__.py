"""Comparing agents over scenarios and seeds (``rlscale compare``).

Reading guide (each module imports only those above it):

* ``config`` — an experiment file (``experiments/*.yaml``): scenarios × agents × seeds, strict, paths resolved.
* ``executors`` — where runs execute: a local process pool (default) or Ray tasks (``rlscale[ray]``), retried.
* ``runner`` — every run on an executor, deterministic whatever the worker count; keyed cells stored for ``--resume``.
* ``stats`` — KPIs flattened to columns; means with Student-t intervals over seeds; the Pareto front.
* ``report``, ``figures`` — results.csv, per-run timelines, report.md; pareto.png and timelines_<scenario>.png.
* ``tracked`` — a comparison as the plain records the MLflow sink (``rlscale.tracking``) logs.
* ``compare`` — the pipeline: run → write → track (``rlscale.tracking``, MLflow, imported only when tracking).

Start with ``compare.compare``.
"""
