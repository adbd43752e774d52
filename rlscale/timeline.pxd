# C types of rlscale/timeline.py for the compiled core (see rlscale/_core.py, setup.py).

from rlscale.serving.request cimport Request

cdef class Timeline:
    cdef public object env, _rows, _fleet, _price
    cdef public double interval_s
    cdef public long arrivals, _completed, _failed, _truncated, _crashes_seen
    cdef public list _ttft, _tpot
    cpdef ended(self, Request request)
