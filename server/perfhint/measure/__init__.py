"""Ground truth: run code in a sandbox and measure for real the quantity a hint predicts.

Users check a hint with `perfhint measure FILE[::REGION]`, and the training labels are made the
same way, so "the same quantity" is the whole point: metrics.py defines each metric precisely
(tracemalloc peak of one call for a Python function, peak RSS for a script or C/C++ program,
median do_bench latency for a Triton launcher), and every entry point here implements exactly that
definition. What is hard:

- **Running code we did not write.** Nothing runs outside sandbox.py: a copy in a fresh
  directory, a fresh unprivileged uid, rlimits, a pids cgroup, no network, a private /tmp, and a
  wall clock that kills the whole process group. Compiling counts as running.
- **Measuring without disturbing.** Peak RSS is inherited across exec, so processes are forked from
  a ~1 MB C launcher (launcher.c, built on first use), not from Python; tracemalloc starts after
  the arguments exist (harness.py).
- **No torch here.** The GPU path imports torch only inside the sandboxed child, on machines that
  have a CUDA device; elsewhere it answers with one line.

Entry points: measure_python_function, measure_python_script, measure_program, measure_triton;
each returns a Measurement and never raises for a problem in the measured code.
"""

from perfhint.measure.functions import measure_python_function
from perfhint.measure.kernels import NO_GPU_MESSAGE, gpu_available, measure_triton
from perfhint.measure.metrics import (
    COMPILE_SETTINGS,
    MEDIAN_LATENCY,
    METRICS,
    PEAK_RSS,
    PEAK_TRACED_HEAP,
    Measurement,
    Metric,
    Status,
)
from perfhint.measure.processes import measure_program, measure_python_script
from perfhint.measure.sandbox import Limits

__all__ = [
    "COMPILE_SETTINGS", "MEDIAN_LATENCY", "METRICS", "NO_GPU_MESSAGE", "PEAK_RSS", "PEAK_TRACED_HEAP", "Limits",
    "Measurement", "Metric", "Status", "gpu_available", "measure_program", "measure_python_function",
    "measure_python_script", "measure_triton",
]
