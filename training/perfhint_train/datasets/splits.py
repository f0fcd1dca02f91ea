"""Train/val/test assignment by group, never by row.

What is hard: the unit of leakage is not a record. The same TransCoder problem appears at ten input
sizes and in three languages (plus `_1`, `_2` alternative solutions); a Triton kernel appears in
several repos and again in Liger; a synthetic template appears at many sizes and seeds. So every
record carries a `group` that names its leakage unit, and the split is a pure function of that
string: sha256(group) -> a point in [0, 1) -> train below 0.8, val below 0.9, test above. A group
therefore never straddles two splits, whatever the order or subset of records built, and adding
new groups never moves an old one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from perfhint_train.datasets.records import Record

SPLIT_FRACTIONS = (("train", 0.8), ("val", 0.9), ("test", 1.0))  # cumulative upper bounds
SPLIT_SALT = "perfhint-splits-v1"  # changing it reshuffles every group: do it only with a new dataset version


def split_of(group: str) -> str:
    digest = hashlib.sha256(f"{SPLIT_SALT}:{group}".encode("utf-8")).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    for name, upper in SPLIT_FRACTIONS:
        if point < upper:
            return name
    return SPLIT_FRACTIONS[-1][0]


def split_records(records: Iterable[Record]) -> dict[str, list[Record]]:
    splits: dict[str, list[Record]] = {name: [] for name, _ in SPLIT_FRACTIONS}
    for record in records:
        splits[split_of(record.group)].append(record)
    return splits
