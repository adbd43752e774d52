"""The MLflow store every rlscale run is logged to: its URI, a reachability check, experiments, the tags every run
carries, and the artifacts it holds (a registered policy's files, downloaded).

MLflow is imported inside the functions that use it, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # embedded: a file in the working directory, nothing to start
MLFLOW_SCHEMES = ("models:/", "runs:/")  # artifact URIs the store resolves (a registered model, a run's artifact)


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or refused a write; the message names the URI."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The URI given, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite file."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def check_tracking(tracking_uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast, before hours of simulation, when the store is unreachable (MLflow's own client retries for minutes).

    A server must answer ``/health``; any other store must list experiments (an SQLite file is created here).
    """
    if tracking_uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout_s) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise TrackingError(f"MLflow tracking server {tracking_uri} does not answer: {exc}") from exc
        return
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
    except (MlflowException, OSError, ValueError) as exc:
        raise TrackingError(f"MLflow tracking store {tracking_uri}: {exc}") from exc


def artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside an SQLite file, in ``mlruns/<experiment>`` (MLflow's own
    default is the working directory's ``mlruns/``, wherever that is); elsewhere the store decides (a server proxies
    them)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    database = Path(tracking_uri[len(prefix) :].split("?", 1)[0])
    return (database.resolve().parent / "mlruns" / experiment).as_uri()


def ensure_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created (artifacts at :func:`artifact_location`) if it does not exist."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(tracking_uri, name))
    except MlflowException:  # created meanwhile by another comparison
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def run_tags(git_commit: str, out: Path) -> dict[str, str]:
    """The tags every rlscale run carries: the source commit (MLflow's own tag) and the folder its files are in."""
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

    return {MLFLOW_GIT_COMMIT: git_commit.removesuffix("-dirty"), "rlscale.out": str(Path(out).resolve())}


@contextlib.contextmanager
def using_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """The process's MLflow tracking and registry URIs set to ``tracking_uri`` for a while, then put back: some
    MLflow paths read only the global ones (``log_model``; resolving ``models:/`` in ``download_artifacts``, which
    ignores its ``registry_uri`` argument as of MLflow 3.17)."""
    import mlflow

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


def download(ref: str, tracking_uri: str | None = None) -> Path:
    """The local folder of ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or ``runs:/<run_id>/<path>``
    (downloaded from the store, cached by MLflow). A :class:`TrackingError` names the reference and the store."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per run in a compare
    uri = resolve_tracking_uri(tracking_uri)
    try:
        with using_tracking_uri(uri):
            return Path(download_artifacts(artifact_uri=ref, tracking_uri=uri, registry_uri=uri))
    except MlflowException as exc:
        raise TrackingError(f"{ref!r} at {uri}: {exc.message}") from exc
