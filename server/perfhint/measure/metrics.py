"""What `perfhint measure` measures: one metric per region kind, defined precisely enough to reproduce.

A hint is only checkable if "peak memory" means one quantity. These are the definitions the
docs quote and the training labels use; change one and every label made under the old one is a
different quantity, so a change needs a new metric name, not an edited definition.

peak_traced_heap (region kind `function`, Python), bytes:
    The tracemalloc peak over ONE call of the function with the stated arguments, in a fresh
    interpreter inside the sandbox. Exactly: the module source is executed as a module named
    `perfhint_measured` (so `if __name__ == "__main__":` blocks do not run); the arguments are
    built from their text (`args=`, `kwargs=`) with perfhint's safe literal evaluator; the function
    is called once to warm up (imports inside it, caches, lazily built tables) and its result
    dropped; the arguments are built afresh (so in-place changes by the warm-up do not carry over);
    `gc.collect()` runs; then `tracemalloc.start()` is called immediately before the measured call
    and `tracemalloc.get_traced_memory()[1]` is read immediately after it returns, with the return
    value still alive. So the value counts every block allocated through Python's allocators
    during the call (objects, list/dict storage, and buffers that extensions register with
    tracemalloc, such as numpy's array data) that was alive at the high-water mark, including the
    returned object; it does not count the arguments, the module's globals, the interpreter, or
    memory obtained with plain malloc/mmap by extensions that do not report to tracemalloc. It is
    deterministic for deterministic code: PYTHONHASHSEED is fixed at 0 and the collector starts
    from an empty young generation.

peak_rss (region kinds `script` (Python) and `program` (C, C++)), bytes:
    The peak resident set size (ru_maxrss from wait4, KiB on Linux, times 1024) of the process
    running the script or program, and of any children it waited for (their maximum, not their
    sum). The process is forked from perfhint's ~1 MB C launcher, not from Python, because
    ru_maxrss survives exec: a program forked from Python would report Python's ~14 MB at least.
    Address-space randomisation is off for the measured process, so the same binary touches the
    same pages run after run. Scripts run as `__main__` with the interpreter perfhint runs under
    (`python FILE`); C and C++ are compiled in the sandbox with the settings in COMPILE_SETTINGS,
    dynamically linked, and run with empty stdin and an 8 MiB stack limit (the common default, fixed
    so that a label does not depend on the caller's `ulimit -s`). Thread pools that size themselves to
    the machine (OpenMP, OpenBLAS, MKL) are pinned to one thread, so the value does not depend on
    core count.

median_latency (region kind `triton_kernel`), milliseconds:
    The median of `triton.testing.do_bench(launch, return_mode="median")` on a CUDA GPU, where
    `launch` calls the region's launcher function (the Python function that launches the kernel)
    with one tensor per stated shape (`shape=(4096, 4096)`, or `shape=[(M, K), (K, N)]`, random
    normal values, in the stated dtype, default fp32, on the GPU), followed by any literal `args=`.
    So it includes the launcher's own Python and allocation overhead, as the region's code does.
    Measured only where a CUDA GPU and triton exist; the GPU that ran it is recorded.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str  # "B" or "ms"
    region_kinds: tuple[str, ...]
    summary: str  # one line; the module docstring has the full definition


PEAK_TRACED_HEAP = Metric(
    "peak_traced_heap", "B", ("function",),
    "tracemalloc peak during one call with the stated arguments, after one warm-up call; arguments not counted")
PEAK_RSS = Metric(
    "peak_rss", "B", ("script", "program"),
    "peak resident set size (wait4 ru_maxrss) of the process, forked from a ~1 MB launcher, ASLR off")
MEDIAN_LATENCY = Metric(
    "median_latency", "ms", ("triton_kernel",),
    "median of triton.testing.do_bench over the launcher at the stated shape and dtype, on the GPU recorded")

METRICS: dict[str, Metric] = {kind: metric for metric in (PEAK_TRACED_HEAP, PEAK_RSS, MEDIAN_LATENCY)
                              for kind in metric.region_kinds}


@dataclass(frozen=True)
class CompileSettings:
    compiler: str  # looked up on PATH; its `--version` first line goes into measured_on
    flags: tuple[str, ...]
    libraries: tuple[str, ...]  # after the source file, where the linker wants them
    suffix: str
    install_hint: str  # the Debian package that provides the compiler


# gnu17 / gnu++17 are GCC 12's defaults, pinned so a compiler upgrade (GCC 15 defaults to gnu23)
# does not silently change the language and therefore the labels. -w because warnings are noise here;
# -lm because C code uses <math.h> without saying so, and C++ links libm through libstdc++ anyway.
COMPILE_SETTINGS: dict[str, CompileSettings] = {
    "c": CompileSettings("gcc", ("-O2", "-std=gnu17", "-w"), ("-lm",), ".c", "gcc"),
    "cpp": CompileSettings("g++", ("-O2", "-std=gnu++17", "-w"), (), ".cpp", "g++"),
}


class Status(str, enum.Enum):
    """How a measurement ended; every status but OK comes with a one-line message naming the cause."""

    OK = "ok"
    TIMEOUT = "timeout"  # wall-clock or CPU-time limit
    MEMORY_LIMIT = "memory_limit"  # address-space limit (MemoryError, std::bad_alloc, malloc failed)
    PROCESS_LIMIT = "process_limit"  # fork/thread limit (a fork bomb, or a too-small --processes)
    OUTPUT_LIMIT = "output_limit"  # file-size limit on what the code writes
    CRASHED = "crashed"  # nonzero exit, uncaught exception, or a fatal signal
    COMPILE_ERROR = "compile_error"
    SANDBOX_VIOLATION = "sandbox_violation"  # tried the network or a write outside its directory
    BAD_INPUT = "bad_input"  # arguments missing or not a literal, region not found
    UNAVAILABLE = "unavailable"  # this machine cannot measure this kind (no GPU, no compiler)
    SANDBOX_ERROR = "sandbox_error"  # the sandbox itself could not be set up


@dataclass(frozen=True)
class Measurement:
    metric: str
    unit: str
    value: int | float | None  # None unless status is OK
    status: Status
    message: str  # one line for a person: "ok" or what went wrong and what to do
    measured_on: dict[str, str]  # cpu, os, kernel, python / compiler / gpu as they apply
    wall_time_s: float  # of the measured call or process run, not of the whole sandbox round trip
    warnings: tuple[str, ...] = ()  # sandbox mechanisms this machine could not provide, and similar
    details: dict[str, object] = field(default_factory=dict)  # exit code, stderr tail, cpu time...

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_dict(self) -> dict[str, object]:
        record = asdict(self)
        record["status"] = self.status.value
        record["warnings"] = list(self.warnings)
        return record


def failed(metric: Metric, status: Status, message: str, measured_on: dict[str, str], *,
           wall_time_s: float = 0.0, warnings: tuple[str, ...] = (),
           details: dict[str, object] | None = None) -> Measurement:
    """A measurement without a value. The message is kept to one line; a longer text goes to details."""
    details = dict(details or {})
    lines = message.strip().splitlines() or [status.value]
    if len(lines) > 1:
        details["full_message"] = message
    return Measurement(metric.name, metric.unit, None, status, lines[0], measured_on, wall_time_s, warnings, details)
