"""build-data: enumerate tasks, label what is missing (in parallel, sharded, resumable), write records.

What is hard:

- Labelling is CPU-hours on shared cores, and it is interrupted. Work is cut into *chains* (one
  problem or template scaled up): a chain's tasks run in increasing size inside one worker and
  stop at the first failure, or when a measurement took so long that the next, larger one would
  time out (that next task is labelled `stopped`). Every result is appended to its label table at
  once, so a rerun skips labelled ids and resumes each chain where it stopped.
- `--shard i/n` takes the chains whose sha256(chain) % n == i: shards partition the work across
  machines or processes without coordination and append to the same tables.
- Records are a pure function of (../shared, the generator seed, the label tables): `--from-labels`
  measures nothing, so a fresh checkout rebuilds the exact training data the tables describe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from perfhint_train.datasets import harness, labels
from perfhint_train.datasets.records import (DEFAULT_DATA_DIR, LABELS_DIR, MEMORY_UNIT, RECORDS_FILE, REPO_ROOT,
                                             SPLIT_FILES, Record, digest, write_records)
from perfhint_train.datasets.splits import split_records
from perfhint_train.datasets.transcoder import Task

LOG = logging.getLogger("perfhint.train.datasets")
MEASURED_SOURCES = ("transcoder", "synthetic")
PUBLISHED_SOURCES = ("tritonbench", "liger")
ALL_SOURCES = MEASURED_SOURCES + PUBLISHED_SOURCES
SLOW_FRACTION = 0.3  # a chain stops after a task that used this share of its timeout (the next is ~3x bigger)
DEFAULT_LOG = REPO_ROOT / ".work" / "labels.log"
LEGACY_UNITS = {"bytes": MEMORY_UNIT}  # rows written before units followed perfhint.measure


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @staticmethod
    def parse(text: str) -> "Shard":
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard {text!r}: write it as i/n, e.g. 0/4 (shards 0..n-1)") from None
        if not 0 <= index < count:
            raise ValueError(f"--shard {text!r}: need 0 <= i < n")
        return Shard(index, count)

    def owns(self, chain: str) -> bool:
        return int.from_bytes(hashlib.sha256(chain.encode()).digest()[:8], "big") % self.count == self.index


def enumerate_tasks(source: str) -> list[Task]:
    if source == "transcoder":
        from perfhint_train.datasets.transcoder import transcoder_tasks
        return transcoder_tasks()
    if source == "synthetic":
        from perfhint_train.datasets.synthetic import synthetic_tasks
        return synthetic_tasks()
    raise ValueError(f"source {source!r} is not measured here; measured sources: {', '.join(MEASURED_SOURCES)}")


def _chains(tasks: Iterable[Task]) -> dict[str, list[Task]]:
    chains: dict[str, list[Task]] = defaultdict(list)
    for task in tasks:
        chains[task.chain].append(task)
    return chains


def pending_chains(tasks: list[Task], labelled: dict[str, dict[str, str]], shard: Shard | None) -> list[list[Task]]:
    """For each chain not finished: its tasks from the first unlabelled one on."""
    out = []
    for chain, chain_tasks in _chains(tasks).items():
        if shard is not None and not shard.owns(chain):
            continue
        rest = []
        for task in chain_tasks:
            row = labelled.get(task.id)
            if row is None:
                rest.append(task)
            elif rest or row["status"] != "ok":
                break  # labelled after a gap (another shard's order) or the chain stopped here
        if rest:
            out.append(rest)
    return out


# ---------------------------------------------------------------------------------------------
# Workers

_PYTHON_BATCH: harness.PythonBatch | None = None


def _measure(task: Task) -> harness.Outcome:
    global _PYTHON_BATCH
    run = task.run
    if run["kind"] == "python_function":
        if _PYTHON_BATCH is None:
            _PYTHON_BATCH = harness.PythonBatch()
        return _PYTHON_BATCH.measure(run["source"], run["qualname"], run["args"])
    if run["kind"] == "python_script":
        return harness.measure_script(run["source"])
    if run["kind"] == "program":
        return harness.measure_program(run["source"], run["language"])
    raise ValueError(f"unknown run kind {run['kind']!r}")


def _cost_rank(task: Task) -> int:
    kind = task.run["kind"]
    if kind == "python_function":
        return 0
    if kind == "program" and task.language == "c":
        return 1
    return 2 if kind == "python_script" else 3


def _timeout_of(task: Task) -> float:
    return harness.PYTHON_TIMEOUT_S if task.run["kind"] == "python_function" else harness.PROGRAM_TIMEOUT_S


def measure_chain(tasks: list[Task]) -> list[tuple[Task, harness.Outcome]]:
    """Measure one chain in order; the Python child is restarted per chain (freed memory stays mapped
    in a child, and a fragmented 2 GB address space would fail later large calls spuriously)."""
    global _PYTHON_BATCH
    try:
        return _measure_chain(tasks)
    finally:
        if _PYTHON_BATCH is not None:
            _PYTHON_BATCH.close()
            _PYTHON_BATCH = None


def _measure_chain(tasks: list[Task]) -> list[tuple[Task, harness.Outcome]]:
    results = []
    for position, task in enumerate(tasks):
        outcome = _measure(task)
        results.append((task, outcome))
        if outcome.status != "ok":
            break
        if outcome.seconds > SLOW_FRACTION * _timeout_of(task) and position + 1 < len(tasks):
            results.append((tasks[position + 1], harness.Outcome("stopped", detail=f"previous took {outcome.seconds:.2f}s")))
            break
    return results


def _row(task: Task, outcome: harness.Outcome, machine_id: str) -> dict[str, object]:
    value = "" if outcome.value is None else (int(outcome.value) if float(outcome.value).is_integer() else outcome.value)
    return {"id": task.id, "status": outcome.status, "value": value, "unit": MEMORY_UNIT, "measured_on": machine_id,
            "digest": digest(task.code, task.context), "params": task.params}


# ---------------------------------------------------------------------------------------------
# Labelling


def label(sources: Iterable[str], *, jobs: int = 2, shard: Shard | None = None, limit: int | None = None,
          labels_dir: Path = LABELS_DIR, log_path: Path | None = DEFAULT_LOG,
          task_filter: Callable[[Task], bool] | None = None) -> Counter[str]:
    """Measure every pending task of the measured sources; returns status counts of this run."""
    machine_id = labels.register_machine(labels_dir)
    labelled = labels.read_tables(labels_dir)
    chains: list[list[Task]] = []
    for source in sources:
        if source not in MEASURED_SOURCES:
            continue
        tasks = enumerate_tasks(source)
        if task_filter is not None:
            tasks = [task for task in tasks if task_filter(task)]
        chains.extend(pending_chains(tasks, labelled, shard))
    # Cheapest kinds first (batched Python calls, then C, scripts, C++ whose headers take ~1 s to compile),
    # so an interrupted run has covered the most tasks; in hash order within a kind.
    chains.sort(key=lambda chain: (_cost_rank(chain[0]), hashlib.sha256(chain[0].chain.encode()).hexdigest()))
    if limit is not None:
        kept, budget = [], limit
        for chain in chains:
            if budget <= 0:
                break
            kept.append(chain[:budget])
            budget -= len(kept[-1])
        chains = kept
    total = sum(len(chain) for chain in chains)
    log = _progress_logger(log_path)
    log(f"start: {len(chains)} chains, <= {total} tasks, jobs={jobs}, shard={shard}, machine={machine_id}")
    counts: Counter[str] = Counter()
    started = time.monotonic()
    done = 0
    context = get_context("fork")
    previous_handler = signal.signal(signal.SIGTERM, _terminate)
    pool = ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=context)
    try:
        queue = list(reversed(chains))
        running: set[Future[list[tuple[Task, harness.Outcome]]]] = set()
        while queue or running:
            while queue and len(running) < 4 * max(1, jobs):
                running.add(pool.submit(measure_chain, queue.pop()))
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                results = future.result()
                by_table: dict[str, list[dict[str, object]]] = defaultdict(list)
                for task, outcome in results:
                    by_table[labels.table_name(task.source, task.language)].append(_row(task, outcome, machine_id))
                    counts[outcome.status] += 1
                for name, rows in by_table.items():
                    labels.append_rows(labels_dir / name, rows)
                done += len(results)
                elapsed = time.monotonic() - started
                if done and (done % 200 < len(results) or not (queue or running)):
                    rate = done / max(elapsed, 1e-9) * 60
                    remaining = sum(len(chain) for chain in queue)
                    log(f"progress: {done} labelled this run ({counts['ok']} ok) in {elapsed / 60:.1f} min, "
                        f"{rate:.0f}/min; <= {remaining} tasks queued, ETA <= {remaining / max(rate, 1e-9):.0f} min; "
                        f"statuses {dict(counts)}")
    except (KeyboardInterrupt, SystemExit):
        log(f"interrupted after {done} labels: rerun the same command to resume")
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()  # workers would otherwise finish their chains as orphans
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    pool.shutdown(wait=True)
    log(f"done: {dict(counts)} in {(time.monotonic() - started) / 60:.1f} min")
    return counts


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _progress_logger(path: Path | None) -> Callable[[str], None]:
    def log(message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        LOG.info(message)
        print(line, flush=True)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
    return log


# ---------------------------------------------------------------------------------------------
# Records


class StaleLabelError(RuntimeError):
    pass


def measured_records(source: str, labels_dir: Path = LABELS_DIR) -> list[Record]:
    """Join the tasks of a measured source with its label rows (status ok only)."""
    labelled = labels.read_tables(labels_dir)
    machines = json.loads((labels_dir / labels.MACHINES_FILE).read_text()) if (labels_dir / labels.MACHINES_FILE).exists() else {}
    records, stale = [], []
    for task in enumerate_tasks(source):
        row = labelled.get(task.id)
        if row is None or row["status"] != "ok":
            continue
        if row["digest"] != digest(task.code, task.context):
            stale.append(task.id)
            continue
        records.append(Record(
            id=task.id, language=task.language, region_kind=task.region_kind, metric=task.metric,
            unit=LEGACY_UNITS.get(row["unit"], row["unit"]), code=task.code, context=dict(task.context), value=float(row["value"]),
            group=task.group, source=task.source,
            provenance={**task.provenance, "machine": machines.get(row["measured_on"], {})},
            measured_on=row["measured_on"]))
    if stale:
        raise StaleLabelError(
            f"{len(stale)} label rows were measured on different code than the generator now makes "
            f"(first: {stale[0]}). Re-label them with `perfhint train build-data --source {source}` after "
            f"deleting those rows, or restore the generator version they were made with.")
    return records


def published_records(source: str) -> list[Record]:
    from perfhint_train.datasets import gpu_kernels
    return gpu_kernels.tritonbench_records() if source == "tritonbench" else gpu_kernels.liger_records()


def build_records(sources: Iterable[str], labels_dir: Path = LABELS_DIR) -> list[Record]:
    records: list[Record] = []
    for source in sources:
        records.extend(published_records(source) if source in PUBLISHED_SOURCES else measured_records(source, labels_dir))
    return records


def write_dataset(records: list[Record], out_dir: Path = DEFAULT_DATA_DIR) -> dict[str, int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"all": write_records(out_dir / RECORDS_FILE, records)}
    for name, split in split_records(records).items():
        counts[name] = write_records(out_dir / SPLIT_FILES[name], split)
    return counts
