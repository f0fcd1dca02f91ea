"""A model bundle on disk: a directory with manifest.json, two ONNX graphs and the encoder tokenizer.

What is hard:

- **Trust.** A bundle is a download or a colleague's directory. Loading it must never execute code
  from it: the manifest is JSON (`json.loads`, no pickle, no eval, no imports named by the file), the
  tokenizer is data for sentencepiece / HF tokenizers, and the graphs are ONNX protobufs that
  onnxruntime interprets. File names are fixed constants, never taken from the manifest, so a manifest
  cannot point outside its directory.
- **Integrity.** Every file is checked against the sha256 and size the exporter wrote into the manifest
  before anything uses it; one changed byte refuses the whole bundle with an error that names the file
  and the fix (`re-export with perfhint export`). The manifest itself is not hashed (it holds the
  hashes): integrity here means "these files are the ones exported together", not authenticity —
  that would need a signature, which we do not have.
- **One schema for writer and reader.** The exporter (model-export, torch side) builds a `Manifest`
  from these dataclasses and writes `manifest.to_json()`; the runtime parses it with
  `Manifest.from_dict`, which reports every problem at once. This module never imports torch.
- **Two ways to read it.** Typed attributes (`bundle.manifest.codec.max_num_objs`) for new code, and a
  read-only Mapping over the JSON form (`bundle.manifest["model"]["name"]`), because predict.py reads
  the few fields it needs the way they appear in the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from perfhint.calibration import BandCalibration
from perfhint.encoder_vocab import HF_TOKENIZERS, SENTENCEPIECE
from perfhint.input_template import KNOWN_KINDS

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
ENCODER_FILE = "encoder.onnx"
DECODER_STEP_FILE = "decoder_step.onnx"
TOKENIZER_FILES = {SENTENCEPIECE: "tokenizer.model", HF_TOKENIZERS: "tokenizer.json"}
GRAPH_FILES = {"encoder": ENCODER_FILE, "decoder_step": DECODER_STEP_FILE}
PRECISIONS = ("fp32", "int8")  # of one graph
# What `perfhint export --precision` offers, and the graph precisions each one writes. `int8-encoder`
# quantizes the encoder (the embedding table and the per-token work: most of the bytes and the time)
# and keeps the small decoder float: on models whose int8 decoder fails the parity gate it still gives
# most of the size and speed win (see perfhint_export/quantize.py for the measurement).
EXPORT_PRECISIONS = {
    "fp32": {"encoder": "fp32", "decoder_step": "fp32"},
    "int8": {"encoder": "int8", "decoder_step": "int8"},
    "int8-encoder": {"encoder": "int8", "decoder_step": "fp32"},
}
PURPOSES = ("default", "test", "user")
REEXPORT = "re-export with `perfhint export`"
_HASH_CHUNK = 1 << 20


def precision_of(graph_precisions: dict[str, str]) -> str | None:
    """The export precision whose graph precisions these are, or None."""
    for name, plan in EXPORT_PRECISIONS.items():
        if plan == graph_precisions:
            return name
    return None


class BundleError(Exception):
    """A bundle that cannot be used: missing, malformed, or changed since export. The message names the fix."""

    def __init__(self, headline: str, problems: list[str] | None = None) -> None:
        self.headline = headline
        self.problems = list(problems or [])
        super().__init__("\n".join([headline] + [f"  - {problem}" for problem in self.problems]))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    purpose: str  # "default" (ships with perfhint), "test" (random weights, says so) or "user"


@dataclass(frozen=True)
class EncoderTokenizer:
    kind: str  # "sentencepiece" or "hf_tokenizers"
    file: str  # always TOKENIZER_FILES[kind]
    sha256: str
    pad_id: int


@dataclass(frozen=True)
class Codec:
    decoder_tokenizer: dict[str, Any]  # spec for perfhint.numbers.codec_from_spec
    max_num_objs: int


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    meaning: str


@dataclass(frozen=True)
class Graph:
    file: str  # always GRAPH_FILES[role]
    precision: str  # "fp32" or "int8"
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Provenance:
    checkpoint: str
    checkpoint_sha256: str
    checkpoint_format: str  # "regress-lm" or "perfhint"
    exported_by: str  # "perfhint X.Y.Z"
    exported_at: str  # ISO 8601, UTC


@dataclass(frozen=True, eq=False)
class Manifest(Mapping):
    """manifest.json, typed; also a read-only Mapping over its JSON form (see the module docstring)."""

    model: ModelInfo
    encoder_tokenizer: EncoderTokenizer
    max_input_len: int
    codec: Codec
    architecture: dict[str, Any]  # RLMConfig.to_dict(): the graphs' shapes follow from it
    metrics: tuple[Metric, ...]
    input_template: dict[str, Any]
    graphs: dict[str, Graph]  # "encoder", "decoder_step"
    quantization: dict[str, Any] | None
    parity: dict[str, Any]
    provenance: Provenance
    format_version: int = FORMAT_VERSION
    calibration: BandCalibration | None = None  # p10–p90 widening fitted on held-out data (calibration.py)

    @property
    def precision(self) -> str:
        """The export precision (a key of EXPORT_PRECISIONS) the graphs' precisions add up to."""
        return precision_of({role: graph.precision for role, graph in self.graphs.items()}) or "mixed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "model": vars(self.model).copy(),
            "encoder_tokenizer": vars(self.encoder_tokenizer).copy(),
            "max_input_len": self.max_input_len,
            "codec": {"decoder_tokenizer": dict(self.codec.decoder_tokenizer), "max_num_objs": self.codec.max_num_objs},
            "architecture": dict(self.architecture),
            "metrics": [vars(metric).copy() for metric in self.metrics],
            "input_template": dict(self.input_template),
            "graphs": {role: vars(graph).copy() for role, graph in self.graphs.items()},
            "quantization": self.quantization,
            "parity": self.parity,
            "provenance": vars(self.provenance).copy(),
            **({"calibration": self.calibration.to_dict()} if self.calibration is not None else {}),
        }

    def to_json(self) -> str:
        # allow_nan=False: a NaN or inf in the parity report would make the file invalid JSON for other readers.
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @cached_property
    def _view(self) -> dict[str, Any]:
        return json.loads(self.to_json())  # a deep copy: callers cannot mutate the manifest through it

    def __getitem__(self, key: str) -> Any:
        return self._view[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view)

    def __len__(self) -> int:
        return len(self._view)

    @classmethod
    def from_dict(cls, data: Any, source: str = MANIFEST_FILE) -> "Manifest":
        """Validate a decoded manifest.json; raise one BundleError listing every problem."""
        problems: list[str] = []
        if not isinstance(data, dict):
            raise BundleError(f"{source} must hold a JSON object; {REEXPORT}", [f"got {type(data).__name__}"])
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            fix = "upgrade perfhint (pip install -U perfhint)" if newer else REEXPORT
            raise BundleError(f"{source} has format_version {version!r}; this perfhint reads {FORMAT_VERSION}: {fix}")
        reader = _Reader(data, problems)

        model = reader.obj("model", lambda r: ModelInfo(
            name=r.text("name"), version=r.text("version"), purpose=r.choice("purpose", PURPOSES)))
        encoder_tokenizer = reader.obj("encoder_tokenizer", _encoder_tokenizer)
        max_input_len = reader.integer("max_input_len", minimum=1)
        codec = reader.obj("codec", lambda r: Codec(decoder_tokenizer=r.mapping("decoder_tokenizer"),
                                                    max_num_objs=r.integer("max_num_objs", minimum=1)))
        architecture = reader.mapping("architecture")
        metrics = tuple(reader.items("metrics", lambda r: Metric(
            name=r.text("name"), unit=r.text("unit", allow_empty=True), meaning=r.text("meaning", allow_empty=True))))
        input_template = reader.mapping("input_template")
        if input_template and input_template.get("kind") not in KNOWN_KINDS:
            problems.append(f"input_template.kind: {input_template.get('kind')!r} is not one this perfhint knows "
                            f"({list(KNOWN_KINDS)}); upgrade perfhint")
        graphs = reader.obj("graphs", _graphs)
        calibration = None
        if data.get("calibration") is not None and codec is not None:
            try:
                calibration = BandCalibration.from_dict(data["calibration"], codec.max_num_objs)
            except ValueError as error:
                problems.append(f"calibration: {error}; recalibrate with `perfhint train calibrate`")
        quantization = data.get("quantization")
        if quantization is not None and not isinstance(quantization, dict):
            problems.append(f"quantization: must be an object or null, got {type(quantization).__name__}")
        parity = reader.mapping("parity")
        if parity and parity.get("passed") is not True:
            problems.append("parity.passed: is not true; the exporter never writes a bundle that failed parity")
        provenance = reader.obj("provenance", lambda r: Provenance(
            checkpoint=r.text("checkpoint"), checkpoint_sha256=r.text("checkpoint_sha256"),
            checkpoint_format=r.text("checkpoint_format"), exported_by=r.text("exported_by"),
            exported_at=r.text("exported_at")))
        if codec is not None and metrics and len(metrics) != codec.max_num_objs:
            problems.append(f"metrics: {len(metrics)} entries for max_num_objs {codec.max_num_objs}; one per objective")
        if isinstance(graphs, dict) and set(graphs) == set(GRAPH_FILES) and precision_of(
                {role: graph.precision for role, graph in graphs.items()}) is None:
            problems.append("graphs: this mix of graph precisions is not one the exporter writes "
                            f"({', '.join(EXPORT_PRECISIONS)})")
        for key in sorted(set(data) - set(_TOP_LEVEL_KEYS)):
            problems.append(f"{key}: unknown key (format_version {FORMAT_VERSION} has {list(_TOP_LEVEL_KEYS)})")
        if problems:
            raise BundleError(f"{source} is not a valid perfhint bundle manifest; {REEXPORT}", problems)
        return cls(model=model, encoder_tokenizer=encoder_tokenizer, max_input_len=max_input_len, codec=codec,
                   architecture=architecture, metrics=metrics, input_template=input_template, graphs=graphs,
                   quantization=quantization, parity=parity, provenance=provenance, format_version=version,
                   calibration=calibration)


_TOP_LEVEL_KEYS = ("format_version", "model", "encoder_tokenizer", "max_input_len", "codec", "architecture",
                   "metrics", "input_template", "graphs", "quantization", "parity", "provenance", "calibration")


class _Reader:
    """Reads typed fields of one JSON object, appending a problem (with its dotted path) for each bad one."""

    def __init__(self, data: dict[str, Any], problems: list[str], where: str = "") -> None:
        self.data, self.problems, self.where = data, problems, where

    def _get(self, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        value = self.data.get(key)
        if key not in self.data:
            self.problems.append(f"{self.where}{key}: missing")
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):  # JSON true is not 1
            self.problems.append(f"{self.where}{key}: must be {what}, got {value!r}")
            return None
        return value

    def text(self, key: str, allow_empty: bool = False) -> str:
        value = self._get(key, str, "a string")
        if value == "" and not allow_empty:
            self.problems.append(f"{self.where}{key}: must not be empty")
        return value

    def integer(self, key: str, minimum: int = 0) -> int:
        value = self._get(key, int, f"an integer >= {minimum}")
        if value is not None and value < minimum:
            self.problems.append(f"{self.where}{key}: must be >= {minimum}, got {value}")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self._get(key, str, f"one of {list(choices)}")
        if value is not None and value not in choices:
            self.problems.append(f"{self.where}{key}: must be one of {list(choices)}, got {value!r}")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        return self._get(key, dict, "an object") or {}

    def obj(self, key: str, build):
        value = self._get(key, dict, "an object")
        if value is None:
            return None
        before = len(self.problems)
        built = build(_Reader(value, self.problems, f"{self.where}{key}."))
        return built if len(self.problems) == before else None

    def items(self, key: str, build) -> list:
        value = self._get(key, list, "a non-empty list")
        if not value:
            if value == []:
                self.problems.append(f"{self.where}{key}: must not be empty")
            return []
        built = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                self.problems.append(f"{self.where}{key}[{index}]: must be an object, got {item!r}")
                continue
            built.append(build(_Reader(item, self.problems, f"{self.where}{key}[{index}].")))
        return built


def _encoder_tokenizer(reader: _Reader) -> EncoderTokenizer:
    kind = reader.choice("kind", tuple(TOKENIZER_FILES))
    file_name = reader.text("file")
    if kind in TOKENIZER_FILES and file_name is not None and file_name != TOKENIZER_FILES[kind]:
        reader.problems.append(f"{reader.where}file: must be {TOKENIZER_FILES[kind]!r} for kind {kind!r}, "
                               f"got {file_name!r}")
    return EncoderTokenizer(kind=kind, file=file_name, sha256=_sha(reader, "sha256"),
                            pad_id=reader.integer("pad_id", minimum=0))


def _graphs(reader: _Reader) -> dict[str, Graph]:
    graphs = {}
    for role, file_name in GRAPH_FILES.items():
        graph = reader.obj(role, lambda r, file_name=file_name: Graph(
            file=_fixed_name(r, file_name), precision=r.choice("precision", PRECISIONS), sha256=_sha(r, "sha256"),
            bytes=r.integer("bytes", minimum=1)))
        if graph is not None:
            graphs[role] = graph
    for role in sorted(set(reader.data) - set(GRAPH_FILES)):
        reader.problems.append(f"{reader.where}{role}: unknown graph; a bundle has {list(GRAPH_FILES)}")
    return graphs


def _fixed_name(reader: _Reader, expected: str) -> str:
    value = reader.text("file")
    if value is not None and value != expected:
        reader.problems.append(f"{reader.where}file: must be {expected!r}, got {value!r}")
    return value


def _sha(reader: _Reader, key: str) -> str:
    value = reader.text(key)
    if value and (len(value) != 64 or any(char not in "0123456789abcdef" for char in value)):
        reader.problems.append(f"{reader.where}{key}: must be 64 lowercase hex digits, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: every file matched its sha256 when it was loaded."""

    path: Path
    manifest: Manifest

    @property
    def encoder_path(self) -> Path:
        return self.path / ENCODER_FILE

    @property
    def decoder_step_path(self) -> Path:
        return self.path / DECODER_STEP_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILES[self.manifest.encoder_tokenizer.kind]

    @property
    def precision(self) -> str:
        return self.manifest.precision

    @property
    def sha256(self) -> str:
        """One id for the whole bundle (cache keys): the hash of the manifest, which holds every file's hash."""
        return hashlib.sha256(self.manifest.to_json().encode("utf-8")).hexdigest()


def read_manifest(path: str | Path) -> Manifest:
    """Parse and validate `path`/manifest.json without checking the other files (for `bundle info`)."""
    path = Path(path)
    if not path.is_dir():
        what = "is a file, not a bundle directory" if path.exists() else "does not exist"
        raise BundleError(f"Model bundle not found at {path}: it {what}. Set perfhint.bundlePath to a bundle "
                          f"directory, or run `perfhint export` to make one")
    manifest_path = path / MANIFEST_FILE
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(f"{path} has no {MANIFEST_FILE}, so it is not a perfhint bundle; {REEXPORT}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BundleError(f"cannot read {manifest_path}: {error}; {REEXPORT}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        raise BundleError(f"{manifest_path} is not valid JSON ({error}); {REEXPORT}") from None
    return Manifest.from_dict(data, source=str(manifest_path))


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-standard JSON constant {name}")


def verify_files(path: str | Path, manifest: Manifest) -> list[str]:
    """One sentence per file that is missing or differs from the manifest (empty list: all good)."""
    path = Path(path)
    expected = {graph.file: (graph.sha256, graph.bytes) for graph in manifest.graphs.values()}
    expected[manifest.encoder_tokenizer.file] = (manifest.encoder_tokenizer.sha256, None)
    problems = []
    for file_name, (sha256, size) in expected.items():
        file_path = path / file_name
        if not file_path.is_file():
            problems.append(f"{file_name}: missing")
            continue
        actual_size = file_path.stat().st_size
        if size is not None and actual_size != size:
            problems.append(f"{file_name}: {actual_size} bytes, the manifest says {size} (the file was changed)")
        elif sha256_file(file_path) != sha256:
            problems.append(f"{file_name}: sha256 differs from the manifest (the file was changed or damaged)")
    return problems


def load_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle directory; raise BundleError naming every bad file and the fix."""
    path = Path(path)
    manifest = read_manifest(path)
    problems = verify_files(path, manifest)
    if problems:
        names = [problem.split(":", 1)[0] for problem in problems]
        verb = "does" if len(names) == 1 else "do"
        # The first line alone must say which file and what to do: the language server shows only that line.
        raise BundleError(f"refusing the model bundle at {path}: {', '.join(names)} {verb} not match "
                          f"{MANIFEST_FILE}; {REEXPORT}", problems)
    return Bundle(path=path, manifest=manifest)


def finite_json(value: Any) -> Any:
    """A copy of `value` with NaN/inf floats replaced by strings, so a report can go into manifest.json."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(key): finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value
