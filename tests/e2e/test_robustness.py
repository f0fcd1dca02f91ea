"""The server answers every request and stays up: random edits, garbage, huge files, positions past the end.

It also never runs the code it annotates, and the context parser takes literals only.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from lsprotocol import types

from conftest import Editor

GARBAGE = ["\x00", "\x1b[2J", "\ufffd", "\u2028", "\r", "\r\n", "\t", "é", "😀", "(", ")", "[", '"""', "'", "\\",
           "def ", "class ", "@triton.jit\n", "# perfhint: args=(", "if __name__ == '__main__':\n", "    ", "\n"]
RSS_LIMIT_MB = 300


def random_edit(rng: random.Random, n_lines: int) -> tuple[tuple[int, int], tuple[int, int], str]:
    line = rng.randint(0, n_lines + 5)  # sometimes past the end
    character = rng.randint(0, 120)
    end_line = line + rng.choice([0, 0, 0, 1, 2, 50])
    end_character = rng.randint(0, 120)
    if (end_line, end_character) < (line, character):
        end_line, end_character = line, character
    text = "".join(rng.choice(GARBAGE) for _ in range(rng.randint(0, 6)))
    if rng.random() < 0.1:
        text = "".join(chr(rng.randint(1, 0xD7FF)) for _ in range(rng.randint(1, 40)))
    return (line, character), (end_line, end_character), text


def server_rss_mb(editor: Editor) -> float:
    pid = editor.client._server.pid
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def soak(editor: Editor, n_edits: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    source = "".join(f"def f{index}(n):\n    return [{index}] * n\n\n" for index in range(30))
    uri = editor.open("soak.py", source)
    for index in range(n_edits):
        start, end, text = random_edit(rng, 100)
        editor.edit(uri, start, end, text)
        if index % 50 == 0:
            line = rng.randint(0, 10**6)
            await editor.hover(uri, line, rng.randint(0, 10**6))
            await editor.hints(uri)
            await editor.lenses(uri)
        if index % 500 == 0:
            editor.save(uri)
    # Still alive and answering, with a sane text: a clean replacement gives clean numbers again.
    editor.replace_all(uri, source)
    hints = await editor.settled_hints(uri)
    assert len(hints) == 30
    assert server_rss_mb(editor) < RSS_LIMIT_MB


async def test_random_edits_and_garbage(editor: Editor) -> None:
    await soak(editor, 600)


async def test_ten_thousand_random_edits(editor: Editor) -> None:
    await soak(editor, 10_000, seed=1)


async def test_requests_past_the_end_and_for_unknown_documents(editor: Editor) -> None:
    uri = editor.open("a.py", "def f(n):\n    return n\n")
    await editor.settled_hints(uri)
    assert await editor.hover(uri, 10**6, 10**6) is None
    assert await editor.hover(editor.uri("never-opened.py"), 0) is None
    assert await editor.hints(editor.uri("never-opened.py")) == []
    assert await editor.lenses(editor.uri("never-opened.py")) == []
    result = await editor.client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(10**6, 0), end=types.Position(10**7, 0))))
    assert not result
    assert "error" in await editor.command("perfhint.compareWithHead", "file:///nowhere.py")
    assert "error" in await editor.command("perfhint.compareWithHead")


async def test_a_5_mb_file_says_why_it_has_no_hints(editor: Editor) -> None:
    source = "x = 1\n" * (5 * 1024 * 1024 // 6)
    uri = editor.open("huge.py", source)
    await asyncio.sleep(0.2)
    assert await editor.hints(uri) == []
    lenses = await editor.lenses(uri)
    assert len(lenses) == 1 and "MB limit" in lenses[0]
    assert "MB limit" in await editor.hover(uri, 3)
    editor.edit(uri, (0, 0), (0, 0), "def f(n):\n    return n\n")
    assert await editor.hints(uri) == []
    assert server_rss_mb(editor) < RSS_LIMIT_MB


SIDE_EFFECTS = '''\
import pathlib
pathlib.Path({marker!r}).write_text("module executed")


def f(n):
    pathlib.Path({marker!r}).write_text("function executed")
    return n


# perfhint: args=(__import__("os").system("touch {marker}"),)
def g(n):
    return n


if __name__ == "__main__":
    pathlib.Path({marker!r}).write_text("script executed")
    f(3)
'''


async def test_the_server_never_executes_the_code_it_annotates(editor: Editor, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    source = SIDE_EFFECTS.format(marker=str(marker))
    uri = editor.open("side_effects.py", source)
    await editor.settled_hints(uri)
    editor.save(uri)
    await editor.wait_refresh()
    await editor.command("perfhint.compareWithHead", uri)
    for line in range(len(source.splitlines())):
        await editor.hover(uri, line)
    hover = await editor.hover(uri, 11)
    assert "a call is not allowed" in hover or "not allowed in a perfhint value" in hover, hover
    assert not marker.exists()
