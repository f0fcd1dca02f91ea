"""`perfhint bundle info DIR` (what a bundle is) and `perfhint bundle verify DIR` (can it run here).

What is hard:
- **info must work on a bundle that does not run.** It reads manifest.json only (validated, never
  executed) and checks no hashes, so it can describe a bundle whose graph was damaged, or one made
  for a device this machine lacks; `verify` is the command that says whether it can be used.
- **verify proves more than the hashes.** Matching sha256 says the files are the ones exported
  together; it does not say this onnxruntime can load them, that the tokenizer and the codec agree
  with the graphs, or that a decode produces numbers. So verify loads the bundle exactly as the
  language server does (`runtime.Predictor`) and decodes one short text, and prints the time each
  part took. Every failure is one line on stderr that names the fix, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from perfhint.numbers import codec_from_spec

EXIT_OK = 0
EXIT_USER_ERROR = 2
SMOKE_TEXT = "def add(x, y):\n    return x + y\n"
SMOKE_SAMPLES = 4


def configure_parser(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="bundle_command", metavar="{info,verify}", required=True)
    info = commands.add_parser("info", help="print a bundle's manifest readably (no hash checks)",
                               description="Print what a model bundle is: model, metrics, codec, graphs, "
                                           "quantization, parity and provenance. Reads manifest.json only.")
    info.add_argument("bundle", type=Path, metavar="DIR", help="model bundle directory")
    verify = commands.add_parser("verify", help="check every file's sha256 and decode one short text",
                                 description="Check every file of a bundle against manifest.json, load it into "
                                             "onnxruntime and decode one short text.")
    verify.add_argument("bundle", type=Path, metavar="DIR", help="model bundle directory")
    verify.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (default: cores)")
    verify.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="cpu (default) or gpu")


def _one_line(error: BaseException) -> str:
    lines = [line.strip().removeprefix("- ").strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) if lines else type(error).__name__


def run(args: argparse.Namespace) -> int:
    if args.bundle_command == "info":
        return run_info(args.bundle)
    return run_verify(args.bundle, threads=args.threads, device=args.device)


# ----------------------------------------------------------------------------------------------- info


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} B"


def _codec_line(codec: Any) -> str:
    spec = dict(codec.decoder_tokenizer)
    if spec.get("type") == "text_number":  # an HF seq2seq model writing numbers as text (text_numbers.py)
        return (f"numbers written as text, format {spec.get('format')!r} x {codec.max_num_objs} objective(s) "
                f"joined by {spec.get('separator')!r}, then EOS; at most {spec.get('max_decode_len')} tokens")
    try:
        built = codec_from_spec(spec, codec.max_num_objs)
    except ValueError as error:
        return f"invalid decoder_tokenizer {spec} ({error})"
    if spec["type"] == "ieee":
        shape = (f"IEEE base {spec['base']}, {spec['num_exponent_digits']} exponent digit(s), "
                 f"{spec['num_mantissa_digits']} mantissa digit(s)")
    else:
        shape = f"P10, {spec['num_digits']} digits, exponents -{spec['exponent_range']}..{spec['exponent_range']}"
    specials = ", ".join(spec["special_values"]) if spec["special_values"] else "none"
    pad = "; <pad> after each objective" if spec["append_pad"] else ""
    return (f"{shape}; specials: {specials}{pad}; {codec.max_num_objs} objective(s) x {built.num_tokens_per_obj} "
            f"tokens = {built.decode_len} decoder steps; decoder vocab {built.vocab_size}")


def _template_line(template: dict[str, Any]) -> str:
    if not template:
        return "raw (the code text alone)"
    rest = " ".join(f"{key}={value}" for key, value in template.items() if key != "kind")
    return f"{template.get('kind')}{' ' + rest if rest else ''}"


def _architecture_line(architecture: dict[str, Any]) -> str:
    get = architecture.get
    if not architecture:
        return "(not recorded)"
    return (f"d_model {get('d_model')}; encoder {get('num_encoder_layers')} layer(s) x {get('encoder_nhead')} heads, "
            f"FFN {get('encoder_dim_feedforward') or '4 x d'}; decoder {get('num_decoder_layers')} layer(s) x "
            f"{get('decoder_nhead')} heads, FFN {get('decoder_dim_feedforward') or '4 x d'}; encoder vocab "
            f"{get('encoder_vocab_size')}")


def _parity_lines(parity: dict[str, Any]) -> list[str]:
    if not parity:
        return ["(no report)"]
    lines = []
    tolerances = parity.get("tolerances", {})
    diff = parity.get("max_abs_diff", {})
    status = "passed" if parity.get("passed") else "FAILED"
    logits, atol = diff.get("logits"), tolerances.get("logits_atol")
    if isinstance(logits, (int, float)) and isinstance(atol, (int, float)):
        lines.append(f"{status} ({parity.get('precision', '?')} vs {parity.get('reference', 'the PyTorch reference')}): "
                     f"logits max |diff| {logits:.1e} <= atol {atol:.0e}")
    else:
        lines.append(status)
    greedy = parity.get("greedy") or {}
    if greedy:
        exact = greedy.get("exact_agreement")
        decisive = greedy.get("decisive_agreement")
        text = f"greedy decode: {greedy.get('probes')} probes"
        if isinstance(exact, (int, float)):
            text += f", exact agreement {exact:.0%}"
        if isinstance(decisive, (int, float)):
            text += f", {decisive:.0%} of {greedy.get('decisive_probes')} decisive probes"
        if isinstance(greedy.get("max_regret"), (int, float)):
            text += f", max regret {greedy['max_regret']:.2g}"
        lines.append(text)
    return lines


def _quantization_line(quantization: dict[str, Any] | None) -> str:
    if not quantization:
        return "none (fp32 graphs)"
    parts = [str(quantization.get("weights") or quantization.get("weight_type") or "")]
    if quantization.get("activations"):
        parts.append(f"activations {quantization['activations']}")
    if quantization.get("op_types"):
        parts.append(f"ops {', '.join(quantization['op_types'])}")
    if quantization.get("onnxruntime"):
        parts.append(f"by onnxruntime {quantization['onnxruntime']}")
    return "; ".join(part for part in parts if part)


def _calibration_lines(manifest: Any) -> list[str]:
    fitted = getattr(manifest, "calibration", None)
    if fitted is None:
        return ["none: p10–p90 is the samples' own spread (`perfhint train calibrate` fits it on held-out data)"]

    def share(value: float | None) -> str:
        return "?" if value is None else f"{value:.0%}"

    lines = [f"fitted on {fitted.fitted_on}"]
    for metric, margin, before, after in zip(manifest.metrics, fitted.band_margin_log10, fitted.coverage_before,
                                             fitted.coverage_after):
        lines.append(f"{metric.name}: band x{10 ** margin:.3g} wider on each side (conformal margin {margin:+.3f} "
                     f"decades); p10–p90 held {share(before)} -> {share(after)}")
    for region, margins in sorted(fitted.by_region.items()):
        lines += [f"  {manifest.metrics[index].name} on {region}: x{10 ** margin:.3g} ({margin:+.3f} decades)"
                  for index, margin in sorted(margins.items())]
    return lines


def describe(path: Path, manifest: Any) -> list[str]:
    """The `bundle info` text, one line per entry (continuation lines indented)."""
    model = manifest.model
    purpose = model.purpose
    if purpose == "test":
        purpose += " (random or toy weights: its numbers are not predictions)"
    rows: list[tuple[str, list[str]]] = [
        ("bundle", [str(path)]),
        ("model", [f"{model.name} version {model.version}", f"purpose: {purpose}"]),
        ("metrics", [f"{index}: {metric.name} [{metric.unit or 'no unit'}]" + (f": {metric.meaning}" if metric.meaning else "")
                     for index, metric in enumerate(manifest.metrics)]),
        ("codec", [_codec_line(manifest.codec)]),
        ("input", [f"at most {manifest.max_input_len} tokens (longer texts are truncated to the first "
                   f"{manifest.max_input_len})",
                   f"tokenizer: {manifest.encoder_tokenizer.kind} {manifest.encoder_tokenizer.file}, pad id "
                   f"{manifest.encoder_tokenizer.pad_id}, sha256 {manifest.encoder_tokenizer.sha256}",
                   f"template: {_template_line(dict(manifest.input_template))}"]),
        ("architecture", [_architecture_line(dict(manifest.architecture))]),
        ("graphs", [f"{graph.file:<18} {graph.precision:<5} {_size(graph.bytes):>9}  sha256 {graph.sha256}"
                    for graph in manifest.graphs.values()]),
        ("quantization", [_quantization_line(manifest.quantization)]),
        ("parity", _parity_lines(dict(manifest.parity))),
        ("calibration", _calibration_lines(manifest)),
        ("provenance", [f"checkpoint {manifest.provenance.checkpoint} ({manifest.provenance.checkpoint_format}, "
                        f"sha256 {manifest.provenance.checkpoint_sha256})",
                        f"exported by {manifest.provenance.exported_by} at {manifest.provenance.exported_at}"]),
    ]
    width = max(len(label) for label, _ in rows)
    lines = []
    for label, values in rows:
        for index, value in enumerate(values):
            lines.append(f"{(label if index == 0 else ''):<{width}}  {value}")
    return lines


def run_info(path: Path) -> int:
    from perfhint.bundle import BundleError, read_manifest

    try:
        manifest = read_manifest(path)
    except BundleError as error:
        print(f"perfhint bundle info: {_one_line(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    print("\n".join(describe(path, manifest)))
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- verify


def run_verify(path: Path, *, threads: int | None = None, device: str = "cpu") -> int:
    from perfhint.bundle import BundleError, load_bundle
    from perfhint.runtime import Predictor, RuntimeSetupError

    started = time.perf_counter()
    try:
        bundle = load_bundle(path)
        hashed = time.perf_counter()
        predictor = Predictor(bundle, device=device, threads=threads)
        loaded = time.perf_counter()
    except (BundleError, RuntimeSetupError, ValueError) as error:
        print(f"perfhint bundle verify: {_one_line(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        prediction = predictor.predict_texts([SMOKE_TEXT], samples=SMOKE_SAMPLES, seed=0)[0]
    except Exception as error:  # any failure of a real decode means the bundle is unusable here
        print(f"perfhint bundle verify: {path} loads but cannot decode a short text: {type(error).__name__}: "
              f"{_one_line(error)}; re-export it with `perfhint export`", file=sys.stderr)
        return EXIT_USER_ERROR
    decoded = time.perf_counter()
    files = len(bundle.manifest.graphs) + 1
    medians = ", ".join(f"{metric.name} {summary.median:.4g}" if summary.median is not None else f"{metric.name} -"
                        for metric, summary in zip(bundle.manifest.metrics, prediction.objectives))
    print(f"OK {path}: {bundle.manifest.model.name} ({bundle.precision}, {device}); {files} files match "
          f"manifest.json ({(hashed - started) * 1e3:.0f} ms); sessions loaded in {(loaded - hashed) * 1e3:.0f} ms; "
          f"decoded {prediction.n_tokens} tokens x {SMOKE_SAMPLES} samples in {(decoded - loaded) * 1e3:.0f} ms "
          f"(medians: {medians})")
    return EXIT_OK
