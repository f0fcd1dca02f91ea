"""`perfhint train ...`: one subparser per step; `build-data` builds the labelled datasets.

What is hard: `train` is one top-level command whose steps (build-data now; fit, evaluate and
finetune later) have unrelated options, so each step is an argparse sub-subcommand with its own
`configure_*` function and `run_*` handler, registered in one table. Adding a step means adding a
row, not touching the others. Heavy imports happen inside the handlers, so `perfhint train --help`
stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def configure_build_data(parser: argparse.ArgumentParser) -> None:
    from perfhint_train.datasets.build import ALL_SOURCES
    from perfhint_train.datasets.records import DEFAULT_DATA_DIR, LABELS_DIR

    parser.add_argument("--source", choices=(*ALL_SOURCES, "all"), default="all",
                        help="which dataset to build (default: all)")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="label only the chains of shard I of N (e.g. 0/4); shards share the label tables")
    parser.add_argument("--jobs", type=int, default=2, help="parallel measuring processes (default: 2)")
    parser.add_argument("--limit", type=int, default=None, help="measure at most N new tasks this run")
    parser.add_argument("--from-labels", action="store_true",
                        help="measure nothing: rebuild records from ../shared and the label tables")
    parser.add_argument("--label-only", action="store_true", help="measure, but do not write records")
    parser.add_argument("--out", type=Path, default=DEFAULT_DATA_DIR, help=f"records directory (default: {DEFAULT_DATA_DIR})")
    parser.add_argument("--labels", type=Path, default=LABELS_DIR, help=f"label tables directory (default: {LABELS_DIR})")
    parser.add_argument("--card", action="store_true", help="also regenerate training/DATASETS.md from the records")


def run_build_data(args: argparse.Namespace) -> int:
    from perfhint_train.datasets import build

    sources = build.ALL_SOURCES if args.source == "all" else (args.source,)
    try:
        shard = build.Shard.parse(args.shard) if args.shard else None
    except ValueError as error:
        print(f"perfhint train build-data: {error}", file=sys.stderr)
        return 2
    if not args.from_labels:
        build.label(sources, jobs=args.jobs, shard=shard, limit=args.limit, labels_dir=args.labels)
    if args.label_only:
        return 0
    try:
        records = build.build_records(sources, labels_dir=args.labels)
    except build.StaleLabelError as error:
        print(f"perfhint train build-data: {error}", file=sys.stderr)
        return 1
    counts = build.write_dataset(records, args.out)
    print(f"wrote {counts['all']} records to {args.out} (train {counts['train']}, val {counts['val']}, "
          f"test {counts['test']})")
    if args.card:
        from perfhint_train.datasets.card import write_card
        path = write_card(records)
        print(f"wrote {path}")
    return 0


def _step(module: str, function: str) -> Callable[[Any], Any]:
    """`perfhint_train.<module>.<function>`, imported on first call (those modules import torch lazily too)."""
    def call(argument: Any) -> Any:
        from importlib import import_module
        return getattr(import_module(f"perfhint_train.{module}"), function)(argument)
    return call


# name -> (help, configure, run): the steps of `perfhint train`.
STEPS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "build-data": ("label code with measured or published costs and write the training records",
                   configure_build_data, run_build_data),
    "tokenizer": ("train the encoder's byte-level BPE on permissively licensed code",
                  _step("tokenizer", "configure_parser"), _step("tokenizer", "run")),
    "pretrain": ("masked-token pre-training of the encoder on unlabelled code (init_encoder for fit)",
                 _step("pretrain", "configure_parser"), _step("pretrain", "run")),
    "fit": ("train the RLM from a config file (resumable; DDP under torchrun)",
            _step("train", "configure_parser"), _step("train", "run_fit")),
    "evaluate": ("rank correlation, log error and coverage of a checkpoint or bundle, against baselines",
                 _step("evaluate", "configure_parser"), _step("evaluate", "run")),
    "select": ("choose the checkpoint to ship by validation Spearman (pooled + within groups, per task)",
               _step("selection", "configure_parser"), _step("selection", "run")),
    "calibrate": ("fit a bundle's p10-p90 band width on the validation split (writes its manifest)",
                  _step("calibrate", "configure_parser"), _step("calibrate", "run")),
    "finetune": ("fine-tune a checkpoint on your own `perfhint measure --json` records",
                 _step("finetune", "configure_parser"), _step("finetune", "run")),
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    subparsers = parser.add_subparsers(dest="step", metavar="STEP")
    for name, (summary, configure, handler) in STEPS.items():
        sub = subparsers.add_parser(name, help=summary, description=summary)
        configure(sub)
        sub.set_defaults(handler=handler)


def run(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None)
    if handler is None:
        print(f"perfhint train: name a step: {', '.join(STEPS)} (perfhint train STEP --help)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    return int(handler(args) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perfhint train")
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
