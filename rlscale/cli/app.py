"""The ``rlscale`` application object and what every command shares: how a command fails, the options of the
commands that fan work out, comma-separated lists."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    help="Autoscaling JetStream LLM inference fleets: simulate, tune the HPA, train and compare RL policies, "
    "and run them against a cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(exc: Exception) -> None:
    """Print ``error: <exc>`` in red on stderr and exit 2 (bad input: a file, a field, an option)."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


# Options shared by the commands that fan runs out (compare, evaluate).
ExecutorOption = Annotated[
    str,
    typer.Option(help="Where the runs execute: local (a process pool) or ray (Ray tasks; pip install rlscale\\[ray])."),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(help="Ray cluster for --executor ray (auto, ray://host:10001; default: a local Ray instance)."),
]
ResumeOption = Annotated[bool, typer.Option(help="Skip the runs already finished in --out (out/cells/); needs --out.")]
TrackingURIOption = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)."),
]
SelectOption = Annotated[
    str | None,
    typer.Option(
        help="Sweep: how the best setting is chosen: return (highest held-out return) or cost-at-slo (cheapest "
        "held-out cost reaching --slo-attainment). Default: return, or cost-at-slo when the grid changes the reward.",
    ),
]
SweepSLOOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Sweep, --select cost-at-slo: the held-out SLO attainment to reach.")
]


def split_list(items: str) -> list[str]:
    return [item.strip() for item in items.split(",") if item.strip()]


def int_list(items: str, option: str) -> list[int]:
    """Comma-separated integers (seeds); an error that names the option otherwise."""
    try:
        values = [int(item) for item in split_list(items)]
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated integers, got {items!r}") from None
    if not values:
        raise ValueError(f"{option}: give at least one")
    return values
