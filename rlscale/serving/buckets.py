"""JetStream's prefill padding (``jetstream/engine/token_utils.py``)."""

from __future__ import annotations

from bisect import bisect_left

DEFAULT_PREFILL_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def prefill_buckets(max_prefill_length: int | None = None) -> tuple[int, ...]:
    """Buckets cut at ``max_prefill_length``, which is appended as upstream's ``pad_tokens`` does."""
    if max_prefill_length is None:
        return DEFAULT_PREFILL_BUCKETS
    return (*(b for b in DEFAULT_PREFILL_BUCKETS if b < max_prefill_length), max_prefill_length)


def take_nearest_length(lengths: tuple[int, ...], length: int) -> int:
    """The smallest bucket >= length, or the largest bucket (then the prompt is truncated)."""
    pos = bisect_left(lengths, length)
    return lengths[-1] if pos == len(lengths) else lengths[pos]


def padded_length(prompt_tokens: int, max_prefill_length: int | None = None) -> int:
    """Tokens a prefill actually computes for a prompt of ``prompt_tokens``."""
    return take_nearest_length(prefill_buckets(max_prefill_length), prompt_tokens)
