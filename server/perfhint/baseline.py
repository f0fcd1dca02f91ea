"""The text a Δ is measured against: the last saved version of a file, or its version at a git revision.

What is hard: git is run on a path and a revision that come from the user (an editor URI, a CLI flag),
so it is always an argument list (never a shell string), the revision is refused if it could be read
as an option, and `--end-of-options` ends option parsing before it. The file is named relative to the
repository (`REV:./name` from the file's own directory), so a path with spaces, quotes or a leading
dash is just bytes. git may be missing, the file may be untracked or new at that revision, the
directory may not be a repository: each is "no baseline" with a reason, never an exception.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 10.0
MAX_BASELINE_BYTES = 8 * 1024 * 1024
# A revision is a ref name, a hash or an expression like HEAD~2 / main^ / v1.2@{1}: no spaces, no colon
# (a colon would select a different path), no leading dash (an option).
_REVISION = re.compile(r"^[A-Za-z0-9_./~^@{}+=-]{1,200}$")


@dataclass(frozen=True)
class Baseline:
    text: str | None
    label: str  # "saved", "HEAD", "main~1": what the hover names as the other side of Δ
    reason: str = ""  # why there is no text, in one line


def valid_revision(revision: str) -> bool:
    return bool(_REVISION.match(revision)) and not revision.startswith("-") and ".." not in revision


def git_executable() -> str | None:
    return shutil.which("git")


def revision_text(path: str | Path, revision: str = "HEAD") -> Baseline:
    """The content of `path` at git `revision`, or a Baseline with text None and the reason."""
    if not valid_revision(revision):
        return Baseline(None, revision, f"not a git revision: {revision!r}")
    git = git_executable()
    if git is None:
        return Baseline(None, revision, "git is not installed (install git to compare with a revision)")
    path = Path(path)
    directory = path.parent if path.parent.is_dir() else None
    if directory is None:
        return Baseline(None, revision, f"directory {path.parent} does not exist")
    command = [git, "-C", str(directory), "show", "--no-textconv", "--end-of-options", f"{revision}:./{path.name}"]
    try:
        result = subprocess.run(command, capture_output=True, timeout=GIT_TIMEOUT_S, check=False,
                                stdin=subprocess.DEVNULL, env=_git_env())
    except (OSError, subprocess.SubprocessError) as error:
        return Baseline(None, revision, f"git failed: {error}")
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        first = message[0] if message else f"exit status {result.returncode}"
        if "not a git repository" in first:
            return Baseline(None, revision, "not in a git repository")
        if "exists on disk, but not in" in first or "does not exist in" in first:
            return Baseline(None, revision, f"the file is new since {revision}")
        return Baseline(None, revision, first.removeprefix("fatal: "))
    if len(result.stdout) > MAX_BASELINE_BYTES:
        return Baseline(None, revision, f"the file at {revision} is larger than {MAX_BASELINE_BYTES} bytes")
    return Baseline(result.stdout.decode("utf-8", "replace"), revision)


def repository_root(path: str | Path) -> Path | None:
    git = git_executable()
    directory = Path(path)
    if not directory.is_dir():
        directory = directory.parent
    if git is None or not directory.is_dir():
        return None
    try:
        result = subprocess.run([git, "-C", str(directory), "rev-parse", "--show-toplevel"], capture_output=True,
                                timeout=GIT_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL, env=_git_env())
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return Path(result.stdout.decode("utf-8", "replace").strip())


def saved_text(path: str | Path) -> Baseline:
    """What is on disk now: the last saved version, as the editor's baseline for unsaved edits."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return Baseline(None, "saved", f"cannot read the saved file: {error.strerror or error}")
    if len(data) > MAX_BASELINE_BYTES:
        return Baseline(None, "saved", f"the saved file is larger than {MAX_BASELINE_BYTES} bytes")
    return Baseline(data.decode("utf-8", "replace"), "saved")


def _git_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for a password on a server's stdin
    env["GIT_OPTIONAL_LOCKS"] = "0"  # a read must not take the index lock an editor's git is using
    env.setdefault("LC_ALL", "C")  # stable English messages, parsed above
    return env
