"""Measure a Triton kernel's latency (median_latency): a thin path that only a CUDA machine can take.

What is hard is not here but in what we refuse to do: perfhint's runtime never imports torch, so
whether this machine can measure is decided from outside (is triton installed, is torch, is there
an NVIDIA device node), and the benchmark runs in the sandbox as `kernel_harness.py`, which imports
torch and triton there. CUDA reserves terabytes of address space, so a GPU run gets no RLIMIT_AS;
the wall clock, CPU time and process limits still apply. None of the GPU path can run on our CPU
machines: its tests are marked `gpu` (run on a lent H100: the example kernel measures 39.7 µs in the
sandbox three times out of three, against 39.2-40.0 µs from do_bench in a plain process), and the CPU
test checks the one-line refusal.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import json
import sys
from pathlib import Path

from perfhint.measure import machine
from perfhint.measure.launcher import LauncherError
from perfhint.measure.metrics import MEDIAN_LATENCY, Measurement, Status, failed
from perfhint.measure.sandbox import Limits, Sandbox, classify, python_paths

NO_GPU_MESSAGE = "measuring triton_kernel needs a CUDA GPU with triton; this machine has none"
HARNESS_SOURCE = Path(__file__).with_name("kernel_harness.py")
HARNESS_NAME = "perfhint_kernel_harness.py"
MODULE_FILE = "perfhint_measured.py"
RESULT_NAME = "result.json"
GPU_PROCESSES = 512  # triton's compiler and CUDA start many threads
# CUDA does not start in a wholly read-only mount namespace: on an H100 machine cuInit failed with
# error 304 ("OS call failed") until /proc was bound back writable (/dev, /sys, /run and /var were
# not enough; sandbox.py's docstring says how that was found). A fresh uid owns nothing in /proc but
# its own process's entries.
GPU_WRITABLE_MOUNTS: tuple[str, ...] = ("/proc",)


def gpu_available() -> bool:
    """A CUDA device node, torch and triton: decided without importing torch or triton."""
    has_device = bool(glob.glob("/dev/nvidia[0-9]*"))
    return has_device and all(importlib.util.find_spec(name) is not None for name in ("torch", "triton"))


def measure_triton(source: str, launcher_qualname: str, *, shape_text: str | None, dtype: str | None = None,
                   args_text: str | None = None, kwargs_text: str | None = None, gpu: str | None = None,
                   limits: Limits = Limits()) -> Measurement:
    """median_latency of calling the launcher with tensors of the stated shape(s) and dtype; see metrics.py."""
    measured_on = machine.machine(python=machine.python_version())
    if not gpu_available():
        return failed(MEDIAN_LATENCY, Status.UNAVAILABLE, NO_GPU_MESSAGE, measured_on)
    try:
        sandbox = Sandbox()
    except LauncherError as error:
        return failed(MEDIAN_LATENCY, Status.UNAVAILABLE, str(error), measured_on)
    gpu_limits = dataclasses.replace(limits, memory_bytes=None, n_processes=max(limits.n_processes, GPU_PROCESSES))
    device_nodes = sorted(glob.glob("/dev/nvidia*"))
    with sandbox:
        sandbox.copy_in(MODULE_FILE, source)
        sandbox.copy_in(HARNESS_NAME, HARNESS_SOURCE.read_text(encoding="utf-8"))
        spec = {"module_path": str(sandbox.workdir / MODULE_FILE), "qualname": launcher_qualname,
                "shape_text": shape_text, "dtype": dtype, "args_text": args_text, "kwargs_text": kwargs_text,
                "result_path": str(sandbox.workdir / RESULT_NAME)}
        sandbox.copy_in("spec.json", json.dumps(spec))
        run = sandbox.run([sys.executable, HARNESS_NAME, "spec.json"], gpu_limits,
                          readable=[*python_paths(), *device_nodes], writable_mounts=GPU_WRITABLE_MOUNTS)
        result_text = sandbox.read_result(RESULT_NAME)
        details: dict[str, object] = {**run.details(), "sandbox": dict(sandbox.mechanisms)}  # as functions.py
    try:
        result = json.loads(result_text) if result_text else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        status, message = classify(run)
        if status is Status.OK:
            status, message = Status.CRASHED, "the kernel harness ended without a result"
        return failed(MEDIAN_LATENCY, status, message, measured_on, wall_time_s=run.wall_s, warnings=run.warnings,
                      details=details)
    measured_on["gpu"] = str(result.get("gpu", ""))
    warnings = list(run.warnings)
    if gpu and result.get("gpu") and gpu.lower() not in str(result["gpu"]).lower():
        warnings.append(f"the hint is for gpu={gpu} but this machine has {result['gpu']}")
    if result.get("status") != "ok":
        return failed(MEDIAN_LATENCY, Status(result.get("status", "crashed")), str(result.get("message", "")),
                      measured_on, wall_time_s=run.wall_s, warnings=tuple(warnings), details=details)
    return Measurement(MEDIAN_LATENCY.name, MEDIAN_LATENCY.unit, float(result["median_ms"]), Status.OK, "ok",
                       measured_on, run.wall_s, tuple(warnings), details)
