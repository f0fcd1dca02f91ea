"""`perfhint predict` (JSONL in, JSONL out) and `perfhint bundle info|verify`, through the real CLI entry point."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from perfhint import cli, predict_cli
from perfhint.runtime import Predictor

REGRESS_LM_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "regress_lm"  # as conftest
GOLDEN = {entry["fixture"]: entry for entry in json.loads((REGRESS_LM_FIXTURES / "golden.json").read_text())["fixtures"]}
PREDICTION_KEYS = ["id", "predictions", "n_tokens", "truncated"]
SUMMARY_KEYS = ["metric", "unit", "median", "p10", "p90", "special_fraction"]


def predict(bundle: Path, records: list[str] | bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str],
            *flags: str) -> tuple[int, list[dict], str]:
    """Run `perfhint predict` on JSONL lines (or raw bytes); returns (exit status, output records, stderr)."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(records if isinstance(records, bytes) else "".join(line + "\n" for line in records).encode())
    out = tmp_path / "out.jsonl"
    status = cli.main(["predict", "--bundle", str(bundle), "--jsonl", str(source), "--out", str(out), *flags])
    lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    return status, [json.loads(line) for line in lines], capsys.readouterr().err


def record(record_id: object, text: str) -> str:
    return json.dumps({"id": record_id, "text": text}, ensure_ascii=False)


# ----------------------------------------------------------------------------------------------- golden


@pytest.mark.parametrize("fixture", list(GOLDEN))
def test_fp32_greedy_reproduces_regress_lm_exactly(regress_lm_bundle, fixture: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cases = GOLDEN[fixture]["cases"]
    status, lines, err = predict(regress_lm_bundle(fixture, "fp32"), [record(i, case["input"]) for i, case in enumerate(cases)],
                                 tmp_path, capsys, "--greedy", "--samples", "4")
    assert (status, err) == (0, "")
    # golden.json writes non-finite values as "inf"/"nan"/"INVALID" strings, as perfhint predict does.
    assert [line["greedy"] for line in lines] == [case["greedy"]["values"] for case in cases]
    assert [line["id"] for line in lines] == list(range(len(cases)))
    assert [line["n_tokens"] for line in lines] == [case["input_token_len"] for case in cases]


@pytest.mark.parametrize("fixture", list(GOLDEN))
def test_int8_greedy_is_the_runtimes_checked_decode(regress_lm_bundle, fixture: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The int8 tolerance itself is checked in test_runtime (logits within the manifest's atol, greedy regret
    <= 2*atol against fp32); here: the CLI prints exactly that decode. Today it equals regress-lm's on all six
    golden cases, but that is not promised: near ties (gaps 0.025-0.06) are below the int8 error."""
    bundle = regress_lm_bundle(fixture, "int8")
    texts = [case["input"] for case in GOLDEN[fixture]["cases"]]
    status, lines, _ = predict(bundle, [record(i, text) for i, text in enumerate(texts)], tmp_path, capsys,
                               "--greedy", "--samples", "4")
    expected = Predictor.from_bundle_path(bundle).predict_texts(texts, samples=4, greedy=True)
    assert status == 0
    assert [line["greedy"] for line in lines] == [[predict_cli.json_number(v) for v in p.greedy] for p in expected]
    assert [[s["median"] for s in line["predictions"]] for line in lines] == \
        [[predict_cli.json_number(s.median) for s in p.objectives] for p in expected]


# ----------------------------------------------------------------------------------------------- records


def test_output_shape_and_units(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, lines, err = predict(tiny_bundle, [record("a", "def f(x):\n    return x\n"), record(None, "")],
                                 tmp_path, capsys)
    assert (status, err) == (0, "")
    for line in lines:
        assert list(line) == PREDICTION_KEYS
        assert [list(summary) for summary in line["predictions"]] == [SUMMARY_KEYS] * 2
        assert [(s["metric"], s["unit"]) for s in line["predictions"]] == [("peak_memory", "B"), ("latency", "s")]
    assert [(line["id"], line["n_tokens"], line["truncated"]) for line in lines] == [("a", 8, False), (None, 0, False)]


@pytest.mark.parametrize(("raw", "expected_id", "needle"), [
    (b"this is not json", None, "line 1: not JSON"),
    (b'["an", "array"]', None, "line 1: expected a JSON object, got an array"),
    (b'{"id": 7}', 7, 'line 1: missing "text"'),
    (b'{"id": "x", "text": 12}', "x", '"text" must be a string, got a number'),
    (b'{"id": "y", "text": null}', "y", '"text" must be a string, got null'),
    (b'{"id": 1, "text": "\xff\xfe"}', None, "line 1: not UTF-8"),
    (b'{"id": 1, "text": "a"', None, "line 1: not JSON"),
])
def test_bad_record_gets_an_error_line_and_the_others_are_answered(
        tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: bytes, expected_id: object,
        needle: str) -> None:
    good = record("good", "x = 1").encode()
    status, lines, err = predict(tiny_bundle, raw + b"\n\n" + good + b"\n", tmp_path, capsys)
    assert status == predict_cli.EXIT_RECORD_ERRORS
    assert "1 of 2 record(s) could not be predicted" in err
    assert [list(line) for line in lines] == [["id", "error"], PREDICTION_KEYS]  # the blank line is skipped
    assert lines[0]["id"] == expected_id and needle in lines[0]["error"], lines[0]
    assert lines[1]["id"] == "good"


def test_special_values_are_written_as_strings(regress_lm_bundle, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    text = GOLDEN["rlm_tiny_p10_multi"]["cases"][2]["input"]  # greedy decodes objective 2 to +inf
    source = tmp_path / "in.jsonl"
    source.write_text(record(0, text) + "\n")
    assert cli.main(["predict", "--bundle", str(regress_lm_bundle("rlm_tiny_p10_multi", "fp32")), "--jsonl",
                     str(source), "--out", "-", "--greedy", "--samples", "16"]) == 0
    out = capsys.readouterr().out
    json.loads(out, parse_constant=lambda name: pytest.fail(f"non-JSON constant {name} in {out!r}"))
    assert '"greedy": [1.0, "inf"]' in out


def test_stdin_to_stdout(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((record(1, "a = 1") + "\n").encode())))
    assert cli.main(["predict", "--bundle", str(tiny_bundle), "--jsonl", "-", "--out", "-", "--samples", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert [json.loads(line)["id"] for line in captured.out.splitlines()] == [1]


def test_seeded_and_independent_of_chunking(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    records = [record(i, "x = 1\n" * i) for i in range(7)]
    _, first, _ = predict(tiny_bundle, records, tmp_path, capsys, "--seed", "5")
    monkeypatch.setattr(predict_cli, "CHUNK_RECORDS", 2)
    _, chunked, _ = predict(tiny_bundle, records, tmp_path, capsys, "--seed", "5", "--threads", "1")
    _, other_seed, _ = predict(tiny_bundle, records, tmp_path, capsys, "--seed", "6")
    assert first == chunked
    assert [line["id"] for line in chunked] == list(range(7))
    assert first != other_seed


# ----------------------------------------------------------------------------------------------- run errors


def tampered(bundle: Path, tmp_path: Path, file_name: str = "encoder.onnx") -> Path:
    copy = Path(shutil.copytree(bundle, tmp_path / "tampered"))
    data = bytearray((copy / file_name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / file_name).write_bytes(bytes(data))
    return copy


def check_one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.jsonl").write_text(record(1, "x") + "\n")
    check_one_line_error(["predict", "--bundle", str(tmp_path / "nowhere"), "--jsonl", str(tmp_path / "in.jsonl"),
                          "--out", str(tmp_path / "out.jsonl")], capsys, "perfhint predict:", "not found",
                         "perfhint export")
    assert not (tmp_path / "out.jsonl").exists()


def test_tampered_bundle(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.jsonl").write_text(record(1, "x") + "\n")
    check_one_line_error(["predict", "--bundle", str(tampered(tiny_bundle, tmp_path)), "--jsonl",
                          str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out.jsonl")], capsys,
                         "encoder.onnx", "sha256 differs", "perfhint export")


def test_missing_input_file(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_one_line_error(["predict", "--bundle", str(tiny_bundle), "--jsonl", str(tmp_path / "none.jsonl"),
                          "--out", "-"], capsys, "cannot read --jsonl", "No such file")


# ----------------------------------------------------------------------------------------------- bundle info / verify


def test_bundle_info_describes_every_part(regress_lm_bundle, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bundle", "info", str(regress_lm_bundle("rlm_tiny_p10_multi", "int8"))]) == 0
    out = capsys.readouterr().out
    labels = [line.split()[0] for line in out.splitlines() if line[:1] != " "]
    assert labels == ["bundle", "model", "metrics", "codec", "input", "architecture", "graphs", "quantization",
                      "parity", "calibration", "provenance"]
    for needle in ("purpose: test", "0: first [no unit]", "1: second [no unit]",
                   "P10, 4 digits, exponents -10..10; specials: INVALID, NAN, INF, NINF; 2 objective(s) x 6 tokens "
                   "= 12 decoder steps; decoder vocab 38", "at most 64 tokens", "encoder.onnx ", "decoder_step.onnx ",
                   "int8 (QInt8)", "passed (int8", "rlm_tiny_p10_multi.pt (regress-lm"):
        assert needle in out, (needle, out)


def test_bundle_info_reads_a_bundle_whose_graphs_are_damaged(tiny_bundle: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bundle", "info", str(tampered(tiny_bundle, tmp_path))]) == 0
    assert "tiny-random-test" in capsys.readouterr().out


def test_bundle_verify_ok(tiny_bundle_int8: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bundle", "verify", str(tiny_bundle_int8), "--threads", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"OK {tiny_bundle_int8}: tiny-random-test (int8, cpu); 3 files match")
    assert "decoded 17 tokens x 4 samples in" in out[0]


@pytest.mark.parametrize("file_name", ["encoder.onnx", "decoder_step.onnx", "tokenizer.model"])
def test_bundle_verify_refuses_a_tampered_bundle(tiny_bundle: Path, tmp_path: Path, file_name: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    check_one_line_error(["bundle", "verify", str(tampered(tiny_bundle, tmp_path, file_name))], capsys,
                         "perfhint bundle verify:", file_name, "perfhint export")


def test_bundle_verify_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_one_line_error(["bundle", "verify", str(tmp_path)], capsys, "no manifest.json", "perfhint export")
