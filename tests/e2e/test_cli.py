"""`perfhint annotate`, `compare`, `doctor`: the same engine as the editor, readable in a terminal and a CI log."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fake_predictor import FakePredictor

from perfhint import cli, engine

SOURCE = "def small(n):\n    return [0] * n\n\n\ndef big(n):\n    return [[0] * n for _ in range(n)]\n\n\nsmall(10)\n"


@pytest.fixture(autouse=True)
def fake_runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(engine, "load_predictor", lambda path, device: FakePredictor.from_bundle_path(path))
    monkeypatch.setenv("PERFHINT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PERFHINT_BUNDLE", raising=False)


def perfhint(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.invalid", "-c", "user.name=t", *args],
                   check=True, capture_output=True)


def test_no_model_is_one_line_naming_bundle(capsys: pytest.CaptureFixture[str], workspace: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "shipped_bundle_path", lambda: None)  # an install that lost its default model
    (workspace / "a.py").write_text(SOURCE)
    for command in ("annotate", "compare"):
        status, out, err = perfhint(capsys, command, str(workspace / "a.py"))
        assert status == 2 and out == ""
        assert err.strip().count("\n") == 0 and "--bundle" in err, err


def test_annotate_table_and_json(capsys: pytest.CaptureFixture[str], workspace: Path, fake_bundle: Path) -> None:
    (workspace / "a.py").write_text(SOURCE)
    (workspace / "p.c").write_text("int main(void) { return 0; }\n")
    status, out, _ = perfhint(capsys, "annotate", str(workspace), "--bundle", str(fake_bundle))
    assert status == 0
    assert "TEST model" in out and "a.py" in out and "p.c" in out
    assert "line  region" in out and "≈ " in out and "args=(10,)" in out and "program" in out
    status, out, _ = perfhint(capsys, "annotate", str(workspace / "a.py"), "--bundle", str(fake_bundle), "--json")
    report = json.loads(out)
    assert report["model"]["purpose"] == "test"
    regions = {region["key"]: region for region in report["files"][0]["regions"]}
    assert regions["function:small"]["line"] == 1 and regions["function:small"]["arguments_known"]
    assert not regions["function:big"]["arguments_known"] and regions["function:big"]["prediction"].startswith("≈?")


def test_annotate_reads_project_defaults(capsys: pytest.CaptureFixture[str], workspace: Path, fake_bundle: Path) -> None:
    (workspace / "pyproject.toml").write_text(
        f'[tool.perfhint]\nbundle_path = "{fake_bundle}"\nexclude = ["skip/*"]\n'
        'hide_below = {{ bytes = "1 GiB" }}\n'.replace("{{", "{").replace("}}", "}"))
    (workspace / "a.py").write_text(SOURCE)
    (workspace / "skip").mkdir()
    (workspace / "skip" / "b.py").write_text(SOURCE)
    status, out, _ = perfhint(capsys, "annotate", str(workspace))
    assert status == 0 and "b.py" not in out and "below the hide_below thresholds" in out


def test_compare_against_head_and_fail_over(capsys: pytest.CaptureFixture[str], workspace: Path,
                                            fake_bundle: Path) -> None:
    git(workspace, "init", "-q")
    path = workspace / "a.py"
    path.write_text(SOURCE)
    git(workspace, "add", "a.py")
    git(workspace, "commit", "-qm", "base")
    status, out, _ = perfhint(capsys, "compare", str(path), "--bundle", str(fake_bundle), "--fail-over", "0")
    assert status == 0 and "±0" in out and "OK, no region grew" in out
    path.write_text(SOURCE.replace("[0] * n\n", "[1] * (2 * n)\n") + "\n\ndef extra():\n    return 1\n")
    status, out, _ = perfhint(capsys, "compare", str(path), "--bundle", str(fake_bundle), "--json")
    report = json.loads(out)
    rows = {row["key"]: row for row in report["files"][0]["rows"]}
    assert rows["function:small"]["status"] == "changed" and rows["function:big"]["delta"] == 0
    assert rows["function:extra"]["status"] == "new"
    grew = rows["function:small"]["percent"] > 0
    status, out, _ = perfhint(capsys, "compare", str(path), "--bundle", str(fake_bundle), "--fail-over", "0")
    assert status == (1 if grew else 0)
    assert ("FAIL" in out) == grew
    status, _, err = perfhint(capsys, "compare", str(path), "--rev=--output=/tmp/x", "--bundle", str(fake_bundle))
    assert status == 2 and "not a git revision" in err


def test_doctor_names_the_fix(capsys: pytest.CaptureFixture[str], fake_bundle: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    status, out, _ = perfhint(capsys, "doctor")  # the shipped default model
    assert status == 0 and "purpose default" in out, out
    monkeypatch.setattr(engine, "shipped_bundle_path", lambda: None)  # an install that lost its default model
    status, out, _ = perfhint(capsys, "doctor")
    assert status == 1 and "fix:" in out and "--bundle" in out
    status, out, _ = perfhint(capsys, "doctor", "--bundle", str(fake_bundle))
    assert status == 0 and "purpose test" in out and "all good" in out
