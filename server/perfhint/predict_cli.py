"""`perfhint predict --bundle DIR --jsonl IN --out OUT`: model predictions for JSON Lines records.

Each input line is one of two records:

    {"id": ..., "text": "..."}          the model input, byte for byte (no template is applied)
    {"id": ..., "language": "python" | "c" | "cpp", "region_kind": "function" | "script" | "program" |
     "triton_kernel", "code": "...", "context": {"args": "(1024,)", "gpu": "H100", ...}}
                                        a region, formatted into model text exactly as the editor formats
                                        one: the context values are the texts a `# perfhint:` comment
                                        would hold (a JSON number or boolean is taken as its Python
                                        literal), parsed by the same safe literal reader, defaults (the
                                        target GPU of a Triton kernel, --target-gpu) filled in the same
                                        way, and rendered with the bundle's input template
                                        (predict.model_input, the editor's own function).

Each output line answers one input record, in input order:

    {"id": ..., "predictions": [{"metric", "unit", "median", "p10", "p90", "special_fraction"}, ...],
     "n_tokens": ..., "truncated": ...}                    (+ "greedy": [values] with --greedy)
    {"id": ..., "error": "line 3: ..."}                    (a record that could not be predicted)

What is hard:
- **One bad record must not cost the others.** A line that is not JSON, not an object, or lacks a
  string `text` gets an error line of its own (with `id` when it had one, else null) and the run
  goes on; only a problem with the run itself (bundle missing or tampered with, unreadable input,
  unwritable output) stops it, with one line on stderr that names the fix and exit status 2. Exit
  status 1 means the output is complete but some records are error lines.
- **The output must stay valid JSON.** Samples can decode to NaN, ±inf or "INVALID", which
  `json.dumps` would write as the non-JSON tokens NaN/Infinity; they are written as the strings
  "nan", "inf", "-inf", "INVALID" instead, and a summary with no finite sample has null quantiles.
- **Streaming.** Records are read and answered in chunks (CHUNK_RECORDS), so `-` (stdin/stdout) works
  in a pipe and memory stays flat on large files; within a chunk the runtime batches texts of similar
  length. A record's numbers do not depend on its chunk (runtime.py decodes every input from its own
  seeded stream).

`record_to_text` is the one place that turns a record into model text: records in other shapes
(e.g. code + context rendered through `perfhint.input_template`) are added there.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

EXIT_OK = 0
EXIT_RECORD_ERRORS = 1  # the output is complete, but some of its lines are error lines
EXIT_USER_ERROR = 2
CHUNK_RECORDS = 32  # records per runtime call: enough to batch similar lengths, small enough to stream
STDIO = "-"


class RecordError(ValueError):
    """A record that cannot be turned into model text; the message says what is wrong with it."""


def _int_at_least(minimum: int, meaning: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {meaning}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {meaning}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "an integer >= 0")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", required=True, type=Path, metavar="DIR", help="model bundle directory")
    parser.add_argument("--jsonl", required=True, metavar="IN",
                        help='JSON Lines input, one {"id": ..., "text": ...} per line ("-" for stdin)')
    parser.add_argument("--out", required=True, metavar="OUT", help='JSON Lines output ("-" for stdout)')
    parser.add_argument("--samples", type=_positive_int, default=32, help="samples per record (default 32)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--greedy", action="store_true",
                        help='also decode the argmax path and write its values as "greedy"')
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="onnxruntime intra-op threads (default: one per physical core)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="cpu (default) or gpu (needs onnxruntime-gpu)")
    parser.add_argument("--target-gpu", default=None,
                        help="GPU assumed for code records of Triton kernels without a gpu in their context "
                             "(default H100, as the editor's perfhint.targetGpu)")
    parser.epilog = ("exit status: 0 all records predicted, 1 some records are error lines, "
                     "2 nothing predicted (bad bundle, input or output)")


# ----------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line number in the input
    id: Any  # echoed back as given (null when the line had none)
    text: str | None  # the model text, or None if the record is bad
    error: str | None = None
    region: str | None = None  # language/region_kind of a code record; None: the text's header says it


def record_to_text(record: dict[str, Any], bundle: Any = None, settings: Any = None) -> str:
    """The model input text of one decoded record; RecordError if the record has none."""
    if "code" in record:
        return code_record_text(record, bundle, settings)
    if "text" not in record:
        raise RecordError('missing "text" (the model input text), or "code" + "language" + "region_kind"')
    text = record["text"]
    if not isinstance(text, str):
        raise RecordError(f'"text" must be a string, got {_json_type(text)}')
    return text


CODE_LANGUAGES = ("python", "c", "cpp")
REGION_KINDS = ("function", "script", "program", "triton_kernel")


def code_record_text(record: dict[str, Any], bundle: Any, settings: Any = None) -> str:
    """A code + context record as the editor's model text (see the module docstring)."""
    from perfhint.context import EMPTY_CONTEXT, parse_directive
    from perfhint.input_template import TemplateError
    from perfhint.predict import model_input
    from perfhint.regions import Region
    from perfhint.settings import Settings

    code, language, kind = record.get("code"), record.get("language"), record.get("region_kind")
    if not isinstance(code, str):
        raise RecordError(f'"code" must be a string, got {_json_type(code)}')
    if language not in CODE_LANGUAGES:
        raise RecordError(f'"language" must be one of {", ".join(CODE_LANGUAGES)}, got {language!r}')
    if kind not in REGION_KINDS:
        raise RecordError(f'"region_kind" must be one of {", ".join(REGION_KINDS)}, got {kind!r}')
    context_json = record.get("context") or {}
    if not isinstance(context_json, dict):
        raise RecordError(f'"context" must be an object of key: value text, got {_json_type(context_json)}')
    pairs = []
    for key, value in sorted(context_json.items()):
        if not (isinstance(key, str) and key.isidentifier()):
            raise RecordError(f'context key {key!r} is not a name like "args" or "gpu"')
        if isinstance(value, bool) or isinstance(value, (int, float)):
            value = repr(value)
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            raise RecordError(f'context["{key}"] must be the one-line text of a literal, e.g. "(1024,)", '
                              f'got {_json_type(value)}')
        pairs.append(f"{key}={value.strip()}")
    context = (parse_directive("# perfhint: " + " ".join(pairs)) if pairs else None) or EMPTY_CONTEXT
    region = Region(key=f"{kind}:record", name="record", kind=kind, language=language, line=0, hint_lines=(0,),
                    start_line=0, end_line=code.count("\n"), code=code, context=context)
    try:
        text, _ = model_input(region, bundle, settings or Settings())
    except TemplateError as error:
        raise RecordError(str(error)) from None
    return text


def _json_type(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", list: "an array",
             dict: "an object"}
    return names.get(type(value), type(value).__name__)


def parse_record(line_number: int, raw: bytes, bundle: Any = None, settings: Any = None) -> Record:
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Record(line_number, None, None, f"line {line_number}: not UTF-8 ({error.reason} at byte {error.start})")
    try:
        data = json.loads(decoded)
    except ValueError as error:
        return Record(line_number, None, None, f"line {line_number}: not JSON ({error})")
    if not isinstance(data, dict):
        return Record(line_number, None, None, f"line {line_number}: expected a JSON object, got {_json_type(data)}")
    record_id = data.get("id")
    try:
        text = record_to_text(data, bundle, settings)  # validates language and region_kind of code records
        region = None  # a text record's header says its region
        if "code" in data:
            from perfhint.input_template import region_name

            region = region_name(data["language"], data["region_kind"])
        return Record(line_number, record_id, text, region=region)
    except RecordError as error:
        return Record(line_number, record_id, None, f"line {line_number}: {error}")


def read_records(stream: IO[bytes], bundle: Any = None, settings: Any = None) -> Iterator[Record]:
    """Every non-blank line of `stream` as a Record (bad ones carry their error); `bundle` formats code records."""
    for line_number, raw in enumerate(stream, start=1):
        if raw.strip():
            yield parse_record(line_number, raw.rstrip(b"\r\n"), bundle, settings)


# ----------------------------------------------------------------------------------------------- output


def json_number(value: Any) -> Any:
    """A sample value or summary statistic as valid JSON: NaN/±inf/INVALID as strings, None as null."""
    if isinstance(value, str) or value is None:
        return value
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def prediction_line(record_id: Any, prediction: Any, metrics: Any, greedy: bool) -> dict[str, Any]:
    predictions = []
    for metric, summary in zip(metrics, prediction.objectives):
        predictions.append({"metric": metric.name, "unit": metric.unit, "median": json_number(summary.median),
                            "p10": json_number(summary.p10), "p90": json_number(summary.p90),
                            "special_fraction": summary.special_fraction})
    line = {"id": record_id, "predictions": predictions, "n_tokens": prediction.n_tokens,
            "truncated": prediction.truncated}
    if greedy:
        line["greedy"] = [json_number(value) for value in prediction.greedy]
    return line


def error_line(record_id: Any, message: str) -> dict[str, Any]:
    return {"id": record_id, "error": message}


def _write(out: IO[str], line: dict[str, Any]) -> None:
    out.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")


# ----------------------------------------------------------------------------------------------- run


def _chunks(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _one_line(error: BaseException) -> str:
    lines = [line.strip().removeprefix("- ").strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(error).__name__


def load_predictor(bundle: Path, *, device: str, threads: int | None) -> Any:
    """The runtime Predictor, or raise one of the errors `run` reports as one line (exit 2)."""
    from perfhint.runtime import Predictor

    return Predictor.from_bundle_path(bundle, device=device, threads=threads)


def predict_records(predictor: Any, records: Iterator[Record], out: IO[str], *, samples: int, seed: int,
                    greedy: bool) -> tuple[int, int]:
    """Write one line per record to `out`; returns (records, error lines)."""
    total = errors = 0
    for chunk in _chunks(records, CHUNK_RECORDS):
        good = [record for record in chunk if record.error is None]
        results: dict[int, Any] = {}
        failure = None
        if good:
            try:
                predictions = predictor.predict_texts([record.text for record in good], samples=samples, seed=seed,
                                                      greedy=greedy, regions=[record.region for record in good])
                results = {record.line: prediction for record, prediction in zip(good, predictions)}
            except Exception as error:  # a runtime failure becomes these records' error lines, never a crash
                failure = f"prediction failed: {type(error).__name__}: {_one_line(error)}"
        for record in chunk:
            total += 1
            if record.error is not None or record.line not in results:
                errors += 1
                _write(out, error_line(record.id, record.error or f"line {record.line}: {failure}"))
            else:
                _write(out, prediction_line(record.id, results[record.line], predictor.metrics, greedy))
        out.flush()
    return total, errors


def _record_settings(args: argparse.Namespace) -> Any:
    """The editor's Settings for formatting code records (only the target GPU is a flag); a str on error."""
    from perfhint.settings import Settings, merge

    target_gpu = getattr(args, "target_gpu", None)
    if target_gpu is None:
        return Settings()
    settings, problems = merge(Settings(), {"targetGpu": target_gpu}, source="--target-gpu")
    return "; ".join(problems) if problems else settings


def run(args: argparse.Namespace) -> int:
    from perfhint.bundle import BundleError
    from perfhint.runtime import RuntimeSetupError

    try:
        predictor = load_predictor(args.bundle, device=args.device, threads=args.threads)
    except (BundleError, RuntimeSetupError) as error:
        print(f"perfhint predict: {_one_line(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    with ExitStack() as stack:
        try:
            source = sys.stdin.buffer if args.jsonl == STDIO else stack.enter_context(open(args.jsonl, "rb"))
        except OSError as error:
            print(f"perfhint predict: cannot read --jsonl {args.jsonl}: {error.strerror}; pass a JSON Lines file "
                  f"or - for stdin", file=sys.stderr)
            return EXIT_USER_ERROR
        try:
            out = sys.stdout if args.out == STDIO else stack.enter_context(open(args.out, "w", encoding="utf-8"))
        except OSError as error:
            print(f"perfhint predict: cannot write --out {args.out}: {error.strerror}; pass a writable path "
                  f"or - for stdout", file=sys.stderr)
            return EXIT_USER_ERROR
        try:
            settings = _record_settings(args)
            if isinstance(settings, str):
                print(f"perfhint predict: {settings}", file=sys.stderr)
                return EXIT_USER_ERROR
            records = read_records(source, predictor.bundle, settings)
            total, errors = predict_records(predictor, records, out, samples=args.samples,
                                            seed=args.seed, greedy=args.greedy)
        except OSError as error:  # the input vanished or the output filled up mid-run
            print(f"perfhint predict: I/O error ({error}); the output is incomplete: check the disk and rerun",
                  file=sys.stderr)
            return EXIT_USER_ERROR
    if errors:
        print(f"perfhint predict: {errors} of {total} record(s) could not be predicted; see their \"error\" lines",
              file=sys.stderr)
        return EXIT_RECORD_ERRORS
    return EXIT_OK
