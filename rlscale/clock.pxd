# C types of rlscale/clock.py for the compiled core (see rlscale/_core.py, setup.py).

cdef class _Call:
    cdef public object fn
    cpdef fire(self)

cpdef schedule(object env, double delay_s, _Call entry)
