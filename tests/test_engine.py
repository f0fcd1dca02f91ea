"""The prediction engine: batching, the two caches, cancellation, failures; predictions of real regions."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))

from fake_predictor import FAIL_MARKER, MANIFEST, FakePredictor  # noqa: E402

from perfhint import predict  # noqa: E402
import perfhint.engine as engine_module  # noqa: E402
from perfhint.engine import CACHE_FILE, Cancelled, CancelToken, Engine, NoBundle, resolve_bundle_path  # noqa: E402
from perfhint.regions import find_regions  # noqa: E402
from perfhint.settings import Settings  # noqa: E402

SOURCE = "".join(f"def f{index}(n):\n    return [{index}] * n\n\n" for index in range(20))


def engine_with(predictor: FakePredictor, tmp_path: Path | None = None, **kwargs) -> Engine:
    engine = Engine(cache_dir=tmp_path, **kwargs)
    engine.use_predictor(predictor)
    return engine


def run(engine: Engine, predictor: FakePredictor, source: str = SOURCE, settings: Settings = Settings(), **kwargs):
    requests = engine.requests(find_regions(source, "python"), settings, predictor)
    return engine.run(requests, settings, predictor, **kwargs)


def test_misses_are_batched_and_hits_never_reach_the_model(tmp_path: Path) -> None:
    predictor = FakePredictor()
    engine = engine_with(predictor, tmp_path, batch_size=8)
    first = run(engine, predictor)
    assert [len(call) for call in predictor.calls] == [8, 8, 4]
    second = run(engine, predictor)
    assert len(predictor.calls) == 3  # all cached
    assert [o.prediction for o in first] == [o.prediction for o in second]
    assert all(o.cached for o in second) and not any(o.cached for o in first)


def test_one_changed_region_is_one_model_text(tmp_path: Path) -> None:
    predictor = FakePredictor()
    engine = engine_with(predictor, tmp_path)
    before = run(engine, predictor)
    predictor.calls.clear()
    after = run(engine, predictor, SOURCE.replace("[3] * n", "[3] * (n + 1)"))
    assert predictor.calls == [[after[3].request.text]]
    assert [o.prediction.primary.median for i, o in enumerate(after) if i != 3] == \
           [o.prediction.primary.median for i, o in enumerate(before) if i != 3]


def test_the_runtime_is_told_each_texts_region_and_the_cache_keeps_regions_apart(tmp_path: Path) -> None:
    """A raw-template text is the code alone; the region (which objective is a cost) travels beside it."""
    predictor = FakePredictor({**MANIFEST, "input_template": {"kind": "raw"}})
    engine = engine_with(predictor, tmp_path)
    source = ("import triton\nimport triton.language as tl\n\n\n@triton.jit\ndef k(x_ptr, BLOCK: tl.constexpr):\n"
              "    tl.store(x_ptr + tl.arange(0, BLOCK), 1.0)\n\n\ndef launch(x):\n    k[(1,)](x, BLOCK=1024)\n\n\n"
              "def f(n):\n    return [0] * n\n")
    outcomes = run(engine, predictor, source)
    assert [o.request.region.kind for o in outcomes] == ["triton_kernel", "function"]
    assert predictor.regions == [["python/triton_kernel", "python/function"]]
    function = outcomes[1].request
    assert engine_module.cache_key("sha", function.text, 32, 0, "python/function") != \
        engine_module.cache_key("sha", function.text, 32, 0, "python/script")
    assert predict.region_id(function.region) == "python/function"


def test_disk_cache_survives_a_new_engine_and_is_bounded(tmp_path: Path) -> None:
    predictor = FakePredictor()
    first = run(engine_with(predictor, tmp_path), predictor)
    fresh = FakePredictor()
    again = run(engine_with(fresh, tmp_path), fresh)
    assert fresh.calls == [] and [o.prediction for o in again] == [o.prediction for o in first]
    small = engine_with(FakePredictor(), tmp_path / "small", disk_entries=5)
    for index in range(300):
        run(small, small.loaded_predictor, f"def g{index}(n):\n    return n\n")
    count = sqlite3.connect(tmp_path / "small" / CACHE_FILE).execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    assert count <= 5 + 256  # trimmed every 256 writes


def test_unwritable_cache_dir_falls_back_to_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    predictor = FakePredictor()
    engine = engine_with(predictor, blocker / "cache")
    assert all(o.prediction is not None for o in run(engine, predictor))


def test_cache_key_covers_samples_seed_and_bundle(tmp_path: Path) -> None:
    predictor = FakePredictor()
    engine = engine_with(predictor, None)
    region = find_regions("def f(n):\n    return n\n", "python")
    keys = {engine.requests(region, settings, p)[0].key
            for settings in (Settings(), Settings(samples=8), Settings(seed=1))
            for p in (predictor, FakePredictor({**MANIFEST, "model": {**MANIFEST["model"], "version": "1"}}))}
    assert len(keys) == 6


def test_context_changes_the_model_text_and_defaults_fill_the_gpu() -> None:
    predictor = FakePredictor()
    engine = engine_with(predictor, None)
    plain, directed = find_regions("def f(n):\n    return n\n\n# perfhint: args=(10,)\ndef g(n):\n    return n\n",
                                   "python")
    [a, b] = engine.requests([plain, directed], Settings(target_gpu="A100"), predictor)
    assert "args=(10,)" in b.text and "args" not in a.text
    assert "gpu=" not in a.text  # host memory of a Python function does not depend on the GPU
    [outcome_a, outcome_b] = engine.run([a, b], Settings(), predictor)
    assert not outcome_a.prediction.arguments_known and outcome_b.prediction.arguments_known


def test_cancel_between_batches_keeps_finished_batches(tmp_path: Path) -> None:
    predictor = FakePredictor()
    engine = engine_with(predictor, None, batch_size=4)
    token = CancelToken()
    done = []

    def on_batch(finished: int, total: int) -> None:
        done.append(finished)
        if finished == 8:
            token.cancel()

    with pytest.raises(Cancelled):
        run(engine, predictor, cancel=token, on_batch=on_batch)
    assert done == [4, 8] and len(engine.memory) == 8
    predictor.calls.clear()
    run(engine, predictor)
    assert [len(call) for call in predictor.calls] == [4, 4, 4]  # only the 12 not yet done


def test_a_failing_batch_marks_its_regions_and_is_not_cached() -> None:
    predictor = FakePredictor()
    engine = engine_with(predictor, None, batch_size=1)
    source = SOURCE + f"def broken():\n    return '{FAIL_MARKER}'\n"
    outcomes = run(engine, predictor, source)
    failed = [o for o in outcomes if o.error]
    assert [o.request.region.name for o in failed] == ["broken"] and "fail" in failed[0].error
    assert all(o.prediction is not None for o in outcomes if not o.error)
    assert len(run(engine, predictor, source)) == len(outcomes)
    assert [o.request.region.name for o in run(engine, predictor, source) if o.error] == ["broken"]


def test_run_async_runs_on_the_worker_thread() -> None:
    predictor = FakePredictor()
    engine = engine_with(predictor, None)
    threads = []
    original = predictor.predict_texts

    def spy(texts, **kwargs):
        threads.append(threading.current_thread().name)
        return original(texts, **kwargs)

    predictor.predict_texts = spy
    requests = engine.requests(find_regions(SOURCE, "python"), Settings(), predictor)
    outcomes = asyncio.run(engine.run_async(requests, Settings(), predictor))
    assert len(outcomes) == 20 and threads and all(name.startswith("perfhint-model") for name in threads)


def test_no_bundle_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERFHINT_BUNDLE", raising=False)
    monkeypatch.setattr(engine_module, "shipped_bundle_path", lambda: None)
    with pytest.raises(NoBundle, match="default model is missing from this install .*; pass --bundle"):
        resolve_bundle_path(None, how_to_set="pass --bundle PATH")
    with pytest.raises(NoBundle, match="not found at"):
        resolve_bundle_path(str(tmp_path / "missing"), how_to_set="pass --bundle PATH")


def test_prediction_picks_the_metric_for_the_region_kind() -> None:
    metrics = predict.bundle_metrics(FakePredictor().bundle)
    assert [m.name for m in predict.metrics_for("function", metrics)] == ["peak_memory"]
    assert [m.name for m in predict.metrics_for("triton_kernel", metrics)] == ["latency"]
    assert [m.name for m in predict.metrics_for("function", metrics, ["latency"])] == ["latency"]


def test_long_regions_get_model_calls_of_their_own() -> None:
    # Encoder memory grows with tokens^2 and onnxruntime keeps its peak: long regions are not batched.
    predictor = FakePredictor()
    engine = engine_with(predictor, None)
    long_body = "".join(f"    x{index} = n * {index} + {index}\n" for index in range(200))  # ~5 KB: ~1,300 tokens
    source = "".join(f"def long{index}(n):\n{long_body}    return n\n\n" for index in range(3)) + SOURCE
    run(engine, predictor, source)
    sizes = [len(call) for call in predictor.calls]
    assert sizes[:3] == [1, 1, 1] and max(sizes) == 8
