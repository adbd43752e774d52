"""An inference request and the timestamps the pipeline stamps on it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RequestState(StrEnum):
    QUEUED = "queued"  # in the prefill backlog
    PREFILLING = "prefilling"
    HELD = "held"  # prefilled, waiting in the transfer/generate backlogs for a slot
    DECODING = "decoding"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(slots=True, eq=False)
class Request:
    """One request; times in simulated seconds, NaN until reached."""

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    state: RequestState = RequestState.QUEUED
    prefill_tokens: int = 0  # after truncation to max_prefill_predict_length
    padded_tokens: int = 0  # the bucket actually computed
    target_tokens: int = 0  # output after the max_target_length cap
    pod: str = ""  # the server it was routed to ("" while at the gateway)
    prefill_start_s: float = float("nan")
    first_token_s: float = float("nan")  # = prefill end: JetStream returns the first token then
    insert_s: float = float("nan")
    finish_s: float = float("nan")
    failure: str = ""

    @property
    def in_flight(self) -> bool:
        return self.state not in (RequestState.COMPLETED, RequestState.FAILED)

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
