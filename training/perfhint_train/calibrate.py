"""`perfhint train calibrate --bundle DIR`: fit the p10–p90 band width on held-out rows, into the manifest.

The method is perfhint.calibration's (conformal log10 margins per objective, and per region kind where
the split has enough rows of it). What this step adds:
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
import os
import sys
from pathlib import Path

from perfhint_train.datasets.records import DEFAULT_DATA_DIR, SplitError, split_path
from perfhint_train.evaluate import fixed_spread, labelled_rows


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
    from perfhint_train.train import model_text, objectives_from_metrics, read_jsonl, record_region

    try:
        records_path = split_path(args.data_dir, args.split, choosing=True)
    except SplitError as error:
        print(f"perfhint train calibrate: {error}", file=sys.stderr)
        return 2
    try:
        bundle = load_bundle(args.bundle)
    except BundleError as error:
        print(f"perfhint train calibrate: {error}", file=sys.stderr)
        return 2
    manifest = bundle.manifest
    objectives = objectives_from_metrics(manifest.metrics)
    rows = labelled_rows(read_jsonl(records_path), objectives)
    if args.limit is not None:
        rows = fixed_spread(rows, args.limit)
    uncalibrated = dataclasses.replace(bundle, manifest=dataclasses.replace(manifest, calibration=None))
    predictor = Predictor(uncalibrated)
    texts = [model_text(row.record, manifest.input_template) for row in rows]
    regions = [record_region(row.record) for row in rows]  # also for raw templates, whose text does not say it
    results = predictor.predict_texts(texts, samples=args.samples, seed=args.seed, regions=regions)
    margins, before, chosen = [], [], {}
    by_region: dict[str, dict[int, float]] = {}
    for index, objective in enumerate(objectives):
        picked = [(row.value, result.objectives[index], region) for row, result, region in zip(rows, results, regions)
                  if row.objective == index and result.objectives[index].median is not None]
        if not picked:
            margins.append(0.0), before.append(None)
            print(f"{objective.name}: no rows in {records_path.name}; band left as sampled (margin 0)")
            continue
        try:
            for region in sorted({region for _, _, region in picked}):
                mine = [item for item in picked if item[2] == region]
                if len(mine) >= calibration.MIN_REGION_ROWS:
                    by_region.setdefault(region, {})[index] = _fit(mine, f"{objective.name} on {region}")
            # The objective's own margin serves every other region: fit it on the rows that will use it.
            rest = [item for item in picked if index not in by_region.get(item[2], {})]
            margin = _fit(rest or picked, f"{objective.name} elsewhere" if rest and len(rest) < len(picked)
                          else objective.name)
        except ValueError as error:
            print(f"perfhint train calibrate: {error}", file=sys.stderr)
            return 2
        margins.append(margin)
        before.append(calibration.coverage(*_columns(picked)))
        chosen[index] = picked
    fitted = calibration.BandCalibration(
        band_margin_log10=tuple(margins), fitted_on=f"{records_path.name}: {len(rows)} rows, {args.samples} samples, seed {args.seed}",
        coverage_before=tuple(before), coverage_after=(), by_region=by_region)
    after: list[float | None] = [None] * len(objectives)
    for index, picked in chosen.items():  # each row widened as the runtime will widen it: BandCalibration.margin
        after[index] = calibration.coverage(*_columns(picked), margin=[fitted.margin(index, region)
                                                                        for _, _, region in picked])
        print(f"{objectives[index].name}: {len(picked)} rows, p10–p90 coverage {before[index]:.3f} -> "
              f"{after[index]:.3f} ({len([r for r in by_region.values() if index in r])} region(s) with margins "
              f"of their own)")
    fitted = dataclasses.replace(fitted, coverage_after=tuple(after))
    text = dataclasses.replace(manifest, calibration=fitted).to_json()
    target = args.bundle / MANIFEST_FILE
    partial = target.with_name(f".{MANIFEST_FILE}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
    load_bundle(args.bundle)  # the runtime's verifier accepts what we wrote
    print(f"wrote the calibration into {target}")
    return 0


def _columns(picked: list) -> list[list[float]]:  # type: ignore[type-arg]
    return [[value for value, _, _ in picked]] + [[getattr(summary, key) for _, summary, _ in picked]
                                                   for key in ("median", "p10", "p90")]


def _fit(picked: list, label: str) -> float:  # type: ignore[type-arg]
    """The conformal margin of these rows, printed; ValueError (naming `label`) when they cannot be covered."""
    from perfhint import calibration

    columns = _columns(picked)
    try:
        margin = calibration.fit_margin(*columns)
    except ValueError as error:
        raise ValueError(f"{label}: {error}") from None
    print(f"  {label}: {len(picked)} rows, margin {margin:+.3f} decades (x{10 ** margin:.2f} on each side); "
          f"coverage {calibration.coverage(*columns):.3f} -> {calibration.coverage(*columns, margin=margin):.3f}")
    if margin > calibration.WIDE_MARGIN:
        print(f"warning: {label}: bands must be over {10 ** calibration.WIDE_MARGIN:g}x wider on each side to hold "
              f"80 % of held-out values: its predictions are poor there", file=sys.stderr)
    return margin
