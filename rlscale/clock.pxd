# C types of rlscale/clock.py for the compiled core (see rlscale/_core.py, setup.py): queue entries compare their
# order key as C fields.

cimport cython

cdef class _Call:
    cdef public double t
    cdef public long priority, eid
    cdef public object fn
    cpdef fire(self)
    cpdef bint before(self, _Call other)

cdef class _EventEntry(_Call):
    cdef public object event
    cpdef fire(self)

cdef class ClockCore:
    cdef public double now
    cdef public long eid
    cdef public list queue

cpdef schedule(ClockCore core, double delay_s, _Call entry, long priority=*)

cdef _push(list queue, _Call entry)

@cython.locals(up=cython.Py_ssize_t, parent=_Call)
cdef inline _sift_up(list queue, _Call entry, Py_ssize_t pos)

@cython.locals(last=_Call, top=_Call, n=cython.Py_ssize_t, pos=cython.Py_ssize_t, child=cython.Py_ssize_t,
               other=cython.Py_ssize_t, left=_Call, right=_Call)
cdef _Call _pop(list queue)

@cython.locals(entry=_Call, queue=list)
cpdef _drain(ClockCore core, double at)
