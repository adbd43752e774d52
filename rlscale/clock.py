"""The simulation clock: simpy's Environment with cheap one-shot callbacks and a lean run loop.

Profiling the fleet simulator showed simpy's per-event machinery (building a
``Timeout``, the generic ``step``) costing ~4 µs of the ~6 µs each event
took. The hot path (pod device operations, arrivals) only needs "call this
function at time t", so :meth:`Clock.call_later` puts a bare callable on
simpy's own event queue and :meth:`Clock.run` dispatches it without the
Event machinery. Processes, timeouts and everything else of simpy work as
before, ordered on the same queue.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import NORMAL


class _Call:
    """A queue entry that is just a function to call (no simpy Event). Subclasses (a pod's operation end) override
    :meth:`fire`; compiled, the clock calls it as a C method."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn

    def fire(self) -> None:
        self.fn()

    def __call__(self) -> None:  # as a plain simpy callback target (call_later on a simpy Environment)
        self.fire()


def schedule(env: Clock, delay_s: float, entry: _Call) -> None:
    """Put ``entry`` on ``env``'s queue to fire at ``now + delay_s``, after events already scheduled for then."""
    heappush(env._queue, (env._now + delay_s, NORMAL, next(env._eid), entry))


class Clock(simpy.Environment):
    def call_later(self, delay_s: float, fn: Callable[[], object]) -> None:
        """Call ``fn()`` at ``now + delay_s``, after events already scheduled for that instant."""
        schedule(self, delay_s, _Call(fn))

    def run(self, until: Any = None) -> Any:
        """As simpy's ``run``; a numeric ``until`` processes every event before it, then sets ``now = until``."""
        if until is None or isinstance(until, simpy.Event):
            return super().run(until)
        at = float(until)
        if at <= self._now:
            raise ValueError(f"until ({at}) must be greater than the current simulation time")
        queue = self._queue
        while queue and queue[0][0] < at:
            self._now, _, _, event = heappop(queue)
            if isinstance(event, _Call):
                event.fire()
                continue
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
        self._now = at
        return None


def call_later(env: simpy.Environment, delay_s: float, fn: Callable[[], object]) -> None:
    """``fn()`` after ``delay_s`` on any simpy environment (fast on a :class:`Clock`)."""
    if isinstance(env, Clock):
        env.call_later(delay_s, fn)
    else:
        env.timeout(delay_s).callbacks.append(lambda _: fn())
