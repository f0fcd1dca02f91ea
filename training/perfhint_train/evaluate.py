"""`perfhint train evaluate`: how well a checkpoint (or an exported bundle) ranks and sizes costs.

What is hard:
- What "good" means differs by use. An editor hint is read against the other hints in the same code
  (is this version of the function cheaper?), so the headline is Spearman *within groups* (the same
  problem or kernel at several inputs: groups with >= 3 rows and non-constant labels, averaged),
  next to Spearman and Kendall tau pooled over a task, the mean |log10 prediction - log10 truth|
  (0.3 is a factor of 2) and the share of truths inside the predicted p10-p90 band (0.8 if calibrated).
- Tasks must not be mixed: bytes of a Python call and milliseconds of a kernel are not comparable, so
  every number is per task = language x region kind x metric.
- One concept can be half a task. The split holds out whole groups, and a synthetic concept is one
  group of hundreds of rows (heap_array: 450 of the 854 C test rows), so a pooled figure can be mostly
  one concept. `--by-source` scores each task's rows per source as well, so that is visible.
- Fair baselines: baselines.py fits its baselines on the train split and predicts the *same* rows the
  model is scored on, with the same metrics, so a table row is comparable with the one above it.
- Zeros and missing predictions. log10 needs positive numbers: values are floored at LOG_FLOORS
  (1 B, 0.1 µs) before the log. A row whose samples all decoded to a special value has no
  prediction; it is left out of the metrics and counted in `missing`.
Predictions use the PyTorch reference sampler (perfhint_export.model.sample) from a checkpoint, or
onnxruntime through perfhint.runtime for `--bundle`, with the server's own median/p10/p90
(perfhint.decoding.aggregate) either way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perfhint_train.datasets.records import DEFAULT_DATA_DIR, SPLIT_FILES, SplitError, split_path

LOG_FLOORS = {"B": 1.0, "ms": 1e-4}  # per objective unit: values below are measurement noise
DEFAULT_FLOOR = 1e-9
MIN_GROUP_ROWS = 3
MODEL = "model"


@dataclass
class Prediction:
    median: float  # NaN when no sample was finite
    p10: float
    p90: float


# ----------------------------------------------------------------------------------------------- metrics


def log10_floored(values: np.ndarray, unit: str) -> np.ndarray:
    return np.log10(np.maximum(np.asarray(values, dtype=float), LOG_FLOORS.get(unit, DEFAULT_FLOOR)))


def spearman_within_groups(truth: np.ndarray, predicted: np.ndarray, groups: Sequence[str]) -> tuple[float, int]:
    """Mean Spearman over groups with >= 3 rows and non-constant labels (NaN for a constant prediction
    counts as 0: it ranks nothing); and how many groups were averaged."""
    from scipy.stats import spearmanr

    rows: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        rows[group].append(index)
    values = []
    for indices in rows.values():
        if len(indices) < MIN_GROUP_ROWS or np.ptp(truth[indices]) == 0:
            continue
        if np.ptp(predicted[indices]) == 0:
            values.append(0.0)
            continue
        values.append(float(spearmanr(truth[indices], predicted[indices]).statistic))
    return (float(np.mean(values)) if values else math.nan), len(values)


def score(truth: Sequence[float], median: Sequence[float], p10: Sequence[float] | None,
          p90: Sequence[float] | None, groups: Sequence[str], unit: str) -> dict[str, Any]:
    """Every metric of one predictor on one task; rows without a finite prediction are left out."""
    from scipy.stats import kendalltau, spearmanr

    truth, median = np.asarray(truth, dtype=float), np.asarray(median, dtype=float)
    keep = np.isfinite(median)
    result: dict[str, Any] = {"n": int(keep.sum()), "missing": int((~keep).sum())}
    truth, median, groups = truth[keep], median[keep], [group for group, kept in zip(groups, keep) if kept]
    constant = truth.size < 2 or np.ptp(truth) == 0 or np.ptp(median) == 0
    result["spearman"] = math.nan if constant else float(spearmanr(truth, median).statistic)
    result["kendall_tau"] = math.nan if constant else float(kendalltau(truth, median).statistic)
    result["spearman_within_groups"], result["n_groups"] = spearman_within_groups(truth, median, groups)
    result["log10_error"] = (float(np.mean(np.abs(log10_floored(median, unit) - log10_floored(truth, unit))))
                             if truth.size else math.nan)
    if p10 is not None and p90 is not None and truth.size:
        low, high = np.asarray(p10, dtype=float)[keep], np.asarray(p90, dtype=float)[keep]
        result["coverage_p10_p90"] = float(np.mean((truth >= low) & (truth <= high)))
    else:
        result["coverage_p10_p90"] = math.nan
    return result


# ----------------------------------------------------------------------------------------------- rows


def fixed_spread(rows: Sequence[Row], limit: int) -> list[Row]:
    """`limit` rows chosen by the hash of their record ids: a fixed spread over tasks, not the head of a
    file sorted by source (what `--limit` means in evaluate, calibrate and select)."""
    return sorted(rows, key=lambda row: hashlib.sha256(str(row.record.get("id")).encode()).hexdigest())[:limit]


@dataclass
class Row:
    record: dict[str, Any]
    objective: int
    value: float  # in the objective's unit
    unit: str

    @property
    def task(self) -> str:
        from perfhint_train.baselines import task_of

        return task_of(self.record)


def labelled_rows(records: Sequence[Mapping[str, Any]], objectives: Sequence[Any]) -> list[Row]:
    from perfhint_train.train import record_objective

    rows = []
    for record in records:
        if (record.get("provenance") or {}).get("status", "ok") != "ok":
            continue
        labelled = record_objective(record, objectives)
        if labelled is not None:
            rows.append(Row(dict(record), labelled[0], labelled[1], objectives[labelled[0]].unit))
    return rows


# ----------------------------------------------------------------------------------------------- models


def checkpoint_predictions(checkpoint: Any, rows: Sequence[Row], *, samples: int, seed: int = 0,
                           batch_rows: int = 8) -> list[Prediction]:
    """Sample a loaded checkpoint (perfhint_export LoadedCheckpoint) `samples` times per row.

    Each row's objective is decoded as a cost (a number >= 0, decoding.CostGrammar), as the runtime
    decodes the objective a region asks for; batches therefore hold rows of one objective."""
    import torch

    from perfhint.decoding import CostGrammar, aggregate
    from perfhint_train.train import model_text

    model, codec, vocab = checkpoint.model.eval(), checkpoint.codec, checkpoint.encoder_vocab
    max_input_len = checkpoint.config.max_input_len
    ids = [vocab.input_ids(model_text(row.record, checkpoint.input_template), max_input_len) for row in rows]
    predictions: list[Prediction | None] = [None] * len(rows)
    generator = torch.Generator().manual_seed(seed)
    batches = []  # (grammar, row indices): rows of one objective, similar lengths together
    for objective in sorted({row.objective for row in rows}):
        mine = sorted((index for index, row in enumerate(rows) if row.objective == objective),
                      key=lambda index: len(ids[index]))
        grammar = CostGrammar(codec, (objective,))
        batches += [(grammar, mine[start : start + batch_rows]) for start in range(0, len(mine), batch_rows)]
    for grammar, chunk in batches:
        length = max(1, max(len(ids[index]) for index in chunk))
        batch = torch.full((len(chunk), length), vocab.pad_id, dtype=torch.long)
        for position, index in enumerate(chunk):
            batch[position, : len(ids[index])] = torch.tensor(ids[index], dtype=torch.long)
        tokens = model.sample(batch, grammar, samples, generator=generator).tolist()
        for position, index in enumerate(chunk):
            summary = aggregate([codec.decode(sample) for sample in tokens[position]])[rows[index].objective]
            predictions[index] = _prediction(summary)
    return [prediction for prediction in predictions if prediction is not None]


def bundle_predictions(bundle_path: Path, rows: Sequence[Row], *, samples: int, seed: int = 0) -> list[Prediction]:
    """The same through onnxruntime: what the editor would show for each row."""
    from perfhint.runtime import Predictor
    from perfhint_train.train import model_text, record_region

    predictor = Predictor.from_bundle_path(bundle_path)
    template = predictor.bundle.manifest.input_template
    texts = [model_text(row.record, template) for row in rows]
    results = predictor.predict_texts(texts, samples=samples, seed=seed,
                                      regions=[record_region(row.record) for row in rows])
    return [_prediction(result.objectives[row.objective]) for row, result in zip(rows, results)]


def _prediction(summary: Any) -> Prediction:
    def number(value: float | None) -> float:
        return math.nan if value is None else float(value)

    return Prediction(number(summary.median), number(summary.p10), number(summary.p90))


# ----------------------------------------------------------------------------------------------- report


SOURCE_SEPARATOR = " · "  # between a task and a record source in by-source report keys


def evaluate_rows(rows: Sequence[Row], predictions: Mapping[str, Sequence[Prediction]], *,
                  by_source: bool = False) -> dict[str, Any]:
    """{task: {"n": rows, "unit": unit, "predictors": {name: score}}} for every predictor.

    `by_source` adds one entry per task and record source (`"c/program/peak_rss · transcoder"`) after the
    task's own. A held-out synthetic concept is one group of hundreds of rows, so it can be half of a task's
    pooled rows; the split shows how much of a pooled figure one concept makes.
    """
    by_task: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_task[row.task].append(index)
        if by_source:
            by_task[f"{row.task}{SOURCE_SEPARATOR}{row.record.get('source') or 'unknown'}"].append(index)
    report: dict[str, Any] = {}
    for task in sorted(by_task):
        indices = by_task[task]
        unit = rows[indices[0]].unit
        truth = [rows[index].value for index in indices]
        groups = [str(rows[index].record.get("group")) for index in indices]
        report[task] = {"n": len(indices), "unit": unit, "predictors": {
            name: score(truth, [predicted[index].median for index in indices],
                        [predicted[index].p10 for index in indices], [predicted[index].p90 for index in indices],
                        groups, unit)
            for name, predicted in predictions.items()}}
    return report


def baseline_predictions(train_rows: Sequence[Row], rows: Sequence[Row], *, seed: int = 0
                         ) -> dict[str, list[Prediction]]:
    from perfhint_train.baselines import run_baselines

    if not train_rows:
        return {}
    train_log = np.array([log10_floored(np.array([row.value]), row.unit)[0] for row in train_rows])
    fitted = run_baselines([row.record for row in train_rows], train_log, [row.record for row in rows], seed=seed)
    return {name: [Prediction(*values) for values in zip(*(array.tolist() for array in result.values()))]
            for name, result in fitted.items()}


def markdown_table(report: Mapping[str, Any]) -> str:
    lines = ["| task | n | predictor | Spearman | Spearman within groups (groups) | Kendall τ | mean abs log10 err "
             "| p10–p90 coverage | missing |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]

    def fmt(value: float) -> str:
        return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

    for task, entry in report.items():
        for name, metrics in entry["predictors"].items():
            lines.append(f"| {task} [{entry['unit']}] | {entry['n']} | {name} | {fmt(metrics['spearman'])} | "
                         f"{fmt(metrics['spearman_within_groups'])} ({metrics['n_groups']}) | "
                         f"{fmt(metrics['kendall_tau'])} | {fmt(metrics['log10_error'])} | "
                         f"{fmt(metrics['coverage_p10_p90'])} | {metrics['missing']} |")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


# ----------------------------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", type=Path, default=None, help="perfhint .safetensors checkpoint (PyTorch)")
    source.add_argument("--bundle", type=Path, default=None, help="exported bundle directory (onnxruntime)")
    parser.add_argument("--split", default="test",
                        help=f"{', '.join(SPLIT_FILES)} (files in --data-dir) or a path to a records .jsonl")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"records directory (default {DEFAULT_DATA_DIR}); its train split fits the baselines")
    parser.add_argument("--samples", type=int, default=32, help="samples per row (default 32, as the server)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="score a fixed spread of N rows (smoke runs)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the baselines")
    parser.add_argument("--by-source", action="store_true",
                        help="also score each task's rows per record source (transcoder, synthetic, tritonbench, ...)")
    parser.add_argument("--out", type=Path, default=None, help="write the report JSON here")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    from perfhint_train.train import OBJECTIVES, objectives_from_metrics, read_jsonl

    try:
        records_path = split_path(args.data_dir, args.split)
    except SplitError as error:
        print(f"perfhint train evaluate: {error}", file=sys.stderr)
        return 2
    train_path = args.data_dir / SPLIT_FILES["train"]
    checkpoint = None
    if args.checkpoint is not None:
        import torch

        from perfhint_export.checkpoint import load_checkpoint
        from perfhint_export.errors import CheckpointError

        if args.threads:
            torch.set_num_threads(args.threads)
        try:
            checkpoint = load_checkpoint(args.checkpoint)
        except CheckpointError as error:
            print(f"perfhint train evaluate: {error}", file=sys.stderr)
            return 2
        objectives = objectives_from_metrics(checkpoint.metrics)
    elif args.bundle is not None:
        from perfhint.bundle import load_bundle

        objectives = objectives_from_metrics(load_bundle(args.bundle).manifest.metrics)
    else:
        objectives = tuple(OBJECTIVES.values())
    rows = labelled_rows(read_jsonl(records_path), objectives)
    if args.limit is not None:
        rows = fixed_spread(rows, args.limit)
    predictions: dict[str, list[Prediction]] = {}
    if checkpoint is not None:
        predictions[MODEL] = checkpoint_predictions(checkpoint, rows, samples=args.samples, seed=args.seed)
    elif args.bundle is not None:
        predictions[MODEL] = bundle_predictions(args.bundle, rows, samples=args.samples, seed=args.seed)
    if not args.no_baselines:
        train_rows = labelled_rows(read_jsonl(train_path), objectives) if train_path.is_file() else []
        if not train_rows:
            print(f"perfhint train evaluate: no train records at {train_path}; baselines skipped", file=sys.stderr)
        predictions.update(baseline_predictions(train_rows, rows, seed=args.seed))
    report = evaluate_rows(rows, predictions, by_source=args.by_source)
    print(markdown_table(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"split": str(records_path), "checkpoint": str(args.checkpoint) if args.checkpoint else None,
                   "bundle": str(args.bundle) if args.bundle else None, "samples": args.samples, "seed": args.seed,
                   "rows": len(rows), "tasks": report}
        args.out.write_text(json.dumps(_json_safe(payload), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0
