"""The metric names the simulated cluster serves a controller, and the check an agent's metric references pass.

An HPA, KPA or saturation scaler pointed at a name nobody exports never
scales, and a run with it would look like a policy that chose not to. In a
simulation the names are known in full, so a reference to any other is an
error at load, listing what exists:

* ``Pods`` metrics (per pod): JetStream's server samples (gauges, histogram
  ``_sum``/``_count``, the success counter) and the TPU device plugin's gauges;
* ``External`` metrics (an aggregate): the same samples averaged over pods, plus
  the ai-on-gke adapter's ``memory_used_percentage``.

Names may be given in Google Managed Prometheus' form
(``prometheus.googleapis.com|<sample>|gauge``), as on GKE.
"""

from __future__ import annotations

from typing import Literal

from rlscale.serving.metrics import DEVICE_SAMPLE_NAMES, SERVER_SAMPLE_NAMES

MetricKind = Literal["Pods", "External"]
EXTERNAL_ONLY = frozenset({"memory_used_percentage"})  # avg(memory_used) / avg(memory_total), an adapter rule


class UnknownMetricError(ValueError):
    """An agent references a metric the simulated cluster does not export; the message names the field."""


def sample_name(metric_name: str) -> str:
    """The Prometheus sample behind an adapter's metric name.

    Google Cloud Managed Service for Prometheus exposes ``jetstream_prefill_backlog_size``
    to the HPA as ``prometheus.googleapis.com|jetstream_prefill_backlog_size|gauge``;
    a prometheus-adapter rule exposes it under its own name.
    """
    parts = metric_name.split("|")
    return parts[1] if len(parts) == 3 else metric_name


def served_names(kind: MetricKind) -> frozenset[str]:
    """The sample names a ``kind`` metric can read in the simulator."""
    pods = SERVER_SAMPLE_NAMES | DEVICE_SAMPLE_NAMES
    return pods | EXTERNAL_ONLY if kind == "External" else pods


def check_metric_name(name: str, kind: MetricKind, field: str) -> None:
    """Raise :class:`UnknownMetricError` naming ``field`` unless the simulator serves ``name`` as a ``kind`` metric."""
    sample = sample_name(name)
    if sample in served_names(kind):
        return
    shown = f"{name!r}" if sample == name else f"{name!r} (sample {sample!r})"
    hint = " (External only)" if sample in EXTERNAL_ONLY else ""
    raise UnknownMetricError(
        f"{field}: {shown} is not a {kind} metric the simulated cluster exports{hint}, so the policy would never "
        f"see it and never scale. JetStream server: {', '.join(sorted(SERVER_SAMPLE_NAMES))}; TPU device plugin: "
        f"{', '.join(sorted(DEVICE_SAMPLE_NAMES))}; adapter (External only): {', '.join(sorted(EXTERNAL_ONLY))}"
    )
