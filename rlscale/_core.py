"""The simulator's compiled core, and the switch back to its pure-Python sources.

The modules in :data:`CORE_MODULES` are plain Python that ``pip install`` also compiles with Cython (setup.py; the
``.pxd`` files beside them give their classes C types). Python loads a compiled module in preference to its source,
so this module decides, once, on ``import rlscale``, which of the two runs:

* ``compiled``: every core module has a binary built from exactly its current source (the build records a hash of
  each source and ``.pxd``);
* ``pure``: ``RLSCALE_PURE_PYTHON=1`` was set (the reference the compiled build is checked against), or the core
  was never built (no C compiler, ``RLSCALE_NO_COMPILE=1``);
* ``stale``: a core source changed since the build — its binary would run old code, so the sources run instead,
  with a warning saying how to rebuild (``make setup``).

It is all or nothing: compiled modules share their C types (a compiled pod expects compiled requests), so one stale
module sends every core module back to its source. Results are the same either way (tests/test_compiled_core.py
checks it event for event); only the speed differs.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

CORE_MODULES = (
    "rlscale.clock",
    "rlscale.serving.request",
    "rlscale.serving.pod",
    "rlscale.serving.metrics",
    "rlscale.cluster.routing",
    "rlscale.cluster.fleet",
    "rlscale.timeline",
    "rlscale.kpi_stream",
    "rlscale.simulation",
    "rlscale.workload.build",
)
PURE_ENV = "RLSCALE_PURE_PYTHON"
ROOT = Path(__file__).resolve().parent.parent
RECORD = Path(__file__).resolve().parent / "_core_build.json"


def _source(module: str) -> Path:
    return ROOT / (module.replace(".", "/") + ".py")


def source_hash(module: str) -> str:
    """sha256 of a core module's source and its ``.pxd`` (as setup.py records it)."""
    path = _source(module)
    digest = hashlib.sha256(path.read_bytes())
    pxd = path.with_suffix(".pxd")
    if pxd.exists():
        digest.update(pxd.read_bytes())
    return digest.hexdigest()


def _built(module: str) -> bool:
    path = _source(module)
    return any(path.with_name(path.stem + suffix).exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def decide() -> tuple[str, list[str]]:
    """(mode, the core modules whose binary does not match their source)."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return "pure", []
    if not all(_built(m) for m in CORE_MODULES):
        return "pure", []
    try:
        record = json.loads(RECORD.read_text())
    except (OSError, ValueError):
        record = {}
    stale = [m for m in CORE_MODULES if record.get(m) != source_hash(m)]
    return ("stale", stale) if stale else ("compiled", [])


class _SourcesFirst:
    """A meta-path finder that loads the given modules from their ``.py`` sources, never from a binary beside them."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, _source(fullname))


def install() -> str:
    """Decide the mode and, unless compiled, make the core modules load from source. Returns the mode."""
    mode, stale = decide()
    if mode == "stale":
        warnings.warn(
            f"rlscale's compiled core is older than its sources ({', '.join(stale)} changed since the build): "
            "running the pure-Python sources instead (same results, slower); rebuild with `make setup` or "
            "`pip install -e .`",
            stacklevel=3,
        )
    if mode != "compiled" and not any(isinstance(f, _SourcesFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourcesFirst(CORE_MODULES))
    return mode
