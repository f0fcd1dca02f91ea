"""The perfhint language server: one LanguageServer object and one table of handlers.

What is hard:
- **It must never go down and never go quiet.** Every handler runs inside `guarded`: an exception is
  logged with its traceback (stderr, which editors show as Output > perfhint), the user sees one line,
  "perfhint: prediction failed, see Output > perfhint" (at most once a minute), and the request gets an
  empty answer. pygls' own errors are routed to the same place.
- **It must never block typing.** Handlers answer from memory (analysis.py); model work runs on the
  engine's worker thread; git and file reads are short and bounded.
- **It never executes the code it annotates.** Nothing here imports, compiles or evaluates user
  code: regions come from tree-sitter, context values from context.safe_literal.
- **Settings are pulled, not pushed.** After `initialized` and on every didChangeConfiguration the
  server asks for the `perfhint` section with workspace/configuration (clients that cannot answer keep
  the initializationOptions), and project defaults come from `[tool.perfhint]` in pyproject.toml.
- **New numbers are announced.** When a run finishes the server sends workspace/inlayHint/refresh and
  workspace/codeLens/refresh to clients that support them, coalesced so that the runs finishing in
  one event-loop iteration send one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from perfhint import __version__
from perfhint import settings as settings_module
from perfhint.engine import Engine
from perfhint.lsp.analysis import Analysis
from perfhint.lsp.features import code_lens, commands, hover, inlay_hints
from perfhint.settings import Settings

logger = logging.getLogger("perfhint.lsp")

FAILURE_LINE = "perfhint: prediction failed, see Output > perfhint"
FAILURE_MESSAGE_INTERVAL_S = 60.0


class PerfhintServer(LanguageServer):
    def __init__(self, engine: Engine | None = None) -> None:
        super().__init__("perfhint", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.engine = engine or Engine()
        self.settings = Settings()
        self.analysis = Analysis(self)
        self.root_path: Path | None = None
        self._initial_settings: Any = None
        self._project_settings = Settings()
        self._editor_settings: Any = None
        self._enabled_override: bool | None = None
        self._last_failure_shown = -FAILURE_MESSAGE_INTERVAL_S
        self._messages_shown: set[str] = set()
        self._refresh_handle: asyncio.Handle | None = None
        self._progress_tokens = 0
        # Set once the client's settings are known: runs wait for it, so a document opened before the
        # workspace/configuration answer is not computed (and reported as "no model") with defaults.
        self.settings_ready = asyncio.Event()

    # --- documents ------------------------------------------------------------------------------------
    def open_document(self, uri: str) -> TextDocument | None:
        """The open document, or None: never `get_text_document`, which reads unopened files from disk."""
        return self.workspace.text_documents.get(unquote(uri))

    # --- settings -------------------------------------------------------------------------------------
    def apply_settings(self, editor: Any) -> None:
        self._editor_settings = editor
        merged, problems = settings_module.merge(self._project_settings, _perfhint_section(editor), source="perfhint")
        if self._enabled_override is not None:
            merged = _replace(merged, enable=self._enabled_override)
        for problem in problems:
            logger.warning("%s", problem)
            self.show_message_once(f"perfhint setting ignored: {problem}", types.MessageType.Warning)
        bundle_changed = (merged.bundle_path, merged.runtime_device) != (self.settings.bundle_path,
                                                                         self.settings.runtime_device)
        changed = merged != self.settings
        self.settings = merged
        if changed:
            self.analysis.settings_changed(bundle_changed)
            self.request_refresh()

    def load_project_settings(self) -> None:
        if self.root_path is None:
            return
        project, problems, _ = settings_module.load_project_settings(self.root_path)
        self._project_settings = project
        for problem in problems:
            logger.warning("%s", problem)

    async def pull_settings(self) -> None:
        if not _capability(self.client_capabilities, "workspace.configuration"):
            self.apply_settings(self._editor_settings or self._initial_settings)
            self.settings_ready.set()
            return
        try:
            result = await asyncio.wait_for(self.workspace_configuration_async(types.ConfigurationParams(
                items=[types.ConfigurationItem(section="perfhint")])), timeout=5.0)
        except Exception as error:  # a client that fails the request keeps the settings it sent at start
            logger.info("workspace/configuration failed (%s); keeping the current settings", error)
            self.apply_settings(self._editor_settings or self._initial_settings)
            self.settings_ready.set()
            return
        section = result[0] if result else None
        self.apply_settings({"perfhint": section} if isinstance(section, dict) else self._initial_settings)
        self.settings_ready.set()

    def toggle(self) -> bool:
        self._enabled_override = not self.settings.enable
        self.apply_settings(self._editor_settings or self._initial_settings)
        return self.settings.enable

    # --- talking to the user --------------------------------------------------------------------------
    def show_failure(self) -> None:
        now = time.monotonic()
        if now - self._last_failure_shown < FAILURE_MESSAGE_INTERVAL_S:
            return
        self._last_failure_shown = now
        self._show(FAILURE_LINE, types.MessageType.Error)

    def show_message_once(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        if message in self._messages_shown:
            return
        self._messages_shown.add(message)
        self._show(message, kind)

    def _show(self, message: str, kind: types.MessageType) -> None:
        try:
            self.window_show_message(types.ShowMessageParams(type=kind, message=message))
        except Exception:  # no client connected (unit tests) or the pipe is gone
            logger.debug("could not show %r", message, exc_info=True)

    def report_server_error(self, error: Exception, source: Any) -> None:
        """pygls' own failures (bad JSON, a handler pygls ran itself): logged, one line to the user."""
        logger.error("perfhint: internal error (%s): %s\n%s", getattr(source, "__name__", source), error,
                     "".join(traceback.format_exception(error)))
        self.show_failure()

    # --- refresh and progress -------------------------------------------------------------------------
    def request_refresh(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._refresh_handle is None:  # every request in this loop iteration shares one refresh
            self._refresh_handle = loop.call_soon(self._send_refresh)

    def _send_refresh(self) -> None:
        self._refresh_handle = None
        capabilities = self.client_capabilities
        try:
            if _capability(capabilities, "workspace.inlay_hint.refresh_support"):
                self.workspace_inlay_hint_refresh(None)
            if _capability(capabilities, "workspace.code_lens.refresh_support"):
                self.workspace_code_lens_refresh(None)
        except Exception:
            logger.debug("refresh request failed", exc_info=True)

    async def begin_progress(self, title: str, message: str) -> str | None:
        if not _capability(self.client_capabilities, "window.work_done_progress"):
            return None
        self._progress_tokens += 1
        token = f"perfhint-{os.getpid()}-{self._progress_tokens}"
        try:
            await asyncio.wait_for(self.work_done_progress.create_async(token), timeout=2.0)
            self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, message=message,
                                                                             percentage=0, cancellable=False))
        except Exception:
            logger.debug("work done progress unavailable", exc_info=True)
            return None
        return token

    def report_progress(self, token: str, done: int, total: int) -> None:
        try:
            self.work_done_progress.report(token, types.WorkDoneProgressReport(
                message=f"{done}/{total} regions", percentage=int(100 * done / max(total, 1))))
        except Exception:
            logger.debug("progress report failed", exc_info=True)

    def end_progress(self, token: str) -> None:
        try:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))
        except Exception:
            logger.debug("progress end failed", exc_info=True)


def _replace(settings: Settings, **changes: Any) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, **changes)


def _perfhint_section(editor: Any) -> Any:
    """Accept {"perfhint": {...}}, {"settings": {"perfhint": {...}}} or the section itself."""
    if not isinstance(editor, dict):
        return None
    if isinstance(editor.get("settings"), dict):
        editor = editor["settings"]
    section = editor.get("perfhint", editor)
    return section if isinstance(section, dict) else None


def _capability(capabilities: Any, dotted: str) -> bool:
    value = capabilities
    for name in dotted.split("."):
        value = getattr(value, name, None)
        if value is None:
            return False
    return bool(value)


# --- the handler table --------------------------------------------------------------------------------

def guarded(default: Any = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run a handler so that no exception escapes: log the traceback, show one line, answer `default`."""

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        if asyncio.iscoroutinefunction(handler):
            @functools.wraps(handler)
            async def run_async(server: PerfhintServer, params: Any) -> Any:
                try:
                    return await handler(server, params)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("perfhint: %s failed", handler.__name__)
                    server.show_failure()
                    return default
            return run_async

        @functools.wraps(handler)
        def run(server: PerfhintServer, params: Any) -> Any:
            try:
                return handler(server, params)
            except Exception:
                logger.exception("perfhint: %s failed", handler.__name__)
                server.show_failure()
                return default
        return run

    return wrap


@guarded()
def initialize(server: PerfhintServer, params: types.InitializeParams) -> None:
    root = server.workspace.root_path
    server.root_path = Path(root) if root else None
    server._initial_settings = params.initialization_options
    server.load_project_settings()
    server.apply_settings(params.initialization_options)


@guarded()
async def initialized(server: PerfhintServer, params: types.InitializedParams) -> None:
    await server.pull_settings()


@guarded()
async def did_change_configuration(server: PerfhintServer, params: types.DidChangeConfigurationParams) -> None:
    if isinstance(params.settings, dict) and "perfhint" in params.settings and \
            not _capability(server.client_capabilities, "workspace.configuration"):
        server.apply_settings(params.settings)
        return
    await server.pull_settings()


@guarded()
def did_open(server: PerfhintServer, params: types.DidOpenTextDocumentParams) -> None:
    server.analysis.opened(params.text_document.uri, params.text_document.language_id)


@guarded()
def did_change(server: PerfhintServer, params: types.DidChangeTextDocumentParams) -> None:
    server.analysis.changed(params.text_document.uri)


@guarded()
def did_save(server: PerfhintServer, params: types.DidSaveTextDocumentParams) -> None:
    server.analysis.saved(params.text_document.uri)


@guarded()
def did_close(server: PerfhintServer, params: types.DidCloseTextDocumentParams) -> None:
    server.analysis.closed(params.text_document.uri)


@guarded(default=[])
def inlay_hint(server: PerfhintServer, params: types.InlayHintParams) -> list[types.InlayHint]:
    document = server.open_document(params.text_document.uri)
    if document is None:
        return []
    view = server.analysis.view(params.text_document.uri)
    return inlay_hints.inlay_hints(view, document.source, document.position_codec, params.range)


@guarded(default=None)
def hover_(server: PerfhintServer, params: types.HoverParams) -> types.Hover | None:
    if server.open_document(params.text_document.uri) is None:
        return None
    return hover.hover(server.analysis.view(params.text_document.uri), params.position.line)


@guarded(default=[])
def code_lens_(server: PerfhintServer, params: types.CodeLensParams) -> list[types.CodeLens]:
    if server.open_document(params.text_document.uri) is None:
        return []
    return code_lens.code_lenses(server.analysis.view(params.text_document.uri))


def shutdown(server: PerfhintServer, params: Any) -> None:
    for uri in list(server.analysis.documents):
        server.analysis.closed(uri)
    server.engine.close()


HANDLERS: list[tuple[str, Any, Callable[..., Any]]] = [
    (types.INITIALIZE, None, initialize),
    (types.INITIALIZED, None, initialized),
    (types.WORKSPACE_DID_CHANGE_CONFIGURATION, None, did_change_configuration),
    (types.TEXT_DOCUMENT_DID_OPEN, None, did_open),
    (types.TEXT_DOCUMENT_DID_CHANGE, None, did_change),
    (types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False), did_save),
    (types.TEXT_DOCUMENT_DID_CLOSE, None, did_close),
    (types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False), inlay_hint),
    (types.TEXT_DOCUMENT_HOVER, None, hover_),
    (types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False), code_lens_),
    (types.SHUTDOWN, None, shutdown),
]


def create_server(engine: Engine | None = None) -> PerfhintServer:
    server = PerfhintServer(engine)
    for method, options, handler in HANDLERS:
        server.feature(method, options)(handler)
    for name, handler in commands.COMMANDS.items():
        server.command(name)(handler)  # commands catch their own errors: their answer is JSON either way
    return server


def configure_logging(level: str | None = None) -> None:
    """Log to stderr: editors show a server's stderr as its output channel (Output > perfhint)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("PERFHINT_LOG", "INFO")).upper())
    logging.getLogger("pygls").setLevel(logging.WARNING)


def start_stdio(engine: Engine | None = None) -> None:
    configure_logging()
    create_server(engine).start_io()
