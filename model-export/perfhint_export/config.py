"""The RLM's hyper-parameters, as one small dataclass shared by the model, the exporter and training.

What is hard: regress-lm stores none of these in its checkpoints, and some cannot be recovered from the
state-dict shapes (decoder heads, max_input_len, the split of decode_len into objectives). So a
regress-lm checkpoint comes with a sidecar JSON (see sidecar.py) and this config is *validated* against
the shapes rather than trusted; our own checkpoints embed it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RLMConfig:
    """Architecture of regress-lm's vanilla encoder-decoder (REGRESS_LM_FACTS §3)."""

    encoder_vocab_size: int
    decoder_vocab_size: int
    d_model: int
    num_encoder_layers: int
    num_decoder_layers: int
    decode_len: int  # max_num_objs * tokens per objective; the decoder's `pe` table has decode_len + 1 rows
    max_input_len: int
    encoder_pad_id: int = 0
    encoder_nhead: int = 8
    decoder_nhead: int = 8  # hard-coded to 8 in regress-lm; not recoverable from a state dict
    encoder_dim_feedforward: int | None = None  # None -> 4 * d_model
    decoder_dim_feedforward: int | None = None  # None -> 4 * d_model
    dropout: float = 0.0

    @property
    def encoder_ffn(self) -> int:
        return self.encoder_dim_feedforward or 4 * self.d_model

    @property
    def decoder_ffn(self) -> int:
        return self.decoder_dim_feedforward or 4 * self.d_model

    @property
    def encoder_head_dim(self) -> int:
        return self.d_model // self.encoder_nhead

    @property
    def decoder_head_dim(self) -> int:
        return self.d_model // self.decoder_nhead

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RLMConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown RLM config keys {unknown}; known keys are {sorted(known)}")
        return cls(**data)
