"""runtime.Predictor: onnxruntime sessions over exported bundles, checked against regress-lm's golden values.

Tolerances are the exporter's parity gate (perfhint_export/parity.py), read from each bundle's manifest:
fp32 logits within 1e-4 of the reference and greedy decoding exactly regress-lm's; int8 logits within
0.2, and every int8 greedy choice a 2*atol-greedy choice of the reference (its fp32 logit within 2*atol
of the best allowed one), because int8 error can flip choices between tokens that close.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from perfhint.bundle import BundleError, load_bundle
from perfhint.runtime import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    DeviceUnavailable,
    Predictor,
    TextPrediction,
    plan_batches,
    select_providers,
    session_options,
)

REGRESS_LM_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "regress_lm"  # as conftest
GOLDEN = {entry["fixture"]: entry for entry in json.loads((REGRESS_LM_FIXTURES / "golden.json").read_text())["fixtures"]}
CASES = [(fixture, index) for fixture in GOLDEN for index in range(len(GOLDEN[fixture]["cases"]))]
CASE_IDS = [f"{fixture}-case{index}" for fixture, index in CASES]
PRECISIONS = ("fp32", "int8")
TEXTS = ["def foo(x): return x * 2", "", "x", "température: 21.5°C → ok ✓", "for i in range(10):\n    print(i)\n" * 3,
         "def foo(x): return x * 2"]


@pytest.fixture(scope="module")
def predictor(regress_lm_bundle):
    """predictor(fixture, precision): one Predictor per exported golden bundle, 1 thread (reproducible)."""
    loaded: dict[tuple[str, str], Predictor] = {}

    def get(fixture: str, precision: str) -> Predictor:
        if (fixture, precision) not in loaded:
            loaded[fixture, precision] = Predictor.from_bundle_path(regress_lm_bundle(fixture, precision), threads=1)
        return loaded[fixture, precision]

    return get


@pytest.fixture(scope="module")
def tiny(tiny_bundle: Path) -> Predictor:
    return Predictor.from_bundle_path(tiny_bundle, threads=1)


def golden_value(value: float | str) -> float | str:
    """golden.json writes non-finite values as strings; "INVALID" stays a string."""
    return float(value) if value in ("nan", "inf", "-inf") else value


def logits_atol(predictor: Predictor) -> float:
    return float(predictor.bundle.manifest.parity["tolerances"]["logits_atol"])


# ----------------------------------------------------------------------------------------------- golden


@pytest.mark.parametrize(("fixture", "index"), CASES, ids=CASE_IDS)
def test_fp32_greedy_is_regress_lms(predictor, fixture: str, index: int) -> None:
    case = GOLDEN[fixture]["cases"][index]
    prediction = predictor(fixture, "fp32").predict_texts([case["input"]], samples=2, greedy=True,
                                                          return_token_ids=True)[0]
    assert prediction.greedy_token_ids.tolist() == case["greedy"]["token_ids"]
    assert repr(prediction.greedy) == repr([golden_value(value) for value in case["greedy"]["values"]])  # bit-exact
    assert (prediction.n_tokens, prediction.truncated) == (case["input_token_len"],
                                                           case["input_token_len"] > GOLDEN[fixture]["config"]["max_input_len"])


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(("fixture", "index"), CASES, ids=CASE_IDS)
def test_logits_along_regress_lms_paths_are_within_the_parity_tolerance(predictor, fixture: str, index: int,
                                                                        precision: str) -> None:
    case = GOLDEN[fixture]["cases"][index]
    model = predictor(fixture, precision)
    greedy_path = model.teacher_forced_logits(case["input"], case["greedy"]["token_ids"])
    assert np.abs(greedy_path - np.array([step["logits"] for step in case["greedy"]["steps"]])).max() <= logits_atol(model)
    decode_len = model.codec.decode_len
    target_path = model.teacher_forced_logits(case["input"], case["decoder_target_ids"][:decode_len])
    assert np.abs(target_path - np.array(case["teacher_forced_logits"][:decode_len])).max() <= logits_atol(model)


@pytest.mark.parametrize(("fixture", "index"), CASES, ids=CASE_IDS)
def test_int8_greedy_choices_are_within_twice_the_tolerance_of_the_best(predictor, fixture: str, index: int) -> None:
    text = GOLDEN[fixture]["cases"][index]["input"]
    int8, reference = predictor(fixture, "int8"), predictor(fixture, "fp32")
    path = int8.predict_texts([text], samples=1, greedy=True, return_token_ids=True)[0].greedy_token_ids
    reference_logits = reference.teacher_forced_logits(text, path).astype(np.float64)
    for step, token in enumerate(path):
        allowed = reference.codec.allowed_mask(path[None, :step])[0]
        regret = reference_logits[step][allowed].max() - reference_logits[step, token]
        assert allowed[token] and regret <= 2 * logits_atol(int8), (step, regret)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("fixture", list(GOLDEN))
def test_empty_text_gives_torchs_finite_logits(predictor, fixture: str, precision: str) -> None:
    model = predictor(fixture, precision)
    golden = GOLDEN[fixture]["empty_input_edge_case"]
    first_step = model.teacher_forced_logits("", [0])[0]
    assert np.abs(first_step - np.array(golden["first_step_logits"])).max() <= logits_atol(model)
    prediction = model.predict_texts([""], samples=8)[0]
    assert (prediction.n_tokens, prediction.truncated) == (0, False)
    assert sum(summary.n_samples for summary in prediction.objectives) == 8 * model.codec.max_num_objs


def test_empty_memory_equals_a_fully_padded_one(tiny: Predictor) -> None:
    """The runtime decodes "" from a length-0 memory; regress-lm pads it to max_input_len, all masked."""
    layers, heads, head_dim = tiny._cache_shape

    def first_logits(length: int) -> np.ndarray:
        cross = np.random.default_rng(0).normal(size=(layers, 1, heads, length, head_dim)).astype(np.float32)
        feeds = {"token": np.zeros(3, np.int64), "position": np.zeros(1, np.int64),
                 "past_k": np.zeros((layers, 3, heads, 0, head_dim), np.float32),
                 "past_v": np.zeros((layers, 3, heads, 0, head_dim), np.float32),
                 "cross_k": cross, "cross_v": cross, "memory_mask": np.zeros((1, length), np.int64)}
        return tiny.decoder.run(["logits"], feeds)[0]

    assert np.isfinite(first_logits(0)).all()
    assert np.array_equal(first_logits(0), first_logits(7))


# ----------------------------------------------------------------------------------------------- determinism


def check_same(first: list[TextPrediction], second: list[TextPrediction]) -> None:
    assert repr(first) == repr(second)  # exact, NaN-safe
    for a, b in zip(first, second):
        assert np.array_equal(a.token_ids, b.token_ids) if a.token_ids is not None else b.token_ids is None


def test_same_text_and_seed_give_the_same_numbers(tiny: Predictor, tiny_bundle: Path) -> None:
    first = tiny.predict_texts(TEXTS, seed=7, return_token_ids=True)
    check_same(first, tiny.predict_texts(TEXTS, seed=7, return_token_ids=True))
    check_same(first, Predictor.from_bundle_path(tiny_bundle, threads=2).predict_texts(TEXTS, seed=7,
                                                                                         return_token_ids=True))
    other = tiny.predict_texts(TEXTS, seed=8, return_token_ids=True)
    assert not np.array_equal(first[0].token_ids, other[0].token_ids)


def test_identical_texts_in_one_call_get_identical_predictions(tiny: Predictor) -> None:
    first, *_, last = tiny.predict_texts(TEXTS, seed=3, return_token_ids=True)
    check_same([first], [last])


@pytest.mark.parametrize("greedy", [False, True])
def test_batched_equals_one_by_one_in_any_order(tiny: Predictor, greedy: bool) -> None:
    batched = tiny.predict_texts(TEXTS, seed=1, greedy=greedy, return_token_ids=True)
    one_by_one = [tiny.predict_texts([text], seed=1, greedy=greedy, return_token_ids=True)[0] for text in TEXTS]
    check_same(batched, one_by_one)
    reversed_batch = tiny.predict_texts(TEXTS[::-1], seed=1, greedy=greedy, return_token_ids=True)
    check_same(batched, reversed_batch[::-1])


def test_int8_encoder_numbers_do_not_depend_on_the_batch(tiny_bundle_int8: Path) -> None:
    """Dynamic int8 quantizes activations with one scale per tensor, the whole padded batch: a text's
    numbers would move with its batch-mates (the default model's median of one test row: 23.7 MB
    alone, 28.3 MB in a batch of ten). So a quantized encoder encodes each text on its own."""
    int8 = Predictor.from_bundle_path(tiny_bundle_int8, threads=1)
    texts = [text * repeat for text in TEXTS for repeat in (1, 3)]  # a spread of lengths
    int8.timings.update(dict.fromkeys(int8.timings, 0))
    batched = int8.predict_texts(texts, seed=1, return_token_ids=True)
    assert int8.timings["encoder_calls"] == len(texts)
    check_same(batched, [int8.predict_texts([text], seed=1, return_token_ids=True)[0] for text in texts])
    cross_alone = int8._encode_batch([int8.encode_text(texts[0]).ids])
    cross_padded = int8._encode_batch([int8.encode_text(text).ids for text in texts[:2]])
    length = len(int8.encode_text(texts[0]).ids)
    assert not np.array_equal(cross_alone[0], cross_padded[0][:, :1, :, :length])  # why: batching does move it


def test_samples_with_one_prefix_run_as_one_row(tiny: Predictor, tiny_bundle: Path) -> None:
    unshared = Predictor.from_bundle_path(tiny_bundle, threads=1, share_prefixes=False)
    for predictor in (tiny, unshared):
        predictor.timings.update(dict.fromkeys(predictor.timings, 0))
    check_same(tiny.predict_texts(TEXTS, seed=4, return_token_ids=True),
               unshared.predict_texts(TEXTS, seed=4, return_token_ids=True))
    steps = len(TEXTS) * tiny.codec.decode_len
    assert unshared.timings["decoder_rows"] == steps * 32
    assert tiny.timings["decoder_rows"] <= steps * 32 - len(TEXTS) * 31  # at least step 0: one row, not 32
    assert tiny.timings["decoder_calls"] == unshared.timings["decoder_calls"] == steps


def test_int8_bundle_runs_and_stays_close_to_fp32(tiny: Predictor, tiny_bundle_int8: Path) -> None:
    int8 = Predictor.from_bundle_path(tiny_bundle_int8, threads=1)
    assert int8.bundle.precision == "int8"
    for text in TEXTS[:4]:
        path = tiny.predict_texts([text], samples=1, greedy=True, return_token_ids=True)[0].greedy_token_ids
        diff = np.abs(int8.teacher_forced_logits(text, path) - tiny.teacher_forced_logits(text, path)).max()
        assert diff <= logits_atol(int8)


def test_truncation_keeps_the_first_max_input_len_tokens(tiny: Predictor) -> None:
    long_text = " ".join(f"value_{i} = {7 * i};" for i in range(40))
    kept = tiny.predict_texts([long_text], seed=2, greedy=True)[0]
    assert kept.truncated and kept.n_tokens > tiny.max_input_len
    with_tail = tiny.predict_texts([long_text + " and a tail the model never reads"], seed=2, greedy=True)[0]
    assert with_tail.truncated and with_tail.n_tokens > kept.n_tokens
    assert (repr(with_tail.objectives), with_tail.greedy) == (repr(kept.objectives), kept.greedy)


def test_summaries_cover_every_objective_in_manifest_order(tiny: Predictor) -> None:
    prediction = tiny.predict_texts(["def f(): pass"], samples=5)[0]
    assert [metric.name for metric in tiny.metrics] == ["peak_memory", "latency"]
    assert len(prediction.objectives) == 2
    for summary in prediction.objectives:
        assert summary.n_samples == 5 and summary.n_finite == 5 and summary.special_fraction == 0.0  # IEEE: no specials
        assert summary.p10 <= summary.median <= summary.p90
    assert prediction.greedy is None and prediction.token_ids is None


def test_bundle_identity_is_stable(tiny: Predictor, tiny_bundle: Path, tiny_bundle_int8: Path) -> None:
    assert tiny.bundle_sha256 == Predictor.from_bundle_path(tiny_bundle).bundle_sha256 == load_bundle(tiny_bundle).sha256
    assert tiny.bundle_sha256 != Predictor.from_bundle_path(tiny_bundle_int8).bundle_sha256


# ----------------------------------------------------------------------------------------------- errors


def check_refused(action, *needles: str, error: type[Exception] = BundleError) -> None:
    with pytest.raises(error) as raised:
        action()
    for needle in needles:
        assert needle in str(raised.value), str(raised.value)


def tampered_copy(bundle: Path, tmp_path: Path, file_name: str = "encoder.onnx") -> Path:
    copy = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    data = bytearray((copy / file_name).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte, in the weights
    (copy / file_name).write_bytes(bytes(data))
    return copy


@pytest.mark.parametrize("file_name", ["encoder.onnx", "decoder_step.onnx", "tokenizer.model"])
def test_tampered_bundle_is_refused(tiny_bundle: Path, tmp_path: Path, file_name: str) -> None:
    copy = tampered_copy(tiny_bundle, tmp_path, file_name)
    check_refused(lambda: Predictor.from_bundle_path(copy), file_name, "perfhint export")


def test_file_changed_after_the_check_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    bundle = load_bundle(copy)  # hashes checked here ...
    tampered_copy(tiny_bundle, tmp_path / "again", "decoder_step.onnx")
    shutil.copyfile(tmp_path / "again" / "bundle" / "decoder_step.onnx", copy / "decoder_step.onnx")
    check_refused(lambda: Predictor(bundle), "decoder_step.onnx", "changed after", "perfhint export")  # ... and here


def test_missing_bundle_names_the_fix(tmp_path: Path) -> None:
    check_refused(lambda: Predictor.from_bundle_path(tmp_path / "nowhere"), "not found", "perfhint export")


@pytest.mark.parametrize(("kwargs", "error", "needle"), [
    ({"texts": "just one text"}, TypeError, "[text]"),
    ({"texts": ["ok", 3]}, TypeError, "texts[1] is int"),
    ({"samples": 0}, ValueError, "samples must be an int >= 1"),
    ({"seed": -1}, ValueError, "seed must be an int >= 0"),
    ({"temperature": 0.0}, ValueError, "greedy=True"),
    ({"temperature": math.inf}, ValueError, "temperature"),
])
def test_bad_arguments_name_the_fix(tiny: Predictor, kwargs: dict, error: type[Exception], needle: str) -> None:
    texts = kwargs.pop("texts", ["def f(): pass"])
    check_refused(lambda: tiny.predict_texts(texts, **kwargs), needle, error=error)


# ----------------------------------------------------------------------------------------------- sessions


@pytest.mark.parametrize(("device", "available", "expected"), [
    ("cpu", [CPU_PROVIDER], [CPU_PROVIDER]),
    ("cpu", [CUDA_PROVIDER, CPU_PROVIDER], [CPU_PROVIDER]),  # cpu means cpu, even where CUDA exists
    ("gpu", [CUDA_PROVIDER, CPU_PROVIDER], [CUDA_PROVIDER, CPU_PROVIDER]),  # CPU kept for ops CUDA lacks
    ("gpu", [CPU_PROVIDER], (DeviceUnavailable, "install onnxruntime-gpu")),
    ("gpu", ["AzureExecutionProvider", CPU_PROVIDER], (DeviceUnavailable, "perfhint.runtimeDevice = cpu")),
    ("tpu", [CPU_PROVIDER], (ValueError, "use one of cpu, gpu")),
])
def test_provider_selection(device: str, available: list[str], expected: list[str] | tuple) -> None:
    if isinstance(expected, list):
        assert select_providers(device, available) == expected
    else:
        error, needle = expected
        check_refused(lambda: select_providers(device, available), needle, error=error)


def test_gpu_without_cuda_provider_is_refused_not_silently_cpu(tiny_bundle: Path) -> None:
    if CUDA_PROVIDER in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider; the refusal needs a CPU-only build")
    check_refused(lambda: Predictor.from_bundle_path(tiny_bundle, device="gpu"), "onnxruntime-gpu",
                  error=DeviceUnavailable)


@pytest.mark.gpu
def test_gpu_predictions_match_cpu(tiny: Predictor, tiny_bundle: Path) -> None:
    if CUDA_PROVIDER not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu and a CUDA device")
    gpu = Predictor.from_bundle_path(tiny_bundle, device="gpu")
    assert gpu.encoder.get_providers()[0] == CUDA_PROVIDER
    cpu_greedy = tiny.predict_texts(TEXTS, greedy=True)
    assert [p.greedy for p in gpu.predict_texts(TEXTS, greedy=True)] == [p.greedy for p in cpu_greedy]


def test_session_options(tiny_bundle: Path) -> None:
    predictor = Predictor.from_bundle_path(tiny_bundle, threads=2)
    for session in (predictor.encoder, predictor.decoder):
        options = session.get_session_options()
        assert options.intra_op_num_threads == 2
        assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert session.get_providers() == [CPU_PROVIDER]
    assert session_options(None).intra_op_num_threads == 0  # onnxruntime's default: one per physical core
    for bad in (0, -1, 1.5, True):
        check_refused(lambda: session_options(bad), "threads must be a positive int", error=ValueError)


@pytest.mark.parametrize(("lengths", "expected"), [
    ([], []),
    ([0], [[0]]),
    ([5, 0, 3], [[1, 2, 0]]),  # short texts share a batch: the slack absorbs small differences
    ([100, 10, 120, 1000], [[1], [0, 2], [3]]),  # 10 vs 100 would be 90% padding
    ([2048] * 3, [[0, 1], [2]]),  # attention memory bounds long batches
    ([7] * 20, [list(range(16)), list(range(16, 20))]),  # and the number of inputs
])
def test_batches_group_similar_lengths(lengths: list[int], expected: list[list[int]]) -> None:
    assert plan_batches(lengths) == expected


# ----------------------------------------------------------------------------------------------- costs


def sample_values(predictor: Predictor, text: str, **kwargs) -> list[float]:
    [prediction] = predictor.predict_texts([text], samples=64, seed=0, return_token_ids=True, **kwargs)
    return [predictor.codec.decode(ids)[0] for ids in prediction.token_ids]


def test_a_region_given_beside_raw_text_decodes_its_metric_as_a_cost(raw_memory_bundle: Path) -> None:
    predictor = Predictor.from_bundle_path(raw_memory_bundle, threads=1)
    code = "def f(n):\n    return [0] * n\n"
    free = sample_values(predictor, code)  # raw text: nothing says which region it is
    assert any(not math.isfinite(value) or value < 0 for value in free)  # this random model says less than 0
    for region in ("python/function", "c/program"):
        values = sample_values(predictor, code, regions=[region])
        assert all(math.isfinite(value) and value >= 0 for value in values), (region, values)
    [prediction] = predictor.predict_texts([code], samples=16, regions=["python/function"])
    assert prediction.objectives[0].p10 >= 0 and prediction.objectives[0].special_fraction == 0


def test_unitless_metrics_keep_the_full_grammar(predictor) -> None:
    """A regress-lm sidecar without units may predict a log or a difference: no region makes it a cost."""
    rlm = predictor("rlm_tiny_ieee", "fp32")
    assert rlm.objectives_asked("python/function") == ()
    code = "def f(n):\n    return [0] * n\n"
    assert sample_values(rlm, code, regions=["python/function"]) == sample_values(rlm, code)


@pytest.mark.parametrize("regions, needle", [(["python/function", "c/program"], "one entry per text"),
                                             ("python/function", "one entry per text"),
                                             (["function"], "'language/region_kind'")])
def test_bad_regions_name_the_fix(tiny: Predictor, regions, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        tiny.predict_texts(["x = 1"], samples=2, regions=regions)
