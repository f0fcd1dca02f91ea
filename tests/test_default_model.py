"""The default model shipped inside the package: present, intact, small, and used when nothing else is named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from perfhint import cli, engine
from perfhint.bundle import load_bundle

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MAX_BUNDLE_BYTES = 30 * 1024 * 1024  # the training issue's limit for a bundle inside the wheel


def test_shipped_bundle_is_verified_and_small() -> None:
    path = engine.shipped_bundle_path()
    assert path is not None, "server/perfhint/models/default/manifest.json is missing"
    bundle = load_bundle(path)  # checks every file's sha256 against the manifest
    assert bundle.manifest["model"]["purpose"] == "default"
    assert [m["unit"] for m in bundle.manifest["metrics"]] == ["B", "ms"]
    assert sum(f.stat().st_size for f in path.iterdir()) <= MAX_BUNDLE_BYTES


def test_annotate_uses_the_shipped_model(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.delenv("PERFHINT_BUNDLE", raising=False)
    monkeypatch.setenv("PERFHINT_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["annotate", str(EXAMPLES / "memory" / "grow_list.py"), str(EXAMPLES / "triton")]) == 0
    out = capsys.readouterr().out
    assert "purpose: default" in out
    memory_hints = re.findall(r"≈\?? ?[\d.]+ (?:B|KiB|MiB|GiB)", out)
    latency_hints = re.findall(r"≈\?? ?[\d.]+ (?:µs|ms|s) @H100", out)  # the GPU the example states
    assert len(memory_hints) == 3 and len(latency_hints) == 1, out


def test_the_default_checkpoint_for_finetuning_is_the_one_the_bundle_came_from() -> None:
    pytest.importorskip("torch")
    from perfhint.bundle import sha256_file
    from perfhint_train.finetune import DEFAULT_CHECKPOINT

    path = engine.shipped_bundle_path()
    assert path is not None and DEFAULT_CHECKPOINT.is_file(), DEFAULT_CHECKPOINT
    assert sha256_file(DEFAULT_CHECKPOINT) == load_bundle(path).manifest.provenance.checkpoint_sha256
