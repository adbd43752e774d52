"""JetStream's two client interfaces, both sides: the gRPC ``Decode`` stream and the HTTP server's ``/v1/generate``.

* gRPC: ``jetstream_proto.Orchestrator/Decode`` takes a ``DecodeRequest`` (``max_tokens`` and either
  ``text_content.text`` or ``token_content.token_ids``) and streams ``DecodeResponse`` messages, each a
  ``stream_content`` whose ``samples`` carry the step's ``text`` and ``token_ids`` (upstream's orchestrator
  answers a token request with ids only). The stubs come from ``jetstream.proto`` beside this module, generated
  at first use by grpcio-tools (:func:`stubs`).
* HTTP (``jetstream/entrypoints/http/api_server.py``): ``POST /v1/generate`` takes the same request as JSON
  (``{"max_tokens": 64, "token_content": {"token_ids": [...]}}``; an unknown field is refused with 422) and
  answers with a ``text/event-stream`` body whose chunks are ``MessageToJson`` of each ``DecodeResponse``,
  concatenated with no separator (:func:`json_objects` splits them); ``GET /v1/health`` answers
  ``{"is_live": "True"}``.

This module imports nothing of rlscale: the emulator serves these messages, the load tester sends them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

PROTO = "rlscale/jetstream/jetstream.proto"  # found on sys.path by protos_and_services, as an import would be
GENERATE_PATH, HEALTH_PATH = "/v1/generate", "/v1/health"
DECODE_METHOD = "/jetstream_proto.Orchestrator/Decode"
REQUEST_FIELDS = frozenset({"max_tokens", "text_content", "token_content", "metadata"})  # the HTTP body's (protocol.py)


@cache
def stubs() -> tuple[ModuleType, ModuleType]:
    """The generated ``(jetstream_pb2, jetstream_pb2_grpc)`` modules (grpcio-tools compiles the proto once)."""
    import grpc

    root = str(Path(__file__).resolve().parents[2])
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        return grpc.protos_and_services(PROTO)
    finally:
        if added:
            sys.path.remove(root)


def http_body(token_ids: list[int] | None = None, text: str | None = None, max_tokens: int = 1) -> dict[str, Any]:
    """The JSON body of ``POST /v1/generate`` (exactly one of ``token_ids`` and ``text``)."""
    if (token_ids is None) == (text is None):
        raise ValueError("give token_ids or text, not both")
    content = {"token_content": {"token_ids": token_ids}} if token_ids is not None else {"text_content": {"text": text}}
    return {"max_tokens": max_tokens, **content}


def decode_request(token_ids: list[int] | None = None, text: str | None = None, max_tokens: int = 1) -> Any:
    """The gRPC ``DecodeRequest`` for the same content as :func:`http_body`."""
    pb, _ = stubs()
    if (token_ids is None) == (text is None):
        raise ValueError("give token_ids or text, not both")
    if token_ids is not None:
        return pb.DecodeRequest(max_tokens=max_tokens, token_content=pb.DecodeRequest.TokenContent(token_ids=token_ids))
    return pb.DecodeRequest(max_tokens=max_tokens, text_content=pb.DecodeRequest.TextContent(text=text))


def parse_http_body(body: dict[str, Any]) -> tuple[list[int] | None, str | None, int]:
    """``(token_ids, text, max_tokens)`` of a ``/v1/generate`` body; ``ValueError`` names what is wrong (the
    server's 422)."""
    if not isinstance(body, dict):
        raise ValueError("body: expected a JSON object")
    unknown = set(body) - REQUEST_FIELDS
    if unknown:
        raise ValueError(f"extra fields not permitted: {sorted(unknown)}")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise ValueError("max_tokens: an integer is required")
    tokens, text = body.get("token_content"), body.get("text_content")
    if tokens is not None:
        ids = tokens.get("token_ids") if isinstance(tokens, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ValueError("token_content.token_ids: a list of integers is required")
        return ids, None, max_tokens
    if text is not None:
        value = text.get("text") if isinstance(text, dict) else None
        if not isinstance(value, str):
            raise ValueError("text_content.text: a string is required")
        return None, value.strip(), max_tokens
    raise ValueError("one of token_content and text_content is required")


def stream_response(token_ids: list[int], text: str | None) -> Any:
    """One streamed ``DecodeResponse``: a single sample with these tokens (text only for server-side
    tokenization, as upstream's orchestrator answers)."""
    pb, _ = stubs()
    sample = pb.DecodeResponse.StreamContent.Sample(token_ids=token_ids)
    if text is not None:
        sample.text = text
    return pb.DecodeResponse(stream_content=pb.DecodeResponse.StreamContent(samples=[sample]))


def response_json(response: Any) -> str:
    """A ``DecodeResponse`` as the HTTP server streams it (protobuf's ``MessageToJson``, as upstream's utils)."""
    from google.protobuf.json_format import MessageToJson

    return MessageToJson(response)


def stream_json(token_ids: list[int], text: str | None) -> str:
    """:func:`stream_response` as the HTTP server streams it, built directly: the object ``MessageToJson`` gives
    (``streamContent.samples[].text``/``tokenIds``) without its indentation. json's C encoder is 10-50x faster than
    protobuf's JSON printer, whose cost grew with the answer's length and so delayed a long answer's last chunk
    more than its first (a bias a calibration reads as device time)."""
    sample: dict[str, Any] = {"text": text} if text else {}
    if token_ids:
        sample["tokenIds"] = token_ids
    return json.dumps({"streamContent": {"samples": [sample]}}, separators=(",", ":"))


def json_objects(chunks: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
    """Split ``/v1/generate``'s body, JSON objects concatenated without a separator, as its chunks arrive."""
    decoder = json.JSONDecoder()
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while True:
            start = len(buffer) - len(buffer.lstrip())
            if start == len(buffer):
                buffer = ""
                break
            try:
                obj, end = decoder.raw_decode(buffer, start)
            except json.JSONDecodeError:
                break  # an object cut across chunks: wait for the rest
            yield obj
            buffer = buffer[end:]
    if buffer.strip():
        raise ValueError(f"the stream ended inside a JSON object: {buffer[:80]!r}")


def tokens_in(response: dict[str, Any] | Any) -> int:
    """Tokens one streamed response carries: its first sample's ids, else 1 (a step whose token the server sent
    as text only, or withheld: google-jetstream 0.2.2's mock engine answers some steps with an empty sample), from
    the JSON form (``streamContent.samples[].tokenIds``) or a ``DecodeResponse`` message; 0 without a sample."""
    if isinstance(response, dict):
        samples = response.get("streamContent", {}).get("samples", [])
        if not samples:
            return 0
        return len(samples[0].get("tokenIds") or ()) or 1
    if not response.HasField("stream_content") or not response.stream_content.samples:
        return 0
    return len(response.stream_content.samples[0].token_ids) or 1
