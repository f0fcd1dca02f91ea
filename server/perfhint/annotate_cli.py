"""`perfhint annotate PATH... [--json]`: the editor's numbers, as a table per file.

What is hard: it must print the *same* numbers the editor shows for the same code, so it goes through
the same engine (same model text, same seeded cache, same disk cache) and the same formatting; the
only differences are the 1-based line numbers people expect in a terminal and that nothing is
hidden silently (rows under the project's thresholds are counted in a footer). Project defaults
come from `[tool.perfhint]` in the nearest pyproject.toml: target GPU, thresholds, excluded paths.
Directories are walked for .py/.c/.h/.cc/.cpp/.cxx/.hpp/.hh files, skipping hidden directories,
`__pycache__`, `node_modules` and what `exclude` names.

This module also holds what compare_cli shares with it: file collection and model loading.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from perfhint import predict
from perfhint.settings import Settings, load_project_settings, merge

SKIP_DIRECTORIES = {"__pycache__", "node_modules", "build", "dist", "site-packages"}
NO_MODEL_HINT = "pass --bundle PATH (a model bundle directory, see `perfhint export`)"


@dataclass
class CliContext:
    settings: Settings
    root: Path | None
    engine: Any
    predictor: Any


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, help="files or directories")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--bundle", help="model bundle directory (default: [tool.perfhint] bundle_path, "
                                         "$PERFHINT_BUNDLE, or the bundle shipped with perfhint)")
    parser.add_argument("--target-gpu", help="GPU a Triton latency is predicted for (default: [tool.perfhint] "
                                             "target_gpu, else H100)")
    parser.add_argument("--samples", type=int, help="samples per region (default 32)")
    parser.add_argument("--device", choices=("cpu", "gpu"), help="where the model runs (default cpu)")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def prepare(args: argparse.Namespace, command: str) -> CliContext | int:
    """Settings (project, then flags) and a loaded predictor; or an exit status after one line on stderr."""
    from perfhint.engine import BundleProblem, Engine, NoBundle, resolve_bundle_path

    start = args.paths[0] if args.paths else Path.cwd()
    settings, problems, root = load_project_settings(start if start.exists() else Path.cwd())
    flags = {"bundlePath": args.bundle, "targetGpu": args.target_gpu, "samples": args.samples,
             "runtimeDevice": args.device}
    settings, flag_problems = merge(settings, {k: v for k, v in flags.items() if v is not None}, source="flag")
    for problem in problems + flag_problems:
        print(f"perfhint {command}: {problem}", file=sys.stderr)
    if flag_problems:
        return 2
    bundle_root = root if args.bundle is None else Path.cwd()
    if args.bundle is not None:
        settings = replace(settings, bundle_path=str(Path(args.bundle).resolve()))
    engine = Engine()
    try:
        path = resolve_bundle_path(settings.bundle_path, root=bundle_root, how_to_set=NO_MODEL_HINT)
        predictor = engine.predictor(path, settings.runtime_device)
    except (NoBundle, BundleProblem) as error:
        print(f"perfhint {command}: {str(error).removeprefix('perfhint: ')}", file=sys.stderr)
        return 2
    return CliContext(settings, root, engine, predictor)


def collect_files(paths: Iterable[Path], settings: Settings, root: Path | None) -> Iterator[Path]:
    from perfhint.regions import language_for_path

    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative_parts = child.relative_to(path).parts
                if any(part.startswith(".") or part in SKIP_DIRECTORIES for part in relative_parts[:-1]):
                    continue
                if child.is_file() and language_for_path(str(child)) and not settings.excludes(child, root):
                    yield child
        elif path.is_file():
            if not settings.excludes(path, root):
                yield path
        else:
            print(f"perfhint: {path}: no such file or directory", file=sys.stderr)


def predict_text(context: CliContext, text: str, language: str) -> list[predict.Prediction]:
    from perfhint.regions import find_regions

    regions = [region for region in find_regions(text, language) if not region.has_error]
    requests = context.engine.requests(regions, context.settings, context.predictor)
    outcomes = context.engine.run(requests, context.settings, context.predictor)
    failures = [outcome for outcome in outcomes if outcome.error]
    if failures:
        raise RuntimeError(f"prediction failed for {len(failures)} region(s): {failures[0].error}")
    return [outcome.prediction for outcome in outcomes if outcome.prediction is not None]


def model_banner(predictor: Any) -> str:
    info = predict.model_info(predictor.bundle, predictor.bundle_sha256)
    line = f"model: {info.name} {info.version} (purpose: {info.purpose}, bundle {info.sha256[:12]})"
    if info.is_test:
        line += "\nnote: this is a TEST model with random weights: its numbers are not predictions"
    return line


def read_source(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace")


def table(rows: list[list[str]], header: list[str], right: set[int] = frozenset({0})) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).rjust(widths[i]) if i in right else str(cell).ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from perfhint.regions import SourceTooLarge, language_for_path

    context = prepare(args, "annotate")
    if isinstance(context, int):
        return context
    reports = []
    status = 0
    if not args.json:
        print(model_banner(context.predictor))
    for path in collect_files(args.paths, context.settings, context.root):
        language = language_for_path(str(path))
        if language is None:
            reports.append({"path": str(path), "error": "unsupported language", "regions": []})
            continue
        try:
            predictions = predict_text(context, read_source(path), language)
        except (OSError, SourceTooLarge, RuntimeError) as error:
            reports.append({"path": str(path), "error": str(error).removeprefix("perfhint: "), "regions": []})
            status = 1
            continue
        reports.append({"path": str(path), "regions": [_region_json(p, context.settings) for p in predictions]})
    if args.json:
        json.dump({"model": _model_json(context.predictor), "files": reports}, sys.stdout, indent=2,
                  ensure_ascii=False)
        print()
        return status
    for report in reports:
        print(f"\n{report['path']}")
        if report.get("error"):
            print(f"  {report['error']}")
            continue
        shown = [region for region in report["regions"] if not region["hidden"]]
        if not report["regions"]:
            print("  no regions (no functions, scripts, programs or Triton launches)")
            continue
        rows = [[region["line"], region["name"], region["kind"], region["prediction"], region["band"],
                 region["context"]] for region in shown]
        if rows:
            print(table(rows, ["line", "region", "kind", "prediction", "band (p10–p90)", "context"]))
        hidden = len(report["regions"]) - len(shown)
        if hidden:
            print(f"  ({hidden} region(s) below the hide_below thresholds not shown; --json lists them)")
    return status


def _region_json(prediction: predict.Prediction, settings: Settings) -> dict[str, Any]:
    primary = prediction.primary
    hidden = bool(primary and settings.hidden(primary.metric.dimension, primary.base(primary.median)))
    return {
        "line": prediction.line + 1, "key": prediction.key, "name": prediction.name, "kind": prediction.kind,
        "prediction": predict.headline(prediction), "band": predict.band(primary) if primary else "",
        "context": predict.context_line(prediction), "arguments_known": prediction.arguments_known,
        "truncated": prediction.truncated, "n_tokens": prediction.n_tokens, "samples": prediction.samples,
        "hidden": hidden,
        "metrics": [{"name": value.metric.name, "unit": value.metric.unit, "median": value.median, "p10": value.p10,
                     "p90": value.p90, "n_samples": value.n_samples, "n_finite": value.n_finite,
                     "special_fraction": value.special_fraction} for value in prediction.metrics],
    }


def _model_json(predictor: Any) -> dict[str, Any]:
    info = predict.model_info(predictor.bundle, predictor.bundle_sha256)
    return {"name": info.name, "version": info.version, "purpose": info.purpose, "bundle_sha256": info.sha256}
