"""`measured_on`: the facts about this machine that a measurement depends on.

A label without its machine is not reproducible: peak RSS depends on the libc and the compiler
version, tracemalloc peaks on the Python version, latency on the GPU. What is hard is only to read
these without running anything the user wrote: /proc/cpuinfo, /etc/os-release, `uname`, and the
compiler's own `--version` (a compiler we chose, run outside the sandbox, with no user input).
"""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
from pathlib import Path


@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("model name", "Model", "cpu model", "Hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def operating_system() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


@functools.cache
def compiler_version(compiler: str) -> str | None:
    """The first line of `compiler --version`, e.g. 'gcc (Debian 12.2.0-14+deb12u1) 12.2.0'."""
    path = shutil.which(compiler)
    if path is None:
        return None
    try:
        completed = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first_line = completed.stdout.strip().splitlines()[:1]
    return first_line[0] if first_line else None


def python_version() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def machine(**extra: str | None) -> dict[str, str]:
    """cpu, os, kernel, arch, plus whatever the measurement adds (python=, compiler=, gpu=)."""
    facts = {"cpu": cpu_model(), "os": operating_system(), "kernel": platform.release(),
             "arch": platform.machine()}
    facts.update({key: value for key, value in extra.items() if value})
    return facts
