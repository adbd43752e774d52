"""An inference request and the timestamps the pipeline stamps on it."""

from __future__ import annotations

from enum import StrEnum


class RequestState(StrEnum):
    QUEUED = "queued"  # in the prefill backlog
    PREFILLING = "prefilling"
    HELD = "held"  # prefilled, waiting in the transfer/generate backlogs for a slot
    DECODING = "decoding"
    COMPLETED = "completed"
    FAILED = "failed"


NAN = float("nan")
# The states as module constants: an Enum member lookup goes through the metaclass's __getattr__ hook on Python
# 3.11, slow on the simulator's hot path (every request changes state five times).
QUEUED, PREFILLING, HELD = RequestState.QUEUED, RequestState.PREFILLING, RequestState.HELD
DECODING, COMPLETED, FAILED = RequestState.DECODING, RequestState.COMPLETED, RequestState.FAILED


class Request:
    """One request; times in simulated seconds, NaN until reached.

    A plain class rather than a dataclass: it is one of the simulator's compiled core types (request.pxd gives its
    fields C types), and an extension type cannot be a dataclass. Identity is equality, as for any object.
    """

    def __init__(self, id: int, arrival_s: float, prompt_tokens: int, output_tokens: int) -> None:
        self.id = id
        self.arrival_s = arrival_s
        self.prompt_tokens = prompt_tokens
        self.output_tokens = output_tokens
        self.state = QUEUED
        self.prefill_tokens = 0  # after truncation to max_prefill_predict_length
        self.padded_tokens = 0  # the bucket actually computed
        self.target_tokens = 0  # output after the max_target_length cap
        self.insert_step = 0  # its server's decode step count when it took a slot
        self.finish_step = 0  # the step count at which it will have generated its last token (orders the slots)
        self.pod = ""  # the server it was routed to ("" while at the gateway)
        self.prefill_start_s = NAN
        self.first_token_s = NAN  # = prefill end: JetStream returns the first token then
        self.insert_s = NAN
        self.finish_s = NAN
        self.failure = ""

    def __repr__(self) -> str:
        return (
            f"Request(id={self.id}, arrival_s={self.arrival_s!r}, prompt_tokens={self.prompt_tokens}, "
            f"output_tokens={self.output_tokens}, state={self.state.value}, pod={self.pod!r})"
        )

    @property
    def in_flight(self) -> bool:
        return self.state is not COMPLETED and self.state is not FAILED

    @property
    def truncated_prompt_tokens(self) -> int:
        """Prompt tokens the server dropped (0 until a server took the request, and when it fits)."""
        return self.prompt_tokens - self.prefill_tokens if self.prefill_tokens else 0

    @property
    def capped_output_tokens(self) -> int:
        """Output tokens asked for but cut by the slot's ``max_target_length`` (0 until a server took it)."""
        return self.output_tokens - self.target_tokens if self.target_tokens else 0

    @property
    def ttft_s(self) -> float:
        """Time to first token as the client sees it (from arrival)."""
        return self.first_token_s - self.arrival_s

    @property
    def latency_s(self) -> float:
        return self.finish_s - self.arrival_s

    @property
    def tpot_s(self) -> float:
        """Mean time per output token after the first."""
        steps = self.target_tokens - 1
        return (self.finish_s - self.first_token_s) / steps if steps > 0 else float("nan")
