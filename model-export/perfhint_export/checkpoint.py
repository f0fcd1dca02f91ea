"""Load regress-lm checkpoints (with a sidecar) and perfhint checkpoints (self-describing) into one shape.

What is hard:
- Safety. A regress-lm `.pt` is a pickle. It is only ever read with
  `torch.load(path, map_location="cpu", weights_only=True)`, which refuses any global that is not a
  tensor or plain container; such a file is reported as `UnsafeCheckpointError` and never retried with
  weights_only=False. regress-lm's own checkpoints (weights + Muon/AdamW state) load fine this way.
- Trust. A regress-lm checkpoint stores no config (REGRESS_LM_FACTS §5), so the architecture is read
  from the shapes (§3.5), the rest comes from the sidecar, and the two are cross-checked: decoder vocab
  vs the decoder tokenizer, decode_len (`pe` rows - 1) vs max_num_objs x tokens per objective, encoder
  vocab file vs embedding rows, sidecar architecture overrides vs shapes, then every expected key and
  shape. All mismatches go into one `CheckpointMismatchError`, each naming the fix. Layouts we cannot
  run (pre-c388525 `nn.Transformer` keys, Performer/Mamba encoders) are refused by name; T5Gemma
  encoders go to t5gemma.py.
- What cannot be checked. Decoder heads (always 8 in regress-lm) and the decode_len split between
  objectives are ambiguous; vanilla checkpoints trained before 2026-03-29 used an inverted encoder pad
  mask and load fine but were trained differently (§3.6) — nothing in the file tells.
- Our own format ("perfhint") is a `.safetensors` file whose tensors are exactly the model's
  state_dict (no prefix) and whose metadata is {"format": "perfhint", "perfhint": JSON} holding the
  RLMConfig, the decoder tokenizer spec, max_num_objs, metrics, input template, the encoder vocabulary
  file itself (base64, with its sha256) and where the weights came from. It needs no sidecar and is
  validated with the same checks.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from perfhint.encoder_vocab import EncoderVocab, EncoderVocabError
from perfhint.input_template import RAW
from perfhint.numbers import DecoderCodec, codec_from_spec
from perfhint_export.config import RLMConfig
from perfhint_export.errors import (
    CheckpointFormatError,
    CheckpointMismatchError,
    SidecarError,
    UnsafeCheckpointError,
)
from perfhint_export.model import REGRESS_LM_PREFIX, EncoderDecoder
from perfhint_export.sidecar import REGRESS_LM_FORMAT, Metric, Sidecar, load_sidecar

PERFHINT_FORMAT = "perfhint"
PERFHINT_FORMAT_VERSION = 1
PERFHINT_METADATA_KEY = "perfhint"  # safetensors metadata: {"format": "perfhint", "perfhint": "<JSON>"}
REGRESS_LM_DECODER_NHEAD = 8  # hard-coded in regress-lm; not recoverable from the shapes
MODEL_STATE_KEY = "model_state"  # where regress-lm's Trainer.save_checkpoint puts the weights

# The tensors the architecture is read from (FACTS §3.5), with their number of dimensions. The FFN
# widths come from the first layer present, so a missing layer 0 is reported key by key, not as "unreadable".
_ARCHITECTURE_TENSORS = {
    "encoder.embedding.weight": 2, "tgt_tok_emb.weight": 2, "decoder_positional_encoding.pe": 3,
    "encoder.rotary_pos_emb.inv_freq": 1, "encoder.layers.N.linear1.weight": 2, "decoder.layers.N.linear1.weight": 2,
}
# regress-lm decoder tokenizers whose vocab size we can name when a sidecar's is wrong (FACTS §3.5).
_DECODER_SPEC_CANDIDATES = [
    {"type": "ieee", "special_values": None}, {"type": "ieee", "special_values": "default"},
    {"type": "ieee", "special_values": ["NAN"]}, {"type": "p10", "special_values": None},
    {"type": "p10", "special_values": "default"},
]


@dataclass(frozen=True)
class Provenance:
    """Which file the weights came from. `source` is the original checkpoint of a converted perfhint one."""

    path: Path
    sha256: str
    format: str  # "regress-lm" or "perfhint"
    sidecar: Path | None = None
    source: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "format": self.format,
                "sidecar": str(self.sidecar) if self.sidecar else None}


@dataclass
class LoadedCheckpoint:
    model: EncoderDecoder  # eval mode, float32, CPU
    config: RLMConfig
    decoder_tokenizer: dict[str, Any]  # the codec spec (normalised), for perfhint.numbers.codec_from_spec
    max_num_objs: int
    metrics: tuple[Metric, ...]
    encoder_vocab: EncoderVocab
    input_template: dict[str, Any]
    provenance: Provenance

    @property
    def codec(self) -> DecoderCodec:
        return codec_from_spec(self.decoder_tokenizer, self.max_num_objs)


# ----------------------------------------------------------------------------------------------- loading


def load_checkpoint(path: str | Path, sidecar: str | Path | Sidecar | None = None) -> LoadedCheckpoint:
    """A regress-lm `.pt` / `.safetensors` (needs `sidecar`) or a perfhint `.safetensors` (needs none)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointFormatError(f"checkpoint not found: {path}", ["pass the path of a .pt or .safetensors file"])
    if _is_safetensors(path):
        metadata = _safetensors_metadata(path)
        if metadata.get("format") == PERFHINT_FORMAT:
            if sidecar is not None:
                raise SidecarError(f"{path} is a perfhint checkpoint", ["it carries its own config; drop --config"])
            return _load_perfhint(path, metadata)
        state = _read_safetensors(path)
    else:
        state = _read_torch(path)
    return _load_regress_lm(path, state, sidecar)


def read_regress_lm_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The EncoderDecoder state dict of a regress-lm `.pt` or `.safetensors` file, `encoder_decoder.` stripped."""
    path = Path(path)
    state = _read_safetensors(path) if _is_safetensors(path) else _read_torch(path)
    return _strip_prefix(state, path)


def _is_safetensors(path: Path) -> bool:
    """safetensors starts with a little-endian u64 header size and then '{'; torch files are zip or pickle."""
    with path.open("rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def _safetensors_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except SafetensorError as error:
        raise CheckpointFormatError(f"{path} is not a readable safetensors file", [str(error)]) from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as error:
        raise CheckpointFormatError(f"{path} is not a readable safetensors file", [str(error)]) from None


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickler_reason(error)
        unsafe_globals = sorted(set(re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(error))))
        if unsafe_globals:
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it is a pickle that would call {', '.join(unsafe_globals)} when loaded "
                f"(arbitrary code), so it was not unpickled",
                ["regress-lm checkpoints load with torch.load(weights_only=True), so this is not a plain "
                 "regress-lm checkpoint",
                 "if you made this file and trust it, re-save only the weights: "
                 "torch.save({'model_state': model.state_dict()}, PATH) or safetensors.torch.save_file"],
            ) from None
        raise CheckpointFormatError(
            f"{path} is not a checkpoint torch can read safely (weights_only=True)",
            [f"torch's weights-only unpickler: {reason}",
             "regress-lm checkpoints are torch.save files of tensors and plain containers"],
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointFormatError(f"{path} is not a readable torch checkpoint", [_first_line(error)]) from None
    if isinstance(loaded, dict) and MODEL_STATE_KEY in loaded:
        loaded = loaded[MODEL_STATE_KEY]
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise CheckpointFormatError(
            f"{path} holds no state dict",
            [f"expected a dict of tensors or a dict with {MODEL_STATE_KEY!r} (regress-lm's Trainer.save_checkpoint), "
             f"got {type(loaded).__name__}"],
        )
    return dict(loaded)


def _first_line(error: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()  # torch colours parts of its messages
    return text.splitlines()[0] if text else type(error).__name__


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """torch's weights-only refusal is a page of advice; keep only what its unpickler objected to."""
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|$)", str(error), flags=re.DOTALL)
    return " ".join(match.group(1).split()) if match else _first_line(error)


def _strip_prefix(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Accept PyTorchModel keys (`encoder_decoder.*`) or bare EncoderDecoder keys; refuse other layouts."""
    keys = list(state)
    old = [key for key in keys if key.removeprefix(REGRESS_LM_PREFIX).startswith(("src_tok_emb", "transformer."))]
    if old:
        raise CheckpointFormatError(
            f"{path} uses regress-lm's layout from before 2025-08-08 (commit c388525)",
            [f"keys like {old[0]!r} belong to the old monolithic nn.Transformer model (sinusoidal encoder "
             f"positions), an architecture perfhint does not implement; re-train it with regress-lm at or "
             f"after c388525"],
        )
    prefixed = [key for key in keys if key.startswith(REGRESS_LM_PREFIX)]
    if prefixed and len(prefixed) != len(keys):
        stray = sorted(set(keys) - set(prefixed))
        raise CheckpointFormatError(
            f"{path} mixes {REGRESS_LM_PREFIX!r} keys with others",
            [f"unexpected key {key!r}" for key in stray] + ["save PyTorchModel.state_dict() unmodified"],
        )
    state = {key.removeprefix(REGRESS_LM_PREFIX): value for key, value in state.items()}
    other_encoder = _other_encoder_type(state)
    if other_encoder and other_encoder != "T5Gemma":  # T5Gemma is served; its sidecar says so (_load_regress_lm)
        raise CheckpointFormatError(
            f"{path} has a {other_encoder} encoder",
            [f"only the vanilla and T5Gemma encoders are supported; {other_encoder} is not yet"],
        )
    return state


def _other_encoder_type(state: dict[str, torch.Tensor]) -> str | None:
    if any(key.startswith("encoder.encoder.") for key in state):
        return "T5Gemma"
    if any(key.endswith("projection_matrix") or key == "encoder.training_calls" for key in state):
        return "Performer"
    if any(re.match(r"encoder\.layers\.\d+\.[01]\.", key) for key in state):
        return "Mamba"
    return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- regress-lm


def _load_regress_lm(path: Path, state: dict[str, torch.Tensor],
                     sidecar: str | Path | Sidecar | None) -> LoadedCheckpoint:
    state = _strip_prefix(state, path)  # a layout we cannot run is refused before asking for a sidecar
    if sidecar is None:
        raise SidecarError(
            f"{path} is a regress-lm checkpoint, which stores no config",
            ["pass --config SIDECAR.json (decoder tokenizer, max_num_objs, max_input_len, encoder vocabulary; "
             "schema in perfhint_export/sidecar.py)"],
        )
    spec = sidecar if isinstance(sidecar, Sidecar) else load_sidecar(sidecar)
    if spec.encoder_type == "t5gemma":  # HF encoder + our decoder: its own loader (needs transformers)
        from perfhint_export.t5gemma import load_t5gemma_checkpoint
        return load_t5gemma_checkpoint(path, state, spec)
    if _other_encoder_type(state) == "T5Gemma":
        raise CheckpointFormatError(f"{path} has a T5Gemma encoder but the sidecar says encoder_type "
                                    f"{spec.encoder_type!r}",
                                    ['set "encoder_type": "t5gemma" and "hf_model_dir" (the local Hugging Face model '
                                     'directory) in the sidecar, and drop encoder_vocab'])
    problems: list[str] = []

    vocab = None
    try:
        vocab = EncoderVocab.from_file(spec.encoder_vocab.file, spec.encoder_vocab.type, spec.encoder_vocab.pad_id)
    except EncoderVocabError as error:
        problems.append(f"encoder_vocab: {error}")
    codec = None
    try:
        codec = codec_from_spec(spec.decoder_tokenizer, spec.max_num_objs)
    except ValueError as error:
        problems.append(f"decoder_tokenizer: {error}")

    shapes = _shapes_of(state)
    config = _infer_config(shapes, spec, problems, pad_id=vocab.pad_id if vocab else 0)
    if config is not None:
        problems += _sidecar_vs_shapes(config, spec, codec, vocab)
        problems += _layout_problems(config, state)
    if problems:
        sidecar_name = spec.path or "the given sidecar"
        raise CheckpointMismatchError(f"{path} cannot be loaded with {sidecar_name}: {len(problems)} problem(s)",
                                      problems)
    model = _build_model(config, state)
    provenance = Provenance(path=path.resolve(), sha256=_file_sha256(path), format=REGRESS_LM_FORMAT, sidecar=spec.path)
    return LoadedCheckpoint(model=model, config=config, decoder_tokenizer=codec.spec, max_num_objs=spec.max_num_objs,
                            metrics=spec.metrics, encoder_vocab=vocab, input_template=spec.input_template,
                            provenance=provenance)


def _shapes_of(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def _layer_count(shapes: dict[str, tuple[int, ...]], stack: str) -> int:
    indices = {int(match.group(1)) for key in shapes if (match := re.match(rf"{stack}\.layers\.(\d+)\.", key))}
    return max(indices) + 1 if indices else 0


def _first_match(shapes: dict[str, tuple[int, ...]], pattern: str) -> str | None:
    """`pattern` itself, or for a `.layers.N.` pattern the key of the lowest-numbered layer that has it."""
    if ".N." not in pattern:
        return pattern if pattern in shapes else None
    regex = re.compile(re.escape(pattern).replace(r"\.N\.", r"\.(\d+)\."))
    matches = sorted((int(match.group(1)), key) for key in shapes if (match := regex.fullmatch(key)))
    return matches[0][1] if matches else None


def _infer_config(shapes: dict[str, tuple[int, ...]], spec: Sidecar, problems: list[str],
                  pad_id: int) -> RLMConfig | None:
    """The architecture the shapes say (FACTS §3.5); None (with problems) if the key tensors are missing."""
    found = {pattern: _first_match(shapes, pattern) for pattern in _ARCHITECTURE_TENSORS}
    missing = [pattern for pattern, key in found.items() if key is None]
    if missing:
        problems += [f"missing key {pattern!r}, needed to read the architecture; is this a regress-lm vanilla "
                     f"EncoderDecoder state dict?" for pattern in missing]
        return None
    shapes = {**shapes, **{pattern: shapes[key] for pattern, key in found.items()}}
    wrong_rank = [f"{found[pattern]}: shape {list(shapes[pattern])}, expected {rank} dimensions"
                  for pattern, rank in _ARCHITECTURE_TENSORS.items() if len(shapes[pattern]) != rank]
    if wrong_rank:
        problems += wrong_rank
        return None
    encoder_vocab_size, d_model = shapes["encoder.embedding.weight"]
    rotary_pairs = shapes["encoder.rotary_pos_emb.inv_freq"][0]
    encoder_nhead = d_model // (2 * rotary_pairs) if rotary_pairs else 0
    if not rotary_pairs or encoder_nhead * 2 * rotary_pairs != d_model:
        problems.append(f"encoder.rotary_pos_emb.inv_freq has {rotary_pairs} entries, which does not divide "
                        f"d_model {d_model} into heads (d_model = 2 x entries x encoder_nhead)")
        return None
    decoder_nhead = spec.architecture.get("decoder_nhead", REGRESS_LM_DECODER_NHEAD)
    if d_model % decoder_nhead:
        problems.append(f"architecture.decoder_nhead: {decoder_nhead} does not divide d_model {d_model}; "
                        f"regress-lm always uses {REGRESS_LM_DECODER_NHEAD}")
        return None
    return RLMConfig(
        encoder_vocab_size=encoder_vocab_size,
        decoder_vocab_size=shapes["tgt_tok_emb.weight"][0],
        d_model=d_model,
        num_encoder_layers=_layer_count(shapes, "encoder"),
        num_decoder_layers=_layer_count(shapes, "decoder"),
        decode_len=shapes["decoder_positional_encoding.pe"][1] - 1,
        max_input_len=spec.max_input_len,
        encoder_pad_id=pad_id,
        encoder_nhead=encoder_nhead,
        decoder_nhead=decoder_nhead,
        encoder_dim_feedforward=shapes["encoder.layers.N.linear1.weight"][0],
        decoder_dim_feedforward=shapes["decoder.layers.N.linear1.weight"][0],
    )


def _sidecar_vs_shapes(config: RLMConfig, spec: Sidecar, codec: DecoderCodec | None,
                       vocab: EncoderVocab | None) -> list[str]:
    """What the sidecar claims against what the weights are, one sentence + fix per disagreement."""
    problems = []
    if codec is not None:
        if codec.vocab_size != config.decoder_vocab_size:
            problems.append(
                f"decoder vocab: decoder_tokenizer {_spec_text(codec.spec)} has {codec.vocab_size} tokens but "
                f"tgt_tok_emb.weight has {config.decoder_vocab_size} rows{_vocab_hint(config.decoder_vocab_size)}; "
                f"fix decoder_tokenizer in the sidecar"
            )
        if codec.decode_len != config.decode_len:
            tokens = codec.num_tokens_per_obj
            fitting = (f"; max_num_objs {config.decode_len // tokens} would fit"
                       if config.decode_len % tokens == 0 else "; no max_num_objs fits this decoder_tokenizer")
            problems.append(
                f"decode length: max_num_objs {spec.max_num_objs} x {tokens} tokens per objective = "
                f"{codec.decode_len}, but decoder_positional_encoding.pe has {config.decode_len + 1} rows "
                f"(decode_len {config.decode_len}){fitting}; fix max_num_objs or decoder_tokenizer"
            )
    if vocab is not None and vocab.size != config.encoder_vocab_size:
        problems.append(
            f"encoder vocab: {vocab.source} has {vocab.size} pieces but encoder.embedding.weight has "
            f"{config.encoder_vocab_size} rows; point encoder_vocab.file at the vocabulary the model was trained with"
        )
    for key, claimed in spec.architecture.items():
        actual = getattr(config, key)
        if key in ("encoder_dim_feedforward", "decoder_dim_feedforward"):
            actual = config.encoder_ffn if key.startswith("encoder") else config.decoder_ffn
        if claimed != actual:
            problems.append(f"architecture.{key}: sidecar says {claimed}, the weights say {actual}; "
                            f"fix or remove it (it is read from the shapes)")
    return problems


def _spec_text(spec: dict[str, Any]) -> str:
    return json.dumps(spec, separators=(",", ":"))


def _vocab_hint(vocab_size: int) -> str:
    matches = []
    for candidate in _DECODER_SPEC_CANDIDATES:
        codec = codec_from_spec(candidate)
        if codec.vocab_size == vocab_size:
            matches.append(_spec_text({key: candidate[key] for key in ("type", "special_values")}))
    return f" ({vocab_size} fits {' or '.join(matches)})" if matches else ""


def _layout_problems(config: RLMConfig, state: dict[str, torch.Tensor]) -> list[str]:
    """Every key and shape the config implies, against the state dict (missing, unexpected, wrong shape)."""
    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in EncoderDecoder(config).state_dict().items()}
    problems = [f"missing key {key!r} (expected shape {list(shape)})"
                for key, shape in expected.items() if key not in state]
    problems += [f"unexpected key {key!r} (shape {list(state[key].shape)})" for key in state if key not in expected]
    for key, shape in expected.items():
        if key in state and tuple(state[key].shape) != shape:
            problems.append(f"{key}: shape {list(state[key].shape)}, expected {list(shape)} from the other tensors")
        elif key in state and not state[key].is_floating_point():
            problems.append(f"{key}: dtype {state[key].dtype}, expected a floating-point tensor")
    return problems


def _build_model(config: RLMConfig, state: dict[str, torch.Tensor]) -> EncoderDecoder:
    with torch.device("meta"):  # no random init of weights that are overwritten at once
        model = EncoderDecoder(config)
    state = {key: value.to(torch.float32).contiguous() for key, value in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


# ----------------------------------------------------------------------------------------------- perfhint


def save_perfhint_checkpoint(path: str | Path, model: EncoderDecoder, *, decoder_tokenizer: dict[str, Any],
                             max_num_objs: int, metrics: tuple[Metric, ...] | list[Metric],
                             encoder_vocab: EncoderVocab, input_template: dict[str, Any] | None = None,
                             source: Provenance | None = None) -> Path:
    """Write a self-describing perfhint checkpoint; it is re-loaded and validated before returning."""
    path = Path(path)
    codec = codec_from_spec(decoder_tokenizer, max_num_objs)
    header = {
        "format_version": PERFHINT_FORMAT_VERSION,
        "config": model.config.to_dict(),
        "decoder_tokenizer": codec.spec,
        "max_num_objs": max_num_objs,
        "metrics": [dataclasses.asdict(metric) for metric in metrics],
        "input_template": input_template or {"kind": RAW},
        "encoder_vocab": {"type": encoder_vocab.kind, "pad_id": encoder_vocab.pad_id, "size": encoder_vocab.size,
                          "sha256": encoder_vocab.sha256,
                          "data_base64": base64.b64encode(encoder_vocab.data).decode("ascii")},
        "source": source.to_dict() if source else None,
    }
    state = {key: value.detach().to("cpu", torch.float32).contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": PERFHINT_FORMAT, PERFHINT_METADATA_KEY: json.dumps(header)})
    load_checkpoint(path)  # a checkpoint that cannot be read back is never left looking valid
    return path


def save_as_perfhint(loaded: LoadedCheckpoint, path: str | Path) -> Path:
    """Convert any loaded checkpoint (e.g. regress-lm + sidecar) to the self-describing perfhint format."""
    return save_perfhint_checkpoint(
        path, loaded.model, decoder_tokenizer=loaded.decoder_tokenizer, max_num_objs=loaded.max_num_objs,
        metrics=loaded.metrics, encoder_vocab=loaded.encoder_vocab, input_template=loaded.input_template,
        source=loaded.provenance,
    )


def _load_perfhint(path: Path, metadata: dict[str, str]) -> LoadedCheckpoint:
    try:
        header = json.loads(metadata[PERFHINT_METADATA_KEY])
        version = header["format_version"]
        if version != PERFHINT_FORMAT_VERSION:
            raise CheckpointFormatError(f"{path} is perfhint checkpoint format {version}",
                                        [f"this perfhint reads format {PERFHINT_FORMAT_VERSION}; upgrade perfhint"])
        config = RLMConfig.from_dict(header["config"])
        vocab_info = header["encoder_vocab"]
        vocab_data = base64.b64decode(vocab_info["data_base64"], validate=True)
        metrics = tuple(Metric(**metric) for metric in header["metrics"])
        decoder_tokenizer, max_num_objs = header["decoder_tokenizer"], header["max_num_objs"]
        input_template = header["input_template"]
    except (KeyError, TypeError, ValueError) as error:  # JSONDecodeError and binascii.Error are ValueErrors
        raise CheckpointFormatError(f"{path} has a damaged perfhint header",
                                    [f"{type(error).__name__}: {error}",
                                     "re-save it with save_perfhint_checkpoint"]) from None

    problems: list[str] = []
    vocab = None
    if hashlib.sha256(vocab_data).hexdigest() != vocab_info.get("sha256"):
        problems.append("encoder_vocab: embedded vocabulary bytes do not match their sha256; the file is damaged")
    try:
        vocab = EncoderVocab(vocab_info["type"], vocab_data, pad_id=vocab_info.get("pad_id"),
                             source=f"{path} (embedded)")
    except EncoderVocabError as error:
        problems.append(f"encoder_vocab: {error}")
    codec = None
    try:
        codec = codec_from_spec(decoder_tokenizer, max_num_objs)
    except ValueError as error:
        problems.append(f"decoder_tokenizer: {error}")
    if codec is not None and (codec.vocab_size, codec.decode_len) != (config.decoder_vocab_size, config.decode_len):
        problems.append(f"decoder_tokenizer gives vocab {codec.vocab_size} and decode_len {codec.decode_len}, "
                        f"config says {config.decoder_vocab_size} and {config.decode_len}")
    if vocab is not None and (vocab.size, vocab.pad_id) != (config.encoder_vocab_size, config.encoder_pad_id):
        problems.append(f"encoder vocabulary has size {vocab.size} and pad id {vocab.pad_id}, config says "
                        f"{config.encoder_vocab_size} and {config.encoder_pad_id}")
    if len(metrics) != max_num_objs:
        problems.append(f"metrics: {len(metrics)} entries for max_num_objs {max_num_objs}")
    state = _read_safetensors(path)
    problems += _layout_problems(config, state)
    if problems:
        raise CheckpointMismatchError(f"{path} is inconsistent: {len(problems)} problem(s)", problems)

    source = header.get("source")
    provenance = Provenance(path=path.resolve(), sha256=_file_sha256(path), format=PERFHINT_FORMAT, source=source)
    return LoadedCheckpoint(model=_build_model(config, state), config=config, decoder_tokenizer=codec.spec,
                            max_num_objs=max_num_objs, metrics=metrics, encoder_vocab=vocab,
                            input_template=input_template, provenance=provenance)
