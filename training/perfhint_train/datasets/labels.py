"""Label tables: the committed, compact, code-free half of every measured record.

What is hard: the records themselves cannot be committed (they hold third-party code and weigh
megabytes), yet the measurements took CPU-hours and must survive. A label table row holds only the
record id, the input description (a Python `args=` text, or the sizes written into a program's
`main`), the status and value, the unit, a machine id, and a digest of the (code, context) that
was measured. Rebuilding enumerates the tasks again from ../shared and the seeded generator and
joins on id; a digest that differs means the task generator changed since labelling, and the row
is refused rather than silently attached to different code.

Tables are append-only CSV, one per (source, language), written by one line-sized `write` on an
O_APPEND descriptor, so concurrent shards can share a table and an interrupted run loses at most
the line being written. The last row for an id wins. Failed measurements are kept (status timeout,
error, crash, ...) so that a resumed run does not retry them and a chain stays stopped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
from functools import lru_cache
from pathlib import Path

from perfhint_train.datasets.records import LABELS_DIR

COLUMNS = ("id", "status", "value", "unit", "measured_on", "digest", "params")
MACHINES_FILE = "machines.json"


def table_name(source: str, language: str) -> str:
    return f"{source}_{language}.csv"


def read_table(path: Path) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    if not path.exists():
        return rows
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("id"):
                rows[row["id"]] = row
    return rows


def read_tables(labels_dir: Path = LABELS_DIR) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    for path in sorted(labels_dir.glob("*.csv")):
        rows.update(read_table(path))
    return rows


def append_rows(path: Path, rows: list[dict[str, object]]) -> None:
    """Append rows (header first if the file is new) with one write per row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.fstat(descriptor).st_size == 0:
            os.write(descriptor, (",".join(COLUMNS) + "\n").encode("utf-8"))
        for row in rows:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow([row.get(column, "") for column in COLUMNS])
            os.write(descriptor, buffer.getvalue().encode("utf-8"))
    finally:
        os.close(descriptor)


@lru_cache(maxsize=1)
def machine() -> tuple[str, dict[str, str]]:
    """(short id, description) of this machine and toolchain: what a label's value depends on."""
    import numpy

    from perfhint.measure import COMPILE_SETTINGS
    from perfhint_train.datasets.harness import machine_description

    description = {
        **machine_description(), "libc": " ".join(platform.libc_ver()), "numpy": numpy.__version__,
        "c_flags": " ".join(COMPILE_SETTINGS["c"].flags + COMPILE_SETTINGS["c"].libraries),
        "cpp_flags": " ".join(COMPILE_SETTINGS["cpp"].flags + COMPILE_SETTINGS["cpp"].libraries),
        "metrics": "perfhint.measure: peak_traced_heap (functions, batch child using its harness), "
                   "peak_rss (scripts, programs, its sandbox and launcher)",
    }
    ident = "m-" + hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:8]
    return ident, description


def register_machine(labels_dir: Path = LABELS_DIR) -> str:
    ident, description = machine()
    path = labels_dir / MACHINES_FILE
    known = json.loads(path.read_text()) if path.exists() else {}
    if known.get(ident) != description:
        known[ident] = description
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    return ident
