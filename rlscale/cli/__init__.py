"""The ``rlscale`` command line: one Typer app, its commands grouped by what they act on.

* ``app`` — the application, shared options and helpers;
* ``serving`` — perf, calibrate, catalog, simulate;
* ``experiments`` — compare, tune, evaluate;
* ``training`` — train, sweep;
* ``deploy`` — controller, emulate;
* ``sizing`` — loadtest, capacity (from a deployment to a calibrated simulator).

The modules are imported in that order because it is the order of the commands in ``--help``.
"""

# ruff: noqa: I001
from rlscale.cli.app import app
from rlscale.cli import serving, experiments, training, deploy, sizing  # noqa: F401  (each registers its commands)


def main() -> None:
    app()


__all__ = ["app", "main"]
