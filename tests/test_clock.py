"""The clock: call_later events interleave with simpy's own events in time order, as simpy would order them."""

from __future__ import annotations

import pytest
import simpy

from rlscale.clock import Clock, call_later


@pytest.mark.parametrize("env_type", [Clock, simpy.Environment])
def test_callbacks_and_processes_share_one_time_order(env_type):
    env = env_type()
    log = []

    def proc():
        yield env.timeout(1.5)
        log.append(("process", env.now))
        yield env.timeout(1.0)
        log.append(("process", env.now))

    env.process(proc())
    for t in (0.5, 2.0, 2.5, 3.0):
        call_later(env, t, lambda t=t: log.append(("call", env.now)))
    env.run(until=3.0)
    assert env.now == 3.0
    # events at exactly `until` wait for the next run, as in simpy
    assert log == [("call", 0.5), ("process", 1.5), ("call", 2.0), ("call", 2.5), ("process", 2.5)]  # FIFO at ties
    env.run(until=4.0)
    assert log[-1] == ("call", 3.0)


def test_a_failed_event_still_crashes_the_run():
    env = Clock()
    env.event().fail(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        env.run(until=1.0)


def test_until_must_be_in_the_future():
    env = Clock()
    env.run(until=2.0)
    with pytest.raises(ValueError, match="must be greater"):
        env.run(until=1.0)


def test_the_core_is_simpys_clock_too():
    """simpy's code (``env.now``, ``run(until=event)``, ``peek``) and the compiled hot path (``env.core``) read one
    time and one queue: an event scheduled through either fires in the other's order."""
    env = Clock(initial_time=10)
    assert env.now == env.core.now == 10.0
    done = env.timeout(2.0)
    call_later(env, 1.0, lambda: None)
    assert env.peek() == 11.0 and len(env.core.queue) == 2
    env.run(until=done)
    assert env.now == env.core.now == 12.0


def test_a_pod_refuses_a_plain_simpy_environment():
    from rlscale.serving.pod import JetStreamPod

    with pytest.raises(TypeError, match=r"rlscale\.clock\.Clock"):
        JetStreamPod(simpy.Environment(), "pod-0")
