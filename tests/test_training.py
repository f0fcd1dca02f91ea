"""Training side: tokenizer, examples, the training loop and its resumption, evaluation, fine-tuning.

Everything trains a tiny model (d_model 32, one layer each side) on a synthetic record set whose
costs follow the input size, on one CPU thread. The fine-tune test runs the user's whole loop on
real measurements: `perfhint measure --json` -> finetune -> `perfhint export` -> `perfhint predict`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from perfhint.encoder_vocab import EncoderVocab  # noqa: E402
from perfhint_export.checkpoint import load_checkpoint  # noqa: E402
from perfhint_train import baselines, evaluate, finetune, pretrain, tokenizer, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEASURE_DATA = REPO / "tests" / "data" / "measure"
TINY_CONFIG = REPO / "training" / "configs" / "tiny.py"
TINY_OVERRIDES = {"d_model": 32, "encoder_nhead": 4, "decoder_nhead": 4, "encoder_dim_feedforward": 64,
                  "decoder_dim_feedforward": 64, "max_input_len": 96, "batch_size": 8, "max_steps": 40,
                  "warmup_steps": 4, "lr": 3e-3, "log_interval": 4, "eval_interval": 20, "eval_examples": 16,
                  "spearman_examples": 8, "checkpoint_interval": 1000, "max_train_records": None}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)  # the CI machine's cores are shared


def quiet(*_: object) -> None:
    pass


# ----------------------------------------------------------------------------------------------- data


def synthetic_records() -> list[dict]:
    """Records whose value is a clean function of the size in the context or code (so a model can learn)."""
    records = []
    python_templates = {  # name -> (code, bytes per item, fixed bytes)
        "list": ("def f(n):\n    return [0] * n\n", 8, 56),
        "bytes": ("def f(n):\n    return bytes(n)\n", 1, 33),
        "dict": ("def f(n):\n    return {i: i for i in range(n)}\n", 40, 232),
        "str": ("def f(n):\n    return 'x' * n\n", 1, 49),
    }
    for name, (code, per_item, fixed) in python_templates.items():
        for n in (10, 30, 100, 300, 1000, 3000, 10_000, 30_000):
            records.append({"id": f"py/{name}/{n}", "language": "python", "region_kind": "function",
                            "metric": "peak_traced_heap", "unit": "B", "code": code, "context": {"args": f"({n},)"},
                            "value": float(per_item * n + fixed), "group": f"py/{name}", "source": "test",
                            "provenance": {"status": "ok"}, "measured_on": "test"})
    for name, per_item in (("malloc", 1), ("calloc", 4)):
        for n in (1_000, 100_000, 1_000_000, 10_000_000):
            code = (f"#include <stdlib.h>\n#define N {n}L\nint main(void) {{\n    char *p = {name}(N * {per_item}"
                    f"{', 1' if name == 'calloc' else ''});\n    return p == 0;\n}}\n")
            records.append({"id": f"c/{name}/{n}", "language": "c", "region_kind": "program", "metric": "peak_rss",
                            "unit": "B", "code": code, "context": {}, "value": float(1_300_000 + per_item * n),
                            "group": f"c/{name}", "source": "test", "provenance": {}, "measured_on": "test"})
    kernel = ("@triton.jit\ndef add_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):\n    pid = tl.program_id(0)\n\n"
              "def add(x, y):\n    add_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), BLOCK=1024)\n")
    for n in (4096, 65_536, 1_048_576, 16_777_216):
        for gpu, speed in (("H100", 1.0), ("A100", 1.6)):
            records.append({"id": f"k/{gpu}/{n}", "language": "python", "region_kind": "triton_kernel",
                            "metric": "median_latency", "unit": "ms", "code": kernel,
                            "context": {"gpu": gpu, "shape": f"({n},)"}, "value": speed * (0.005 + n * 2e-8),
                            "group": f"k/add/{gpu}", "source": "test", "provenance": {}, "measured_on": "test"})
    return records


@pytest.fixture(scope="session")
def vocab() -> EncoderVocab:
    return EncoderVocab.from_file(tokenizer.TOKENIZER_FILE, "hf_tokenizers")


def tiny_config(**overrides: object) -> train.TrainConfig:
    return train.load_config(TINY_CONFIG, {**TINY_OVERRIDES, **overrides})


def tiny_run(vocab: EncoderVocab, **overrides: object) -> train.Run:
    records = synthetic_records()
    return train.build_run(tiny_config(**overrides), train_records=records, val_records=records[::3], vocab=vocab)


@pytest.fixture(scope="session")
def trained(vocab: EncoderVocab, tmp_path_factory: pytest.TempPathFactory) -> train.FitResult:
    """A tiny model trained 40 steps on the synthetic records (shared by the tests that need weights)."""
    torch.set_num_threads(1)
    return train.fit(tiny_run(vocab), out_dir=tmp_path_factory.mktemp("tiny-run"), log=quiet)


# ----------------------------------------------------------------------------------------------- tokenizer

SMALL_CORPUS = [
    "def squares(n):\n    return [i * i for i in range(n)]\n",
    "import numpy as np\n\ndef grid(n):\n    return np.zeros((n, n), dtype=np.float64)\n",
    "#include <stdio.h>\nint main(void) {\n    printf(\"%d\\n\", 4096);\n    return 0;\n}\n",
    "@triton.jit\ndef add_kernel(x_ptr, y_ptr, out_ptr, n_elements, BLOCK_SIZE: tl.constexpr):\n"
    "    pid = tl.program_id(axis=0)\n",
] * 20


def check_round_trip(tok, text: str) -> None:  # type: ignore[no-untyped-def]
    assert tok.decode(tok.encode(text).ids) == text


@pytest.mark.parametrize("text", [
    "def f(n):\n\treturn n ** 2  # tab\n",
    "x = 'ünïcödé → ✓'\n",
    "   leading spaces and trailing   \n\n\n",
    "int a[4096] = {0};",
    "",
])
def test_small_tokenizer_round_trips(text: str) -> None:
    tok = tokenizer.train_tokenizer(SMALL_CORPUS, vocab_size=300)
    check_round_trip(tok, text)


def test_small_tokenizer_ids_and_digits() -> None:
    tok = tokenizer.train_tokenizer(SMALL_CORPUS, vocab_size=300)
    assert (tok.token_to_id("<pad>"), tok.token_to_id("<unk>")) == (0, 1)
    assert tok.get_vocab_size() == 300
    pieces = [piece for piece, _ in tok.pre_tokenizer.pre_tokenize_str("n = 4096")]
    assert pieces == ["n", "Ġ=", "Ġ4", "0", "9", "6"]  # one digit per piece, the first keeps its space
    assert 0 not in tok.encode(SMALL_CORPUS[0]).ids


def test_tokenizer_training_is_deterministic() -> None:
    first = tokenizer.train_tokenizer(SMALL_CORPUS, vocab_size=300).to_str()
    assert tokenizer.train_tokenizer(SMALL_CORPUS, vocab_size=300).to_str() == first


def test_committed_tokenizer(vocab: EncoderVocab) -> None:
    assert (vocab.size, vocab.pad_id) == (16000, 0)
    from tokenizers import Tokenizer

    committed = Tokenizer.from_file(str(tokenizer.TOKENIZER_FILE))
    check_round_trip(committed, SMALL_CORPUS[0] + SMALL_CORPUS[2])
    assert vocab.encode("def f(n):") == committed.encode("def f(n):").ids  # the server's path gives the same ids
    report = json.loads((tokenizer.TOKENIZER_FILE.parent / tokenizer.CORPUS_REPORT_FILE).read_text())
    assert not report["include_share_alike"]
    assert all(tokenizer.is_permissive(part["licence"]) for part in report["parts"])


@pytest.mark.parametrize("licence, permissive", [
    ("MIT", True), ("BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0", True), ("Apache 2.0", True),
    ("Apache-2.0 OR BSD-2-Clause", True), ("Python Software Foundation License", True),
    ("MPL-2.0 AND MIT", False), ("GPL-3.0-or-later", False), ("LGPL-2.1", False), ("", False),
    ("Permission is hereby granted", False), ("CC-BY-SA-2.0", False),
])
def test_licence_filter(licence: str, permissive: bool) -> None:
    assert tokenizer.is_permissive(licence) is permissive


# ----------------------------------------------------------------------------------------------- config, examples


def test_config_files_load() -> None:
    for name in ("tiny.py", "default.py"):
        config = train.load_config(REPO / "training" / "configs" / name)
        assert config.objectives == ["peak_memory", "median_latency"]
        assert config.model_config(16000, train.codec_from_spec(config.decoder_tokenizer, 2), 0).decode_len == 14


@pytest.mark.parametrize("text, message", [
    ("lr = 10 ** -3\n", "not a literal"),
    ("learning_rate = 1e-3\n", "unknown config keys"),
    ("import os\n", "only `name = literal`"),
    ("objectives = ['peak_memory', 'energy']\n", "not one of"),
    ("unlabelled_objectives = 'zero'\n", "unlabelled_objectives 'zero'"),
])
def test_bad_config_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        train.load_config(path)


def check_example(vocab: EncoderVocab, record: dict, objective: int, value: float, unlabelled: str = "nan") -> None:
    run = train.build_run(tiny_config(unlabelled_objectives=unlabelled), train_records=[record], val_records=[],
                          vocab=vocab)
    [example] = run.train_examples
    assert (example.objective, example.value) == (objective, pytest.approx(value))
    decoded = run.codec.decode(example.targets)
    assert decoded[objective] == pytest.approx(value, rel=1e-3) and math.isnan(decoded[1 - objective])
    per_obj = run.codec.num_tokens_per_obj
    counted = [position for position, token in enumerate(example.loss_targets) if token != 0]
    own = list(range(objective * per_obj, (objective + 1) * per_obj))
    other_first = (1 - objective) * per_obj  # the unlabelled objective's NAN, counted only in "nan" mode
    assert counted == (sorted([*own, other_first]) if unlabelled == "nan" else own)
    assert example.ids[: 5] == vocab.encode(train.model_text(record, run.config.input_template))[: 5]


@pytest.mark.parametrize("unlabelled", train.UNLABELLED_MODES)
def test_memory_record_fills_objective_0(vocab: EncoderVocab, unlabelled: str) -> None:
    check_example(vocab, synthetic_records()[3], 0, 8 * 300 + 56, unlabelled)


@pytest.mark.parametrize("unlabelled", train.UNLABELLED_MODES)
def test_kernel_record_fills_objective_1_in_ms(vocab: EncoderVocab, unlabelled: str) -> None:
    record = {**synthetic_records()[-1], "value": 250.0, "unit": "us"}
    check_example(vocab, record, 1, 0.25, unlabelled)


def test_records_without_an_objective_are_dropped(vocab: EncoderVocab) -> None:
    records = [{**synthetic_records()[0], "metric": "gpu_peak_memory", "unit": "MB"},
               {**synthetic_records()[0], "value": None},
               {**synthetic_records()[0], "provenance": {"status": "timeout"}}]
    run = train.build_run(tiny_config(), train_records=records, val_records=[], vocab=vocab)
    assert run.train_examples == [] and sum(run.dropped.values()) == 3


def test_batches_cover_every_example_once_and_cut_padding() -> None:
    lengths = [int(length) for length in np.random.default_rng(0).integers(5, 500, size=1000)]
    batches = train.epoch_batches(lengths, 16, seed=3, epoch=2, bucket_batches=20)
    assert sorted(index for batch in batches for index in batch) == list(range(1000))
    assert batches == train.epoch_batches(lengths, 16, seed=3, epoch=2, bucket_batches=20)
    assert batches != train.epoch_batches(lengths, 16, seed=3, epoch=3, bucket_batches=20)

    def padding(batches: list[list[int]]) -> int:
        return sum(max(lengths[i] for i in batch) * len(batch) - sum(lengths[i] for i in batch) for batch in batches)

    unsorted = train.epoch_batches(lengths, 16, seed=3, epoch=2, bucket_batches=1)
    assert padding(batches) < 0.2 * padding(unsorted)


def test_fused_attention_matches_reference(vocab: EncoderVocab) -> None:
    run = tiny_run(vocab)
    batch = train.collate(run.train_examples[::5], vocab.pad_id)  # mixed lengths: padded rows
    assert (batch["encoder_ids"] == vocab.pad_id).any()
    model = run.model.eval()
    with torch.no_grad():
        reference = model(batch["encoder_ids"], batch["decoder_input_ids"])
        with train.fused_attention():
            fused = model(batch["encoder_ids"], batch["decoder_input_ids"])
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------------------------- training


def test_tiny_model_loss_goes_down(trained: train.FitResult) -> None:
    losses = [loss for _, loss in trained.train_losses]
    assert len(losses) == 10
    assert losses[-1] < 0.75 * losses[0], losses
    assert trained.evals and all(math.isfinite(entry["val_loss"]) for entry in trained.evals)


def test_resume_continues_exactly(vocab: EncoderVocab, tmp_path: Path) -> None:
    settings = {"max_steps": 12, "eval_interval": 0}
    straight = train.fit(tiny_run(vocab, **settings), out_dir=tmp_path / "straight", log=quiet)
    interrupted = train.fit(tiny_run(vocab, **settings), out_dir=tmp_path / "resumed", max_steps=8, log=quiet)
    assert interrupted.step == 8
    resumed_run = tiny_run(vocab, **settings)
    resumed = train.fit(resumed_run, out_dir=tmp_path / "resumed", resume=True, log=quiet)
    assert resumed.train_losses[-1] == straight.train_losses[-1]  # (12, loss over steps 9..12), bit for bit
    final = load_checkpoint(tmp_path / "straight" / train.CHECKPOINT_FILE).model.state_dict()
    for key, value in resumed_run.model.state_dict().items():
        assert torch.equal(value, final[key]), key


def test_resume_remembers_the_best_checkpoint(vocab: EncoderVocab, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"max_steps": 8, "eval_interval": 4}
    first = train.fit(tiny_run(vocab, **settings), out_dir=tmp_path, max_steps=4, log=quiet)
    assert first.best_checkpoint == tmp_path / train.BEST_CHECKPOINT_FILE
    monkeypatch.setattr(train, "validation_loss", lambda *args, **kwargs: 1e9)  # step 8 is no better
    resumed = train.fit(tiny_run(vocab, **settings), out_dir=tmp_path, resume=True, log=quiet)
    assert resumed.best_checkpoint == tmp_path / train.BEST_CHECKPOINT_FILE


def test_keep_checkpoints_keeps_one_file_per_checkpoint(vocab: EncoderVocab, tmp_path: Path) -> None:
    train.fit(tiny_run(vocab, max_steps=6, eval_interval=0, checkpoint_interval=3, keep_checkpoints=True),
              out_dir=tmp_path, log=quiet)
    kept = sorted(path.name for path in tmp_path.glob("step-*.safetensors"))
    assert kept == ["step-3.safetensors", "step-6.safetensors"]
    assert load_checkpoint(tmp_path / "step-6.safetensors").model.state_dict().keys()
    assert (tmp_path / "step-6.safetensors").read_bytes() == (tmp_path / train.CHECKPOINT_FILE).read_bytes()


def test_resume_refuses_a_changed_config(vocab: EncoderVocab, tmp_path: Path) -> None:
    train.fit(tiny_run(vocab, max_steps=4, eval_interval=0), out_dir=tmp_path, log=quiet)
    with pytest.raises(ValueError, match="batch_size"):
        train.fit(tiny_run(vocab, max_steps=8, batch_size=4), out_dir=tmp_path, resume=True, log=quiet)


def test_checkpoint_is_self_describing(trained: train.FitResult) -> None:
    loaded = load_checkpoint(trained.checkpoint)
    assert [(metric.name, metric.unit) for metric in loaded.metrics] == [("peak_memory", "B"), ("median_latency", "ms")]
    assert "tracemalloc" in loaded.metrics[0].meaning and "do_bench" in loaded.metrics[1].meaning  # for the hover
    assert loaded.input_template == {"kind": "perfhint-v1", "task": "cost"}
    assert (loaded.encoder_vocab.size, loaded.config.max_input_len, loaded.codec.decode_len) == (16000, 96, 14)
    assert train.objectives_from_metrics(loaded.metrics) == tuple(train.OBJECTIVES.values())


def test_warm_start_loads_every_weight_and_may_change_the_template(trained: train.FitResult, vocab: EncoderVocab
                                                                   ) -> None:
    run = tiny_run(vocab, init_from=str(trained.checkpoint), input_template={"kind": "perfhint-v2", "task": "cost"})
    start = load_checkpoint(trained.checkpoint).model.state_dict()
    assert all(torch.equal(value, start[key]) for key, value in run.model.state_dict().items())
    assert run.train_examples[0].ids != tiny_run(vocab).train_examples[0].ids  # the header changed


def test_oversample_repeats_one_region_kind(vocab: EncoderVocab) -> None:
    plain, heavy = tiny_run(vocab), tiny_run(vocab, oversample={"triton_kernel": 3})
    kernels = [example for example in plain.train_examples if example.record["region_kind"] == "triton_kernel"]
    assert kernels and len(heavy.train_examples) == len(plain.train_examples) + 2 * len(kernels)


def test_warm_start_refuses_another_architecture(trained: train.FitResult, vocab: EncoderVocab) -> None:
    with pytest.raises(ValueError, match=r"init_from .*architecture differs.*train from scratch"):
        tiny_run(vocab, init_from=str(trained.checkpoint), d_model=64)


def test_pretrain_sketch_runs_and_round_trips(vocab: EncoderVocab, tmp_path: Path) -> None:
    run = tiny_run(vocab)
    windows = pretrain.windows([vocab.encode(text) for text in SMALL_CORPUS[:4]], 32)
    losses = pretrain.pretrain_encoder(run.model, windows, steps=3, batch_size=4, log=quiet)
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    path = pretrain.save_encoder(run.model, tmp_path / "encoder.safetensors")
    fresh = tiny_run(vocab, init_encoder=str(path)).model
    torch.testing.assert_close(fresh.encoder.embedding.weight, run.model.encoder.embedding.weight)


def test_pretrain_continues_only_from_an_encoder_of_the_configs_shape(
        vocab: EncoderVocab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--init` names the fix before any corpus is read: a missing file, or weights of another width."""
    out = tmp_path / "next.safetensors"
    assert pretrain.main(["--config", str(TINY_CONFIG), "--init", str(tmp_path / "nope.safetensors"),
                          "--out", str(out)]) == 2
    assert "not found; pass the encoder weights an earlier `perfhint train pretrain --out` wrote" in capsys.readouterr().err
    narrow = pretrain.save_encoder(tiny_run(vocab).model, tmp_path / "d32.safetensors")  # tiny.py itself is d64
    assert pretrain.main(["--config", str(TINY_CONFIG), "--init", str(narrow), "--out", str(out)]) == 2
    assert "does not fit this encoder" in capsys.readouterr().err and not out.exists()


HELD_OUT_CODE = """@triton.jit
def softmax_kernel(out_ptr, in_ptr, n_cols, BLOCK_SIZE: tl.constexpr):
    row_start = tl.program_id(0) * n_cols + tl.arange(0, BLOCK_SIZE)
    row = tl.load(in_ptr + row_start, mask=row_start < n_cols, other=-float('inf'))
    numerator = tl.exp(row - tl.max(row, axis=0))
"""


@pytest.mark.parametrize("text, kept", [
    (HELD_OUT_CODE, False),  # the held-out kernel itself
    ("import torch\n\n" + HELD_OUT_CODE + "\n\ndef bench():\n    return softmax(torch.randn(8, 8))\n", False),
    # one shared line out of four long ones (25 %) is not enough to call it the same program
    ("row_start = tl.program_id(0) * n_cols + tl.arange(0, BLOCK_SIZE)\n"
     "accumulator = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)\n"
     "a_ptrs = a_ptr + (offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak)\n"
     "b_ptrs = b_ptr + (offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn)\n", True),
    ("import torch\nimport triton\n", True),  # only short lines: nothing to match on
    ("", True),
])
def test_pretraining_corpus_leaves_out_held_out_code(text: str, kept: bool) -> None:
    assert pretrain.held_out_filter([HELD_OUT_CODE])(text) is kept


def test_masked_lm_head_starts_near_uniform(vocab: EncoderVocab) -> None:
    """With the 1/sqrt(d) scale the first masked-token loss is near ln(vocab), not several times it."""
    run = tiny_run(vocab)
    windows = pretrain.windows([vocab.encode(text) for text in SMALL_CORPUS[:4]], 32)
    first = pretrain.pretrain_encoder(run.model, windows, steps=1, batch_size=4, lr=0.0, log=quiet)[0]
    assert first < 1.5 * math.log(vocab.size), (first, math.log(vocab.size))


def test_label_smoothing_is_torch_cross_entropy_per_example_mean() -> None:
    from torch.nn import functional as F

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=generator) * 8
    targets = torch.tensor([[3, 4, 5, 0, 0], [2, 2, 2, 2, 2], [6, 0, 0, 0, 0]])
    for smoothing in (0.0, 0.1):
        expected = torch.stack([
            F.cross_entropy(logits[row][targets[row] != 0], targets[row][targets[row] != 0], label_smoothing=smoothing)
            for row in range(3)]).mean()
        torch.testing.assert_close(train.rlm_loss(logits, targets, smoothing), expected)
    assert train.rlm_loss(logits, targets, 0.1) != train.rlm_loss(logits, targets)


# ----------------------------------------------------------------------------------------------- evaluation


def check_score(truth: list[float], predicted: list[float], groups: list[str]) -> dict:
    from scipy.stats import kendalltau, spearmanr

    p10 = [value / 2 for value in predicted]
    p90 = [value * 2 for value in predicted]
    result = evaluate.score(truth, predicted, p10, p90, groups, "B")
    finite = [index for index, value in enumerate(predicted) if math.isfinite(value)]
    t = np.array(truth)[finite]
    p = np.array(predicted)[finite]
    assert result["spearman"] == pytest.approx(spearmanr(t, p).statistic)
    assert result["kendall_tau"] == pytest.approx(kendalltau(t, p).statistic)
    assert result["log10_error"] == pytest.approx(np.mean(np.abs(np.log10(p) - np.log10(t))))
    assert result["coverage_p10_p90"] == pytest.approx(np.mean((t >= p / 2) & (t <= p * 2)))
    assert result["missing"] == len(truth) - len(finite)
    return result


def test_metrics_equal_scipy() -> None:
    truth = [10.0, 20.0, 30.0, 40.0, 100.0, 200.0, 300.0, 5.0]
    predicted = [12.0, 18.0, 45.0, 39.0, 300.0, 150.0, 290.0, math.nan]
    groups = ["a", "a", "a", "a", "b", "b", "b", "c"]
    result = check_score(truth, predicted, groups)
    from scipy.stats import spearmanr

    expected = np.mean([spearmanr(truth[:4], predicted[:4]).statistic, spearmanr(truth[4:7], predicted[4:7]).statistic])
    assert (result["spearman_within_groups"], result["n_groups"]) == (pytest.approx(expected), 2)


def test_constant_groups_are_not_averaged() -> None:
    truth, predicted = [1.0, 1.0, 1.0, 5.0, 6.0, 7.0], [1.0, 2.0, 3.0, 4.0, 4.0, 4.0]
    value, groups = evaluate.spearman_within_groups(np.array(truth), np.array(predicted), ["a"] * 3 + ["b"] * 3)
    assert (value, groups) == (0.0, 1)  # a: constant truth, skipped; b: constant prediction ranks nothing


@pytest.mark.parametrize("context, code, size", [
    ({"args": "(10**5,)"}, "", 100_000),
    ({"args": "([1, 2, 3], 'abcd')"}, "", 7),
    ({"args": "(3,)", "kwargs": "{'k': 4}"}, "", 7),
    ({"shape": "[[4096]]"}, "", 4096),
    ({"shape": "(4096, 1024)", "gpu": "H100"}, "", 4096 * 1024),
    ({"shape": "[(2, 3), (3, 4)]"}, "", 18),
    ({}, "#define N 10L\nint main(void) { char *p = malloc(N + 8); return 0; }", 18),
    ({}, "N_ITEMS = 1000\nprint(N_ITEMS)\n", 1000),
    ({}, "N_ITEMS = 200_000\nprint(N_ITEMS)\n", 200_000),  # Python's digit separators
    ({}, "N = 1_000_000\nSCALE = 2.5\nRATE = 1_0.5\n", 1_000_000),  # floats are not sizes, with or without _
    # a Python script's __main__ block is its main: from it on, not the "__main__" string itself
    ({}, "def f(xs):\n    return sorted(xs)\n\n\nif __name__ == '__main__':\n    print(f([3, 1, 4] * 1000))\n", 1008),
    ({}, 'def f(n):\n    return [0] * n\n\nif __name__ == "__main__":\n    f(10)\n    f(20_000)\n', 20_010),
    ({}, "def f(n):\n    return [0] * n * 4\n", 0),  # no main, no constants: nothing stated
])
def test_input_size(context: dict, code: str, size: float) -> None:
    assert baselines.input_size({"context": context, "code": code, "region_kind": "program"}) == size


def test_baselines_rank_sizes(vocab: EncoderVocab) -> None:
    records = synthetic_records()
    rows = evaluate.labelled_rows(records, tuple(train.OBJECTIVES.values()))
    train_rows = [row for row in rows if not row.record["group"].endswith(("dict", "malloc", "A100"))]
    test_rows = [row for row in rows if row.record["group"].endswith(("dict", "malloc", "A100"))]
    predictions = evaluate.baseline_predictions(train_rows, test_rows)
    assert set(predictions) == set(baselines.BASELINES)
    report = evaluate.evaluate_rows(test_rows, predictions)
    assert report["python/function/peak_traced_heap"]["predictors"]["input_size"]["spearman"] == pytest.approx(1.0)
    assert "|" in evaluate.markdown_table(report)


def test_by_source_scores_each_source_beside_the_task() -> None:
    rows = [evaluate.Row({"language": "c", "region_kind": "program", "metric": "peak_rss", "group": group,
                          "source": source}, 0, value, "B")
            for source, group, value in [("transcoder", "t1", 10.0), ("transcoder", "t1", 20.0),
                                         ("transcoder", "t1", 30.0), ("synthetic", "s1", 40.0),
                                         ("synthetic", "s1", 50.0), ("synthetic", "s1", 60.0)]]
    # right order within each source, wrong across them: pooled over both sources ranks badly
    predicted = [evaluate.Prediction(value, value, value) for value in (100.0, 200.0, 300.0, 1.0, 2.0, 3.0)]
    plain = evaluate.evaluate_rows(rows, {"model": predicted})
    split = evaluate.evaluate_rows(rows, {"model": predicted}, by_source=True)
    task = "c/program/peak_rss"
    assert list(plain) == [task]
    assert list(split) == [task, f"{task} · synthetic", f"{task} · transcoder"]
    assert split[task] == plain[task]
    assert plain[task]["predictors"]["model"]["spearman"] < 0
    for source in ("synthetic", "transcoder"):
        entry = split[f"{task} · {source}"]
        assert entry["n"] == 3 and entry["predictors"]["model"]["spearman"] == pytest.approx(1.0)


def test_evaluate_cli(trained: train.FitResult, tmp_path: Path) -> None:
    records = synthetic_records()
    for split, chosen in (("train", records[1::2]), ("test", records[::2])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(record) + "\n" for record in chosen))
    out = tmp_path / "report.json"
    from perfhint_train import cli

    assert cli.main(["evaluate", "--checkpoint", str(trained.checkpoint), "--data-dir", str(tmp_path),
                     "--samples", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    tasks = report["tasks"]
    assert set(tasks) == {"python/function/peak_traced_heap", "c/program/peak_rss", "python/triton_kernel/median_latency"}
    assert set(tasks["c/program/peak_rss"]["predictors"]) == {"model", *baselines.BASELINES}


def test_checkpoint_predictions_decode_each_rows_objective_as_a_cost(trained: train.FitResult) -> None:
    """The PyTorch scoring path applies the editor's rule (decoding.CostGrammar): each row's objective is a
    number >= 0, for rows of both objectives. The tiny model, left free, often says NaN or less than 0."""
    from perfhint.decoding import aggregate

    checkpoint = load_checkpoint(trained.checkpoint)
    rows = evaluate.labelled_rows(synthetic_records(), tuple(train.OBJECTIVES.values()))
    predictions = evaluate.checkpoint_predictions(checkpoint, rows, samples=8, batch_rows=5)
    assert len(predictions) == len(rows) and {row.objective for row in rows} == {0, 1}
    for prediction in predictions:
        assert np.isfinite([prediction.median, prediction.p10]).all() and prediction.p10 >= 0, prediction
    import torch

    free = checkpoint.model.eval().sample(torch.tensor([[5, 6, 7]]), checkpoint.codec, 64,
                                          generator=torch.Generator().manual_seed(0)).tolist()[0]
    summaries = aggregate([checkpoint.codec.decode(sample) for sample in free])
    assert any(summary.special_fraction > 0 or (summary.p10 is not None and summary.p10 < 0) for summary in summaries)


def test_select_scores_every_checkpoint_on_val_and_refuses_test(trained: train.FitResult, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from perfhint_train import cli, selection

    records = synthetic_records()
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for step in (10, 2):  # a run directory gives its step-N files in step order, not name order
        (run_dir / f"step-{step}.safetensors").write_bytes(trained.checkpoint.read_bytes())
    out = tmp_path / "select.json"
    assert cli.main(["select", str(run_dir), str(trained.best_checkpoint), "--data-dir", str(tmp_path),
                     "--samples", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [Path(result["checkpoint"]).name for result in report["results"]] == \
        ["step-2.safetensors", "step-10.safetensors", trained.best_checkpoint.name]
    for result in report["results"]:
        assert result["rows"] == len(evaluate.labelled_rows(records, tuple(train.OBJECTIVES.values())))
        assert result["score"] == pytest.approx(sum(cell for cells in result["cells"].values() for cell in cells
                                                    if cell is not None))
    assert report["results"][0]["score"] == report["results"][1]["score"]  # the same weights, the same seed
    assert report["best"] == max(report["results"], key=lambda result: result["score"])["checkpoint"]
    assert f"best: {report['best']}" in capsys.readouterr().out
    assert cli.main(["select", str(run_dir), "--data-dir", str(tmp_path), "--split", "test"]) == 2
    assert "refusing the test split" in capsys.readouterr().err
    assert cli.main(["select", str(tmp_path), "--data-dir", str(tmp_path)]) == 2
    assert "keep_checkpoints=True" in capsys.readouterr().err
    assert selection.checkpoint_paths([trained.checkpoint]) == [trained.checkpoint]


# ----------------------------------------------------------------------------------------------- fine-tuning

MEASURED_FILES = ("fn_squares.py", "fn_word_counts.py", "fn_sort_in_place.py", "py_script_hello.py", "c_small.c",
                  "cpp_iostream.cpp")


def measure(path: Path) -> list[dict]:
    """`perfhint measure FILE --json`, as a user makes fine-tuning data."""
    result = subprocess.run([sys.executable, "-m", "perfhint", "measure", str(path), "--json"], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_finetune_export_predict_end_to_end(trained: train.FitResult, tmp_path: Path) -> None:
    from perfhint import cli

    records = [record for name in MEASURED_FILES for record in measure(MEASURE_DATA / name)]
    assert len(records) >= len(MEASURED_FILES) and all(record["value"] for record in records)
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in records))

    result = finetune.finetune(records, trained.checkpoint, tmp_path / "mine.safetensors", lr=1e-3, max_epochs=4,
                               patience=2, batch_size=4, log=quiet)
    assert result.val_loss_after <= result.val_loss_before
    assert result.train_records + result.val_records == len(records)
    assert load_checkpoint(result.out).provenance.source["sha256"] == load_checkpoint(trained.checkpoint).provenance.sha256

    bundle = tmp_path / "bundle"
    assert cli.main(["export", str(result.out), "--out", str(bundle), "--precision", "fp32"]) == 0
    predictions = tmp_path / "predictions.jsonl"
    assert cli.main(["predict", "--bundle", str(bundle), "--jsonl", str(data), "--out", str(predictions),
                     "--samples", "4"]) == 0
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [line["id"] for line in lines] == [record["id"] for record in records]
    assert all(line["predictions"][0]["metric"] == "peak_memory" for line in lines)
    rows = evaluate.labelled_rows(records, train.objectives_from_metrics(load_checkpoint(result.out).metrics))
    scored = evaluate.evaluate_rows(rows, {"bundle": evaluate.bundle_predictions(bundle, rows, samples=4)})
    assert sum(entry["n"] for entry in scored.values()) == len(records)


def test_calibrate_fits_on_val_and_refuses_test(trained: train.FitResult, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from perfhint import calibration, cli

    monkeypatch.setattr(calibration, "MIN_REGION_ROWS", 10)  # the synthetic set has 32 Python, 8 C rows
    from perfhint.bundle import load_bundle

    bundle = tmp_path / "bundle"
    assert cli.main(["export", str(trained.checkpoint), "--out", str(bundle), "--precision", "fp32"]) == 0
    data = tmp_path / "val.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in synthetic_records()))
    rows = evaluate.labelled_rows(synthetic_records(), tuple(train.OBJECTIVES.values()))
    plain = evaluate.bundle_predictions(bundle, rows, samples=8)
    assert cli.main(["train", "calibrate", "--bundle", str(bundle), "--split", str(data), "--samples", "8"]) == 0
    fitted = load_bundle(bundle).manifest.calibration
    assert fitted is not None and len(fitted.band_margin_log10) == 2
    assert set(fitted.by_region) == {"python/function"} and set(fitted.by_region["python/function"]) == {0}
    assert all(after >= 0.8 for after in fitted.coverage_after if after is not None)
    # Refitting ignores the calibration already there: the same margins, not their sum.
    assert cli.main(["train", "calibrate", "--bundle", str(bundle), "--split", str(data), "--samples", "8"]) == 0
    assert load_bundle(bundle).manifest.calibration.band_margin_log10 == fitted.band_margin_log10
    # The rows it is scored on now are covered as fitted (same rows, same seed: exactly).
    predicted = evaluate.bundle_predictions(bundle, rows, samples=8)
    memory = [(row.value, p) for row, p in zip(rows, predicted) if row.objective == 0]
    inside = np.mean([p.p10 <= value <= p.p90 for value, p in memory])
    assert inside == pytest.approx(fitted.coverage_after[0])
    margins = [fitted.margin(row.objective, f"{row.record['language']}/{row.record['region_kind']}") for row in rows]
    assert [p.median for p in predicted] == [p.median for p in plain]  # ranks untouched
    positive = [(p, q, m) for p, q, m in zip(plain, predicted, margins) if p.p10 > 0]
    assert positive and all((q.p10, q.p90) == pytest.approx(calibration.widen(p.median, p.p10, p.p90, m))
                            for p, q, m in positive)
    assert cli.main(["train", "calibrate", "--bundle", str(bundle), "--split", "test"]) == 2


@pytest.mark.parametrize("groups, n_val", [(["a"], 0), (["a", "a", "a", "a", "a"], 1), (list("abcdefghij"), 2)])
def test_held_out_split(groups: list[str], n_val: int) -> None:
    records = [{"id": str(index), "group": group} for index, group in enumerate(groups)]
    train_part, val_part = finetune.split_held_out(records)
    if len(records) == 1:
        assert train_part == val_part == records  # one record validates on itself (regress-lm's default)
        return
    assert len(val_part) == n_val and len(train_part) + len(val_part) == len(records)
    assert not {r["group"] for r in val_part} & {r["group"] for r in train_part} or len(set(groups)) == 1


# ----------------------------------------------------------------------------------------------- time budget


class FakeClock:
    """train.time stand-in: every perf_counter() call is 10 ms later, so a run's "speed" is the code's, not the CI's."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.01
        return self.now

    def __getattr__(self, name: str) -> object:
        import time

        return getattr(time, name)


def test_minutes_budget_sets_max_steps_and_the_cosine_ends_there(vocab: EncoderVocab, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    steps = {}
    for minutes in (0.02, 0.04):
        monkeypatch.setattr(train, "time", FakeClock())
        run = tiny_run(vocab, max_steps=10_000, eval_interval=0, log_interval=1, warmup_steps=4)
        out = tmp_path / str(minutes)
        result = train.fit(run, out_dir=out, minutes=minutes, log=quiet)
        written = json.loads((out / train.CONFIG_FILE).read_text())["max_steps"]
        assert 4 < result.step == written == run.config.max_steps < 10_000
        logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        last_lr = [entry["lr"] for entry in logged if "lr" in entry][-1]
        assert last_lr == pytest.approx(run.config.lr * run.config.min_lr_ratio, rel=1e-3)  # the decay finished
        steps[minutes] = result.step
    assert 1.8 < steps[0.04] / steps[0.02] < 2.2, steps  # twice the budget, about twice the steps


def test_minutes_budget_refuses_resume(vocab: EncoderVocab, tmp_path: Path) -> None:
    train.fit(tiny_run(vocab, max_steps=4, eval_interval=0), out_dir=tmp_path, log=quiet)
    with pytest.raises(ValueError, match="--minutes"):
        train.fit(tiny_run(vocab, max_steps=4, eval_interval=0), out_dir=tmp_path, resume=True, minutes=1.0, log=quiet)


# ----------------------------------------------------------------------------------------------- greedy task scores


def greedy_rows(spec: list[tuple[str, str, float, float]]) -> tuple[list, list[float]]:
    """(task language, group, truth, prediction) -> examples as greedy_task_scores reads them, and predictions."""
    from types import SimpleNamespace

    kinds = {"python": ("function", "peak_traced_heap"), "c": ("program", "peak_rss")}
    examples = [SimpleNamespace(value=truth, record={"language": language, "region_kind": kinds[language][0],
                                                     "metric": kinds[language][1], "group": group})
                for language, group, truth, _ in spec]
    return examples, [prediction for *_, prediction in spec]


@pytest.mark.parametrize(("spec", "expected"), [
    # Perfect ranking everywhere: every cell is 1.
    ([("python", "a", 1, 10), ("python", "a", 2, 20), ("python", "a", 3, 30),
      ("c", "b", 5, 1), ("c", "b", 6, 2), ("c", "b", 7, 3)],
     {"c/program/peak_rss": [1.0, 1.0], "python/function/peak_traced_heap": [1.0, 1.0]}),
    # Groups ranked right against each other, rows wrong inside each: pooled high, within -1.
    ([("python", "a", 1, 3), ("python", "a", 2, 2), ("python", "a", 3, 1),
      ("python", "b", 100, 300), ("python", "b", 200, 200), ("python", "b", 300, 100)],
     {"python/function/peak_traced_heap": [pytest.approx(0.5429, abs=1e-3), -1.0]}),
    # A special-value decode (NaN) is left out, not ranked; a constant prediction ranks nothing (0 within, NaN pooled).
    ([("c", "b", 5, 1), ("c", "b", 6, float("nan")), ("c", "b", 7, 2), ("c", "b", 8, 3),
      ("python", "a", 1, 4), ("python", "a", 2, 4), ("python", "a", 3, 4)],
     {"c/program/peak_rss": [1.0, 1.0], "python/function/peak_traced_heap": [pytest.approx(float("nan"), nan_ok=True), 0.0]}),
])
def test_greedy_task_scores(spec: list, expected: dict) -> None:
    examples, predictions = greedy_rows(spec)
    assert train.greedy_task_scores(examples, predictions) == expected
