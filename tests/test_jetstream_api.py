"""JetStream's client APIs: the protocol both sides speak, and the emulator serving it (HTTP /v1/generate, gRPC
Decode) with the simulated pod's timing."""

from __future__ import annotations

import json
import time

import grpc
import pytest
import requests

from rlscale.emulator import Emulator
from rlscale.jetstream import protocol
from rlscale.scenario import load_scenario
from rlscale.serving.step_time import RooflineStepModel
from rlscale.specs import load_hardware, load_model

SPEED = 5.0


def test_http_stream_is_split_into_its_json_objects_whatever_the_chunking() -> None:
    first, rest = (protocol.response_json(protocol.stream_response(ids, None)) for ids in ([7], [8, 9, 10]))
    body = first + rest  # upstream concatenates MessageToJson outputs, no separator
    for cut in (1, 10, len(first), len(first) + 3):
        chunks = [body[:cut].encode(), body[cut:].encode()]
        objects = list(protocol.json_objects(chunks))
        assert [protocol.tokens_in(o) for o in objects] == [1, 3]
    assert objects[1] == {"streamContent": {"samples": [{"tokenIds": [8, 9, 10]}]}}  # upstream's JSON names
    with pytest.raises(ValueError, match="inside a JSON object"):
        list(protocol.json_objects([first[:-2]]))


def test_the_fast_json_is_message_to_json() -> None:
    for ids, text in (([7], None), ([1, 2, 3], "a b c"), ([], "x")):
        assert json.loads(protocol.stream_json(ids, text)) == json.loads(
            protocol.response_json(protocol.stream_response(ids, text))
        )


def test_request_bodies_and_their_checks() -> None:
    body = protocol.http_body(token_ids=[1, 2, 3], max_tokens=4)
    assert body == {"max_tokens": 4, "token_content": {"token_ids": [1, 2, 3]}}
    assert protocol.parse_http_body(body) == ([1, 2, 3], None, 4)
    assert protocol.parse_http_body({"max_tokens": 2, "text_content": {"text": " a b "}}) == (None, "a b", 2)
    for bad, why in [
        ({"max_tokens": 2, "prompt": "x"}, "extra fields"),
        ({"text_content": {"text": "x"}}, "max_tokens"),
        ({"max_tokens": 2}, "one of token_content"),
        ({"max_tokens": 2, "token_content": {"token_ids": ["a"]}}, "token_ids"),
    ]:
        with pytest.raises(ValueError, match=why):
            protocol.parse_http_body(bad)
    grpc_request = protocol.decode_request(token_ids=[5, 6], max_tokens=3)
    assert grpc_request.WhichOneof("content") == "token_content" and list(grpc_request.token_content.token_ids) == [
        5,
        6,
    ]
    wire = grpc_request.SerializeToString()  # field numbers as upstream's proto: max_tokens 4, token_content 6
    assert wire[0] == (4 << 3) and wire[2] == (6 << 3 | 2)


@pytest.fixture(scope="module")
def emulator():
    scenario = load_scenario("single-pod")
    with Emulator(
        scenario, speed=SPEED, api_port=0, metrics_port=0, device_port=None, http_port=0, grpc_port=0,
        scenario_traffic=False,
    ) as emu:  # fmt: skip
        yield emu


def step_model() -> RooflineStepModel:
    pod = load_scenario("single-pod").pod
    return RooflineStepModel.for_deployment(load_model(pod.model), load_hardware(pod.hardware), pod)


def test_http_generate_streams_first_token_then_the_rest_at_the_pods_times(emulator) -> None:
    session = requests.Session()
    assert session.get(emulator.http_url + "/v1/health").json() == {"is_live": "True"}
    sent = time.monotonic()
    response = session.post(emulator.http_url + "/v1/generate", json=protocol.http_body([1] * 100, max_tokens=40),
                            stream=True)  # fmt: skip
    assert response.headers["Content-Type"].startswith("text/event-stream")
    arrivals, counts = [], []
    for obj in protocol.json_objects(response.iter_content(chunk_size=None)):
        arrivals.append((time.monotonic() - sent) * SPEED)
        counts.append(protocol.tokens_in(obj))
    assert counts == [1, 39]
    # an idle pod: prefill of the 128 bucket, then the insert and 39 decode steps of a preallocated 88-slot cache
    sm = step_model()
    prefill_s = sm.prefill_ms(128) / 1e3
    e2e_s = prefill_s + (sm.insert_ms(128) + 39 * sm.decode_ms(88, 88 * 2048)) / 1e3
    assert prefill_s <= arrivals[0] < prefill_s + 0.25  # loopback and threads: a few wall ms, x5
    assert e2e_s <= arrivals[1] < e2e_s + 0.25


def test_http_errors_are_upstreams(emulator) -> None:
    bad = requests.post(emulator.http_url + "/v1/generate", json={"max_tokens": 3, "prompt": "hi"})
    assert bad.status_code == 422 and "extra fields" in bad.json()["detail"]
    assert requests.get(emulator.http_url + "/nope").status_code == 404
    text = requests.post(emulator.http_url + "/v1/generate", json={"max_tokens": 2, "text_content": {"text": "a b"}})
    samples = [o["streamContent"]["samples"][0] for o in protocol.json_objects([text.content])]
    assert [s["text"] for s in samples] == [" tok", " tok"]  # server-side tokenization answers with text too


def test_grpc_decode_streams_the_same_answer(emulator) -> None:
    pb, services = protocol.stubs()
    with grpc.insecure_channel(emulator.grpc_target) as channel:
        stub = services.OrchestratorStub(channel)
        assert stub.HealthCheck(pb.HealthCheckRequest()).is_live
        responses = list(stub.Decode(protocol.decode_request(token_ids=[3, 4, 5], max_tokens=6), timeout=30))
        assert [protocol.tokens_in(r) for r in responses] == [1, 5]
        assert list(responses[0].stream_content.samples[0].token_ids) == [3]  # ids echo the prompt's
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Decode(pb.DecodeRequest(max_tokens=3), timeout=30))
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_requests_join_the_simulation_and_its_metrics(emulator) -> None:
    with emulator.lock:
        before = emulator.sim.tally.arrived
    requests.post(
        emulator.http_url + "/v1/generate", json=protocol.http_body([1] * 10, max_tokens=2)
    ).raise_for_status()
    with emulator.lock:
        assert emulator.sim.tally.arrived == before + 1
        pod = emulator.sim.fleet.serving_pods()[0]
        page = pod.metrics.exposition()
    assert "jetstream_request_success_count_total" in page


def test_a_request_the_fleet_fails_gets_an_error() -> None:
    scenario = load_scenario("single-pod")
    scenario = scenario.model_copy(
        update={"fleet": scenario.fleet.model_copy(update={"replicas": 0, "gateway_timeout_s": 1.0})}
    )
    with Emulator(scenario, speed=20, api_port=0, metrics_port=0, device_port=None, http_port=0,
                  scenario_traffic=False) as emu:  # fmt: skip
        response = requests.post(emu.http_url + "/v1/generate", json=protocol.http_body([1], max_tokens=2), timeout=30,
                                 stream=True)  # fmt: skip
        assert response.status_code == 200  # the headers leave on arrival, as upstream's
        with pytest.raises(requests.exceptions.ChunkedEncodingError):  # the stream is cut: no terminating chunk
            list(response.iter_content(chunk_size=None))
