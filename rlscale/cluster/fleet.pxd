# C types of rlscale/cluster/fleet.py for the compiled core (see rlscale/_core.py, setup.py): the fleet's per-request
# path (gateway, endpoints, a request's end) as C-level calls on C fields.

cimport cython

from rlscale.serving.request cimport Request

cdef class Fleet:
    cdef public object env, config, name, model, hardware, step_model, delays, pod_config, nodes, router, on_done
    cdef public object gateway
    cdef public list replicas, scale_events, _serving
    cdef public dict _replica_of
    cdef public long arrived, gateway_failed, desired, _created, _crashes_gone
    cdef public bint _serving_stale

    cpdef list serving_pods(self)
    @cython.locals(pods=list)
    cpdef submit(self, Request request)
    cpdef _request_done(self, Request request)
