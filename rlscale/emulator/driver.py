"""Advance the fleet simulator in real time: simulated time = wall time × speed.

A background thread runs the simpy clock up to where the wall clock says it
should be, in slices no longer than one tick's worth of simulated time, and
takes the lock for each slice only, so API requests and scrapes interleave
with the simulation. If the simulator cannot keep up, simulated time falls
behind (``lag_s`` says by how much) and catches up when it can; it never
jumps. Speed 0 leaves the clock still until :meth:`RealTimeDriver.advance`.

A driver that serves requests (``precise``: the emulator's JetStream API)
sleeps until the wall time of the next simulated event rather than a whole
tick, and :meth:`RealTimeDriver.catch_up` brings the clock to the wall's time
before a request joins: a first token or an answer then leaves when its
simulated time comes, late only by a thread's wake-up, not by up to a tick
(20 ms, 200 simulated ms at 10x).
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
        *,
        precise: bool = False,
    ) -> None:
        if speed < 0:
            raise ValueError(f"speed must be >= 0 (simulated seconds per wall second), got {speed}")
        self.env, self.lock, self.speed, self.on_advance = env, lock, speed, on_advance
        self.precise = precise
        self.error: BaseException | None = None
        self._target = env.now
        self._stop = threading.Event()
        self._wake = threading.Event()  # set to re-plan the next sleep (a request joined, or stop)
        self._start_wall, self._start_sim = time.monotonic(), env.now
        self._thread = threading.Thread(target=self._run, name="emulator-clock", daemon=True)

    @property
    def lag_s(self) -> float:
        """How far simulated time is behind where the wall clock puts it."""
        return max(0.0, self._target - self.env.now)

    def start(self) -> None:
        if self.speed > 0:
            self._start_wall, self._start_sim = time.monotonic(), self.env.now
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def sim_time(self, wall: float | None = None) -> float:
        """The simulated time the wall clock (``time.monotonic()``, default now) puts the simulation at."""
        wall = time.monotonic() if wall is None else wall
        return self._start_sim + (wall - self._start_wall) * self.speed

    def wall_time(self, sim_s: float) -> float:
        """The ``time.monotonic()`` at which simulated time ``sim_s`` is due."""
        return self._start_wall + (sim_s - self._start_sim) / self.speed if self.speed else time.monotonic()

    def catch_up(self) -> None:
        """Run the simulation to where the wall clock puts it now; call holding ``lock``, before a request joins."""
        if self.speed > 0 and self._thread.is_alive():
            self._step(self.sim_time())

    def wake(self) -> None:
        """Something changed the next event (a request joined): re-plan the sleep now."""
        self._wake.set()

    def advance(self, seconds: float) -> None:
        """Run the simulation ``seconds`` further now (for speed 0, or to skip ahead)."""
        with self.lock:
            self._step(self.env.now + seconds)

    def _run(self) -> None:
        slice_s = self.speed * TICK_S
        try:
            while not self._stop.is_set():
                self._wake.wait(self._sleep_s())
                self._wake.clear()
                self._target = self.sim_time()
                while self.env.now < self._target and not self._stop.is_set():
                    with self.lock:
                        self._step(min(self._target, self.env.now + slice_s))
        except Exception as exc:  # the simulator failed: stop the clock and say why
            log.exception("the simulation stopped")
            self.error = exc

    def _sleep_s(self) -> float:
        """A tick; when precise, no later than the next simulated event's wall time."""
        if not self.precise:
            return TICK_S
        with self.lock:
            due = self.wall_time(self.env.peek())
        return min(TICK_S, max(0.0, due - time.monotonic()))

    def _step(self, until: float) -> None:
        if until > self.env.now:
            self.env.run(until=until)
        if self.on_advance is not None:
            self.on_advance()
