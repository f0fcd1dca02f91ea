"""How big the input of a region is, read from its context and code without running anything.

The cost of most regions is driven by the size of what they are given: the tracemalloc peak of
`f(xs)` grows with `len(xs)`, a Triton kernel's latency with the elements of its shape. A small
model reads digits poorly (`[[4096, 4096]]` is five tokens whose product it would have to learn),
so the `perfhint-v2` input template (input_template.py) writes this size into the header in one
fixed notation, and the `input_size` baseline of training ranks by it alone. Both import it from
here, so the model and the baseline it must beat see the same number.

The size is a count, not bytes:
- `args` / `kwargs`: an int or float at the top level counts as its value (a size argument, as in
  `f(10**6)`); a string or container counts its leaf elements (a dict its keys and values).
- `shape`: the product of a shape, summed over a list of shapes (`[(M, K), (K, N)]` -> MK + KN).
- Programs and scripts with neither state their sizes in the code (TransCoder's `param0 = 98`, a
  `#define N 10L`): the integer literals and string lengths in `main` (from its first mention on; in
  Python from `if __name__ == "__main__":` on) and in constant definitions are summed, Python's
  `200_000` as 200000. A heuristic, documented as one: `f([3, 1, 4] * 1000)` reads as 1008, not
  3000 elements, but it grows with the input. (C++14's `200'000` is not read: the quote looks like a
  character literal.)

What is hard: the context values come from the user's file, so they are read with
`perfhint.context.safe_literal` (no eval, size-capped). A value refused as too large to build
(`[0]*10**9`) or not a literal gives *unknown* (None), which the header writes as `size=?`, never
as 0: "nothing" and "too big to read" must not look alike to the model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from perfhint.context import UnsafeLiteral, safe_literal

SIZE_KEYS = ("args", "kwargs")
SHAPE_KEY = "shape"
CODE_SIZED_KINDS = ("program", "script")
_MAIN = re.compile(r"\bmain\s*\(|^if\s+__name__\s*==\s*['\"]__main__['\"]\s*:", re.M)  # C's main, Python's
_CONSTANT_LINE = re.compile(r"^\s*(#\s*define\s+\w+|(static\s+)?(constexpr|const)\b|[A-Z_][A-Z0-9_]*\s*=).*$", re.M)
_INT = re.compile(r"(?<![\w.])(\d+(?:_\d+)*)[uUlL]*(?![\w.])")  # 10, 10L, 10ul, 200_000; not x1, 1.5
_STRING = re.compile(r"\"([^\"\\\n]|\\.)*\"|'([^'\\\n]|\\.)*'")
_UNREADABLE = object()


def value_size(value: object, top_level: bool = True) -> float:
    """A top-level number counts as itself (a size argument); inside containers, leaves count 1 each."""
    if isinstance(value, bool) or value is None:
        return 0.0
    if isinstance(value, (int, float)):
        return abs(float(value)) if top_level and math.isfinite(float(value)) else 1.0
    if isinstance(value, (str, bytes)):
        return float(len(value))
    if isinstance(value, Mapping):
        return sum(value_size(key, False) + value_size(item, False) for key, item in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sum(value_size(item, False) for item in value)
    return 1.0


def shape_size(value: object) -> float:
    """(4096, 1024) -> 4194304; [(M, K), (K, N)] -> M*K + K*N; [[4096]] -> 4096."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, int) and not isinstance(item, bool)
                                                          for item in value):
        return float(math.prod(float(item) for item in value))
    if isinstance(value, (list, tuple)):
        return sum(shape_size(item) for item in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return 0.0


def _literal(text: str) -> object:
    try:
        return safe_literal(text)
    except (UnsafeLiteral, ValueError, MemoryError, OverflowError):
        return _UNREADABLE


def context_size(context: Mapping[str, str]) -> float | None:
    """The size stated by the context's texts; 0.0 when it states none, None when one is unreadable."""
    size = 0.0
    for key in SIZE_KEYS:
        if key in context:
            value = _literal(context[key])
            if value is _UNREADABLE:
                return None
            if isinstance(value, tuple) and key == "args":
                size += sum(value_size(item) for item in value)
            elif isinstance(value, Mapping):
                size += sum(value_size(item) for item in value.values())
            else:
                size += value_size(value)
    if SHAPE_KEY in context:
        value = _literal(context[SHAPE_KEY])
        if value is _UNREADABLE:
            return None
        size += shape_size(value)
    return size if math.isfinite(size) else None


def code_size(code: str) -> float:
    """Integers and string lengths in `main` (or Python's `__main__` block, from it on) and in constant definitions."""
    match = _MAIN.search(code)
    parts = [code[match.end():]] if match else []
    parts += [line.group(0) for line in _CONSTANT_LINE.finditer(code)]
    size = 0.0
    for part in parts:
        without_strings = _STRING.sub(" ", part)
        digits = (number.replace("_", "") for number in _INT.findall(without_strings))
        size += sum(float(number) for number in digits if len(number) < 16)
        size += sum(len(string.group(0)) - 2 for string in _STRING.finditer(part))
    return size


def region_input_size(*, context: Mapping[str, str], code: str, region_kind: str) -> float | None:
    """The size of one region's input (see the module docstring); None when it cannot be read."""
    size = context_size(context)
    if size == 0.0 and region_kind in CODE_SIZED_KINDS:
        size = code_size(code)
    return size


def record_input_size(record: Mapping[str, Any]) -> float | None:
    """region_input_size of a dataset record (perfhint measure --json schema)."""
    return region_input_size(context=record.get("context") or {}, code=record.get("code") or "",
                             region_kind=str(record.get("region_kind") or ""))


def size_text(size: float | None) -> str:
    """The notation the header uses: two significant digits, bare exponent (`1.2e4`, `3e0`, `0`, `?`).

    Fixed so that equal sizes are equal text: the model learns one spelling per magnitude."""
    if size is None or not math.isfinite(size):
        return "?"
    if size <= 0:
        return "0"
    mantissa, exponent = f"{size:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"
