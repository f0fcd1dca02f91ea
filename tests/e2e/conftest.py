"""End-to-end fixtures: the real server in a subprocess, driven over stdio by pytest-lsp's client.

`editor` is one client + server per test, in a temporary workspace with its own bundle setting. The
server is `fake_server.py` (the production server with a fake predictor) unless the test asks for
the real runtime with `real_editor`, which needs the lead's `tiny_bundle` fixture.

pytest-lsp has no default handler for workspace/inlayHint/refresh or workspace/codeLens/refresh, so
the client registers both; the Editor counts them so a test can wait for "new numbers arrived". The
client presents Neovim 0.11's captured capabilities (inlay-hint refresh support); pytest-lsp's VS Code
profile is 1.65, older than LSP 3.17 inlay hints, so a server must not send it an inlay-hint refresh.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fake_predictor import write_fake_bundle  # noqa: E402

FAKE_SERVER = [sys.executable, str(HERE / "fake_server.py")]
REAL_SERVER = [sys.executable, "-m", "perfhint", "serve"]
TIMEOUT_S = 20.0


class Editor:
    """What an editor does, as a few awaitable verbs over a pytest-lsp client."""

    def __init__(self, client: LanguageClient, workspace: Path) -> None:
        self.client = client
        self.workspace = workspace
        self.versions: dict[str, int] = {}
        self.inlay_refreshes = 0
        self.lens_refreshes = 0
        self._refreshed = asyncio.Event()

    def on_refresh(self, kind: str) -> None:
        if kind == "inlay":
            self.inlay_refreshes += 1
        else:
            self.lens_refreshes += 1
        self._refreshed.set()

    def uri(self, name: str) -> str:
        return (self.workspace / name).as_uri()

    def open(self, name: str, text: str, language_id: str = "python", write: bool = True) -> str:
        path = self.workspace / name
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        uri = path.as_uri()
        self.versions[uri] = 1
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)))
        return uri

    def replace_all(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))

    def edit(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(*start), end=types.Position(*end)), text=text)]))

    def save(self, uri: str, text: str | None = None) -> None:
        if text is not None:
            Path(types_uri_to_path(uri)).write_text(text)
        self.client.text_document_did_save(types.DidSaveTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    async def hints(self, uri: str) -> list[tuple[int, str]]:
        result = await asyncio.wait_for(self.client.text_document_inlay_hint_async(types.InlayHintParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(0, 0), end=types.Position(10**6, 0)))), TIMEOUT_S)
        return [(hint.position.line, hint.label if isinstance(hint.label, str) else "".join(p.value for p in hint.label))
                for hint in result or []]

    async def settled_hints(self, uri: str, timeout_s: float = TIMEOUT_S) -> list[tuple[int, str]]:
        """Hints once no region is calculating any more (polling, as an editor re-asks after a refresh)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            hints = await self.hints(uri)
            if hints and not any("calculating" in label or label.endswith(" …") for _, label in hints):
                return hints
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"hints never settled: {hints}")
            await asyncio.sleep(0.05)

    async def until(self, check: Any, timeout_s: float = TIMEOUT_S) -> Any:
        """Poll `await check()` until it returns something truthy (as an editor re-asks after refreshes)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            result = await check()
            if result:
                return result
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition never met: {check}")
            await asyncio.sleep(0.05)

    async def hover(self, uri: str, line: int, character: int = 0) -> str | None:
        result = await asyncio.wait_for(self.client.text_document_hover_async(types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, character))), TIMEOUT_S)
        if result is None:
            return None
        return result.contents.value

    async def lenses(self, uri: str) -> list[str]:
        result = await asyncio.wait_for(self.client.text_document_code_lens_async(types.CodeLensParams(
            text_document=types.TextDocumentIdentifier(uri=uri))), TIMEOUT_S)
        return [lens.command.title for lens in result or [] if lens.command]

    async def command(self, name: str, *arguments: Any) -> Any:
        return await asyncio.wait_for(self.client.workspace_execute_command_async(types.ExecuteCommandParams(
            command=name, arguments=list(arguments))), TIMEOUT_S)

    async def wait_refresh(self, timeout_s: float = TIMEOUT_S) -> None:
        """Wait for the next refresh request (inlay hints or code lens, whichever the client supports)."""
        self._refreshed.clear()
        await asyncio.wait_for(self._refreshed.wait(), timeout_s)


def types_uri_to_path(uri: str) -> str:
    from pygls.uris import to_fs_path

    return to_fs_path(uri)


async def start_editor(workspace: Path, server_command: list[str], settings: dict[str, Any],
                       capabilities: str = "neovim@v0.11.0", env: dict[str, str] | None = None) -> Editor:
    client = make_test_lsp_client()
    editor = Editor(client, workspace)

    @client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
    def inlay_refresh(_client: LanguageClient, _params: Any) -> None:
        editor.on_refresh("inlay")

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def lens_refresh(_client: LanguageClient, _params: Any) -> None:
        editor.on_refresh("lens")

    client.set_configuration(settings, section="perfhint")
    server_env = dict(os.environ, PERFHINT_CACHE_DIR="off", **(env or {}))
    server_env.pop("PERFHINT_BUNDLE", None)
    await client.start_io(*server_command, env=server_env, cwd=str(workspace))
    await client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(capabilities), root_uri=workspace.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="ws")]))
    return editor


async def stop_editor(editor: Editor) -> None:
    try:
        await asyncio.wait_for(editor.client.shutdown_session(), TIMEOUT_S)
    finally:
        await editor.client.stop()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def fake_bundle(tmp_path: Path) -> Path:
    return write_fake_bundle(tmp_path / "bundle")


@pytest_asyncio.fixture
async def editor(workspace: Path, fake_bundle: Path) -> AsyncIterator[Editor]:
    editor = await start_editor(workspace, FAKE_SERVER, {"bundlePath": str(fake_bundle), "debounceMs": 50})
    yield editor
    await stop_editor(editor)


@pytest_asyncio.fixture
async def real_editor(workspace: Path, tiny_bundle: Path) -> AsyncIterator[Editor]:
    """The production server (`python -m perfhint serve`) with the real onnxruntime path and a tiny random bundle."""
    editor = await start_editor(workspace, REAL_SERVER, {"bundlePath": str(tiny_bundle), "debounceMs": 50})
    yield editor
    await stop_editor(editor)
