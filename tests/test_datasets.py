"""Labelled datasets: deterministic builders, leak-free splits, runnable TransCoder programs, label round trips.

The published GPU sources are checked against counts stored in tests/data/datasets/expected_counts.json
(`UPDATE_EXPECT=1 pytest tests/test_datasets.py` rewrites it; review with `git diff`). Measuring tests
run a handful of real TransCoder programs through the same batch harness the labelling run uses.
"""

from __future__ import annotations

import ast

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from perfhint.context import parse_directive, safe_literal
from perfhint_train.datasets import build, gpu_kernels, harness, labels, splits, synthetic, transcoder
from perfhint_train.datasets.records import SHARED_DATASETS, Record, digest

DATA = Path(__file__).parent / "data" / "datasets"
EXPECTED_COUNTS = DATA / "expected_counts.json"

pytestmark = pytest.mark.skipif(not SHARED_DATASETS.exists(),
                                reason=f"shared datasets not found at {SHARED_DATASETS}")


@pytest.fixture(scope="module")
def published() -> dict[str, list[Record]]:
    return {"tritonbench": gpu_kernels.tritonbench_records(), "liger": gpu_kernels.liger_records()}


def check_expected(name: str, actual: object) -> None:
    expected = json.loads(EXPECTED_COUNTS.read_text()) if EXPECTED_COUNTS.exists() else {}
    if os.environ.get("UPDATE_EXPECT") == "1":
        expected[name] = actual
        EXPECTED_COUNTS.parent.mkdir(parents=True, exist_ok=True)
        EXPECTED_COUNTS.write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
        return
    assert expected.get(name) == actual, f"{name}: run UPDATE_EXPECT=1 pytest tests/test_datasets.py if intended"


# --- determinism -----------------------------------------------------------------------------------


def test_synthetic_builder_is_deterministic_given_the_seed() -> None:
    first = synthetic.synthetic_tasks(variants=3)
    again = synthetic.synthetic_tasks(variants=3)
    assert [(task.id, task.code, task.context) for task in first] == [(task.id, task.code, task.context) for task in again]
    assert len({task.id for task in first}) == len(first)


def test_synthetic_seed_changes_the_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    before = [task.code for task in synthetic.synthetic_tasks(variants=3)]
    monkeypatch.setattr(synthetic, "SEED", synthetic.SEED + 1)
    after = [task.code for task in synthetic.synthetic_tasks(variants=3)]
    assert before != after


def test_transcoder_tasks_are_deterministic_and_args_are_safe_literals() -> None:
    ids = transcoder.problem_ids("python")[:40]
    first = [task for problem in ids for task in transcoder.python_tasks(problem)]
    transcoder.python_problem.cache_clear()
    again = [task for problem in ids for task in transcoder.python_tasks(problem)]
    assert [(task.id, task.context) for task in first] == [(task.id, task.context) for task in again]
    for task in first:
        safe_literal(task.context["args"])  # an editor could write exactly this


def test_script_tasks_run_the_function_tasks_inputs_as_whole_programs() -> None:
    problem = "CHOCOLATE_DISTRIBUTION_PROBLEM"
    functions, scripts = transcoder.python_tasks(problem), transcoder.python_script_tasks(problem)
    assert len(scripts) == len(functions) > 3
    for function, script in zip(functions, scripts):
        assert script.id == function.id.replace("/python/", "/python-script/")
        assert (script.group, script.region_kind, script.metric, script.context) == (function.group, "script", "peak_rss", {})
        assert script.run == {"kind": "python_script", "source": script.code}  # what runs is what the model reads
        tree = ast.parse(script.code)
        main = tree.body[-1]
        assert isinstance(main, ast.If) and ast.unparse(main.test) == "__name__ == '__main__'"
        call = main.body[0].value.args[0]  # print(f_gold(...))
        assert ast.unparse(call.func) == "f_gold"
        assert safe_literal(function.context["args"]) == tuple(safe_literal(ast.unparse(arg)) for arg in call.args)
        assert function.code in script.code


@pytest.mark.parametrize("function_text, imports, numpy", [
    ("def f_gold(n):\n    return sqrt(n)\n", "", False),  # upstream's `from math import *` stays
    ("def f_gold(n):\n    return np.zeros(n).sum()\n", "", True),
    ("def f_gold(xs):\n    return array(xs).sum()\n", "from numpy import array\n", True),
])
def test_scripts_import_numpy_only_when_the_problem_uses_it(function_text: str, imports: str, numpy: bool) -> None:
    problem = transcoder.PythonProblem("P", function_text, transcoder.UPSTREAM_PYTHON_HEADER + imports + function_text,
                                       [(1,)])
    script = transcoder.python_script_source(problem, "(10,)")
    assert ("import numpy as np" in script) is numpy
    assert "from math import *" in script and imports in script
    assert script.endswith('if __name__ == "__main__":\n    print(f_gold(10))\n')
    compile(script, "script.py", "exec")


def test_scaling_tiles_sequences_and_follows_lengths() -> None:
    scaled = transcoder.scale_case(([1, 2, 3], 3, 2), 100, "seq")
    assert transcoder.python_args_text(scaled) == "([1, 2, 3] * 100, 300, 299)"
    scaled = transcoder.scale_case(([[1, 2], [3, 4]], 2), 10, "seq")
    assert transcoder.python_args_text(scaled) == "([[1, 2] * 10, [3, 4] * 10] * 10, 20)"
    assert transcoder.python_args_text(transcoder.scale_case((73, -1), 1000, "int")) == "(73000, -1)"


# --- splits ----------------------------------------------------------------------------------------


def test_no_group_on_two_sides(published: dict[str, list[Record]]) -> None:
    records = published["tritonbench"] + published["liger"]
    records += [Record(task.id, task.language, task.region_kind, task.metric, "B", "", {}, 1.0, task.group, task.source)
                for task in synthetic.synthetic_tasks(variants=2)]
    side: dict[str, str] = {}
    for name, part in splits.split_records(records).items():
        for record in part:
            assert side.setdefault(record.group, name) == name, f"group {record.group} is in {side[record.group]} and {name}"
    assert set(side.values()) == {"train", "val", "test"}


def test_problem_variants_and_languages_share_a_group() -> None:
    assert transcoder.problem_group("FIND_SUM_EVEN_FACTORS_NUMBER_1") == transcoder.problem_group("FIND_SUM_EVEN_FACTORS_NUMBER")
    python = transcoder.python_tasks("CHOCOLATE_DISTRIBUTION_PROBLEM")
    cpp = transcoder.program_tasks("cpp", "CHOCOLATE_DISTRIBUTION_PROBLEM")
    assert {task.group for task in python} == {task.group for task in cpp}


@pytest.mark.parametrize(("tritonbench_op", "liger_kernel"), [
    ("G/geglu_tanh_triton", "geglu"),
    ("G/layer_norm_liger", "layer_norm"),
    ("G/kldiv_triton", "kl_div"),
    ("G/rope_transform", "rope"),
])
def test_tritonbench_operator_and_liger_counterpart_share_a_group(tritonbench_op: str, liger_kernel: str) -> None:
    groups = gpu_kernels.kernel_groups()
    assert groups[tritonbench_op] == groups[f"liger-kernel/{liger_kernel}"]


def test_near_duplicate_operators_share_a_group() -> None:
    groups = gpu_kernels.kernel_groups()
    assert groups["G/token_softmax_bloom"] == groups["G/token_softmax_llama"]
    assert groups["liger-kernel/rms_norm"] == groups["liger-kernel/fused_add_rms_norm"]


# --- published GPU records -------------------------------------------------------------------------


def test_tritonbench_and_liger_record_counts(published: dict[str, list[Record]]) -> None:
    assert len(published["tritonbench"]) == 2165  # every G row (146 operators); T is PyTorch, left out
    assert len(published["liger"]) == 2544  # Liger-provider Triton rows with complete code
    counts = {source: {metric: sum(1 for record in records if record.metric == metric)
                       for metric in sorted({record.metric for record in records})}
              for source, records in published.items()}
    check_expected("published_counts", counts)


def test_gpu_contexts_parse_as_the_editor_would(published: dict[str, list[Record]]) -> None:
    for record in published["tritonbench"] + published["liger"]:
        line = "# perfhint: " + " ".join(f"{key}={text}" for key, text in record.context.items())
        context = parse_directive(line)
        assert context is not None and context.texts == record.context, record.id
        assert not [error for error in context.errors if "unknown key" not in error], record.id
    assert all("gpu" in record.context and "shape" in record.context for record in published["tritonbench"])


def test_tritonbench_dtypes_come_from_the_harness() -> None:
    bench = ("    def get_input_tensors(self):\n        dtype = torch.float16\n"
             "        # x = torch.rand(4, dtype=torch.float64)\n        q = torch.empty((4, 4), dtype=dtype)\n"
             "        idx = torch.zeros((4,), dtype=torch.int32)\n\n    def call_op(self):\n        pass\n")
    assert gpu_kernels.input_dtypes(bench) == ["fp16", "int32"]


# --- measuring real TransCoder programs ------------------------------------------------------------


def _two_scales(tasks: list[transcoder.Task], low: int, high: int) -> tuple[transcoder.Task, transcoder.Task]:
    return tasks[low], tasks[high]


@pytest.mark.parametrize(("problem", "low", "high"), [
    ("BELL_NUMBERS_NUMBER_OF_WAYS_TO_PARTITION_A_SET", 0, 1),
    ("CHOCOLATE_DISTRIBUTION_PROBLEM", 4, 7),
])
def test_python_transcoder_function_grows_with_its_input(problem: str, low: int, high: int) -> None:
    small, large = _two_scales(transcoder.python_tasks(problem), low, high)
    with harness.PythonBatch() as batch:
        values = [batch.measure(task.run["source"], task.run["qualname"], task.run["args"]) for task in (small, large)]
    assert [value.status for value in values] == ["ok", "ok"]
    assert values[1].value > 2 * values[0].value > 0


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("gcc") is None, reason="needs gcc and g++")
@pytest.mark.parametrize(("language", "problem", "low", "high"), [
    ("cpp", "COUNT_NUMBER_INCREASING_SUBSEQUENCES_SIZE_K", 0, 9),
    ("c", "CHECK_STRING_FOLLOWS_ANBN_PATTERN_NOT", 0, 10),
])
def test_transcoder_program_grows_with_its_input(language: str, problem: str, low: int, high: int) -> None:
    small, large = _two_scales(transcoder.program_tasks(language, problem), low, high)
    values = [harness.measure_program(task.run["source"], language) for task in (small, large)]
    assert [value.status for value in values] == ["ok", "ok"], [value.detail for value in values]
    assert values[1].value > values[0].value + 4 * 2**20  # megabytes of input, beyond RSS noise


# --- label tables ----------------------------------------------------------------------------------


def test_label_table_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synthetic, "VARIANTS", 1)
    monkeypatch.setattr(labels, "machine", lambda: ("m-test", {"cpu": "test"}))
    tasks = synthetic.synthetic_tasks()
    chosen = tasks[::7]
    outcomes = {task.id: harness.Outcome("ok", float(1000 + index)) for index, task in enumerate(chosen)}
    labels.register_machine(tmp_path)
    for task in chosen:
        labels.append_rows(tmp_path / labels.table_name(task.source, task.language),
                           [build._row(task, outcomes[task.id], "m-test")])
    rebuilt = build.measured_records("synthetic", tmp_path)
    expected = [Record(task.id, task.language, task.region_kind, task.metric, "B", task.code, task.context,
                       outcomes[task.id].value, task.group, task.source,
                       {**task.provenance, "machine": {"cpu": "test"}}, "m-test") for task in chosen]
    assert sorted(rebuilt, key=lambda record: record.id) == sorted(expected, key=lambda record: record.id)
    # Written and read back through JSON lines, nothing changes either.
    out = tmp_path / "data"
    build.write_dataset(rebuilt, out)
    from perfhint_train.datasets.records import read_records
    assert sorted(read_records(out / "records.jsonl"), key=lambda record: record.id) == sorted(rebuilt, key=lambda record: record.id)


def test_label_rows_for_changed_code_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(synthetic, "VARIANTS", 1)
    task = synthetic.synthetic_tasks()[0]
    row = build._row(task, harness.Outcome("ok", 123.0), "m-test")
    row["digest"] = digest(task.code + "\n# edited", task.context)
    labels.append_rows(tmp_path / labels.table_name(task.source, task.language), [row])
    with pytest.raises(build.StaleLabelError, match="Re-label"):
        build.measured_records("synthetic", tmp_path)


def test_resume_skips_labelled_tasks_and_stopped_chains() -> None:
    chain = [replace(task, chain="c") for task in synthetic.synthetic_tasks(variants=1)[:4]]
    ok = {"status": "ok"}
    assert build.pending_chains(chain, {chain[0].id: ok}, None) == [chain[1:]]
    assert build.pending_chains(chain, {chain[0].id: ok, chain[1].id: {"status": "timeout"}}, None) == []
    shards = [build.Shard(index, 3) for index in range(3)]
    assert sum(shard.owns("some/chain") for shard in shards) == 1
