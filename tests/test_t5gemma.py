"""regress-lm T5GEMMA-encoder checkpoints: export -> bundle -> `perfhint predict --greedy` equals PyTorch.

The models are tiny and random (tiny_hf.py: T5Gemma v1 and v2 configs built here, a WordLevel tokenizer
that prepends <bos> like Gemma's), saved the way regress-lm saves them (`torch.save({"model_state":
PyTorchModel.state_dict()})`, keys `encoder_decoder.encoder.encoder.*`), next to a local HF model
directory and a sidecar. Tolerances are parity.py's (fp32 logits 1e-4, int8 0.2); greedy values through the
CLI must equal the PyTorch reference's (transformers' encoder + model.py's decoder) exactly for fp32.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers", reason="T5Gemma needs the hf extra: pip install -e '.[hf]'")

import torch  # noqa: E402

import tiny_hf  # noqa: E402
from perfhint import cli  # noqa: E402
from perfhint.bundle import load_bundle  # noqa: E402
from perfhint.numbers import codec_from_spec  # noqa: E402
from perfhint.runtime import Predictor  # noqa: E402
from perfhint_export import t5gemma  # noqa: E402
from perfhint_export.checkpoint import load_checkpoint  # noqa: E402
from perfhint_export.errors import CheckpointFormatError, CheckpointMismatchError, SidecarError  # noqa: E402

torch.set_num_threads(1)  # two shared cores; the models are tiny

# The published regress-lm T5Gemma checkpoints' decoder: IEEE with NaN special (FACTS §5), 5 mantissa digits.
DECODER_TOKENIZER = {"type": "ieee", "num_mantissa_digits": 5, "special_values": ["NAN"]}
TEXTS = ["def f ( n ) : return [ 0 ] * n", "", "x = y + 1 eoi", "for i in range ( n ) : x = x * 2 if i else 3"]
PROBES = 8  # the parity gate still runs; fewer probes keep the test fast


@dataclass
class Case:
    directory: Path
    checkpoint: Path
    sidecar: Path
    model: t5gemma.T5GemmaRLM  # the PyTorch reference, built here, independent of the loader


def make_case(directory: Path, version: int, *, max_input_len: int = 64, sidecar_extra: dict | None = None,
              decoder_layers: int = 2, **hf_overrides) -> Case:
    """A regress-lm-style checkpoint + sidecar + HF model directory for a random tiny T5Gemma RLM."""
    hf_dir = tiny_hf.write_hf_dir(directory / "hf-model", version, **hf_overrides)
    spec = t5gemma.load_hf_encoder_spec(hf_dir)
    vocab, _ = t5gemma.load_hf_vocab(hf_dir)
    codec = codec_from_spec(DECODER_TOKENIZER)
    config = t5gemma.rlm_config_for(spec, encoder_vocab_size=vocab.size, decoder_vocab_size=codec.vocab_size,
                                    num_decoder_layers=decoder_layers, decode_len=codec.decode_len,
                                    max_input_len=max_input_len, encoder_pad_id=vocab.pad_id, decoder_dim_feedforward=64)
    torch.manual_seed(version)
    model = t5gemma.fresh_model(spec, config)
    with torch.no_grad():  # fresh RMSNorms are exactly 1 + 0: noise makes every weight matter
        noise = torch.Generator().manual_seed(10 + version)
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=noise))
    checkpoint = directory / "best_checkpoint.pt"
    torch.save({"model_state": {"encoder_decoder." + key: value for key, value in model.state_dict().items()},
                "global_step": 7}, checkpoint)
    sidecar = directory / "model.sidecar.json"
    sidecar.write_text(json.dumps({
        "format": "regress-lm", "encoder_type": "t5gemma", "hf_model_dir": "hf-model",
        "max_input_len": max_input_len, "max_num_objs": 1, "decoder_tokenizer": DECODER_TOKENIZER,
        "metrics": [{"name": "latency", "unit": "ms"}], **(sidecar_extra or {})}))
    return Case(directory, checkpoint, sidecar, model)


def export(case: Case, out: Path, precision: str = "fp32", probes: int = PROBES) -> Path:
    from perfhint_export.bundle_writer import write_bundle

    return write_bundle(load_checkpoint(case.checkpoint, case.sidecar), out, precision=precision, purpose="test",
                        probe_count=probes).path


def reference_greedy(case: Case, bundle: Path, text: str) -> list:
    """PyTorch greedy decoding (model.py's loop over transformers' encoder) of the bundle's own token ids."""
    predictor = Predictor.from_bundle_path(bundle)
    ids = torch.tensor([predictor.encode_text(text).ids.tolist()], dtype=torch.long)
    codec = codec_from_spec(DECODER_TOKENIZER)
    tokens = case.model.greedy_decode(ids, codec)
    return [repr(value) for value in codec.decode(tokens[0].tolist())]


def cli_greedy(bundle: Path, texts: list[str], tmp_path: Path) -> list[list]:
    inputs, outputs = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inputs.write_text("".join(json.dumps({"id": index, "text": text}) + "\n" for index, text in enumerate(texts)))
    assert cli.main(["predict", "--bundle", str(bundle), "--jsonl", str(inputs), "--out", str(outputs),
                     "--greedy", "--samples", "4"]) == 0
    lines = [json.loads(line) for line in outputs.read_text().splitlines()]
    return [[repr(float(value)) if value != "INVALID" else repr(value) for value in line["greedy"]] for line in lines]


def check_greedy(case: Case, bundle: Path, texts: list[str], tmp_path: Path) -> None:
    assert cli_greedy(bundle, texts, tmp_path) == [reference_greedy(case, bundle, text) for text in texts]


# ----------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, Path]:
    """T5Gemma v1, exported through the `perfhint export` CLI (fp32)."""
    case = make_case(tmp_path_factory.mktemp("t5gemma-v1"), 1)
    out = case.directory / "bundle-fp32"
    assert cli.main(["export", str(case.checkpoint), "--config", str(case.sidecar), "--out", str(out),
                     "--precision", "fp32", "--purpose", "test"]) == 0
    return case, out


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, Path]:
    """T5Gemma 2 (text encoder; vision tower dropped as regress-lm does), fp32."""
    case = make_case(tmp_path_factory.mktemp("t5gemma-v2"), 2)
    return case, export(case, case.directory / "bundle-fp32")


# ----------------------------------------------------------------------------------------------- round trips


def test_v1_predict_greedy_equals_pytorch(v1, tmp_path: Path) -> None:
    case, bundle = v1
    check_greedy(case, bundle, TEXTS, tmp_path)


def test_v2_predict_greedy_equals_pytorch(v2, tmp_path: Path) -> None:
    case, bundle = v2
    check_greedy(case, bundle, TEXTS, tmp_path)


@pytest.mark.parametrize("fixture", ["v1", "v2"])
def test_parity_report_and_manifest(fixture: str, request: pytest.FixtureRequest) -> None:
    """fp32 graphs within 1e-4 of PyTorch at lengths 0, 1, 19, 33, 64 (window 4: both sides of it)."""
    case, bundle_path = request.getfixturevalue(fixture)
    manifest = load_bundle(bundle_path).manifest
    parity = manifest.parity
    assert parity["passed"] and [item["length"] for item in parity["cases"]] == [0, 1, 19, 33, 64]
    assert parity["max_abs_diff"]["logits"] <= 1e-4 and parity["max_abs_diff"]["memory"] <= 1e-4
    architecture = manifest["architecture"]
    assert architecture["encoder_type"] == "t5gemma" and architecture["d_model"] == 32
    assert architecture["hf_encoder"]["t5gemma_version"] == int(fixture[1])
    assert architecture["hf_encoder"]["layer_types"] == ["sliding_attention", "full_attention", "sliding_attention"]
    tokenizer = architecture["encoder_tokenizer"]
    assert tokenizer["add_special_tokens"] is True and tokenizer["special_tokens_of_empty_text"] == [2]  # <bos>
    assert manifest.encoder_tokenizer.kind == "hf_tokenizers" and manifest.encoder_tokenizer.pad_id == 0


def test_int8_bundle_passes_its_gate(v1) -> None:
    case, _ = v1
    bundle = load_bundle(export(case, case.directory / "bundle-int8", precision="int8"))
    assert bundle.precision == "int8" and bundle.manifest.parity["max_abs_diff"]["logits"] <= 0.2
    assert bundle.manifest.quantization["per_channel"] is True


def test_empty_text_is_bos_only(v1) -> None:
    """regress-lm's HuggingFaceVocab encodes with special tokens: "" is [<bos>], never a zero-length input."""
    _, bundle = v1
    encoded = Predictor.from_bundle_path(bundle).encode_text("")
    assert encoded.ids.tolist() == [2] and encoded.n_tokens == 1


# ----------------------------------------------------------------------------------------------- semantics


def memory(model: t5gemma.T5GemmaRLM, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.encode(ids)[0]


def test_sliding_window_layers_run_as_in_pytorch(tmp_path: Path) -> None:
    """The same weights served with every layer global (regress-lm's option, sidecar encoder_full_attention)
    give other numbers than with the config's sliding layers, and each bundle matches its own PyTorch model."""
    case = make_case(tmp_path / "full", 1, sidecar_extra={"encoder_full_attention": True})
    loaded = load_checkpoint(case.checkpoint, case.sidecar)
    assert loaded.model.manifest_architecture["hf_encoder"]["layer_types"] == ["full_attention"] * 3
    ids = torch.randint(4, 60, (1, 19), generator=torch.Generator().manual_seed(3))
    windowed, full = memory(case.model, ids), memory(loaded.model, ids)
    assert (windowed - full).abs().max() > 1e-2  # the window (4) matters at length 19
    assert torch.allclose(memory(case.model, ids[:, :4]), memory(loaded.model, ids[:, :4]), atol=1e-5)
    bundle = export(case, tmp_path / "bundle")
    assert load_bundle(bundle).manifest.parity["max_abs_diff"]["memory"] <= 1e-4


def test_attention_soft_capping_is_in_the_graph(v1) -> None:
    """The cap (2.0 here) changes the encoder's output, and the exported graph matched the capped model."""
    case, bundle = v1
    ids = torch.randint(4, 60, (1, 19), generator=torch.Generator().manual_seed(4))
    uncapped = make_case(case.directory / "uncapped", 1, attn_logit_softcapping=None).model
    uncapped.load_state_dict(case.model.state_dict())
    assert (memory(case.model, ids) - memory(uncapped, ids)).abs().max() > 1e-2
    assert load_bundle(bundle).manifest.parity["max_abs_diff"]["memory"] <= 1e-4


def test_bundle_tokenizer_is_what_transformers_runs(tmp_path: Path) -> None:
    """A tokenizer class that rebuilds itself (GemmaTokenizer here) is served as transformers runs it, not as
    its tokenizer.json reads; the ids differ between the two, so shipping the raw file would be wrong."""
    import tokenizers
    import transformers

    hf_dir = tiny_hf.write_hf_dir(tmp_path / "hf", 1, tokenizer_class="GemmaTokenizer")
    text = "def f ( n ) : return x"
    expected = transformers.AutoTokenizer.from_pretrained(str(hf_dir), local_files_only=True).encode(text)
    vocab, notes = t5gemma.load_hf_vocab(hf_dir)
    assert vocab.encode(text) == expected and notes["tokenizer_class"] == "GemmaTokenizer"
    assert tokenizers.Tokenizer.from_file(str(hf_dir / "tokenizer.json")).encode(text).ids != expected


# ----------------------------------------------------------------------------------------------- errors


def check_error(action, error_type: type[Exception], expected: list[str]) -> None:
    with pytest.raises(error_type) as raised:
        action()
    text = str(raised.value)
    missing = [snippet for snippet in expected if snippet not in text]
    assert not missing, f"{missing} not in:\n{text}"


def test_sidecar_mistakes_are_named(v1, tmp_path: Path) -> None:
    case, _ = v1
    base = json.loads(case.sidecar.read_text())
    bad = {**base, "hf_model_dir": "nowhere", "encoder_vocab": {"type": "hf_tokenizers", "file": "x.json"}}
    path = case.directory / "bad.sidecar.json"
    path.write_text(json.dumps(bad))
    check_error(lambda: load_checkpoint(case.checkpoint, path), SidecarError,
                ["hf_model_dir: 'nowhere' resolves to", "has no config.json",
                 "encoder_vocab: a t5gemma encoder uses the tokenizer in hf_model_dir"])
    vanilla = {key: value for key, value in base.items() if key not in ("encoder_type", "hf_model_dir")}
    vanilla["encoder_vocab"] = {"type": "hf_tokenizers", "file": "hf-model/tokenizer.json"}
    path.write_text(json.dumps(vanilla))
    check_error(lambda: load_checkpoint(case.checkpoint, path), CheckpointFormatError,
                ["has a T5Gemma encoder but the sidecar says encoder_type 'vanilla'", '"encoder_type": "t5gemma"'])


def test_wrong_model_directory_is_named(v1, v2) -> None:
    """A v2 checkpoint with the v1 model directory, and a decoder tokenizer that does not fit."""
    v1_case, _ = v1
    v2_case, _ = v2
    sidecar = json.loads(v2_case.sidecar.read_text())
    sidecar.update(hf_model_dir=str(v1_case.directory / "hf-model"), decoder_tokenizer={"type": "ieee"})
    path = v2_case.directory / "mixed.sidecar.json"
    path.write_text(json.dumps(sidecar))
    check_error(lambda: load_checkpoint(v2_case.checkpoint, path), CheckpointMismatchError,
                ["missing 'encoder.encoder.embed_tokens.weight'", "v2 (t5gemma2)",
                 "has 13 tokens but tgt_tok_emb.weight has 14 rows"])


# ----------------------------------------------------------------------------------------------- long inputs


@pytest.mark.slow
def test_8192_token_inputs(tmp_path: Path) -> None:
    """max_input_len 8192 (the published checkpoints'), a 4096 sliding window, a text of ~9000 tokens.

    One head (scores of one 8192-token input are 256 MiB per layer) so the gate's batch of four fits on a
    small machine; the gate runs at 8192 and the CLI's greedy value equals PyTorch's on the truncated ids.
    """
    case = make_case(tmp_path, 1, max_input_len=8192, decoder_layers=1, hidden_size=16, head_dim=16,
                     num_attention_heads=1, num_key_value_heads=1, num_hidden_layers=2, sliding_window=4096,
                     layer_types=["sliding_attention", "full_attention"])
    bundle = export(case, tmp_path / "bundle", probes=3)
    assert load_bundle(bundle).manifest.parity["cases"][-1]["length"] == 8192
    text = " ".join(["x = y + 1 ;", "for i in range ( n ) :"][index % 2] for index in range(1300))
    [prediction] = Predictor.from_bundle_path(bundle).predict_texts([text], samples=2, greedy=True)
    assert prediction.truncated and prediction.n_tokens > 8192
    check_greedy(case, bundle, [text], tmp_path)
    np.testing.assert_equal(len(Predictor.from_bundle_path(bundle).encode_text(text).ids), 8192)
