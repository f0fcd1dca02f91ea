"""Numbers as people read them: units always, two significant digits, a real minus sign; model input text."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from perfhint.context import Context, parse_directive
from perfhint.input_size import size_text
from perfhint.input_template import TemplateError, render_model_input, size_of_text
from perfhint.predict import format_band, format_delta, format_percent, format_quantity
from perfhint.engine import Engine
from perfhint.regions import find_regions
from perfhint.settings import Settings, merge, parse_quantity

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))
from fake_predictor import FakePredictor  # noqa: E402

MiB = 1024**2


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (12.5 * MiB, "B", "12 MiB"),
    (2.1e-4, "s", "0.21 ms"),
    (0.21, "ms", "0.21 ms"),
    (50e-6, "s", "50 µs"),
    (0, "B", "0 B"),
    (1023, "B", "1023 B"),
    (1024, "B", "1 KiB"),
    (3.14 * 1024**3, "B", "3.1 GiB"),
    (512 * MiB, "B", "512 MiB"),
    (2.5, "s", "2.5 s"),
    (1.5, "MiB", "1.5 MiB"),
    (5e-9, "s", "0.005 µs"),
    (-3 * MiB, "B", "−3 MiB"),
    (7, "widgets", "7 widgets"),
])
def test_format_quantity(value: float, unit: str, expected: str) -> None:
    assert format_quantity(value, unit) == expected


@pytest.mark.parametrize(("delta", "unit", "expected"), [
    (3.1 * MiB, "B", "+3.1 MiB"),
    (-512 * 1024, "B", "−512 KiB"),
    (0, "B", "±0 B"),
    (-2e-5, "s", "−20 µs"),
    (0, "ms", "±0 s"),
])
def test_format_delta(delta: float, unit: str, expected: str) -> None:
    assert format_delta(delta, unit) == expected


def test_format_percent_and_band() -> None:
    assert format_percent(100, 88) == "−12 %"
    assert format_percent(100, 103.4) == "+3.4 %"
    assert format_percent(0, 5) is None
    assert format_band(9.8 * MiB, 14 * MiB, "B") == "9.8–14 MiB"
    assert format_band(900 * 1024, 1.2 * MiB, "B") == "0.88–1.2 MiB"


def test_settings_parse_thresholds_and_report_bad_fields() -> None:
    settings, problems = merge(Settings(), {"hideBelow": {"bytes": "1 MiB", "seconds": "10 µs"}, "samples": 0,
                                            "baseline": "head", "targetGpu": "A100 80GB", "future": 1}, source="t")
    assert settings.hide_below == {"bytes": MiB, "seconds": pytest.approx(1e-5)}
    assert settings.samples == 32 and settings.baseline == "HEAD" and settings.target_gpu == "H100"
    assert len(problems) == 2 and all("using" in problem for problem in problems)
    assert parse_quantity("0.05 ms", "seconds") == pytest.approx(5e-5)
    with pytest.raises(ValueError):
        parse_quantity("3 MiB", "seconds")


def check_input(template: dict, context: Context | None, expected: str, code: str = "def f(n):\n    return n\n") -> None:
    assert render_model_input(template, language="python", region_kind="function", code=code, context=context) == expected


def test_raw_template_is_the_code_byte_for_byte() -> None:
    check_input({"kind": "raw"}, parse_directive("# perfhint: args=(1,)"), "def f(n):\n    return n\n")


def test_perfhint_v1_header_sorted_one_line() -> None:
    texts = Context(texts={"shape": "(4096,\n   4096)", "gpu": "H100", "args": "(1 << 20,)"})
    check_input({"kind": "perfhint-v1", "task": "peak_memory"}, texts,
                "<perfhint-v1 task=peak_memory language=python kind=function> args=(1 << 20,); gpu=H100; "
                "shape=(4096, 4096)\ndef f(n):\n    return n\n")
    check_input({"kind": "perfhint-v1"}, Context(), "<perfhint-v1 task=cost language=python kind=function>\nx", code="x")


def test_perfhint_v2_states_the_input_size_inside_the_tag() -> None:
    texts = Context(texts={"shape": "[[4096, 4096]]", "gpu": "H100"})
    check_input({"kind": "perfhint-v2", "task": "latency"}, texts,
                "<perfhint-v2 task=latency language=python kind=function size=1.7e7> gpu=H100; shape=[[4096, 4096]]\nx",
                code="x")
    check_input({"kind": "perfhint-v2"}, Context(), "<perfhint-v2 task=cost language=python kind=function size=0>\nx",
                code="x")
    # A value the safe evaluator refuses to build is an unknown size, not zero.
    check_input({"kind": "perfhint-v2"}, Context(texts={"args": "([0] * 10**12,)"}),
                "<perfhint-v2 task=cost language=python kind=function size=?> args=([0] * 10**12,)\nx", code="x")


@pytest.mark.parametrize("text, size", [
    ("<perfhint-v2 task=latency language=python kind=triton_kernel size=1.7e7> gpu=H100\nx", "1.7e7"),
    ("<perfhint-v2 task=cost language=python kind=function size=?> args=([0] * 10**12,)\nx", "?"),
    ("<perfhint-v1 task=cost language=python kind=function> args=(3,)\nx", None),
    ("def f(size=3):\n    return '<perfhint-v2 task=cost language=c kind=program size=9>'\n", None),
])
def test_the_hover_size_is_read_back_from_the_text_the_model_read(text: str, size: str | None) -> None:
    assert size_of_text(text) == size


def test_perfhint_v2_reads_a_program_size_from_its_code() -> None:
    code = "#define N 100000\nint main(void) { return 0; }\n"
    text = render_model_input({"kind": "perfhint-v2"}, language="c", region_kind="program", code=code, context=None)
    assert text == "<perfhint-v2 task=cost language=c kind=program size=1e5>\n" + code


@pytest.mark.parametrize("size, text", [
    (None, "?"), (float("nan"), "?"), (0.0, "0"), (-3.0, "0"), (1.0, "1e0"), (7.0, "7e0"), (12.0, "1.2e1"),
    (99.9, "1e2"), (4096.0 * 4096, "1.7e7"), (0.25, "2.5e-1"), (3e-7, "3e-7"), (1e300, "1e300"),
])
def test_size_text_is_one_spelling_per_magnitude(size: float | None, text: str) -> None:
    assert size_text(size) == text


def test_unknown_template_kind_names_the_fix() -> None:
    with pytest.raises(TemplateError, match="upgrade perfhint or re-export"):
        check_input({"kind": "perfhint-v9"}, None, "")


# --- what the editor shows: golden files --------------------------------------------------------------
# tests/data/lsp/<case>.{py,c,cpp} (+ optional <case>.baseline.<ext> for Δ) -> <case>.expected: the inlay
# hints, hover and code lens the server renders, with the fake predictor's deterministic numbers.
# `UPDATE_EXPECT=1 pytest tests/test_predict_format.py` rewrites them; review with `git diff`.

LSP_DATA = Path(__file__).parent / "data" / "lsp"


def render_features(source: str, language: str, baseline_source: str | None = None) -> str:
    from pygls.workspace.position_codec import PositionCodec

    from perfhint.lsp.analysis import READY, DocumentView, RegionView
    from perfhint.lsp.features.code_lens import titles
    from perfhint.lsp.features.hover import markdown
    from perfhint.lsp.features.inlay_hints import inlay_hints

    predictor = FakePredictor()
    engine = Engine(cache_dir=None)
    engine.use_predictor(predictor)
    settings = Settings()

    def predictions(text: str) -> dict[str, Any]:
        requests = engine.requests(find_regions(text, language), settings, predictor)
        return {o.request.region.key: o.prediction for o in engine.run(requests, settings, predictor)}

    now = predictions(source)
    before = predictions(baseline_source) if baseline_source is not None else {}
    views = tuple(RegionView(region, READY, now[region.key], baseline=before.get(region.key))
                  for region in find_regions(source, language) if region.key in now)
    document = DocumentView(uri="file:///case", regions=views, baseline_label="saved" if before else "",
                            settings=settings)
    lines = source.split("\n")
    out = ["== inlay hints"]
    for hint in inlay_hints(document, source, PositionCodec(), None):
        out.append(f"{hint.position.line + 1}:{hint.position.character}  {lines[hint.position.line].strip()}  "
                   f"⟶  {hint.label}")
    out.append("== code lens")
    out += titles(document)
    for view in views:
        out += [f"== hover {view.region.key}", markdown(view, document)]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("case", sorted(path.name for path in LSP_DATA.iterdir()
                                        if path.suffix in (".py", ".c", ".cpp") and ".baseline." not in path.name))
def test_features_golden(case: str) -> None:
    path = LSP_DATA / case
    baseline = path.with_name(f"{path.stem}.baseline{path.suffix}")
    language = {".py": "python", ".c": "c", ".cpp": "cpp"}[path.suffix]
    actual = render_features(path.read_text(), language, baseline.read_text() if baseline.exists() else None)
    expected_path = path.with_suffix(".expected")
    if os.environ.get("UPDATE_EXPECT"):
        expected_path.write_text(actual)
    assert expected_path.exists(), f"no {expected_path.name}: run UPDATE_EXPECT=1 pytest {__file__}"
    assert actual == expected_path.read_text()
