# C types of rlscale/simulation.py for the compiled core (see rlscale/_core.py, setup.py): the arrival chain.

from rlscale.clock cimport ClockCore, _Call
from rlscale.kpi_stream cimport KPIAccumulator
from rlscale.serving.request cimport Request
from rlscale.timeline cimport Timeline

cdef class _Traffic:
    cdef public object env, fleet, upcoming
    cdef public ClockCore clock
    cdef public KPIAccumulator tally
    cdef public Timeline timeline
    cpdef next(self)
    cpdef arrive(self, Request request)

cdef class _Arrival(_Call):
    cdef _Traffic traffic
    cdef Request request
    cpdef fire(self)

cdef class _Ended:
    cdef public Timeline timeline
    cdef public KPIAccumulator tally
    cdef public list listeners
