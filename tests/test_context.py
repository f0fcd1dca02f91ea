"""The `# perfhint:` directives and the safe literal evaluator.

Directives are a golden file: tests/data/context/directives.txt (cases separated by blank lines) ->
directives.expected. `UPDATE_EXPECT=1 pytest tests/test_context.py` rewrites it; review with `git diff`.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import pytest

from perfhint.context import EMPTY_CONTEXT, Context, UnsafeLiteral, parse_directive, safe_literal, with_defaults

DATA = Path(__file__).parent / "data" / "context"
TIME_LIMIT_S = 0.05  # every value, accepted or refused, is decided in well under this


def _start_clock() -> float:
    # A full garbage collection owed by earlier tests (the surveys allocate a lot) once landed inside
    # a 1 ms refusal and took 60 ms: collect first, so the clock measures the evaluator alone.
    gc.collect()
    return time.perf_counter()


def check_literal(text: str, expected: object) -> None:
    started = _start_clock()
    value = safe_literal(text)
    assert time.perf_counter() - started < TIME_LIMIT_S
    assert value == expected and type(value) is type(expected)


def check_rejected(text: str, message: str) -> None:
    started = _start_clock()
    with pytest.raises(UnsafeLiteral) as raised:
        safe_literal(text)
    assert time.perf_counter() - started < TIME_LIMIT_S, f"refusing {text[:40]!r} took too long"
    assert message in str(raised.value)


ACCEPTED = [
    ("10**6", 10**6),
    ("[0]*1000", [0] * 1000),
    ("(1, 2) + (3,)", (1, 2, 3)),
    ('"ab"*3', "ababab"),
    ("3 * 'ab'", "ababab"),
    ("-5", -5),
    ("1e6", 1e6),
    ("2**20 // 3", 2**20 // 3),
    ("1 << 20", 1 << 20),
    ("(4096, 4096)", (4096, 4096)),
    ("((1, [2, 3]), {'k': {4, 5}}, None, True, False)", ((1, [2, 3]), {"k": {4, 5}}, None, True, False)),
    ("[[0] * 1000] * 1000", [[0] * 1000] * 1000),  # a million references to one list: 2,000 items built
    ("b'x' * 3", b"xxx"),
    ("7 % 3 + 7 // 2 - ~1 | 8 & 12 ^ 1", 7 % 3 + 7 // 2 - ~1 | 8 & 12 ^ 1),
    ("7 / 2 - 0.5", 3.0),
    ("(-1) ** 10**10", 1),
    ("2 ** -10**10", 0.0),
    ("[0] * -5", []),
    ("'a' 'b'", "ab"),
    ("1_000_000", 1_000_000),
    ("()", ()),
]

REJECTED = [
    ("n", "a name is not allowed in a perfhint value: 'n'"),
    ("range(10)", "a call is not allowed"),
    ("x.shape", "attribute access is not allowed"),
    ("x[0]", "indexing or slicing is not allowed"),
    ("[i for i in range(3)]", "a comprehension is not allowed"),
    ("{k: 1 for k in 'ab'}", "a comprehension is not allowed"),
    ("lambda: 0", "a lambda is not allowed"),
    ("1 if True else 2", "a conditional expression is not allowed"),
    ("1 < 2", "a comparison is not allowed"),
    ("f'{x}'", "an f-string is not allowed"),
    ("[*a]", "unpacking with * is not allowed"),
    ("{**a}", "dict unpacking with ** is not allowed"),
    ("not 1", "`not` is not allowed"),
    ("...", "`...` is not allowed"),
    ("__import__('os').system('true')", "a call is not allowed"),
    ("(1, 2", "not a Python literal"),
    ("1 / 0", "division by zero"),
    ("'a' + 1", "unsupported operation: str + int"),
    ("'%s' % 1", "unsupported operation: str % int"),
    ("{[1]: 2}", "unhashable type: 'list'"),
    ("-'a'", "unary - needs a number"),
    # Resource bombs: refused from the operands' sizes, before anything is built.
    ("[0]*10**12", "value too large to build"),
    ("'ab' * 10**12", "value too large to build"),
    ("(0,) * 999_999 + (0,) * 999_999", "value too large to build"),
    ("10**10**10", "integer too large: 10**10000000000"),
    ("9**9**9", "integer too large"),
    ("2**100000", "integer too large"),
    ("1 << 10**9", "integer too large"),
    ("7 ** (10**100)", "integer too large: 7**(a 101-digit number)"),
    ("10**3000 * 10**3000", "integer too large"),
    ("1.5 ** 10**10", "number too large"),
    ('"%*d" % (10**9, 1)', "unsupported operation: str % tuple"),
    ("1" * 5000, "integer too large to read"),
    ("(" * 300 + "1" + ")" * 300, "not a Python literal (too many nested parentheses)"),
    ("1" + "+1" * 4000, "too deeply nested"),
    ("1" + "+1" * 150, "too deeply nested to read (more than 100 levels)"),
    ("[" * 150 + "]" * 150, "too deeply nested"),
    ("1" + "+1" * 6000, "the limit is 10,000"),
]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[text[:30] for text, _ in ACCEPTED])
def test_accepted(text: str, expected: object) -> None:
    check_literal(text, expected)


@pytest.mark.parametrize(("text", "message"), REJECTED, ids=[text[:30] for text, _ in REJECTED])
def test_rejected(text: str, message: str) -> None:
    check_rejected(text, message)


def test_size_refusals_are_marked_too_large() -> None:
    # A value refused for its size alone still carries meaning as text; syntax refusals do not.
    for text, too_large in (("[0]*10**12", True), ("10**10**10", True), ("n", False), ("f(1)", False)):
        with pytest.raises(UnsafeLiteral) as raised:
            safe_literal(text)
        assert raised.value.too_large is too_large


# ----------------------------------------------------------------------------------------------
# Directives


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 70 else f"{text[:60]}... ({len(text)} characters)"


def render_context(context: Context | None) -> str:
    if context is None:
        return "not a directive"
    lines = [f"{key}: {context.texts[key]!r} -> {_short_repr(context.values[key])}" if key in context.values
             else f"{key}: {context.texts[key]!r} (not built)" for key in context.texts]
    lines.append(f"off={context.off} args_source={context.args_source}")
    lines.extend(f"error: {error}" for error in context.errors)
    return "\n".join(lines)


def test_directives() -> None:
    cases = [case for case in (DATA / "directives.txt").read_text().split("\n\n") if case.strip()]
    actual = "\n\n".join(f"{case.strip()}\n=> " + render_context(parse_directive(case)).replace("\n", "\n   ")
                         for case in cases) + "\n"
    expected_path = DATA / "directives.expected"
    if os.environ.get("UPDATE_EXPECT") == "1" or not expected_path.exists():
        expected_path.write_text(actual)
    assert actual == expected_path.read_text(), "directive parsing changed; UPDATE_EXPECT=1 to accept"


def check_defaults(comment: str | None, defaults: dict[str, str], expected: dict[str, object],
                   n_errors: int = 0) -> None:
    context = parse_directive(comment) if comment else EMPTY_CONTEXT
    filled = with_defaults(context or EMPTY_CONTEXT, defaults)
    assert filled.values == expected
    assert len(filled.errors) == n_errors


def test_defaults_fill_missing_keys() -> None:
    check_defaults(None, {"gpu": "H100"}, {"gpu": "H100"})


def test_defaults_never_override_the_directive() -> None:
    check_defaults("# perfhint: gpu=A100", {"gpu": "H100", "dtype": "fp16"}, {"gpu": "A100", "dtype": "fp16"})


def test_defaults_ignore_empty_settings() -> None:
    check_defaults("# perfhint: off", {"gpu": ""}, {})


def test_bad_default_is_reported_not_raised() -> None:
    check_defaults(None, {"shape": "(n, 4)"}, {}, n_errors=1)


def test_defaults_leave_the_context_unchanged_when_nothing_applies() -> None:
    context = parse_directive("# perfhint: gpu=A100")
    assert with_defaults(context, {"gpu": "H100"}) is context
