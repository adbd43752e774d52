# C types of rlscale/serving/metrics.py for the compiled core (see rlscale/_core.py, setup.py): the pod's
# observation hooks become C calls.

cimport cython

from rlscale.serving.request cimport Request

cdef class PodMetrics:
    cdef public object pod, queue_duration, input_length, output_length, ttft, tpot, prefill_token_time
    cdef public object request_time, wait_time, histograms, registry, device_registry
    cdef public double duty_cycle_percent
    cdef public long successes
    cdef public list _prefilled, _inserted, _completed
    cpdef on_prefill_end(self, Request req)
    cpdef on_insert(self, Request req)
    cpdef on_complete(self, Request req)
    @cython.locals(r=Request, dt=cython.double)
    cpdef _observe_pending(self)
