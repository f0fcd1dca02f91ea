"""The sandbox contains what it runs, and says which limit stopped it.

Each test runs one piece of hostile or broken code through the public measuring functions (or the
CLI, where the copy-in matters) and checks three things: the status names the right cause, the run
ended well inside the test's time budget, and nothing is left behind (no process under the run's
uid, no file outside its directory, no connection made). These tests need root, as our machines
and CI have: the uid drop, the mount namespace and the cgroup are root's mechanisms, and without
them the sandbox degrades with warnings (tested separately).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from perfhint import cli
from perfhint.measure import Limits, Measurement, Status, measure_program, measure_python_script
from perfhint.measure import launcher as launcher_module
from perfhint.measure import machine
from perfhint.measure import sandbox as sandbox_module
from perfhint.measure.launcher import launcher_path

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the uid drop, mount namespace and pids cgroup need root; "
                                                          "CI runs as root")
TEST_BUDGET_S = 20.0


def processes_of_uid(uid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def check(measurement: Measurement, expected: Status, message_part: str, started: float) -> None:
    assert measurement.status is expected, (measurement.status, measurement.message, measurement.details)
    assert message_part in measurement.message
    assert time.monotonic() - started < TEST_BUDGET_S
    uid = measurement.details.get("sandbox", {}).get("uid")
    if uid is not None:
        assert processes_of_uid(int(uid)) == [], "processes outlived the sandbox"


def check_script(source: str, expected: Status, message_part: str, limits: Limits = Limits(timeout_s=10)) -> Measurement:
    started = time.monotonic()
    measurement = measure_python_script(source, limits=limits)
    check(measurement, expected, message_part, started)
    return measurement


@needs_root
def test_fork_bomb_is_stopped_at_the_process_limit() -> None:
    check_script("import os\nwhile True:\n    os.fork()\n", Status.PROCESS_LIMIT, "limit of 64 processes")


@needs_root
def test_fork_bomb_that_ignores_errors_is_killed_whole() -> None:
    # It never exits by itself: the wall clock ends it, every member is swept, and the cause is still the cap.
    source = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    check_script(source, Status.PROCESS_LIMIT, "limit of 64 processes", Limits(timeout_s=3))


def test_100_gb_allocation_hits_the_memory_limit() -> None:
    check_script("data = bytearray(100 * 2**30)\n", Status.MEMORY_LIMIT, "4096 MiB")


def test_100_gb_malloc_in_c_hits_the_memory_limit() -> None:
    source = ("#include <stdio.h>\n#include <stdlib.h>\n"
              "int main(void) { char *p = malloc((size_t)100 << 30); if (!p) { perror(\"malloc\"); return 1; }"
              " p[0] = 1; return p[0] - 1; }\n")
    started = time.monotonic()
    check(measure_program(source, "c"), Status.MEMORY_LIMIT, "Cannot allocate memory", started)


def test_100_gb_new_in_cpp_hits_the_memory_limit() -> None:
    source = ("#include <iostream>\nint main() { volatile unsigned long n = 100ul << 30; char *p = new char[n];"
              " p[n - 1] = 1; std::cout << int(p[n - 1]) << std::endl; }\n")
    started = time.monotonic()
    check(measure_program(source, "cpp"), Status.MEMORY_LIMIT, "SIGABRT", started)


def test_infinite_loop_is_killed_at_the_wall_clock() -> None:
    started = time.monotonic()
    check_script("while True:\n    pass\n", Status.TIMEOUT, "2 s wall-clock limit", Limits(timeout_s=2))
    assert time.monotonic() - started < 8


def test_busy_loop_is_killed_at_the_cpu_limit() -> None:
    check_script("while True:\n    pass\n", Status.TIMEOUT, "1 s CPU-time limit", Limits(timeout_s=15, cpu_s=1))


@needs_root
def test_leftover_background_process_is_swept() -> None:
    # The script daemonises a sleeper (new session, so outside the process group) and exits 0.
    source = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n    os._exit(0)\n"
              "print('parent done')\n")
    check_script(source, Status.OK, "ok")


@needs_root
def test_writes_outside_the_sandbox_fail_and_the_original_is_unchanged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    protected = tmp_path / "protected"  # owned by root, 0755, like most of the machine
    protected.mkdir(mode=0o755)
    victim = protected / "victim.txt"
    victim.write_text("original\n")
    outside = Path("/etc") / f"perfhint-sandbox-test-{os.getpid()}"
    # World-writable but outside the hidden scratch dirs: only the read-only mount namespace stops this one.
    world_writable = Path("/run/lock") / f"perfhint-sandbox-test-{os.getpid()}"
    original = tmp_path / "user_script.py"
    targets = [str(original), str(victim), str(protected / "new.txt"), str(world_writable), str(outside)]
    original.write_text(
        "import sys\n"
        f"errors = []\nfor target in {targets!r}:\n"
        "    try:\n        with open(target, 'a') as stream:\n            stream.write('tampered')\n"
        "    except OSError as error:\n        errors.append(error)\n"
        "print(errors, file=sys.stderr)\n"
        "raise errors[-1]\n")
    before = original.read_text()
    started = time.monotonic()
    code = cli.main(["measure", str(original), "--timeout", "10"])
    out = capsys.readouterr().out
    assert code == 1
    assert "script:<module>" in out and "sandbox_violation: was refused access outside its sandbox" in out
    assert time.monotonic() - started < TEST_BUDGET_S
    assert original.read_text() == before
    assert victim.read_text() == "original\n"
    assert not (protected / "new.txt").exists()
    assert not outside.exists()
    assert not world_writable.exists()


@needs_root
def test_network_connect_fails_inside() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        measurement = check_script(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'leak')\n",
            Status.SANDBOX_VIOLATION, "network")
        server.settimeout(0.2)
        with pytest.raises(socket.timeout):
            server.accept()
    assert measurement.details["sandbox"]["network"].startswith("network namespace")


def test_normal_program_succeeds() -> None:
    measurement = check_script("print(sum(range(10)))\n", Status.OK, "ok")
    assert 2 * 2**20 < measurement.value < 200 * 2**20
    assert measurement.unit == "B" and measurement.metric == "peak_rss"


@needs_root
def test_sandboxed_code_runs_as_a_fresh_user_with_private_tmp(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.write_text("x")
    launchers = launcher_path().parent  # root runs this binary: the sandbox must not be able to replace it
    source = ("import os, sys\n"
              "assert os.getuid() >= 0x7E000000, os.getuid()\n"
              f"assert not os.path.exists({str(marker)!r}), 'the host /tmp is visible'\n"
              f"assert not os.access({str(launchers)!r}, os.W_OK), 'the launcher can be replaced'\n")
    check_script(source, Status.OK, "ok")


@needs_root
def test_without_root_a_user_namespace_still_cuts_network_and_writes() -> None:
    # The launcher as an ordinary user would run it: no uid change, no cgroup, only what a user namespace allows.
    tmp_path = Path(tempfile.mkdtemp(prefix="perfhint-test-"))  # pytest's tmp_path sits under a 0700 directory
    try:
        check_unprivileged_launcher(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def check_unprivileged_launcher(tmp_path: Path) -> None:
    user = 54321
    launcher = tmp_path / "launcher"
    shutil.copy(launcher_path(), launcher)
    home, work = tmp_path / "home", tmp_path / "work"
    for directory in (home, work):
        directory.mkdir()
        os.chown(directory, user, user)
    os.chmod(tmp_path, 0o755)
    script = (f"echo ok > {work}/inside && (echo x > {home}/outside) 2>/dev/null; "
              f"(exec 3<>/dev/tcp/127.0.0.1/9) 2>/dev/null; echo net=$?")
    completed = subprocess.run(
        [str(launcher), "--netns", "--readonly", "--writable", str(work), "--dir", str(work),
         "--stdout", str(work / "out"), "--timeout", "10", "--", "/bin/bash", "-c", script],
        user=user, group=user, extra_groups=[], capture_output=True, text=True, timeout=20, check=True)
    warnings = [line for line in completed.stdout.splitlines() if line.startswith("warning")]
    if any("no user namespace" in line for line in warnings):
        pytest.skip(f"this kernel refuses unprivileged user namespaces: {warnings}")
    assert "kind=exited code=0" in completed.stdout, completed.stdout
    assert (work / "inside").read_text() == "ok\n"
    assert not (home / "outside").exists()
    assert (work / "out").read_text().strip().endswith("net=1")


# ----------------------------------------------------------------------------------------------
# The launcher is built on first use, atomically, and its absence names the fix


@pytest.fixture
def fresh_launcher_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(launcher_module.CACHE_DIR_ENV, str(tmp_path / "cache"))
    launcher_module.launcher_path.cache_clear()
    machine.compiler_version.cache_clear()
    yield tmp_path / "cache"
    launcher_module.launcher_path.cache_clear()
    machine.compiler_version.cache_clear()


def test_launcher_is_built_into_the_cache_on_first_use(fresh_launcher_cache: Path) -> None:
    path = launcher_module.launcher_path()
    assert path.parent == fresh_launcher_cache / "launcher" and os.access(path, os.X_OK)
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]  # no half-built temporary left
    assert measure_python_script("print(1)\n").ok


def test_without_a_c_compiler_the_error_names_the_fix(fresh_launcher_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(fresh_launcher_cache / "no-tools-here"))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(launcher_module.LauncherError, match=r"apt-get install gcc"):
        launcher_module.launcher_path()
    script = measure_python_script("print(1)\n")
    assert script.status is Status.UNAVAILABLE and "needs a C compiler" in script.message
    program = measure_program("int main(void) { return 0; }\n", "c")
    assert program.status is Status.UNAVAILABLE and "apt-get install gcc" in program.message


@needs_root
def test_leftovers_of_a_killed_perfhint_are_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a SIGKILLed perfhint leaves: its working directory and its cgroup, named after its (now dead) pid.
    process = subprocess.Popen(["true"])
    process.wait()
    dead_pid = process.pid
    namespace = os.stat("/proc/self/ns/pid").st_ino
    stale_dir = Path(tempfile.gettempdir()) / f"{sandbox_module.WORKDIR_PREFIX}{namespace}-{dead_pid}-stale"
    (stale_dir / "work").mkdir(parents=True)
    parents = sandbox_module._pids_cgroup_parents()
    stale_cgroup = parents[0][1] / f"{sandbox_module.CGROUP_PREFIX}{namespace}-{dead_pid}-5ca1ab1e" if parents else None
    if stale_cgroup is not None:
        stale_cgroup.mkdir()
    monkeypatch.setattr(sandbox_module, "_leftovers_checked", False)
    assert measure_python_script("print(1)\n").ok
    assert not stale_dir.exists()
    assert stale_cgroup is None or not stale_cgroup.exists()


MOUNT_OPTIONS = ("import json\n"
                 "options = {line.split()[4]: line.split()[5].split(',')[0]\n"
                 "           for line in open('/proc/self/mountinfo')}\n"
                 "json.dump({'/proc': options.get('/proc'), '/': options.get('/')}, open('mounts.json', 'w'))\n")


@needs_root
@pytest.mark.parametrize(("writable_mounts", "expected"), [
    ((), {"/proc": "ro", "/": "ro"}),
    (("/proc",), {"/proc": "rw", "/": "ro"}),  # what a GPU run needs (kernels.GPU_WRITABLE_MOUNTS): one mount, not /
])
def test_writable_mounts_are_bound_back_writable_and_nothing_else(writable_mounts: tuple[str, ...],
                                                                  expected: dict[str, str]) -> None:
    import json
    import sys

    with sandbox_module.Sandbox() as sandbox:
        sandbox.copy_in("mounts.py", MOUNT_OPTIONS)
        run = sandbox.run([sys.executable, "mounts.py"], Limits(timeout_s=10), readable=sandbox_module.python_paths(),
                          writable_mounts=writable_mounts)
        assert run.exit_code == 0, run.details()
        assert json.loads(sandbox.read_result("mounts.json")) == expected
        assert sandbox.mechanisms.get("writable_mounts") == (", ".join(writable_mounts) or None)
