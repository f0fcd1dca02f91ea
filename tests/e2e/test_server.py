"""The language server end to end, over stdio, as an editor drives it (fake predictor; see conftest)."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

from lsprotocol import types

from conftest import FAKE_SERVER, Editor, start_editor, stop_editor

SOURCE = '''\
def small(n):
    return [0] * n


def big(n):
    data = [[0] * n for _ in range(n)]
    return sum(map(len, data))


if __name__ == "__main__":
    small(10)
    big(1000)
'''

NUMBER = re.compile(r"^≈\?? \d+(\.\d+)? (B|KiB|MiB|GiB)( [+−]\d+(\.\d+)? (B|KiB|MiB|GiB))?( ✂)?$")


async def test_open_shows_a_hint_per_function(editor: Editor) -> None:
    uri = editor.open("a.py", SOURCE)
    hints = await editor.settled_hints(uri)
    assert [line for line, _ in hints] == [0, 4, 9]  # small, big, and the script on its __main__ guard
    assert all(NUMBER.match(label) for _, label in hints), hints


async def test_hover_says_what_the_number_rests_on(editor: Editor) -> None:
    uri = editor.open("a.py", SOURCE)
    await editor.settled_hints(uri)
    text = await editor.hover(uri, 4)
    assert text is not None
    for expected in ("`big`", "peak_memory", "median", "p10–p90", "samples: 32", "context assumed",
                     "args=(1000,)", "from a literal call in this file", "TEST model", "fake-test-model",
                     "purpose: test", "not seen by the model"):
        assert expected in text, (expected, text)


async def test_unknown_arguments_are_marked_and_explained(editor: Editor) -> None:
    uri = editor.open("b.py", "def lonely(n):\n    return n * 2\n")
    [(line, label)] = await editor.settled_hints(uri)
    assert line == 0 and label.startswith("≈? ")
    text = await editor.hover(uri, 0)
    assert "arguments unknown" in text and "not checkable by `perfhint measure`" in text


async def test_edit_and_save_refresh_with_new_numbers(editor: Editor, workspace: Path) -> None:
    uri = editor.open("a.py", SOURCE)
    before = dict(await editor.settled_hints(uri))
    changed = SOURCE.replace("[0] * n\n", "[1] * (2 * n)\n")
    editor.replace_all(uri, changed)
    (workspace / "a.py").write_text(changed)
    refreshes = editor.inlay_refreshes
    editor.save(uri)
    await editor.wait_refresh()
    assert editor.inlay_refreshes > refreshes
    after = dict(await editor.settled_hints(uri))
    assert after[0] != before[0]  # `small` changed: a new number
    assert after[4] == before[4]  # `big` did not: the very same number


async def test_refresh_only_what_the_client_supports(workspace: Path, fake_bundle: Path) -> None:
    # pytest-lsp's VS Code profile (1.65) has code-lens refresh but predates inlay-hint refresh.
    editor = await start_editor(workspace, FAKE_SERVER, {"bundlePath": str(fake_bundle)}, "visual-studio-code")
    try:
        uri = editor.open("a.py", SOURCE)
        await editor.wait_refresh()
        await editor.settled_hints(uri)
        assert editor.lens_refreshes >= 1 and editor.inlay_refreshes == 0
    finally:
        await stop_editor(editor)


async def test_delta_against_the_saved_version_while_editing(editor: Editor) -> None:
    uri = editor.open("a.py", SOURCE)
    await editor.settled_hints(uri)
    editor.replace_all(uri, SOURCE.replace("[0] * n\n", "[1] * (2 * n)\n"))
    hints = dict(await editor.settled_hints(uri))
    assert re.search(r" [+−]\d", hints[0]), hints  # `small` shows its change against the saved text
    assert not re.search(r" [+−]\d", hints[4]), hints
    text = await editor.hover(uri, 0)
    assert "Δ vs saved" in text
    lenses = await editor.lenses(uri)
    assert any("Σ Δ" in title and "vs saved" in title for title in lenses), lenses


async def test_code_lens_shows_largest_and_never_mixes_units(editor: Editor) -> None:
    uri = editor.open("a.py", SOURCE)
    await editor.settled_hints(uri)
    lenses = await editor.lenses(uri)
    assert len(lenses) == 1 and "largest peak_memory" in lenses[0] and "[TEST model]" in lenses[0], lenses


async def test_syntax_error_mid_edit_keeps_other_hints(editor: Editor) -> None:
    uri = editor.open("a.py", SOURCE)
    before = dict(await editor.settled_hints(uri))
    broken = SOURCE.replace("    return [0] * n\n", "    return [0] * (n\n")
    editor.replace_all(uri, broken)
    hints = dict(await editor.hints(uri))
    assert hints[4] == before[4]  # `big` is untouched by the error in `small`
    assert hints[0] == f"{before[0]} … (syntax error)"  # the last number that parsed, marked, not a new guess
    assert "syntax error" in await editor.hover(uri, 0)
    editor.replace_all(uri, SOURCE)  # fixed again: the very same number as before, from the cache
    assert dict(await editor.settled_hints(uri))[0] == before[0]


async def test_c_and_cpp_programs(editor: Editor) -> None:
    c = editor.open("p.c", "#include <stdlib.h>\nint main(void) {\n  char *p = malloc(1 << 20);\n  return p == 0;\n}\n", "c")
    cpp = editor.open("p.cpp", "#include <vector>\nint main() {\n  std::vector<int> v(1 << 20);\n  return v[0];\n}\n", "cpp")
    assert [line for line, _ in await editor.settled_hints(c)] == [1]
    assert [line for line, _ in await editor.settled_hints(cpp)] == [1]
    assert "program" in await editor.hover(c, 1)


TRITON = '''\
import triton
import triton.language as tl


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offsets = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask), mask=mask)


# perfhint: shape=(4096,) dtype=fp32
def add(x, y, out):
    n = out.numel()
    add_kernel[(triton.cdiv(n, 1024),)](x, y, out, n, BLOCK=1024)
'''


async def test_triton_kernel_shows_latency_at_the_target_gpu(editor: Editor) -> None:
    uri = editor.open("k.py", TRITON)
    hints = await editor.settled_hints(uri)
    assert [line for line, _ in hints] == [5, 13]  # the kernel's def line and the launcher's
    for _, label in hints:
        assert re.match(r"^≈\?? \d+(\.\d+)? (µs|ms|s) @H100", label), label
    text = await editor.hover(uri, 13)
    assert "latency" in text and "gpu=H100` (from settings)" in text and "shape=(4096,)" in text


async def test_compare_with_head_command(editor: Editor, workspace: Path) -> None:
    git = ["git", "-C", str(workspace), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    (workspace / "a.py").write_text(SOURCE)
    subprocess.run(git + ["add", "a.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "base"], check=True)
    changed = SOURCE.replace("[0] * n\n", "[1] * (2 * n)\n") + "\n\ndef extra():\n    return 1\n"
    uri = editor.open("a.py", changed)
    await editor.settled_hints(uri)
    result = await editor.command("perfhint.compareWithHead", uri)
    rows = {row["key"]: row for row in result["rows"]}
    assert rows["function:small"]["status"] == "changed" and rows["function:small"]["delta_text"]
    assert rows["function:big"]["status"] == "same" and rows["function:big"]["delta"] == 0
    assert rows["function:extra"]["status"] == "new"


async def test_toggle_hides_and_shows(editor: Editor) -> None:
    uri = editor.open("a.py", SOURCE)
    await editor.settled_hints(uri)
    assert (await editor.command("perfhint.toggle")) == {"enabled": False}
    assert await editor.hints(uri) == []
    assert (await editor.command("perfhint.toggle")) == {"enabled": True}
    assert len(await editor.settled_hints(uri)) == 3


async def test_delta_against_git_head(workspace: Path, fake_bundle: Path) -> None:
    git = ["git", "-C", str(workspace), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    (workspace / "a.py").write_text(SOURCE)
    subprocess.run(git + ["add", "a.py"], check=True)
    subprocess.run(git + ["commit", "-qm", "base"], check=True)
    editor = await start_editor(workspace, FAKE_SERVER, {"bundlePath": str(fake_bundle), "baseline": "HEAD"})
    try:
        changed = SOURCE.replace("[0] * n\n", "[1] * (2 * n)\n")
        uri = editor.open("a.py", changed)  # saved to disk too: only HEAD differs
        async def with_delta() -> dict[int, str] | None:  # the baseline is predicted after the current text
            hints = dict(await editor.settled_hints(uri))
            return hints if re.search(r" [+−]\d", hints[0]) else None

        hints = await editor.until(with_delta)
        assert re.search(r" [+−]\d", hints[0]) and not re.search(r" [+−]\d", hints[4]), hints
        assert "Δ vs HEAD" in await editor.hover(uri, 0)
        assert any("vs HEAD" in title for title in await editor.lenses(uri))
        fresh = editor.open("new.py", "def g(n):\n    return n\n")

        async def new_file_hover() -> str | None:
            text = await editor.hover(fresh, 0)
            return text if text and "the file is new since HEAD" in text else None

        assert await editor.until(new_file_hover)
    finally:
        await stop_editor(editor)


async def test_hide_below_threshold_hides_numbers_not_states(workspace: Path, fake_bundle: Path) -> None:
    editor = await start_editor(workspace, FAKE_SERVER, {"bundlePath": str(fake_bundle),
                                                         "hideBelow": {"bytes": "1 GiB"}})
    try:
        uri = editor.open("a.py", SOURCE)
        lenses = await editor.until(lambda: _lens_matching(editor, uri, "largest peak_memory"))
        assert lenses and await editor.hints(uri) == []
        assert "median" in await editor.hover(uri, 0)
    finally:
        await stop_editor(editor)


async def test_a_failing_model_is_shown_not_hidden(editor: Editor) -> None:
    from fake_predictor import FAIL_MARKER

    uri = editor.open("a.py", f"def fine(n):\n    return n\n\n\ndef broken():\n    return '{FAIL_MARKER}'\n")

    async def failed() -> dict[int, str] | None:
        hints = dict(await editor.hints(uri))
        return hints if "failed" in hints.get(4, "") and "calculating" not in hints[0] else None

    hints = await editor.until(failed)
    assert hints[4] == "perfhint: prediction failed, see Output > perfhint"
    assert NUMBER.match(hints[0])  # the other region still has its number
    assert "Prediction failed" in await editor.hover(uri, 4)
    assert any("prediction failed for 1 of 2" in title for title in await editor.lenses(uri))
    assert any("prediction failed, see Output > perfhint" in message.message for message in editor.client.messages)


async def test_no_bundle_names_the_setting(workspace: Path) -> None:
    editor = await start_editor(workspace, FAKE_SERVER, {}, env={"PERFHINT_TEST_NO_SHIPPED_MODEL": "1"})
    try:
        uri = editor.open("a.py", SOURCE)
        lenses = await editor.until(lambda: _lens_matching(editor, uri, "no model"))
        assert len(lenses) == 1 and "perfhint.bundlePath" in lenses[0], lenses
        hints = await editor.hints(uri)
        assert len(hints) == 1 and "perfhint.bundlePath" in hints[0][1]
        assert any("perfhint.bundlePath" in message.message for message in editor.client.messages)
    finally:
        await stop_editor(editor)


async def test_progress_and_settings_changes(editor: Editor) -> None:
    uri = editor.open("k.py", TRITON)
    hints = await editor.settled_hints(uri)
    assert all("@H100" in label for _, label in hints)
    editor.client.set_configuration("A100", section="perfhint.targetGpu")
    editor.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    async def on_a100() -> list[tuple[int, str]] | None:
        hints = await editor.settled_hints(uri)
        return hints if all("@A100" in label for _, label in hints) else None

    hints = await editor.until(on_a100)
    assert all("@A100" in label for _, label in hints), hints
    many = editor.open("many.py", "".join(f"def f{index}(n):\n    return {index}\n\n" for index in range(12)))
    await editor.settled_hints(many)
    kinds = [[type(report).__name__ for report in reports] for reports in editor.client.progress_reports.values()]
    assert ["WorkDoneProgressBegin", "WorkDoneProgressEnd"] in [[k[0], k[-1]] for k in kinds if k], kinds


async def _lens_matching(editor: Editor, uri: str, text: str) -> list[str] | None:
    lenses = await editor.lenses(uri)
    return lenses if any(text in title for title in lenses) else None


async def test_calculating_is_explicit_and_stale_work_is_dropped(workspace: Path, fake_bundle: Path) -> None:
    # A slow model (0.15 s per region): the editor sees "calculating…", never an empty line or a zero.
    editor = await start_editor(workspace, FAKE_SERVER, {"bundlePath": str(fake_bundle), "debounceMs": 20},
                                env={"PERFHINT_FAKE_DELAY_S": "0.15"})
    try:
        source = "".join(f"def f{index}(n):\n    return [{index}] * n\n\n" for index in range(6))
        uri = editor.open("slow.py", source)
        first = await editor.hints(uri)
        assert first and all(label == "perfhint: calculating…" for _, label in first), first
        for round_ in range(5):  # five versions in quick succession: only the last is worth finishing
            editor.replace_all(uri, source.replace("* n", f"* (n + {round_})"))
            await asyncio.sleep(0.05)
        started = asyncio.get_running_loop().time()
        hints = await editor.settled_hints(uri)
        assert len(hints) == 6
        # Without cancellation the queue would hold 5 stale versions x 6 regions x 0.15 s = 4.5 s before the last.
        assert asyncio.get_running_loop().time() - started < 4.5
    finally:
        await stop_editor(editor)
