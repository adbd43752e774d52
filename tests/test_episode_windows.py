"""Episodes as windows of production days, and the time of day a policy reads: a window drawn anew per episode
(whole 600 s windows, within the days the traffic plays), and ``ClusterState.time_of_day_s`` that of the traffic's
own days in simulation (a day played from 16:00 reads 57600 s at its start), which the observation's time features
encode with a period of a day."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlscale.envs.jetstream import JetStreamEnv
from rlscale.scenario import ScenarioConfig
from rlscale.simulation import Simulation
from rlscale.workload.build import clock_origin_s, random_window
from rlscale.workload.servegen import DAY_S, WINDOW_S

DAY = 86_400


def production(days=(1, 10), start_s=0, duration_s=3600.0, **randomization) -> ScenarioConfig:
    return ScenarioConfig.model_validate({
        "name": "days",
        "workload": {"arrival": {"process": "servegen", "service": "m-small", "clients": {"top": 1}, "split": "train",
                                 "days": list(days), "rate_scale": 0.002, "start_s": start_s}},
        "duration_s": duration_s,
        "randomization": randomization,
    })  # fmt: skip


def test_a_window_lies_within_the_days_played_in_whole_data_windows() -> None:
    spec = production().workload
    rng = np.random.default_rng(0)
    seen_days, seen_hours = set(), set()
    for _ in range(400):
        window = random_window(spec, 7200.0, rng).arrival
        first, last = window.days
        assert window.start_s % WINDOW_S == 0 and 0 <= window.start_s < DAY_S
        assert 1 <= first <= last <= 10 and last - first <= 1  # two hours span midnight at most once
        assert (first - 1) * DAY_S + window.start_s + 7200 <= 10 * DAY_S  # never past day 10's end
        assert window.played_s >= 7200  # the scenario can play all of it
        seen_days.add(first)
        seen_hours.add(window.start_s // 3600)
    assert seen_days == set(range(1, 11)) and len(seen_hours) == 24  # every day, every hour of the day
    same = [random_window(spec, 7200.0, np.random.default_rng(3)).arrival for _ in range(2)]
    assert same[0] == same[1]  # the draw is the generator's


def test_a_window_longer_than_the_days_is_refused() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        random_window(production(days=(2, 2)).workload, DAY + 600.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="needs production traffic"):
        ScenarioConfig.model_validate({"randomization": {"random_start": True}})


def test_the_time_of_day_is_the_traffics_own() -> None:
    evening = production(days=(2, 2), start_s=57_600)
    assert clock_origin_s(evening.workload) == DAY + 57_600  # one clock over the record's days
    state = Simulation.build(evening).state()
    assert state.now_s == 0 and state.time_of_day_s == 57_600
    assert clock_origin_s(ScenarioConfig().workload) == 0  # synthetic traffic starts at midnight


def test_each_episode_plays_its_own_window_and_observes_its_time_of_day() -> None:
    env = JetStreamEnv(production(random_start=True), time_period_s=DAY, episode_s=1800.0)
    starts = []
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        arrival = env.episode.workload.arrival
        starts.append((arrival.days[0] - 1) * DAY + arrival.start_s)
        phase = 2 * math.pi * arrival.start_s / DAY
        assert obs[-2:] == pytest.approx([math.sin(phase), math.cos(phase)], abs=1e-6)  # the window's hour at t=0
        assert env.episode.duration_s == 1800.0
    assert len(set(starts)) == 6  # a new window each episode
    env.reset(seed=2)
    again = env.episode.workload.arrival
    assert ((again.days[0] - 1) * DAY + again.start_s) == starts[2]  # and the same one for the same seed
