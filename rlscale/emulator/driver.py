"""Advance the fleet simulator in real time: simulated time = wall time × speed.

A background thread runs the simpy clock up to where the wall clock says it
should be, in slices no longer than one tick's worth of simulated time, and
takes the lock for each slice only, so API requests and scrapes interleave
with the simulation. If the simulator cannot keep up, simulated time falls
behind (``lag_s`` says by how much) and catches up when it can; it never
jumps. Speed 0 leaves the clock still until :meth:`RealTimeDriver.advance`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import simpy

log = logging.getLogger(__name__)

TICK_S = 0.02  # wall seconds between advances


class RealTimeDriver:
    def __init__(
        self,
        env: simpy.Environment,
        lock: threading.RLock,
        speed: float = 1.0,
        on_advance: Callable[[], None] | None = None,
    ) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0 (simulated seconds per wall second), got {speed}")
        self.env, self.lock, self.speed, self.on_advance = env, lock, speed, on_advance
        self.error: BaseException | None = None
        self._target = env.now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emulator-clock", daemon=True)

    @property
    def lag_s(self) -> float:
        """How far simulated time is behind where the wall clock puts it."""
        return max(0.0, self._target - self.env.now)

    def start(self) -> None:
        if self.speed > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def advance(self, seconds: float) -> None:
        """Run the simulation ``seconds`` further now (for speed 0, or to skip ahead)."""
        with self.lock:
            self._step(self.env.now + seconds)

    def _run(self) -> None:
        start_wall, start_sim = time.monotonic(), self.env.now
        slice_s = self.speed * TICK_S
        try:
            while not self._stop.wait(TICK_S):
                self._target = start_sim + (time.monotonic() - start_wall) * self.speed
                while self.env.now < self._target and not self._stop.is_set():
                    with self.lock:
                        self._step(min(self._target, self.env.now + slice_s))
        except Exception as exc:  # the simulator failed: stop the clock and say why
            log.exception("the simulation stopped")
            self.error = exc

    def _step(self, until: float) -> None:
        if until > self.env.now:
            self.env.run(until=until)
        if self.on_advance is not None:
            self.on_advance()
