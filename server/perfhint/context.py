"""The `# perfhint: key=value ...` directives, read with a safe literal evaluator.

A directive tells the model what it cannot see in the code: the GPU, the input shapes and dtypes,
or the arguments a function is called with. It sits in the comment line(s) directly above a region
(above its decorators); C and C++ use `//`. Examples:

    # perfhint: gpu=H100 shape=(4096, 4096) dtype=fp16
    # perfhint: args=(10**6, [0]*1000)
    # perfhint: off

What is hard:

- The values are Python literals with arithmetic (`10**6`, `[0]*1000`, `2**20 // 3`), and they come
  from whatever file the editor has open. They are evaluated by walking `ast` nodes ourselves, never
  by eval/exec/compile-to-code: names, calls, attributes, subscripts, comprehensions, lambdas,
  comparisons, f-strings and `%`-formatting are rejected with a message the hover can show.
- Plain literals can still be resource bombs: `[0]*10**12` asks for 8 TB and `10**10**10` for a
  number with ten billion digits; `"%*d" % (10**9, 1)` for a 1 GB string. So every operation checks
  the size of its result from the sizes of its operands *before* computing it (items created across
  the whole value, bits of an integer), and the text and its nesting depth are capped before the
  evaluator (which recurses) starts. A rejection takes well under a millisecond.
  The caps are low on purpose: regions are recomputed on every keystroke, and the model reads the
  value's *text* (`Context.texts`), not the value, so a 10**8-element list need not exist in memory
  for its hint to be predicted; `args=([0]*10**8,)` is kept as text with an error saying the value
  was too large to build.
- Splitting `key=value` pairs must respect brackets and quotes (`shape=(4096, 4096)` has a space),
  so a small scanner finds keys only at bracket depth 0 outside strings. Pairs are separated by
  whitespace, not commas (a trailing comma would change `args=1,` into a tuple).
- `gpu=H100` and `dtype=fp16` are bare words, not Python literals: for those keys (and unknown keys)
  a value that is not a literal but looks like a word (`H100`, `A100-80GB`, `torch.float16`) is kept
  as a string. A standalone `off` anywhere on the line silences the region.
- `args` is the tuple of positional arguments: `args=10**6` means one argument and is stored as
  `(10**6,)`; a single tuple argument is written `args=((1, 2),)`. regions.py also fills `args`
  (and `kwargs`) from a literal call of the function in the same file, through the same evaluator.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field, replace

DIRECTIVE_PREFIX = "perfhint:"
KNOWN_KEYS = ("args", "kwargs", "gpu", "shape", "dtype")
BARE_WORD_KEYS = ("gpu", "dtype")  # keys whose values may be written without quotes (so may unknown keys)

MAX_TEXT_CHARS = 10_000  # longer value texts are rejected before parsing (a deep `1+1+...` overflows the parser)
MAX_ITEMS = 1_000_000  # container items plus string/bytes characters created while evaluating one value
MAX_DEPTH = 100  # syntax tree levels; deeper values are refused before evaluation (which recurses)
MAX_INT_BITS = 10_000  # about 3,000 decimal digits; `10**10**10` is refused before it is computed

_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-+]*\Z")
_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)")
_OFF = re.compile(r"off(?=\s|$)", re.IGNORECASE)


class UnsafeLiteral(ValueError):
    """A perfhint value that is not a plain literal, or whose result would be too large to build."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large  # a literal refused only for its size: its text is still worth reading


@dataclass(frozen=True)
class Context:
    values: dict[str, object] = field(default_factory=dict)  # parsed values: "gpu", "shape", "dtype", "args", ...
    texts: dict[str, str] = field(default_factory=dict)  # each value's source text as written: the model reads text
    off: bool = False  # `# perfhint: off`: show nothing for this region
    args_source: str | None = None  # "comment" | "call" | None (arguments unknown)
    errors: tuple[str, ...] = ()  # readable problems for the hover; a region with errors is still annotated


EMPTY_CONTEXT = Context()


# ----------------------------------------------------------------------------------------------
# Directives


def directive_body(comment_line: str) -> str | None:
    """The text after `perfhint:` in one comment line (`#` or `//`), or None if it is not a directive."""
    text = comment_line.strip()
    if text.startswith("#"):
        text = text[1:]
    elif text.startswith("//"):
        text = text[2:]
    else:
        return None
    text = text.strip()
    if not text.lower().startswith(DIRECTIVE_PREFIX):
        return None
    return text[len(DIRECTIVE_PREFIX):].strip()


def parse_directive(comment_text: str) -> Context | None:
    """Parse one or more comment lines; None if none of them is a `perfhint:` directive.

    Later lines override earlier ones for the same key. Problems go to `Context.errors`; the keys
    that did parse are kept.
    """
    bodies = [body for line in comment_text.splitlines() if (body := directive_body(line)) is not None]
    if not bodies:
        return None
    values: dict[str, object] = {}
    texts: dict[str, str] = {}
    errors: list[str] = []
    off = False
    for body in bodies:
        words, pairs, body_off, split_errors = _split_pairs(body)
        errors.extend(split_errors)
        off = off or body_off
        unexpected = " ".join(words)
        if unexpected:
            errors.append(f"perfhint: unexpected {unexpected!r}; write key=value pairs like "
                          f"`gpu=H100 args=(10**6,)`, or `off`")
        for key, text in pairs:
            value, error, keep_text = _parse_value(key, text)
            values.pop(key, None)
            texts.pop(key, None)
            if key not in KNOWN_KEYS:
                errors.append(f"perfhint: unknown key {key!r} kept, but the model may ignore it "
                              f"(known keys: {', '.join(KNOWN_KEYS)})")
            if key == "args" and not (isinstance(value, tuple) if error is None else _is_tuple_syntax(text)):
                # `args=10**6` means one argument; a single tuple argument needs `args=((1, 2),)`.
                value, text = (value,), f"({text},)"
            if error is not None:
                errors.append(error)
                if keep_text:
                    texts[key] = text
                continue
            values[key], texts[key] = value, text
    return Context(values=values, texts=texts, off=off,
                   args_source="comment" if "args" in texts else None, errors=tuple(errors))


def with_defaults(context: Context, defaults: dict[str, str]) -> Context:
    """Fill keys the directive did not set from settings, e.g. {"gpu": "H100"} from perfhint.targetGpu."""
    values, texts, errors = dict(context.values), dict(context.texts), list(context.errors)
    changed = False
    for key, raw_text in defaults.items():
        text = raw_text.strip()
        if key in texts or not text:
            continue
        changed = True
        value, error, _ = _parse_value(key, text)
        if error is not None:
            errors.append(f"{error} (from the setting for {key!r})")
            continue
        values[key], texts[key] = value, text
    if not changed:
        return context
    args_source = context.args_source or ("comment" if "args" in texts else None)
    return replace(context, values=values, texts=texts, errors=tuple(errors), args_source=args_source)


def _split_pairs(body: str) -> tuple[list[str], list[tuple[str, str]], bool, list[str]]:
    """Split `a=1 b=(2, 3) off` into (unexpected words, (key, value text) pairs, off, errors).

    Keys are found at bracket depth 0, outside strings, after whitespace; so is a standalone `off`,
    which ends the value before it. A value runs to the next key, spaces included (`n=2 ** 20`).
    """
    key_starts: list[tuple[int, int, str | None]] = []  # (start of key, start of value, key; None for `off`)
    depth, quote, index = 0, "", 0
    while index < len(body):
        char = body[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if body.startswith(quote, index):
                index += len(quote)
                quote = ""
                continue
        elif char in "\"'":
            quote = body[index:index + 3] if body[index:index + 3] in ('"""', "'''") else char
            index += len(quote)
            continue
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and (index == 0 or body[index - 1].isspace()):
            match = _KEY.match(body, index)
            if match:
                key_starts.append((index, match.end(), match.group(1)))
                index = match.end()
                continue
            if _OFF.match(body, index):
                key_starts.append((index, index + 3, None))
                index += 3
                continue
        index += 1
    errors: list[str] = []
    first_key = key_starts[0][0] if key_starts else len(body)
    words = body[:first_key].split()
    pairs: list[tuple[str, str]] = []
    off = False
    for position, (_, value_start, key) in enumerate(key_starts):
        value_end = key_starts[position + 1][0] if position + 1 < len(key_starts) else len(body)
        text = body[value_start:value_end].strip()
        if key is None:
            off = True
            words.extend(text.split())
        elif not text:
            errors.append(f"perfhint: {key}= has no value")
        else:
            pairs.append((key, text))
    return words, pairs, off, errors


def _parse_value(key: str, text: str) -> tuple[object, str | None, bool]:
    """(value, error, keep_text): keep_text says a refused value's text is still worth reading."""
    try:
        value = safe_literal(text)
    except UnsafeLiteral as error:
        if (key in BARE_WORD_KEYS or key not in KNOWN_KEYS) and _BARE_WORD.match(text):
            return text, None, True
        if text.endswith(","):
            return None, f"perfhint: {key}={text}: separate key=value pairs with spaces, not commas", False
        return None, f"perfhint: {key}={text}: {error}", error.too_large
    if key in BARE_WORD_KEYS and not isinstance(value, str):
        example = "H100" if key == "gpu" else "fp16"
        return None, f"perfhint: {key}={text}: expected a name such as {example}", False
    if key == "kwargs" and not (isinstance(value, dict) and all(isinstance(name, str) for name in value)):
        return None, f"perfhint: kwargs={text}: expected a dict with string keys, e.g. {{'n': 10**6}}", False
    if key == "shape" and not _is_shape(value):
        return None, (f"perfhint: shape={text}: expected non-negative integers, "
                      f"e.g. (4096, 4096) or ((64, 32), (32, 16))"), False
    return value, None, True


def _is_tuple_syntax(text: str) -> bool:
    try:
        return isinstance(ast.parse(text.strip(), mode="eval").body, ast.Tuple)
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return True  # unreadable: leave the text as written


def _is_shape(value: object) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    return isinstance(value, (tuple, list)) and all(_is_shape(item) for item in value)


# ----------------------------------------------------------------------------------------------
# The safe literal evaluator


_NODE_NAMES: dict[type, str] = {
    ast.Name: "a name", ast.Call: "a call", ast.Attribute: "attribute access",
    ast.Subscript: "indexing or slicing", ast.ListComp: "a comprehension", ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.GeneratorExp: "a generator expression", ast.Lambda: "a lambda",
    ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.IfExp: "a conditional expression",
    ast.JoinedStr: "an f-string", ast.NamedExpr: "an assignment expression", ast.Starred: "unpacking with *",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield", ast.Slice: "a slice",
}


def safe_literal(text: str) -> object:
    """Evaluate a Python literal with numeric arithmetic, or raise UnsafeLiteral with a readable reason."""
    if len(text) > MAX_TEXT_CHARS:
        raise UnsafeLiteral(f"value is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        if "Exceeds the limit" in str(error.msg):  # a literal with more than 4,300 digits
            raise UnsafeLiteral("integer too large to read", too_large=True) from None
        raise UnsafeLiteral(f"not a Python literal ({error.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise UnsafeLiteral("value is too deeply nested to read") from None
    if _depth_over(tree.body, MAX_DEPTH):
        raise UnsafeLiteral(f"value is too deeply nested to read (more than {MAX_DEPTH} levels)")
    evaluator = _Evaluator(text)
    try:
        return evaluator.evaluate(tree.body)
    except RecursionError:
        raise UnsafeLiteral("value is too deeply nested to read") from None
    except ZeroDivisionError:
        raise UnsafeLiteral("division by zero") from None
    except OverflowError:
        raise UnsafeLiteral("number too large", too_large=True) from None
    except TypeError as error:
        raise UnsafeLiteral(f"unsupported operation ({error})") from None


def _depth_over(root: ast.AST, limit: int) -> bool:
    """Iteratively, so that a 4,000-term `1+1+...` is refused without recursing 4,000 frames deep."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return False


class _Evaluator:
    def __init__(self, text: str) -> None:
        self.text = text
        self.items_left = MAX_ITEMS

    def spend(self, n_items: int) -> None:
        if n_items > self.items_left:
            raise UnsafeLiteral(f"value too large to build: it would create more than {MAX_ITEMS:,} items "
                                f"(the model still reads the text)", too_large=True)
        self.items_left -= n_items

    def reject(self, node: ast.AST) -> UnsafeLiteral:
        what = _NODE_NAMES.get(type(node), f"{type(node).__name__} syntax")
        snippet = ast.get_source_segment(self.text.strip(), node) or ast.unparse(node)
        return UnsafeLiteral(f"{what} is not allowed in a perfhint value: {snippet!r}; "
                             f"use literals and arithmetic on numbers, e.g. 10**6, [0]*1000, (4096, 4096)")

    def evaluate(self, node: ast.AST) -> object:
        if isinstance(node, ast.Constant):
            value = node.value
            if value is Ellipsis:
                raise UnsafeLiteral("`...` is not allowed in a perfhint value")
            if isinstance(value, (str, bytes)):
                self.spend(len(value))
            if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
                raise UnsafeLiteral(f"integer too large: more than {MAX_INT_BITS:,} bits", too_large=True)
            return value
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            self.spend(len(node.elts))
            items = [self.evaluate(element) for element in node.elts]
            if isinstance(node, ast.Tuple):
                return tuple(items)
            return list(items) if isinstance(node, ast.List) else set(items)
        if isinstance(node, ast.Dict):
            if any(key is None for key in node.keys):
                raise UnsafeLiteral("dict unpacking with ** is not allowed in a perfhint value")
            self.spend(len(node.keys))
            return {self.evaluate(key): self.evaluate(value)  # type: ignore[arg-type]
                    for key, value in zip(node.keys, node.values)}
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                raise UnsafeLiteral("`not` is not allowed in a perfhint value")
            operand = self.evaluate(node.operand)
            if not _is_number(operand) or (isinstance(node.op, ast.Invert) and not isinstance(operand, int)):
                raise UnsafeLiteral(f"unary {_op_symbol(node.op)} needs a number, got {type(operand).__name__}")
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return +operand
            return ~operand
        if isinstance(node, ast.BinOp):
            return self.binary(node, self.evaluate(node.left), self.evaluate(node.right))
        raise self.reject(node)

    def binary(self, node: ast.BinOp, left: object, right: object) -> object:
        op = node.op
        symbol = _op_symbol(op)
        if _is_number(left) and _is_number(right):
            return self.arithmetic(op, left, right)
        # Sequences: only + (concatenation) and * (repetition), sized before they are built.
        if isinstance(op, ast.Add) and type(left) is type(right) and isinstance(left, (str, bytes, tuple, list)):
            self.spend(len(left) + len(right))
            return left + right
        if isinstance(op, ast.Mult):
            sequence, count = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(sequence, (str, bytes, tuple, list)) and isinstance(count, int):
                self.spend(len(sequence) * max(count, 0))
                return sequence * count
        raise UnsafeLiteral(f"unsupported operation: {type(left).__name__} {symbol} {type(right).__name__} "
                            f"(only arithmetic on numbers, sequence + sequence and sequence * int)")

    def arithmetic(self, op: ast.operator, left: complex, right: complex) -> object:
        both_ints = isinstance(left, int) and isinstance(right, int)
        if isinstance(op, ast.Pow):
            if both_ints and right > 0 and abs(left) > 1:
                # Result bits ~= exponent * log2(base): decide before computing.
                if right * math.log2(abs(left)) > MAX_INT_BITS:
                    raise UnsafeLiteral(f"integer too large: {_short(left)}**{_short(right)} has more than "
                                        f"{MAX_INT_BITS:,} bits", too_large=True)
            # Otherwise the result is a float, a complex or an integer of magnitude <= 1: all cheap.
            result = left ** right
        elif isinstance(op, ast.LShift):
            if not both_ints:
                raise UnsafeLiteral("<< needs integers")
            if right > 0 and left.bit_length() + right > MAX_INT_BITS:
                raise UnsafeLiteral(f"integer too large: {_short(left)} << {_short(right)} has more than "
                                    f"{MAX_INT_BITS:,} bits", too_large=True)
            result = left << right
        elif isinstance(op, (ast.RShift, ast.BitAnd, ast.BitOr, ast.BitXor)):
            if not both_ints:
                raise UnsafeLiteral(f"{_op_symbol(op)} needs integers")
            result = {ast.RShift: int.__rshift__, ast.BitAnd: int.__and__, ast.BitOr: int.__or__,
                      ast.BitXor: int.__xor__}[type(op)](left, right)
        elif isinstance(op, ast.Add):
            result = left + right
        elif isinstance(op, ast.Sub):
            result = left - right
        elif isinstance(op, ast.Mult):
            result = left * right  # both operands are capped, so the product is at most twice the cap
        elif isinstance(op, ast.Div):
            result = left / right
        elif isinstance(op, ast.FloorDiv):
            result = left // right
        elif isinstance(op, ast.Mod):
            result = left % right
        else:  # @ (matrix multiply)
            raise UnsafeLiteral(f"unsupported operator {_op_symbol(op)}")
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise UnsafeLiteral(f"integer too large: more than {MAX_INT_BITS:,} bits", too_large=True)
        return result


def _short(number: int) -> str:
    return str(number) if abs(number) < 10**15 else f"(a {len(str(abs(number)))}-digit number)"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, complex))


def _op_symbol(op: ast.AST) -> str:
    return {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
            ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|",
            ast.BitXor: "^", ast.MatMult: "@", ast.USub: "-", ast.UAdd: "+", ast.Invert: "~",
            ast.Not: "not"}.get(type(op), type(op).__name__)
