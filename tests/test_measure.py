"""`perfhint measure` agrees with independent measurements of the same quantity.

Each file in tests/data/measure/ is measured through the real CLI (`perfhint measure FILE --json`,
so regions, context texts, the sandbox and the launcher are all on the path) and again by a tool
that shares no code with perfhint:

- peak RSS (C, C++, Python scripts): GNU time's `%M` (Debian package `time`), run as root outside
  the sandbox, under `setarch -R` because the metric is defined with ASLR off; within 5%.
- peak traced heap (Python functions): a fresh `python -c` that loads the file, calls the function
  once, then calls it again under tracemalloc, written out by hand; exactly equal.

Plus reproducibility: the same measurement twice gives the same tracemalloc peak and a peak RSS
within 3%, and the launcher fix: a trivial C program reads about 1 MB, not Python's ~14 MB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from perfhint import cli
from perfhint.measure import (
    COMPILE_SETTINGS,
    NO_GPU_MESSAGE,
    Limits,
    Status,
    gpu_available,
    measure_program,
    measure_python_function,
    measure_python_script,
    measure_triton,
)

REPO = Path(__file__).resolve().parents[1]

DATA = Path(__file__).parent / "data" / "measure"
GNU_TIME = "/usr/bin/time"
RSS_TOLERANCE = 0.05
REPEAT_TOLERANCE = 0.03

PROGRAMS = ["c_small.c", "c_malloc_100mb.c", "c_linked_list.c", "c_calloc_partial.c",
            "cpp_iostream.cpp", "cpp_vector.cpp", "cpp_map.cpp", "cpp_string.cpp"]
SCRIPTS = ["py_script_hello.py", "py_script_bytes_100mb.py", "py_script_dict.py", "py_script_numpy.py"]
FUNCTIONS = ["fn_squares.py", "fn_bytes_100mb.py", "fn_word_counts.py", "fn_numpy_grid.py", "fn_sort_in_place.py"]

needs_gnu_time = pytest.mark.skipif(
    not os.access(GNU_TIME, os.X_OK) or shutil.which("setarch") is None,
    reason="needs GNU time at /usr/bin/time (Debian package `time`) and setarch (util-linux) as the "
           "independent peak-RSS reference; CI installs `time`")

# The environment the sandbox gives measured code (sandbox._environment), written out again here.
REFERENCE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                 "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
                 "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ----------------------------------------------------------------------------------------------
# perfhint's side: the CLI, as a user runs it


def perfhint_records(path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    code = cli.main(["measure", str(path), "--json", "--timeout", "60"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert code == 0, [record["provenance"]["message"] for record in records]
    return records


def perfhint_value(path: Path, capsys: pytest.CaptureFixture[str]) -> int:
    (record,) = perfhint_records(path, capsys)
    assert record["provenance"]["status"] == "ok", record["provenance"]
    return record["value"]


# ----------------------------------------------------------------------------------------------
# The independent side


def gnu_time_peak_rss(argv: list[str], cwd: Path) -> int:
    completed = subprocess.run(["setarch", "-R", GNU_TIME, "-f", "%M", *argv], cwd=cwd, env=REFERENCE_ENV,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=True)
    return int(completed.stderr.strip().splitlines()[-1]) * 1024


def reference_peak_rss(name: str, workdir: Path) -> int:
    source = DATA / name
    if source.suffix == ".py":
        shutil.copy(source, workdir / name)
        return gnu_time_peak_rss([sys.executable, name], workdir)
    settings = COMPILE_SETTINGS["c" if source.suffix == ".c" else "cpp"]
    shutil.copy(source, workdir / name)
    subprocess.run([settings.compiler, *settings.flags, "-o", "program", name, *settings.libraries],
                   cwd=workdir, check=True, timeout=120)
    return gnu_time_peak_rss(["./program"], workdir)


REFERENCE_HEAP = """
import gc, importlib.util, sys, tracemalloc
spec = importlib.util.spec_from_file_location("reference_module", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
function = getattr(module, sys.argv[2])
args, kwargs = eval(sys.argv[3]), eval(sys.argv[4])
function(*args, **kwargs)
args, kwargs = eval(sys.argv[3]), eval(sys.argv[4])
result = None
gc.collect()
tracemalloc.start()
result = function(*args, **kwargs) if kwargs else function(*args)
print(tracemalloc.get_traced_memory()[1])
"""


def reference_peak_heap(name: str, record: dict) -> int:
    # Our own test files and argument texts, so plain eval is fine here (and independent of safe_literal).
    function_name = record["provenance"]["region"].split(":", 1)[1]
    context = record["context"]
    completed = subprocess.run(
        [sys.executable, "-c", REFERENCE_HEAP, str(DATA / name), function_name, context["args"],
         context.get("kwargs", "{}")], env=REFERENCE_ENV, capture_output=True, text=True, timeout=120, check=True)
    return int(completed.stdout.strip().splitlines()[-1])


def relative_difference(measured: float, reference: float) -> float:
    return abs(measured - reference) / reference


# ----------------------------------------------------------------------------------------------
# Agreement


def check_rss(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    measured = perfhint_value(DATA / name, capsys)
    reference = reference_peak_rss(name, tmp_path)
    assert relative_difference(measured, reference) <= RSS_TOLERANCE, (name, measured, reference)


@needs_gnu_time
@pytest.mark.parametrize("name", PROGRAMS)
def test_program_peak_rss_agrees_with_gnu_time(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_rss(name, tmp_path, capsys)


@needs_gnu_time
@pytest.mark.parametrize("name", SCRIPTS)
def test_script_peak_rss_agrees_with_gnu_time(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_rss(name, tmp_path, capsys)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_peak_heap_equals_direct_tracemalloc(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    (record,) = perfhint_records(DATA / name, capsys)
    assert record["value"] == reference_peak_heap(name, record)


def test_dataset_record_has_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    (record,) = perfhint_records(DATA / "fn_word_counts.py", capsys)
    assert sorted(record) == sorted(["id", "language", "region_kind", "metric", "unit", "code", "context", "value",
                                     "group", "source", "provenance", "measured_on"])
    assert (record["language"], record["region_kind"], record["metric"], record["unit"]) == (
        "python", "function", "peak_traced_heap", "B")
    assert record["context"] == {"args": '(["alpha", "beta", "gamma"] * 1000,)', "kwargs": "{'repeat': 3}"}
    assert (record["group"], record["source"]) == ("fn_word_counts", "user")
    assert record["provenance"]["region"] == "function:word_counts"
    assert {"file", "perfhint_version", "timestamp"} <= set(record["provenance"])
    assert {"cpu", "kernel", "python"} <= set(record["measured_on"])


# ----------------------------------------------------------------------------------------------
# Reproducibility and the launcher


def test_tracemalloc_peak_is_identical_twice() -> None:
    source = (DATA / "fn_word_counts.py").read_text()
    first = measure_python_function(source, "word_counts", '(["alpha", "beta", "gamma"] * 1000,)', "{'repeat': 3}")
    second = measure_python_function(source, "word_counts", '(["alpha", "beta", "gamma"] * 1000,)', "{'repeat': 3}")
    assert first.ok and second.ok
    assert first.value == second.value


@pytest.mark.parametrize(("name", "measure"), [
    ("c_linked_list.c", lambda source: measure_program(source, "c")),
    ("cpp_map.cpp", lambda source: measure_program(source, "cpp")),
    ("py_script_dict.py", measure_python_script),
])
def test_peak_rss_repeats_within_3_percent(name: str, measure) -> None:  # type: ignore[no-untyped-def]
    source = (DATA / name).read_text()
    first, second = measure(source), measure(source)
    assert first.ok and second.ok
    assert relative_difference(first.value, second.value) <= REPEAT_TOLERANCE, (first.value, second.value)


def test_trivial_c_program_reads_its_own_footprint_not_pythons() -> None:
    # Forked from Python, every C program would inherit ~14 MB of ru_maxrss across exec.
    measurement = measure_program("int main(void) { return 0; }\n", "c")
    assert measurement.ok
    assert measurement.value < 3 * 2**20
    assert measurement.measured_on["compiler"].startswith(("gcc", "cc"))


def test_compile_error_is_reported_with_the_compiler_line() -> None:
    measurement = measure_program("int main(void) { return undeclared; }\n", "c")
    assert measurement.status is Status.COMPILE_ERROR
    assert "undeclared" in measurement.message and measurement.value is None


# ----------------------------------------------------------------------------------------------
# Functions: what the harness refuses, and the CLI's lines


def check_function(source: str, qualname: str, args_text: str, expected: Status, message_part: str) -> None:
    measurement = measure_python_function(source, qualname, args_text)
    assert measurement.status is expected, measurement.message
    assert message_part in measurement.message


def test_main_guard_does_not_run() -> None:
    check_function("def f():\n    return 1\nif __name__ == '__main__':\n    raise SystemExit(3)\n", "f", "()",
                   Status.OK, "ok")


def test_arguments_must_be_literals() -> None:
    check_function("def f(x):\n    return x\n", "f", "(open('/etc/passwd'),)", Status.BAD_INPUT, "not allowed")


def test_method_needs_an_instance() -> None:
    check_function("class A:\n    def f(self):\n        return 1\n", "A.f", "()", Status.BAD_INPUT, "needs an instance")


def test_exception_in_the_call_is_a_crash() -> None:
    check_function("def f():\n    return 1 / 0\n", "f", "()", Status.CRASHED, "ZeroDivisionError")


def test_large_literal_arguments_are_built_inside_the_sandbox() -> None:
    # [0]*10**7 is over the editor's item cap in perfhint.context, but the sandbox's memory limit is the cap here.
    measurement = measure_python_function("def f(values):\n    return list(values)\n", "f", "([0] * 10**7,)",
                                          limits=Limits(timeout_s=30))
    assert measurement.ok, measurement.message
    assert measurement.value >= 8 * 10**7


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(["measure", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_function_without_arguments_names_the_directive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "unknown.py"
    path.write_text("def f(n):\n    return [0] * n\n")
    code, out, _ = run_cli([str(path)], capsys)
    assert code == 1
    assert "add `# perfhint: args=(...)` above it" in out


def test_region_selected_by_name_or_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.py"
    path.write_text("# perfhint: args=(10,)\ndef a(n):\n    return [0] * n\n\n"
                    "# perfhint: args=(20,)\ndef b(n):\n    return [0] * n\n")
    code, out, _ = run_cli([f"{path}::b"], capsys)
    assert code == 0
    lines = out.splitlines()
    # [0] * n on CPython 3.11: the 64-byte list [0] and the 56 + 8n byte result are alive together.
    assert lines[0].split() == ["region", "kind", "metric", "value", "status"]
    assert lines[1].split() == ["function:b", "function", "peak_traced_heap", "280", "B", "ok"]
    assert len(lines) == 2
    code, out, _ = run_cli([f"{path}::function:a", "--json"], capsys)
    assert code == 0 and json.loads(out)["value"] == 200
    code, _, err = run_cli([f"{path}::c"], capsys)
    assert code == 2 and "no region 'c'" in err and "function:a, function:b" in err


def test_table_units() -> None:
    from perfhint.measure.cli import format_value

    assert [format_value(value, "B") for value in (512, 2048, 3 * 2**20, 5 * 2**30)] == [
        "512 B", "2.0 KiB", "3.0 MiB", "5.0 GiB"]
    assert [format_value(value, "ms") for value in (0.0123, 2.5)] == ["12.3 µs", "2.500 ms"]
    assert format_value(None, "B") == "-"


# ----------------------------------------------------------------------------------------------
# Triton: the GPU path, and the one line everywhere else

TRITON_SOURCE = '''
import torch
import triton
import triton.language as tl


@triton.jit
def add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.load(x_ptr + offsets, mask=mask) + tl.load(y_ptr + offsets, mask=mask), mask=mask)


# perfhint: shape=[(1048576,), (1048576,)] dtype=fp16
def add(x, y):
    out = torch.empty_like(x)
    add_kernel[(triton.cdiv(x.numel(), 1024),)](x, y, out, x.numel(), BLOCK=1024)
    return out
'''


@pytest.mark.skipif(gpu_available(), reason="this machine has a CUDA GPU; the GPU test covers it")
def test_triton_without_gpu_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    measurement = measure_triton(TRITON_SOURCE, "add", shape_text="[(1048576,), (1048576,)]", dtype="fp16")
    assert (measurement.status, measurement.message) == (Status.UNAVAILABLE, NO_GPU_MESSAGE)
    path = tmp_path / "kernel.py"
    path.write_text(TRITON_SOURCE)
    code, out, _ = run_cli([str(path)], capsys)
    assert code == 1
    assert out.splitlines()[1].split()[:4] == ["triton_kernel:add", "triton_kernel", "median_latency", "-"]
    assert out.splitlines()[1].endswith(f"unavailable: {NO_GPU_MESSAGE}")


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU with torch and triton")
def test_triton_latency_on_gpu() -> None:
    measurement = measure_triton(TRITON_SOURCE, "add", shape_text="[(1048576,), (1048576,)]", dtype="fp16",
                                 limits=Limits(timeout_s=300))
    assert measurement.ok, measurement.message
    assert 0 < measurement.value < 100
    assert measurement.unit == "ms" and measurement.measured_on["gpu"]


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU with torch and triton")
def test_one_shape_for_a_two_tensor_launcher_is_bad_input_naming_the_fix() -> None:
    measurement = measure_triton(TRITON_SOURCE, "add", shape_text="(1048576,)", dtype="fp16",
                                 limits=Limits(timeout_s=300))
    assert measurement.status is Status.BAD_INPUT, measurement.message
    assert "1 tensor(s)" in measurement.message and "one shape per tensor argument" in measurement.message


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU with torch and triton")
def test_the_example_kernel_measures_on_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli([str(REPO / "examples" / "triton" / "scaled_add.py")], capsys)
    assert code == 0, out
    row = out.splitlines()[1].split()
    assert row[:3] == ["triton_kernel:scaled_add", "triton_kernel", "median_latency"] and row[-1] == "ok", out
