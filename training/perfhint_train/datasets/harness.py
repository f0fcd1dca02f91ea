"""Batch measuring for labelling, on top of perfhint.measure: the labels are its metrics, exactly.

What is hard:

- Same quantity as `perfhint measure`. Scripts and C/C++ programs go through
  perfhint.measure.measure_python_script / measure_program unchanged (sandbox, ~1 MB launcher so
  Python's pages are not in ru_maxrss, ASLR off, COMPILE_SETTINGS), one process per variant: peak
  RSS is a property of the process. Python functions are the exception for throughput: a
  tracemalloc peak does not depend on the process, so one long-lived child measures many calls,
  and each call goes through perfhint.measure.harness's own `_measure` (warm-up call, arguments
  rebuilt, gc.collect(), trace exactly the call, result alive at the reading) and its evaluator.
  What the batch child does not reproduce is the sandbox around it (fresh uid, namespaces): it runs
  with an address-space limit only, which is acceptable for the code it is given (TransCoder and
  our generator), never for user code.
- A child can hang, crash, or be killed by its memory limit. The parent reads one JSON line per
  request with a deadline; on timeout or EOF it kills the child, reports the task as failed and
  starts a new child for the next task. SIGPROF interrupts a slow pure-Python call, so the child
  usually survives a timeout.
- Time limits count CPU seconds, not wall seconds (ITIMER_PROF in the child; RLIMIT_CPU through
  perfhint.measure.Limits(cpu_s=...) for processes, with a generous wall clock): labelling shares
  two cores with other work, and a wall-clock limit would stop chains earlier whenever the machine
  is busy, making the dataset depend on the load. `Outcome.seconds` is CPU time.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from perfhint_train.datasets.records import REPO_ROOT

PYTHON_TIMEOUT_S = 3.0  # CPU seconds for one f_gold call (the warm-up call is not counted); a chain stops at a timeout
PROGRAM_TIMEOUT_S = 5.0  # CPU seconds for one script or program run
WALL_BACKSTOP_FACTOR = 4.0  # wall-clock deadline = this x the CPU limit + 10 s
MEMORY_LIMIT_BYTES = 2 * 1024**3  # address space per measured process


@dataclass(frozen=True)
class Outcome:
    status: str  # a perfhint.measure.Status value (ok, timeout, memory_limit, crashed, compile_error, ...) or stopped
    value: float | None = None  # bytes
    detail: str = ""
    seconds: float = 0.0


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO_ROOT / "training"), str(REPO_ROOT / "server")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env["PYTHONPATH"]] if env.get("PYTHONPATH") else paths)
    env["PYTHONHASHSEED"] = "0"  # set/dict layouts, hence peaks, repeat exactly
    env["OMP_NUM_THREADS"] = "1"
    env["OPENBLAS_NUM_THREADS"] = "1"
    return env


class PythonBatch:
    """A long-lived child measuring tracemalloc peaks of function calls, one JSON line per request."""

    def __init__(self, timeout_s: float = PYTHON_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> "PythonBatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> subprocess.Popen[str]:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "perfhint_train.datasets.harness"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_child_env(),
                preexec_fn=_limit_memory, cwd=tempfile.gettempdir())
        return self.process

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self.process = None

    def measure(self, source: str, qualname: str, args_text: str) -> Outcome:
        process = self._start()
        assert process.stdin is not None and process.stdout is not None
        request = {"source": source, "qualname": qualname, "args": args_text, "timeout": self.timeout_s}
        started = time.monotonic()
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except BrokenPipeError:
            self.close()
            return Outcome("crashed", detail="child died before the request")
        ready, _, _ = select.select([process.stdout], [], [], 2 * WALL_BACKSTOP_FACTOR * self.timeout_s + 10.0)
        line = process.stdout.readline() if ready else ""
        elapsed = time.monotonic() - started
        if not line:
            code = process.poll()
            self.close()
            if code is None or not ready:
                return Outcome("timeout", detail="child unresponsive", seconds=elapsed)
            return Outcome("memory_limit" if code in (-signal.SIGKILL, -signal.SIGSEGV) else "crashed",
                           detail=f"child exited with {code}", seconds=elapsed)
        reply = json.loads(line)
        return Outcome(reply["status"], reply.get("value"), reply.get("detail", ""), reply.get("cpu", elapsed))


def _child_main() -> None:
    """The measuring child: read requests on stdin, answer on the original stdout."""
    import gc
    import types

    from perfhint.measure.harness import _evaluator, _measure  # the metric's own traced window

    evaluate, _ = _evaluator()

    answers = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # measured code that prints must not corrupt the protocol
    sys.stdout = open(os.devnull, "w")
    import numpy  # noqa: F401  # the upstream header imports it: pay once, outside any trace

    class Timeout(BaseException):
        pass

    def on_alarm(signum: int, frame: object) -> None:
        raise Timeout()

    signal.signal(signal.SIGPROF, on_alarm)
    recursion_limit = sys.getrecursionlimit()
    for line in sys.stdin:
        request = json.loads(line)
        reply: dict[str, object]
        try:
            module = types.ModuleType("perfhint_measured")  # as perfhint.measure.harness runs a module
            sys.modules["perfhint_measured"] = module
            exec(compile(request["source"], "perfhint_measured.py", "exec"), module.__dict__)
            function: object = module
            for part in request["qualname"].split("."):
                function = getattr(function, part)

            def make_arguments(text: str = request["args"]) -> tuple[tuple, dict]:
                args = evaluate(text)
                return (args if isinstance(args, tuple) else (args,)), {}

            make_arguments()  # bad input is an error before anything runs
            cpu_started = time.process_time()
            # Two calls run (warm-up, measured): the CPU budget is for both, the reported time per call.
            signal.setitimer(signal.ITIMER_PROF, 2 * float(request["timeout"]))
            try:
                peak, _ = _measure(function, make_arguments)
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
            reply = {"status": "ok", "value": peak, "cpu": (time.process_time() - cpu_started) / 2}
        except Timeout:
            reply = {"status": "timeout"}
        except MemoryError:
            reply = {"status": "memory_limit"}
        except Exception as error:  # noqa: BLE001 - any failure of measured code is a label, not a crash
            reply = {"status": "crashed", "detail": f"{type(error).__name__}: {str(error)[:200]}"}
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            sys.setrecursionlimit(recursion_limit)
        answers.write(json.dumps(reply) + "\n")
        module = None
        sys.modules.pop("perfhint_measured", None)
        gc.collect()


# ---------------------------------------------------------------------------------------------
# Programs


def _process_limits(timeout_s: float):  # type: ignore[no-untyped-def]
    from perfhint.measure import Limits

    return Limits(timeout_s=WALL_BACKSTOP_FACTOR * timeout_s + 10.0, memory_bytes=MEMORY_LIMIT_BYTES,
                  cpu_s=max(1, int(round(timeout_s))))


def _outcome(measurement) -> Outcome:  # type: ignore[no-untyped-def]
    cpu = float(measurement.details.get("cpu_s") or measurement.wall_time_s or 0.0)
    if measurement.ok:
        return Outcome("ok", float(measurement.value), seconds=cpu)
    return Outcome(measurement.status.value, detail=measurement.message[:200], seconds=cpu)


def measure_program(source: str, language: str, timeout_s: float = PROGRAM_TIMEOUT_S) -> Outcome:
    """peak_rss of a C/C++ program: perfhint.measure.measure_program with CPU-time limits."""
    from perfhint.measure import measure_program as measure

    return _outcome(measure(source, language, limits=_process_limits(timeout_s)))


def measure_script(source: str, timeout_s: float = PROGRAM_TIMEOUT_S) -> Outcome:
    """peak_rss of `python script.py`: perfhint.measure.measure_python_script with CPU-time limits."""
    from perfhint.measure import measure_python_script as measure

    return _outcome(measure(source, limits=_process_limits(timeout_s)))


def machine_description() -> dict[str, str]:
    """perfhint.measure's own description of this machine, Python and compilers."""
    from perfhint.measure import machine

    return {**machine.machine(python=machine.python_version()),
            "gcc": machine.compiler_version("gcc") or "unavailable",
            "g++": machine.compiler_version("g++") or "unavailable"}


if __name__ == "__main__":
    _child_main()
