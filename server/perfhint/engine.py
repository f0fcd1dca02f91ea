"""The prediction engine: which regions need the model, in what batches, on which thread, and what is kept.

What is hard:
- **Never block the editor.** Model work runs on one dedicated worker thread (onnxruntime's own
  intra-op threads do the parallel part; a second Python worker would only fight them for the same
  cores). The language server awaits it through `asyncio`; the CLI calls the same code directly.
- **The same region always shows the same number.** Sampling is seeded, and the result is cached by
  (bundle sha256, model text, samples, seed). The model text already contains the region's code and
  every piece of context the bundle's input template feeds the model (input_template.py), so a
  context the model does not read cannot change the number either. The cache lives in memory (an
  LRU) and on disk (sqlite in the user cache dir, bounded, shared by the server and the CLI), so an
  editor restart or `perfhint annotate` after the editor shows the very same numbers.
- **Stale work is dropped.** Each run takes a CancelToken; misses are sent to the model in small
  batches and the token is checked between batches, so a keystroke that makes a run stale costs at
  most one batch. Batches already finished are cached, so a cancelled run is never wasted work.
- **A failure is a result, not an exception.** A batch that fails marks its regions as failed (shown
  as such) and is not cached; the other batches still give numbers.

The predictor (bundle + onnxruntime sessions) is loaded lazily on the worker thread and kept while
the bundle path and device stay the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfhint.predict import Prediction, model_input, region_id, to_prediction
from perfhint.settings import Settings

logger = logging.getLogger("perfhint.engine")

CACHE_FORMAT = "perfhint-prediction-cache-v2"  # bump when the cached value's meaning changes (v2: costs >= 0)
CACHE_DIR_ENV = "PERFHINT_CACHE_DIR"  # a directory, or "off" for no disk cache (tests, read-only homes)
BUNDLE_ENV = "PERFHINT_BUNDLE"  # a bundle path used when neither the settings nor --bundle name one
CACHE_FILE = "predictions.sqlite3"
MEMORY_ENTRIES = 4096
DISK_ENTRIES = 50_000
BATCH_SIZE = 8  # regions per model call at most: small enough to cancel between calls
# The encoder's attention needs memory ~ sum(tokens^2) over a call (about 170 bytes per token^2 with
# the default int8 model), and onnxruntime's arena keeps its peak for the life of the process: eight
# 656-token regions per call took the server to 735 MB RSS, one per call to 254 MB. So a call holds
# regions until sum(min(tokens, max_input_len)^2) reaches this budget (two 512-token regions, or one
# longer region alone: about 90 MB); short regions still batch up to BATCH_SIZE at a time.
BATCH_SQUARED_TOKENS = 2 * 512 * 512
BYTES_PER_TOKEN_GUESS = 4  # for runtimes without `encode_text`: code BPEs average 3-5 bytes per token


class Cancelled(Exception):
    """The run was made stale (a newer edit, a closed document) before it finished."""


class NoBundle(Exception):
    """No model bundle is configured and none ships with perfhint; the message names the fix."""


class BundleProblem(Exception):
    """A bundle is configured but cannot be loaded; the message says what is wrong and the fix."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


# --- cached model output ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Summary:
    """One objective's summary as cached: the attributes predict.to_prediction reads."""

    median: float
    p10: float
    p90: float
    special_fraction: float
    n_samples: int
    n_finite: int


@dataclass(frozen=True)
class TextResult:
    objectives: tuple[Summary, ...]
    n_tokens: int
    truncated: bool

    def to_json(self) -> str:
        return json.dumps({"objectives": [[s.median, s.p10, s.p90, s.special_fraction, s.n_samples, s.n_finite]
                                          for s in self.objectives],
                           "n_tokens": self.n_tokens, "truncated": self.truncated})

    @classmethod
    def from_json(cls, text: str) -> TextResult:
        data = json.loads(text)
        objectives = tuple(Summary(float(m), float(lo), float(hi), float(sf), int(ns), int(nf))
                           for m, lo, hi, sf, ns, nf in data["objectives"])
        return cls(objectives, int(data["n_tokens"]), bool(data["truncated"]))

    @classmethod
    def from_runtime(cls, prediction: Any) -> TextResult:
        objectives = tuple(Summary(_float(o.median), _float(o.p10), _float(o.p90), _float(o.special_fraction),
                                   int(o.n_samples), int(o.n_finite)) for o in prediction.objectives)
        return cls(objectives, int(prediction.n_tokens), bool(prediction.truncated))


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


class MemoryCache:
    def __init__(self, max_entries: int = MEMORY_ENTRIES) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, TextResult] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> TextResult | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, value: TextResult) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class DiskCache:
    """A bounded sqlite table key -> TextResult. Any sqlite error disables it (logged once), never raises."""

    def __init__(self, path: Path, max_entries: int = DISK_ENTRIES) -> None:
        self.path = path
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._writes = 0
        self._broken = False

    def _connect(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._connection is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(self.path, timeout=2.0, check_same_thread=False, isolation_level=None)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")  # a cache may lose its last writes, not its speed
                connection.execute("CREATE TABLE IF NOT EXISTS predictions (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                                   "used REAL NOT NULL)")
                connection.execute("CREATE INDEX IF NOT EXISTS predictions_used ON predictions(used)")
                self._connection = connection
            except (sqlite3.Error, OSError) as error:
                self._disable(error)
        return self._connection

    def _disable(self, error: Exception) -> None:
        self._broken = True
        self._connection = None
        logger.warning("perfhint: disk cache at %s disabled (%s); predictions are cached in memory only. "
                       "Set %s to a writable directory to fix.", self.path, error, CACHE_DIR_ENV)

    def get(self, key: str) -> TextResult | None:
        with self._lock:
            connection = self._connect()
            if connection is None:
                return None
            try:
                row = connection.execute("SELECT value FROM predictions WHERE key = ?", (key,)).fetchone()
                if row is None:
                    return None
                return TextResult.from_json(row[0])
            except sqlite3.Error as error:
                self._disable(error)
            except (ValueError, KeyError, TypeError):
                return None  # a row from a corrupt write: recompute
            return None

    def touch_many(self, keys: Sequence[str]) -> None:
        """Mark entries as used now (one transaction per run), so eviction drops the least recently used."""
        if not keys:
            return
        now = time.time()
        self._transaction(lambda connection: connection.executemany(
            "UPDATE predictions SET used = ? WHERE key = ?", [(now, key) for key in keys]))

    def put_many(self, items: Sequence[tuple[str, TextResult]]) -> None:
        if not items:
            return
        now = time.time()

        def write(connection: sqlite3.Connection) -> None:
            connection.executemany("INSERT OR REPLACE INTO predictions (key, value, used) VALUES (?, ?, ?)",
                                   [(key, value.to_json(), now) for key, value in items])
            self._writes += len(items)
            if self._writes >= 256:
                self._writes = 0
                connection.execute("DELETE FROM predictions WHERE key IN (SELECT key FROM predictions "
                                   "ORDER BY used DESC LIMIT -1 OFFSET ?)", (self.max_entries,))

        self._transaction(write)

    def _transaction(self, work: Callable[[sqlite3.Connection], object]) -> None:
        """Run `work` in one transaction under the lock; any sqlite error turns the disk cache off."""
        with self._lock:
            connection = self._connect()
            if connection is None:
                return
            try:
                connection.execute("BEGIN")
                work(connection)
                connection.execute("COMMIT")
            except sqlite3.Error as error:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self._disable(error)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def default_cache_dir() -> Path | None:
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return None if configured.lower() == "off" else Path(configured)
    import platformdirs

    return Path(platformdirs.user_cache_dir("perfhint", appauthor=False))


# --- requests and outcomes --------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    region: Any  # regions.Region
    context: Any  # context.Context with the settings' defaults filled in
    text: str  # the model text
    key: str  # cache key (hex sha256)


@dataclass(frozen=True)
class Outcome:
    request: Request
    prediction: Prediction | None
    error: str | None = None  # one line; the traceback is in the log
    cached: bool = False


def cache_key(bundle_sha256: str, text: str, samples: int, seed: int, region: str = "") -> str:
    """The region is part of the key: a raw-template text is the code alone, and the region kind decides
    which objectives are decoded as costs."""
    digest = hashlib.sha256()
    for part in (CACHE_FORMAT, bundle_sha256, str(samples), str(seed), region):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


# --- bundles ----------------------------------------------------------------------------------------

def shipped_bundle_path() -> Path | None:
    """The trained default bundle shipped inside the package (perfhint/models/default), if this install has it."""
    path = Path(__file__).resolve().parent / "models" / "default"
    return path if (path / "manifest.json").is_file() else None


def resolve_bundle_path(configured: str | None, *, root: str | Path | None = None, how_to_set: str) -> Path:
    """The bundle to load, or NoBundle whose message says how to name one (`how_to_set`)."""
    if configured:
        path = Path(os.path.expandvars(configured)).expanduser()
        if not path.is_absolute() and root is not None:
            path = Path(root) / path
        if not path.exists():
            raise NoBundle(f"perfhint: model bundle not found at {path}; {how_to_set}")
        return path
    from_env = os.environ.get(BUNDLE_ENV)
    if from_env:
        return resolve_bundle_path(from_env, root=root, how_to_set=f"fix ${BUNDLE_ENV} or {how_to_set}")
    shipped = shipped_bundle_path()
    if shipped is not None:
        return shipped
    raise NoBundle(f"perfhint: no model: the default model is missing from this install (reinstall perfhint); {how_to_set}")


def load_predictor(path: Path, device: str) -> Any:
    """`runtime.Predictor.from_bundle_path`, with every failure turned into one line that names the fix."""
    try:
        from perfhint.runtime import Predictor
    except ImportError as error:
        raise BundleProblem(f"perfhint: the model runtime cannot be imported ({error}); "
                            f"reinstall perfhint: pip install --force-reinstall perfhint") from error
    try:
        return Predictor.from_bundle_path(path, device=device)
    except Exception as error:  # bundle.py / runtime.py raise their own typed errors; all end here
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        fix = "run `perfhint bundle verify PATH` for details, or set perfhint.bundlePath / --bundle to another bundle"
        if device != "cpu":
            fix += "; or set perfhint.runtimeDevice to cpu"
        raise BundleProblem(f"perfhint: cannot load the model bundle at {path}: {message} ({fix})") from error


# --- the engine -------------------------------------------------------------------------------------

class Engine:
    def __init__(self, *, cache_dir: Path | None | str = "default", memory_entries: int = MEMORY_ENTRIES,
                 disk_entries: int = DISK_ENTRIES, batch_size: int = BATCH_SIZE,
                 loader: Callable[[Path, str], Any] | None = None) -> None:
        directory = default_cache_dir() if cache_dir == "default" else cache_dir
        self.memory = MemoryCache(memory_entries)
        self.disk = DiskCache(Path(directory) / CACHE_FILE, disk_entries) if directory else None
        self.batch_size = batch_size
        self._loader = loader or (lambda path, device: load_predictor(path, device))  # looked up late: tests patch it
        self._predictor: Any = None
        self._predictor_id: tuple[str, str] | None = None
        self._load_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perfhint-model")

    # Predictor ---------------------------------------------------------------------------------------
    def predictor(self, path: Path, device: str = "cpu") -> Any:
        """The loaded predictor for (path, device); loads it (slow) on the calling thread if needed."""
        identity = (str(Path(path).resolve()), device)
        with self._load_lock:
            if self._predictor is None or self._predictor_id != identity:
                self._predictor = None  # drop the old sessions before loading the new ones
                self._predictor = self._loader(Path(path), device)
                self._predictor_id = identity
            return self._predictor

    @property
    def loaded_predictor(self) -> Any:
        return self._predictor

    def use_predictor(self, predictor: Any, identity: tuple[str, str] = ("<given>", "cpu")) -> None:
        """Install an already built predictor (tests, benchmarks)."""
        with self._load_lock:
            self._predictor, self._predictor_id = predictor, identity

    async def predictor_async(self, path: Path, device: str = "cpu") -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.predictor, path, device)

    # Requests ----------------------------------------------------------------------------------------
    def requests(self, regions: Sequence[Any], settings: Settings, predictor: Any) -> list[Request]:
        requests = []
        for region in regions:
            if getattr(region.context, "off", False):
                continue
            text, context = model_input(region, predictor.bundle, settings)
            requests.append(Request(region, context, text,
                                    cache_key(predictor.bundle_sha256, text, settings.samples, settings.seed,
                                              region_id(region))))
        return requests

    def peek(self, request: Request, settings: Settings, predictor: Any) -> Outcome | None:
        """The cached outcome in memory, without touching disk or the model (safe on the event loop)."""
        result = self.memory.get(request.key)
        if result is None:
            return None
        return self._outcome(request, result, settings, predictor, cached=True)

    def _outcome(self, request: Request, result: TextResult, settings: Settings, predictor: Any,
                 cached: bool) -> Outcome:
        prediction = to_prediction(request.region, request.context, result, model_text=request.text,
                                   bundle=predictor.bundle, bundle_sha256=predictor.bundle_sha256,
                                   settings=settings, cache_key=request.key)
        return Outcome(request, prediction, cached=cached)

    # Running -----------------------------------------------------------------------------------------
    def run(self, requests: Sequence[Request], settings: Settings, predictor: Any, *,
            cancel: CancelToken | None = None,
            on_batch: Callable[[int, int], None] | None = None) -> list[Outcome]:
        """Outcomes for `requests` in order: cache hits first, then the misses in batches (blocking).

        Raises Cancelled between batches once `cancel` is set. `on_batch(done, total)` reports progress
        over the misses.
        """
        outcomes: dict[int, Outcome] = {}
        misses: list[int] = []
        by_key: dict[str, list[int]] = {}
        from_disk: list[str] = []
        for index, request in enumerate(requests):
            result = self.memory.get(request.key)
            if result is None and self.disk is not None:
                result = self.disk.get(request.key)
                if result is not None:
                    self.memory.put(request.key, result)
                    from_disk.append(request.key)
            if result is not None:
                outcomes[index] = self._outcome(request, result, settings, predictor, cached=True)
            elif request.key in by_key:
                by_key[request.key].append(index)  # the same text twice in one run: ask the model once
            else:
                by_key[request.key] = [index]
                misses.append(index)
        if self.disk is not None:
            self.disk.touch_many(from_disk)
        done = 0
        for batch in self._batches(misses, requests, predictor):
            if cancel is not None:
                cancel.check()
            texts = [requests[index].text for index in batch]
            regions = [region_id(requests[index].region) for index in batch]
            fresh = []
            for index, result in zip(batch, self._call_isolating(predictor, texts, regions, settings)):
                key = requests[index].key
                if isinstance(result, str):  # the runtime's failure for this text: shown, never cached
                    for same in by_key[key]:
                        outcomes[same] = Outcome(requests[same], None, error=result)
                    continue
                self.memory.put(key, result)
                fresh.append((key, result))
                for same in by_key[key]:
                    outcomes[same] = self._outcome(requests[same], result, settings, predictor, cached=False)
            if self.disk is not None:
                self.disk.put_many(fresh)
            done += len(batch)
            if on_batch is not None:
                on_batch(done, len(misses))
        return [outcomes[index] for index in range(len(requests))]

    def _batches(self, misses: list[int], requests: Sequence[Request], predictor: Any) -> list[list[int]]:
        """Misses in model calls of at most batch_size regions and BATCH_SQUARED_TOKENS (see above)."""
        max_len = getattr(predictor, "max_input_len", None) or 1 << 30
        encode = getattr(predictor, "encode_text", None)
        batches: list[list[int]] = []
        used = 0
        for index in misses:
            text = requests[index].text
            try:
                tokens = encode(text).n_tokens if encode is not None else len(text.encode()) // BYTES_PER_TOKEN_GUESS
            except Exception:  # only an estimate: the model call itself reports real problems
                tokens = len(text.encode()) // BYTES_PER_TOKEN_GUESS
            cost = min(tokens, max_len) ** 2
            if batches and len(batches[-1]) < self.batch_size and used + cost <= BATCH_SQUARED_TOKENS:
                batches[-1].append(index)
                used += cost
            else:
                batches.append([index])
                used = cost
        return batches

    def _call_isolating(self, predictor: Any, texts: list[str], regions: list[str], settings: Settings
                        ) -> list[TextResult | str]:
        """Results for `texts`; if the batch fails, each text alone, so one bad region fails only itself."""
        try:
            return list(self._call_model(predictor, texts, regions, settings))
        except Exception as error:
            if len(texts) == 1:
                logger.exception("perfhint: model call failed")
                return [f"{type(error).__name__}: {error}".splitlines()[0][:300]]
            logger.warning("perfhint: a batch of %d failed (%s); retrying one region at a time", len(texts), error)
        return [result for text, region in zip(texts, regions)
                for result in self._call_isolating(predictor, [text], [region], settings)]

    def _call_model(self, predictor: Any, texts: list[str], regions: list[str], settings: Settings
                    ) -> list[TextResult]:
        started = time.perf_counter()
        raw = predictor.predict_texts(texts, samples=settings.samples, seed=settings.seed, regions=regions)
        if len(raw) != len(texts):
            raise RuntimeError(f"the runtime returned {len(raw)} predictions for {len(texts)} texts")
        logger.debug("model: %d region(s) in %.0f ms", len(texts), (time.perf_counter() - started) * 1000)
        return [TextResult.from_runtime(item) for item in raw]

    async def run_async(self, requests: Sequence[Request], settings: Settings, predictor: Any, *,
                        cancel: CancelToken | None = None,
                        on_batch: Callable[[int, int], None] | None = None) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: self.run(requests, settings, predictor, cancel=cancel, on_batch=on_batch))

    def misses(self, requests: Sequence[Request]) -> int:
        """How many requests are not in memory (an estimate of the work a run will do)."""
        return sum(1 for request in requests if self.memory.get(request.key) is None)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.disk is not None:
            self.disk.close()


def predict_source(engine: Engine, source: str, language: str, settings: Settings, predictor: Any) -> list[Outcome]:
    """Every region of one source text (blocking): the CLI's path through the same engine."""
    from perfhint.regions import find_regions

    regions = find_regions(source, language)
    return engine.run(engine.requests(regions, settings, predictor), settings, predictor)
