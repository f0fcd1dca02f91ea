"""Re-measure a seeded random sample of labelled memory records and print how far the new values are
from the stored labels (the dataset issue's reproducibility check).

Python function labels (tracemalloc peaks) should reproduce exactly; peak RSS of scripts and programs
within a few percent (page granularity, allocator state). Uses the same measuring code as the builder.
Run: python benchmarks/label_reproducibility.py [--records .work/data/records.jsonl] [--n 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections import defaultdict

from perfhint_train.datasets import harness
from perfhint_train.datasets.transcoder import UPSTREAM_PYTHON_HEADER

MEMORY_KINDS = ("function", "script", "program")


def remeasure(record: dict, batch: harness.PythonBatch) -> float | None:
    kind = record["region_kind"]
    if kind == "function":
        source = record["code"]
        if record["source"].startswith("transcoder"):
            source = UPSTREAM_PYTHON_HEADER + source  # the builder runs TransCoder functions after upstream's header
        qualname = source.split("def ", 1)[1].split("(", 1)[0].strip() if "def " in source else ""
        outcome = batch.measure(source, qualname, record["context"].get("args", "()"))
    elif kind == "script":
        outcome = harness.measure_script(record["code"])
    else:
        outcome = harness.measure_program(record["code"], record["language"])
    return outcome.value if outcome.status == "ok" else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default=".work/data/records.jsonl")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    records = [r for r in map(json.loads, open(args.records)) if r["region_kind"] in MEMORY_KINDS]
    sample = random.Random(args.seed).sample(records, args.n)
    diffs: dict[str, list[float]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    with harness.PythonBatch() as batch:
        for record in sample:
            task = f"{record['language']}/{record['region_kind']}"
            value = remeasure(record, batch)
            if value is None:
                failed[task] += 1
                continue
            label = float(record["value"])
            diffs[task].append(0.0 if value == label else (value - label) / max(label, 1.0))
    print(f"{args.n} records re-measured (seed {args.seed}); relative difference new vs label\n")
    print("| task | n | exact | median |diff| | p95 |diff| | max |diff| | failed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for task in sorted(set(diffs) | set(failed)):
        values = sorted(abs(d) for d in diffs[task]) or [float("nan")]
        exact = sum(d == 0.0 for d in diffs[task])
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        print(f"| {task} | {len(diffs[task])} | {exact} | {statistics.median(values):.2%} | {p95:.2%} | "
              f"{values[-1]:.2%} | {failed[task]} |")


if __name__ == "__main__":
    main()
