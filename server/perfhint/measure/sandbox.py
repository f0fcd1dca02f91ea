"""The sandbox every measured piece of code runs in: a copy, a fresh user, limits, no network.

What is hard:

- **Root.** Our machines run everything as root, and for root Linux enforces neither file
  permissions nor RLIMIT_NPROC. So the child drops to a *fresh* uid/gid for each sandbox (a random
  number in a range no account uses, not `nobody`): it owns nothing outside its directory, a write
  anywhere else fails, RLIMIT_NPROC counts only its own processes (a shared `nobody` would let two
  concurrent runs starve each other), and at the end `kill(-1)` performed *as that uid* reaches
  every process the run left behind, even ones that escaped the process group with setsid, and
  nothing else on the machine.
- **A fresh uid cannot reach the interpreter.** Our Python lives under /root/.pyenv and /root is
  0700. The child therefore gets its own mount namespace in which each directory it cannot search
  (here /root) is covered by an empty tmpfs, and exactly the paths it needs (the interpreter's
  prefix, the venv, perfhint itself) are bind-mounted back at their own paths: sys.executable and
  sys.prefix are unchanged, so the run is the same Python. The same mechanism gives the run a
  private /tmp, /var/tmp and /dev/shm, with its working directory mounted back inside.
- **Killing everything.** The launcher enforces the wall clock by killing the child's whole process
  group, then sweeps what is left: as a child subreaper it inherits every orphan of the run and
  kills and reaps them (so no zombie waits on a slow init), and it kills by uid and by cgroup. A
  pids cgroup (v2 if this machine delegates the pids controller there, else v1) caps processes and
  threads with pids.max and tells us that the cap was hit; RLIMIT_NPROC sits a little above it as a
  backstop. RLIMIT_CPU backs up the wall clock for busy loops. If the launcher itself overstays, we
  kill its process group (its child dies by PDEATHSIG) and sweep by cgroup and uid from here.
- **Read-only everything else.** In its mount namespace every mount is made read-only
  (mount_setattr, recursively); only the private tmpfs directories and the working directory are
  writable. For root runs this backs up the uid change (world-writable corners such as /run/lock);
  for runs without root it is the main protection. One exception, for the GPU path only: CUDA
  does not initialise when /proc is read-only (cuInit fails with error 304, "OS call failed", on an
  H100; found by removing one launcher option at a time, and only --readonly mattered, then by
  binding back one mount at a time, and only /proc mattered), so a Triton run gets /proc bound back
  writable (`writable_mounts`, kernels.GPU_WRITABLE_MOUNTS). A fresh uid may write only its own
  process's entries there.
- **Degrading.** Without root there is no uid change and no pids cgroup, and RLIMIT_NPROC counts all
  of the user's processes. The network and mount namespaces then need an unprivileged user
  namespace; where the kernel refuses one, the code can reach the network and write wherever the
  user can. Each missing mechanism is a warning in the result, never a silent gap.

The user's file is copied in, never run in place; the working directory is deleted afterwards.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from perfhint.measure.launcher import LauncherReport, launcher_path, parse_report
from perfhint.measure.metrics import Status

MiB = 1024 * 1024
GiB = 1024 * MiB

UID_BASE = 0x7E000000  # fresh uids are UID_BASE + 20 random bits: far above any account or subuid range
UID_SPAN = 1 << 20
HIDDEN_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # shared scratch space: each run gets private, empty ones
STREAM_TAIL_BYTES = 64 * 1024  # how much of the child's stdout/stderr we keep
BACKSTOP_S = 15.0  # the launcher enforces the wall clock; we kill the launcher itself only if it overstays this
NPROC_SLACK = 16  # with a pids cgroup, RLIMIT_NPROC sits above pids.max so the cgroup, which can tell us, trips first
# Cgroups and working directories are named "<prefix><pid namespace inode>-<pid>-<random>", so a stale one
# (its perfhint process was SIGKILLed) is recognised by a dead pid in *our* pid namespace, and never
# confused with a live one of a container that shares /tmp but counts pids differently.
CGROUP_PREFIX = "perfhint-"
WORKDIR_PREFIX = "perfhint-measure-"


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 60.0  # wall clock; the whole process group is killed when it runs out
    memory_bytes: int | None = 4 * GiB  # RLIMIT_AS (address space, not RSS); None for CUDA, which reserves TBs
    file_size_bytes: int = 64 * MiB  # RLIMIT_FSIZE: largest file the code may write, stdout included
    n_processes: int = 64  # RLIMIT_NPROC and pids.max: processes plus threads
    cpu_s: int | None = None  # RLIMIT_CPU; default: the wall-clock limit plus one second
    stack_bytes: int = 8 * MiB  # RLIMIT_STACK, fixed so a label does not depend on the caller's `ulimit -s`

    @property
    def cpu_seconds(self) -> int:
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1


COMPILE_LIMITS = Limits(timeout_s=120.0, memory_bytes=4 * GiB, file_size_bytes=256 * MiB, n_processes=64)


@dataclass(frozen=True)
class Run:
    """What happened to one command in the sandbox."""

    report: LauncherReport
    timed_out: bool
    process_limit_hit: bool
    stdout: str  # tails of the streams, decoded leniently
    stderr: str
    wall_s: float
    limits: Limits
    warnings: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int | None:
        return self.report.exit_code

    @property
    def peak_rss_bytes(self) -> int | None:
        return self.report.maxrss_bytes

    @property
    def succeeded(self) -> bool:
        return not self.timed_out and self.report.kind == "exited" and self.report.exit_code == 0

    def details(self) -> dict[str, object]:
        return {"exit_code": self.report.exit_code, "signal": self.report.signal,
                "cpu_s": round(self.report.cpu_s, 6), "stderr_tail": last_lines(self.stderr, 8)}


def last_lines(text: str, n_lines: int) -> str:
    return "\n".join(text.rstrip().splitlines()[-n_lines:])


# ----------------------------------------------------------------------------------------------
# What a run's ending means


_MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
_PROCESS_SIGNS = ("BlockingIOError", "Resource temporarily unavailable", "can't start new thread",
                  "fork: retry", "pthread_create")
_NETWORK_SIGNS = ("Network is unreachable", "ENETUNREACH", "Cannot assign requested address",
                  "Temporary failure in name resolution", "Name or service not known")
_PERMISSION_SIGNS = ("PermissionError", "Permission denied", "Operation not permitted", "Read-only file system")


def classify(run: Run) -> tuple[Status, str]:
    """The status of a finished run and one line saying why (and what to change, where there is a knob)."""
    report, limits = run.report, run.limits
    if report.kind == "setup_failed":
        reason = os.strerror(report.setup_errno) if report.setup_errno else "unknown error"
        return Status.SANDBOX_ERROR, (f"the sandbox could not be set up at step {report.setup_stage!r} ({reason}); "
                                      f"nothing was run")
    tail = last_lines(run.stderr, 20)
    last = last_lines(run.stderr, 1) or "(no output on stderr)"
    if run.process_limit_hit and not run.succeeded:
        return Status.PROCESS_LIMIT, (f"stopped at the limit of {limits.n_processes} processes and threads "
                                      f"(a fork bomb, or too many workers for a measurement)")
    if run.timed_out:
        return Status.TIMEOUT, f"killed after the {limits.timeout_s:g} s wall-clock limit (raise it with --timeout)"
    if report.kind == "missing":
        return Status.SANDBOX_ERROR, "the launcher ended without a report; see the warnings"
    if report.kind == "signaled":
        number = report.signal or 0
        name = _signal_name(number)
        if number == signal.SIGXCPU or (number == signal.SIGKILL and report.cpu_s >= limits.cpu_seconds - 0.5):
            return Status.TIMEOUT, f"used up the {limits.cpu_seconds} s CPU-time limit (raise it with --timeout)"
        if number == signal.SIGXFSZ:
            return Status.OUTPUT_LIMIT, (f"tried to write a file larger than {limits.file_size_bytes // MiB} MiB "
                                         f"(stdout counts too)")
        if any(sign in tail for sign in _MEMORY_SIGNS):
            return Status.MEMORY_LIMIT, f"ran out of memory under the {_memory_text(limits)} limit ({name})"
        hint = (f"; with a {_memory_text(limits)} address-space limit a failed malloc often ends this way"
                if number == signal.SIGSEGV and limits.memory_bytes else "")
        return Status.CRASHED, f"killed by {name}{hint}"
    if report.exit_code == 0:
        return Status.OK, "ok"
    if any(sign in tail for sign in _MEMORY_SIGNS):
        return Status.MEMORY_LIMIT, (f"ran out of memory under the {_memory_text(limits)} limit "
                                     f"(raise it with --memory-limit): {last}")
    if any(sign in tail for sign in _PROCESS_SIGNS):
        return Status.PROCESS_LIMIT, (f"stopped at the limit of {limits.n_processes} processes and threads "
                                      f"(could not start another): {last}")
    if any(sign in tail for sign in _NETWORK_SIGNS):
        return Status.SANDBOX_VIOLATION, f"tried to use the network, which measuring does not allow: {last}"
    if any(sign in tail for sign in _PERMISSION_SIGNS):
        return Status.SANDBOX_VIOLATION, (f"was refused access outside its sandbox directory (measured code may "
                                          f"write only in its own temporary directory): {last}")
    return Status.CRASHED, f"exited with code {report.exit_code}: {last}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _memory_text(limits: Limits) -> str:
    return f"{limits.memory_bytes // MiB} MiB" if limits.memory_bytes else "machine's"


# ----------------------------------------------------------------------------------------------
# The pids cgroup


class PidsCgroup:
    """A throwaway cgroup with pids.max; v2 where the pids controller is delegated, else v1."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @classmethod
    def create(cls, max_pids: int) -> tuple[PidsCgroup | None, str]:
        """(cgroup, description) or (None, why not)."""
        reasons = []
        for version, parent in _pids_cgroup_parents():
            path = parent / f"{CGROUP_PREFIX}{_owner_tag()}{secrets.token_hex(4)}"
            try:
                path.mkdir()
            except OSError as error:
                reasons.append(f"cgroup v{version} at {parent}: {error.strerror}")
                continue
            try:
                (path / "pids.max").write_text(f"{max_pids}\n")
            except OSError as error:
                reasons.append(f"cgroup v{version} pids.max: {error.strerror}")
                _remove_cgroup(path)
                continue
            return cls(path, version), f"cgroup v{version} pids.max={max_pids}"
        return None, "; ".join(reasons) or "no pids cgroup controller is mounted"

    def limit_hit(self) -> bool:
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                key, _, count = line.partition(" ")
                if key == "max" and int(count) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def kill_all(self) -> None:
        kill_switch = self.path / "cgroup.kill"
        if self.version == 2 and kill_switch.exists():
            try:
                kill_switch.write_text("1\n")
            except OSError:
                pass
        for _ in range(200):
            try:
                pids = [int(word) for word in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                return
            if not pids:
                return
            for pid in pids:
                # A pid read here belongs to the cgroup; pids.max keeps the list short and new forks fail.
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)

    def remove(self) -> None:
        _remove_cgroup(self.path)


def _remove_cgroup(path: Path, attempts: int = 200) -> None:
    for _ in range(attempts):  # killed processes leave the cgroup once they are reaped
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def _pids_cgroup_parents() -> list[tuple[int, Path]]:
    """Directories in which we may create a pids cgroup: our own cgroup in each hierarchy with pids."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
        membership = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    own_paths: dict[str, str] = {}  # "" for v2, else the controller list
    for line in membership:
        parts = line.split(":", 2)
        if len(parts) == 3:
            own_paths[parts[1]] = parts[2]
    candidates: list[tuple[int, Path]] = []
    for line in mountinfo:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mount_point, fstype, options = fields[3], fields[4], tail[0], tail[2].split(",")
        if fstype == "cgroup2" and "" in own_paths:
            directory = _inside_mount(Path(mount_point), root, own_paths[""])
            try:
                delegated = "pids" in (directory / "cgroup.subtree_control").read_text().split()
            except OSError:
                delegated = False
            if delegated:
                candidates.append((2, directory))
        elif fstype == "cgroup" and "pids" in options:
            own = next((path for controllers, path in own_paths.items() if "pids" in controllers.split(",")), "/")
            candidates.append((1, _inside_mount(Path(mount_point), root, own)))
    return sorted(candidates, key=lambda candidate: -candidate[0])


def _inside_mount(mount_point: Path, mount_root: str, cgroup_path: str) -> Path:
    relative = cgroup_path
    if mount_root != "/" and cgroup_path.startswith(mount_root):
        relative = cgroup_path[len(mount_root):]
    directory = mount_point / relative.lstrip("/")
    return directory if directory.is_dir() else mount_point


# ----------------------------------------------------------------------------------------------
# Paths the child must reach


def reachable_paths(workdir: Path, readable: list[str | Path], *, fresh_uid: bool) -> tuple[list[str], list[str]]:
    """(directories to hide behind a private tmpfs, paths to bind back into place) for one run.

    The shared scratch directories are always hidden, so what lies under them (the working
    directory, a venv in /tmp) is bound back. A fresh uid is in no group and owns no file, so only
    the "other" permission bits apply to it: a directory without o+x blocks it, and is hidden too,
    with the paths the child needs bound back. The caller's own uid needs no such help.
    """
    hides = [directory for directory in HIDDEN_DIRS if os.path.isdir(directory) and not os.path.islink(directory)]
    exposes: list[str] = []
    for item in readable:
        path = os.path.realpath(item)
        if not os.path.exists(path):
            continue
        blocker = _blocking_ancestor(path) if fresh_uid else None
        if blocker is not None:
            hides.append(blocker)
        if blocker is not None or any(_is_within(path, hidden) for hidden in hides):
            exposes.append(path)
    # The working directory goes last: bound (writable) on top of any read-only parent bound before it.
    return _outermost(hides), [*_outermost(exposes), str(workdir)]


def _blocking_ancestor(path: str) -> str | None:
    parts = Path(path).parts
    for depth in range(1, len(parts)):
        ancestor = str(Path(*parts[:depth]))
        try:
            mode = os.stat(ancestor).st_mode
        except OSError:
            return None
        if not mode & stat.S_IXOTH:
            return None if ancestor == "/" else ancestor
    return None


def _is_within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _outermost(paths: list[str]) -> list[str]:
    unique = sorted(set(paths), key=len)
    kept: list[str] = []
    for path in unique:
        if not any(_is_within(path, other) for other in kept):
            kept.append(path)
    return kept


def python_paths() -> list[str]:
    """What a child running this interpreter needs to read: its prefixes, its site dirs, perfhint."""
    import perfhint

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
             os.path.dirname(os.path.dirname(os.path.abspath(perfhint.__file__)))}
    paths.update(entry for entry in sys.path if entry and "site-packages" in entry)
    return sorted(paths)


# ----------------------------------------------------------------------------------------------
# The sandbox


def _environment(workdir: Path) -> dict[str, str]:
    """The child's whole environment: nothing of the caller's leaks in (tokens, proxies, PYTHONPATH)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "USER": "perfhint", "LOGNAME": "perfhint",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",  # dict/set layouts, and so tracemalloc peaks, repeat exactly
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",  # see metrics.PEAK_RSS
    }


SANDBOX_ENVIRONMENT_KEYS = tuple(_environment(Path("/")).keys())


def _fresh_uid() -> int:
    in_use = set()
    try:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    in_use.add(entry.stat().st_uid)
                except OSError:
                    pass
    except OSError:
        pass
    while True:
        uid = UID_BASE + secrets.randbelow(UID_SPAN)
        if uid not in in_use:
            return uid


def _tasks_of_uid(uid: int) -> int:
    """Processes plus threads whose real uid is `uid`: what RLIMIT_NPROC counts."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "status").read_text()
        except OSError:
            continue
        uid_line = re.search(r"^Uid:\s+(\d+)", text, re.MULTILINE)
        threads = re.search(r"^Threads:\s+(\d+)", text, re.MULTILINE)
        if uid_line and int(uid_line.group(1)) == uid:
            count += int(threads.group(1)) if threads else 1
    return count


def _read_tail(path: Path) -> str:
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - STREAM_TAIL_BYTES))
            return stream.read().decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass
class Sandbox:
    """A fresh working directory and a fresh uid; every `run` goes through the launcher.

    Use as a context manager: leaving it kills whatever the runs left behind and deletes the directory.
    """

    isolate_network: bool = True
    base: Path = field(init=False)
    workdir: Path = field(init=False)
    uid: int | None = field(init=False)  # None when not root: the child keeps the caller's uid
    mechanisms: dict[str, str] = field(init=False, default_factory=dict)  # what confined the runs, for reports

    def __post_init__(self) -> None:
        self.launcher = launcher_path()
        _remove_leftovers_of_dead_processes()
        self.base = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{_owner_tag()}"))
        os.chmod(self.base, 0o711)  # the child may pass through to work/, but not list or open our stream files
        self.workdir = self.base / "work"
        self.workdir.mkdir(mode=0o700)
        self.uid = _fresh_uid() if os.geteuid() == 0 else None
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._sweep_uid()
        shutil.rmtree(self.base, ignore_errors=True)

    def copy_in(self, name: str, content: str | bytes) -> Path:
        """Put a copy of the user's file in the working directory (readable, not writable, by the child)."""
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise ValueError(f"copy_in takes a plain file name, not {name!r}")
        path = self.workdir / name
        data = content.encode("utf-8") if isinstance(content, str) else content
        # O_EXCL|O_NOFOLLOW: after a run the directory belongs to the child, which may have planted a
        # symlink under this name; we must not write through it as root.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(descriptor, "wb") as stream:
            os.fchmod(descriptor, 0o644)  # whatever the umask: the child must be able to read it
            stream.write(data)
        return path

    def read_result(self, name: str, max_bytes: int = 1024 * 1024) -> str | None:
        """A file the child wrote in its directory; never follows a symlink the child may have planted."""
        try:
            descriptor = os.open(self.workdir / name, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(descriptor, "rb") as stream:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                return None
            return stream.read(max_bytes).decode("utf-8", "replace")

    def run(self, argv: list[str], limits: Limits, *, readable: list[str | Path] = (),
            writable_mounts: tuple[str, ...] = ()) -> Run:
        """Run argv in the working directory under `limits`; readable: paths outside it the child needs.

        writable_mounts: directories bound back writable on top of the read-only namespace (a GPU run's
        /proc, see kernels.GPU_WRITABLE_MOUNTS). The child still writes there only what its uid
        may: a fresh uid owns nothing in them."""
        warnings: list[str] = []
        cgroup, cgroup_text = PidsCgroup.create(limits.n_processes)
        if cgroup is None:
            warnings.append(f"no pids cgroup ({cgroup_text}); processes are capped by RLIMIT_NPROC only")
        nproc = limits.n_processes + (NPROC_SLACK if cgroup is not None else 0)
        command = [str(self.launcher), "--dir", str(self.workdir), "--timeout", f"{max(limits.timeout_s, 0.001):.3f}",
                   "--stdout", str(self.base / "stdout"), "--stderr", str(self.base / "stderr"),
                   "--cpu", str(limits.cpu_seconds), "--fsize", str(limits.file_size_bytes),
                   "--stack", str(limits.stack_bytes),
                   "--tmpfs-size", str(limits.file_size_bytes), "--no-aslr"]
        if limits.memory_bytes:
            command += ["--as", str(limits.memory_bytes)]
        if self.isolate_network:
            command.append("--netns")
        if cgroup is not None:
            command += ["--cgroup", str(cgroup.path)]
        hides, exposes = reachable_paths(self.workdir, list(readable), fresh_uid=self.uid is not None)
        command.append("--readonly")
        for directory in hides:
            command += ["--hide", directory]
        extra = [path for path in writable_mounts if os.path.isdir(path)]
        for path in [*exposes[:-1], *extra, exposes[-1]]:  # the working directory stays last
            command += ["--writable" if path == str(self.workdir) or path in extra else "--expose", path]
        if extra:
            self.mechanisms.update(writable_mounts=", ".join(extra))
        if self.uid is not None:
            command += ["--uid", str(self.uid), "--gid", str(self.uid)]
            self.mechanisms.update(user=f"fresh uid {self.uid}", uid=str(self.uid))
        else:
            # RLIMIT_NPROC counts every process of this uid, ours included: allow what exists plus the budget.
            nproc = _tasks_of_uid(os.getuid()) + nproc
            warnings.append("not running as root: the code runs as your own user (only a read-only mount "
                            "namespace, where the kernel allows one, keeps it from writing where you can)")
            self.mechanisms.update(user="unchanged (not root)")
        command += ["--nproc", str(nproc), "--", *argv]
        self.mechanisms.update(processes=f"RLIMIT_NPROC={nproc}" + (f", {cgroup_text}" if cgroup else ""))

        started = time.monotonic()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=_environment(self.workdir),
                                   start_new_session=True, close_fds=True)
        backstop_fired = False
        try:
            try:
                report_text, launcher_errors = process.communicate(timeout=limits.timeout_s + BACKSTOP_S)
            except subprocess.TimeoutExpired:
                backstop_fired = True  # the launcher itself is stuck: kill it; its child dies by PDEATHSIG
                _kill_group(process.pid)
                report_text, launcher_errors = process.communicate()
        except BaseException:
            _kill_group(process.pid)
            process.wait()
            raise
        finally:
            process_limit_hit = False
            if cgroup is not None:
                cgroup.kill_all()
                process_limit_hit = cgroup.limit_hit()
                cgroup.remove()
            self._sweep_uid()
        wall_s = time.monotonic() - started
        report = parse_report(report_text.decode("utf-8", "replace"))
        timed_out = backstop_fired or report.kind == "timeout"
        warnings.extend(report.warnings)
        if report.kind == "missing" and not timed_out:
            warnings.append(f"launcher exited with {process.returncode}: "
                            f"{last_lines(launcher_errors.decode('utf-8', 'replace'), 3)}")
        unconfined = " ".join(report.warnings)
        user_namespace_failed = "no user namespace" in unconfined
        network = "network namespace (loopback down)" if self.isolate_network else "not isolated (by request)"
        if "network not isolated" in unconfined or (self.isolate_network and user_namespace_failed):
            network = "NOT isolated"
        filesystem = (f"read-only mount namespace, writable only in its directory; empty private "
                      f"{', '.join(hides)} (needed paths bound back)")
        if "filesystem not isolated" in unconfined or user_namespace_failed:
            filesystem = "NOT isolated"
        elif "filesystem left writable" in unconfined:
            filesystem = f"mount namespace (NOT read-only); empty private {', '.join(hides)}"
        self.mechanisms.update(network=network, filesystem=filesystem)
        return Run(report=report, timed_out=timed_out, process_limit_hit=process_limit_hit,
                   stdout=_read_tail(self.base / "stdout"), stderr=_read_tail(self.base / "stderr"),
                   wall_s=report.wall_s if report.kind in ("exited", "signaled", "timeout") else wall_s,
                   limits=limits, warnings=tuple(warnings))

    def _sweep_uid(self) -> None:
        if self.uid is None:
            return
        subprocess.run([str(self.launcher), "--kill-uid", str(self.uid)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30, check=False)


_LEFTOVER_CGROUP = re.compile(rf"{re.escape(CGROUP_PREFIX)}(\d+)-(\d+)-[0-9a-f]+\Z")
_LEFTOVER_WORKDIR = re.compile(rf"{re.escape(WORKDIR_PREFIX)}(\d+)-(\d+)-")
_leftovers_checked = False


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _owner_tag() -> str:
    return f"{_pid_namespace()}-{os.getpid()}-"


def _remove_leftovers_of_dead_processes() -> None:
    """Cgroups and directories of perfhint processes that were killed before they could clean up.

    Once per process: SIGKILL (an OOM kill, a CI timeout) skips every `finally`, and a cgroup or a
    directory owned by a fresh uid would otherwise stay until reboot.
    """
    global _leftovers_checked
    if _leftovers_checked:
        return
    _leftovers_checked = True
    candidates = [(version, entry) for version, parent in _pids_cgroup_parents() for entry in _listing(parent)]
    candidates += [(0, entry) for entry in _listing(Path(tempfile.gettempdir()))]
    launcher = None
    for version, entry in candidates:
        match = (_LEFTOVER_CGROUP if version else _LEFTOVER_WORKDIR).match(entry.name)
        if match is None or int(match.group(1)) != _pid_namespace() or _alive(int(match.group(2))):
            continue
        if version:
            cgroup = PidsCgroup(entry, version)
            cgroup.kill_all()
            _remove_cgroup(entry, attempts=5)
            continue
        try:
            owner = (entry / "work").stat().st_uid
        except OSError:
            owner = -1
        if os.geteuid() == 0 and UID_BASE <= owner < UID_BASE + UID_SPAN:
            launcher = launcher or launcher_path()
            subprocess.run([str(launcher), "--kill-uid", str(owner)], capture_output=True, timeout=30, check=False)
        shutil.rmtree(entry, ignore_errors=True)


def _listing(directory: Path) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(directory)
                if entry.name.startswith((CGROUP_PREFIX, WORKDIR_PREFIX)) and entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
