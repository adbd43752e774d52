# C types of rlscale/serving/pod.py for the compiled core (see rlscale/_core.py, setup.py): the pod's state as C
# fields, and its engine's methods as C-level calls (cpdef: still callable, and overridable, from Python).

cimport cython

from rlscale.clock cimport ClockCore, _Call
from rlscale.serving.metrics cimport PodMetrics
from rlscale.serving.request cimport Request

cdef inline bint _slot_before(Request a, Request b)
cdef _slot_push(list heap, Request request)
@cython.locals(up=cython.Py_ssize_t, parent=Request)
cdef _slot_sift_up(list heap, Request request, Py_ssize_t pos)
@cython.locals(last=Request, top=Request, n=cython.Py_ssize_t, pos=cython.Py_ssize_t, child=cython.Py_ssize_t,
               other=cython.Py_ssize_t, left=Request, right=Request)
cdef Request _slot_pop(list heap)

cdef double MS  # seconds per millisecond: a C constant, so step-time arithmetic stays in C

cdef class DecodeSegment:
    cdef public double a_ms, b_ms, kv0, dkv
    cpdef double duration_s(self, long k)
    cpdef long steps_within(self, double elapsed_s)

cdef class _Segment:
    cdef public double start_s
    cdef public long start_step, steps
    cdef public DecodeSegment decode
    cdef public object oom_step
    cdef public bint cut

cdef class JetStreamPod

cdef class _OpEnd(_Call):
    cdef JetStreamPod pod
    cdef long token, then
    cpdef fire(self)

cdef class JetStreamPod:
    cdef public object env, name, config, model, hardware, step_model, hbm, on_done, on_status, status
    cdef public PodMetrics metrics
    cdef public long slots
    cdef public object _decode_affine, _prefill_s, _insert_s, _buckets
    cdef public ClockCore clock
    cdef public object prefill_backlog, held, _active, _inserting
    cdef public object prefilling, _busy, _busy_since, _segment
    cdef public long _held_capacity, _steps, _kv_offset, _held_tokens, _op, _restart_count_since_reset
    cdef public long arrived, completed, failed, crashes
    cdef public double _busy_s, _owed_s, _last_start_s
    cdef public bint _paged, _reject_long
    cdef public long _page_tokens, _max_prefill, _max_target, _generate_capacity, _transfer_capacity
    cdef public double _static_bytes, _total_bytes, _page_bytes, _kv_bytes_per_token
    cdef public DecodeSegment _full_decode

    cpdef submit(self, Request request)
    cpdef bint _prefill_ready(self)
    @cython.locals(end=_OpEnd)
    cpdef _after(self, double delay_s, long then)
    cpdef _stop_device(self)
    cpdef _kick(self)
    cpdef double _begin(self, object busy, double duration_s, long then)
    cpdef _device_free(self)
    cpdef _set_busy(self, bint busy)
    @cython.locals(request=Request)
    cpdef _insert(self)
    @cython.locals(request=Request)
    cpdef _start_prefill(self)
    @cython.locals(request=Request)
    cpdef _prefill_done(self)
    cpdef DecodeSegment _decode_segment(self)
    @cython.locals(seg=_Segment)
    cpdef _start_decode(self)
    cpdef object _steps_until_oom(self, long horizon)
    @cython.locals(seg=_Segment, done=cython.long)
    cpdef _cut_decode(self)
    @cython.locals(seg=_Segment, request=Request)
    cpdef _decode_done(self)
    cpdef _complete(self, Request request)
    cpdef _fail(self, Request request, str why)
    cpdef _crash(self)
    cpdef _restarted(self)
