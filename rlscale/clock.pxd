# C types of rlscale/clock.py for the compiled core (see rlscale/_core.py, setup.py): queue entries compare their
# order key as C fields.

cdef class _Call:
    cdef public double t
    cdef public long priority, eid
    cdef public object fn
    cpdef fire(self)
    cpdef bint before(self, _Call other)

cdef class _EventEntry(_Call):
    cdef public object event
    cpdef fire(self)

cpdef schedule(object env, double delay_s, _Call entry, long priority=*)
