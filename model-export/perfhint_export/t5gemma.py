"""regress-lm's T5Gemma-encoder RLMs: a Hugging Face T5Gemma encoder in front of our RLM decoder.

regress-lm's `EncoderType.T5GEMMA` (REGRESS_LM_FACTS §6) keeps only `model.get_encoder()` of a
transformers `T5GemmaForConditionalGeneration` (v1) or `T5Gemma2ForConditionalGeneration` (v2, vision
tower and projector deleted), feeds it `attention_mask = not pad`, and puts its usual RLM decoder
(model.py; d_model = the encoder's hidden_size, 8 heads) on `last_hidden_state`. What is hard:

- **The encoder is transformers' code, not ours.** Gemma semantics (RMSNorm with 1 + w, GeGLU
  `gelu_pytorch_tanh`, sqrt(d) embedding scale, GQA, RoPE with per-layer-type bases in v2, q/k norms in
  v2, `query_pre_attn_scalar`, attention-logit soft-capping, sliding-window vs global layers, v2's
  `eoi_embedding` swap) are many small ways to be almost right. So we do not re-implement the encoder:
  the reference model and the encoder graph both *run transformers' own module* (built from the local
  `hf_model_dir` config; the weights come from the checkpoint), and the graph is that module traced by
  torch.onnx's dynamo exporter. optimum-onnx was checked first and cannot do it: 0.1.0 registers no
  t5gemma / t5gemma2 config and pins transformers < 4.58 (T5Gemma 2 needs >= 5), so installing it would
  even downgrade the transformers this module needs. The parity gate (parity.py) then compares the
  traced graph with the module at lengths 0, 1, 19, 33 and max_input_len.
- **Eager attention.** transformers refuses SDPA for v1 (soft-capping) and picks it for v2 when it
  can; we force `eager` for both so the traced maths is the plain matmul-softcap-mask-softmax that
  exports 1:1 (SDPA vs eager differ by float rounding only).
- **Sliding windows are data-independent masks built inside the trace.** transformers' masking utils
  build the [batch, 1, L, L] bidirectional (sliding) masks from the length, so the traced graph keeps
  them for every length; the gate's lengths straddle a tiny test window (4) and the real one (512).
- **Length 0.** transformers' encoder cannot run a zero-length input (a reshape with -1 of 0
  elements); the exported graph can. The reference returns an empty memory there, which is what the
  graph gives and what the decoder needs (it masks every memory key: the cross-attention is zero).
- **Fully masked rows** (an all-padding input) get a uniform average over the padded keys from
  transformers' eager attention, and that average over thousands of keys differs between torch and
  onnxruntime by summation order (6e-5 at 2048 tokens, beyond the 1e-4 gate at longer ones). It never
  reaches a number: the RLM decoder masks every memory key of such an input. So the memory of an input
  without a single real token is set to zero, in the reference and in the graph alike.
- **Memory at 8192 tokens.** Eager attention holds [batch, heads, L, L] float32 scores: 1 GiB per input
  and layer for the 270M encoder (4 heads) at 8192. The reference encodes one input at a time above a
  budget, so the parity gate's batches do not multiply that by 4 or 16.
- **The tokenizer is transformers', serialised.** regress-lm's `HuggingFaceVocab` calls
  `AutoTokenizer.from_pretrained(dir).encode(text)`, special tokens included (a BOS for Gemma). A
  tokenizer class may rebuild the post-processor from tokenizer_config.json (add_bos_token/add_eos_token)
  instead of using tokenizer.json's, so the bundle gets `backend_tokenizer.to_str()` — the tokenizer
  transformers actually runs — and the export checks on probe strings that the `tokenizers` library
  (what the server uses; no transformers there) gives the same ids.
- **No hub.** Configs and tokenizers are read with `local_files_only=True` from a directory; nothing
  is ever downloaded. The encoder is built from the config (random init, then the checkpoint's
  weights), never with `from_pretrained` weights.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from perfhint.encoder_vocab import HF_TOKENIZERS, EncoderVocab, EncoderVocabError
from perfhint.numbers import codec_from_spec
from perfhint_export.config import RLMConfig
from perfhint_export.errors import CheckpointFormatError, CheckpointMismatchError
from perfhint_export.model import EncoderDecoder, PositionalEncoding, TransformerDecoder

ENCODER_TYPE = "t5gemma"
ENCODER_PREFIX = "encoder.encoder."  # regress-lm: EncoderDecoder.encoder (its T5GemmaEncoder) .encoder (the HF module)
V2_TEXT_PREFIX = "text_model."  # v2's get_encoder() is T5Gemma2Encoder; text weights live under .text_model
V2_DROPPED_PREFIXES = ("vision_tower.", "multi_modal_projector.")  # regress-lm deletes these; ignored if present
HF_MODEL_TYPES = {"t5gemma": 1, "t5gemma2": 2}
ATTN_IMPLEMENTATION = "eager"  # see the module docstring
HF_EXTRA_FIX = "install the `hf` extra: pip install 'perfhint[hf]' (transformers)"
# Above this many attention-score elements (batch x L x L) the reference encodes one input at a time.
REFERENCE_BATCH_SCORE_BUDGET = 2 * 2048 * 2048
# Texts whose ids must agree between transformers' tokenizer and the `tokenizers` library (export check).
TOKENIZER_PROBES = ("", "def f(n):\n    return [0] * n\n", "x = 1.2345e+03  # héllo wörld\t日本語",
                    "   leading and trailing spaces   ", "<bos><eos><pad> literal special-token text",
                    "@triton.jit\ndef add_kernel(x_ptr, y_ptr, n_elements, BLOCK: tl.constexpr): pass")


def import_transformers():
    try:
        import transformers
    except ImportError:
        raise CheckpointFormatError("T5Gemma encoders are built with Hugging Face transformers, which is not "
                                    "installed", [HF_EXTRA_FIX]) from None
    return transformers


# ----------------------------------------------------------------------------------------------- HF config


@dataclasses.dataclass(frozen=True)
class HFEncoderSpec:
    """What the HF model directory says about the encoder."""

    version: int  # 1 (T5Gemma) or 2 (T5Gemma 2)
    model_type: str
    text_config: Any  # transformers config of the encoder's text stack (a copy; safe to modify)
    eoi_token_index: int | None  # v2 only: ids equal to it take `eoi_embedding` instead of the table row

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    def summary(self) -> dict[str, Any]:
        """The encoder hyper-parameters for the manifest (JSON)."""
        config = self.text_config
        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "hidden_activation", "query_pre_attn_scalar", "sliding_window",
                "layer_types", "attn_logit_softcapping", "rms_norm_eps", "rope_parameters", "vocab_size")
        summary = {key: getattr(config, key, None) for key in keys}
        summary = json.loads(json.dumps(summary, default=str))
        return {"hf_model_type": self.model_type, "t5gemma_version": self.version,
                "eoi_token_index": self.eoi_token_index, "attn_implementation": ATTN_IMPLEMENTATION, **summary}


def load_hf_encoder_spec(hf_model_dir: str | Path, *, full_attention: bool = False) -> HFEncoderSpec:
    """Read config.json of a local T5Gemma / T5Gemma 2 model directory (never the hub)."""
    transformers = import_transformers()
    hf_model_dir = Path(hf_model_dir)
    if not (hf_model_dir / "config.json").is_file():
        raise CheckpointFormatError(f"hf_model_dir {hf_model_dir} has no config.json",
                                    ["point hf_model_dir at the Hugging Face model directory the encoder came from "
                                     "(config.json + tokenizer files), e.g. a local copy of google/t5gemma-2-270m-270m"])
    try:
        config = transformers.AutoConfig.from_pretrained(str(hf_model_dir), local_files_only=True)
    except Exception as error:  # transformers raises OSError, ValueError, KeyError... for a bad directory
        raise CheckpointFormatError(f"transformers {transformers.__version__} cannot read {hf_model_dir}/config.json",
                                    [_first_line(error), "upgrade transformers if the model type is newer"]) from None
    model_type = getattr(config, "model_type", None)
    if model_type not in HF_MODEL_TYPES:
        raise CheckpointFormatError(f"{hf_model_dir} holds a {model_type!r} model, not a T5Gemma",
                                    [f"encoder_type 't5gemma' needs model_type one of {sorted(HF_MODEL_TYPES)}"])
    version = HF_MODEL_TYPES[model_type]
    if version == 1:
        text_config, eoi = copy.deepcopy(config.encoder), None
    else:
        text_config, eoi = copy.deepcopy(config.encoder.text_config), getattr(config, "eoi_token_index", None)
        if eoi is None:
            eoi = getattr(config.encoder, "eoi_token_index", None)
    text_config._attn_implementation = ATTN_IMPLEMENTATION
    text_config.dropout_rate = 0.0
    text_config.attention_dropout = 0.0
    if full_attention:  # regress-lm's option: every layer global
        text_config.layer_types = ["full_attention"] * int(text_config.num_hidden_layers)
    return HFEncoderSpec(version=version, model_type=model_type, text_config=text_config, eoi_token_index=eoi)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class _V2Encoder(nn.Module):
    """Stands for T5Gemma2Encoder without its vision parts: only `text_model`, so the keys stay regress-lm's."""

    def __init__(self, text_model: nn.Module) -> None:
        super().__init__()
        self.text_model = text_model


def build_hf_encoder(spec: HFEncoderSpec, vocab_size: int) -> nn.Module:
    """The HF encoder module with `vocab_size` embedding rows (regress-lm resizes to len(tokenizer)), eval mode."""
    transformers = import_transformers()
    config = copy.deepcopy(spec.text_config)
    config.vocab_size = int(vocab_size)
    if spec.version == 1:
        from transformers.models.t5gemma.modeling_t5gemma import T5GemmaEncoder
        module = T5GemmaEncoder(config)
    else:
        try:
            from transformers.models.t5gemma2.modeling_t5gemma2 import T5Gemma2TextEncoder
        except ImportError:
            raise CheckpointFormatError(f"transformers {transformers.__version__} has no T5Gemma 2",
                                        ["upgrade transformers (T5Gemma 2 needs >= 5.0); " + HF_EXTRA_FIX]) from None
        kwargs = {} if spec.eoi_token_index is None else {"eoi_token_index": int(spec.eoi_token_index)}
        module = _V2Encoder(T5Gemma2TextEncoder(config, **kwargs))
    return module.eval()


# ----------------------------------------------------------------------------------------------- modules


class T5GemmaEncoder(nn.Module):
    """regress-lm's T5GemmaEncoder wrapper: `encoder` is the HF module; (ids, pad_mask) -> last_hidden_state."""

    def __init__(self, hf_encoder: nn.Module, spec: HFEncoderSpec) -> None:
        super().__init__()
        self.encoder = hf_encoder
        self.version = spec.version
        self.hidden_size = spec.hidden_size

    def hf_forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """transformers' encoder on (ids, bool mask, True = real token), zero for inputs without a real token;
        what the ONNX graph traces."""
        module = self.encoder.text_model if self.version == 2 else self.encoder
        memory = module(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return memory * attention_mask.any(dim=1).to(memory.dtype)[:, None, None]

    def forward(self, ids: Tensor, pad_mask: Tensor) -> Tensor:
        batch, length = ids.shape
        if length == 0:  # transformers cannot; the graph and the decoder agree on an empty memory
            return torch.zeros(batch, 0, self.hidden_size, dtype=torch.float32, device=ids.device)
        if batch > 1 and batch * length * length > REFERENCE_BATCH_SCORE_BUDGET:
            return torch.cat([self.hf_forward(ids[row:row + 1], ~pad_mask[row:row + 1]) for row in range(batch)])
        return self.hf_forward(ids, ~pad_mask)


class T5GemmaRLM(EncoderDecoder):
    """HF T5Gemma encoder + regress-lm's RLM decoder: the PyTorch reference of a T5GEMMA checkpoint.

    Same state-dict keys as regress-lm's EncoderDecoder with EncoderType.T5GEMMA (without the
    `encoder_decoder.` prefix); decoding (`greedy_decode`, `sample`) is model.py's, unchanged.
    """

    encoder_type = ENCODER_TYPE

    def __init__(self, config: RLMConfig, encoder: T5GemmaEncoder, manifest_architecture: dict[str, Any]) -> None:
        nn.Module.__init__(self)  # not EncoderDecoder.__init__: it would build a vanilla encoder
        if config.d_model % config.decoder_nhead:
            raise ValueError(f"encoder hidden_size {config.d_model} is not divisible by decoder_nhead "
                             f"{config.decoder_nhead}; set architecture.decoder_nhead in the sidecar")
        self.config = config
        self.encoder = encoder
        self.tgt_tok_emb = nn.Embedding(config.decoder_vocab_size, config.d_model)
        self.decoder_positional_encoding = PositionalEncoding(config.decode_len + 1, config.d_model)
        self.decoder = TransformerDecoder(config)
        self.generator = nn.Linear(config.d_model, config.decoder_vocab_size)
        self.manifest_architecture = manifest_architecture  # merged into the bundle manifest's "architecture"

    def export_graphs(self, out_dir: Path, encoder_file: str, decoder_file: str) -> dict[str, Path]:
        """bundle_writer's hook: this model's encoder graph is traced from transformers' module."""
        return export_graphs(self, out_dir, encoder_file=encoder_file, decoder_file=decoder_file)


# ----------------------------------------------------------------------------------------------- tokenizer


def load_hf_vocab(hf_model_dir: str | Path) -> tuple[EncoderVocab, dict[str, Any]]:
    """regress-lm's HuggingFaceVocab, as bytes the server can run: (vocab, manifest notes)."""
    transformers = import_transformers()
    hf_model_dir = Path(hf_model_dir)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_model_dir), local_files_only=True)
    except Exception as error:
        raise EncoderVocabError(f"transformers cannot load the tokenizer of {hf_model_dir} ({_first_line(error)}); "
                                f"the directory needs tokenizer.json (+ tokenizer_config.json) of the model") from None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise EncoderVocabError(f"the tokenizer of {hf_model_dir} ({type(tokenizer).__name__}) is not a fast "
                                f"tokenizer, so it cannot be served without transformers; add its tokenizer.json")
    if tokenizer.pad_token_id is None:
        raise EncoderVocabError(f"the tokenizer of {hf_model_dir} has no pad token; regress-lm's HuggingFaceVocab "
                                f"pads with tokenizer.pad_token_id: set pad_token in tokenizer_config.json")
    data = backend.to_str().encode("utf-8")
    vocab = EncoderVocab(HF_TOKENIZERS, data, pad_id=int(tokenizer.pad_token_id),
                         source=f"{hf_model_dir} ({type(tokenizer).__name__}, transformers)")
    disagreements = []
    for text in TOKENIZER_PROBES:
        expected, served = list(tokenizer.encode(text)), vocab.encode(text)
        if expected != served:
            disagreements.append(f"{text!r}: transformers {expected[:12]}, tokenizers {served[:12]}")
    if disagreements:
        raise EncoderVocabError(f"the tokenizer of {hf_model_dir} encodes differently under the `tokenizers` "
                                f"library than under transformers: {'; '.join(disagreements)}; this tokenizer "
                                f"class adds behaviour outside tokenizer.json, which perfhint cannot serve")
    notes = {"source": "transformers.AutoTokenizer(hf_model_dir).backend_tokenizer.to_str()",
             "tokenizer_class": type(tokenizer).__name__, "add_special_tokens": True,
             "special_tokens_of_empty_text": vocab.encode(""), "len_tokenizer": len(tokenizer),
             "probe_texts_agree": len(TOKENIZER_PROBES), "transformers": transformers.__version__}
    return vocab, notes


# ----------------------------------------------------------------------------------------------- checkpoints


def _layer_count(keys: list[str], stack: str) -> int:
    pattern = rf"{stack}\.layers\.(\d+)\." if stack else r"layers\.(\d+)\."
    indices = {int(match.group(1)) for key in keys if (match := re.match(pattern, key))}
    return max(indices) + 1 if indices else 0


def load_t5gemma_checkpoint(path: Path, state: dict[str, Tensor], spec: Any):
    """A regress-lm T5GEMMA state dict (prefix already stripped) + its sidecar -> LoadedCheckpoint.

    Every problem (tokenizer, codec, shapes, keys) is collected and raised as one CheckpointMismatchError.
    """
    from perfhint_export import checkpoint as checkpoints  # the shared loaders; imported late (no cycle)

    hf_spec = load_hf_encoder_spec(spec.hf_model_dir, full_attention=spec.encoder_full_attention)
    problems: list[str] = []
    vocab = notes = None
    try:
        vocab, notes = load_hf_vocab(spec.hf_model_dir)
    except EncoderVocabError as error:
        problems.append(f"encoder tokenizer: {error}")
    codec = None
    try:
        codec = codec_from_spec(spec.decoder_tokenizer, spec.max_num_objs)
    except ValueError as error:
        problems.append(f"decoder_tokenizer: {error}")

    state = dict(state)
    prefix = ENCODER_PREFIX + (V2_TEXT_PREFIX if hf_spec.version == 2 else "")
    dropped = [key for key in state if key.startswith(tuple(ENCODER_PREFIX + p for p in V2_DROPPED_PREFIXES))]
    for key in dropped:
        del state[key]
    embed_key = prefix + "embed_tokens.weight"
    encoder_keys = [key for key in state if key.startswith(ENCODER_PREFIX)]
    config = None
    if not encoder_keys:
        problems.append(f"no key starts with {ENCODER_PREFIX!r}: this is not a T5GEMMA-encoder checkpoint "
                        f"(a vanilla one has encoder.embedding.weight); fix encoder_type in the sidecar")
    elif embed_key not in state:
        other = "v1 (t5gemma)" if hf_spec.version == 2 else "v2 (t5gemma2)"
        problems.append(f"missing {embed_key!r}, which a {hf_spec.model_type} encoder has; the keys look like a "
                        f"{other} encoder: point hf_model_dir at the matching model directory")
    else:
        config = _infer_config(state, embed_key, prefix, hf_spec, spec, vocab, problems)
    if config is not None:
        problems += checkpoints._sidecar_vs_shapes(config, spec, codec, vocab)
    elif codec is not None and "tgt_tok_emb.weight" in state and codec.vocab_size != len(state["tgt_tok_emb.weight"]):
        problems.append(f"decoder vocab: decoder_tokenizer has {codec.vocab_size} tokens but tgt_tok_emb.weight has "
                        f"{len(state['tgt_tok_emb.weight'])} rows; fix decoder_tokenizer in the sidecar")
    model = None
    if config is not None and not problems:
        try:
            model = _build_model(config, hf_spec, notes, dropped)
        except ValueError as error:
            problems.append(str(error))
    if model is not None:
        problems += _layout_problems(model, state)
    if problems:
        raise CheckpointMismatchError(f"{path} cannot be loaded with {spec.path or 'the given sidecar'}: "
                                      f"{len(problems)} problem(s)", problems)
    model.load_state_dict({key: value.to(torch.float32) for key, value in state.items()}, strict=True)
    model.eval()
    provenance = checkpoints.Provenance(path=path.resolve(), sha256=checkpoints._file_sha256(path),
                                        format=checkpoints.REGRESS_LM_FORMAT, sidecar=spec.path)
    return checkpoints.LoadedCheckpoint(model=model, config=config, decoder_tokenizer=codec.spec,
                                        max_num_objs=spec.max_num_objs, metrics=spec.metrics, encoder_vocab=vocab,
                                        input_template=spec.input_template, provenance=provenance)


def _infer_config(state: dict[str, Tensor], embed_key: str, prefix: str, hf_spec: HFEncoderSpec, spec: Any,
                  vocab: EncoderVocab | None, problems: list[str]) -> RLMConfig | None:
    """RLMConfig from the HF config (encoder) and the decoder shapes (FACTS §3.5); None with problems."""
    keys = list(state)
    needed = ("tgt_tok_emb.weight", "decoder_positional_encoding.pe", "decoder.layers.0.linear1.weight")
    missing = [key for key in needed if key not in state]
    if missing:
        problems += [f"missing key {key!r}, needed to read the RLM decoder" for key in missing]
        return None
    encoder_vocab_size, d_model = state[embed_key].shape
    text = hf_spec.text_config
    if d_model != hf_spec.hidden_size:
        problems.append(f"{embed_key} is {d_model} wide but {spec.hf_model_dir}/config.json says hidden_size "
                        f"{hf_spec.hidden_size}; point hf_model_dir at the model the encoder came from")
        return None
    layers = _layer_count([key.removeprefix(prefix) for key in keys if key.startswith(prefix)], "")
    if layers != text.num_hidden_layers:
        problems.append(f"the checkpoint has {layers} encoder layers, {spec.hf_model_dir}/config.json says "
                        f"num_hidden_layers {text.num_hidden_layers}; point hf_model_dir at the matching model")
    if state["tgt_tok_emb.weight"].shape[1] != d_model:
        problems.append(f"tgt_tok_emb.weight is {state['tgt_tok_emb.weight'].shape[1]} wide, the encoder {d_model}; "
                        f"regress-lm's decoder width is the encoder's hidden_size")
        return None
    if vocab is not None and vocab.size != encoder_vocab_size:
        problems.append(f"encoder vocab: the tokenizer of {spec.hf_model_dir} has {vocab.size} tokens but "
                        f"{embed_key} has {encoder_vocab_size} rows (regress-lm resizes the embedding to "
                        f"len(tokenizer)); use the tokenizer the model was trained with")
    decoder_nhead = spec.architecture.get("decoder_nhead", 8)
    return RLMConfig(
        encoder_vocab_size=int(encoder_vocab_size),
        decoder_vocab_size=int(state["tgt_tok_emb.weight"].shape[0]),
        d_model=int(d_model),
        num_encoder_layers=int(text.num_hidden_layers),
        num_decoder_layers=_layer_count(keys, "decoder"),
        decode_len=int(state["decoder_positional_encoding.pe"].shape[1]) - 1,
        max_input_len=spec.max_input_len,
        encoder_pad_id=vocab.pad_id if vocab is not None else 0,
        encoder_nhead=int(text.num_attention_heads),
        decoder_nhead=int(decoder_nhead),
        encoder_dim_feedforward=int(text.intermediate_size),
        decoder_dim_feedforward=int(state["decoder.layers.0.linear1.weight"].shape[0]),
    )


def _build_model(config: RLMConfig, hf_spec: HFEncoderSpec, tokenizer_notes: dict[str, Any] | None,
                 dropped: list[str]) -> T5GemmaRLM:
    encoder = T5GemmaEncoder(build_hf_encoder(hf_spec, config.encoder_vocab_size), hf_spec)
    architecture = {"encoder_type": ENCODER_TYPE, "hf_encoder": hf_spec.summary(),
                    "encoder_tokenizer": tokenizer_notes or {},
                    "ignored_checkpoint_keys": len(dropped)}
    return T5GemmaRLM(config, encoder, architecture)


def _layout_problems(model: T5GemmaRLM, state: dict[str, Tensor]) -> list[str]:
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    problems = [f"missing key {key!r} (expected shape {list(shape)})" for key, shape in expected.items()
                if key not in state]
    problems += [f"unexpected key {key!r} (shape {list(state[key].shape)})" for key in state if key not in expected]
    problems += [f"{key}: shape {list(state[key].shape)}, expected {list(shape)}" for key, shape in expected.items()
                 if key in state and tuple(state[key].shape) != shape]
    problems += [f"{key}: dtype {state[key].dtype}, expected a floating-point tensor" for key in expected
                 if key in state and not state[key].is_floating_point()]
    return problems


# ----------------------------------------------------------------------------------------------- ONNX


class T5GemmaEncoderGraph(nn.Module):
    """(input_ids, attention_mask) -> (memory, cross_k, cross_v), the runtime's encoder contract.

    transformers' encoder module (shared with the reference, not copied) + the RLM decoder's
    cross-attention K/V projections, written as x @ Wᵀ + b so int8 quantization reaches them.
    """

    def __init__(self, model: T5GemmaRLM) -> None:
        super().__init__()
        config = model.config
        self.encoder = model.encoder
        self.d_model = config.d_model
        self.dec_nhead = config.decoder_nhead
        self.dec_head_dim = config.decoder_head_dim
        self.num_decoder_layers = config.num_decoder_layers
        d = config.d_model
        for j, layer in enumerate(model.decoder.layers):
            weight = layer.multihead_attn.in_proj_weight.detach().float()  # rows [Wq; Wk; Wv]
            bias = layer.multihead_attn.in_proj_bias.detach().float()
            self.register_buffer(f"x{j}_k_wt", weight[d:2 * d].t().contiguous().clone())
            self.register_buffer(f"x{j}_k_b", bias[d:2 * d].contiguous().clone())
            self.register_buffer(f"x{j}_v_wt", weight[2 * d:].t().contiguous().clone())
            self.register_buffer(f"x{j}_v_b", bias[2 * d:].contiguous().clone())

    def forward(self, input_ids: Tensor, attention_mask: Tensor):
        batch, length = input_ids.shape[0], input_ids.shape[1]
        memory = self.encoder.hf_forward(input_ids, attention_mask != 0)
        cross_k, cross_v = [], []
        for j in range(self.num_decoder_layers):
            for name, out in (("k", cross_k), ("v", cross_v)):
                projected = torch.matmul(memory, getattr(self, f"x{j}_{name}_wt")) + getattr(self, f"x{j}_{name}_b")
                out.append(projected.reshape(batch, length, self.dec_nhead, self.dec_head_dim).transpose(1, 2))
        return memory, torch.stack(cross_k), torch.stack(cross_v)


def example_length(model: T5GemmaRLM) -> int:
    """Tracing length: past the sliding window when the model allows it, so no branch is traced on the short side."""
    window = getattr(model.encoder.encoder.text_model if model.encoder.version == 2 else model.encoder.encoder,
                     "config").sliding_window or 0
    return max(5, min(int(window) + 3, model.config.max_input_len, 1024))


def export_encoder(model: T5GemmaRLM, path: Path) -> Path:
    from perfhint_export import onnx_graphs

    inputs = onnx_graphs.example_encoder_inputs(model.config, length=example_length(model))
    return onnx_graphs._export(T5GemmaEncoderGraph(model), inputs, Path(path), onnx_graphs.ENCODER_INPUTS,
                               onnx_graphs.ENCODER_OUTPUTS, onnx_graphs.ENCODER_AXES)


def export_graphs(model: T5GemmaRLM, out_dir: Path, encoder_file: str = "encoder.onnx",
                  decoder_file: str = "decoder_step.onnx") -> dict[str, Path]:
    """Both graphs (fp32): the traced T5Gemma encoder, and onnx_graphs' decoder step (our decoder, unchanged)."""
    from perfhint_export import onnx_graphs

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    decoder_state = {key: value for key, value in model.state_dict().items() if not key.startswith("encoder.")}
    return {"encoder": export_encoder(model, out_dir / encoder_file),
            "decoder_step": onnx_graphs.export_decoder_step(decoder_state, model.config, out_dir / decoder_file)}


def rlm_config_for(spec: HFEncoderSpec, *, encoder_vocab_size: int, decoder_vocab_size: int, num_decoder_layers: int,
                   decode_len: int, max_input_len: int, encoder_pad_id: int,
                   decoder_dim_feedforward: int | None = None) -> RLMConfig:
    """The RLMConfig of a T5Gemma RLM with these decoder sizes (for tests, benchmarks and fresh models)."""
    text = spec.text_config
    return RLMConfig(encoder_vocab_size=encoder_vocab_size, decoder_vocab_size=decoder_vocab_size,
                     d_model=spec.hidden_size, num_encoder_layers=int(text.num_hidden_layers),
                     num_decoder_layers=num_decoder_layers, decode_len=decode_len, max_input_len=max_input_len,
                     encoder_pad_id=encoder_pad_id, encoder_nhead=int(text.num_attention_heads),
                     encoder_dim_feedforward=int(text.intermediate_size),
                     decoder_dim_feedforward=decoder_dim_feedforward)


def fresh_model(spec: HFEncoderSpec, config: RLMConfig) -> T5GemmaRLM:
    """A randomly initialised T5Gemma RLM (transformers' init for the encoder, torch's for the decoder)."""
    encoder = T5GemmaEncoder(build_hf_encoder(spec, config.encoder_vocab_size), spec)
    return T5GemmaRLM(config, encoder, {"encoder_type": ENCODER_TYPE, "hf_encoder": spec.summary()}).eval()


__all__ = ["ENCODER_TYPE", "HFEncoderSpec", "T5GemmaEncoder", "T5GemmaEncoderGraph", "T5GemmaRLM", "build_hf_encoder",
           "export_graphs", "fresh_model", "load_hf_encoder_spec", "load_hf_vocab", "load_t5gemma_checkpoint",
           "rlm_config_for"]
