"""Regions: golden files in tests/data/regions/<case>.{py,c,cpp} -> <case>.expected.

`UPDATE_EXPECT=1 pytest tests/test_regions.py` rewrites the expected files; review with `git diff`.
"""

from __future__ import annotations

import glob
import json
import os
import random
import time
from pathlib import Path

import pytest

from perfhint.context import Context
from perfhint.regions import MAX_SOURCE_BYTES, Region, SourceTooLarge, find_regions, language_for_path

DATA = Path(__file__).parent / "data" / "regions"
DATASETS = Path("/work/shared/datasets")


def render_context(context: Context) -> list[str]:
    lines = []
    settings = []
    for key, text in context.texts.items():
        if key not in context.values:
            settings.append(f"{key}={text} (not built)")
            continue
        value = repr(context.values[key])
        value = value if len(value) <= 60 else value[:57] + "..."
        settings.append(f"{key}={text}" + ("" if value in (text, repr(text)) else f" -> {value}"))
    if settings:
        lines.append("context: " + "  ".join(settings))
    lines.append("args: " + {"comment": "from the comment", "call": "from a call", None: "unknown"}[context.args_source]
                 + ("  OFF" if context.off else ""))
    lines.extend(f"error: {error}" for error in context.errors)
    return lines


def render_regions(regions: list[Region]) -> str:
    if not regions:
        return "no regions\n"
    blocks = []
    for region in regions:
        code_lines = region.code.split("\n")
        lines = [
            f"{region.key}  ({region.kind}, {region.language}, name {region.name})",
            f"line {region.line}  hint_lines {list(region.hint_lines)}  span {region.start_line}-{region.end_line}"
            + ("  HAS SYNTAX ERROR" if region.has_error else ""),
            "pieces " + " ".join(f"{start}-{end}" for start, end in region.code_spans),
            *render_context(region.context),
            f"code: {len(code_lines)} lines, first {code_lines[0]!r}, last {code_lines[-1]!r}",
        ]
        blocks.append("\n".join("  " + line if index else line for index, line in enumerate(lines)))
    return "\n\n".join(blocks) + "\n"


def check(case: str) -> None:
    """Golden test: the rendered regions of tests/data/regions/<case>.* equal <case>.expected."""
    (source_path,) = [path for path in DATA.glob(f"{case}.*") if path.suffix != ".expected"]
    language = language_for_path(str(source_path))
    actual = (f"# find_regions({source_path.name!r}, {language!r}); lines are 0-based\n\n"
              + render_regions(find_regions(source_path.read_text(), language)))
    expected_path = DATA / f"{case}.expected"
    if os.environ.get("UPDATE_EXPECT") == "1" or not expected_path.exists():
        expected_path.write_text(actual)
    assert actual == expected_path.read_text(), f"regions of {source_path.name} changed; UPDATE_EXPECT=1 to accept"


def test_python_functions() -> None:
    check("python_functions")


def test_script_without_guard_hints_line_0() -> None:
    check("script_plain")


def test_script_with_guard_and_literal_call_args() -> None:
    check("script_main_guard")


def test_declarations_only_is_not_a_script() -> None:
    check("library_module")


def test_empty_file() -> None:
    check("empty")


def test_syntax_error_mid_edit_keeps_the_other_functions() -> None:
    check("syntax_error_mid_edit")


def test_syntax_error_in_class_body() -> None:
    # FIXME: recovery splits the file only at column-0 definitions, so the method after the broken
    # one (Shapes.perimeter) is lost until the error is fixed; functions after the class are kept.
    check("syntax_error_in_class")


def test_directives() -> None:
    check("directives")


def test_triton_vector_add() -> None:
    check("triton_vector_add")


def test_triton_autotune_heuristics_and_helpers() -> None:
    check("triton_softmax_autotune")


def test_triton_two_launchers_share_a_kernel() -> None:
    check("triton_shared_kernel")


def test_triton_import_aliases() -> None:
    check("triton_aliases")


def test_c_program() -> None:
    check("c_program")


def test_c_without_main() -> None:
    check("c_library")


def test_c_error_before_main() -> None:
    check("c_error_before_main")


def test_cpp_program() -> None:
    check("cpp_program")


def test_region_code_is_what_the_model_reads() -> None:
    (region,) = [r for r in find_regions((DATA / "triton_shared_kernel.py").read_text(), "python")
                 if r.key == "triton_kernel:scale_and_shift"]
    assert region.code.startswith("@triton.jit\ndef scale_kernel(")
    assert "\n\n@triton.jit\ndef bias_kernel(" in region.code
    assert region.code.endswith("    return out")
    (method,) = [r for r in find_regions((DATA / "python_functions.py").read_text(), "python")
                 if r.key == "function:Matrix.mul"]
    assert method.code.startswith("def mul(self, other):\n    def dot(a, b):")  # dedented


def test_keys_are_stable_across_edits_above() -> None:
    source = (DATA / "python_functions.py").read_text()
    before = [region.key for region in find_regions(source, "python")]
    edited = source.replace("def top(n):\n", "def top(n):\n    n = n + 1\n    # a new comment\n")
    assert [region.key for region in find_regions(edited, "python")] == before


def test_language_for_path() -> None:
    paths = ["a.py", "a.pyi", "a.c", "a.h", "a.cc", "a.cpp", "a.cxx", "a.hpp", "a.hh", "A.PY", "a.java", "Makefile"]
    assert {path: language_for_path(path) for path in paths} == {
        "a.py": "python", "a.pyi": "python", "a.c": "c", "a.h": "c", "a.cc": "cpp", "a.cpp": "cpp",
        "a.cxx": "cpp", "a.hpp": "cpp", "a.hh": "cpp", "A.PY": "python", "a.java": None, "Makefile": None}


def test_unsupported_language_gives_no_regions() -> None:
    assert find_regions("class A {}", "java") == []


def test_5_mb_source_is_rejected_fast() -> None:
    source = "x = [0] * 10\n" * (5 * 2**20 // 13)
    started = time.perf_counter()
    with pytest.raises(SourceTooLarge, match=r"5\.0 MB, over the 2 MB limit"):
        find_regions(source, "python")
    assert time.perf_counter() - started < 0.05


def test_multibyte_source_over_the_limit_is_rejected() -> None:
    source = "# é\n" * (MAX_SOURCE_BYTES // 5 + 100)  # 4 characters, 5 bytes a line
    assert len(source) < MAX_SOURCE_BYTES < len(source.encode())
    with pytest.raises(SourceTooLarge):
        find_regions(source, "python")


def check_invariants(source: str, language: str) -> None:
    """What every caller relies on, whatever the text: no exception, unique keys, sane lines."""
    regions = find_regions(source, language)
    n_lines = len(source.split("\n"))
    keys = [region.key for region in regions]
    assert len(set(keys)) == len(keys), keys
    for region in regions:
        assert 0 <= region.start_line <= region.line <= region.end_line < n_lines, region.key
        assert region.line in region.hint_lines and list(region.hint_lines) == sorted(set(region.hint_lines))


def test_half_typed_sources_never_raise() -> None:
    # Random edits (truncations, deletions, stray brackets, quotes, decorators, directives) of the
    # golden inputs: a stand-in for every keystroke. 60 s of this (29,000 variants) found one crash, fixed.
    sources = [(path.read_text(), language_for_path(str(path))) for path in sorted(DATA.iterdir())
               if language_for_path(str(path))]
    inserts = ["(", ")", '"""', "'", ":", "\n", "def ", "@", "[", "{", "\\", "# perfhint: args=(", "\t", "é",
               "\r\n", "\x00"]
    rng = random.Random(0)
    for _ in range(400):
        source, language = rng.choice(sources)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(source) + 1)
            roll = rng.random()
            if roll < 0.3:
                source = source[:position]
            elif roll < 0.6:
                source = source[:position] + rng.choice(inserts) + source[position:]
            else:
                source = source[:position] + source[position + rng.randint(1, 40):]
        check_invariants(source, language)


def _two_mb_of_functions(n_functions: int = 19_000) -> str:
    return "".join(f"def f_{i}(arr, n):\n    total = 0\n    for i in range(n):\n        total += arr[i] * {i}\n"
                   f"    return total\n\n\n" for i in range(n_functions))


@pytest.mark.slow
def test_source_just_under_the_limit_parses_in_seconds() -> None:
    # Measured on the shared 2-core dev machine when idle: about 0.6 s clean and 1.2 s with a syntax
    # error (the chunked re-parse); at load average 9 it took 7 s for both. The bound only catches
    # a quadratic slip (the first chunked version took 9 s alone).
    source = _two_mb_of_functions()
    assert len(source.encode()) < MAX_SOURCE_BYTES
    broken = source.replace("def f_9500(arr, n):\n", "def f_9500(arr, n:\n    x = (\n")
    # The def being typed (broken signature) is not a function yet; every other one is kept.
    for text, n_regions in ((source, 19_000), (broken, 18_999)):
        started = time.perf_counter()
        regions = find_regions(text, "python")
        assert time.perf_counter() - started < 15
        assert len(regions) == n_regions


# ----------------------------------------------------------------------------------------------
# Survey over the real data sets: how much of real kernel and program code gets a region.


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"data set not present at {path}")
    return path


def test_survey_tritonbench_g_operators_all_yield_a_triton_kernel_region() -> None:
    rows = [json.loads(line) for line in _require(DATASETS / "tritonbench" / "operators.jsonl").open()]
    operators = [row for row in rows if row["suite"] == "G"]
    misses = [row["id"] for row in operators
              if not any(region.kind == "triton_kernel" for region in find_regions(row["code"], "python"))]
    assert len(operators) == 146
    assert misses == []


def test_survey_liger_sources_that_define_a_kernel_all_yield_a_region() -> None:
    sources = [json.loads(line)["code"] for line in _require(DATASETS / "liger" / "sources.jsonl").open()]
    with_region = [code for code in sources
                   if any(region.kind == "triton_kernel" for region in find_regions(code, "python"))]
    defines_kernel = [code for code in sources if "@triton.jit" in code]
    # The other 40 sources are PyTorch (the chunked losses, module wrappers) or launch kernels
    # imported from another module (fused_linear_cross_entropy, fused_linear_jsd): cross-file
    # launches are out of reach for a per-file region finder.
    assert (len(sources), len(defines_kernel), len(with_region)) == (103, 63, 63)


@pytest.mark.parametrize(("language", "suffix", "n_files"),
                         [("python", "py", 564), ("c", "c", 549), ("cpp", "cpp", 549)])
def test_survey_transcoder_gfg_every_file_has_regions(language: str, suffix: str, n_files: int) -> None:
    paths = sorted(glob.glob(str(_require(DATASETS / "transcoder_gfg" / language) / f"*.{suffix}")))
    kinds = {"python": {"function", "script"}, "c": {"program"}, "cpp": {"program"}}[language]
    without = [Path(path).name for path in paths
               if not kinds <= {region.kind for region in find_regions(Path(path).read_text(), language)}]
    assert (len(paths), without) == (n_files, [])
