"""Transformer model specs, read from Hugging Face ``config.json`` field names.

A spec carries only the shape; everything the step-time and HBM models need
(weight bytes, KV bytes per token, FLOPs per token) is derived here, so one
formula serves every model and a real ``config.json`` can be passed as is.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4, "int8": 1, "float8": 1}


class ModelSpec(BaseModel):
    """A decoder-only transformer, described by Hugging Face config.json fields.

    Unknown keys are ignored on purpose: real config.json files carry dozens of
    fields (rope scaling, token ids, ...) that do not change step time or HBM.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field("custom", description="Catalog name or file stem.")
    num_hidden_layers: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int | None = Field(None, gt=0, description="Defaults to num_attention_heads (no GQA).")
    intermediate_size: int = Field(gt=0, description="FFN width; gated FFNs (SwiGLU/GeGLU) have 3 matrices.")
    vocab_size: int = Field(gt=0)
    head_dim: int | None = Field(None, gt=0, description="Defaults to hidden_size / num_attention_heads.")
    torch_dtype: str = Field("bfloat16", description="Weight and KV-cache dtype.")
    tie_word_embeddings: bool = False
    max_position_embeddings: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if self.torch_dtype not in DTYPE_BYTES:
            raise ValueError(f"torch_dtype: {self.torch_dtype!r} is not one of {sorted(DTYPE_BYTES)}")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) is not divisible by num_attention_heads "
                f"({self.num_attention_heads}); give head_dim"
            )
        if self.num_attention_heads % self.kv_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) is not a multiple of "
                f"num_key_value_heads ({self.kv_heads})"
            )
        return self

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.torch_dtype]

    @property
    def layer_matmul_params(self) -> int:
        """Parameters of one layer's matrices: Q, K, V, O and a gated FFN."""
        h, hd = self.hidden_size, self.dim_per_head
        attention = h * hd * (2 * self.num_attention_heads + 2 * self.kv_heads)
        ffn = 3 * h * self.intermediate_size
        return attention + ffn

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def total_params(self) -> int:
        norms = self.num_hidden_layers * 2 * self.hidden_size + self.hidden_size
        lm_head = 0 if self.tie_word_embeddings else self.embedding_params
        return self.num_hidden_layers * self.layer_matmul_params + norms + self.embedding_params + lm_head

    @property
    def weight_bytes(self) -> int:
        """Bytes of all weights resident in HBM."""
        return self.total_params * self.dtype_bytes

    @property
    def matmul_params_per_token(self) -> int:
        """Parameters every token multiplies through: all layers plus the LM head."""
        return self.num_hidden_layers * self.layer_matmul_params + self.embedding_params

    @property
    def decode_weight_read_bytes(self) -> int:
        """Weights streamed from HBM by one decode step.

        The input embedding is a gather of a few rows, so only the LM head's
        copy of the vocabulary matrix is read (tied or not).
        """
        return self.matmul_params_per_token * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V for one token across all layers."""
        return 2 * self.num_hidden_layers * self.kv_heads * self.dim_per_head * self.dtype_bytes

    @property
    def attention_flops_per_token_pair(self) -> int:
        """FLOPs for one query token attending to one cached token (QK^T and AV)."""
        return 4 * self.num_hidden_layers * self.num_attention_heads * self.dim_per_head
