"""Measure the peak RSS of a whole process: a Python script, or a C/C++ program compiled here.

What is hard is that peak RSS is a property of the process *and of how it was started*: ru_maxrss
survives exec, so the process must be forked from the small C launcher (sandbox.py), never from
Python; and for C/C++ the number depends on the compiler, its flags and the libc it links, which is
why the compile settings are fixed in metrics.COMPILE_SETTINGS and the compiler's version string is
recorded with every value. Compiling is also running untrusted input (`#include "/etc/shadow"`
reads a file as whoever compiles), so the compiler runs in the same sandbox, as the same fresh uid,
with its own, more generous, limits.
"""

from __future__ import annotations

import os
import shutil
import sys

from perfhint.measure import machine
from perfhint.measure.launcher import LauncherError
from perfhint.measure.metrics import COMPILE_SETTINGS, PEAK_RSS, Measurement, Status, failed
from perfhint.measure.sandbox import COMPILE_LIMITS, Limits, Run, Sandbox, classify, last_lines, python_paths

SCRIPT_NAME = "script.py"
PROGRAM_NAME = "program"


def measure_python_script(source: str, *, limits: Limits = Limits(), filename: str = SCRIPT_NAME) -> Measurement:
    """peak_rss of `python FILE` run as __main__ with the interpreter perfhint runs under."""
    measured_on = machine.machine(python=machine.python_version())
    try:
        sandbox = Sandbox()
    except LauncherError as error:
        return failed(PEAK_RSS, Status.UNAVAILABLE, str(error), measured_on)
    with sandbox:
        sandbox.copy_in(filename, source)
        run = sandbox.run([sys.executable, filename], limits, readable=python_paths())
        mechanisms = dict(sandbox.mechanisms)
    return _rss_measurement(run, measured_on, mechanisms)


def measure_program(source: str, language: str, *, limits: Limits = Limits()) -> Measurement:
    """peak_rss of a C or C++ program compiled with COMPILE_SETTINGS[language] and run with empty stdin."""
    settings = COMPILE_SETTINGS.get(language)
    if settings is None:
        raise ValueError(f"measure_program takes language 'c' or 'cpp', not {language!r}")
    compiler = machine.compiler_version(settings.compiler)
    measured_on = machine.machine(compiler=compiler)
    if compiler is None:
        return failed(PEAK_RSS, Status.UNAVAILABLE,
                      f"measuring {language} programs needs {settings.compiler}: install it "
                      f"(Debian/Ubuntu: `apt-get install {settings.install_hint}`)", measured_on)
    try:
        sandbox = Sandbox()
    except LauncherError as error:
        return failed(PEAK_RSS, Status.UNAVAILABLE, str(error), measured_on)
    source_name = f"{PROGRAM_NAME}{settings.suffix}"
    with sandbox:
        sandbox.copy_in(source_name, source)
        compiler_path = shutil.which(settings.compiler) or settings.compiler
        compile_command = [compiler_path, *settings.flags, "-o", PROGRAM_NAME, source_name, *settings.libraries]
        compiled = sandbox.run(compile_command, COMPILE_LIMITS,
                               readable=[os.path.dirname(os.path.dirname(os.path.realpath(compiler_path)))])
        if not compiled.succeeded:
            status, message = classify(compiled)
            if status in (Status.CRASHED, Status.SANDBOX_VIOLATION):
                status, message = Status.COMPILE_ERROR, _first_error(compiled)
            return failed(PEAK_RSS, status, message, measured_on, wall_time_s=compiled.wall_s,
                          warnings=compiled.warnings,
                          details={**compiled.details(), "compile_command": " ".join(compile_command)})
        run = sandbox.run([f"./{PROGRAM_NAME}"], limits)
        mechanisms = dict(sandbox.mechanisms)
    return _rss_measurement(run, measured_on, mechanisms, compile_command=" ".join(compile_command))


def _first_error(run: Run) -> str:
    lines = run.stderr.splitlines()
    error = next((line for line in lines if " error: " in line or line.startswith("error:")), None)
    if error is None:
        error = last_lines(run.stderr, 1) or f"the compiler exited with code {run.exit_code}"
    return f"does not compile: {error.strip()}"


def _rss_measurement(run: Run, measured_on: dict[str, str], mechanisms: dict[str, str],
                     **extra_details: object) -> Measurement:
    status, message = classify(run)
    details = {**run.details(), "sandbox": mechanisms, **extra_details}
    if status is not Status.OK or run.peak_rss_bytes is None:
        return failed(PEAK_RSS, status, message, measured_on, wall_time_s=run.wall_s, warnings=run.warnings,
                      details=details)
    return Measurement(PEAK_RSS.name, PEAK_RSS.unit, run.peak_rss_bytes, Status.OK, "ok", measured_on, run.wall_s,
                       run.warnings, details)
