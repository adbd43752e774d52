"""The ``rlscale`` application object and what every command shares: how a command fails, how ``--help`` reads,
the options of the commands that fan work out, comma-separated lists."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from typer import rich_utils
from typer.core import TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

if TYPE_CHECKING:
    from typer._click import HelpFormatter

HELP_WIDTH = 120  # columns of --help off a terminal; rich's default there (80) cut long words off with "…"


@contextmanager
def _help_width() -> Iterator[None]:
    """Render help HELP_WIDTH columns wide when stdout is no terminal (piped, captured) and neither TERMINAL_WIDTH
    (Typer's) nor COLUMNS (rich's) sets a width: rich's 80 left the options' help a column too narrow for a path."""
    saved = rich_utils.MAX_WIDTH
    if saved is None and "COLUMNS" not in os.environ and not sys.stdout.isatty():
        rich_utils.MAX_WIDTH = HELP_WIDTH
    try:
        yield
    finally:
        rich_utils.MAX_WIDTH = saved


def _plain_switches(command: TyperCommand | TyperGroup, ctx: typer.Context) -> None:
    """Show flags as bare switches: Typer's rich help gives every flag (--help, --json, --resume/--no-resume) a
    ``<bool>`` type, as if it took a value."""
    for param in command.get_params(ctx):
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""  # the type column shows the metavar when there is one


class _Command(TyperCommand):
    """Every command's class: its ``--help`` with plain switches, not cut off."""

    def format_help(self, ctx: typer.Context, formatter: HelpFormatter) -> None:
        _plain_switches(self, ctx)
        with _help_width():
            super().format_help(ctx, formatter)


class _Group(TyperGroup):
    """The app's class: ``rlscale --help`` like the commands'."""

    def format_help(self, ctx: typer.Context, formatter: HelpFormatter) -> None:
        _plain_switches(self, ctx)
        with _help_width():
            super().format_help(ctx, formatter)


class _App(typer.Typer):
    """A Typer app whose commands default to ``_Command``: the help fix in one place, not a ``cls=`` per command."""

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls or _Command, **kwargs)


app = _App(
    help="Autoscaling JetStream LLM inference fleets: simulate, tune the HPA, train and compare RL policies, "
    "and run them against a cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
)


def fail(exc: Exception) -> None:
    """Print ``error: <exc>`` in red on stderr and exit 2 (bad input: a file, a field, an option)."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


# The values of the options that take one of a few: typed so that the parser lists them in --help and rejects any
# other (exit 2, naming them); the commands still receive plain strings. They match EXECUTORS
# (rlscale.experiments.executors) and SELECTIONS (rlscale.training.sweep), not imported here to keep --help fast.
Executor = Literal["local", "ray"]
Selection = Literal["return", "cost-at-slo"]

# Options shared by the commands that fan runs out (compare, evaluate).
ExecutorOption = Annotated[
    Executor,
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
    Selection | None,
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
