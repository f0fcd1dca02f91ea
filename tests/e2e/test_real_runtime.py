"""The production server and CLI over the real runtime (onnxruntime, a tiny random bundle from conftest).

The fake-predictor tests cover behaviour in depth; these prove the real pieces fit: the bundle's input
template, its metrics and purpose, the seeded runtime giving the same number for the same region,
and `perfhint predict` formatting a code record exactly as the editor formats the region.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import Editor

from perfhint import cli
from perfhint.engine import Engine
from perfhint.predict import model_input
from perfhint.regions import find_regions
from perfhint.settings import Settings

LABEL = re.compile(r"^≈\?? −?\d+(\.\d+)?(e[-+]\d+)? (B|KiB|MiB|GiB|µs|ms|s)( @H100)?( [+−]\S+ \S+)?( ✂)?$")
SOURCE = "def small(n):\n    return [0] * n\n\n\ndef big(n):\n    return [[0] * n for _ in range(n)]\n\n\nsmall(10)\n"
TRITON = '''\
import triton
import triton.language as tl


@triton.jit
def double_kernel(x_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(x_ptr + offsets, 2 * tl.load(x_ptr + offsets, mask=offsets < n), mask=offsets < n)


def double(x):
    double_kernel[(1,)](x, x.numel(), BLOCK=1024)
'''


async def test_hints_hover_and_save_with_the_real_runtime(real_editor: Editor, workspace: Path) -> None:
    uri = real_editor.open("a.py", SOURCE)
    hints = await real_editor.settled_hints(uri)
    assert [line for line, _ in hints] == [0, 0, 4]
    assert all(LABEL.match(label) for _, label in hints), hints
    hover = await real_editor.hover(uri, 4)
    assert "TEST model" in hover and "tiny-random-test" in hover and "purpose: test" in hover
    assert "p10–p90" in hover and "samples: 32" in hover
    changed = SOURCE.replace("[[0] * n for _ in range(n)]", "[[1] * n for _ in range(2 * n)]")
    real_editor.replace_all(uri, changed)
    (workspace / "a.py").write_text(changed)
    real_editor.save(uri)
    await real_editor.wait_refresh()
    after = await real_editor.settled_hints(uri)
    assert dict(after)[4] != dict(hints)[4] or "±0" not in dict(after)[4]


async def test_c_cpp_and_triton_with_the_real_runtime(real_editor: Editor) -> None:
    c = real_editor.open("p.c", "int main(void) {\n  return 0;\n}\n", "c")
    cpp = real_editor.open("p.cpp", "#include <vector>\nint main() {\n  std::vector<int> v(8);\n  return v[0];\n}\n", "cpp")
    kernel = real_editor.open("k.py", TRITON)
    assert [line for line, _ in await real_editor.settled_hints(c)] == [0]
    assert [line for line, _ in await real_editor.settled_hints(cpp)] == [1]
    hints = await real_editor.settled_hints(kernel)
    assert [line for line, _ in hints] == [5, 10]
    assert all(re.search(r" (µs|ms|s) @H100", label) for _, label in hints), hints
    long = "def long(n):\n" + "".join(f"    x{index} = n * {index}\n" for index in range(60)) + "    return n\n"
    uri = real_editor.open("long.py", long)
    [(_, label)] = await real_editor.settled_hints(uri)
    assert label.endswith("✂")
    assert "input truncated" in await real_editor.hover(uri, 0)


def test_same_region_same_number_across_engines(tiny_bundle: Path) -> None:
    regions = find_regions(SOURCE, "python")
    numbers = []
    for batch_size in (1, 8):
        engine = Engine(cache_dir=None, batch_size=batch_size)
        predictor = engine.predictor(tiny_bundle)
        outcomes = engine.run(engine.requests(regions, Settings(), predictor), Settings(), predictor)
        numbers.append([outcome.prediction.primary.median for outcome in outcomes])
    assert numbers[0] == numbers[1]


def test_predict_code_records_match_the_editor(tiny_bundle: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    [kernel_region] = [r for r in find_regions(TRITON, "python") if r.kind == "triton_kernel"]
    records = [
        {"id": "raw", "text": "def f(n):\n    return n\n"},
        {"id": "code", "language": "python", "region_kind": "function", "code": "def f(n):\n    return [0] * n",
         "context": {"args": "(1024,)"}},
        {"id": "kernel", "language": "python", "region_kind": "triton_kernel", "code": kernel_region.code,
         "context": {}},
        {"id": "bad", "language": "rust", "region_kind": "function", "code": "fn main() {}"},
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(record) + "\n" for record in records))
    out = tmp_path / "out.jsonl"
    status = cli.main(["predict", "--bundle", str(tiny_bundle), "--jsonl", str(source), "--out", str(out),
                       "--samples", "8"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert status == 1 and [line["id"] for line in lines] == ["raw", "code", "kernel", "bad"]
    assert "predictions" in lines[0] and "predictions" in lines[1] and "predictions" in lines[2]
    assert "language" in lines[3]["error"]
    # The text the CLI built is the editor's model text for the same region.
    from perfhint.bundle import load_bundle
    from perfhint.predict_cli import code_record_text

    bundle = load_bundle(tiny_bundle)
    editor_text, _ = model_input(kernel_region, bundle, Settings())
    assert code_record_text(records[2], bundle) == editor_text
    assert "gpu=H100" in editor_text
    [function_region] = find_regions("# perfhint: args=(1024,)\ndef f(n):\n    return [0] * n\n", "python")
    assert code_record_text(records[1], bundle) == model_input(function_region, bundle, Settings())[0]
