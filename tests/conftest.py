"""Shared pytest fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# The golden regress-lm fixture lives in shared/ beside the repository root, not inside it.
REGRESS_LM_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "regress_lm"


@pytest.fixture(scope="session")
def regress_lm_fixtures() -> Path:
    """The folder with regress-lm's golden files (tokenizer_golden.json, golden.json, checkpoints)."""
    if not REGRESS_LM_FIXTURES.is_dir():
        pytest.fail(f"regress-lm fixtures not found at {REGRESS_LM_FIXTURES}; check out shared/ beside the repo")
    return REGRESS_LM_FIXTURES


# --- model bundles (runtime tests, end-to-end tests) ---------------------------------------------------
# A bundle is made by the real exporter (torch), so these fixtures import perfhint_export lazily: the
# runtime tests themselves never import torch.

TINY_BUNDLE_PROBES = 8  # the parity gate still runs on every bundle; fewer probes keep the fixtures fast
TINY_METRICS = (("peak_memory", "B"), ("latency", "s"))  # the two metric kinds predict.py knows


def _tiny_checkpoint(directory: Path) -> Path:
    """A tiny random RLM (d_model 32, 1 + 1 layers, the fixtures' SentencePiece vocabulary, IEEE codec x 2
    objectives, perfhint-v1 input template) saved as a self-describing perfhint checkpoint."""
    import torch

    from perfhint.encoder_vocab import EncoderVocab
    from perfhint_export.checkpoint import save_perfhint_checkpoint
    from perfhint_export.config import RLMConfig
    from perfhint_export.model import EncoderDecoder
    from perfhint_export.sidecar import Metric

    vocab = EncoderVocab.from_file(REGRESS_LM_FIXTURES / "encoder_spm.model", "sentencepiece")
    config = RLMConfig(encoder_vocab_size=vocab.size, decoder_vocab_size=13, d_model=32, num_encoder_layers=1,
                       num_decoder_layers=1, decode_len=2 * 7, max_input_len=64, encoder_pad_id=vocab.pad_id,
                       encoder_dim_feedforward=64, decoder_dim_feedforward=64)
    torch.manual_seed(0)
    model = EncoderDecoder(config).eval()
    with torch.no_grad():  # fresh LayerNorms are exactly 1/0: noise makes every weight matter, as in the fixtures
        noise = torch.Generator().manual_seed(1)
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=noise))
    path = directory / "tiny-random-test.safetensors"
    return save_perfhint_checkpoint(path, model, decoder_tokenizer={"type": "ieee"}, max_num_objs=2,
                                    metrics=[Metric(name, unit) for name, unit in TINY_METRICS], encoder_vocab=vocab,
                                    input_template={"kind": "perfhint-v1", "task": "cost"})


def _export_bundle(checkpoint: Path, sidecar: Path | None, out: Path, precision: str, name: str | None = None) -> Path:
    from perfhint_export.bundle_writer import write_bundle
    from perfhint_export.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint, sidecar)
    return write_bundle(loaded, out, precision=precision, name=name, purpose="test",
                        probe_count=TINY_BUNDLE_PROBES).path


@pytest.fixture(scope="session")
def _tiny_checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_checkpoint(tmp_path_factory.mktemp("tiny-checkpoint"))


@pytest.fixture(scope="session")
def tiny_bundle(_tiny_checkpoint_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random fp32 bundle (purpose "test"; metrics peak_memory [B], latency [s];
    input template perfhint-v1; max_input_len 64). Do not modify it: copy it first (shutil.copytree)."""
    return _export_bundle(_tiny_checkpoint_path, None, tmp_path_factory.mktemp("bundles") / "tiny-fp32", "fp32",
                          name="tiny-random-test")


@pytest.fixture(scope="session")
def tiny_bundle_int8(_tiny_checkpoint_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny random model as `tiny_bundle`, exported with int8 graphs."""
    return _export_bundle(_tiny_checkpoint_path, None, tmp_path_factory.mktemp("bundles") / "tiny-int8", "int8",
                          name="tiny-random-test")


@pytest.fixture(scope="session")
def regress_lm_bundle(regress_lm_fixtures: Path, tmp_path_factory: pytest.TempPathFactory):
    """`regress_lm_bundle("rlm_tiny_ieee", "int8")` -> a bundle exported from that golden regress-lm fixture
    (sidecar in tests/data/regress_lm/), built on first use and shared by the session."""
    built: dict[tuple[str, str], Path] = {}
    sidecars = Path(__file__).resolve().parent / "data" / "regress_lm"

    def get(fixture: str, precision: str) -> Path:
        if (fixture, precision) not in built:
            out = tmp_path_factory.mktemp("regress-lm-bundles") / f"{fixture}-{precision}"
            built[fixture, precision] = _export_bundle(regress_lm_fixtures / f"{fixture}.pt",
                                                       sidecars / f"{fixture}.sidecar.json", out, precision)
        return built[fixture, precision]

    return get


@pytest.fixture(scope="session")
def raw_memory_bundle(regress_lm_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """regress-lm's rlm_tiny_ieee (fp32) with its one metric in MiB: a raw-template bundle (the text is the
    code alone, no header), like the VS Code end-to-end test's model."""
    sidecar = json.loads((Path(__file__).resolve().parent / "data" / "regress_lm" / "rlm_tiny_ieee.sidecar.json")
                         .read_text())
    sidecar["encoder_vocab"]["file"] = str(regress_lm_fixtures / "encoder_spm.model")
    sidecar["metrics"] = [{"name": "peak_memory", "unit": "MiB"}]
    directory = tmp_path_factory.mktemp("raw-memory")
    (directory / "sidecar.json").write_text(json.dumps(sidecar))
    return _export_bundle(regress_lm_fixtures / "rlm_tiny_ieee.pt", directory / "sidecar.json", directory / "bundle",
                          "fp32")
