"""The labelled record: one (code, context) -> value example, and where records and label tables live.

What is hard: a record must say exactly what the model will read and exactly what was measured, and
the two differ. The model reads `code` (the region an editor would annotate: a function, a whole
script or program, a Triton module) plus `context` (the `# perfhint: key=value` texts a user would
write). What ran may be more: a TransCoder `f_gold` runs under the upstream import header. The
`provenance` field says what ran, with which tool and flags; `measured_on` names the machine.

Records are never committed (they contain third-party code); they are rebuilt from ../shared plus
the label tables under `training/labels/`, which hold ids, arguments and values only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from perfhint.measure import metrics as _measure_metrics

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_DATASETS = Path(os.environ.get("PERFHINT_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))
LABELS_DIR = REPO_ROOT / "training" / "labels"
DEFAULT_DATA_DIR = REPO_ROOT / ".work" / "data"
RECORDS_FILE = "records.jsonl"
SPLIT_FILES = {"train": "train.jsonl", "val": "val.jsonl", "test": "test.jsonl"}


class SplitError(ValueError):
    """A `--split` that cannot be used: its records are missing, or it is the test split where a command
    chooses or fits something. The message names the fix."""


def split_path(data_dir: Path, split: str, *, choosing: bool = False) -> Path:
    """The records file a `--split` names: a split of `data_dir` (train, val, test) or a .jsonl path.

    `choosing`: the command fits or chooses something from these rows (calibrate, select), so the test
    split is refused: what is chosen on test can no longer be reported on test (ARCHITECTURE.md)."""
    if choosing and split == "test":
        raise SplitError("refusing the test split: fit and choose on val, report on test")
    path = data_dir / SPLIT_FILES[split] if split in SPLIT_FILES else Path(split)
    if not path.is_file():
        raise SplitError(f"records {path} not found; run `perfhint train build-data` or pass --split PATH.jsonl")
    return path

LANGUAGES = ("python", "c", "cpp")
REGION_KINDS = ("function", "script", "program", "triton_kernel")

# Metric names and units: perfhint.measure.metrics defines them (one definition for hints, `perfhint
# measure` and labels); Liger's GPU memory has no measuring counterpart here and is named locally.
PEAK_TRACED_HEAP = _measure_metrics.PEAK_TRACED_HEAP.name  # tracemalloc peak of one call, after a warm-up call
PEAK_RSS = _measure_metrics.PEAK_RSS.name  # peak resident set size of the whole process
GPU_LATENCY = _measure_metrics.MEDIAN_LATENCY.name  # median do_bench time of a Triton kernel
MEMORY_UNIT = _measure_metrics.PEAK_RSS.unit  # "B"
LATENCY_UNIT = _measure_metrics.MEDIAN_LATENCY.unit  # "ms"
GPU_PEAK_MEMORY = "gpu_peak_memory"  # torch max_memory_allocated over the call, MiB (Liger's "MB")
MEMORY_METRICS = (PEAK_TRACED_HEAP, PEAK_RSS)


@dataclass(frozen=True)
class Record:
    id: str
    language: str
    region_kind: str
    metric: str
    unit: str
    code: str
    context: dict[str, str]
    value: float
    group: str
    source: str
    provenance: dict[str, Any] = field(default_factory=dict)
    measured_on: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)

    @staticmethod
    def from_dict(row: dict[str, Any]) -> "Record":
        return Record(**row)


def digest(code: str, context: dict[str, str]) -> str:
    """12 hex of sha256 over what the model reads: a label table row is valid only for this text."""
    payload = json.dumps({"code": code, "context": context}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def write_records(path: Path, records: Iterable[Record]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(record.to_json() + "\n")
            count += 1
    return count


def read_records(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield Record.from_dict(json.loads(line))


def require_shared(sub: str) -> Path:
    path = SHARED_DATASETS / sub
    if not path.exists():
        raise FileNotFoundError(f"dataset folder {path} not found. Check out the shared datasets beside the repo "
                                f"(../shared/datasets) or set PERFHINT_SHARED_DATASETS to their location.")
    return path
