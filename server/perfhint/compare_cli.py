"""`perfhint compare [--rev REV] PATH... [--json] [--fail-over PCT]`: predicted cost before and after, per region.

What is hard: this runs in CI, where the log is read by someone scrolling past a wall of output, so
each file is one small table (line, region, metric, before, after, Δ, Δ %) and the verdict is the last
line. `--fail-over PCT` fails (exit 1) when any region's median grows by more than PCT percent; a new
region has no "before" and cannot fail the gate, a removed one is listed. The "before" text comes
from git through an argument list (baseline.py), never a shell string; a file that is new since REV
compares against nothing. The model is seeded and cached, so an unchanged region has Δ exactly 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from perfhint import predict
from perfhint.annotate_cli import add_common_arguments, collect_files, model_banner, predict_text, prepare, read_source, table


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--rev", default="HEAD", help="git revision to compare with (default HEAD)")
    parser.add_argument("--fail-over", type=float, metavar="PCT",
                        help="exit 1 when any region's predicted cost grows by more than PCT percent")


def run(args: argparse.Namespace) -> int:
    from perfhint.baseline import revision_text, valid_revision
    from perfhint.regions import SourceTooLarge, language_for_path

    if not valid_revision(args.rev):
        print(f"perfhint compare: {args.rev!r} is not a git revision (e.g. HEAD, main, HEAD~1, a commit hash)",
              file=sys.stderr)
        return 2
    context = prepare(args, "compare")
    if isinstance(context, int):
        return context
    files = []
    status = 0
    for path in collect_files(args.paths, context.settings, context.root):
        language = language_for_path(str(path))
        if language is None:
            continue
        base = revision_text(path, args.rev)
        try:
            after = predict_text(context, read_source(path), language)
            before = predict_text(context, base.text, language) if base.text is not None else []
        except (OSError, SourceTooLarge, RuntimeError) as error:
            files.append({"path": str(path), "error": str(error).removeprefix("perfhint: "), "rows": []})
            status = 1
            continue
        rows = predict.compare_rows({prediction.key: prediction for prediction in before}, after)
        files.append({"path": str(path), "baseline": None if base.text is not None else base.reason,
                      "rows": [row.as_json() for row in rows]})
    failing = _failing(files, args.fail_over)
    if args.json:
        json.dump({"revision": args.rev, "fail_over": args.fail_over, "failing": failing, "files": files},
                  sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        _print_tables(args.rev, files, context)
        _print_verdict(failing, args.fail_over)
    if failing:
        return 1
    return status


def _failing(files: list[dict[str, Any]], fail_over: float | None) -> list[dict[str, Any]]:
    if fail_over is None:
        return []
    return [{"path": file["path"], **row} for file in files for row in file["rows"]
            if row["percent"] is not None and row["percent"] > fail_over]


def _print_tables(revision: str, files: list[dict[str, Any]], context: Any) -> None:
    print(f"perfhint compare: working tree vs {revision}")
    print(model_banner(context.predictor))
    for file in files:
        print(f"\n{file['path']}")
        if file.get("error"):
            print(f"  {file['error']}")
            continue
        if file.get("baseline"):
            print(f"  no {revision} version ({file['baseline']}): every region is new")
        if not file["rows"]:
            print("  no regions")
            continue
        rows = []
        for row in file["rows"]:
            percent = predict.format_percent(row["before"], row["after"]) if row["delta"] is not None else None
            rows.append([row["line"] + 1 if row["line"] is not None else "-", row["name"], row["metric"],
                         row["before_text"] or "-", row["after_text"] or "-", row["delta_text"] or row["status"],
                         percent or ""])
        print(table(rows, ["line", "region", "metric", f"before ({revision})", "after", "Δ", "Δ %"], right={0}))


def _print_verdict(failing: list[dict[str, Any]], fail_over: float | None) -> None:
    if fail_over is None:
        return
    if not failing:
        print(f"\nperfhint compare: OK, no region grew by more than {fail_over:g} %")
        return
    print(f"\nperfhint compare: FAIL, {len(failing)} region(s) grew by more than {fail_over:g} %:")
    for row in failing:
        print(f"  {row['path']}:{row['line'] + 1} {row['name']} {row['metric']} {row['before_text']} -> "
              f"{row['after_text']} ({row['delta_text']}, {predict.format_percent(row['before'], row['after'])})")
