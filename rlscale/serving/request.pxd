# C types of rlscale/serving/request.py for the compiled core (see rlscale/_core.py, setup.py).

cdef class Request:
    cdef public long id, prompt_tokens, output_tokens, prefill_tokens, padded_tokens, target_tokens
    cdef public long insert_step, finish_step
    cdef public double arrival_s, prefill_start_s, first_token_s, insert_s, finish_s
    cdef public object state
    cdef public str pod, failure
