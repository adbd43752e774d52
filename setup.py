"""Build the simulator's compiled core: the hot modules compiled by Cython from their own Python sources.

Everything else about the package is in pyproject.toml. The modules listed in ``rlscale/_core.py`` stay plain,
runnable Python (the reference CI checks the compiled build against); ``.pxd`` files beside them give Cython the
C types of their classes ("pure Python mode"). ``pip install`` (and ``make setup``) compiles them; without a C
compiler, or with ``RLSCALE_NO_COMPILE=1``, the package installs pure and runs the same code, slower. The build
records a hash of every compiled source, so a module edited after the build is never run from a stale binary
(``rlscale._core`` falls back to the sources and says so).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def core_modules() -> list[str]:
    """The ``CORE_MODULES`` tuple of rlscale/_core.py, read without importing the package."""
    namespace: dict = {}
    source = (HERE / "rlscale" / "_core.py").read_text()
    start = source.index("CORE_MODULES = (")
    exec(source[start : source.index(")", start) + 1], namespace)  # a literal tuple of module names
    return list(namespace["CORE_MODULES"])


def source_hash(module: str) -> str:
    path = HERE / (module.replace(".", "/") + ".py")
    pxd = path.with_suffix(".pxd")
    digest = hashlib.sha256(path.read_bytes())
    if pxd.exists():
        digest.update(pxd.read_bytes())
    return digest.hexdigest()


def extensions() -> list:
    if os.environ.get("RLSCALE_NO_COMPILE"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:  # no Cython in this build environment: a pure install
        return []
    modules = core_modules()
    record = {module: source_hash(module) for module in modules}
    (HERE / "rlscale" / "_core_build.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return cythonize(
        [module.replace(".", "/") + ".py" for module in modules],
        build_dir="build/cython",
        quiet=True,
        compiler_directives={
            "language_level": 3,
            "annotation_typing": False,  # types come from the .pxd files; annotations stay for readers and ruff
            "embedsignature": True,
            # Python semantics kept throughout (floor division and modulo of negatives, negative indices, bounds
            # checks): the compiled core must give exactly the pure one's results
        },
    )


class OptionalBuildExt(build_ext):
    """Compile the core if this machine can; if it cannot (no C compiler, no Python headers), install pure and say
    so, rather than fail: the sources are the same program, only slower. A partial build runs pure (rlscale._core
    wants every core module compiled or none)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure leaves a working pure install
            self.warn(f"rlscale: the simulator core was not compiled ({exc}); it will run as pure Python")

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self.warn(f"rlscale: {ext.name} not compiled ({exc}); the core will run as pure Python")


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
