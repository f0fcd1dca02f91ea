"""The sidecar JSON that supplies what a regress-lm checkpoint does not store.

What is hard: regress-lm's `.pt` holds weights and optimizer state only (REGRESS_LM_FACTS §5). The
decoder tokenizer (IEEE vs P10, digit counts, which special values in which order, append-pad), the
number of objectives, max_input_len and the encoder vocabulary cannot be recovered from the shapes
(§3.5), and most wrong guesses still load and decode plausible-looking numbers. So the sidecar is
parsed strictly here (unknown keys are errors: a typo must not silently fall back to a default), every
problem is reported in one `SidecarError`, and checkpoint.py then validates it against the shapes.

Schema (paths relative to the sidecar file):
    {"format": "regress-lm", "encoder_type": "vanilla",
     "encoder_vocab": {"type": "sentencepiece" | "hf_tokenizers", "file": "...", "pad_id": optional int},
     "max_input_len": 128, "max_num_objs": 1,
     "decoder_tokenizer": {"type": "ieee", "base": 10, "num_exponent_digits": 1, "num_mantissa_digits": 4,
                           "special_values": null | "default" | ["NAN", ...], "append_pad": false}
                        | {"type": "p10", "num_digits": 4, "exponent_range": 10,
                           "special_values": ..., "append_pad": false},
     "metrics": [{"name": "value", "unit": ""}],          # one per objective
     "architecture": {"decoder_nhead": 8, ...},            # optional; checked against the shapes
     "input_template": {"kind": "raw"}}                    # optional (default raw); see perfhint/input_template.py
For "encoder_type": "t5gemma" (regress-lm's T5GEMMA encoder, see perfhint_export/t5gemma.py) there is no
"encoder_vocab": the tokenizer and the encoder config come from
     "hf_model_dir": "t5gemma-2-270m-270m",                 # local HF model directory: config.json + tokenizer
     "encoder_full_attention": false                        # optional: regress-lm's "all layers global" option
Omitted decoder_tokenizer parameters take regress-lm's defaults (perfhint.numbers.normalise_spec owns
them); the parsed spec is always complete, with special_values expanded to the ordered list of keys.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfhint.encoder_vocab import VOCAB_TYPES
from perfhint.input_template import KNOWN_KINDS, RAW
from perfhint.numbers import normalise_spec
from perfhint_export.errors import SidecarError

REGRESS_LM_FORMAT = "regress-lm"
SUPPORTED_ENCODER_TYPES = ("vanilla", "t5gemma")
KNOWN_ENCODER_TYPES = ("vanilla", "performer", "mamba", "t5gemma")  # regress-lm's EncoderType values

ARCHITECTURE_KEYS = (  # RLMConfig fields a sidecar may state; all but decoder_nhead are also read from the shapes
    "d_model", "num_encoder_layers", "num_decoder_layers", "encoder_nhead", "decoder_nhead",
    "encoder_dim_feedforward", "decoder_dim_feedforward",
)
TOP_LEVEL_KEYS = ("format", "encoder_type", "encoder_vocab", "max_input_len", "max_num_objs",
                  "decoder_tokenizer", "metrics", "architecture", "input_template", "hf_model_dir",
                  "encoder_full_attention")
REQUIRED_KEYS = ("format", "encoder_vocab", "max_input_len", "max_num_objs", "decoder_tokenizer", "metrics")


@dataclass(frozen=True)
class Metric:
    """What objective i of the model predicts, e.g. Metric("peak_memory", "MiB")."""

    name: str
    unit: str = ""
    meaning: str = ""  # what is measured, for the hover; a regress-lm sidecar may leave it out


@dataclass(frozen=True)
class EncoderVocabRef:
    """Where the encoder vocabulary lives: `file` is absolute (resolved against the sidecar's folder)."""

    type: str
    file: Path
    pad_id: int | None = None


@dataclass(frozen=True)
class Sidecar:
    encoder_type: str
    encoder_vocab: EncoderVocabRef | None  # None for t5gemma: the tokenizer comes from hf_model_dir
    max_input_len: int
    max_num_objs: int
    decoder_tokenizer: dict[str, Any]  # complete spec for perfhint.numbers.codec_from_spec
    metrics: tuple[Metric, ...]
    architecture: dict[str, int] = field(default_factory=dict)
    input_template: dict[str, Any] = field(default_factory=lambda: {"kind": RAW})
    path: Path | None = None
    hf_model_dir: Path | None = None  # t5gemma only: absolute
    encoder_full_attention: bool = False  # t5gemma only


def load_sidecar(path: str | Path) -> Sidecar:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SidecarError(f"sidecar not found: {path}", ["pass an existing file with --config SIDECAR.json"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SidecarError(f"sidecar {path} is not valid JSON", [str(error)]) from None
    return dataclasses.replace(parse_sidecar(data, base_dir=path.parent, source=str(path)), path=path.resolve())


def parse_sidecar(data: Any, base_dir: Path, source: str = "<sidecar>") -> Sidecar:
    """Validate a decoded sidecar; raise one SidecarError listing every problem."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise SidecarError(f"sidecar {source} must be a JSON object", [f"got {type(data).__name__}"])
    for key in sorted(set(data) - set(TOP_LEVEL_KEYS)):
        problems.append(f"{key}: unknown key; the known keys are {list(TOP_LEVEL_KEYS)}")
    hf_encoder = str(data.get("encoder_type", "")).lower() == "t5gemma"
    for key in REQUIRED_KEYS:
        if key not in data and not (hf_encoder and key == "encoder_vocab"):
            problems.append(f"{key}: missing; it is required (see the schema in perfhint_export/sidecar.py)")

    format_name = data.get("format")
    if "format" in data and format_name != REGRESS_LM_FORMAT:
        hint = "; perfhint checkpoints carry their config and need no sidecar" if format_name == "perfhint" else ""
        problems.append(f"format: {format_name!r} is not {REGRESS_LM_FORMAT!r}{hint}")

    encoder_type = _encoder_type(data.get("encoder_type", "vanilla"), problems)
    max_input_len = _positive_int(data, "max_input_len", problems)
    max_num_objs = _positive_int(data, "max_num_objs", problems)
    encoder_vocab = _encoder_vocab(data.get("encoder_vocab"), base_dir, problems) if "encoder_vocab" in data else None
    hf_model_dir, full_attention = _hf_encoder(data, encoder_type, base_dir, problems)
    decoder_tokenizer = _decoder_tokenizer(data["decoder_tokenizer"], problems) if "decoder_tokenizer" in data else {}
    metrics = _metrics(data.get("metrics"), max_num_objs, problems) if "metrics" in data else ()
    architecture = _architecture(data.get("architecture", {}), problems)
    input_template = _input_template(data.get("input_template", {"kind": RAW}), problems)

    if problems:
        raise SidecarError(f"invalid sidecar {source}", problems)
    return Sidecar(
        encoder_type=encoder_type, encoder_vocab=encoder_vocab, max_input_len=max_input_len,
        max_num_objs=max_num_objs, decoder_tokenizer=decoder_tokenizer, metrics=metrics,
        architecture=architecture, input_template=input_template, hf_model_dir=hf_model_dir,
        encoder_full_attention=full_attention,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(data: dict, key: str, problems: list[str], where: str = "") -> int:
    value = data.get(key)
    if key in data and not (_is_int(value) and value > 0):
        problems.append(f"{where}{key}: must be a positive integer, got {value!r}")
    return value


def _encoder_type(value: Any, problems: list[str]) -> str:
    name = value.lower() if isinstance(value, str) else value
    if name in SUPPORTED_ENCODER_TYPES:
        return name
    if name in KNOWN_ENCODER_TYPES:
        problems.append(f"encoder_type: {value!r} checkpoints are not supported yet; "
                        f"only {list(SUPPORTED_ENCODER_TYPES)}")
    else:
        problems.append(f"encoder_type: unknown {value!r}; regress-lm's encoder types are {list(KNOWN_ENCODER_TYPES)}")
    return str(name)


def _hf_encoder(data: dict, encoder_type: str, base_dir: Path, problems: list[str]) -> tuple[Path | None, bool]:
    """hf_model_dir / encoder_full_attention: required / allowed for t5gemma only."""
    value, full_attention = data.get("hf_model_dir"), data.get("encoder_full_attention", False)
    if encoder_type != "t5gemma":
        for key in ("hf_model_dir", "encoder_full_attention"):
            if key in data:
                problems.append(f"{key}: only for encoder_type 't5gemma'; remove it")
        return None, False
    if "encoder_vocab" in data:
        problems.append("encoder_vocab: a t5gemma encoder uses the tokenizer in hf_model_dir (as regress-lm's "
                        "HuggingFaceVocab does); remove encoder_vocab")
    if not isinstance(full_attention, bool):
        problems.append(f"encoder_full_attention: must be true or false, got {full_attention!r}")
        full_attention = False
    if not isinstance(value, str) or not value:
        problems.append(f"hf_model_dir: encoder_type 't5gemma' needs the local Hugging Face model directory "
                        f"(config.json + tokenizer files), relative to the sidecar; got {value!r}")
        return None, full_attention
    resolved = (base_dir / value).resolve()
    if not (resolved / "config.json").is_file():
        problems.append(f"hf_model_dir: {value!r} resolves to {resolved}, which has no config.json; point it at the "
                        f"Hugging Face model directory the encoder came from (perfhint never downloads it)")
    return resolved, full_attention


def _encoder_vocab(value: Any, base_dir: Path, problems: list[str]) -> EncoderVocabRef | None:
    if not isinstance(value, dict):
        problems.append(f'encoder_vocab: must be an object like {{"type": "sentencepiece", "file": "spm.model"}}, '
                        f"got {value!r}")
        return None
    for key in sorted(set(value) - {"type", "file", "pad_id"}):
        problems.append(f"encoder_vocab.{key}: unknown key; the known keys are ['type', 'file', 'pad_id']")
    vocab_type = value.get("type")
    if vocab_type not in VOCAB_TYPES:
        problems.append(f"encoder_vocab.type: {vocab_type!r} is not one of {list(VOCAB_TYPES)}")
    file_name = value.get("file")
    resolved = None
    if not isinstance(file_name, str) or not file_name:
        problems.append(f"encoder_vocab.file: must be a path relative to the sidecar, got {file_name!r}")
    else:
        resolved = (base_dir / file_name).resolve()
        if not resolved.is_file():
            problems.append(f"encoder_vocab.file: {file_name!r} resolves to {resolved}, which does not exist; "
                            f"paths are relative to the sidecar's folder")
    pad_id = value.get("pad_id")
    if pad_id is not None and not (_is_int(pad_id) and pad_id >= 0):
        problems.append(f"encoder_vocab.pad_id: must be a non-negative integer or absent, got {pad_id!r}")
    return EncoderVocabRef(type=vocab_type, file=resolved, pad_id=pad_id)


def _decoder_tokenizer(value: Any, problems: list[str]) -> dict[str, Any]:
    """perfhint.numbers owns the spec (keys, defaults, ranges); this only files its complaint under the field."""
    try:
        return normalise_spec(value)
    except ValueError as error:
        problems.append(f"decoder_tokenizer: {error}")
        return {}


def _metrics(value: Any, max_num_objs: Any, problems: list[str]) -> tuple[Metric, ...]:
    if not isinstance(value, list) or not value:
        problems.append(f'metrics: must be a non-empty list like [{{"name": "value", "unit": ""}}], got {value!r}')
        return ()
    metrics = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            problems.append(f'metrics[{index}]: must be {{"name": non-empty string, "unit": string}}, got {item!r}')
            continue
        for key in sorted(set(item) - {"name", "unit", "meaning"}):
            problems.append(f"metrics[{index}].{key}: unknown key; the known keys are ['meaning', 'name', 'unit']")
        unit, meaning = item.get("unit", ""), item.get("meaning", "")
        if not isinstance(unit, str):
            problems.append(f"metrics[{index}].unit: must be a string, got {unit!r}")
        if not isinstance(meaning, str):
            problems.append(f"metrics[{index}].meaning: must be a string, got {meaning!r}")
        metrics.append(Metric(item["name"], unit if isinstance(unit, str) else "",
                              meaning if isinstance(meaning, str) else ""))
    names = [metric.name for metric in metrics]
    if len(set(names)) != len(names):
        problems.append(f"metrics: names must be distinct, got {names}")
    if _is_int(max_num_objs) and len(value) != max_num_objs:
        problems.append(f"metrics: {len(value)} entries but max_num_objs is {max_num_objs}; "
                        f"give one metric per objective")
    return tuple(metrics)


def _architecture(value: Any, problems: list[str]) -> dict[str, int]:
    if not isinstance(value, dict):
        problems.append(f"architecture: must be an object of overrides like {{\"decoder_nhead\": 8}}, got {value!r}")
        return {}
    for key in sorted(set(value) - set(ARCHITECTURE_KEYS)):
        problems.append(f"architecture.{key}: unknown key; the known keys are {list(ARCHITECTURE_KEYS)}")
    for key in sorted(set(value) & set(ARCHITECTURE_KEYS)):
        _positive_int(value, key, problems, where="architecture.")
    return {key: value[key] for key in ARCHITECTURE_KEYS if key in value}


def _input_template(value: Any, problems: list[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("kind") not in KNOWN_KINDS:
        problems.append(f'input_template: must be an object like {{"kind": "{RAW}"}} with kind one of '
                        f"{list(KNOWN_KINDS)}, got {value!r}; a model trained on plain text uses {RAW!r}")
        return {}
    return dict(value)
