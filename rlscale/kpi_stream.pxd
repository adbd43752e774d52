# C types of rlscale/kpi_stream.py for the compiled core (see rlscale/_core.py, setup.py).

cimport cython

from rlscale.serving.request cimport Request

cdef class KPIAccumulator:
    cdef public object slo, failures, ttft, tpot, latency
    cdef public long arrived, completed, failed, output_tokens, ttft_ok, tpot_ok, e2e_ok, all_ok
    cdef public long truncated_requests, truncated_prompt_tokens, capped_output_requests, capped_output_tokens
    cdef public list _done
    cpdef ended(self, Request request)
    @cython.locals(cut=cython.long, capped=cython.long)
    cpdef _tally_cuts(self, Request request)
