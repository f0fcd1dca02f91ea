"""Measure a Python function's peak traced heap: one call, in a fresh interpreter, in the sandbox.

What is hard lives in harness.py (what exactly the traced window is) and sandbox.py (running it
safely). Here we only assemble the run: copy the module source and the harness in, describe the
call in a JSON spec, run the same interpreter perfhint runs under, and turn the harness's answer,
or the sandbox's account of why there is none (killed at the timeout, over the process limit),
into a Measurement. The arguments are sent as text, never as values: they are built inside the
sandbox, because building `[0]*10**9` is itself something that needs a memory limit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from perfhint.measure import machine
from perfhint.measure.launcher import LauncherError
from perfhint.measure.metrics import PEAK_TRACED_HEAP, Measurement, Status, failed
from perfhint.measure.sandbox import Limits, Sandbox, classify, python_paths

HARNESS_SOURCE = Path(__file__).with_name("harness.py")
HARNESS_NAME = "perfhint_harness.py"
MODULE_FILE = "perfhint_measured.py"
MODULE_NAME = "perfhint_measured"  # __name__ of the measured module, so `__main__` guards do not run
SPEC_NAME = "spec.json"
RESULT_NAME = "result.json"


def measure_python_function(source: str, qualname: str, args_text: str, kwargs_text: str | None = None, *,
                            limits: Limits = Limits()) -> Measurement:
    """peak_traced_heap of `qualname(*args, **kwargs)` defined in `source`; see metrics.py."""
    measured_on = machine.machine(python=machine.python_version())
    try:
        sandbox = Sandbox()
    except LauncherError as error:
        return failed(PEAK_TRACED_HEAP, Status.UNAVAILABLE, str(error), measured_on)
    with sandbox:
        sandbox.copy_in(MODULE_FILE, source)
        sandbox.copy_in(HARNESS_NAME, HARNESS_SOURCE.read_text(encoding="utf-8"))
        spec = {"module_name": MODULE_NAME, "module_path": str(sandbox.workdir / MODULE_FILE), "qualname": qualname,
                "args_text": args_text, "kwargs_text": kwargs_text,
                "result_path": str(sandbox.workdir / RESULT_NAME)}
        sandbox.copy_in(SPEC_NAME, json.dumps(spec))
        run = sandbox.run([sys.executable, HARNESS_NAME, SPEC_NAME], limits, readable=python_paths())
        result_text = sandbox.read_result(RESULT_NAME)
        mechanisms = dict(sandbox.mechanisms)
    details: dict[str, object] = {**run.details(), "sandbox": mechanisms}
    try:
        result = json.loads(result_text) if result_text else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict) or run.timed_out or run.process_limit_hit:
        status, message = classify(run)
        if status is Status.OK:  # exited 0 without a result: the module called os._exit, or deleted it
            status, message = Status.CRASHED, "the measured code ended the interpreter before the call returned"
        return failed(PEAK_TRACED_HEAP, status, message, measured_on, wall_time_s=run.wall_s,
                      warnings=run.warnings, details=details)
    details["evaluator"] = result.get("evaluator")
    if result.get("status") == "ok":
        return Measurement(PEAK_TRACED_HEAP.name, PEAK_TRACED_HEAP.unit, int(result["peak_bytes"]), Status.OK, "ok",
                           measured_on, float(result["call_s"]), run.warnings, details)
    status = Status(result.get("status", "crashed"))
    message = str(result.get("message", ""))
    if status is Status.CRASHED:
        # The exception may be the sandbox saying no (PermissionError, no network): classify says which.
        refined, refined_message = classify(run)
        if refined in (Status.SANDBOX_VIOLATION, Status.PROCESS_LIMIT):
            status, message = refined, refined_message
        else:
            message = f"{result.get('stage', 'the call')} raised {message}"
    elif status is Status.MEMORY_LIMIT:
        message = (f"MemoryError during {result.get('stage', 'the call')} under the "
                   f"{(limits.memory_bytes or 0) // 2**20} MiB address-space limit (raise it with --memory-limit)")
    return failed(PEAK_TRACED_HEAP, status, message, measured_on, wall_time_s=run.wall_s, warnings=run.warnings,
                  details=details)
