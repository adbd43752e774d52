"""An emulated Kubernetes cluster on loopback, for running the live controller and a real Prometheus in tests.

Reading guide (each module imports only those above it):

* ``objects`` — API objects as JSON: Status errors, patches, label selectors.
* ``store`` — stored objects (leases, events, HPAs) and the resourceVersion rules.
* ``network`` — loopback addresses for pods and their metrics listeners.
* ``deployment`` — the Deployment, its ``scale`` subresource and its pods, read from the fleet simulator.
* ``apiserver`` — the HTTP API subset the ``kubernetes`` client talks to, with fault injection.
* ``driver`` — the simulation clock advanced in real time (× speed).
* ``prometheus`` — the ``file_sd`` targets file and a ``prometheus.yml`` for scraping the pods.
* ``emulator`` — :class:`Emulator`, which wires them together; ``rlscale emulate`` runs one.

Start with :class:`rlscale.emulator.emulator.Emulator`.
"""

from rlscale.emulator.emulator import Emulator, Replicas, Snapshot
from rlscale.emulator.prometheus import prometheus_config, write_targets

__all__ = ["Emulator", "Replicas", "Snapshot", "prometheus_config", "write_targets"]
