"""regress-lm's vanilla encoder-decoder RLM, reproduced in PyTorch to within float32 rounding.

What is hard is being *exactly* regress-lm (REGRESS_LM_FACTS §3), because nothing fails loudly when you
are merely close:
- the encoder has no absolute positions and no sqrt(d) embedding scale; position enters only through
  RoPE on q and k, in float32, with *interleaved* (GPT-J) pairs (x[2i], x[2i+1]) rather than the
  half-split pairs most code uses. Both pairings give plausible logits; only one matches the weights;
- the decoder is torch's `nn.TransformerDecoderLayer` (pre-norm, ReLU, 8 heads, packed in_proj) with
  a *stored* sinusoidal table `pe` that is added unscaled, and there is no LayerNorm after the stack;
- a fully masked attention row (the empty input "", whose ids are all padding) must give an all-zero
  attention output. torch gives zeros only on some code paths (SDPA and `nn.MultiheadAttention` with
  need_weights=False use a "safe softmax"; `nn.MultiheadAttention` with need_weights=True and a plain
  softmax give NaN; an additive -1e9 mask gives a uniform average). `masked_attention` below does it
  explicitly, for the encoder and both decoder attentions, so this model never depends on which
  kernel torch happens to pick;
- the state-dict keys are the contract with regress-lm checkpoints and with the ONNX exporter, so the
  module tree mirrors regress-lm's names exactly (FACTS §3.4, without the `encoder_decoder.` prefix).

`greedy_decode` and `sample` are the *reference* decoding loops, written the regress-lm way (the whole
prefix re-run through the decoder at every step, grammar mask applied as mask*logits + (1-mask)*NEG_INF).
They are slow on purpose: faster decoders (KV caches, ONNX) are checked against them.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from perfhint_export.config import RLMConfig

REGRESS_LM_PREFIX = "encoder_decoder."  # regress-lm's PyTorchModel holds this module under that attribute
NEG_INF = -1.0e7  # regress-lm's finite "minus infinity" for disallowed tokens; keeps sampling probabilities identical
LAYER_NORM_EPS = 1e-5  # every LayerNorm in regress-lm uses torch's default
ROPE_BASE = 10000.0
DECODER_BOS_ID = 0  # <pad> is also the decoder's start token


class DecoderGrammar(Protocol):
    """What the decoding loops need from `perfhint.numbers.DecoderCodec` (kept structural: no import cycle)."""

    decode_len: int
    vocab_size: int

    def allowed_mask(self, prefixes: np.ndarray) -> np.ndarray: ...


def masked_attention(query: Tensor, key: Tensor, value: Tensor, allowed: Tensor) -> Tensor:
    """Scaled dot-product attention where a query with no allowed key gets an all-zero output.

    query [B, H, Tq, hd], key/value [B, H, Tk, hd], allowed: bool broadcastable to [B, H, Tq, Tk]
    (True = may attend). This is torch 2.13's SDPA result on CPU, written out so that it holds on every
    backend and in exported graphs: such rows get scores 0 before the softmax (finite, so no NaN
    gradients either) and their weights are then multiplied by 0.
    """
    head_dim = query.shape[-1]
    scores = torch.matmul(query, key.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim))
    scores = scores.masked_fill(~allowed, float("-inf"))
    row_has_key = allowed.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(~row_has_key, 0.0)
    weights = torch.softmax(scores, dim=-1) * row_has_key
    return torch.matmul(weights, value)


def split_heads(x: Tensor, nhead: int) -> Tensor:
    batch, length, d_model = x.shape
    return x.view(batch, length, nhead, d_model // nhead).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    batch, nhead, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, nhead * head_dim)


def sinusoidal_table(num_positions: int, d_model: int) -> Tensor:
    """The classic table [1, num_positions, d]; checkpoints store it, this only fills fresh models."""
    position = torch.arange(num_positions, dtype=torch.float32).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(num_positions, d_model)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table.unsqueeze(0)


# ----------------------------------------------------------------------------------------------- encoder


class RotaryEmbedding(nn.Module):
    """Interleaved (GPT-J) RoPE; `inv_freq` is persistent because regress-lm's state dict has it."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {head_dim}; pick encoder_nhead dividing d_model/2")
        inv_freq = 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=True)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, H, L, hd] -> rotated, positions 0..L-1 from the start of the (padded) sequence."""
        length = x.shape[-2]
        positions = torch.arange(length, dtype=torch.float32, device=x.device)
        angles = positions[:, None] * self.inv_freq.float()[None, :]  # [L, hd/2], float32 as in regress-lm
        cos, sin = torch.cos(angles), torch.sin(angles)
        x_float = x.float()
        even, odd = x_float[..., 0::2], x_float[..., 1::2]
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)
        return rotated.to(x.dtype)


class EncoderLayer(nn.Module):
    """Pre-norm: x + Attn(LN1(x)), then x + W2 ReLU(W1 LN2(x)); separate biased q/k/v/out projections."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.nhead = nhead
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout = nn.Dropout(dropout)  # regress-lm drops out only inside the FFN, after the ReLU

    def forward(self, x: Tensor, key_allowed: Tensor, rotary: RotaryEmbedding) -> Tensor:
        h = self.norm1(x)
        query = rotary(split_heads(self.q_proj(h), self.nhead))
        key = rotary(split_heads(self.k_proj(h), self.nhead))
        value = split_heads(self.v_proj(h), self.nhead)
        x = x + self.out_proj(merge_heads(masked_attention(query, key, value, key_allowed)))
        h = self.norm2(x)
        return x + self.linear2(self.dropout(F.relu(self.linear1(h))))


class VanillaEncoder(nn.Module):
    """regress-lm's EncoderType.VANILLA: embedding (no scale, no positions) -> layers -> final LayerNorm."""

    def __init__(self, config: RLMConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(config.encoder_vocab_size, config.d_model)
        self.rotary_pos_emb = RotaryEmbedding(config.encoder_head_dim)
        self.layers = nn.ModuleList(
            EncoderLayer(config.d_model, config.encoder_nhead, config.encoder_ffn, config.dropout)
            for _ in range(config.num_encoder_layers)
        )
        self.norm = nn.LayerNorm(config.d_model, eps=LAYER_NORM_EPS)

    def forward(self, ids: Tensor, pad_mask: Tensor) -> Tensor:
        key_allowed = ~pad_mask[:, None, None, :]  # [B, 1, 1, L]: keys only; padded queries are computed but unused
        x = self.embedding(ids)
        for layer in self.layers:
            x = layer(x, key_allowed, self.rotary_pos_emb)
        return self.norm(x)


# ----------------------------------------------------------------------------------------------- decoder


class PackedAttention(nn.Module):
    """`nn.MultiheadAttention`'s parameters (in_proj rows = [Wq; Wk; Wv], out_proj) with `masked_attention`."""

    def __init__(self, d_model: int, nhead: int) -> None:
        super().__init__()
        self.nhead = nhead
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)  # torch's MultiheadAttention init, for fresh models
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key_value: Tensor, allowed: Tensor) -> Tensor:
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = split_heads(F.linear(query, w_q, b_q), self.nhead)
        k = split_heads(F.linear(key_value, w_k, b_k), self.nhead)
        v = split_heads(F.linear(key_value, w_v, b_v), self.nhead)
        return self.out_proj(merge_heads(masked_attention(q, k, v, allowed)))


class DecoderLayer(nn.Module):
    """Same keys and maths as nn.TransformerDecoderLayer(norm_first=True, batch_first=True, ReLU)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = PackedAttention(d_model, nhead)
        self.multihead_attn = PackedAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.norm3 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: Tensor, causal_allowed: Tensor, memory: Tensor, memory_allowed: Tensor) -> Tensor:
        h = self.norm1(y)
        y = y + self.self_attn(h, h, causal_allowed)
        y = y + self.multihead_attn(self.norm2(y), memory, memory_allowed)
        return y + self.linear2(self.dropout(F.relu(self.linear1(self.norm3(y)))))


class TransformerDecoder(nn.Module):
    """Holds `layers` only, like nn.TransformerDecoder without a final norm (regress-lm passes none)."""

    def __init__(self, config: RLMConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(config.d_model, config.decoder_nhead, config.decoder_ffn, config.dropout)
            for _ in range(config.num_decoder_layers)
        )


class PositionalEncoding(nn.Module):
    def __init__(self, num_positions: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(num_positions, d_model), persistent=True)


# ----------------------------------------------------------------------------------------------- model


class EncoderDecoder(nn.Module):
    """The module regress-lm keeps at `PyTorchModel.encoder_decoder`; build it from an RLMConfig."""

    def __init__(self, config: RLMConfig) -> None:
        super().__init__()
        for name, d_model, nhead in (("encoder", config.d_model, config.encoder_nhead),
                                     ("decoder", config.d_model, config.decoder_nhead)):
            if d_model % nhead:
                raise ValueError(f"d_model {d_model} is not divisible by {name}_nhead {nhead}; change {name}_nhead")
        self.config = config
        self.encoder = VanillaEncoder(config)
        self.tgt_tok_emb = nn.Embedding(config.decoder_vocab_size, config.d_model)
        self.decoder_positional_encoding = PositionalEncoding(config.decode_len + 1, config.d_model)
        self.decoder = TransformerDecoder(config)
        self.generator = nn.Linear(config.d_model, config.decoder_vocab_size)

    def encode(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """ids [B, L] (already truncated to max_input_len; padding optional) -> (memory [B, L, d], pad_mask [B, L])."""
        pad_mask = ids == self.config.encoder_pad_id
        return self.encoder(ids, pad_mask), pad_mask

    def decoder_logits(self, decoder_input_ids: Tensor, memory: Tensor, pad_mask: Tensor) -> Tensor:
        """Causal decoder over [BOS, y_1, ...]: [B, T] -> logits [B, T, V]; row t predicts token t+1."""
        length = decoder_input_ids.shape[1]
        if length > self.decoder_positional_encoding.pe.shape[1]:
            raise ValueError(f"decoder input has {length} positions; this model has {self.config.decode_len + 1}")
        y = self.tgt_tok_emb(decoder_input_ids) + self.decoder_positional_encoding.pe[:, :length]
        causal_allowed = torch.ones(length, length, dtype=torch.bool, device=y.device).tril()
        memory_allowed = ~pad_mask[:, None, None, :]
        memory = memory.to(y.dtype)
        for layer in self.decoder.layers:
            y = layer(y, causal_allowed, memory, memory_allowed)
        return self.generator(y)

    def forward(self, encoder_ids: Tensor, decoder_input_ids: Tensor) -> Tensor:
        """Teacher forcing: encoder ids [B, L], decoder input [B, T] -> logits [B, T, V]."""
        memory, pad_mask = self.encode(encoder_ids)
        return self.decoder_logits(decoder_input_ids, memory, pad_mask)

    # ------------------------------------------------------------------ reference decoding (regress-lm's loop)

    def _next_token_scores(self, generated: Tensor, memory: Tensor, pad_mask: Tensor,
                           grammar: DecoderGrammar) -> Tensor:
        """Grammar-masked logits for the next token, re-running the whole prefix as regress-lm does."""
        rows = generated.shape[0]
        bos = torch.full((rows, 1), DECODER_BOS_ID, dtype=torch.long, device=generated.device)
        logits = self.decoder_logits(torch.cat([bos, generated], dim=1), memory, pad_mask)[:, -1, :]
        allowed = np.asarray(grammar.allowed_mask(generated.cpu().numpy()), dtype=bool)
        mask = torch.from_numpy(allowed).to(device=logits.device, dtype=logits.dtype)
        return mask * logits + (1.0 - mask) * NEG_INF

    @torch.no_grad()
    def greedy_decode(self, ids: Tensor, grammar: DecoderGrammar) -> Tensor:
        """Encoder ids [B, L] -> token ids [B, decode_len]: argmax of the masked logits at every step."""
        self._check_grammar(grammar)
        memory, pad_mask = self.encode(ids)
        generated = torch.zeros(ids.shape[0], 0, dtype=torch.long, device=ids.device)
        for _ in range(grammar.decode_len):
            scores = self._next_token_scores(generated, memory, pad_mask, grammar)
            generated = torch.cat([generated, scores.argmax(dim=-1, keepdim=True)], dim=1)
        return generated

    @torch.no_grad()
    def sample(self, ids: Tensor, grammar: DecoderGrammar, num_samples: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """Encoder ids [B, L] -> token ids [B, num_samples, decode_len], as regress-lm's `decode`.

        The memory is repeated per sample (row b*num_samples + s), each step draws one token per row with
        torch.multinomial from softmax(masked / temperature); with the same torch build and seed this
        reproduces regress-lm's draws.
        """
        self._check_grammar(grammar)
        memory, pad_mask = self.encode(ids)
        memory = memory.repeat_interleave(num_samples, dim=0)
        pad_mask = pad_mask.repeat_interleave(num_samples, dim=0)
        generated = torch.zeros(memory.shape[0], 0, dtype=torch.long, device=ids.device)
        for _ in range(grammar.decode_len):
            scores = self._next_token_scores(generated, memory, pad_mask, grammar)
            probs = torch.softmax(scores / temperature, dim=-1)
            generated = torch.cat([generated, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return generated.view(ids.shape[0], num_samples, grammar.decode_len)

    def _check_grammar(self, grammar: DecoderGrammar) -> None:
        if grammar.vocab_size != self.config.decoder_vocab_size or grammar.decode_len != self.config.decode_len:
            raise ValueError(
                f"decoder codec has vocab {grammar.vocab_size} and decode_len {grammar.decode_len}, the model "
                f"{self.config.decoder_vocab_size} and {self.config.decode_len}; build the codec from the "
                f"checkpoint's decoder_tokenizer spec and max_num_objs"
            )
