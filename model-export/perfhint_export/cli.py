"""`perfhint export CHECKPOINT [--config SIDECAR.json] --out DIR [--precision fp32|int8|int8-encoder]
[--keep-float auto|ROLE:LAYER,...] [--name N] [--purpose P]`.

What is hard: every way this can go wrong on user input — a missing file, a pickle we refuse to load, a
sidecar that disagrees with the weights, a model whose int8 graphs fail parity — must end as one line on
stderr that says what to do, and exit code 2, never a traceback. The typed errors below carry every
problem; they are folded into that one line (`; `-separated) so a script's log keeps them together.
Anything else is a bug in perfhint and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perfhint.bundle import EXPORT_PRECISIONS, PURPOSES, BundleError
from perfhint.encoder_vocab import EncoderVocabError

EXIT_USER_ERROR = 2


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="regress-lm .pt/.safetensors (with --config), a perfhint "
                        ".safetensors, or a Hugging Face T5Gemma seq2seq model directory (numbers written as text)")
    parser.add_argument("--config", type=Path, default=None, metavar="SIDECAR.json",
                        help="sidecar describing a regress-lm checkpoint (tokenizers, max_num_objs, max_input_len)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="bundle directory to write (or replace)")
    parser.add_argument("--precision", choices=list(EXPORT_PRECISIONS), default="int8",
                        help="graph precision (default int8: ~4x smaller, 1.1-1.5x faster on CPU; int8-encoder "
                             "keeps the decoder float; all gated on parity like fp32)")
    parser.add_argument("--keep-float", default=None, metavar="auto|ROLE:LAYER,...", type=_keep_float,
                        help="leave these layers of the int8 graphs in float, e.g. encoder:l0,decoder_step:generator_wt; "
                             "'auto' searches for the fewest that pass the parity gate (perfhint_export/float_fallback.py)")
    parser.add_argument("--name", default=None, help="model name in the manifest (default: the checkpoint's file name)")
    parser.add_argument("--purpose", choices=PURPOSES, default="user", help="what the bundle is for (default user)")


def _keep_float(text: str) -> str | dict[str, list[str]]:
    if text == "auto":
        return text
    kept: dict[str, list[str]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, layer = item.partition(":")
        if not sep or not role or not layer:
            raise argparse.ArgumentTypeError(f"{item!r} is not ROLE:LAYER (e.g. encoder:l0); or pass auto")
        kept.setdefault(role, []).append(layer)
    if not kept:
        raise argparse.ArgumentTypeError("name at least one ROLE:LAYER, or pass auto")
    return kept


def _one_line(error: BaseException) -> str:
    lines = [line.strip().removeprefix("- ").strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(error).__name__


def run(args: argparse.Namespace) -> int:
    # Imported here: argparse --help must not pay for torch, and import errors of the extra are the CLI's job.
    from perfhint_export.bundle_writer import BundleWriteError, write_bundle
    from perfhint_export.checkpoint import load_checkpoint
    from perfhint_export.errors import CheckpointError
    from perfhint_export.onnx_graphs import ExportError, GraphBuildError
    from perfhint_export.parity import ParityError
    from perfhint_export.float_fallback import FloatFallbackError
    from perfhint_export.quantize import QuantizationError

    user_errors = (CheckpointError, ParityError, BundleError, BundleWriteError, GraphBuildError, ExportError,
                   QuantizationError, EncoderVocabError, FloatFallbackError, OSError)
    keep_float = args.keep_float
    try:
        if args.checkpoint.is_dir() and keep_float:
            raise BundleWriteError("--keep-float is not supported for Hugging Face seq2seq model directories; "
                                   "drop it, or use --precision fp32 if int8 fails the gate")
        if args.checkpoint.is_dir():  # a Hugging Face seq2seq model directory: numbers written as text (seq2seq.py)
            from perfhint_export.seq2seq import export_seq2seq_bundle
            bundle = export_seq2seq_bundle(args.checkpoint, args.config, args.out, precision=args.precision,
                                           name=args.name, purpose=args.purpose)
        else:
            checkpoint = load_checkpoint(args.checkpoint, args.config)
            bundle = write_bundle(checkpoint, args.out, precision=args.precision, name=args.name, purpose=args.purpose,
                                  keep_float=keep_float, on_trial=_print_trial)
    except ParityError as error:
        fix = {"int8": " (try --keep-float auto, --precision int8-encoder, or fp32)",
               "int8-encoder": " (try --keep-float auto, or --precision fp32)"}.get(
                   args.precision, " (please report this as a perfhint bug)")
        print(f"perfhint export: {_one_line(error)}{fix}", file=sys.stderr)
        return EXIT_USER_ERROR
    except user_errors as error:
        print(f"perfhint export: {_one_line(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    kept = _layers_text((bundle.manifest.quantization or {}).get("kept_float") or {})
    if kept:
        print(f"kept float: {kept}")
    report = bundle.manifest.parity
    diff = report["max_abs_diff"]["logits"]
    atol = report["tolerances"]["logits_atol"]
    print(f"wrote {bundle.precision} bundle {bundle.path} (logits max |diff| {diff:.1e} <= atol {atol:.0e}, "
          f"greedy agreement {report['greedy']['exact_agreement']:.0%} on {report['greedy']['probes']} probes)")
    return 0


def _layers_text(kept_float) -> str:
    """{role: layers} as the `--keep-float` syntax lists them: `encoder:l0, decoder_step:l1` ("" if none)."""
    return ", ".join(f"{role}:{layer}" for role, layers in kept_float.items() for layer in layers)


def _print_trial(trial) -> None:
    kept = _layers_text(trial.kept_float) or "none"
    verdict = "passes" if trial.passed else "fails"
    print(f"keep-float search: float layers [{kept}] -> logits max |diff| {trial.logits_max_abs_diff:.3f}, "
          f"{verdict} (search probes)", file=sys.stderr, flush=True)
