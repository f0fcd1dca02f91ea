"""`perfhint train finetune --data MY.jsonl`: adapt a checkpoint to your own measurements.

The records are what `perfhint measure --json` prints (the dataset schema), so a user measures a
few regions of their code base, fine-tunes, and exports: `perfhint export OUT --out BUNDLE`.

What is hard is small data (tens of records), where the usual recipe overfits in a few epochs:
- a held-out part is kept apart *by group* (a group is one measured file), so early stopping sees
  files it did not train on; with one group it falls back to a random 20 % of rows, and with a single
  record it validates on the training record (regress-lm's fine_tune default);
- the validation loss is measured *before* training too, and the weights with the lowest validation
  loss win, so fine-tuning can never leave a model worse on the held-out part than it started
  (regress-lm's early stopping restores the best weights the same way);
- regress-lm's small-data settings: a constant learning rate of 1e-4 (its colab uses 1e-5 for 270M
  parameters; ours is ~100x smaller), whole epochs, patience counted in epochs;
- records that failed to measure (provenance.status != "ok", value null) are skipped and counted.
The architecture, tokenizer, codec, objectives and input template all come from the starting
checkpoint: the fine-tuned model reads and writes exactly what the original did.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import math
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfhint_train.datasets.records import REPO_ROOT

# The PyTorch checkpoint the shipped bundle (server/perfhint/models/default) was exported from, committed
# beside the training code so `--from default` works in a checkout (its sha256 is the bundle manifest's
# provenance.checkpoint_sha256; tests check it); overridable.
DEFAULT_CHECKPOINT = Path(os.environ.get("PERFHINT_DEFAULT_CHECKPOINT",
                                         REPO_ROOT / "training" / "checkpoints" / "perfhint-default-cpu.safetensors"))
VAL_FRACTION = 0.2


@dataclass
class FinetuneResult:
    out: Path
    train_records: int
    val_records: int
    skipped: int
    val_loss_before: float
    val_loss_after: float
    epochs: int
    stopped_early: bool


def split_held_out(records: Sequence[Mapping[str, Any]], fraction: float = VAL_FRACTION, seed: int = 0
                   ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """(train, val): whole groups to val by hash order; one group -> rows; one record -> it is both."""
    if len(records) < 2:
        return list(records), list(records)

    def rank(text: str) -> str:
        return hashlib.sha256(f"{seed}:{text}".encode("utf-8")).hexdigest()

    groups = sorted({str(record.get("group")) for record in records}, key=rank)
    if len(groups) >= 2:
        n_val = min(len(groups) - 1, max(1, round(fraction * len(groups))))
        val_groups = set(groups[:n_val])
        return ([record for record in records if str(record.get("group")) not in val_groups],
                [record for record in records if str(record.get("group")) in val_groups])
    order = sorted(range(len(records)), key=lambda index: rank(str(records[index].get("id", index))))
    n_val = min(len(records) - 1, max(1, round(fraction * len(records))))
    val_rows = set(order[:n_val])
    return ([record for index, record in enumerate(records) if index not in val_rows],
            [record for index, record in enumerate(records) if index in val_rows])


def usable(record: Mapping[str, Any]) -> bool:
    value = record.get("value")
    status = (record.get("provenance") or {}).get("status", "ok")
    return status == "ok" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finetune(records: Sequence[Mapping[str, Any]], start: str | Path, out: Path, *, lr: float = 1e-4,
             max_epochs: int = 100, patience: int = 10, batch_size: int = 16, seed: int = 0,
             optimizer: str = "muon_adamw", log=print) -> FinetuneResult:  # type: ignore[no-untyped-def]
    import torch

    from perfhint_export.checkpoint import load_checkpoint
    from perfhint_train.train import (TrainConfig, build_run, fit, objectives_from_metrics, save_checkpoint,
                                      validation_loss)

    checkpoint = load_checkpoint(start)
    objectives = objectives_from_metrics(checkpoint.metrics)
    kept = [record for record in records if usable(record)]
    skipped = len(records) - len(kept)
    if not kept:
        raise ValueError(f"none of the {len(records)} records has a measured value (status ok); "
                         f"measure with `perfhint measure FILE --json > MY.jsonl`")
    train_records, val_records = split_held_out(kept, seed=seed)
    architecture = checkpoint.config
    config = TrainConfig(
        tokenizer=f"(embedded in {start})", input_template=dict(checkpoint.input_template), max_input_len=architecture.max_input_len,
        objectives=[objective.name for objective in objectives], decoder_tokenizer=dict(checkpoint.decoder_tokenizer),
        d_model=architecture.d_model, num_encoder_layers=architecture.num_encoder_layers,
        num_decoder_layers=architecture.num_decoder_layers, encoder_nhead=architecture.encoder_nhead,
        decoder_nhead=architecture.decoder_nhead, encoder_dim_feedforward=architecture.encoder_dim_feedforward,
        decoder_dim_feedforward=architecture.decoder_dim_feedforward, dropout=architecture.dropout,
        optimizer=optimizer, lr=lr, batch_size=batch_size, warmup_steps=0, decay="constant", bucket_batches=1,
        eval_examples=len(val_records), spearman_examples=min(64, len(val_records)),
        early_stopping_patience=patience, seed=seed, bf16=False)
    run = build_run(config, train_records=train_records, val_records=val_records, model=checkpoint.model,
                    vocab=checkpoint.encoder_vocab)
    run.source = checkpoint.provenance
    if not run.train_examples:
        raise ValueError(f"no record labels an objective of {start} ({', '.join(o.name for o in objectives)}): "
                         f"dropped {dict(run.dropped)}")
    steps_per_epoch = math.ceil(len(run.train_examples) / batch_size)
    config.max_steps = steps_per_epoch * max_epochs
    config.eval_interval = steps_per_epoch
    config.log_interval = steps_per_epoch
    config.checkpoint_interval = config.max_steps + 1  # only the end; the best weights are what we keep

    device = torch.device("cpu")
    before = validation_loss(run.model, run.val_examples, batch_size=batch_size, pad_id=run.vocab.pad_id,
                             device=device, config=config)
    start_state = copy.deepcopy(run.model.state_dict())
    log(f"fine-tuning {start} on {len(run.train_examples)} records ({len(run.val_examples)} held out, "
        f"{skipped} skipped unmeasured); val loss before {before:.4f}")
    with tempfile.TemporaryDirectory(prefix="perfhint-finetune-") as work:
        result = fit(run, out_dir=Path(work), log=log)
        best_after = min((entry["val_loss"] for entry in result.evals), default=math.inf)
        if result.best_checkpoint is not None and best_after < before:
            run.model.load_state_dict(load_checkpoint(result.best_checkpoint).model.state_dict())
        else:
            run.model.load_state_dict(start_state)  # nothing beat the starting weights on the held-out part
            best_after = before
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, run, run.model.cpu())
    return FinetuneResult(out=out, train_records=len(run.train_examples), val_records=len(run.val_examples),
                          skipped=skipped, val_loss_before=before, val_loss_after=best_after,
                          epochs=math.ceil(result.step / steps_per_epoch), stopped_early=result.stopped_early)


# ----------------------------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="records from `perfhint measure --json` (JSONL)")
    parser.add_argument("--from", dest="start", default="default",
                        help=f"checkpoint to start from: 'default' ({DEFAULT_CHECKPOINT}; "
                             f"PERFHINT_DEFAULT_CHECKPOINT overrides) or a .safetensors path")
    parser.add_argument("--out", type=Path, default=None, help="checkpoint to write (default: DATA with .safetensors)")
    parser.add_argument("--lr", type=float, default=1e-4, help="constant learning rate (default 1e-4)")
    parser.add_argument("--epochs", type=int, default=100, help="at most this many epochs (default 100)")
    parser.add_argument("--patience", type=int, default=10,
                        help="stop after this many epochs without a better held-out loss (default 10)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    import torch

    from perfhint_export.errors import CheckpointError
    from perfhint_train.train import read_jsonl

    if args.threads:
        torch.set_num_threads(args.threads)
    start = DEFAULT_CHECKPOINT if args.start == "default" else Path(args.start)
    if not start.is_file():
        fix = (" Train it (`perfhint train fit --config training/configs/default.py`) or set "
               "PERFHINT_DEFAULT_CHECKPOINT" if args.start == "default" else "")
        print(f"perfhint train finetune: checkpoint {start} not found.{fix}", file=sys.stderr)
        return 2
    if not args.data.is_file():
        print(f"perfhint train finetune: {args.data} not found; make it with "
              f"`perfhint measure FILE --json > {args.data}`", file=sys.stderr)
        return 2
    out = args.out or args.data.with_suffix(".safetensors")
    try:
        result = finetune(read_jsonl(args.data), start, out, lr=args.lr, max_epochs=args.epochs,
                          patience=args.patience, batch_size=args.batch_size, seed=args.seed)
    except (ValueError, CheckpointError) as error:
        print(f"perfhint train finetune: {error}", file=sys.stderr)
        return 2
    print(f"wrote {result.out}: held-out loss {result.val_loss_before:.4f} -> {result.val_loss_after:.4f} "
          f"after {result.epochs} epoch(s) on {result.train_records} records. "
          f"Next: perfhint export {result.out} --out BUNDLE_DIR --precision int8-encoder --keep-float auto")
    return 0
