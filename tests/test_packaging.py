"""The package's promises: the runtime imports no torch, the CLI routes and gates subcommands by extra."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import perfhint
from perfhint import cli


def runtime_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(perfhint.__path__, "perfhint."))


def test_runtime_modules_never_import_torch() -> None:
    # A fresh interpreter: torch is installed in the dev venv, so only an import can bring it in.
    modules = [m for m in runtime_modules() if m != "perfhint.__main__"]
    assert "perfhint.numbers" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = sorted(m for m in ('torch', 'onnx', 'transformers', 'perfhint_export', 'perfhint_train') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"perfhint {perfhint.__version__}"


def test_unknown_command_names_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["frobnicate"]) == 2
    assert "perfhint --help" in capsys.readouterr().err


def test_missing_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = cli.Command("perfhint_export.cli", "x", extra="export", needs=("torch", "no_such_module_for_test"))
    monkeypatch.setitem(cli.COMMANDS, "export", fake)
    assert cli.main(["export", "ckpt.pt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["perfhint export needs the 'export' extra (no_such_module_for_test not installed): "
                   "pip install 'perfhint[export]'"]


def test_overview_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert f"  {name}" in out
