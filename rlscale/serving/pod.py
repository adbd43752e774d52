"""One JetStream pod: the orchestrator's pipeline on one engine, in simulated time.

Pipeline (``jetstream/core/orchestrator.py``, interleaved mode):

* an unbounded FIFO prefill backlog; one prefill at a time (batch 1), prompt
  truncated to ``max_prefill_predict_length`` (or, with ``long_prompts:
  reject``, refused at once) and padded to its bucket; the
  first token goes back to the client when the prefill ends;
* prefill results then wait in the transfer and generate backlogs (capacity 1
  each, blocking puts), so with every slot busy at most
  ``held_prefill_capacity`` prefilled requests wait and the prefill thread
  stalls: 3 (both backlogs and the prefill thread's blocked put) unless
  ``max_held_prefills`` sets it (a real interleaved server held 2);
* a held result enters a free slot by an insert, a device operation priced by
  the step-time model (its padded bucket's KV copied, plus a fixed cost) or
  fixed by ``insert_ms``;
* ``slots`` decode slots with continuous batching. The generate thread does
  not step while a slot is free and prefill work is pending (interleaved
  priority); otherwise each decode step advances every active slot by one. A
  preallocated cache's step is priced over every slot, active or not (MaxText
  computes and reads them all); a paged one over the active batch.

One device serialises everything, so the engine is a state machine on the
simpy clock: one device operation at a time (prefill, insert, a run of decode
steps, a restart), each ended by a simpy event whose callback picks the next
(:meth:`JetStreamPod._kick`). Callbacks instead of a generator process keep
the cost per event low (for the same reason the engine reads the time off the clock's core, ``clock.now``, a C
field when compiled, not simpy's ``env.now`` property). Decode is advanced analytically: between events the
batch is constant and step time is affine in the KV tokens read, so the time
of k steps has a closed form (:class:`DecodeSegment`) and the simulation costs
O(events) = O(requests), never O(tokens). Inserts take no event of their own
(one per request would cost ~20% more events): they happen at once and the
device owes their time, which delays the start of the operation that follows,
so every timing is as if each were an event, and the gauges read a running
insert's result as held (:meth:`JetStreamPod._inserts_running`). Only a
one-token answer, done once inserted, is reported done when its insert begins
(its ``finish_s`` is the insert's end).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from enum import StrEnum
from functools import cache
from math import isnan

import numpy as np

from rlscale.clock import Clock, _Call, schedule
from rlscale.serving.buckets import prefill_buckets
from rlscale.serving.config import KVMode, LongPrompts, PodConfig
from rlscale.serving.hbm import HBMBudget
from rlscale.serving.metrics import PodMetrics
from rlscale.serving.request import COMPLETED, DECODING, FAILED, HELD, PREFILLING, QUEUED, Request
from rlscale.serving.step_time import RooflineStepModel, StepTimeModel
from rlscale.specs import HardwareSpec, ModelSpec, load_hardware, load_model

MS = 1e-3
CRASH_BACKOFF_RESET_S = 600.0  # kubelet resets CrashLoopBackOff after 10 min of clean running
PROMPT_TOO_LONG = "prompt over max_prefill_predict_length"  # the failure cause of a rejected long prompt


class PodStatus(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"  # after an OOM crash: back-off, then restart_s
    TERMINATED = "terminated"  # killed (end of a drain, or deleted): never runs again


class DecodeSegment:
    """k decode steps at constant batch: step j takes a + b·(kv0 + dkv·j) ms."""

    def __init__(self, a_ms: float, b_ms: float, kv0: float, dkv: float) -> None:
        self.a_ms, self.b_ms, self.kv0, self.dkv = a_ms, b_ms, kv0, dkv

    def __repr__(self) -> str:
        return f"DecodeSegment(a_ms={self.a_ms!r}, b_ms={self.b_ms!r}, kv0={self.kv0!r}, dkv={self.dkv!r})"

    def duration_s(self, k: int) -> float:
        """Time of the first k steps."""
        return (k * (self.a_ms + self.b_ms * self.kv0) + self.b_ms * self.dkv * k * (k - 1) / 2) * MS

    def steps_within(self, elapsed_s: float) -> int:
        """Whole steps finished within ``elapsed_s`` (inverse of :meth:`duration_s`)."""
        if elapsed_s <= 0:  # a run that has not begun (inserts owed before it)
            return 0
        t_ms = elapsed_s / MS
        lin, quad = self.a_ms + self.b_ms * self.kv0 - self.b_ms * self.dkv / 2, self.b_ms * self.dkv / 2
        k = t_ms / lin if quad <= 0 else (-lin + math.sqrt(lin * lin + 4 * quad * t_ms)) / (2 * quad)
        k = max(int(k), 0)
        while self.duration_s(k + 1) <= elapsed_s:  # repair float rounding either way
            k += 1
        while k > 0 and self.duration_s(k) > elapsed_s:
            k -= 1
        return k


class Busy(StrEnum):
    """What the device is doing."""

    PREFILL = "prefill"
    INSERT = "insert"
    DECODE = "decode"
    RESTART = "restart"


class _Segment:
    """A run of decode steps in progress: ``steps`` planned (cut short when prefill work arrives), ending in an OOM
    after ``oom_step`` steps when that is set."""

    def __init__(
        self, start_s: float, start_step: int, decode: DecodeSegment, steps: int, oom_step: int | None
    ) -> None:
        self.start_s, self.start_step, self.decode, self.steps = start_s, start_step, decode, steps
        self.oom_step = oom_step
        self.cut = False


# Enum members as module constants: an Enum member lookup goes through the metaclass's __getattr__ hook on Python 3.11,
# slow on the engine's hot path, which reads them on every event.
_RUNNING, _RESTARTING, _TERMINATED = PodStatus.RUNNING, PodStatus.RESTARTING, PodStatus.TERMINATED
_PREFILL, _INSERT, _DECODE, _RESTART = Busy.PREFILL, Busy.INSERT, Busy.DECODE, Busy.RESTART


# The decode slots: a binary heap of the requests in them, by finish step then id (the request's own fields), kept as
# heapq keeps a heap (the same sifts, so the same order and layout) but compared on C fields when compiled, not as
# tuples through Python's rich comparison (a tenth of the simulator's instructions, before). The clock's queue
# (rlscale/clock.py) runs the same sifts on its own entry type: written once per type, as Cython compares in C only
# where it knows the type.
def _slot_before(a: Request, b: Request) -> bool:
    return a.finish_step < b.finish_step or (a.finish_step == b.finish_step and a.id < b.id)


def _slot_push(heap: list, request: Request) -> None:
    heap.append(request)
    _slot_sift_up(heap, request, len(heap) - 1)


def _slot_sift_up(heap: list, request: Request, pos: int) -> None:
    while pos > 0:
        up = (pos - 1) >> 1
        parent = heap[up]
        if not _slot_before(request, parent):
            break
        heap[pos] = parent
        pos = up
    heap[pos] = request


def _slot_pop(heap: list) -> Request:
    """The request that finishes first, removed (heapq's bottom-up sift)."""
    last = heap.pop()
    n = len(heap)
    if n == 0:
        return last
    top = heap[0]
    pos = 0
    child = 1
    while child < n:
        other = child + 1
        if other < n:
            left, right = heap[child], heap[other]
            if _slot_before(right, left):
                child = other
        heap[pos] = heap[child]
        pos = child
        child = 2 * pos + 1
    _slot_sift_up(heap, last, pos)
    return top


# What ends when a device operation's time is up (an int, so the compiled core dispatches it in C)
DECODE_DONE, PREFILL_DONE, DEVICE_FREE, CRASH, RESTARTED = range(5)


class _OpEnd(_Call):
    """The end of a device operation on the clock's queue: the pod's step ``then`` (one of the constants above),
    unless the pod cancelled the operation since (its ``_op`` token moved on)."""

    def __init__(self, pod: JetStreamPod, token: int, then: int) -> None:
        self.fn = None
        self.pod, self.token, self.then = pod, token, then

    def fire(self) -> None:
        pod = self.pod
        if self.token != pod._op:
            return
        then = self.then
        if then == DECODE_DONE:
            pod._decode_done()
        elif then == PREFILL_DONE:
            pod._prefill_done()
        elif then == DEVICE_FREE:
            pod._device_free()
        elif then == CRASH:
            pod._crash()
        else:
            pod._restarted()


def _pages(base: np.ndarray, steps: int, page: int) -> int:
    """KV pages the active slots hold ``steps`` steps from now (``base``: each one's tokens now, plus one)."""
    return int(np.sum(-(-(base + steps) // page)))


class JetStreamPod:
    """A simulated JetStream server; feed it with :meth:`submit`, read it via ``metrics``."""

    def __init__(
        self,
        env: Clock,
        name: str = "jetstream-0",
        config: PodConfig | None = None,
        *,
        model: ModelSpec | None = None,
        hardware: HardwareSpec | None = None,
        step_model: StepTimeModel | None = None,
        on_done: Callable[[Request], None] | None = None,
        on_status: Callable[[JetStreamPod], None] | None = None,
    ) -> None:
        if not isinstance(env, Clock):
            raise TypeError(
                f"a pod runs on a rlscale.clock.Clock (simpy's Environment, typed), not {type(env).__name__}"
            )
        self.env = env
        self.clock = env.core
        self.name = name
        self.config = config or PodConfig()
        self.model = model or load_model(self.config.model)
        self.hardware = hardware or load_hardware(self.config.hardware)
        self.step_model = step_model or RooflineStepModel.for_deployment(self.model, self.hardware, self.config)
        self.slots = self.config.per_device_batch_size * self.hardware.chips_per_host
        self.hbm = HBMBudget.for_pod(self.config, self.model, self.hardware, self.slots)
        # step times are pure functions of (batch) and (bucket): price each once
        self._decode_affine = [(0.0, 0.0)] + [self.step_model.decode_affine(b) for b in range(1, self.slots + 1)]
        self._prefill_s = cache(lambda tokens: self.step_model.prefill_ms(tokens) * MS)
        self._insert_s = cache(self._price_insert)
        self._held_capacity = self.config.held_prefill_capacity
        # the configuration's numbers the engine reads on every event, kept as plain (C, when compiled) fields
        config = self.config
        self._paged = config.kv_mode is KVMode.PAGED
        self._page_tokens = config.kv_page_tokens
        self._max_prefill = config.max_prefill_predict_length
        self._max_target = config.max_target_length
        self._reject_long = config.long_prompts is LongPrompts.REJECT
        self._generate_capacity = config.generate_backlog_capacity
        self._transfer_capacity = config.transfer_backlog_capacity
        a, b = self._decode_affine[self.slots]  # a preallocated step reads every slot's whole cache, always
        self._full_decode = DecodeSegment(a, b, float(self.slots * self._max_target), 0.0)
        self._static_bytes, self._total_bytes = self.hbm.static_bytes, self.hbm.total_bytes
        self._page_bytes, self._kv_bytes_per_token = self.hbm.page_bytes(), self.hbm.kv_bytes_per_token
        self.on_done = on_done
        self.on_status = on_status  # told when the server goes down (crash, kill) or comes back
        self.status = _RUNNING
        self.prefill_backlog: deque[Request] = deque()
        self.prefilling: Request | None = None
        self.held: deque[Request] = deque()
        self._active: list[Request] = []  # decode slots: a heap by finish step (_slot_push)
        self._steps = 0  # decode steps run since start; slots record it at insert
        self._kv_offset = 0  # paged: sum(prefill_tokens + 1 - insert_step) over active slots
        self._held_tokens = 0  # padded prefill tokens of held results (and the running prefill)
        self.arrived = self.completed = self.failed = self.crashes = 0
        self._busy_s = 0.0
        self._busy_since: float | None = None
        self._busy: Busy | None = None  # the device operation in progress
        self._op = 0  # token of the pending operation's end event; bumping it cancels that event
        self._owed_s = 0.0  # device time of inserts done at once: the next operation starts after it
        self._inserting: list[Request] = []  # the latest inserts done at once, in order; the gauges' view of them
        self._segment: _Segment | None = None
        self._buckets = prefill_buckets(self.config.max_prefill_predict_length)
        self._restart_count_since_reset = 0
        self._last_start_s = env.now
        self.metrics = PodMetrics(self)
        env.process(self._sample_duty_cycle())

    # ---- what the outside sees ------------------------------------------------
    def submit(self, request: Request) -> None:
        """A request reaches the server (gRPC Decode → prefill backlog)."""
        self.arrived += 1
        request.pod = self.name
        if self.status is not _RUNNING:
            self._fail(request, f"pod {self.status}")
            return
        longest = self._max_prefill
        if request.prompt_tokens > longest and self._reject_long:
            self._fail(request, PROMPT_TOO_LONG)
            return
        request.state = QUEUED
        request.prefill_tokens = min(request.prompt_tokens, longest)
        buckets = self._buckets  # take_nearest_length, inlined (once per request): the bucket computed, else the last
        request.padded_tokens = buckets[min(bisect_left(buckets, request.prefill_tokens), len(buckets) - 1)]
        request.target_tokens = max(1, min(request.output_tokens, self._max_target - request.prefill_tokens))
        self.prefill_backlog.append(request)
        if self._busy is None:
            self._kick()
        elif self._busy is _DECODE and not self._segment.cut and self._prefill_ready():
            self._cut_decode()

    def in_flight_requests(self) -> Iterator[Request]:
        """The requests this server holds now: backlog, the prefill running, held results, decode slots."""
        yield from self.prefill_backlog
        if self.prefilling is not None:
            yield self.prefilling
        yield from self.held
        yield from self._active

    @property
    def active_slots(self) -> int:
        """Slots decoding now; one whose insert still runs is not yet."""
        return len(self._active) - len(self._inserts_running())

    @property
    def prefill_backlog_size(self) -> int:
        """Prompts waiting for prefill now, the next one included while the inserts before its prefill run."""
        return len(self.prefill_backlog) + (
            self.prefilling is not None and self.prefilling.prefill_start_s > self.clock.now
        )

    @property
    def in_flight(self) -> int:
        return len(self.prefill_backlog) + (self.prefilling is not None) + len(self.held) + len(self._active)

    @property
    def generate_backlog_size(self) -> int:
        return min(self._held_now(), self._generate_capacity)

    @property
    def transfer_backlog_size(self) -> int:
        return min(max(self._held_now() - self._generate_capacity, 0), self._transfer_capacity)

    def busy_seconds(self) -> float:
        """Device-busy time since start (prefill, insert and decode)."""
        running = self.clock.now - self._busy_since if self._busy_since is not None else 0.0
        return self._busy_s + running

    def decode_steps_done(self) -> int:
        """Decode steps run so far, counting those of the segment in progress."""
        seg = self._segment
        if seg is None:
            return self._steps
        return seg.start_step + min(seg.decode.steps_within(self.clock.now - seg.start_s), seg.steps)

    def kv_pages(self) -> int:
        """Paged mode: pages held by the active slots now (prompt + tokens generated so far)."""
        if not self._paged or not self._active:
            return 0
        page, steps = self._page_tokens, self.decode_steps_done()
        return sum(-(-(r.prefill_tokens + steps - r.insert_step) // page) for r in self._active)

    def hbm_used_bytes(self) -> float:
        """HBM in use now: a result whose insert still runs is held, not paged; a prefill not begun holds nothing."""
        pages, held_tokens = self.kv_pages(), self._held_tokens
        if running := self._inserts_running():
            held_tokens += sum(r.padded_tokens for r in running)
            if self._paged:
                pages -= sum(-(-r.prefill_tokens // self._page_tokens) for r in running)
        if self.prefilling is not None and self.prefilling.prefill_start_s > self.clock.now:
            held_tokens -= self.prefilling.padded_tokens
        return self.hbm.used_bytes(pages, held_tokens)

    def _inserts_running(self) -> list[Request]:
        """Requests put in a slot at once (:meth:`_insert`) whose insert still runs on the device's clock."""
        now = self.clock.now
        return [r for r in self._inserting if r.insert_s > now]

    def _held_now(self) -> int:
        return len(self.held) + len(self._inserts_running())

    # ---- the engine -----------------------------------------------------------
    def _prefill_ready(self) -> bool:
        """The prefill thread can start: work queued and its put will not block for long."""
        if not self.prefill_backlog:
            return False
        return len(self._active) < self.slots or len(self.held) < self._held_capacity

    def kill(self, reason: str) -> None:
        """SIGKILL: the server process ends and every request it still holds fails."""
        if self.status is _TERMINATED:
            return
        self._stop_device()
        self._set_status(_TERMINATED)
        self._fail_all(reason)

    def _after(self, delay_s: float, then: int) -> None:
        """End the current device operation after ``delay_s`` with step ``then`` (unless cancelled by bumping
        ``_op``)."""
        end = _OpEnd.__new__(_OpEnd)  # built field by field: compiled, no argument parsing per operation
        end.fn, end.pod, end.token, end.then = None, self, self._op, then
        schedule(self.clock, delay_s, end)

    def _stop_device(self) -> None:
        self._op += 1
        self._busy, self._segment, self._owed_s = None, None, 0.0
        self._set_busy(False)

    def _kick(self) -> None:
        """The device is free: take the next operation in the orchestrator's priority order."""
        while self.status is _RUNNING and self._busy is None:
            if self.held and len(self._active) < self.slots:
                self._insert()
            elif self._prefill_ready():
                self._start_prefill()
            elif self._active:
                self._start_decode()
            elif self._owed_s:
                self._begin(_INSERT, 0.0, DEVICE_FREE)  # only one-token answers were inserted
            else:
                self._set_busy(False)  # idle until submit()
                return

    def _begin(self, busy: Busy, duration_s: float, then: int) -> float:
        """Start a device operation once the inserts owed are done; ``then`` ends it. Returns its start time."""
        owed, self._owed_s = self._owed_s, 0.0
        self._busy = busy
        self._set_busy(True)
        self._after(owed + duration_s, then)
        return self.clock.now + owed

    def _device_free(self) -> None:
        self._busy = None
        self._kick()

    def _price_insert(self, padded_tokens: int) -> float:
        """One insert's device time, s: ``insert_ms`` when the configuration fixes it, else the step model's."""
        fixed_ms = self.config.insert_ms
        return (self.step_model.insert_ms(padded_tokens) if fixed_ms is None else fixed_ms) * MS

    def _set_busy(self, busy: bool) -> None:
        if busy and self._busy_since is None:
            self._busy_since = self.clock.now
        elif not busy and self._busy_since is not None:
            self._busy_s += self.clock.now - self._busy_since
            self._busy_since = None

    def _insert(self) -> None:
        """Put the oldest held result into a free slot at once; the device owes the insert's time, which delays the
        next operation (:meth:`_begin`): the timings of an insert event without its cost per request."""
        request = self.held.popleft()
        self._held_tokens -= request.padded_tokens
        self._owed_s += self._insert_s(request.padded_tokens)
        request.insert_s = self.clock.now + self._owed_s
        self.metrics.on_insert(request)
        if request.target_tokens <= 1:  # the prefill's token was the whole answer: done once inserted (told now)
            request.finish_s = request.insert_s
            self._complete(request)
        else:
            if self._inserting and self._inserting[-1].insert_s <= self.clock.now:
                self._inserting.clear()  # the previous run of inserts is over
            self._inserting.append(request)
            request.state = DECODING
            request.finish_step, request.insert_step = self._steps + request.target_tokens - 1, self._steps
            _slot_push(self._active, request)
            self._kv_offset += request.prefill_tokens + 1 - self._steps

    def _start_prefill(self) -> None:
        request = self.prefill_backlog[0]
        pages = self.kv_pages() if self._paged else 0
        held = self._held_tokens + request.padded_tokens  # HBMBudget.used_bytes, inlined: it runs every prefill
        if self._static_bytes + pages * self._page_bytes + held * self._kv_bytes_per_token > self._total_bytes:
            if self._owed_s:  # the allocation fails once the inserts owed are done
                self._begin(_INSERT, 0.0, CRASH)
            else:
                self._crash()
            return
        self.prefill_backlog.popleft()
        request.state = PREFILLING
        request.prefill_start_s = self._begin(_PREFILL, self._prefill_s(request.padded_tokens), PREFILL_DONE)
        self.prefilling = request
        self._held_tokens += request.padded_tokens

    def _prefill_done(self) -> None:
        request, self.prefilling, self._busy = self.prefilling, None, None
        request.first_token_s = self.clock.now
        request.state = HELD
        self.held.append(request)
        self.metrics.on_prefill_end(request)
        self._kick()

    def _decode_segment(self) -> DecodeSegment:
        """The next steps' pricing: a preallocated cache's step computes and reads every slot, active or not (MaxText
        steps the whole decode state), so it is priced at batch = slots; a paged one at the active batch."""
        batch = len(self._active)
        if not self._paged:
            return self._full_decode  # the same whatever the batch: priced once
        a, b = self._decode_affine[batch]
        return DecodeSegment(a, b, float(self._kv_offset + batch * self._steps), float(batch))

    def _steps_until_oom(self, horizon: int) -> int | None:
        """Paged mode: the first step (from now, < horizon) whose new pages exceed HBM, if any."""
        if not self._paged:
            return None
        page, batch = self._page_tokens, len(self._active)
        free = self.hbm.free_pages(self._held_tokens)
        tokens_at_horizon = self._kv_offset + batch * (self._steps + horizon - 1)
        if tokens_at_horizon / page + batch <= free:  # ceil adds < 1 page per slot: cannot overflow
            return None
        base = np.array([r.prefill_tokens + 1 + self._steps - r.insert_step for r in self._active])
        if _pages(base, horizon - 1, page) <= free:
            return None
        lo, hi = 0, horizon - 1  # first j with pages(j) > free
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (mid + 1, hi) if _pages(base, mid, page) <= free else (lo, mid)
        return lo

    def _start_decode(self) -> None:
        """Run decode steps until the next completion (or an OOM); an arrival may cut the run short."""
        decode = self._decode_segment()
        to_finish = self._active[0].finish_step - self._steps
        oom_step = self._steps_until_oom(to_finish)
        steps = to_finish if oom_step is None else oom_step
        start_s = self._begin(_DECODE, decode.duration_s(steps), DECODE_DONE)
        seg = _Segment.__new__(_Segment)  # built field by field: compiled, no argument parsing per decode run
        seg.start_s, seg.start_step, seg.decode, seg.steps, seg.oom_step, seg.cut = (
            start_s,
            self._steps,
            decode,
            steps,
            oom_step,
            False,
        )
        self._segment = seg

    def _cut_decode(self) -> None:
        """Prefill work arrived: stop after the step now running (JetStream checks between steps)."""
        seg = self._segment
        if self.clock.now < seg.start_s:  # still inserting: no step has begun, so none runs
            done = 0
        else:
            done = min(seg.decode.steps_within(self.clock.now - seg.start_s) + 1, seg.steps)
        if done == seg.steps:
            return  # the run ends at that step anyway
        self._op += 1  # cancel the planned end
        seg.steps, seg.oom_step, seg.cut = done, None, True
        self._after(seg.start_s + seg.decode.duration_s(done) - self.clock.now, DECODE_DONE)

    def _decode_done(self) -> None:
        seg, self._segment, self._busy = self._segment, None, None
        self._steps = seg.start_step + seg.steps
        while self._active and self._active[0].finish_step <= self._steps:
            request = _slot_pop(self._active)
            self._kv_offset -= request.prefill_tokens + 1 - request.insert_step
            request.finish_s = seg.start_s + seg.decode.duration_s(request.finish_step - seg.start_step)
            self._complete(request)
        if seg.oom_step is not None and seg.steps == seg.oom_step and self.status is _RUNNING:
            self._crash()
            return
        self._kick()

    # ---- outcomes -------------------------------------------------------------
    def _complete(self, request: Request) -> None:
        if isnan(request.finish_s):
            request.finish_s = self.clock.now
        request.state = COMPLETED
        self.completed += 1
        self.metrics.on_complete(request)
        if self.on_done:
            self.on_done(request)

    def _fail(self, request: Request, why: str) -> None:
        request.state = FAILED
        request.failure = why
        request.finish_s = self.clock.now
        self.failed += 1
        if self.on_done:
            self.on_done(request)

    def _set_status(self, status: PodStatus) -> None:
        self.status = status
        if self.on_status:
            self.on_status(self)

    def _fail_all(self, reason: str) -> None:
        victims = [*self.prefill_backlog, *self.held, *self._active]
        if self.prefilling is not None:
            victims.append(self.prefilling)
        self.prefill_backlog.clear()
        self.held.clear()
        self._active.clear()
        self._inserting.clear()
        self.prefilling = None
        self._kv_offset = self._held_tokens = 0
        for request in victims:
            self._fail(request, reason)

    def _crash(self) -> None:
        """HBM exhausted: the server process dies, every request it held fails, kubelet restarts it."""
        self.crashes += 1
        self._stop_device()
        self._set_status(_RESTARTING)
        self._fail_all("OOM: pod crashed")
        if self.clock.now - self._last_start_s >= CRASH_BACKOFF_RESET_S:
            self._restart_count_since_reset = 0
        backoff = min(
            self.config.crash_backoff_initial_s * 2**self._restart_count_since_reset, self.config.crash_backoff_max_s
        )
        self._restart_count_since_reset += 1
        self._busy = _RESTART
        self._after(backoff + self.config.restart_s, RESTARTED)

    def _restarted(self) -> None:
        self._busy = None
        self.metrics.reset()  # a new server process exports fresh series
        self._last_start_s = self.clock.now
        self._set_status(_RUNNING)
        self._kick()

    def _sample_duty_cycle(self):
        window = self.config.duty_cycle_sample_s
        last = 0.0
        while self.status is not _TERMINATED:
            yield self.env.timeout(window)
            busy = self.busy_seconds()
            self.metrics.duty_cycle_percent = 100.0 * (busy - last) / window
            last = busy
