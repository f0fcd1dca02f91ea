"""Build, cache and talk to the C launcher (launcher.c) that every sandboxed run goes through.

What is hard: the launcher must exist as a native binary, but perfhint ships as pure Python. So it
is compiled with the system C compiler on first use into the per-user cache directory, under a name
that includes a hash of its source and flags (an upgraded perfhint never runs a stale launcher), and
it appears atomically: compiled to a temporary name in the same directory, then renamed, so two
perfhint processes racing on first use both end up with a complete binary. Without a C compiler
the error says which package to install.

The launcher reports on its stdout in `key=value` words (see launcher.c); `parse_report` turns that
into a LauncherReport.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

LAUNCHER_SOURCE = Path(__file__).with_name("launcher.c")
LAUNCHER_FLAGS = ("-O2", "-Wall")  # dynamically linked: a static glibc binary is 0.9 MB on disk for no gain in RSS
CACHE_DIR_ENV = "PERFHINT_CACHE_DIR"  # overrides platformdirs' user cache dir (tests, read-only homes)


class LauncherError(RuntimeError):
    """The launcher could not be built; the message names the fix."""


def cache_dir() -> Path:
    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override) if override else Path(platformdirs.user_cache_dir("perfhint"))


def _c_compiler() -> str | None:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@functools.cache
def launcher_path() -> Path:
    """The compiled launcher, building it on first use. Raises LauncherError naming the fix."""
    if platform.system() != "Linux":
        raise LauncherError(f"perfhint measure runs code only on Linux (its sandbox uses Linux namespaces "
                            f"and rlimits); this is {platform.system()}")
    source = LAUNCHER_SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(LAUNCHER_FLAGS).encode()).hexdigest()[:16]
    directory = cache_dir() / "launcher"
    target = directory / f"perfhint-launcher-{digest}-{platform.machine()}"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    compiler = _c_compiler()
    if compiler is None:
        raise LauncherError("perfhint measure needs a C compiler once, to build its small launcher "
                            f"({LAUNCHER_SOURCE.name}): install one (Debian/Ubuntu: `apt-get install gcc`) "
                            "or point CC at one")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(prefix=".building-", dir=directory)
    os.close(handle)
    try:
        completed = subprocess.run([compiler, *LAUNCHER_FLAGS, "-o", temporary, str(LAUNCHER_SOURCE)],
                                   capture_output=True, text=True, timeout=120)
        if completed.returncode != 0:
            raise LauncherError(f"building perfhint's launcher with {compiler} failed; "
                                f"check that the compiler and libc headers work (Debian: `apt-get install gcc "
                                f"libc6-dev`):\n{completed.stderr.strip()}")
        os.chmod(temporary, 0o755)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


@dataclass(frozen=True)
class LauncherReport:
    kind: str  # "exited" | "signaled" | "timeout" | "setup_failed" | "missing" (the launcher itself was killed)
    exit_code: int | None = None
    signal: int | None = None
    maxrss_bytes: int | None = None
    cpu_s: float = 0.0
    wall_s: float = 0.0
    setup_stage: str | None = None
    setup_errno: int | None = None
    warnings: tuple[str, ...] = ()


def parse_report(text: str) -> LauncherReport:
    warnings: list[str] = []
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("warning "):
            warnings.append(line.removeprefix("warning "))
        elif line.startswith("result "):
            fields = dict(word.split("=", 1) for word in line.split()[1:] if "=" in word)
    kind = fields.get("kind", "missing")
    if kind == "setup_failed":
        return LauncherReport(kind, setup_stage=fields.get("stage"), setup_errno=int(fields.get("errno", "0")),
                              warnings=tuple(warnings))
    if kind not in ("exited", "signaled", "timeout"):
        return LauncherReport("missing", warnings=tuple(warnings))
    return LauncherReport(
        kind,
        exit_code=int(fields["code"]) if kind == "exited" else None,
        signal=int(fields["signal"]) if kind != "exited" else None,
        maxrss_bytes=int(fields["maxrss_kib"]) * 1024,
        cpu_s=float(fields["utime_s"]) + float(fields["stime_s"]),
        wall_s=float(fields["wall_s"]),
        warnings=tuple(warnings),
    )
