"""`perfhint measure FILE[::REGION]`: measure for real what a hint predicts, in the sandbox.

What is hard: a user checks a hint against this command, and our training labels are its `--json`
output, so both must come from the *same* region the editor annotated, with the same context. So
the regions come from perfhint.regions.find_regions (the code the language server uses), the
arguments are the texts the region's `# perfhint:` comment or literal call gave (Context.texts,
the same texts the model reads), and each kind goes to the one measurement its metric defines
(measure_region). A function whose arguments are unknown is not guessed at: the line says to add
`# perfhint: args=(...)`. A region marked `# perfhint: off` is skipped unless named explicitly.

Exit status: 0 if every selected region measured ok, 1 if any did not, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

from perfhint import __version__
from perfhint.measure.functions import measure_python_function
from perfhint.measure.kernels import measure_triton
from perfhint.measure.metrics import METRICS, Measurement, Status, failed
from perfhint.measure.machine import machine
from perfhint.measure.processes import measure_program, measure_python_script
from perfhint.measure.sandbox import Limits, MiB

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_LIMIT_MB = 4096
RECORD_SOURCE = "user"  # dataset records made by this command, as opposed to curated corpora


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="FILE[::REGION]",
                        help="a .py/.c/.cpp file; ::REGION picks one region by qualified name (Matrix.mul) "
                             "or key (function:Matrix.mul); without it every region is measured")
    parser.add_argument("--json", action="store_true",
                        help="print one dataset record per region, one JSON object per line")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"wall-clock limit per run in seconds (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--memory-limit", type=int, default=DEFAULT_MEMORY_LIMIT_MB, metavar="MB",
                        help=f"address-space limit per run in MiB (default {DEFAULT_MEMORY_LIMIT_MB}); "
                             "not applied to GPU runs")


def run(args: argparse.Namespace) -> int:
    from perfhint import regions as region_finder  # tree-sitter: import only when the command runs

    path_text, _, selector = args.target.partition("::")
    path = Path(path_text)
    if not path.is_file():
        return _usage_error(f"{path_text}: no such file")
    language = region_finder.language_for_path(path_text)
    if language is None:
        return _usage_error(f"{path_text}: not a Python, C or C++ file (judged by its extension: .py, .c, .cpp, .cc)")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return _usage_error(f"{path_text}: cannot read it as UTF-8 text ({error})")
    try:
        found = region_finder.find_regions(source, language)
    except region_finder.SourceTooLarge as error:
        return _usage_error(str(error))
    if selector:
        chosen = [region for region in found if selector in (region.key, region.name)]
        if not chosen:
            names = ", ".join(region.key for region in found) or "none"
            return _usage_error(f"no region {selector!r} in {path_text} (its regions: {names})")
    else:
        chosen = [region for region in found if not region.context.off]
        if not chosen:
            print(f"perfhint measure: nothing to measure in {path_text}: it has no functions, script code, "
                  f"program or Triton launcher{' that is not marked off' if found else ''}", file=sys.stderr)
            return 0
    if args.timeout <= 0 or args.memory_limit <= 0:
        return _usage_error("--timeout and --memory-limit must be positive")
    limits = Limits(timeout_s=args.timeout, memory_bytes=args.memory_limit * MiB)

    measurements = []
    for region in chosen:
        measurement = measure_region(region, source, limits, filename=path.name)
        measurements.append((region, measurement))
        if args.json:
            print(json.dumps(dataset_record(region, measurement, path_text)), flush=True)
    if not args.json:
        print(render_table(measurements))
    return 0 if all(measurement.ok for _, measurement in measurements) else 1


def _usage_error(message: str) -> int:
    print(f"perfhint measure: {message}", file=sys.stderr)
    return 2


def measure_region(region, source: str, limits: Limits, *, filename: str = "script.py") -> Measurement:  # type: ignore[no-untyped-def]
    """The measurement a region's kind defines (metrics.METRICS), with the region's own context texts."""
    texts = region.context.texts
    values = region.context.values
    if region.kind == "function":
        if region.context.args_source is None or "args" not in texts:
            return failed(METRICS["function"], Status.BAD_INPUT,
                          f"{region.name}: its arguments are unknown; add `# perfhint: args=(...)` above it, "
                          f"e.g. `# perfhint: args=(10**6,)`", machine())
        return measure_python_function(source, region.name, texts["args"], texts.get("kwargs"), limits=limits)
    if region.kind == "script":
        return measure_python_script(source, limits=limits, filename=filename)
    if region.kind == "program":
        return measure_program(source, region.language, limits=limits)
    if region.kind == "triton_kernel":
        dtype = values.get("dtype", texts.get("dtype"))
        gpu = values.get("gpu", texts.get("gpu"))
        return measure_triton(source, region.name, shape_text=texts.get("shape"),
                              dtype=str(dtype) if dtype is not None else None, args_text=texts.get("args"),
                              kwargs_text=texts.get("kwargs"), gpu=str(gpu) if gpu is not None else None,
                              limits=limits)
    raise ValueError(f"no metric is defined for region kind {region.kind!r}")


def dataset_record(region, measurement: Measurement, file: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """One training/evaluation record, in the dataset schema; status and sandbox facts go in provenance."""
    context = dict(region.context.texts)
    identity = json.dumps([region.language, region.kind, measurement.metric, region.code, context], sort_keys=True)
    return {
        "id": f"{RECORD_SOURCE}-{hashlib.sha256(identity.encode('utf-8')).hexdigest()[:16]}",
        "language": region.language,
        "region_kind": region.kind,
        "metric": measurement.metric,
        "unit": measurement.unit,
        "code": region.code,
        "context": context,
        "value": measurement.value,
        "group": Path(file).stem,
        "source": RECORD_SOURCE,
        "provenance": {
            "file": file, "region": region.key, "perfhint_version": __version__,
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "status": measurement.status.value, "message": measurement.message,
            "wall_time_s": round(measurement.wall_time_s, 6), "warnings": list(measurement.warnings),
            "sandbox": measurement.details.get("sandbox"),
        },
        "measured_on": measurement.measured_on,
    }


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "B":
        for scale, name in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
            if value >= scale:
                return f"{value / scale:.1f} {name}"
        return f"{int(value)} B"
    if unit == "ms":
        return f"{value * 1000:.1f} µs" if value < 1 else f"{value:.3f} ms"
    return f"{value:g} {unit}"


def render_table(measurements: list[tuple[object, Measurement]]) -> str:
    header = ("region", "kind", "metric", "value", "status")
    rows = [(region.key, region.kind, measurement.metric, format_value(measurement.value, measurement.unit),  # type: ignore[attr-defined]
             measurement.status.value if measurement.ok else f"{measurement.status.value}: {measurement.message}")
            for region, measurement in measurements]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + "  " + row[-1]
             for row in [header, *rows]]
    warnings = sorted({warning for _, measurement in measurements for warning in measurement.warnings})
    lines += [f"warning: {warning}" for warning in warnings]
    return "\n".join(line.rstrip() for line in lines)
