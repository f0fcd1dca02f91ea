"""Only declarations at top level: not a script."""
from __future__ import annotations

from typing import TYPE_CHECKING

try:
    import numpy as np
except ImportError:
    np = None

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["mean"]
BLOCK = 1024
SIZES = (1, 2, 4, 8)
DEFAULT_SIZE = SIZES[-1] * BLOCK
Number = int | float


def mean(values: Sequence[Number]) -> float:
    return sum(values) / len(values)
