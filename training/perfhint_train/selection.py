"""`perfhint train select`: choose the checkpoint to ship by validation Spearman, never by test.

Validation loss is the wrong guide for these models: it rises after ~1,000 steps while ranking keeps
improving (the model grows confident, and confidently wrong rows cost more loss than they cost rank).
So a run keeps a checkpoint every few hundred steps (`keep_checkpoints = True`) and this step scores
each one the way the editor would use it: exported to a temporary fp32 bundle (through the parity gate)
and sampled by the runtime, 32 samples per row, each row's objective decoded as a cost
(evaluate.bundle_predictions); then Spearman pooled over a task and averaged within groups (the figure
Δ relies on), per task. The score is the sum of those cells over the tasks, so every task and both kinds
of ranking count equally. The runtime's KV-cached decoding is also ~10x faster than re-running the
PyTorch reference over every prefix, which is what makes the whole split and 32 samples affordable.

What is hard:
- **Noise.** Neighbouring checkpoints differ by less than the noise of a few hundred rows or a few
  samples: on the default model's run, 600 rows and 8 samples put step 4,000 first (8.25 against 7.84)
  and the whole split (3,261 rows) put step 5,500 first (7.93 against 7.56); the same checkpoint scored
  7.93 and 7.76 in two 8-sample runs that differed only in the order rows were drawn in. With the
  defaults (the whole split, 32 samples) three seeds gave it 8.02, 7.95 and 7.98, against 7.86-7.87 for
  its neighbours. `--limit` is for smoke runs; the report says how many rows scored.
- **No peeking.** The test split is refused, as in `perfhint train calibrate`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from perfhint_train.datasets.records import DEFAULT_DATA_DIR, SplitError, split_path

CELLS = ("spearman", "spearman_within_groups")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", nargs="+", type=Path,
                        help="perfhint .safetensors checkpoints, or run directories (their step-N.safetensors)")
    parser.add_argument("--split", default="val", help="val (default; files in --data-dir) or a records .jsonl path")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--samples", type=int, default=32, help="samples per row (default 32, as the server)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="score a fixed spread of N rows (smoke runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="write the scores as JSON here")


def checkpoint_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a directory gives its step-N.safetensors in step order. ValueError names what is wrong."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            steps = sorted(path.glob("step-*.safetensors"), key=lambda item: int(item.stem.split("-")[1])
                           if item.stem.split("-")[1].isdigit() else -1)
            if not steps:
                raise ValueError(f"{path} holds no step-N.safetensors: train with --set keep_checkpoints=True, "
                                 f"or name checkpoint files")
            found += steps
        elif path.is_file():
            found.append(path)
        else:
            raise ValueError(f"checkpoint {path} not found")
    return found


def run(args: argparse.Namespace) -> int:
    import tempfile

    import torch

    from perfhint_export.bundle_writer import write_bundle
    from perfhint_export.checkpoint import load_checkpoint
    from perfhint_export.errors import CheckpointError
    from perfhint_export.parity import ParityError
    from perfhint_train.evaluate import MODEL, bundle_predictions, evaluate_rows, fixed_spread, labelled_rows
    from perfhint_train.train import objectives_from_metrics, read_jsonl

    try:
        records_path = split_path(args.data_dir, args.split, choosing=True)
    except SplitError as error:
        print(f"perfhint train select: {error}", file=sys.stderr)
        return 2
    try:
        paths = checkpoint_paths(args.checkpoints)
    except ValueError as error:
        print(f"perfhint train select: {error}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    records = read_jsonl(records_path)
    results = []
    for path in paths:
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as error:
            print(f"perfhint train select: {error}", file=sys.stderr)
            return 2
        rows = labelled_rows(records, objectives_from_metrics(checkpoint.metrics))
        if args.limit is not None:
            rows = fixed_spread(rows, args.limit)
        if not rows:
            print(f"perfhint train select: no rows of {records_path.name} are labelled with {path.name}'s objectives",
                  file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="perfhint-select-") as scratch:
            try:
                bundle = write_bundle(checkpoint, Path(scratch) / "bundle", precision="fp32", purpose="test").path
            except ParityError as error:
                print(f"perfhint train select: {path}: {error}", file=sys.stderr)
                return 2
            predictions = bundle_predictions(bundle, rows, samples=args.samples, seed=args.seed)
        report = evaluate_rows(rows, {MODEL: predictions})
        cells = {task: [_finite(entry["predictors"][MODEL].get(cell)) for cell in CELLS] for task, entry in report.items()}
        score = sum(cell for pair in cells.values() for cell in pair if cell is not None)  # a missing cell adds 0
        results.append({"checkpoint": str(path), "rows": len(rows), "score": score, "cells": cells})
        print(f"{path}: {results[-1]['score']:.3f} over {len(rows)} rows  "
              + "  ".join(f"{task} {_cell(a)}/{_cell(b)}" for task, (a, b) in cells.items()), flush=True)
    best = max(results, key=lambda result: result["score"])
    print(f"best: {best['checkpoint']} ({best['score']:.3f}; sum over tasks of pooled + within-group Spearman)")
    if args.out is not None:
        args.out.write_text(json.dumps({"split": str(records_path), "samples": args.samples, "seed": args.seed,
                                        "best": best["checkpoint"], "results": results}, indent=2) + "\n")
    return 0


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
