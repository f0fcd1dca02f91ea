"""Typed errors of checkpoint loading, each listing every problem at once.

What is hard: a regress-lm checkpoint stores no config, so most mistakes are a sidecar that disagrees
with the weights in several places at once (vocab, decode length, layer count). Reporting them one per
run turns a one-minute fix into five runs, so every error here carries the full list of problems, each
naming the field and the fix.
"""

from __future__ import annotations


class CheckpointError(Exception):
    """Base class: `problems` is the list of every independent thing wrong, one sentence each."""

    def __init__(self, headline: str, problems: list[str] | None = None) -> None:
        self.headline = headline
        self.problems = list(problems or [])
        lines = [headline] + [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


class SidecarError(CheckpointError):
    """The sidecar JSON is missing, malformed, or has invalid fields."""


class UnsafeCheckpointError(CheckpointError):
    """A .pt file that cannot be loaded without executing code it contains; it is never unpickled."""


class CheckpointFormatError(CheckpointError):
    """A file that is not a checkpoint we can read (unknown format, old regress-lm layout, other encoder)."""


class CheckpointMismatchError(CheckpointError):
    """The weights disagree with the sidecar (or with themselves): every mismatch is listed."""
