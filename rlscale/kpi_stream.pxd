# C types of rlscale/kpi_stream.py for the compiled core (see rlscale/_core.py, setup.py).

cimport cython

from rlscale.serving.request cimport Request

cdef class KPIAccumulator:
    cdef public object slo, failures, ttft, tpot, latency
    cdef public long arrived, completed, failed, output_tokens, ttft_ok, tpot_ok, e2e_ok, all_ok
    cdef public long truncated_requests, truncated_prompt_tokens, capped_output_requests, capped_output_tokens
    cdef double _ttft_slo_s, _tpot_slo_s, _e2e_slo_s
    cdef double[::1] _ttft_buf, _tpot_buf, _latency_buf
    cdef Py_ssize_t _buffered, _buffered_tpot
    @cython.locals(first=cython.double, finish=cython.double, tokens=cython.long, ttft=cython.double,
                   latency=cython.double, tpot=cython.double, ttft_ok=cython.bint, tpot_ok=cython.bint, e2e_ok=cython.bint)
    cpdef ended(self, Request request)
    @cython.locals(cut=cython.long, capped=cython.long)
    cpdef _tally_cuts(self, Request request)
