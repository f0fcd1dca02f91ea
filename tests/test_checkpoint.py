"""Checkpoint loading: sidecar validation (every mismatch in one error), refusals, safety, our format.

The regress-lm fixture A (`rlm_tiny_ieee`: IEEE decoder, vocab 13, decode_len 7, d_model 64, 2+2 layers)
is the checkpoint every case starts from; a case changes the sidecar or the state dict and lists the
problems the error must report, one fragment per problem, no more and no fewer.
"""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, pre_tokenizers

from perfhint.encoder_vocab import EncoderVocab, EncoderVocabError
from perfhint_export.checkpoint import (
    PERFHINT_FORMAT,
    LoadedCheckpoint,
    load_checkpoint,
    read_regress_lm_state,
    save_as_perfhint,
)
from perfhint_export.errors import (
    CheckpointError,
    CheckpointFormatError,
    CheckpointMismatchError,
    SidecarError,
    UnsafeCheckpointError,
)

torch.set_num_threads(1)

SIDECAR_A = Path(__file__).parent / "data" / "regress_lm" / "rlm_tiny_ieee.sidecar.json"
CHECKPOINT_A = "rlm_tiny_ieee.model_state.safetensors"
PREFIX = "encoder_decoder."


def word_level_tokenizer_json(pad: bool = True) -> str:
    vocab = {"<pad>": 0, "<unk>": 1, "def": 2, "x": 3} if pad else {"<unk>": 0, "def": 1, "x": 2}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer.to_str()


def write_sidecar(folder: Path, fixtures: Path, changes: dict) -> Path:
    """Fixture A's sidecar with `changes` merged in (None deletes a key), the vocab path made absolute."""
    sidecar = json.loads(SIDECAR_A.read_text())
    sidecar["encoder_vocab"]["file"] = str(fixtures / "encoder_spm.model")
    for key, value in changes.items():
        if value is None:
            sidecar.pop(key, None)
        else:
            sidecar[key] = value
    path = folder / "sidecar.json"
    path.write_text(json.dumps(sidecar))
    return path


def write_state(folder: Path, fixtures: Path, drop=(), add=None, replace=None, prefix: str = PREFIX) -> Path:
    """Fixture A's model_state with keys dropped/added/replaced (keys given without the prefix)."""
    state = {key.removeprefix(PREFIX): value for key, value in load_file(str(fixtures / CHECKPOINT_A)).items()}
    for key in drop:
        del state[key]
    state.update(add or {})
    state.update(replace or {})
    path = folder / "state.safetensors"
    save_file({prefix + key: value.contiguous() for key, value in state.items()}, str(path))
    return path


def check_error(load, error_type: type[CheckpointError], expected: list[str]) -> None:
    """`load()` raises `error_type` whose problems are exactly `expected` (each fragment in its own problem)."""
    with pytest.raises(error_type) as raised:
        load()
    problems = list(raised.value.problems)
    unmatched = []
    for fragment in expected:
        hits = [problem for problem in problems if fragment in problem]
        if hits:
            problems.remove(hits[0])
        else:
            unmatched.append(fragment)
    assert not unmatched, f"not reported: {unmatched}\n{raised.value}"
    assert not problems, f"reported but not expected: {problems}"
    problems = raised.value.problems
    assert all(str(problem) in str(raised.value) for problem in problems)


# ----------------------------------------------------------------------------------------------- sidecar vs weights

SIDECAR_MISMATCHES = {
    "wrong decoder tokenizer": (
        {"decoder_tokenizer": {"type": "p10", "special_values": "default"}},
        ['decoder vocab: decoder_tokenizer {"type":"p10"',
         "decode length: max_num_objs 1 x 6 tokens per objective = 6"],
    ),
    "specials the weights lack": (
        {"decoder_tokenizer": {"type": "ieee", "special_values": ["NAN"]}},
        ['has 14 tokens but tgt_tok_emb.weight has 13 rows (13 fits {"type":"ieee","special_values":null})'],
    ),
    "two objectives for a one-objective decoder": (
        {"max_num_objs": 2, "metrics": [{"name": "a"}, {"name": "b"}]},
        ["max_num_objs 2 x 7 tokens per objective = 14, but decoder_positional_encoding.pe has 8 rows "
         "(decode_len 7); max_num_objs 1 would fit"],
    ),
    "architecture overrides the shapes contradict": (
        {"architecture": {"d_model": 32, "num_encoder_layers": 2, "num_decoder_layers": 3, "encoder_nhead": 4,
                          "encoder_dim_feedforward": 256, "decoder_dim_feedforward": 128}},
        ["architecture.d_model: sidecar says 32, the weights say 64",
         "architecture.num_decoder_layers: sidecar says 3, the weights say 2",
         "architecture.encoder_nhead: sidecar says 4, the weights say 8",
         "architecture.decoder_dim_feedforward: sidecar says 128, the weights say 256"],
    ),
    "decoder heads that do not divide d_model": (
        {"architecture": {"decoder_nhead": 7}},
        ["architecture.decoder_nhead: 7 does not divide d_model 64"],
    ),
    "everything wrong at once": (
        {"decoder_tokenizer": {"type": "p10"}, "max_num_objs": 2, "metrics": [{"name": "a"}, {"name": "b"}],
         "architecture": {"num_encoder_layers": 1}},
        ["has 34 tokens but tgt_tok_emb.weight has 13 rows",
         "max_num_objs 2 x 6 tokens per objective = 12, but decoder_positional_encoding.pe has 8 rows",
         "architecture.num_encoder_layers: sidecar says 1, the weights say 2"],
    ),
}


@pytest.mark.parametrize("changes, expected", SIDECAR_MISMATCHES.values(), ids=SIDECAR_MISMATCHES.keys())
def test_sidecar_contradicting_the_weights(regress_lm_fixtures: Path, tmp_path: Path, changes, expected) -> None:
    sidecar = write_sidecar(tmp_path, regress_lm_fixtures, changes)
    check_error(lambda: load_checkpoint(regress_lm_fixtures / CHECKPOINT_A, sidecar), CheckpointMismatchError, expected)


def test_encoder_vocabulary_of_another_size(regress_lm_fixtures: Path, tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text(word_level_tokenizer_json())
    sidecar = write_sidecar(tmp_path, regress_lm_fixtures, {
        "encoder_vocab": {"type": "hf_tokenizers", "file": "tokenizer.json"},
        "decoder_tokenizer": {"type": "ieee", "special_values": "default"},
    })
    check_error(lambda: load_checkpoint(regress_lm_fixtures / CHECKPOINT_A, sidecar), CheckpointMismatchError,
                ["tokenizer.json has 4 pieces but encoder.embedding.weight has 384 rows; point encoder_vocab.file",
                 "has 17 tokens but tgt_tok_emb.weight has 13 rows"])


# ----------------------------------------------------------------------------------------------- weights vs themselves

ENCODER_LAYER_0 = [f"encoder.layers.0.{module}.{param}" for module in
                   ("q_proj", "k_proj", "v_proj", "out_proj", "norm1", "norm2", "linear1", "linear2")
                   for param in ("weight", "bias")]


def load_file_keys() -> list[str]:
    """Fixture A's state-dict keys (fixed by regress-lm's architecture: 2 encoder + 2 decoder layers)."""
    stacks = {"encoder": ["q_proj", "k_proj", "v_proj", "out_proj", "norm1", "norm2", "linear1", "linear2"],
              "decoder": ["self_attn.out_proj", "multihead_attn.out_proj", "norm1", "norm2", "norm3", "linear1",
                          "linear2"]}
    keys = [f"{stack}.layers.{index}.{module}.{param}" for stack, modules in stacks.items() for index in (0, 1)
            for module in modules for param in ("weight", "bias")]
    keys += [f"decoder.layers.{index}.{attention}.in_proj_{param}" for index in (0, 1)
             for attention in ("self_attn", "multihead_attn") for param in ("weight", "bias")]
    return keys


STATE_MISMATCHES = {
    "missing and unexpected keys": (
        {"drop": ["encoder.layers.1.q_proj.bias", "generator.bias"], "add": {"extra.weight": torch.zeros(2)}},
        ["missing key 'encoder.layers.1.q_proj.bias'", "missing key 'generator.bias'", "unexpected key 'extra.weight'"],
    ),
    "one decoder layer of another width": (
        {"replace": {"decoder.layers.1.linear1.weight": torch.zeros(128, 64),
                     "decoder.layers.1.linear1.bias": torch.zeros(128)}},
        ["decoder.layers.1.linear1.weight: shape [128, 64], expected [256, 64]",
         "decoder.layers.1.linear1.bias: shape [128], expected [256]"],
    ),
    "positional table of another length": (
        {"replace": {"decoder_positional_encoding.pe": torch.zeros(1, 10, 64)}},
        ["max_num_objs 1 x 7 tokens per objective = 7, but decoder_positional_encoding.pe has 10 rows (decode_len 9)"],
    ),
    "generator of another vocab": (
        {"replace": {"generator.weight": torch.zeros(17, 64), "generator.bias": torch.zeros(17)}},
        ["generator.weight: shape [17, 64], expected [13, 64]", "generator.bias: shape [17], expected [13]"],
    ),
    "the first encoder layer missing": (
        {"drop": ENCODER_LAYER_0},
        [f"missing key '{key}'" for key in ENCODER_LAYER_0],
    ),
    "no decoder layers at all": (
        {"drop": [key for key in load_file_keys() if key.startswith("decoder.layers.")]},
        ["missing key 'decoder.layers.N.linear1.weight', needed to read the architecture"],
    ),
    "integer weights": (
        {"replace": {"encoder.norm.weight": torch.ones(64, dtype=torch.int64)}},
        ["encoder.norm.weight: dtype torch.int64, expected a floating-point tensor"],
    ),
}


@pytest.mark.parametrize("state_changes, expected", STATE_MISMATCHES.values(), ids=STATE_MISMATCHES.keys())
def test_weights_inconsistent_with_themselves(regress_lm_fixtures: Path, tmp_path: Path, state_changes,
                                               expected) -> None:
    checkpoint = write_state(tmp_path, regress_lm_fixtures, **state_changes)
    check_error(lambda: load_checkpoint(checkpoint, SIDECAR_A), CheckpointMismatchError, expected)


REFUSED_LAYOUTS = {
    "pre-c388525 nn.Transformer": ({"src_tok_emb.embedding.weight": torch.zeros(4, 2),
                                    "transformer.encoder.layers.0.linear1.weight": torch.zeros(2, 2)},
                                   "before 2025-08-08 (commit c388525)"),
    "T5Gemma encoder": ({"encoder.encoder.embed_tokens.weight": torch.zeros(4, 2)}, "T5Gemma encoder"),
    "Performer encoder": ({"encoder.layers.0.projection_matrix": torch.zeros(4, 2)}, "Performer encoder"),
    "Mamba encoder": ({"encoder.layers.0.0.weight": torch.zeros(2)}, "Mamba encoder"),
}


@pytest.mark.parametrize("state, headline", REFUSED_LAYOUTS.values(), ids=REFUSED_LAYOUTS.keys())
def test_layouts_we_cannot_run_are_refused_by_name(tmp_path: Path, state, headline: str) -> None:
    path = tmp_path / "old.safetensors"
    save_file({PREFIX + key: value for key, value in state.items()}, str(path))
    with pytest.raises(CheckpointFormatError, match=headline.replace("(", r"\(").replace(")", r"\)")):
        load_checkpoint(path, SIDECAR_A)


def test_unprefixed_state_dict_and_raw_pt_load(regress_lm_fixtures: Path, tmp_path: Path) -> None:
    """EncoderDecoder.state_dict() saved bare (no `encoder_decoder.`, no `model_state` wrapper) is accepted."""
    fixture_state = load_file(str(regress_lm_fixtures / CHECKPOINT_A))
    state = {key.removeprefix(PREFIX): value for key, value in fixture_state.items()}
    torch.save(state, tmp_path / "bare.pt")
    save_file(state, str(tmp_path / "bare.safetensors"))
    for name in ("bare.pt", "bare.safetensors"):
        loaded = load_checkpoint(tmp_path / name, SIDECAR_A)
        assert loaded.config.num_encoder_layers == 2 and not loaded.model.training
        assert read_regress_lm_state(tmp_path / name).keys() == state.keys()


# ----------------------------------------------------------------------------------------------- the sidecar itself

SIDECAR_ERRORS = {
    "no sidecar": (None, ["pass --config SIDECAR.json"]),
    "unknown key and bad numbers": (
        {"bogus": 1, "max_input_len": 0, "max_num_objs": "1"},
        ["bogus: unknown key", "max_input_len: must be a positive integer, got 0",
         "max_num_objs: must be a positive integer, got '1'"],
    ),
    "missing fields": ({"metrics": None, "decoder_tokenizer": None},
                       ["metrics: missing", "decoder_tokenizer: missing"]),
    "unsupported encoder and format": (
        {"encoder_type": "performer", "format": "perfhint"},
        ["encoder_type: 'performer' checkpoints are not supported yet",
         "format: 'perfhint' is not 'regress-lm'; perfhint checkpoints carry their config"],
    ),
    "bad encoder vocab": (
        {"encoder_vocab": {"type": "spm", "file": "nope.model", "pad": 0}},
        ["encoder_vocab.pad: unknown key", "encoder_vocab.type: 'spm' is not one of",
         "encoder_vocab.file: 'nope.model' resolves to"],
    ),
    "decoder tokenizer outside regress-lm": (
        {"decoder_tokenizer": {"type": "ieee", "base": 16}},
        ["decoder_tokenizer: invalid decoder_tokenizer spec: base must be an int in 2..10"],
    ),
    "metrics that do not fit": (
        {"metrics": [{"name": "a", "unit": "ms"}, {"name": "a", "scale": 2}]},
        ["metrics[1].scale: unknown key", "metrics: names must be distinct",
         "metrics: 2 entries but max_num_objs is 1"],
    ),
    "bad overrides and template": (
        {"architecture": {"decoder_heads": 8, "encoder_nhead": -1}, "input_template": {"kind": "jinja"}},
        ["architecture.decoder_heads: unknown key", "architecture.encoder_nhead: must be a positive integer",
         "input_template: must be an object like"],
    ),
}


@pytest.mark.parametrize("changes, expected", SIDECAR_ERRORS.values(), ids=SIDECAR_ERRORS.keys())
def test_invalid_sidecars(regress_lm_fixtures: Path, tmp_path: Path, changes, expected) -> None:
    sidecar = None if changes is None else write_sidecar(tmp_path, regress_lm_fixtures, changes)
    check_error(lambda: load_checkpoint(regress_lm_fixtures / CHECKPOINT_A, sidecar), SidecarError, expected)


# ----------------------------------------------------------------------------------------------- safety


class WritesMarker:
    """Unpickling this calls open(marker, "w"): a harmless stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


WRITERS = {  # how the payload is written, and the refusal expected
    "torch.save": (lambda payload, path: torch.save(payload, path), UnsafeCheckpointError, "would call io.open"),
    "pickle protocol 2": (lambda payload, path: path.write_bytes(pickle.dumps(payload, protocol=2)),
                          UnsafeCheckpointError, "would call io.open"),
    # torch's safe unpickler stops at the first frame opcode of protocols 4-5, before any global is read.
    "pickle protocol 5": (lambda payload, path: path.write_bytes(pickle.dumps(payload, protocol=5)),
                          CheckpointFormatError, "not a checkpoint torch can read safely"),
}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("write, error_type, message", WRITERS.values(), ids=WRITERS.keys())
def test_a_pickle_that_runs_code_is_refused_unopened(tmp_path: Path, write, error_type, message: str) -> None:
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    # No tensors: a plain pickle would reduce them to another global, refused before io.open is reached.
    write({"model_state": {}, "extra": WritesMarker(marker)}, path)
    control = tmp_path / "control"  # the payload is real: a plain unpickle does create its marker
    pickle.loads(pickle.dumps(WritesMarker(control))).close()
    assert control.exists()

    with pytest.raises(error_type) as raised:
        load_checkpoint(path, SIDECAR_A)
    assert not marker.exists()
    assert f"{path}" in str(raised.value) and message in str(raised.value)
    if error_type is UnsafeCheckpointError:
        assert "re-save only the weights" in str(raised.value)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04broken zip"])
def test_files_that_are_not_checkpoints(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointFormatError, match="not a"):
        load_checkpoint(path, SIDECAR_A)


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointFormatError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt", SIDECAR_A)


# ----------------------------------------------------------------------------------------------- perfhint format


@pytest.fixture(scope="module")
def regress_lm_a(regress_lm_fixtures: Path) -> LoadedCheckpoint:
    return load_checkpoint(regress_lm_fixtures / "rlm_tiny_ieee.pt", SIDECAR_A)


def test_perfhint_round_trip_needs_no_sidecar(regress_lm_a: LoadedCheckpoint, tmp_path: Path) -> None:
    path = save_as_perfhint(regress_lm_a, tmp_path / "model.safetensors")
    ours = load_checkpoint(path)
    assert ours.config == regress_lm_a.config
    assert (ours.decoder_tokenizer, ours.max_num_objs, ours.metrics, ours.input_template) == (
        regress_lm_a.decoder_tokenizer, regress_lm_a.max_num_objs, regress_lm_a.metrics, regress_lm_a.input_template)
    assert ours.encoder_vocab.sha256 == regress_lm_a.encoder_vocab.sha256 and ours.encoder_vocab.pad_id == 0
    assert ours.provenance.format == PERFHINT_FORMAT
    assert ours.provenance.source["sha256"] == regress_lm_a.provenance.sha256
    theirs_state = regress_lm_a.model.state_dict()
    assert all(torch.equal(ours.model.state_dict()[key], value) for key, value in theirs_state.items())
    with safe_open(str(path), "pt") as handle:  # the tensors are exactly the state dict, nothing else
        assert set(handle.keys()) == set(regress_lm_a.model.state_dict())
    ids = torch.tensor([ours.encoder_vocab.input_ids("def foo(x): return x * 2", ours.config.max_input_len)])
    theirs_tokens = regress_lm_a.model.greedy_decode(ids, regress_lm_a.codec)
    assert torch.equal(ours.model.greedy_decode(ids, ours.codec), theirs_tokens)


def test_perfhint_checkpoint_refuses_a_sidecar(regress_lm_a: LoadedCheckpoint, tmp_path: Path) -> None:
    path = save_as_perfhint(regress_lm_a, tmp_path / "model.safetensors")
    check_error(lambda: load_checkpoint(path, SIDECAR_A), SidecarError, ["drop --config"])


def rewrite_header(path: Path, edit) -> None:
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    header = json.loads(metadata["perfhint"])
    edit(header)
    save_file(load_file(str(path)), str(path), metadata={**metadata, "perfhint": json.dumps(header)})


def corrupt_vocab(header: dict) -> None:
    data = bytearray(base64.b64decode(header["encoder_vocab"]["data_base64"]))
    data[10] ^= 0xFF
    header["encoder_vocab"]["data_base64"] = base64.b64encode(bytes(data)).decode()


PERFHINT_DAMAGE = {
    "vocab bytes changed": (corrupt_vocab, CheckpointMismatchError, ["do not match their sha256"]),
    "config disagrees with the weights": (
        lambda header: header["config"].update(num_decoder_layers=3), CheckpointMismatchError,
        [f"missing key 'decoder.layers.2.{key}'" for key in (
            "self_attn.in_proj_weight", "self_attn.in_proj_bias",
            "self_attn.out_proj.weight", "self_attn.out_proj.bias",
            "multihead_attn.in_proj_weight", "multihead_attn.in_proj_bias", "multihead_attn.out_proj.weight",
            "multihead_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
            "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "norm3.weight", "norm3.bias")],
    ),
    "codec disagrees with the config": (
        lambda header: header.update(max_num_objs=2, metrics=[{"name": "a", "unit": ""}, {"name": "b", "unit": ""}]),
        CheckpointMismatchError, ["decoder_tokenizer gives vocab 13 and decode_len 14, config says 13 and 7"],
    ),
    "newer format": (lambda header: header.update(format_version=2), CheckpointFormatError, ["upgrade perfhint"]),
    "header field missing": (lambda header: header.pop("config"), CheckpointFormatError,
                             ["KeyError: 'config'", "re-save it with save_perfhint_checkpoint"]),
}


@pytest.mark.parametrize("edit, error_type, expected", PERFHINT_DAMAGE.values(), ids=PERFHINT_DAMAGE.keys())
def test_damaged_perfhint_checkpoints(regress_lm_a: LoadedCheckpoint, tmp_path: Path, edit, error_type,
                                      expected) -> None:
    path = save_as_perfhint(regress_lm_a, tmp_path / "model.safetensors")
    rewrite_header(path, edit)
    check_error(lambda: load_checkpoint(path), error_type, expected)


# ----------------------------------------------------------------------------------------------- encoder vocabularies

VOCAB_ERRORS = {
    "missing file": ("sentencepiece", None, None, "encoder vocabulary file not found"),
    "corrupt sentencepiece": ("sentencepiece", b"\x00garbage", None, "is not a valid SentencePiece model"),
    "tokenizer.json that is not JSON": ("hf_tokenizers", b"\xff\xfe", None,
                                        "is not a valid HF tokenizers tokenizer.json"),
    "tokenizer.json without a pad token": ("hf_tokenizers", word_level_tokenizer_json(pad=False).encode(), None,
                                           "set encoder_vocab.pad_id in the sidecar"),
    "pad id outside the vocabulary": ("hf_tokenizers", word_level_tokenizer_json().encode(), 9,
                                      "pad id 9 is outside the vocabulary"),
    "pad id other than the model's": ("sentencepiece", "fixture", 3, "disagrees with the pad id 0"),
}


@pytest.mark.parametrize("kind, content, pad_id, message", VOCAB_ERRORS.values(), ids=VOCAB_ERRORS.keys())
def test_encoder_vocabulary_errors(regress_lm_fixtures: Path, tmp_path: Path, kind, content, pad_id, message) -> None:
    path = tmp_path / "vocab.file"
    if content == "fixture":
        path = regress_lm_fixtures / "encoder_spm.model"
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(EncoderVocabError, match=message):
        EncoderVocab.from_file(path, kind, pad_id=pad_id)


def test_hf_tokenizer_json_encodes_with_its_pad_token(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(word_level_tokenizer_json())
    vocab = EncoderVocab.from_file(path, "hf_tokenizers")
    assert (vocab.size, vocab.pad_id) == (4, 0)
    assert vocab.encode("def x y") == [2, 3, 1]
    assert vocab.input_ids("def x y", 2) == [2, 3]
    assert vocab.input_ids("def", 3, pad=True) == [2, 0, 0]
