"""Where an experiment's runs execute: a local process pool (the default) or Ray tasks on a local or remote cluster.

An executor maps a picklable, module-level function over work items and yields ``(index, result)`` as each item
finishes, in any order; the caller puts results back in order and does all writing and tracking on the driver, so
results, reports and MLflow records are the same whichever executor ran the work. ``ray`` is imported only inside
:class:`RayExecutor` (``pip install 'rlscale[ray]'``).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

EXECUTORS = ("local", "ray")

# Fault injection for tests: when set to a file path, the first worker (pool process or Ray task) to see the file
# missing creates it and kills its own process, as a node loss would; the executor then retries the work.
FAIL_ONCE_ENV = "RLSCALE_FAIL_ONCE"
# Environment the Ray tasks inherit from the driver (learned agents load their models from MLflow in the run).
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", FAIL_ONCE_ENV)


class ExecutorError(RuntimeError):
    """An executor cannot start (Ray missing, cluster unreachable)."""


class LocalExecutor:
    """Items in this process (``workers == 1``, or a single item) or on a pool of ``workers`` spawned processes,
    kept between maps (a search maps one batch after another) until :meth:`close`.

    A worker process that dies (killed, out of memory) breaks the whole pool; the pool is then started again and
    the items not yet returned are resubmitted, up to ``max_retries`` times per map, so as under Ray a lost worker
    costs only the work in flight. Exceptions the work raises are not retried: they fail the map."""

    name = "local"

    def __init__(self, workers: int = 1, *, max_retries: int = 3) -> None:
        self.workers = max(1, workers)
        self.max_retries = max_retries
        self._pool: ProcessPoolExecutor | None = None

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, cpus: int = 1
    ) -> Iterator[tuple[int, Any]]:
        """``cpus``: what each item uses; the pool's size (``workers``) already accounts for it."""
        if min(self.workers, len(items)) <= 1:
            for i, item in enumerate(items):
                yield i, fn(item)
            return
        pending = set(range(len(items)))
        for attempt in range(self.max_retries + 1):
            pool = self._start()
            futures: dict[Future, int] = {pool.submit(_call, fn, items[i]): i for i in sorted(pending)}
            try:
                for future in as_completed(futures):
                    i = futures[future]
                    result = future.result()
                    pending.discard(i)
                    yield i, result
                return
            except BrokenProcessPool:
                self._stop(wait=True)
                if attempt == self.max_retries:
                    raise ExecutorError(
                        f"the local pool lost a worker {attempt + 1} times; {len(pending)} item(s) unfinished"
                    ) from None
            except BaseException:
                self._stop(wait=False)  # one failed item fails the whole map: stop now
                raise

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: workers start clean, whatever threads or state the parent holds.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self._pool

    def _stop(self, wait: bool) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=wait, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker processes."""
        self._stop(wait=True)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    """A worker's body (a pool process or a Ray task): ``fn(item)``, after the test hook :data:`FAIL_ONCE_ENV`."""
    marker = os.environ.get(FAIL_ONCE_ENV)
    if marker:
        try:
            Path(marker).touch(exist_ok=False)
        except FileExistsError:
            pass
        else:
            os._exit(1)  # the worker dies mid-task: a system failure, which the executor retries
    return fn(item)


class RayExecutor:
    """Each item a Ray task (retried up to ``max_retries`` times when its worker dies) on the cluster at
    ``address`` (``auto``, ``ray://host:10001``), or on a local Ray instance when ``address`` is None and none is
    running. Exceptions the work raises are not retried: they fail the map as they do locally.

    The work items must make sense on the workers: experiment files at the same paths (the same image, or a shared
    volume), rlscale installed."""

    name = "ray"

    def __init__(self, address: str | None = None, *, max_retries: int = 3, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ExecutorError(
                "--executor ray needs Ray: pip install 'rlscale[ray]' (or pip install 'ray>=2.9')"
            ) from exc
        self.ray = ray
        self.address = address
        self.max_retries = max_retries
        if not ray.is_initialized():
            try:
                ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorError(f"cannot start or reach Ray at {address or 'a local instance'}: {exc}") from exc

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, cpus: int = 1
    ) -> Iterator[tuple[int, Any]]:
        """Each item a task reserving ``cpus`` CPUs (a training run's environment processes), so Ray packs no more
        onto a node than it has cores."""
        ray = self.ray
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        options: dict[str, Any] = {"max_retries": self.max_retries, "retry_exceptions": False, "num_cpus": cpus}
        if env:
            options["runtime_env"] = {"env_vars": env}
        task = ray.remote(_call).options(**options)
        fn_ref = ray.put(fn)
        pending = {task.remote(fn_ref, item): i for i, item in enumerate(items)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    yield i, self._get(ref, items[i])
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise

    def close(self) -> None:
        """Leave Ray running: the instance outlives one map, and a cluster is not ours to stop."""

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, ref: Any, item: Any) -> Any:
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, BaseException) else None
            if cause is not None:
                raise cause from None  # the work's own exception (RunFailed names the run), as locally
            raise
        except ray.exceptions.RayError as exc:
            raise ExecutorError(f"{getattr(item, 'label', item)}: Ray task lost after retries: {exc}") from exc


def make_executor(
    name: str = "local", *, workers: int = 1, ray_address: str | None = None
) -> LocalExecutor | RayExecutor:
    """The executor called ``name`` (``local`` or ``ray``)."""
    if name == "local":
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(ray_address)
    raise ExecutorError(f"unknown executor {name!r}: choose one of {', '.join(EXECUTORS)}")
