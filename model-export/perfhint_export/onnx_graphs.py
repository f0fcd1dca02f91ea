"""The RLM as two ONNX graphs: an encoder run once per input and a decoder step run once per token.

What is hard:

- **Fully masked attention rows.** An empty input (zero tokens, or every position masked) makes every
  attention row fully masked. torch 2.13 on CPU returns an all-zero attention output for such a row
  (its "safe softmax"); ONNX Softmax over -inf gives NaN and an additive -1e9 mask gives a uniform
  average. Both are wrong. We compute `softmax(where(mask, scores, float32.min)) * mask`: for a row
  with at least one real key the masked entries are exp(min - max) = 0 exactly, so the multiply is a
  no-op; for a fully masked row it turns the uniform average into exact zeros, as torch does. A
  length-0 input reaches the same zeros through an empty reduction.
- **Cross-attention K/V computed once, shared by every sample.** regress-lm re-projects the memory
  at every step and physically copies it `num_samples` times. Here the encoder graph projects the
  decoder's cross-attention K/V for every layer once per input (`cross_k`, `cross_v`
  [layers, batch, heads, length, head_dim]), and the decoder step reshapes its queries from
  [rows] to [batch, samples] and lets MatMul broadcast over the sample axis. Rows must therefore be
  laid out input-major: row r belongs to input r // samples.
- **KV cache with a possibly empty past.** `past_k`/`past_v` have past_len 0 on the first step; the
  step concatenates the new key/value and returns `present_*` with past_len + 1. Self-attention is
  causal by construction (a step only ever sees the past and itself), so no causal mask exists.
- **Dynamic shapes.** batch, rows, length and past_len are all dynamic. No Reshape uses -1, because
  ONNX cannot infer -1 when another dimension is 0 (length 0); every target shape is spelled out.

Exporter choice: the dynamo exporter (`torch.onnx.export(..., dynamo=True)`, i.e. torch.export), opset 18,
dynamic dimensions as `Dim.DYNAMIC`. Measured with torch 2.13 on both regress-lm fixtures, both exporters
give correct graphs: teacher-forced logits within 1.1e-6 of regress-lm's, and the same results at every
edge the traced example never had (batch 1, rows 1, past_len 0, length 0, all-padding inputs), at the
same onnxruntime speed. We use dynamo because it is torch's maintained path (the TorchScript exporter
is deprecated in 2.x and warns so) and its graphs are half the size (encoder 158 vs 351 nodes, decoder
step 123 vs 218: no Constant/Shape/Unsqueeze chains from traced shape arithmetic). Its one cost is
export time (~3 s vs 0.2 s per model here), which an offline step can afford. Opset 18 is the
dynamo exporter's native opset (torch 2.13 builds every graph at 18 and runs an automatic version
converter for anything lower, which it warns "may not be successful"); >= 17 is needed for
LayerNormalization. The dynamic dimensions are `Dim.DYNAMIC` (torch.export infers what relates them,
e.g. the rows % batch == 0 guard of the [rows] -> [batch, samples] reshape) and are given readable
names afterwards (`_name_dims`).

The graphs are built from the state dict (regress-lm key names, FACTS §3.4, with or without the
`encoder_decoder.` prefix) and RLMConfig; they do not import model.py, so a bug there cannot hide
in both sides of the parity gate.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Mapping
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F
from torch import nn
from torch.export import Dim

from perfhint_export.config import RLMConfig

OPSET = 18  # the dynamo exporter's native opset (lower ones go through a version converter); >= 17 has LayerNormalization
LAYER_NORM_EPS = 1e-5  # regress-lm uses torch's default everywhere
STATE_PREFIX = "encoder_decoder."  # regress-lm's PyTorchModel wraps the EncoderDecoder under this name

ENCODER_INPUTS = ("input_ids", "attention_mask")
ENCODER_OUTPUTS = ("memory", "cross_k", "cross_v")
DECODER_INPUTS = ("token", "position", "past_k", "past_v", "cross_k", "cross_v", "memory_mask")
DECODER_OUTPUTS = ("logits", "present_k", "present_v")

# float32.min rather than -inf: Softmax over a row of -inf is NaN in ONNX. The mask multiply that follows
# zeroes the row anyway, so the fill value never reaches an output.
_MASK_FILL = torch.finfo(torch.float32).min


class GraphBuildError(ValueError):
    """The state dict does not match the RLMConfig (a missing key or a wrong shape)."""


def strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """regress-lm checkpoints prefix every key with `encoder_decoder.`; model.py does not."""
    if any(key.startswith(STATE_PREFIX) for key in state_dict):
        return {key.removeprefix(STATE_PREFIX): value for key, value in state_dict.items()}
    return dict(state_dict)


class _Weights:
    """Typed access to the state dict: every missing key or wrong shape is reported with the fix."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor], config: RLMConfig) -> None:
        self.state = strip_prefix(state_dict)
        self.config = config

    def get(self, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        if key not in self.state:
            raise GraphBuildError(
                f"state dict has no {key!r}; is this a regress-lm vanilla-encoder RLM checkpoint "
                f"(REGRESS_LM_FACTS §3.4)? Check the checkpoint path and its sidecar config.")
        tensor = self.state[key]
        if tuple(tensor.shape) != shape:
            raise GraphBuildError(
                f"{key} has shape {tuple(tensor.shape)}, the config implies {shape}; "
                f"fix the sidecar config (d_model, vocab sizes, feed-forward dims, decode_len).")
        # A detached float32 copy: the graph must not alias (or be changed by) the caller's model.
        return tensor.detach().to(torch.float32).clone()


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    # normalized_shape from the weight: a Python int, so the exporter keeps it static.
    return F.layer_norm(x, (int(weight.shape[0]),), weight, bias, LAYER_NORM_EPS)


def _masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor,
                      scale: float) -> torch.Tensor:
    """softmax(q kᵀ·scale) v over the keys where key_mask is true; a fully masked row gives zeros.

    key_mask is bool and broadcasts against the scores [..., queries, keys].
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    scores = torch.where(key_mask, scores, torch.tensor(_MASK_FILL))
    probs = torch.softmax(scores, dim=-1) * key_mask.to(scores.dtype)
    return torch.matmul(probs, v)


class _Graph(nn.Module):
    """Weights as buffers (they become ONNX initializers) and a linear layer that exports as MatMul + Add.

    Why not F.linear: on 2-D inputs it exports as Gemm, which onnxruntime's dynamic quantization does not
    quantize. Storing Wᵀ and writing x @ Wᵀ + b gives a MatMul whose B input is the initializer itself,
    the pattern quantize_dynamic turns into an integer matmul with per-output-channel scales.
    """

    def __init__(self, state_dict: Mapping[str, torch.Tensor], config: RLMConfig) -> None:
        super().__init__()
        self._weights = _Weights(state_dict, config)

    def add(self, name: str, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        tensor = self._weights.get(key, shape)
        self.register_buffer(name, tensor)
        return tensor

    def add_linear(self, name: str, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.register_buffer(name + "_wt", weight.t().contiguous())
        self.register_buffer(name + "_b", bias.contiguous())

    def add_linear_key(self, name: str, key: str, out_features: int, in_features: int) -> None:
        self.add_linear(name, self._weights.get(key + ".weight", (out_features, in_features)),
                        self._weights.get(key + ".bias", (out_features,)))

    def add_norm_key(self, name: str, key: str, d: int) -> None:
        self.add(name + "_w", key + ".weight", (d,))
        self.add(name + "_b", key + ".bias", (d,))

    def linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return torch.matmul(x, getattr(self, name + "_wt")) + getattr(self, name + "_b")

    def norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return _layer_norm(x, getattr(self, name + "_w"), getattr(self, name + "_b"))


class EncoderGraph(_Graph):
    """(input_ids, attention_mask) -> (memory, cross_k, cross_v); see the module docstring."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor], config: RLMConfig) -> None:
        super().__init__(state_dict, config)
        d = config.d_model
        self.d_model = d
        self.nhead = config.encoder_nhead
        self.head_dim = config.encoder_head_dim
        self.dec_nhead = config.decoder_nhead
        self.dec_head_dim = config.decoder_head_dim
        self.num_layers = config.num_encoder_layers
        self.num_decoder_layers = config.num_decoder_layers
        self.add("embedding", "encoder.embedding.weight", (config.encoder_vocab_size, d))
        self.add("inv_freq", "encoder.rotary_pos_emb.inv_freq", (self.head_dim // 2,))
        for i in range(self.num_layers):
            prefix = f"encoder.layers.{i}."
            for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
                self.add_linear_key(f"l{i}_{name}", prefix + name, d, d)
            self.add_norm_key(f"l{i}_norm1", prefix + "norm1", d)
            self.add_norm_key(f"l{i}_norm2", prefix + "norm2", d)
            self.add_linear_key(f"l{i}_linear1", prefix + "linear1", config.encoder_ffn, d)
            self.add_linear_key(f"l{i}_linear2", prefix + "linear2", d, config.encoder_ffn)
        self.add_norm_key("norm", "encoder.norm", d)
        # The decoder's cross-attention K/V projections live here: they depend only on the memory, so
        # projecting them once per input instead of once per step and sample is the point of this split.
        for j in range(self.num_decoder_layers):
            key = f"decoder.layers.{j}.multihead_attn."
            packed_w = self._weights.get(key + "in_proj_weight", (3 * d, d))  # rows are [Wq; Wk; Wv]
            packed_b = self._weights.get(key + "in_proj_bias", (3 * d,))
            self.add_linear(f"x{j}_k", packed_w[d:2 * d], packed_b[d:2 * d])
            self.add_linear(f"x{j}_v", packed_w[2 * d:], packed_b[2 * d:])

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Interleaved (GPT-J) rotary embedding on [batch, heads, length, head_dim]: pairs (x[2i], x[2i+1])."""
        # heads and head_dim are Python ints (static in the graph); only batch and length are traced.
        batch, length = x.shape[0], x.shape[2]
        heads, head_dim = self.nhead, self.head_dim
        pairs = x.reshape(batch, heads, length, head_dim // 2, 2)
        even, odd = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
        return rotated.reshape(batch, heads, length, head_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        batch, length = input_ids.shape[0], input_ids.shape[1]
        d, heads, head_dim = self.d_model, self.nhead, self.head_dim
        x = F.embedding(input_ids, self.embedding)  # no sqrt(d) scaling, no absolute positions (FACTS §3.1)
        key_mask = (attention_mask != 0).reshape(batch, 1, 1, length)
        # RoPE angles in float32 from the checkpoint's inv_freq, positions counted from 0 (padding included).
        positions = torch.arange(length, dtype=torch.float32)
        angles = positions.unsqueeze(1) * self.inv_freq.unsqueeze(0)  # [length, head_dim/2]
        cos, sin = torch.cos(angles), torch.sin(angles)
        scale = 1.0 / math.sqrt(head_dim)

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, length, heads, head_dim).transpose(1, 2)

        for i in range(self.num_layers):
            h = self.norm(x, f"l{i}_norm1")
            q = self._rope(split_heads(self.linear(h, f"l{i}_q_proj")), cos, sin)
            k = self._rope(split_heads(self.linear(h, f"l{i}_k_proj")), cos, sin)
            v = split_heads(self.linear(h, f"l{i}_v_proj"))
            attended = _masked_attention(q, k, v, key_mask, scale).transpose(1, 2).reshape(batch, length, d)
            x = x + self.linear(attended, f"l{i}_out_proj")
            h = self.norm(x, f"l{i}_norm2")
            x = x + self.linear(F.relu(self.linear(h, f"l{i}_linear1")), f"l{i}_linear2")
        memory = self.norm(x, "norm")
        cross_k, cross_v = [], []
        for j in range(self.num_decoder_layers):
            for name, out in (("k", cross_k), ("v", cross_v)):
                projected = self.linear(memory, f"x{j}_{name}")
                out.append(projected.reshape(batch, length, self.dec_nhead, self.dec_head_dim).transpose(1, 2))
        return memory, torch.stack(cross_k), torch.stack(cross_v)


class DecoderStepGraph(_Graph):
    """One decoder step with a KV cache and cross K/V shared across samples; see the module docstring."""

    def __init__(self, state_dict: Mapping[str, torch.Tensor], config: RLMConfig) -> None:
        super().__init__(state_dict, config)
        d = config.d_model
        self.d_model = d
        self.nhead = config.decoder_nhead
        self.head_dim = config.decoder_head_dim
        self.num_layers = config.num_decoder_layers
        vocab = config.decoder_vocab_size
        self.add("tok_emb", "tgt_tok_emb.weight", (vocab, d))
        self.register_buffer("pe", self._weights.get("decoder_positional_encoding.pe", (1, config.decode_len + 1, d))[0])
        for j in range(self.num_layers):
            prefix = f"decoder.layers.{j}."
            packed_w = self._weights.get(prefix + "self_attn.in_proj_weight", (3 * d, d))  # rows are [Wq; Wk; Wv]
            packed_b = self._weights.get(prefix + "self_attn.in_proj_bias", (3 * d,))
            for index, name in enumerate(("q", "k", "v")):
                self.add_linear(f"l{j}_self_{name}", packed_w[index * d:(index + 1) * d],
                                packed_b[index * d:(index + 1) * d])
            self.add_linear_key(f"l{j}_self_out", prefix + "self_attn.out_proj", d, d)
            # Only the cross-attention query projection: K/V of the memory come from the encoder graph.
            packed_w = self._weights.get(prefix + "multihead_attn.in_proj_weight", (3 * d, d))
            packed_b = self._weights.get(prefix + "multihead_attn.in_proj_bias", (3 * d,))
            self.add_linear(f"l{j}_cross_q", packed_w[:d], packed_b[:d])
            self.add_linear_key(f"l{j}_cross_out", prefix + "multihead_attn.out_proj", d, d)
            for name in ("norm1", "norm2", "norm3"):
                self.add_norm_key(f"l{j}_{name}", prefix + name, d)
            self.add_linear_key(f"l{j}_linear1", prefix + "linear1", config.decoder_ffn, d)
            self.add_linear_key(f"l{j}_linear2", prefix + "linear2", d, config.decoder_ffn)
        self.add_linear_key("generator", "generator", vocab, d)

    def forward(self, token: torch.Tensor, position: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor,
                cross_k: torch.Tensor, cross_v: torch.Tensor, memory_mask: torch.Tensor):
        rows = token.shape[0]
        batch, length = memory_mask.shape[0], memory_mask.shape[1]
        samples = rows // batch
        d, heads, head_dim = self.d_model, self.nhead, self.head_dim
        scale = 1.0 / math.sqrt(head_dim)
        # Embedding + the checkpoint's sinusoidal table at this step's position; no scaling (FACTS §3.2).
        y = F.embedding(token, self.tok_emb) + torch.index_select(self.pe, 0, position)  # [rows, d]
        # [batch, 1 (samples), 1 (heads), 1 (query), length]: broadcasts over the samples of one input.
        key_mask = (memory_mask != 0).reshape(batch, 1, 1, 1, length)
        present_k, present_v = [], []
        for j in range(self.num_layers):
            h = self.norm(y, f"l{j}_norm1")
            q = self.linear(h, f"l{j}_self_q").reshape(rows, heads, 1, head_dim)
            k_all = torch.cat((past_k[j], self.linear(h, f"l{j}_self_k").reshape(rows, heads, 1, head_dim)), dim=2)
            v_all = torch.cat((past_v[j], self.linear(h, f"l{j}_self_v").reshape(rows, heads, 1, head_dim)), dim=2)
            present_k.append(k_all)
            present_v.append(v_all)
            # Causal by construction: the only keys are the past and this step; none can be masked.
            probs = torch.softmax(torch.matmul(q, k_all.transpose(-1, -2)) * scale, dim=-1)
            y = y + self.linear(torch.matmul(probs, v_all).reshape(rows, d), f"l{j}_self_out")

            h = self.norm(y, f"l{j}_norm2")
            q = self.linear(h, f"l{j}_cross_q").reshape(batch, samples, heads, 1, head_dim)
            # [batch, 1, heads, length, head_dim]: one copy per input, broadcast by MatMul over the samples.
            attended = _masked_attention(q, cross_k[j].unsqueeze(1), cross_v[j].unsqueeze(1), key_mask, scale)
            y = y + self.linear(attended.reshape(rows, d), f"l{j}_cross_out")

            h = self.norm(y, f"l{j}_norm3")
            y = y + self.linear(F.relu(self.linear(h, f"l{j}_linear1")), f"l{j}_linear2")
        logits = self.linear(y, "generator")  # no final LayerNorm in regress-lm's decoder (FACTS §3.2)
        return logits, torch.stack(present_k), torch.stack(present_v)


def example_encoder_inputs(config: RLMConfig, batch: int = 2, length: int = 5) -> tuple[torch.Tensor, ...]:
    """Tracing inputs. Sizes > 1: torch.export specialises dimensions whose example size is 0 or 1."""
    input_ids = torch.randint(1, config.encoder_vocab_size, (batch, length), generator=torch.Generator().manual_seed(0))
    attention_mask = torch.ones(batch, length, dtype=torch.int64)
    attention_mask[1, -2:] = 0
    return input_ids, attention_mask


def example_decoder_inputs(config: RLMConfig, batch: int = 2, samples: int = 3, length: int = 5,
                           past_len: int = 2) -> tuple[torch.Tensor, ...]:
    """Tracing inputs; past_len 2, not 0, for the same reason (the graph still runs with past_len 0)."""
    rows = batch * samples
    layers, heads, head_dim = config.num_decoder_layers, config.decoder_nhead, config.decoder_head_dim
    generator = torch.Generator().manual_seed(0)
    token = torch.randint(0, config.decoder_vocab_size, (rows,), generator=generator)
    position = torch.tensor([past_len], dtype=torch.int64)
    past_k = torch.randn(layers, rows, heads, past_len, head_dim, generator=generator)
    past_v = torch.randn(layers, rows, heads, past_len, head_dim, generator=generator)
    cross_k = torch.randn(layers, batch, heads, length, head_dim, generator=generator)
    cross_v = torch.randn(layers, batch, heads, length, head_dim, generator=generator)
    memory_mask = torch.ones(batch, length, dtype=torch.int64)
    memory_mask[1, -2:] = 0
    return token, position, past_k, past_v, cross_k, cross_v, memory_mask


# Dynamic dimensions of every graph input and output, by name: the export marks the inputs dynamic and
# then names the dimensions of inputs and outputs with these words (torch.export calls them s0, s1, ...).
ENCODER_AXES: dict[str, dict[int, str]] = {
    "input_ids": {0: "batch", 1: "length"},
    "attention_mask": {0: "batch", 1: "length"},
    "memory": {0: "batch", 1: "length"},
    "cross_k": {1: "batch", 3: "length"},
    "cross_v": {1: "batch", 3: "length"},
}
DECODER_AXES: dict[str, dict[int, str]] = {
    "token": {0: "rows"},
    "position": {},
    "past_k": {1: "rows", 3: "past_len"},
    "past_v": {1: "rows", 3: "past_len"},
    "cross_k": {1: "batch", 3: "length"},
    "cross_v": {1: "batch", 3: "length"},
    "memory_mask": {0: "batch", 1: "length"},
    "logits": {0: "rows"},
    "present_k": {1: "rows", 3: "present_len"},
    "present_v": {1: "rows", 3: "present_len"},
}
_MAX_INLINE_BYTES = 2**31 - 2**24  # protobuf's 2 GiB limit, minus headroom for the graph itself


class ExportError(RuntimeError):
    """torch.onnx.export failed or produced a graph we cannot ship."""


def _name_dims(model: onnx.ModelProto, axes: dict[str, dict[int, str]]) -> None:
    """Give graph inputs/outputs readable dimension names; drop intermediate shapes that use the old ones."""
    for value in list(model.graph.input) + list(model.graph.output):
        for axis, dim_name in axes.get(value.name, {}).items():
            dim = value.type.tensor_type.shape.dim[axis]
            dim.Clear()
            dim.dim_param = dim_name
    del model.graph.value_info[:]  # torch.export's s0/s1 names; onnxruntime re-infers them


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, input_names: tuple[str, ...],
            output_names: tuple[str, ...], axes: dict[str, dict[int, str]]) -> Path:
    module.eval()
    # Dim.DYNAMIC: torch.export works out the relations itself (rows % batch == 0 for the sample reshape).
    dynamic_shapes = {name: {axis: Dim.DYNAMIC for axis in axes[name]} or None for name in input_names}
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_exporter():
            warnings.simplefilter("ignore")  # deprecation chatter from torch.export internals, not ours
            program = torch.onnx.export(module, args, dynamo=True, opset_version=OPSET, verbose=False,
                                        input_names=list(input_names), output_names=list(output_names),
                                        dynamic_shapes=dynamic_shapes, optimize=True)
    except Exception as error:  # the exporter raises many types; the caller needs one
        raise ExportError(f"torch.onnx.export of {type(module).__name__} failed: {error}") from error
    model = program.model_proto
    _name_dims(model, axes)
    if model.ByteSize() > _MAX_INLINE_BYTES:
        raise ExportError(f"{path.name} would exceed protobuf's 2 GiB limit; bundles hold single-file graphs, "
                          f"so this model is too large for perfhint (use int8, or a smaller model)")
    onnx.save_model(model, str(path))
    return path


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter prints progress lines and logs warnings about torchvision ops; keep stderr clean."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def export_encoder(state_dict: Mapping[str, torch.Tensor], config: RLMConfig, path: Path) -> Path:
    path = Path(path)
    return _export(EncoderGraph(state_dict, config), example_encoder_inputs(config), path,
                   ENCODER_INPUTS, ENCODER_OUTPUTS, ENCODER_AXES)


def export_decoder_step(state_dict: Mapping[str, torch.Tensor], config: RLMConfig, path: Path) -> Path:
    path = Path(path)
    return _export(DecoderStepGraph(state_dict, config), example_decoder_inputs(config), path,
                   DECODER_INPUTS, DECODER_OUTPUTS, DECODER_AXES)


def export_graphs(state_dict: Mapping[str, torch.Tensor], config: RLMConfig, out_dir: Path,
                  encoder_file: str = "encoder.onnx", decoder_file: str = "decoder_step.onnx") -> dict[str, Path]:
    """Export both graphs (fp32) into out_dir; returns {"encoder": path, "decoder_step": path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {"encoder": export_encoder(state_dict, config, out_dir / encoder_file),
            "decoder_step": export_decoder_step(state_dict, config, out_dir / decoder_file)}
