"""The simulation clock: simpy's Environment with cheap one-shot callbacks, typed queue entries and a lean run loop.

Profiling the fleet simulator showed simpy's per-event machinery (building a
``Timeout``, the generic ``step``) costing ~4 µs of the ~6 µs each event
took. The hot path (pod device operations, arrivals) only needs "call this
function at time t", so :meth:`Clock.call_later` puts a bare callable on
simpy's own event queue and :meth:`Clock.run` dispatches it without the
Event machinery. Processes, timeouts and everything else of simpy work as
before, ordered on the same queue.

Every queue entry is a :class:`_Call` carrying its own order key (time, priority, insertion number) — simpy's
events too, wrapped as they are scheduled — so the heap compares three C fields in the compiled core instead of
two tuples element by element (a quarter of the simulator's time, before). The order is simpy's exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy
from simpy.core import NORMAL, EmptySchedule, Infinity, StopSimulation


class _Call:
    """A queue entry: at ``t`` (then by ``priority`` and insertion number ``eid``, as simpy orders), call ``fn``.
    Subclasses (a pod's operation end, an arrival, a simpy event) override :meth:`fire`; compiled, the clock calls
    it as a C method."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn

    def fire(self) -> None:
        self.fn()

    def before(self, other: _Call) -> bool:
        if self.t != other.t:
            return self.t < other.t
        if self.priority != other.priority:
            return self.priority < other.priority
        return self.eid < other.eid

    def __lt__(self, other: _Call) -> bool:
        return self.before(other)


class _EventEntry(_Call):
    """A simpy event on the queue: its callbacks run when it fires (simpy's ``Environment.step``)."""

    def __init__(self, event: simpy.Event) -> None:
        self.fn = None
        self.event = event

    def fire(self) -> None:
        event = self.event
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):  # a failed event nobody defused crashes the run
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc


class ClockCore:
    """What the hot path reads and writes of a clock: the time, the next insertion number and the event queue.
    Compiled, these are C fields, so a pod reads the time and schedules without a Python attribute lookup (a fifth
    of the simulator's instructions went to looking up simpy's ``env._now``, ``_eid`` and ``_queue``)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.eid = 0
        self.queue: list[_Call] = []


def schedule(core: ClockCore, delay_s: float, entry: _Call, priority: int = NORMAL) -> None:
    """Put ``entry`` on the queue of ``core`` (a :class:`Clock`'s ``core``) to fire at ``now + delay_s``, after what
    is already scheduled for then."""
    entry.t = core.now + delay_s
    entry.priority = priority
    entry.eid = core.eid
    core.eid += 1
    _push(core.queue, entry)


# The queue is a binary heap as heapq keeps it, sifted here so that entries compare by their C fields (``before``)
# rather than through Python's rich comparison: a tenth of the simulator's instructions, before. The order key is
# total (the insertion number breaks every tie), so the entries come off in exactly heapq's order.
def _push(queue: list, entry: _Call) -> None:
    queue.append(entry)
    _sift_up(queue, entry, len(queue) - 1)


def _sift_up(queue: list, entry: _Call, pos: int) -> None:
    """Put ``entry`` at ``pos`` or above it, moving down the parents it comes before."""
    while pos > 0:
        up = (pos - 1) >> 1
        parent = queue[up]
        if not entry.before(parent):
            break
        queue[pos] = parent
        pos = up
    queue[pos] = entry


def _pop(queue: list) -> _Call:
    """The earliest entry, removed (IndexError on an empty queue, as heapq)."""
    last = queue.pop()
    n = len(queue)
    if n == 0:
        return last
    top = queue[0]
    pos = 0
    child = 1
    while child < n:  # the smaller child up, down to a leaf (heapq's bottom-up sift), then ``last`` back up
        other = child + 1
        if other < n:
            left, right = queue[child], queue[other]
            if right.before(left):
                child = other
        queue[pos] = queue[child]
        pos = child
        child = 2 * pos + 1
    _sift_up(queue, last, pos)
    return top


def _drain(core: ClockCore, at: float) -> None:
    """Fire every entry due before ``at``, in order."""
    queue = core.queue
    while queue:
        entry = queue[0]
        if not entry.t < at:
            break
        entry = _pop(queue)
        core.now = entry.t
        entry.fire()


class Clock(simpy.Environment):
    """simpy's Environment whose time and queue live in a :class:`ClockCore` (``core``): simpy's own code reaches
    them through the ``_now`` and ``_queue`` properties, the compiled hot path through the core's C fields."""

    def __init__(self, initial_time: float = 0) -> None:
        self.core = ClockCore(float(initial_time))
        super().__init__(initial_time)

    @property
    def _now(self) -> float:
        return self.core.now

    @_now.setter
    def _now(self, value: float) -> None:
        self.core.now = value

    @property
    def _queue(self) -> list[_Call]:
        return self.core.queue

    @_queue.setter
    def _queue(self, value: list[_Call]) -> None:
        self.core.queue = value

    @property
    def now(self) -> float:
        return self.core.now

    def call_later(self, delay_s: float, fn: Callable[[], object]) -> None:
        """Call ``fn()`` at ``now + delay_s``, after events already scheduled for that instant."""
        schedule(self.core, delay_s, _Call(fn))

    def schedule(self, event: simpy.Event, priority: int = NORMAL, delay: float = 0) -> None:
        """simpy's own events (timeouts, processes) join the same queue, in simpy's order."""
        schedule(self.core, delay, _EventEntry(event), priority)

    def peek(self) -> float:
        queue = self.core.queue
        return queue[0].t if queue else Infinity

    def step(self) -> None:
        """simpy's ``step`` on this queue (``run(until=event)`` goes through it)."""
        try:
            entry = _pop(self.core.queue)
        except IndexError:
            raise EmptySchedule from None
        self.core.now = entry.t
        if type(entry) is not _EventEntry:
            entry.fire()
            return
        event = entry.event
        callbacks, event.callbacks = event.callbacks, None
        try:
            for callback in callbacks:
                callback(event)
        except StopSimulation:  # as simpy: the remaining callbacks run when the simulation resumes
            event.callbacks = callbacks[callbacks.index(callback) + 1 :]
            self.schedule(event, -1)
            raise
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc

    def run(self, until: Any = None) -> Any:
        """As simpy's ``run``; a numeric ``until`` processes every event before it, then sets ``now = until``."""
        if until is None or isinstance(until, simpy.Event):
            return super().run(until)
        at = float(until)
        if at <= self.core.now:
            raise ValueError(f"until ({at}) must be greater than the current simulation time")
        _drain(self.core, at)
        self.core.now = at
        return None


def call_later(env: simpy.Environment, delay_s: float, fn: Callable[[], object]) -> None:
    """``fn()`` after ``delay_s`` on any simpy environment (fast on a :class:`Clock`)."""
    if isinstance(env, Clock):
        env.call_later(delay_s, fn)
    else:
        env.timeout(delay_s).callbacks.append(lambda _: fn())
