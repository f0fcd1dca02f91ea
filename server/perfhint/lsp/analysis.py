"""Per-document state, and when model work runs: open and save now, edits after a debounce.

What is hard:
- **Requests never wait for the model.** An inlay-hint, hover or code-lens request is answered from
  what is known *now*: the regions of the current text (tree-sitter, milliseconds, memoised per
  document version) and, for each region, the cached number for its exact model text. A region whose
  text changed shows its last number marked stale ("…") or "calculating…", and a background run
  fills the cache; when it finishes the client is asked to refresh and re-asks.
- **Only the newest text matters.** A document has at most one run in flight. A new edit cancels it
  (engine.CancelToken: it stops after the batch in progress) and starts a debounce timer; a save or
  open starts a run at once. Batches that did finish stay cached, so cancelled work is not lost.
- **Half-typed code is not predicted.** A region with a syntax error keeps showing the number of its
  last version that parsed (stale) instead of a number for broken code; the hover says so.
- **Δ needs a second text.** The baseline (the last saved text, or the file at git HEAD) is predicted
  once per change of that text, through the same cache, and matched to current regions by key.
- **Failures are shown, not hidden.** No bundle, a bundle that fails to load, a model call that
  fails: each becomes a visible one-line state (code lens, hint, hover), never an empty file that
  looks like "nothing costs anything".
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfhint import baseline as baselines
from perfhint.engine import BundleProblem, Cancelled, CancelToken, NoBundle, Outcome, Request, resolve_bundle_path
from perfhint.predict import Prediction
from perfhint.regions import Region, SourceTooLarge, find_regions, language_for_path
from perfhint.settings import Settings

if TYPE_CHECKING:
    from perfhint.lsp.server import PerfhintServer

logger = logging.getLogger("perfhint.lsp")

READY = "ready"
CALCULATING = "calculating"
FAILED = "failed"
SYNTAX_ERROR = "syntax_error"
SETTINGS_WAIT_S = 5.0
PROGRESS_MIN_MISSES = 4  # runs with fewer model calls finish before a progress bar would be useful
LANGUAGE_IDS = {"python": "python", "c": "c", "cpp": "cpp", "cuda-cpp": "cpp"}  # for documents without a file name
HOW_TO_SET_BUNDLE = "set perfhint.bundlePath to a model bundle directory (CLI: --bundle PATH)"


@dataclass(frozen=True)
class RegionView:
    region: Region
    status: str  # READY | CALCULATING | FAILED | SYNTAX_ERROR
    prediction: Prediction | None  # for READY; the last known one (stale) otherwise
    stale: bool = False
    error: str | None = None
    baseline: Prediction | None = None


@dataclass(frozen=True)
class DocumentView:
    uri: str
    regions: tuple[RegionView, ...] = ()
    problem: str | None = None  # one line for the whole document (no bundle, too large, failed)
    baseline_label: str = ""
    baseline_reason: str = ""
    baseline_pending: bool = False  # the baseline is still being read or predicted
    settings: Settings = field(default_factory=Settings)


@dataclass
class DocumentState:
    uri: str
    path: Path | None
    language: str | None
    regions_version: tuple[int | None, int] | None = None  # (document version, source hash)
    regions: list[Region] = field(default_factory=list)
    regions_problem: str | None = None
    task: asyncio.Task | None = None
    cancel: CancelToken | None = None
    timer: asyncio.TimerHandle | None = None
    pending: bool = False
    last: dict[str, Prediction] = field(default_factory=dict)  # region key -> last number shown
    failures: dict[str, str] = field(default_factory=dict)  # model-text key -> error line
    problem: str | None = None
    baseline_text: str | None = None
    baseline_label: str = ""
    baseline_reason: str = ""
    baseline_done_for: str | None = None  # hash of (baseline text, settings) the baseline was predicted for
    baseline_predictions: dict[str, Prediction] = field(default_factory=dict)
    baseline_stale: bool = True  # the baseline text must be read again (open, save, settings)
    opened_text: str | None = None  # the baseline of a document that is not on disk
    auto_scheduled_at: float = 0.0


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Analysis:
    """Owns the DocumentStates of one server; every method runs on the event loop."""

    def __init__(self, server: PerfhintServer) -> None:
        self.server = server
        self.documents: dict[str, DocumentState] = {}
        self.predictor: Any = None  # the predictor for the current settings, once loaded
        self.predictor_problem: str | None = None

    # --- document lifecycle -------------------------------------------------------------------------
    def opened(self, uri: str, language_id: str | None) -> None:
        path = _path_of(uri)
        language = language_for_path(str(path)) if path is not None else None
        if language is None:
            language = LANGUAGE_IDS.get(language_id or "")
        document = self.server.open_document(uri)
        on_disk = path is not None and path.is_file()
        state = DocumentState(uri=uri, path=path, language=language, baseline_label=self.server.settings.baseline,
                              opened_text=document.source if document is not None and not on_disk else None)
        self.documents[uri] = state
        self.schedule(uri, delay_ms=0)

    def changed(self, uri: str) -> None:
        state = self.documents.get(uri)
        if state is None:
            return
        self._cancel_run(state)  # the text it was computing for is gone
        self.schedule(uri, delay_ms=self.server.settings.debounce_ms)

    def saved(self, uri: str) -> None:
        state = self.documents.get(uri)
        if state is None:
            return
        state.baseline_stale = True
        if self.server.settings.baseline == "saved":
            self._forget_baseline(state)  # Δ against the previous save would be wrong until recomputed
        self.schedule(uri, delay_ms=0)

    def closed(self, uri: str) -> None:
        state = self.documents.pop(uri, None)
        if state is not None:
            self._cancel_run(state)
            if state.timer is not None:
                state.timer.cancel()

    def settings_changed(self, bundle_changed: bool) -> None:
        if bundle_changed:
            self.predictor = None
            self.predictor_problem = None
        for uri, state in list(self.documents.items()):
            state.failures.clear()
            state.baseline_stale = True
            self._forget_baseline(state)
            self._cancel_run(state)
            self.schedule(uri, delay_ms=0)

    @staticmethod
    def _forget_baseline(state: DocumentState) -> None:
        state.baseline_predictions = {}
        state.baseline_done_for = None

    @staticmethod
    def _read_baseline(path: Path | None, which: str, opened_text: str | None) -> baselines.Baseline:
        """The baseline text (git or disk: run off the event loop)."""
        if path is None:
            return baselines.Baseline(opened_text if which == "saved" else None, which,
                                      "" if which == "saved" else "the document is not a file")
        if which == "HEAD":
            return baselines.revision_text(path, "HEAD")
        result = baselines.saved_text(path)
        if result.text is None and opened_text is not None:
            return baselines.Baseline(opened_text, "saved")  # not on disk (yet): what was opened
        return result

    def _cancel_run(self, state: DocumentState) -> None:
        if state.cancel is not None:
            state.cancel.cancel()
            state.cancel = None  # the cancelled run must not mark the document "not pending" as it ends
        if state.task is not None and not state.task.done():
            state.task.cancel()

    # --- scheduling ---------------------------------------------------------------------------------
    def schedule(self, uri: str, delay_ms: int) -> None:
        state = self.documents.get(uri)
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        state.pending = True
        loop = asyncio.get_running_loop()
        if delay_ms <= 0:
            self._start(uri)
        else:
            state.timer = loop.call_later(delay_ms / 1000, self._start, uri)

    def _start(self, uri: str) -> None:
        state = self.documents.get(uri)
        if state is None:
            return
        state.timer = None
        self._cancel_run(state)
        token = CancelToken()
        state.cancel = token
        state.task = asyncio.ensure_future(self._run(uri, token))

    async def _run(self, uri: str, token: CancelToken) -> None:
        state = self.documents.get(uri)
        if state is None:
            return
        started = time.perf_counter()
        try:
            await self._compute(state, token)
            logger.debug("run for %s done in %.0f ms", uri, (time.perf_counter() - started) * 1000)
        except (Cancelled, asyncio.CancelledError):
            logger.debug("run for %s cancelled after %.0f ms", uri, (time.perf_counter() - started) * 1000)
            return
        except Exception:
            logger.exception("perfhint: prediction failed for %s", uri)
            state.problem = "perfhint: prediction failed, see Output > perfhint"
            self.server.show_failure()
        finally:
            if state.cancel is token:
                state.pending = False
                state.cancel = None
        self.server.request_refresh()

    async def _compute(self, state: DocumentState, token: CancelToken) -> None:
        if not self.server.settings_ready.is_set():
            try:
                await asyncio.wait_for(self.server.settings_ready.wait(), SETTINGS_WAIT_S)
            except asyncio.TimeoutError:
                self.server.settings_ready.set()  # a client that never answers: go on with what we have
        token.check()
        settings = self.server.settings
        document = self.server.open_document(state.uri)
        if document is None or not self._wanted(state, settings):
            return
        self.regions_of(state)
        if state.regions_problem is not None:
            return
        predictor = await self._predictor(settings)
        if predictor is None:
            return
        token.check()
        engine = self.server.engine
        regions = [region for region in state.regions if not region.has_error]
        requests = engine.requests(regions, settings, predictor)
        logger.debug("run for %s: %d regions, %d not cached", state.uri, len(requests), engine.misses(requests))
        outcomes = await self._run_requests(requests, settings, predictor, token, f"perfhint: {_name(state)}")
        state.problem = None
        for outcome in outcomes:
            if outcome.error is not None:
                state.failures[outcome.request.key] = outcome.error
            elif outcome.prediction is not None:
                state.failures.pop(outcome.request.key, None)
                state.last[outcome.request.region.key] = outcome.prediction
        # Keep per-document memory to the regions that exist now: renames and random edits would
        # otherwise grow these maps for as long as the document stays open.
        keys = {region.key for region in state.regions}
        state.last = {key: prediction for key, prediction in state.last.items() if key in keys}
        texts = {request.key for request in requests}
        state.failures = {key: error for key, error in state.failures.items() if key in texts}
        if any(outcome.error for outcome in outcomes):
            self.server.show_failure()
        self.server.request_refresh()
        await self._compute_baseline(state, settings, predictor, token)

    async def _compute_baseline(self, state: DocumentState, settings: Settings, predictor: Any,
                                token: CancelToken) -> None:
        loop = asyncio.get_running_loop()
        if state.baseline_stale:
            result = await loop.run_in_executor(None, self._read_baseline, state.path, settings.baseline,
                                                state.opened_text)
            token.check()
            if result.text != state.baseline_text:
                self._forget_baseline(state)
            state.baseline_text, state.baseline_label, state.baseline_reason = result.text, result.label, result.reason
            state.baseline_stale = False
        text = state.baseline_text
        if text is None or state.language is None:
            state.baseline_predictions = {}
            return
        identity = _hash(f"{settings!r}\0{getattr(predictor, 'bundle_sha256', '')}\0{text}")
        if state.baseline_done_for == identity:
            return
        document = self.server.open_document(state.uri)
        try:
            current = document is not None and state.regions_version == (document.version, len(document.source))
            if current and state.regions_problem is None and document.source == text:
                regions = state.regions  # just saved: the baseline is the current text, already parsed
            else:
                regions = await loop.run_in_executor(None, find_regions, text, state.language)
        except SourceTooLarge as error:
            state.baseline_reason = str(error)
            state.baseline_predictions = {}
            state.baseline_done_for = identity
            return
        token.check()
        requests = self.server.engine.requests([r for r in regions if not r.has_error], settings, predictor)
        outcomes = await self._run_requests(requests, settings, predictor, token,
                                            f"perfhint: {_name(state)} at {state.baseline_label}")
        state.baseline_predictions = {o.request.region.key: o.prediction for o in outcomes if o.prediction is not None}
        state.baseline_done_for = identity

    async def _run_requests(self, requests: list[Request], settings: Settings, predictor: Any, token: CancelToken,
                            title: str) -> list[Outcome]:
        engine = self.server.engine
        misses = engine.misses(requests)
        progress = None
        if misses >= PROGRESS_MIN_MISSES:
            progress = await self.server.begin_progress(title, f"{misses} region(s)")
        on_batch = None
        if progress is not None:
            loop = asyncio.get_running_loop()

            def on_batch(done: int, total: int) -> None:
                loop.call_soon_threadsafe(self.server.report_progress, progress, done, total)
        try:
            return await engine.run_async(requests, settings, predictor, cancel=token, on_batch=on_batch)
        finally:
            if progress is not None:
                self.server.end_progress(progress)

    async def _predictor(self, settings: Settings) -> Any:
        if self.predictor is not None:
            return self.predictor
        try:
            path = resolve_bundle_path(settings.bundle_path, root=self.server.root_path, how_to_set=HOW_TO_SET_BUNDLE)
            self.predictor = await self.server.engine.predictor_async(path, settings.runtime_device)
            self.predictor_problem = None
        except (NoBundle, BundleProblem) as error:
            if self.predictor_problem != str(error):
                self.predictor_problem = str(error)
                logger.warning("%s", error)
                self.server.show_message_once(str(error))
            return None
        return self.predictor

    # --- views ---------------------------------------------------------------------------------------
    def _wanted(self, state: DocumentState, settings: Settings) -> bool:
        if not settings.enable or state.language is None:
            return False
        if state.path is not None and settings.exclude and settings.excludes(state.path, self.server.root_path):
            return False
        return True

    def regions_of(self, state: DocumentState) -> None:
        """Memoise find_regions per document version (and text, for clients that send no versions)."""
        document = self.server.open_document(state.uri)
        if document is None:
            state.regions, state.regions_problem = [], None
            return
        source = document.source
        identity = (document.version, len(source))
        if state.regions_version == identity and document.version is not None:
            return
        started = time.perf_counter()
        try:
            state.regions = find_regions(source, state.language) if state.language else []
            state.regions_problem = None
        except SourceTooLarge as error:
            state.regions, state.regions_problem = [], str(error)
        except Exception:  # a parser bug must not cost the user the server
            logger.exception("perfhint: finding regions failed for %s", state.uri)
            state.regions, state.regions_problem = [], "perfhint: prediction failed, see Output > perfhint"
            self.server.show_failure()
        state.regions_version = identity
        logger.debug("regions of %s: %d in %.1f ms", state.uri, len(state.regions),
                     (time.perf_counter() - started) * 1000)

    def view(self, uri: str) -> DocumentView:
        settings = self.server.settings
        state = self.documents.get(uri)
        if state is None:
            return DocumentView(uri=uri, settings=settings)
        if not self._wanted(state, settings):
            return DocumentView(uri=uri, settings=settings)
        self.regions_of(state)
        problem = state.regions_problem or self.predictor_problem or state.problem
        if state.regions_problem is not None:
            return DocumentView(uri=uri, problem=problem, settings=settings)
        predictor = self.predictor
        engine = self.server.engine
        requests: dict[str, Request] = {}
        if predictor is not None:
            try:
                requests = {request.region.key: request for request in
                            engine.requests([r for r in state.regions if not r.has_error], settings, predictor)}
            except Exception:
                logger.exception("perfhint: building model inputs failed for %s", uri)
                problem = "perfhint: prediction failed, see Output > perfhint"
        views = []
        for region in state.regions:
            if getattr(region.context, "off", False):
                continue
            last = state.last.get(region.key)
            base = state.baseline_predictions.get(region.key)
            if region.has_error:
                views.append(RegionView(region, SYNTAX_ERROR, last, stale=last is not None, baseline=base))
                continue
            request = requests.get(region.key)
            outcome = engine.peek(request, settings, predictor) if request is not None else None
            if outcome is not None and outcome.prediction is not None:
                views.append(RegionView(region, READY, outcome.prediction, baseline=base))
            elif request is not None and request.key in state.failures:
                views.append(RegionView(region, FAILED, last, stale=last is not None,
                                        error=state.failures[request.key], baseline=base))
            else:
                if not state.pending and problem is None and time.monotonic() - state.auto_scheduled_at > 2.0:
                    # Nothing is computing this number (an evicted cache entry, a lost run): start now.
                    # Rate-limited so that a number that can never come does not loop runs and refreshes.
                    state.auto_scheduled_at = time.monotonic()
                    self.schedule(uri, delay_ms=0)
                views.append(RegionView(region, CALCULATING, last, stale=last is not None, baseline=base))
        pending = state.baseline_stale or (state.baseline_text is not None and state.baseline_done_for is None)
        return DocumentView(uri=uri, regions=tuple(views), problem=problem, baseline_label=state.baseline_label,
                            baseline_reason=state.baseline_reason, baseline_pending=pending, settings=settings)


def _path_of(uri: str) -> Path | None:
    from pygls.uris import to_fs_path

    if not uri.startswith("file:"):
        return None
    try:
        path = to_fs_path(uri)
    except Exception:
        return None
    return Path(path) if path else None


def _name(state: DocumentState) -> str:
    return state.path.name if state.path is not None else state.uri
