"""The paper's end-to-end T5Gemma baseline: a Hugging Face seq2seq model that writes numbers as text.

regress-lm's `t5gemma_model.T5GemmaModel` fine-tunes a whole `T5GemmaForConditionalGeneration` to write
`format(y, ".4e")` (objectives joined by ",") + EOS and samples it with `generate(do_sample=True)`. This
module exports such a model directory (config.json + weights + tokenizer, on disk) to a bundle that the
runtime decodes under the number grammar (server/perfhint/text_numbers.py). What is hard:

- **Which exporter.** optimum-onnx would be the natural choice for "encoder + decoder-with-past", but
  0.1.0 has no t5gemma config and pins transformers < 4.58, below what T5Gemma 2 needs (and installing
  it downgrades transformers), so the graphs are built here with torch.onnx (dynamo), like the RLM's.
- **The graph contract is the RLM's.** The encoder graph returns every decoder layer's cross-attention
  K/V once per input ([layers, batch, kv_heads, length, head_dim]); the decoder step takes one token per
  row, a self-attention KV cache and the shared cross K/V (rows = batch x samples, broadcast, never
  tiled). So the runtime's sessions, batching and KV-cache plumbing serve it unchanged; only the number
  codec differs. transformers' decoder with its Cache objects does not trace into that shape, so the
  step is written out from transformers' own submodules (RMSNorms, MLPs, projections, rotary tables)
  with the attention spelled as transformers' eager path does it: GQA by grouping query heads
  (head h reads kv head h // groups, as `repeat_kv`), `query_pre_attn_scalar` scaling, tanh soft-capping
  of the scores before the mask, masked keys at float32.min (a fully masked row averages, as eager does),
  the decoder's sliding-window layers as "key within `window` of the query", and the final logit cap.
  Any slip shows in the parity gate, which compares with transformers' full forward pass.
- **Only T5Gemma v1.** T5Gemma 2's decoder merges self- and cross-attention into one softmax; its step
  would need another graph. It is refused by name.
- **The parity gate.** fp32: teacher-forced logits within 1e-4 of transformers' at input lengths 1, 19,
  33 and max_input_len (one input fully padded, one partly, three samples per input), and the grammar-
  constrained greedy decode of every probe equal to the reference's; int8: logits within 0.2 and every
  greedy choice within 2 x 0.2 of the reference's best (parity.py explains both).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import perfhint
from perfhint.bundle import (
    DECODER_STEP_FILE,
    ENCODER_FILE,
    MANIFEST_FILE,
    PRECISIONS,
    PURPOSES,
    TOKENIZER_FILES,
    Codec,
    EncoderTokenizer,
    Graph,
    Manifest,
    Metric,
    ModelInfo,
    Provenance,
    finite_json,
    load_bundle,
    sha256_file,
)
from perfhint.encoder_vocab import HF_TOKENIZERS
from perfhint.input_template import KNOWN_KINDS, RAW
from perfhint.text_numbers import DEFAULT_SPECIALS, TEXT_NUMBER, TextNumberGrammar, mantissa_digits
from perfhint_export import onnx_graphs, parity, quantize
from perfhint_export.errors import CheckpointError
from perfhint_export.t5gemma import _first_line, import_transformers, load_hf_vocab

SEQ2SEQ_FORMAT = "hf-seq2seq"
DEFAULTS = {"number_format": ".4e", "max_decode_len": 32, "max_input_len": 2048, "max_num_objs": 1,
            "separator": ","}  # regress-lm's T5GemmaModel defaults
CONFIG_KEYS = ("format", "number_format", "max_decode_len", "max_input_len", "max_num_objs", "separator",
               "metrics", "input_template")
_MASK_FILL = torch.finfo(torch.float32).min
PARITY_LENGTHS = (1, 19, 33)  # + max_input_len; transformers' encoder cannot run length 0


class Seq2SeqError(CheckpointError):
    """A model directory or config this exporter cannot use; every problem is listed with its fix."""


# ----------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Seq2SeqConfig:
    number_format: str
    max_decode_len: int
    max_input_len: int
    max_num_objs: int
    separator: str
    metrics: tuple[tuple[str, str], ...]
    input_template: dict[str, Any]


def load_seq2seq_config(path: str | Path | None) -> Seq2SeqConfig:
    """The optional JSON next to the model (`--config`): how the numbers are written and what they mean."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise Seq2SeqError(f"cannot read {path}", [_first_line(error)]) from None
    problems = [f"{key}: unknown key; the known keys are {list(CONFIG_KEYS)}"
                for key in sorted(set(data) - set(CONFIG_KEYS))]
    if data.get("format", SEQ2SEQ_FORMAT) != SEQ2SEQ_FORMAT:
        problems.append(f"format: {data.get('format')!r}; a seq2seq model's config says {SEQ2SEQ_FORMAT!r}")
    merged = {**DEFAULTS, **{key: value for key, value in data.items() if key in DEFAULTS}}
    try:
        mantissa_digits(merged["number_format"])
    except ValueError as error:
        problems.append(f"number_format: {error}")
    for key in ("max_decode_len", "max_input_len", "max_num_objs"):
        if not (isinstance(merged[key], int) and not isinstance(merged[key], bool) and merged[key] > 0):
            problems.append(f"{key}: must be a positive integer, got {merged[key]!r}")
    objectives = merged["max_num_objs"] if isinstance(merged["max_num_objs"], int) else 1
    metrics = data.get("metrics") or [{"name": f"value{index}" if index else "value", "unit": ""}
                                      for index in range(objectives)]
    if not isinstance(metrics, list) or not all(isinstance(item, dict) and item.get("name") for item in metrics):
        problems.append(f'metrics: must be a list like [{{"name": "latency", "unit": "ms"}}], got {metrics!r}')
        metrics = []
    elif len(metrics) != merged["max_num_objs"]:
        problems.append(f"metrics: {len(metrics)} entries for max_num_objs {merged['max_num_objs']}")
    template = data.get("input_template", {"kind": RAW})
    if not isinstance(template, dict) or template.get("kind") not in KNOWN_KINDS:
        problems.append(f"input_template: kind must be one of {list(KNOWN_KINDS)}, got {template!r}")
    if problems:
        raise Seq2SeqError(f"invalid seq2seq config {path}", problems)
    return Seq2SeqConfig(number_format=merged["number_format"], max_decode_len=merged["max_decode_len"],
                         max_input_len=merged["max_input_len"], max_num_objs=merged["max_num_objs"],
                         separator=merged["separator"],
                         metrics=tuple((item["name"], item.get("unit", "")) for item in metrics),
                         input_template=dict(template))


def load_seq2seq_model(model_dir: str | Path) -> nn.Module:
    """transformers' T5GemmaForConditionalGeneration from a local directory (weights included), eager, float32."""
    transformers = import_transformers()
    model_dir = Path(model_dir)
    try:
        config = transformers.AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as error:
        raise Seq2SeqError(f"{model_dir} is not a Hugging Face model directory transformers can read",
                           [_first_line(error),
                            "pass the directory with config.json, the weights and the tokenizer"]) from None
    if config.model_type != "t5gemma":
        raise Seq2SeqError(f"{model_dir} holds a {config.model_type!r} model",
                           ["the seq2seq text-number path exports T5Gemma (v1) models, regress-lm's T5GemmaModel; "
                            "T5Gemma 2's merged decoder attention is not supported yet"])
    try:
        model = transformers.T5GemmaForConditionalGeneration.from_pretrained(
            str(model_dir), local_files_only=True, attn_implementation="eager", dtype=torch.float32)
    except Exception as error:
        raise Seq2SeqError(f"transformers cannot load the weights in {model_dir}", [_first_line(error)]) from None
    return model.eval()


def text_number_spec(model: nn.Module, model_dir: Path, config: Seq2SeqConfig) -> dict[str, Any]:
    """codec.decoder_tokenizer of the bundle: the format, special ids and the ids the model writes first."""
    transformers = import_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    decoder_config = model.config.decoder
    start = getattr(model.generation_config, "decoder_start_token_id", None)
    start = decoder_config.bos_token_id if start is None else start  # what _shift_right feeds in training
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    problems = [f"the tokenizer has no {name} token; regress-lm's targets end with eos_token and pad with pad_token"
                for name, value in (("eos", eos), ("pad", pad)) if value is None]
    if start is None:
        problems.append("config.decoder.bos_token_id is unset: the decoder start token is unknown")
    if problems:
        raise Seq2SeqError(f"{model_dir} cannot be decoded as text numbers", problems)
    # regress-lm tokenizes the target `format(y) + eos_token` with special tokens: the leading specials
    # (a <bos> for Gemma) are what the model learnt to emit first.
    example = ",".join([format(1.0, config.number_format)] * config.max_num_objs) + tokenizer.eos_token
    labels = list(tokenizer(example)["input_ids"])
    specials = set(tokenizer.all_special_ids)
    prefix = []
    for token in labels:
        if token not in specials or token == eos:
            break
        prefix.append(int(token))
    return {"type": TEXT_NUMBER, "format": config.number_format, "separator": config.separator,
            "specials": list(DEFAULT_SPECIALS), "max_decode_len": config.max_decode_len,
            "decoder_start_token_id": int(start), "eos_token_id": int(eos), "pad_token_id": int(pad),
            "prefix_token_ids": prefix}


# ----------------------------------------------------------------------------------------------- graphs


def _linear(module: nn.Linear) -> tuple[Tensor, Tensor | None]:
    weight = module.weight.detach().float().t().contiguous().clone()
    bias = module.bias.detach().float().clone() if module.bias is not None else None
    return weight, bias


class _Graph(nn.Module):
    def add_linear(self, name: str, module: nn.Linear) -> None:
        weight, bias = _linear(module)  # x @ Wᵀ with Wᵀ an initializer: what int8 dynamic quantization reaches
        self.register_buffer(name + "_wt", weight)
        self.register_buffer(name + "_b", bias if bias is not None else torch.zeros(weight.shape[1]))

    def linear(self, x: Tensor, name: str) -> Tensor:
        return torch.matmul(x, getattr(self, name + "_wt")) + getattr(self, name + "_b")


class Seq2SeqEncoderGraph(_Graph):
    """(input_ids, attention_mask) -> (memory, cross_k, cross_v [layers, batch, kv_heads, length, head_dim])."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model.model.encoder
        decoder_config = model.config.decoder
        self.kv_heads = decoder_config.num_key_value_heads
        self.head_dim = decoder_config.head_dim
        self.layers = len(model.model.decoder.layers)
        for j, layer in enumerate(model.model.decoder.layers):
            self.add_linear(f"x{j}_k", layer.cross_attn.k_proj)
            self.add_linear(f"x{j}_v", layer.cross_attn.v_proj)

    def forward(self, input_ids: Tensor, attention_mask: Tensor):
        batch, length = input_ids.shape[0], input_ids.shape[1]
        memory = self.encoder(input_ids=input_ids, attention_mask=attention_mask != 0).last_hidden_state
        keys, values = [], []
        for j in range(self.layers):
            for name, out in (("k", keys), ("v", values)):
                projected = self.linear(memory, f"x{j}_{name}")
                out.append(projected.reshape(batch, length, self.kv_heads, self.head_dim).transpose(1, 2))
        return memory, torch.stack(keys), torch.stack(values)


def _softcap(scores: Tensor, cap: float | None) -> Tensor:
    return scores if cap is None else torch.tanh(scores / cap) * cap


class Seq2SeqDecoderStepGraph(_Graph):
    """One T5Gemma decoder step with a KV cache; inputs and outputs are the RLM's (onnx_graphs.DECODER_*)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        config = model.config.decoder
        decoder = model.model.decoder
        self.heads, self.kv_heads, self.head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
        self.groups = self.heads // self.kv_heads
        self.scaling = float(config.query_pre_attn_scalar) ** -0.5
        self.attn_cap = config.attn_logit_softcapping
        self.final_cap = config.final_logit_softcapping
        self.windows = [config.sliding_window if kind == "sliding_attention" else None for kind in config.layer_types]
        self.hidden = config.hidden_size
        self.register_buffer("embed", decoder.embed_tokens.weight.detach().float().clone())
        self.register_buffer("normalizer", torch.tensor(config.hidden_size ** 0.5, dtype=torch.float32))
        self.register_buffer("inv_freq", decoder.rotary_emb.inv_freq.detach().float().clone())
        self.rope_scaling = float(decoder.rotary_emb.attention_scaling)
        self.layers = nn.ModuleList()
        for index, layer in enumerate(decoder.layers):
            holder = _Graph()
            for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                holder.add_linear("self_" + name, getattr(layer.self_attn, name))
            for name in ("q_proj", "o_proj"):
                holder.add_linear("cross_" + name, getattr(layer.cross_attn, name))
            for name in ("gate_proj", "up_proj", "down_proj"):
                holder.add_linear(name, getattr(layer.mlp, name))
            holder.norms = nn.ModuleDict({name: copy_norm(getattr(layer, name)) for name in (
                "pre_self_attn_layernorm", "post_self_attn_layernorm", "pre_cross_attn_layernorm",
                "post_cross_attn_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")})
            holder.act = layer.mlp.act_fn
            self.layers.append(holder)
        self.norm = copy_norm(decoder.norm)
        self.add_linear("lm_head", model.lm_head.out_proj)

    def _rotate(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        half = self.head_dim // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)  # transformers' rotate_half
        return x * cos + rotated * sin

    def forward(self, token: Tensor, position: Tensor, past_k: Tensor, past_v: Tensor, cross_k: Tensor,
                cross_v: Tensor, memory_mask: Tensor):
        rows = token.shape[0]
        batch, length = memory_mask.shape[0], memory_mask.shape[1]
        samples = rows // batch
        heads, kv_heads, groups, head_dim = self.heads, self.kv_heads, self.groups, self.head_dim
        h = torch.nn.functional.embedding(token, self.embed) * self.normalizer  # [rows, hidden]
        freqs = position.to(torch.float32).unsqueeze(-1) * self.inv_freq  # [1, head_dim/2]
        angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = torch.cos(angles) * self.rope_scaling, torch.sin(angles) * self.rope_scaling
        key_mask = (memory_mask != 0).reshape(batch, 1, 1, 1, 1, length)
        present_k, present_v = [], []
        for j, layer in enumerate(self.layers):
            norms = layer.norms
            x = norms["pre_self_attn_layernorm"](h)
            q = self._rotate(layer.linear(x, "self_q_proj").reshape(rows, heads, 1, head_dim), cos, sin)
            k = self._rotate(layer.linear(x, "self_k_proj").reshape(rows, kv_heads, 1, head_dim), cos, sin)
            v = layer.linear(x, "self_v_proj").reshape(rows, kv_heads, 1, head_dim)
            k_all, v_all = torch.cat((past_k[j], k), dim=2), torch.cat((past_v[j], v), dim=2)
            present_k.append(k_all)
            present_v.append(v_all)
            q = q.reshape(rows, kv_heads, groups, head_dim)  # query head h reads kv head h // groups
            scores = _softcap(torch.matmul(q, k_all.transpose(-1, -2)) * self.scaling, self.attn_cap)
            if self.windows[j] is not None:  # sliding layer: keys within `window` of the query
                key_positions = torch.arange(k_all.shape[2], dtype=torch.int64)
                near = (position - key_positions) < self.windows[j]
                scores = torch.where(near, scores, torch.tensor(_MASK_FILL))
            attended = torch.matmul(torch.softmax(scores, dim=-1), v_all).reshape(rows, heads * head_dim)
            h = h + norms["post_self_attn_layernorm"](layer.linear(attended, "self_o_proj"))

            x = norms["pre_cross_attn_layernorm"](h)
            q = layer.linear(x, "cross_q_proj").reshape(batch, samples, kv_heads, groups, 1, head_dim)
            keys = cross_k[j].reshape(batch, 1, kv_heads, 1, length, head_dim)
            values = cross_v[j].reshape(batch, 1, kv_heads, 1, length, head_dim)
            scores = _softcap(torch.matmul(q, keys.transpose(-1, -2)) * self.scaling, self.attn_cap)
            scores = torch.where(key_mask, scores, torch.tensor(_MASK_FILL))
            attended = torch.matmul(torch.softmax(scores, dim=-1), values).reshape(rows, heads * head_dim)
            h = h + norms["post_cross_attn_layernorm"](layer.linear(attended, "cross_o_proj"))

            x = norms["pre_feedforward_layernorm"](h)
            x = layer.linear(layer.act(layer.linear(x, "gate_proj")) * layer.linear(x, "up_proj"), "down_proj")
            h = h + norms["post_feedforward_layernorm"](x)
        logits = _softcap(self.linear(self.norm(h), "lm_head"), self.final_cap)
        return logits, torch.stack(present_k), torch.stack(present_v)


def copy_norm(norm: nn.Module) -> nn.Module:
    """transformers' RMSNorm module, detached from the model (its own weight copy)."""
    return copy.deepcopy(norm)


def _example_inputs(model: nn.Module, batch: int = 2, samples: int = 3, length: int = 7, past: int = 2):
    config = model.config.decoder
    layers, kv_heads, head_dim = len(model.model.decoder.layers), config.num_key_value_heads, config.head_dim
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.encoder.vocab_size, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.int64)
    mask[1, -2:] = 0
    rows = batch * samples
    decoder_inputs = (torch.randint(0, config.vocab_size, (rows,), generator=generator),
                      torch.tensor([past], dtype=torch.int64),
                      torch.randn(layers, rows, kv_heads, past, head_dim, generator=generator),
                      torch.randn(layers, rows, kv_heads, past, head_dim, generator=generator),
                      torch.randn(layers, batch, kv_heads, length, head_dim, generator=generator),
                      torch.randn(layers, batch, kv_heads, length, head_dim, generator=generator), mask)
    return (ids, mask), decoder_inputs


def export_graphs(model: nn.Module, out_dir: Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    window = model.config.encoder.sliding_window or 0
    (ids, mask), decoder_inputs = _example_inputs(model, length=max(7, min(window + 3, 1024)))
    encoder = onnx_graphs._export(Seq2SeqEncoderGraph(model), (ids, mask), out_dir / ENCODER_FILE,
                                  onnx_graphs.ENCODER_INPUTS, onnx_graphs.ENCODER_OUTPUTS, onnx_graphs.ENCODER_AXES)
    decoder = onnx_graphs._export(Seq2SeqDecoderStepGraph(model), decoder_inputs, out_dir / DECODER_STEP_FILE,
                                  onnx_graphs.DECODER_INPUTS, onnx_graphs.DECODER_OUTPUTS, onnx_graphs.DECODER_AXES)
    return {"encoder": encoder, "decoder_step": decoder}


# ----------------------------------------------------------------------------------------------- parity


class OnnxSeq2Seq:
    def __init__(self, graphs: dict[str, Path], cache_shape: tuple[int, int, int]) -> None:
        self.encoder = parity.open_session(graphs["encoder"])
        self.decoder = parity.open_session(graphs["decoder_step"])
        self.cache_shape = cache_shape

    def logits(self, ids: np.ndarray, mask: np.ndarray, decoder_input: np.ndarray) -> np.ndarray:
        """[rows, T, V] teacher-forced, rows = batch x samples (input-major)."""
        _, cross_k, cross_v = self.encoder.run(None, {"input_ids": ids, "attention_mask": mask})
        layers, heads, head_dim = self.cache_shape
        rows = decoder_input.shape[0]
        past_k = past_v = np.zeros((layers, rows, heads, 0, head_dim), np.float32)
        steps = []
        for position in range(decoder_input.shape[1]):
            logits, past_k, past_v = self.decoder.run(None, {
                "token": decoder_input[:, position].astype(np.int64), "position": np.array([position], np.int64),
                "past_k": past_k, "past_v": past_v, "cross_k": cross_k, "cross_v": cross_v, "memory_mask": mask})
            steps.append(logits)
        return np.stack(steps, axis=1)


def reference_logits(model: nn.Module, ids: np.ndarray, mask: np.ndarray, decoder_input: np.ndarray,
                     samples: int) -> np.ndarray:
    """transformers' full forward pass (no cache), [rows, T, V]."""
    with torch.no_grad():
        output = model(input_ids=torch.from_numpy(ids).repeat_interleave(samples, 0),
                       attention_mask=torch.from_numpy(mask).repeat_interleave(samples, 0),
                       decoder_input_ids=torch.from_numpy(decoder_input))
    return output.logits.float().numpy()


def greedy(logits_fn, grammar: TextNumberGrammar, rows: int) -> np.ndarray:
    """Constrained greedy decoding with `logits_fn(decoder_input [rows, t]) -> [rows, t, V]` (prefix re-run)."""
    tokens = np.full((rows, 0), grammar.start_id, dtype=np.int64)
    state = np.full(rows, grammar.automaton.start)
    done = np.zeros(rows, bool)
    for position in range(grammar.max_decode_len):
        decoder_input = np.concatenate([np.full((rows, 1), grammar.start_id), tokens], axis=1)
        logits = logits_fn(decoder_input)[:, -1].astype(np.float64)
        if position < len(grammar.prefix):
            chosen = np.full(rows, grammar.prefix[position])
        else:
            allowed = grammar.allowed_mask(state, grammar.max_decode_len - position)
            allowed[done] = False
            allowed[done, grammar.eos_id] = True
            chosen = np.where(allowed, logits, -np.inf).argmax(-1)
            state = np.where(done, state, grammar.advance(state, chosen))
            chosen = np.where(done, grammar.pad_id, chosen)
            done |= chosen == grammar.eos_id
        tokens = np.concatenate([tokens, chosen[:, None]], axis=1)
        if done.all():
            break
    return tokens


def check_seq2seq_parity(model: nn.Module, grammar: TextNumberGrammar, graphs: dict[str, Path], precision: str,
                         max_input_len: int, pad_id: int, vocab_size: int, probe_count: int) -> dict[str, Any]:
    tolerance = parity.TOLERANCES[precision]
    config = model.config.decoder
    onnx_model = OnnxSeq2Seq(graphs, (len(model.model.decoder.layers), config.num_key_value_heads, config.head_dim))
    rng = np.random.default_rng(parity.PROBE_SEED)
    mismatches, cases = [], []

    def real(count: int) -> np.ndarray:
        ids = rng.integers(0, vocab_size - 1, size=count)
        return np.where(ids >= pad_id, ids + 1, ids).astype(np.int64)

    for length in sorted({min(length, max_input_len) for length in (*PARITY_LENGTHS, max_input_len)}):
        ids = np.full((parity.PARITY_BATCH, length), pad_id, dtype=np.int64)
        ids[0], ids[1] = real(length), real(length)
        ids[2, :length - length // 3] = real(length - length // 3)  # row 3: all padding
        mask = (ids != pad_id).astype(np.int64)
        rows = parity.PARITY_BATCH * parity.PARITY_SAMPLES
        paths = [np.concatenate([[grammar.start_id], grammar.prefix, _random_number(grammar, rng)])
                 for _ in range(rows)]
        width = min(max(len(path) for path in paths), grammar.max_decode_len)
        decoder_input = np.array([np.pad(path[:width], (0, width - len(path[:width])), constant_values=grammar.eos_id)
                                  for path in paths], dtype=np.int64)
        exported = onnx_model.logits(ids, mask, decoder_input)
        reference = reference_logits(model, ids, mask, decoder_input, parity.PARITY_SAMPLES)
        # The all-padding input (last rows) is checked for finiteness only: transformers' eager attention
        # averages uniformly over its padded memory, a sum whose rounding differs between torch and
        # onnxruntime (6e-5 at 2048 tokens), and the runtime never sends one (the tokenizer adds <bos>).
        real_rows = slice(0, (parity.PARITY_BATCH - 1) * parity.PARITY_SAMPLES)
        diff = parity._max_abs(exported[real_rows], reference[real_rows])
        cases.append({"batch": parity.PARITY_BATCH, "samples": parity.PARITY_SAMPLES, "length": length,
                      "positions": width, "logits_max_abs_diff": diff,
                      "empty_input_logits_max_abs_diff": parity._max_abs(exported, reference)})
        if not np.isfinite(exported).all():
            mismatches.append(f"decoder_step logits have NaN/inf (batch {parity.PARITY_BATCH}, length {length})")
        if not diff <= tolerance.logits_atol:
            mismatches.append(f"decoder_step logits max |diff| {diff:.1e} > atol {tolerance.logits_atol:.0e} "
                              f"(batch {parity.PARITY_BATCH}, length {length})")
    agree, max_regret = 0, 0.0
    for probe in range(probe_count):
        length = 1 + int(rng.integers(0, max_input_len))
        ids = real(length)[None]
        mask = np.ones_like(ids)
        reference = greedy(lambda dec: reference_logits(model, ids, mask, dec, 1), grammar, 1)[0]
        exported = greedy(lambda dec: onnx_model.logits(ids, mask, dec), grammar, 1)[0]
        same = repr(grammar.decode(reference.tolist())) == repr(grammar.decode(exported.tolist()))  # NaN-safe
        agree += same
        path = np.concatenate([[grammar.start_id], exported[:-1]])[None]
        scores = reference_logits(model, ids, mask, path, 1)[0].astype(np.float64)
        regret = _regret(grammar, exported, scores)
        max_regret = max(max_regret, regret)
        if not regret <= tolerance.max_regret:
            mismatches.append(f"greedy decoding of probe {probe} (length {length}): reference regret {regret:.1e} "
                              f"> 2*atol {tolerance.max_regret:.0e}")
        elif precision == "fp32" and not same:
            mismatches.append(f"greedy decoding of probe {probe} (length {length}) differs from the reference")
    report = {"passed": not mismatches, "precision": precision,
              "reference": "transformers T5GemmaForConditionalGeneration, full forward pass (float32, CPU, eager)",
              "tolerances": tolerance.to_dict(),
              "criterion": "teacher-forced logits within atol at every case; every probe's grammar-constrained greedy "
                           "choice within 2*atol of the reference's best (fp32: equal decoded values)",
              "max_abs_diff": {"logits": max(case["logits_max_abs_diff"] for case in cases)},
              "cases": cases, "greedy": {"probes": probe_count, "exact_agreement": agree / max(probe_count, 1),
                                         "max_regret": max_regret}, "mismatches": mismatches}
    if mismatches:
        raise parity.ParityError(mismatches, report)
    return report


def _random_number(grammar: TextNumberGrammar, rng: np.random.Generator) -> np.ndarray:
    """A grammar-valid token path (uniform over allowed tokens), ending with EOS."""
    state, path = np.array([grammar.automaton.start]), []
    for position in range(len(grammar.prefix), grammar.max_decode_len):
        token = int(rng.choice(np.flatnonzero(grammar.allowed_mask(state, grammar.max_decode_len - position)[0])))
        path.append(token)
        if token == grammar.eos_id:
            break
        state = grammar.advance(state, np.array([token]))
    return np.array(path, dtype=np.int64)


def _regret(grammar: TextNumberGrammar, tokens: np.ndarray, logits: np.ndarray) -> float:
    state, worst = np.array([grammar.automaton.start]), 0.0
    for position, token in enumerate(tokens.tolist()):
        if position < len(grammar.prefix):
            continue
        allowed = grammar.allowed_mask(state, grammar.max_decode_len - position)[0]
        scores = np.where(allowed, logits[position], -np.inf)
        worst = max(worst, float(scores.max() - scores[token]))
        if token == grammar.eos_id:
            break
        state = grammar.advance(state, np.array([token]))
    return worst


# ----------------------------------------------------------------------------------------------- bundle


def export_seq2seq_bundle(model_dir: str | Path, config_path: str | Path | None, out_dir: str | Path, *,
                          precision: str = "int8", name: str | None = None, purpose: str = "user",
                          probe_count: int = 16):
    """A T5Gemma seq2seq model directory -> verified text-number bundle (written only if parity passed)."""
    import tokenizers

    from perfhint_export import bundle_writer

    if precision not in PRECISIONS or purpose not in PURPOSES:
        raise Seq2SeqError(f"precision {precision!r} / purpose {purpose!r}",
                           [f"use precision one of {list(PRECISIONS)} and purpose one of {list(PURPOSES)}"])
    model_dir = Path(model_dir)
    config = load_seq2seq_config(config_path)
    model = load_seq2seq_model(model_dir)
    vocab, tokenizer_notes = load_hf_vocab(model_dir)
    spec = text_number_spec(model, model_dir, config)
    grammar = TextNumberGrammar(tokenizers.Tokenizer.from_str(vocab.data.decode("utf-8")), spec, config.max_num_objs)
    out_dir = Path(out_dir).absolute()
    bundle_writer._check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        staging.chmod(0o777 & ~bundle_writer._umask())
        scratch = staging / ".fp32-export"
        exported = export_graphs(model, scratch)
        if precision == "int8":
            graphs, quantization = quantize.quantize_graphs(exported, staging)
        else:
            graphs, quantization = quantize.copy_graphs(exported, staging), None
        shutil.rmtree(scratch)
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            report = check_seq2seq_parity(model, grammar, graphs, precision, config.max_input_len, vocab.pad_id,
                                          vocab.size, probe_count)
        finally:
            torch.set_num_threads(torch_threads)
        tokenizer_file = TOKENIZER_FILES[HF_TOKENIZERS]
        (staging / tokenizer_file).write_bytes(vocab.data)
        decoder_config = model.config.decoder
        weights = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
        digest = hashlib.sha256(b"".join(sha256_file(path).encode() for path in weights)).hexdigest()
        manifest = Manifest(
            model=ModelInfo(name=name or model_dir.name, version=digest[:12], purpose=purpose),
            encoder_tokenizer=EncoderTokenizer(kind=HF_TOKENIZERS, file=tokenizer_file,
                                               sha256=sha256_file(staging / tokenizer_file), pad_id=int(vocab.pad_id)),
            max_input_len=config.max_input_len,
            codec=Codec(decoder_tokenizer=spec, max_num_objs=config.max_num_objs),
            architecture={"kind": SEQ2SEQ_FORMAT, "hf_model_type": model.config.model_type,
                          "d_model": decoder_config.hidden_size, "num_decoder_layers": len(model.model.decoder.layers),
                          "num_encoder_layers": len(model.model.encoder.layers),
                          "decoder_nhead": decoder_config.num_attention_heads,
                          "decoder_kv_heads": decoder_config.num_key_value_heads,
                          "decoder_head_dim": decoder_config.head_dim, "vocab_size": vocab.size,
                          "encoder_tokenizer": tokenizer_notes},
            metrics=tuple(Metric(name=metric, unit=unit, meaning=f"objective {index} of the model's text output")
                          for index, (metric, unit) in enumerate(config.metrics)),
            input_template=config.input_template,
            graphs={role: Graph(file=path.name, precision=precision, sha256=sha256_file(path),
                                bytes=path.stat().st_size) for role, path in graphs.items()},
            quantization=quantization, parity=finite_json(report),
            provenance=Provenance(checkpoint=str(model_dir.resolve()), checkpoint_sha256=digest,
                                  checkpoint_format=SEQ2SEQ_FORMAT, exported_by=f"perfhint {perfhint.__version__}",
                                  exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")))
        (staging / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
        load_bundle(staging)
        bundle_writer._publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_bundle(out_dir)


__all__ = ["Seq2SeqDecoderStepGraph", "Seq2SeqEncoderGraph", "Seq2SeqError", "check_seq2seq_parity",
           "export_seq2seq_bundle", "greedy", "load_seq2seq_config", "load_seq2seq_model", "reference_logits"]
