"""`perfhint train calibrate --bundle DIR`: fit the p10–p90 band width on held-out rows, into the manifest.

The method is perfhint.calibration's (one conformal log10 margin per objective). What this step adds:
- it predicts the rows with the bundle's *uncalibrated* band (a calibration already in the manifest
  is ignored while fitting, so calibrating twice gives the same margins, not their sum);
- it fits on the validation split by default and refuses the test split, so the coverage that
  `perfhint train evaluate --split test` reports afterwards is measured on rows the factor never saw;
- it rewrites only manifest.json, atomically: the graphs, the tokenizer and their hashes are untouched,
  so the parity report still holds, and the bundle's id (the manifest's hash) changes, so editors'
  prediction caches do not serve old bands.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
from pathlib import Path

from perfhint_train.datasets.records import DEFAULT_DATA_DIR, SPLIT_FILES
from perfhint_train.evaluate import labelled_rows


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, required=True, help="exported bundle directory to calibrate in place")
    parser.add_argument("--split", default="val", help="val (default; files in --data-dir) or a records .jsonl path")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--samples", type=int, default=32, help="samples per row (default 32, as the server)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="fit on a fixed spread of N rows (faster)")


def run(args: argparse.Namespace) -> int:
    from perfhint import calibration
    from perfhint.bundle import MANIFEST_FILE, BundleError, load_bundle
    from perfhint.runtime import Predictor
    from perfhint_train.train import model_text, objectives_from_metrics, read_jsonl

    if args.split == "test":
        print("perfhint train calibrate: refusing the test split: fit on val and report on test", file=sys.stderr)
        return 2
    split_path = args.data_dir / SPLIT_FILES[args.split] if args.split in SPLIT_FILES else Path(args.split)
    if not split_path.is_file():
        print(f"perfhint train calibrate: records {split_path} not found; run `perfhint train build-data` "
              f"or pass --split PATH.jsonl", file=sys.stderr)
        return 2
    try:
        bundle = load_bundle(args.bundle)
    except BundleError as error:
        print(f"perfhint train calibrate: {error}", file=sys.stderr)
        return 2
    manifest = bundle.manifest
    objectives = objectives_from_metrics(manifest.metrics)
    rows = labelled_rows(read_jsonl(split_path), objectives)
    if args.limit is not None:
        rows = sorted(rows, key=lambda row: hashlib.sha256(str(row.record.get("id")).encode()).hexdigest())[: args.limit]
    uncalibrated = dataclasses.replace(bundle, manifest=dataclasses.replace(manifest, calibration=None))
    predictor = Predictor(uncalibrated)
    results = predictor.predict_texts([model_text(row.record, manifest.input_template) for row in rows],
                                      samples=args.samples, seed=args.seed)
    margins, before, after = [], [], []
    for index, objective in enumerate(objectives):
        picked = [(row.value, result.objectives[index]) for row, result in zip(rows, results)
                  if row.objective == index and result.objectives[index].median is not None]
        if not picked:
            margins.append(0.0), before.append(None), after.append(None)
            print(f"{objective.name}: no rows in {split_path.name}; band left as sampled (margin 0)")
            continue
        columns = [[value for value, _ in picked]] + [[getattr(summary, key) for _, summary in picked]
                                                       for key in ("median", "p10", "p90")]
        try:
            margin = calibration.fit_margin(*columns)
        except ValueError as error:
            print(f"perfhint train calibrate: {objective.name}: {error}", file=sys.stderr)
            return 2
        margins.append(margin)
        before.append(calibration.coverage(*columns))
        after.append(calibration.coverage(*columns, margin=margin))
        print(f"{objective.name}: {len(picked)} rows, p10–p90 coverage {before[-1]:.3f} -> {after[-1]:.3f} "
              f"with a margin of {margin:+.3f} decades (x{10 ** margin:.2f}) on each side")
        if margin > calibration.WIDE_MARGIN:
            print(f"warning: {objective.name}'s bands must be over {10 ** calibration.WIDE_MARGIN:g}x wider on each "
                  f"side to hold 80 % of held-out values: its predictions are poor there", file=sys.stderr)
    fitted = calibration.BandCalibration(
        band_margin_log10=tuple(margins), fitted_on=f"{split_path.name}: {len(rows)} rows, {args.samples} samples, seed {args.seed}",
        coverage_before=tuple(before), coverage_after=tuple(after))
    text = dataclasses.replace(manifest, calibration=fitted).to_json()
    target = args.bundle / MANIFEST_FILE
    partial = target.with_name(f".{MANIFEST_FILE}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
    load_bundle(args.bundle)  # the runtime's verifier accepts what we wrote
    print(f"wrote the calibration into {target}")
    return 0
