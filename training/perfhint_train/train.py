"""Training the RLM from labelled records: `perfhint train fit --config training/configs/tiny.py`.

What is hard:
- One model, two kinds of quantity. Memory regions (function, script, program) are labelled in bytes,
  Triton kernels in milliseconds, and the server picks the objective to show by its unit (predict.py:
  a time for kernels, bytes for the rest). So the model has one objective per *quantity* (config
  `objectives`, names from OBJECTIVES below): objective 0 `peak_memory` [B] and objective 1
  `median_latency` [ms]. A record fills its own objective and the others hold the special value NAN.
  The loss covers all of the record's objective and only the *first* token of each other one: after a
  special token the grammar's lock forces the rest of that object, so those positions are no
  prediction at all (they are given target id 0, which the loss ignores as regress-lm ignores
  padding). Teacher forcing still feeds the real NAN tokens, so at inference the latency of a kernel
  is decoded after the same NAN prefix it was trained on. Which memory a memory objective means
  (tracemalloc peak of one call, or the process's peak RSS) is said by the region kind in the input.
- Units. Values are regressed raw (no log): IEEE base-10 tokens carry the exponent, so 96 B and 3 GB
  are equally easy. Records are converted to the objective's unit (MiB -> B, s -> ms) first; a record
  whose metric has no objective (Liger's gpu_peak_memory) is dropped and counted.
- Exact resumption. An interrupted run continues as if it had not stopped: `resume.pt` holds the
  weights, both optimizers (Muon + AdamW), the schedulers, the step, the data position (epoch, batch)
  and the RNG states; the batch order of epoch e is a pure function of (seed, e). A test checks that
  the loss at step N is the same with and without an interruption.
- Padding. Examples are sorted by length inside pools of `bucket_batches` batches (then the batches
  are shuffled), so a batch pads to a similar length instead of to max_input_len. Padding is
  right-padding with id 0; the encoder masks pad keys and RoPE positions start at the first token, so
  padding never changes a real token's output.
- Memory. The reference model's attention (perfhint_export.model.masked_attention) materialises every
  score matrix, so a 2048-token batch of 16 needs ~20 GB on CPU for the backward pass. While training,
  `fused_attention()` swaps it for torch's scaled_dot_product_attention (flash / memory-efficient
  kernels), which gives the same logits (a test checks 1e-5) whenever every query has a key it may
  attend to; it always has here, since every input starts with its template header. Export, parity and
  evaluation keep the reference attention.
- Several GPUs. Under `torchrun` (RANK/WORLD_SIZE set) the model is wrapped in DDP; every rank walks
  the same global batch stream and takes every world_size-th batch, so the data position is one
  number for all ranks. Only rank 0 evaluates and writes files.

The model is perfhint_export's EncoderDecoder (regress-lm's architecture), so what is trained here is
what `perfhint export` converts; the input text is perfhint.input_template's, as the server renders it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any


from perfhint.encoder_vocab import HF_TOKENIZERS, EncoderVocab
from perfhint.input_template import region_name, render_model_input
from perfhint.numbers import PAD_ID, DecoderCodec, codec_from_spec
from perfhint_export.config import RLMConfig
from perfhint_export.sidecar import Metric
from perfhint_train.datasets.records import REPO_ROOT

if TYPE_CHECKING:  # torch is imported inside the functions that use it: `perfhint train --help` stays fast
    import torch
    from torch import Tensor

    from perfhint_export.model import EncoderDecoder

DECODER_BOS_ID = 0  # perfhint_export.model.DECODER_BOS_ID: <pad> starts every decode

CHECKPOINT_FILE = "ckpt.safetensors"  # the latest weights, self-describing (perfhint_export.checkpoint)
BEST_CHECKPOINT_FILE = "best.safetensors"  # the weights with the lowest validation loss so far
RESUME_FILE = "resume.pt"  # everything else needed to continue: optimizers, schedulers, step, data, RNG
LOG_FILE = "log.jsonl"  # one JSON object per logged step or evaluation
CONFIG_FILE = "config.json"  # the resolved config of the run
NAN = float("nan")


# ----------------------------------------------------------------------------------------------- objectives


@dataclass(frozen=True)
class Objective:
    """One decoded object: its unit, and which record metrics are labels of it."""

    name: str
    unit: str
    record_metrics: tuple[str, ...]
    meaning: str


OBJECTIVES: dict[str, Objective] = {objective.name: objective for objective in (
    Objective("peak_memory", "B", ("peak_traced_heap", "peak_rss"),
              "peak memory: for a Python function the tracemalloc peak of one call with the stated arguments "
              "(after one warm-up call); for a Python script or a C/C++ program the peak RSS of the process; "
              "on the machine the training labels were measured on (x86-64 Linux, CPython 3.11, gcc 12 -O2). "
              "`perfhint measure` measures the same"),
    Objective("median_latency", "ms", ("median_latency", "gpu_latency"),
              "median latency of the Triton kernel's launch (triton.testing.do_bench) at the stated "
              "shape and dtype on the stated GPU"),
)}

# unit -> (dimension, factor to the dimension's base unit: bytes or milliseconds)
UNIT_SCALES: dict[str, tuple[str, float]] = {
    "B": ("memory", 1.0), "bytes": ("memory", 1.0), "KiB": ("memory", 1024.0), "MiB": ("memory", 1024.0**2),
    "GiB": ("memory", 1024.0**3), "KB": ("memory", 1024.0), "MB": ("memory", 1024.0**2),  # Liger's "MB" is MiB
    "ms": ("time", 1.0), "s": ("time", 1000.0), "us": ("time", 1e-3), "µs": ("time", 1e-3), "ns": ("time", 1e-6),
}


def convert_unit(value: float, unit: str, to_unit: str) -> float:
    """`value` in `unit` expressed in `to_unit`; raises if the dimensions differ or a unit is unknown."""
    if unit not in UNIT_SCALES or to_unit not in UNIT_SCALES:
        raise ValueError(f"unknown unit {unit if unit not in UNIT_SCALES else to_unit!r}; known: {sorted(UNIT_SCALES)}")
    (dimension, scale), (to_dimension, to_scale) = UNIT_SCALES[unit], UNIT_SCALES[to_unit]
    if dimension != to_dimension:
        raise ValueError(f"cannot convert {unit} ({dimension}) to {to_unit} ({to_dimension})")
    return value * scale / to_scale


def objectives_from_metrics(metrics: Sequence[Any]) -> tuple[Objective, ...]:
    """The Objectives of a checkpoint, from its metrics' names (which must be OBJECTIVES keys)."""
    unknown = [metric.name for metric in metrics if metric.name not in OBJECTIVES]
    if unknown:
        raise ValueError(f"checkpoint metrics {unknown} are not perfhint training objectives ({sorted(OBJECTIVES)}); "
                         f"only checkpoints trained by `perfhint train fit` can be fine-tuned")
    return tuple(OBJECTIVES[metric.name] for metric in metrics)


# ----------------------------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    """Every knob of a run; a config file (training/configs/*.py) overrides some of these defaults."""

    # Data: JSONL records (perfhint_train.datasets.records.Record); relative paths are from the repo root.
    train_data: str = ".work/data/train.jsonl"
    val_data: str = ".work/data/val.jsonl"
    sources: list[str] | None = None  # keep only records from these sources (None: all)
    max_train_records: int | None = None  # cap for smoke runs: a fixed spread of N records (by id hash)
    oversample: dict[str, int] | None = None  # region_kind -> copies of its training records per epoch
    # Input side.
    tokenizer: str = "training/tokenizer/tokenizer.json"
    input_template: dict[str, Any] = field(default_factory=lambda: {"kind": "perfhint-v1", "task": "cost"})
    max_input_len: int = 1024
    # Output side.
    objectives: list[str] = field(default_factory=lambda: ["peak_memory", "median_latency"])
    decoder_tokenizer: dict[str, Any] = field(default_factory=lambda: {
        "type": "ieee", "base": 10, "num_exponent_digits": 1, "num_mantissa_digits": 4, "special_values": ["NAN"]})
    # Model (RLMConfig).
    d_model: int = 256
    num_encoder_layers: int = 6
    num_decoder_layers: int = 2
    encoder_nhead: int = 8
    decoder_nhead: int = 8
    encoder_dim_feedforward: int | None = None
    decoder_dim_feedforward: int | None = None
    dropout: float = 0.0
    init_encoder: str | None = None  # encoder weights from pretrain.py (masked-token pre-training), or None
    init_from: str | None = None  # all weights from a perfhint checkpoint of the same architecture (warm start)
    # Optimisation.
    optimizer: str = "muon_adamw"  # or "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-3
    adam_betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    label_smoothing: float = 0.0  # training loss only (see rlm_loss); 0 = regress-lm's loss
    # What the loss asks of the objectives a record does not label (make_examples): "nan" = their first
    # token is NAN (the model learns which task a text is); "ignore" = no loss on them at all.
    unlabelled_objectives: str = "nan"
    batch_size: int = 32  # examples per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int = 20_000
    warmup_steps: int = 500
    decay: str = "cosine"  # cosine | rsqrt | constant
    min_lr_ratio: float = 0.1  # cosine ends at lr * min_lr_ratio
    bucket_batches: int = 50  # batches per length-sorting pool
    # Evaluation and files.
    eval_interval: int = 500
    eval_examples: int = 2048  # validation examples for the loss
    spearman_examples: int = 256  # validation examples greedily decoded for the quick Spearman
    log_interval: int = 50
    checkpoint_interval: int = 1000
    keep_checkpoints: bool = False  # also keep step-N.safetensors at every checkpoint, to choose by val Spearman
    early_stopping_patience: int | None = None  # evaluations without a better val loss before stopping
    out_dir: str = ".work/runs/default"
    # Hardware and reproducibility.
    bf16: bool = True  # autocast to bfloat16 on CUDA only; CPU always trains in float32
    seed: int = 0

    def model_config(self, encoder_vocab_size: int, codec: DecoderCodec, pad_id: int) -> RLMConfig:
        return RLMConfig(
            encoder_vocab_size=encoder_vocab_size, decoder_vocab_size=codec.vocab_size, d_model=self.d_model,
            num_encoder_layers=self.num_encoder_layers, num_decoder_layers=self.num_decoder_layers,
            decode_len=codec.decode_len, max_input_len=self.max_input_len, encoder_pad_id=pad_id,
            encoder_nhead=self.encoder_nhead, decoder_nhead=self.decoder_nhead,
            encoder_dim_feedforward=self.encoder_dim_feedforward,
            decoder_dim_feedforward=self.decoder_dim_feedforward, dropout=self.dropout)

    def resolve(self, path: str | None) -> Path | None:
        if path is None:
            return None
        return Path(path) if Path(path).is_absolute() else REPO_ROOT / path

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Keys whose change makes a resume file unusable (the architecture, the data order, the targets).
RESUME_INVARIANT_KEYS = ("tokenizer", "input_template", "max_input_len", "objectives", "decoder_tokenizer",
                         "d_model", "num_encoder_layers", "num_decoder_layers", "encoder_nhead", "decoder_nhead",
                         "encoder_dim_feedforward", "decoder_dim_feedforward", "optimizer", "batch_size",
                         "grad_accum", "bucket_batches", "seed", "oversample")


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """A config file of plain `name = literal` assignments (comments and a docstring allowed) + overrides.

    The file is parsed, never executed: every value must be a Python literal, so a config cannot hide
    logic, and a misspelt name is an error rather than a silently ignored setting.
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                continue  # docstring
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
                raise ValueError(f"{path}:{node.lineno}: a config holds only `name = literal` assignments")
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                raise ValueError(f"{path}:{node.lineno}: the value of {node.targets[0].id} is not a literal "
                                 f"(write 1_000_000, not 10**6)") from None
    values.update(overrides or {})
    known = {item.name for item in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
    config = TrainConfig(**values)
    problems = []
    if config.optimizer not in ("adamw", "muon_adamw"):
        problems.append(f"optimizer {config.optimizer!r}: use 'adamw' or 'muon_adamw'")
    if config.unlabelled_objectives not in UNLABELLED_MODES:
        problems.append(f"unlabelled_objectives {config.unlabelled_objectives!r}: use one of {list(UNLABELLED_MODES)}")
    if config.decay not in ("cosine", "rsqrt", "constant"):
        problems.append(f"decay {config.decay!r}: use 'cosine', 'rsqrt' or 'constant'")
    problems += [f"objective {name!r} is not one of {sorted(OBJECTIVES)}" for name in config.objectives
                 if name not in OBJECTIVES]
    specials = config.decoder_tokenizer.get("special_values") or []
    if len(config.objectives) > 1 and "NAN" not in specials and specials != "default":
        problems.append("several objectives need decoder_tokenizer special_values to include 'NAN' "
                        "(the filler of the objectives a record does not label)")
    if problems:
        raise ValueError("invalid config: " + "; ".join(problems))
    return config


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`--set key=value` pairs; values are Python literals, or plain strings when they are not."""
    overrides = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator:
            raise ValueError(f"--set {pair!r}: write key=value")
        try:
            overrides[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[key.strip()] = text
    return overrides


# ----------------------------------------------------------------------------------------------- examples


@dataclass(frozen=True)
class ContextTexts:
    """What render_model_input reads from a context: its source texts."""

    texts: Mapping[str, str]


@dataclass
class Example:
    ids: list[int]  # encoder ids, truncated to max_input_len
    targets: list[int]  # decoder ids, decode_len of them
    loss_targets: list[int]  # targets with the grammar-forced positions set to PAD_ID (ignored)
    objective: int  # which objective the record labels
    value: float  # the label in the objective's unit
    n_tokens: int  # encoder tokens before truncation
    record: dict[str, Any]  # id, group, language, region_kind, metric, code, context (for evaluation)


def model_text(record: Mapping[str, Any], template: Mapping[str, Any]) -> str:
    return render_model_input(template, language=record["language"], region_kind=record["region_kind"],
                              code=record["code"], context=ContextTexts(dict(record.get("context") or {})))


def record_region(record: Mapping[str, Any]) -> str:
    """`language/region_kind` of a record: the region the runtime is told beside the text (predict_texts)."""
    return region_name(record["language"], record["region_kind"])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def record_objective(record: Mapping[str, Any], objectives: Sequence[Objective]) -> tuple[int, float] | None:
    """(objective index, value in its unit), or None when the record labels none of the objectives."""
    value = record.get("value")
    if value is None or isinstance(value, bool) or not math.isfinite(float(value)) or float(value) < 0:
        return None
    for index, objective in enumerate(objectives):
        if record.get("metric") in objective.record_metrics:
            return index, convert_unit(float(value), str(record.get("unit") or objective.unit), objective.unit)
    return None


UNLABELLED_MODES = ("nan", "ignore")


def make_examples(records: Sequence[Mapping[str, Any]], *, vocab: EncoderVocab, codec: DecoderCodec,
                  objectives: Sequence[Objective], template: Mapping[str, Any], max_input_len: int,
                  unlabelled: str = "nan") -> tuple[list[Example], Counter[str]]:
    """Records -> training examples; the Counter says why records were dropped.

    A record labels one objective; the others are filled with NAN. With `unlabelled="nan"` the loss
    counts their first token (so the model learns to say which task a text is, and says NAN where the
    runtime then forces a number: decoding.CostGrammar); with "ignore" it counts only the labelled
    objective's tokens, and the model is never taught NAN."""
    if unlabelled not in UNLABELLED_MODES:
        raise ValueError(f"unlabelled must be one of {list(UNLABELLED_MODES)}, got {unlabelled!r}")
    examples, dropped = [], Counter()
    per_obj = codec.num_tokens_per_obj
    for record in records:
        if (record.get("provenance") or {}).get("status", "ok") != "ok":
            dropped["status not ok"] += 1
            continue
        labelled = record_objective(record, objectives)
        if labelled is None:
            dropped[f"no objective for metric {record.get('metric')!r} or no finite value"] += 1
            continue
        objective, value = labelled
        values = [NAN] * len(objectives)
        values[objective] = value
        targets = codec.encode(values)
        loss_targets = [token if (position // per_obj == objective
                                  or (unlabelled == "nan" and position % per_obj == 0)) else PAD_ID
                        for position, token in enumerate(targets)]
        ids = vocab.encode(model_text(record, template))
        kept = {key: record.get(key) for key in ("id", "group", "language", "region_kind", "metric", "unit", "code",
                                                 "context", "source")}
        examples.append(Example(ids=ids[:max_input_len], targets=targets, loss_targets=loss_targets,
                                objective=objective, value=value, n_tokens=len(ids), record=kept))
    return examples, dropped


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, Tensor]:
    """Right-padded encoder ids [B, L], decoder input [BOS, y_1..y_{T-1}] and loss targets [B, T]."""
    import torch

    length = max(1, max(len(example.ids) for example in examples))
    encoder_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    for row, example in enumerate(examples):
        encoder_ids[row, : len(example.ids)] = torch.tensor(example.ids, dtype=torch.long)
    targets = torch.tensor([example.targets for example in examples], dtype=torch.long)
    bos = torch.full((len(examples), 1), DECODER_BOS_ID, dtype=torch.long)
    return {"encoder_ids": encoder_ids, "decoder_input_ids": torch.cat([bos, targets[:, :-1]], dim=1),
            "loss_targets": torch.tensor([example.loss_targets for example in examples], dtype=torch.long)}


def rlm_loss(logits: Tensor, loss_targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """regress-lm's loss: per example the mean token cross-entropy over target ids != 0, then the batch mean.

    `label_smoothing` (0 in regress-lm) moves that share of each target's probability onto the whole
    decoder vocabulary. It bounds how far apart a trained model's logits can drift: a model trained to
    loss 0.1 without it decodes 32 near-identical samples (a band of nothing) and has logits so large
    that int8's ~1 % relative error exceeds the export parity gate's absolute 0.2. Validation loss is
    always computed without it, so runs stay comparable."""
    from torch.nn import functional as F

    token_loss = F.cross_entropy(logits.float().transpose(1, 2), loss_targets, ignore_index=PAD_ID, reduction="none",
                                 label_smoothing=label_smoothing)
    counted = (loss_targets != PAD_ID).float()
    return ((token_loss * counted).sum(dim=1) / counted.sum(dim=1).clamp(min=1.0)).mean()


# ----------------------------------------------------------------------------------------------- batches


def epoch_batches(lengths: Sequence[int], batch_size: int, *, seed: int, epoch: int, bucket_batches: int
                  ) -> list[list[int]]:
    """The batches (lists of example indices) of one epoch: a pure function of (lengths, seed, epoch).

    Shuffle, sort by length inside pools of `bucket_batches` batches, cut into batches, shuffle the
    batches. The last batch of a pool may be short.
    """
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    pool_size = batch_size * max(1, bucket_batches)
    batches = []
    for start in range(0, len(order), pool_size):
        pool = sorted(order[start : start + pool_size], key=lambda index: (lengths[index], index))
        batches += [pool[offset : offset + batch_size] for offset in range(0, len(pool), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[index] for index in shuffled]


@dataclass
class DataPosition:
    """Where the global batch stream is: the next batch is batch `index` of epoch `epoch`."""

    epoch: int = 0
    index: int = 0


class BatchStream:
    """The endless stream of batches over epochs; every rank walks it in step (see the module docstring)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int, bucket_batches: int,
                 position: DataPosition | None = None) -> None:
        if not lengths:
            raise ValueError("no training examples: check train_data and the records' metrics")
        self.lengths, self.batch_size, self.seed, self.bucket_batches = list(lengths), batch_size, seed, bucket_batches
        self.position = position or DataPosition()
        self._epoch_cache: tuple[int, list[list[int]]] | None = None

    def _batches(self, epoch: int) -> list[list[int]]:
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            self._epoch_cache = (epoch, epoch_batches(self.lengths, self.batch_size, seed=self.seed, epoch=epoch,
                                                      bucket_batches=self.bucket_batches))
        return self._epoch_cache[1]

    def next(self) -> list[int]:
        batches = self._batches(self.position.epoch)
        if self.position.index >= len(batches):
            self.position = DataPosition(self.position.epoch + 1, 0)
            batches = self._batches(self.position.epoch)
        batch = batches[self.position.index]
        self.position = DataPosition(self.position.epoch, self.position.index + 1)
        return batch


# ----------------------------------------------------------------------------------------------- optimizers

# regress-lm (FACTS §7) gives Muon every 2-D weight whose name lacks these words. It means to keep
# embeddings on AdamW but its pattern misses `tgt_tok_emb`; `emb` here catches it, as its comment intends.
ADAMW_ONLY = re.compile(r"emb|shared|generator|lm_head|output")


def make_optimizers(model: torch.nn.Module, config: TrainConfig) -> list[torch.optim.Optimizer]:
    import torch

    decay, no_decay, muon = [], [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim < 2:
            no_decay.append(parameter)
        elif config.optimizer == "muon_adamw" and parameter.ndim == 2 and not ADAMW_ONLY.search(name):
            muon.append(parameter)
        else:
            decay.append(parameter)
    adamw = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=config.lr, betas=tuple(config.adam_betas))
    if not muon:
        return [adamw]
    return [torch.optim.Muon(muon, lr=config.lr, weight_decay=config.weight_decay, adjust_lr_fn="match_rms_adamw"),
            adamw]


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine to min_lr_ratio at max_steps, or rsqrt(warmup/step), or constant."""
    warmup = max(0, config.warmup_steps)
    if step < warmup:
        return (step + 1) / warmup
    if config.decay == "constant":
        return 1.0
    if config.decay == "rsqrt":
        return math.sqrt(max(warmup, 1) / max(step, 1))
    progress = min(1.0, (step - warmup) / max(1, config.max_steps - warmup))
    return config.min_lr_ratio + (1.0 - config.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------------------------- the run


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_env() -> "Distributed":
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            return Distributed(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                               int(os.environ.get("LOCAL_RANK", 0)))
        return Distributed()


@dataclass
class FitResult:
    out_dir: Path
    step: int
    train_losses: list[tuple[int, float]]  # (step, mean loss over the log interval)
    evals: list[dict[str, Any]]
    checkpoint: Path | None
    best_checkpoint: Path | None
    examples_per_second: float
    stopped_early: bool = False


@dataclass
class Run:
    """Everything a run needs, built once from the config (and shared by fit, finetune and evaluate)."""

    config: TrainConfig
    vocab: EncoderVocab
    codec: DecoderCodec
    objectives: tuple[Objective, ...]
    model: EncoderDecoder
    train_examples: list[Example]
    val_examples: list[Example]
    dropped: Counter[str]
    source: Any = None  # perfhint_export Provenance of the checkpoint a fine-tune started from

    @property
    def metrics(self) -> list[Metric]:
        return [Metric(objective.name, objective.unit, objective.meaning) for objective in self.objectives]


def load_records(path: Path | None, sources: Sequence[str] | None = None, limit: int | None = None
                 ) -> list[dict[str, Any]]:
    if path is None:
        return []
    if not path.is_file():
        raise FileNotFoundError(f"records file {path} not found; run `perfhint train build-data` "
                                f"or set train_data/val_data in the config")
    records = read_jsonl(path)
    if sources:
        records = [record for record in records if record.get("source") in sources]
    if limit is not None:  # a spread over sources and tasks, not the head of a file sorted by source
        records = sorted(records, key=lambda record: _stable_hash(str(record.get("id"))))[:limit]
    return records


def build_run(config: TrainConfig, *, train_records: Sequence[Mapping[str, Any]] | None = None,
              val_records: Sequence[Mapping[str, Any]] | None = None, model: EncoderDecoder | None = None,
              vocab: EncoderVocab | None = None) -> Run:
    """Vocabulary, codec, examples and a fresh model (or the given one) for `config`."""
    import torch

    from perfhint_export.model import EncoderDecoder

    vocab = vocab or EncoderVocab.from_file(config.resolve(config.tokenizer), HF_TOKENIZERS)
    objectives = tuple(OBJECTIVES[name] for name in config.objectives)
    codec = codec_from_spec(config.decoder_tokenizer, len(objectives))
    if train_records is None:
        train_records = load_records(config.resolve(config.train_data), config.sources, config.max_train_records)
    if val_records is None:
        val_records = load_records(config.resolve(config.val_data), config.sources)
    common = dict(vocab=vocab, codec=codec, objectives=objectives, template=config.input_template,
                  max_input_len=config.max_input_len, unlabelled=config.unlabelled_objectives)
    if config.oversample:  # task balance: a small task's records seen k times per epoch
        train_records = [record for record in train_records
                         for _ in range(max(1, int(config.oversample.get(str(record.get("region_kind")), 1))))]
    train_examples, dropped = make_examples(train_records, **common)
    val_examples, val_dropped = make_examples(val_records, **common)
    if model is None:
        torch.manual_seed(config.seed)
        model = EncoderDecoder(config.model_config(vocab.size, codec, vocab.pad_id))
        if config.init_encoder:
            from perfhint_train.pretrain import load_encoder

            load_encoder(model, config.resolve(config.init_encoder))
        if config.init_from:
            warm_start(model, config.resolve(config.init_from), vocab=vocab, codec=codec)
    return Run(config=config, vocab=vocab, codec=codec, objectives=objectives, model=model,
               train_examples=train_examples, val_examples=val_examples, dropped=dropped + val_dropped)


def warm_start(model: EncoderDecoder, path: Path, *, vocab: EncoderVocab, codec: DecoderCodec) -> None:
    """Load every weight of a perfhint checkpoint into `model`, refusing one that reads or writes differently.

    The input template may differ (that is the point: continuing a model on a richer header), but the
    tokenizer and the codec must be the same, or the embedding rows would mean other tokens."""
    from perfhint_export.checkpoint import load_checkpoint

    start = load_checkpoint(path)
    problems = []
    if start.encoder_vocab.sha256 != vocab.sha256:
        problems.append("its encoder tokenizer differs from the config's")
    if start.codec.vocab_size != codec.vocab_size or start.codec.decode_len != codec.decode_len:
        problems.append("its decoder codec differs from the config's")
    mine, theirs = model.state_dict(), start.model.state_dict()
    shapes = [key for key in mine if key not in theirs or tuple(theirs[key].shape) != tuple(mine[key].shape)]
    if shapes:
        problems.append(f"its architecture differs ({len(shapes)} weights, e.g. {shapes[0]})")
    if problems:
        raise ValueError(f"init_from {path}: " + "; ".join(problems) + "; train from scratch (init_from = None) "
                         "or point init_from at a checkpoint of this config's architecture")
    model.load_state_dict(theirs)


def _sdpa_attention(query: Tensor, key: Tensor, value: Tensor, allowed: Tensor) -> Tensor:
    from torch.nn import functional as F

    return F.scaled_dot_product_attention(query, key, value, attn_mask=allowed)


@contextlib.contextmanager
def fused_attention():
    """Train with torch's fused attention; see the module docstring for when it equals the reference."""
    import perfhint_export.model as model_module

    reference = model_module.masked_attention
    model_module.masked_attention = _sdpa_attention
    try:
        yield
    finally:
        model_module.masked_attention = reference


def _device(dist: Distributed) -> torch.device:
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def _autocast(device: torch.device, config: TrainConfig):
    import torch

    enabled = device.type == "cuda" and config.bf16
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def validation_loss(model: EncoderDecoder, examples: Sequence[Example], *, batch_size: int, pad_id: int,
                    device: torch.device, config: TrainConfig) -> float:
    """Example-weighted mean loss, batched by length (the order does not change the value)."""
    import torch

    if not examples:
        return NAN
    model.eval()
    order = sorted(range(len(examples)), key=lambda index: len(examples[index].ids))
    total = 0.0
    for start in range(0, len(order), batch_size):
        chunk = [examples[index] for index in order[start : start + batch_size]]
        batch = {key: value.to(device) for key, value in collate(chunk, pad_id).items()}
        with torch.no_grad(), _autocast(device, config), fused_attention():
            logits = model(batch["encoder_ids"], batch["decoder_input_ids"])
        total += rlm_loss(logits, batch["loss_targets"]).item() * len(chunk)
    return total / len(examples)


def greedy_values(model: EncoderDecoder, codec: DecoderCodec, examples: Sequence[Example], *, batch_size: int,
                  pad_id: int, device: torch.device) -> list[float]:
    """The greedy decode of each example's own objective (NaN when it decoded to a special value)."""
    model.eval()
    values = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        ids = collate(chunk, pad_id)["encoder_ids"].to(device)
        for example, row in zip(chunk, model.greedy_decode(ids, codec).cpu().tolist()):
            value = codec.decode(row)[example.objective]
            values.append(float(value) if not isinstance(value, str) else NAN)
    return values


def spearman_by_objective(examples: Sequence[Example], predictions: Sequence[float],
                          objectives: Sequence[Objective]) -> dict[str, float]:
    from scipy.stats import spearmanr

    result = {}
    for index, objective in enumerate(objectives):
        pairs = [(prediction, example.value) for example, prediction in zip(examples, predictions)
                 if example.objective == index and math.isfinite(prediction)]
        if len(pairs) >= 3 and len({truth for _, truth in pairs}) > 1 and len({pred for pred, _ in pairs}) > 1:
            result[objective.name] = float(spearmanr(*zip(*pairs)).statistic)
        elif pairs:
            result[objective.name] = NAN
    return result


def greedy_task_scores(examples: Sequence[Example], predictions: Sequence[float]) -> dict[str, list[float]]:
    """{task: [pooled Spearman, mean within-group Spearman]} of greedy decodes, per task as `select` scores.

    A cheap stand-in for `perfhint train select` while training (greedy, not the median of 32 samples;
    PyTorch, not the exported bundle), so a long run's log says which steps are worth selecting among.
    Rows whose greedy decode is a special value are left out; a cell that cannot be computed is NaN."""
    from perfhint_train.baselines import task_of
    from perfhint_train.evaluate import score

    by_task: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        by_task.setdefault(task_of(example.record), []).append(index)
    scores = {}
    for task in sorted(by_task):
        indices = by_task[task]
        if not any(math.isfinite(predictions[index]) for index in indices):
            continue
        cells = score([examples[index].value for index in indices], [predictions[index] for index in indices],
                      None, None, [str(examples[index].record.get("group")) for index in indices],
                      str(examples[indices[0]].record.get("unit")))  # the same scoring as evaluate and select
        scores[task] = [cells["spearman"], cells["spearman_within_groups"]]
    return scores


def _stable_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def spread_subset(examples: Sequence[Example], count: int) -> list[Example]:
    """A fixed subset that mixes tasks: the `count` examples with the smallest hash of their record id."""
    return sorted(examples, key=lambda example: _stable_hash(str(example.record.get("id"))))[:count]


def _rng_state(device: torch.device) -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                             "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _atomic_torch_save(payload: Any, path: Path) -> None:
    import torch

    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def save_checkpoint(path: Path, run: Run, model: EncoderDecoder) -> Path:
    """The self-describing checkpoint (written beside, then renamed, so a crash never leaves half a file)."""
    from perfhint_export.checkpoint import save_perfhint_checkpoint

    temporary = path.with_name(path.name + ".tmp.safetensors")
    save_perfhint_checkpoint(temporary, model, decoder_tokenizer=run.codec.spec, max_num_objs=len(run.objectives),
                             metrics=run.metrics, encoder_vocab=run.vocab, input_template=run.config.input_template,
                             source=run.source)
    os.replace(temporary, path)
    return path


PROBE_STEPS = 100  # steps timed before a --minutes budget sets max_steps


def fit(run: Run, *, out_dir: Path, resume: bool = False, max_steps: int | None = None,
        minutes: float | None = None, log: Callable[[str], None] = print) -> FitResult:
    """Train `run.model` on `run.train_examples`; see the module docstring for what is guaranteed.

    `minutes` fits the run to a wall-clock budget (a lent GPU for 10 minutes, a CPU session): the
    steps/s of the first PROBE_STEPS steps (or of the warm-up, if shorter) sets max_steps, and with it
    the cosine, so the schedule still decays to its end inside the budget. Probing inside the warm-up
    keeps that honest: the warm-up's learning rates do not depend on max_steps. Evaluations after the
    probe are not in the estimate; leave them room. Not with `resume`: the first run fixed the schedule."""
    import torch

    config = run.config
    dist = Distributed.from_env()
    if dist.world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    device = _device(dist)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    max_steps = config.max_steps if max_steps is None else max_steps
    if minutes is not None and resume:
        raise ValueError("--minutes fixes the schedule of a new run; resume it without --minutes "
                         "(its config.json holds the max_steps the budget chose)")

    model = run.model.to(device)
    optimizers = make_optimizers(model, config)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config))
                  for optimizer in optimizers]
    step, position, best_val, evals_since_best = 0, DataPosition(), math.inf, 0
    evals: list[dict[str, Any]] = []
    resume_path = out_dir / RESUME_FILE
    if resume:
        if not resume_path.is_file():
            raise FileNotFoundError(f"--resume: no {RESUME_FILE} in {out_dir}; start without --resume")
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        changed = [key for key in RESUME_INVARIANT_KEYS if state["config"].get(key) != _jsonable(config.to_dict()[key])]
        if changed:
            raise ValueError(f"--resume: the config changed in {changed} since {resume_path} was written; "
                             f"resume with the same config or start a new --out")
        model.load_state_dict(state["model"])
        for optimizer, optimizer_state in zip(optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(optimizer_state)
        for scheduler, scheduler_state in zip(schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(scheduler_state)
        step, position = int(state["step"]), DataPosition(int(state["epoch"]), int(state["index"]))
        best_val, evals_since_best = float(state["best_val"]), int(state["evals_since_best"])
        _set_rng_state(state["rng"], device)
        log(f"resumed at step {step} (epoch {position.epoch}, batch {position.index})")
    else:
        torch.manual_seed(config.seed + dist.rank)
        random.seed(config.seed)

    wrapped: torch.nn.Module = model
    if dist.world_size > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    stream = BatchStream([len(example.ids) for example in run.train_examples], config.batch_size, seed=config.seed,
                         bucket_batches=config.bucket_batches, position=position)
    def write_config() -> None:  # again when a --minutes budget sets max_steps
        (out_dir / CONFIG_FILE).write_text(json.dumps(_jsonable(config.to_dict()), indent=1) + "\n", encoding="utf-8")

    if dist.is_main:
        write_config()
        log(f"{len(run.train_examples)} train / {len(run.val_examples)} val examples; "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; device {device}, "
            f"world size {dist.world_size}; dropped: {dict(run.dropped) or 'none'}")
    eval_set = spread_subset(run.val_examples, config.eval_examples)
    spearman_set = spread_subset(run.val_examples, config.spearman_examples)
    val_batch = max(config.batch_size, 8)

    probe_step = step + max(1, min(PROBE_STEPS, config.warmup_steps)) if minutes is not None else None
    loop_start = time.perf_counter()
    train_losses: list[tuple[int, float]] = []
    window_loss, window_steps, window_examples, window_start = 0.0, 0, 0, time.perf_counter()
    total_examples, total_time = 0, 0.0
    checkpoint = best = None
    if resume and (out_dir / BEST_CHECKPOINT_FILE).is_file() and math.isfinite(best_val):
        best = out_dir / BEST_CHECKPOINT_FILE  # written before the interruption; still the best so far
    stopped_early = False
    log_file = (out_dir / LOG_FILE).open("a", encoding="utf-8") if dist.is_main else None

    def write_log(entry: dict[str, Any]) -> None:
        if log_file is not None:
            log_file.write(json.dumps(entry) + "\n")
            log_file.flush()

    def save_resume() -> None:
        _atomic_torch_save({
            "config": _jsonable(config.to_dict()), "model": model.state_dict(),
            "optimizers": [optimizer.state_dict() for optimizer in optimizers],
            "schedulers": [scheduler.state_dict() for scheduler in schedulers],
            "step": step, "epoch": stream.position.epoch, "index": stream.position.index,
            "best_val": best_val, "evals_since_best": evals_since_best, "rng": _rng_state(device),
        }, resume_path)

    try:
        while step < max_steps:
            model.train()
            step_loss = 0.0
            step_examples = 0
            for micro in range(config.grad_accum):
                global_batches = [stream.next() for _ in range(dist.world_size)]
                indices = global_batches[dist.rank]
                batch = {key: value.to(device) for key, value in
                         collate([run.train_examples[index] for index in indices], run.vocab.pad_id).items()}
                sync = micro == config.grad_accum - 1 or dist.world_size == 1
                with (wrapped.no_sync() if not sync else contextlib.nullcontext()):  # all-reduce once per step
                    with _autocast(device, config), fused_attention():
                        logits = wrapped(batch["encoder_ids"], batch["decoder_input_ids"])
                        loss = rlm_loss(logits, batch["loss_targets"], config.label_smoothing)
                    (loss / config.grad_accum).backward()
                step_loss += loss.item() / config.grad_accum
                step_examples += sum(len(batch_indices) for batch_indices in global_batches)
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            for optimizer in optimizers:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            for scheduler in schedulers:
                scheduler.step()
            step += 1
            if step == probe_step:
                elapsed = time.perf_counter() - loop_start
                planned = step + max(1, int((minutes * 60 - elapsed) * step / elapsed))
                if dist.world_size > 1:  # every rank must stop at the same step
                    agreed = torch.tensor([planned], device=device)
                    torch.distributed.broadcast(agreed, 0)
                    planned = int(agreed.item())
                config.max_steps = max_steps = planned
                if dist.is_main:
                    write_config()
                    log(f"time budget {minutes:g} min: {step / elapsed:.2f} steps/s over the first {step} steps, "
                        f"so max_steps = {planned}")
            window_loss += step_loss
            window_steps += 1
            window_examples += step_examples

            if step % config.log_interval == 0 or step == max_steps:
                elapsed = time.perf_counter() - window_start
                total_examples += window_examples
                total_time += elapsed
                mean_loss = window_loss / window_steps
                if dist.world_size > 1:  # the mean over every rank's batches, not rank 0's alone
                    reduced = torch.tensor([mean_loss], device=device)
                    torch.distributed.all_reduce(reduced)
                    mean_loss = reduced.item() / dist.world_size
                train_losses.append((step, mean_loss))
                if dist.is_main:
                    lr = optimizers[-1].param_groups[0]["lr"]
                    log(f"step {step}: loss {mean_loss:.4f}, lr {lr:.2e}, {window_examples / elapsed:.1f} examples/s")
                    write_log({"step": step, "loss": mean_loss, "lr": lr, "examples_per_s": window_examples / elapsed})
                window_loss, window_steps, window_examples, window_start = 0.0, 0, 0, time.perf_counter()

            is_eval = (config.eval_interval > 0 and step % config.eval_interval == 0) or step == max_steps
            if is_eval and dist.is_main and eval_set:
                started = time.perf_counter()
                val_loss = validation_loss(model, eval_set, batch_size=val_batch, pad_id=run.vocab.pad_id,
                                           device=device, config=config)
                predictions = greedy_values(model, run.codec, spearman_set, batch_size=val_batch,
                                            pad_id=run.vocab.pad_id, device=device)
                spearman = spearman_by_objective(spearman_set, predictions, run.objectives)
                tasks = greedy_task_scores(spearman_set, predictions)
                entry = {"step": step, "val_loss": val_loss, "val_spearman": spearman, "val_tasks": tasks,
                         "val_score": sum(cell for cells in tasks.values() for cell in cells if math.isfinite(cell))}
                evals.append(entry)
                write_log(entry)
                improved = val_loss < best_val
                if improved:
                    best_val, evals_since_best = val_loss, 0
                    best = save_checkpoint(out_dir / BEST_CHECKPOINT_FILE, run, model)
                else:
                    evals_since_best += 1
                log(f"step {step}: val loss {val_loss:.4f}{' (best)' if improved else ''}, greedy Spearman "
                    + ", ".join(f"{name} {value:.3f}" for name, value in spearman.items())
                    + f"; per-task sum {entry['val_score']:.2f}"
                    + f" ({time.perf_counter() - started:.1f}s)")
                window_start += time.perf_counter() - started  # evaluation time is not training throughput
                if config.early_stopping_patience is not None and evals_since_best > config.early_stopping_patience:
                    log(f"early stop at step {step}: no better val loss in {evals_since_best} evaluations")
                    stopped_early = True
            if dist.world_size > 1:
                flag = torch.tensor([int(stopped_early)], device=device)
                torch.distributed.broadcast(flag, 0)
                stopped_early = bool(flag.item())
            if (step % config.checkpoint_interval == 0 or step == max_steps or stopped_early) and dist.is_main:
                checkpoint = save_checkpoint(out_dir / CHECKPOINT_FILE, run, model)
                if config.keep_checkpoints:  # validation loss can rise while ranking improves: keep each one
                    shutil.copyfile(checkpoint, out_dir / f"step-{step}.safetensors")
                save_resume()
            if stopped_early:
                break
    finally:
        if log_file is not None:
            log_file.close()
    if dist.world_size > 1:
        torch.distributed.barrier()
    return FitResult(out_dir=out_dir, step=step, train_losses=train_losses, evals=evals, checkpoint=checkpoint,
                     best_checkpoint=best, examples_per_second=total_examples / total_time if total_time else NAN,
                     stopped_early=stopped_early)


def _jsonable(value: Any) -> Any:
    """Tuples -> lists, so a config compares equal to its JSON round trip."""
    return json.loads(json.dumps(value))


# ----------------------------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="experiment file, e.g. training/configs/tiny.py")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: the config's out_dir)")
    parser.add_argument("--resume", action="store_true", help=f"continue from OUT/{RESUME_FILE}")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="train to this step (overrides max_steps, so the cosine schedule ends there too)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="fit the run to this wall-clock budget: max_steps (and the cosine) from the speed of "
                             f"the first {PROBE_STEPS} steps; evaluations are not counted, leave them room")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value (a Python literal), e.g. --set lr=3e-4; repeatable")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")


def run_fit(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        overrides = parse_overrides(args.overrides)
        if args.max_steps is not None:
            overrides["max_steps"] = args.max_steps
        config = load_config(args.config, overrides)
        run = build_run(config)
    except (ValueError, FileNotFoundError) as error:
        print(f"perfhint train fit: {error}", file=sys.stderr)
        return 2
    out_dir = args.out or config.resolve(config.out_dir)
    try:
        result = fit(run, out_dir=out_dir, resume=args.resume, minutes=args.minutes)
    except (ValueError, FileNotFoundError) as error:
        print(f"perfhint train fit: {error}", file=sys.stderr)
        return 2
    if Distributed.from_env().is_main:
        print(f"done at step {result.step}: {result.checkpoint} "
              f"({result.examples_per_second:.1f} examples/s); best val: {result.best_checkpoint}")
    return 0
