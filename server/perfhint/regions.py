"""What to annotate in a source text: functions, scripts, C/C++ programs and Triton kernel launches.

A region is a piece of code the model gets as text, plus the line(s) where its number is shown.
Python functions and methods are `function` regions; a Python function that launches a Triton kernel
defined in the same file (`kernel[grid](...)`) is a `triton_kernel` region whose text is the launched
kernels followed by the launcher; a Python module with top-level executable code is a `script`; a C or
C++ translation unit with `main` is a `program`. Other C/C++ functions get no region: nothing per
function can be measured honestly yet.

What is hard:

- **Half-typed code.** Regions are recomputed on every keystroke, so most of the texts we see do not
  parse. We use the tree-sitter grammars (never a hand-written parser) for their error recovery, but
  that recovery is local: an unclosed `(` in one function can swallow every function after it into
  an ERROR node. When a Python tree has errors we parse again, one top-level chunk at a time: a
  chunk starts at each line that begins, in column 0 and outside any string, with `def`, `async def`,
  `class` or a decorator (a decorator and the definition it decorates stay together). Each chunk is
  parsed with tree-sitter's `included_ranges`, so positions stay those of the whole file and the
  damage stays inside the chunk being edited. Alone, a chunk can also parse worse than in context,
  so per chunk we keep whichever parse finds more definitions. Limitations: an error inside a class
  body can still hide the methods after it (chunks only split at column 0), and a `def` whose own
  signature is half-typed is not a function yet. A region whose text contains a syntax error is
  still returned, with `has_error=True`, so its hint does not flicker while typing. C and C++ get
  the same treatment for `main` only: if an error above it (C++ in a .c file) swallows it, we parse
  again from each column-0 line that looks like main's signature.
- **Stable keys.** Hints are cached and diffed by `Region.key`, which must survive edits elsewhere in
  the file. So the key is `kind:qualified_name` (`function:Matrix.mul`, `function:outer.inner`),
  never a line number. Two definitions with the same qualified name (a property getter and setter,
  redefinitions, `@overload`) get `#2`, `#3`... in file order: the only tie-breaker there is.
- **Which functions are Triton kernels.** A kernel is a function decorated with `jit`, `autotune` or
  `heuristics` from triton: `@triton.jit`, `@triton.jit(...)`, `@triton.autotune(...)`, an alias of
  the module (`import triton as tr`), or names imported from it (`from triton import jit`); `@jit`
  from numba is not one. A launch is `name[grid](...)` or `obj.name[grid](...)` where `name` is a
  kernel of this file; kernels imported from another module are out of reach, so their launcher is
  a plain function. Kernels are not regions of their own: their text belongs to every launcher that
  launches them, and their `def` line shows the launcher's number too (`hint_lines`); two launchers
  sharing a kernel both list its line. A directive above a kernel applies to every launcher of it;
  the launcher's own directive wins key by key. We also put the `@triton.jit` helpers that the
  launched kernels call (transitively) into the text, in file order, because they are inlined into
  the kernel and cost GPU time. A launch at module level (outside any function) gives no
  triton_kernel region: there is no launcher to show it on.
- **Scripts.** A module is a script if it has an `if __name__ == "__main__":` guard or a top-level
  statement other than imports, definitions, docstrings, `pass`, and assignments whose right-hand
  side has no call (`BLOCK = 1024`, `Tensor = torch.Tensor`); `try`/`if` blocks made only of those
  (conditional imports, `if TYPE_CHECKING:`) are declarations too. So `logger = getLogger(__name__)`
  makes a module a script: it runs code on import. The hint is on the guard line when there is a
  guard (that is where "run this file" reads naturally, and the line is stable while functions
  above it are edited), otherwise on line 0. Its directive is the comment block directly above the
  guard, or, without a guard, `# perfhint:` lines in the file's leading comment block that are not
  attached to a definition on the next line.
- **Size.** Sources over MAX_SOURCE_BYTES raise SourceTooLarge before anything is parsed: the caller
  shows its message once instead of hints. Finding regions is linear (measured on the 2-core dev
  machine: 0.6 s for 2 MB of Python, 1.2 s with a syntax error; a 5 MB file is refused in about
  1 ms), but it runs on every edit, the model only reads the first few thousand tokens of a region,
  and a multi-megabyte source is almost always generated code or data.

Lines are 0-based and counted by `\\n`, as tree-sitter and the LSP count them (a lone `\\r` line ending
is not a line break here). `Region.code` has `\\r\\n` normalised to `\\n` and is dedented, so a method
reads like a top-level function.
"""

from __future__ import annotations

import bisect
import functools
import logging
import os
import re
import textwrap
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from tree_sitter import Language, Node, Parser, Point, Query, QueryCursor, Range, Tree

from perfhint.context import EMPTY_CONTEXT, Context, UnsafeLiteral, parse_directive, safe_literal

log = logging.getLogger(__name__)

MAX_SOURCE_BYTES = 2 * 1024 * 1024

LANGUAGE_BY_SUFFIX = {
    ".py": "python", ".pyi": "python",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp",
}
TRITON_DECORATORS = frozenset({"jit", "autotune", "heuristics"})
SCRIPT_NAME = "<module>"
CODE_PIECE_SEPARATOR = "\n\n"  # between the kernels and the launcher in a triton_kernel region's code


class SourceTooLarge(ValueError):
    """The source is over MAX_SOURCE_BYTES; the message is meant to be shown to the user as is."""

    def __init__(self, size_bytes: int, limit_bytes: int = MAX_SOURCE_BYTES) -> None:
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(f"perfhint: no hints for this file: it is {size_bytes / 2**20:.1f} MB, over the "
                         f"{limit_bytes / 2**20:.0f} MB limit (split it into smaller files to get hints)")


@dataclass(frozen=True)
class Region:
    key: str  # stable across edits: f"{kind}:{qualified_name}", e.g. "function:Matrix.mul", "script:<module>"
    name: str  # qualified name (Class.method, outer.inner); "<module>" for a script, "main" for a program
    kind: str  # "function" | "script" | "program" | "triton_kernel"
    language: str  # "python" | "c" | "cpp"
    line: int  # 0-based line where the hint is shown (at the end of the line)
    hint_lines: tuple[int, ...]  # every line that shows this region's number, ascending
    start_line: int  # 0-based inclusive span of the region's own text (with decorators)
    end_line: int
    code: str  # the text the model reads
    context: Context  # from the `# perfhint:` comment above, or args from a literal call
    has_error: bool = False  # the region's code contains a syntax error (the user is mid-edit)
    code_spans: tuple[tuple[int, int], ...] = ()  # 0-based inclusive line spans of the pieces of `code`, in order


def language_for_path(path: str) -> str | None:
    return LANGUAGE_BY_SUFFIX.get(os.path.splitext(path)[1].lower())


def find_regions(source: str, language: str) -> list[Region]:
    """The regions of `source`, in file order. Raises SourceTooLarge over MAX_SOURCE_BYTES."""
    if len(source) > MAX_SOURCE_BYTES:  # characters <= bytes: reject without encoding 5 MB
        raise SourceTooLarge(len(source.encode("utf-8", "surrogatepass")))
    data = source.encode("utf-8", "surrogatepass")
    if len(data) > MAX_SOURCE_BYTES:
        raise SourceTooLarge(len(data))
    text = _SourceText(source, data)
    if language == "python":
        regions = _python_regions(text)
    elif language in ("c", "cpp"):
        regions = _program_regions(text, language)
    else:
        log.debug("no regions: unsupported language %r", language)
        return []
    return sorted(regions, key=lambda region: (region.line, region.start_line, region.key))


# ----------------------------------------------------------------------------------------------
# Shared plumbing


@functools.cache
def _language(name: str) -> Language:
    if name == "python":
        import tree_sitter_python as grammar
    elif name == "c":
        import tree_sitter_c as grammar
    else:
        import tree_sitter_cpp as grammar
    return Language(grammar.language())


@functools.cache
def _query(language: str, pattern: str) -> Query:
    return Query(_language(language), pattern)


def _captures(language: str, pattern: str, node: Node, name: str) -> list[Node]:
    return QueryCursor(_query(language, pattern)).captures(node).get(name, [])


class _SourceText:
    """The source as lines (for code and comments) and bytes (for tree-sitter)."""

    def __init__(self, source: str, data: bytes) -> None:
        self.source = source
        self.data = data
        self.lines = [line.removesuffix("\r") for line in source.split("\n")]
        if len(self.lines) > 1 and self.lines[-1] == "":
            self.lines.pop()  # a final newline does not start another line of code
        self.last_line = len(self.lines) - 1

    def span(self, start_line: int, end_line: int) -> str:
        return textwrap.dedent("\n".join(self.lines[start_line:end_line + 1]))

    def comment_block_above(self, line: int, prefix: str) -> list[str]:
        """The comment lines directly above `line` (no blank line between), top to bottom."""
        block: list[str] = []
        row = line - 1
        while row >= 0 and self.lines[row].lstrip().startswith(prefix):
            block.append(self.lines[row])
            row -= 1
        return block[::-1]

    def context_above(self, line: int, prefix: str) -> Context:
        block = self.comment_block_above(line, prefix)
        return (parse_directive("\n".join(block)) if block else None) or EMPTY_CONTEXT


def _node_text(node: Node | None) -> str:
    # Error recovery can leave a field empty (a `def` whose name is not typed yet): read it as "".
    return (node.text or b"").decode("utf-8", "replace") if node is not None else ""


def _ancestors(node: Node) -> Iterator[Node]:
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _with_unique_keys(regions: list[Region]) -> list[Region]:
    seen: dict[str, int] = {}
    unique: list[Region] = []
    for region in sorted(regions, key=lambda region: region.start_line):
        count = seen[region.key] = seen.get(region.key, 0) + 1
        unique.append(region if count == 1 else replace(region, key=f"{region.key}#{count}"))
    return unique


# ----------------------------------------------------------------------------------------------
# Python: parsing with chunked error recovery


@dataclass
class _PythonIndex:
    """The nodes the Python side needs, each from the tree that parsed its part of the file best."""
    captures: dict[str, list[Node]]  # query capture name -> nodes, in file order
    statements: list[Node]  # top-level statements
    has_error: bool


def _index_python(text: _SourceText) -> _PythonIndex:
    tree = Parser(_language("python")).parse(text.data)
    query = _query("python", _PYTHON_INDEX)
    full = QueryCursor(query).captures(tree.root_node)
    if not tree.root_node.has_error:
        return _PythonIndex(full, list(tree.root_node.named_children), has_error=False)
    boundaries = _chunk_boundaries(text, tree)
    if len(boundaries) == 1:
        return _PythonIndex(full, list(tree.root_node.named_children), has_error=True)
    line_starts = [0] + [match.end() for match in re.finditer(b"\n", text.data)]
    captures: dict[str, list[Node]] = {}
    statements: list[Node] = []
    full["statement"] = list(tree.root_node.named_children)
    full_starts = {name: [node.start_byte for node in nodes] for name, nodes in full.items()}
    for position, start in enumerate(boundaries):
        end = boundaries[position + 1] if position + 1 < len(boundaries) else None
        start_byte, end_byte = line_starts[start], line_starts[end] if end is not None else len(text.data)
        parser = Parser(_language("python"))
        end_point = Point(end, 0) if end is not None else tree.root_node.end_point
        parser.included_ranges = [Range(Point(start, 0), end_point, start_byte, end_byte)]
        chunk_root = parser.parse(text.data).root_node
        chunk = QueryCursor(query).captures(chunk_root)
        chunk["statement"] = list(chunk_root.named_children)

        def full_within(name: str) -> list[Node]:
            starts = full_starts.get(name, [])
            return full.get(name, [])[bisect.bisect_left(starts, start_byte):bisect.bisect_left(starts, end_byte)]

        # The chunk's own parse keeps an error from spilling past the chunk; but alone, a chunk can
        # also parse worse than in context. Prefer it unless the whole-file parse finds more definitions.
        if len(full_within("function")) > len(chunk.get("function", [])):
            chosen = {name: full_within(name) for name in full}
        else:
            chosen = chunk
        for name, nodes in chosen.items():
            target = statements if name == "statement" else captures.setdefault(name, [])
            target.extend(node for node in nodes if start_byte <= node.start_byte < end_byte)
    return _PythonIndex(captures, statements, has_error=True)


_CHUNK_START = re.compile(r"(?:async[ \t]+def|def|class)\b|@")


def _chunk_boundaries(text: _SourceText, tree: Tree) -> list[int]:
    """Line numbers where top-level chunks start: 0, then each column-0 def/class/decorator chain."""
    boundaries = [0]
    previous_was_decorator = False
    for row, line in enumerate(text.lines):
        match = _CHUNK_START.match(line)
        if not match:
            if line.strip() and not line[0].isspace() and line[0] not in "#)]}":
                previous_was_decorator = False  # other column-0 code ends a decorator chain
            continue
        if _inside_string(tree, row):
            continue
        is_decorator = match.group(0) == "@"
        if not previous_was_decorator and row != 0:
            boundaries.append(row)
        previous_was_decorator = is_decorator
    return boundaries


def _inside_string(tree: Tree, row: int) -> bool:
    node = tree.root_node.descendant_for_point_range(Point(row, 0), Point(row, 0))
    while node is not None:
        if node.type in ("string", "string_content"):
            return node.start_point.row < row
        node = node.parent
    return False


# ----------------------------------------------------------------------------------------------
# Python: functions, Triton launches, scripts

_NAMED_CALLS = "(call function: (identifier) @callee) @call"
# One query, so a 2 MB file is walked once (in C) for everything the Python side needs.
_PYTHON_INDEX = "\n".join([
    "(function_definition) @function",
    "[(import_statement) (import_from_statement)] @import",
    "(call function: (subscript value: (_) @kernel)) @launch",
    _NAMED_CALLS,
])


@dataclass
class _Function:
    node: Node  # the function_definition
    name: str  # qualified
    simple_name: str
    is_top_level: bool  # not inside a class or another function
    start_line: int  # the first decorator's line, or the def line
    def_line: int
    end_line: int
    is_kernel: bool
    inside_kernel: bool = False


def _python_regions(text: _SourceText) -> list[Region]:
    parsed = _index_python(text)
    index = parsed.captures
    triton_modules, triton_names = _triton_imports(index.get("import", []))
    functions = [_function(node, triton_modules, triton_names) for node in index.get("function", [])
                 if _node_text(node.child_by_field_name("name"))]
    kernel_ids = {function.node.id for function in functions if function.is_kernel}
    for function in functions:
        function.inside_kernel = any(ancestor.id in kernel_ids for ancestor in _ancestors(function.node))
    kernels_by_name: dict[str, list[_Function]] = {}
    for function in functions:
        if function.is_kernel and not function.inside_kernel:
            kernels_by_name.setdefault(function.simple_name, []).append(function)

    launched: dict[int, list[_Function]] = {}  # launcher node id -> kernels it launches
    for launch in index.get("launch", []):
        kernel = _launched_kernel(launch, kernels_by_name)
        launcher = _enclosing_function(launch) if kernel is not None else None
        if launcher is None or launcher.id in kernel_ids:
            continue
        kernels = launched.setdefault(launcher.id, [])
        if all(known is not kernel for known in kernels):
            kernels.append(kernel)

    calls = _literal_call_candidates(index.get("call", []), {f.simple_name for f in functions if f.is_top_level})
    regions: list[Region] = []
    for function in functions:
        if function.is_kernel or function.inside_kernel:
            continue
        context = text.context_above(function.start_line, "#")
        if function.node.id in launched:
            pieces = _with_helpers(launched[function.node.id], kernels_by_name)
            spans = tuple((piece.start_line, piece.end_line) for piece in pieces) + (
                (function.start_line, function.end_line),)
            code = CODE_PIECE_SEPARATOR.join(text.span(start, end) for start, end in spans)
            hint_lines = tuple(sorted({function.def_line, *(kernel.def_line for kernel in launched[function.node.id])}))
            kernel_contexts = [text.context_above(kernel.start_line, "#") for kernel in launched[function.node.id]]
            context = _merged([*kernel_contexts, context])
            kind = "triton_kernel"
            has_error = function.node.has_error or any(piece.node.has_error for piece in pieces)
        else:
            spans = ((function.start_line, function.end_line),)
            code = text.span(function.start_line, function.end_line)
            hint_lines = (function.def_line,)
            kind = "function"
            has_error = function.node.has_error
        if function.is_top_level and not context.off and context.args_source is None:
            context = _with_call_args(context, calls.get(function.simple_name, ()), function.node)
        regions.append(Region(
            key=f"{kind}:{function.name}", name=function.name, kind=kind, language="python",
            line=function.def_line, hint_lines=hint_lines, start_line=function.start_line,
            end_line=function.end_line, code=code, context=context, has_error=has_error, code_spans=spans))
    script = _script_region(text, parsed)
    if script is not None:
        regions.append(script)
    return _with_unique_keys(regions)


def _merged(contexts: list[Context]) -> Context:
    """Directives above the launched kernels, then above the launcher: later ones win per key."""
    present = [context for context in contexts if context is not EMPTY_CONTEXT]
    if len(present) <= 1:
        return present[0] if present else EMPTY_CONTEXT
    values: dict[str, object] = {}
    texts: dict[str, str] = {}
    errors: list[str] = []
    for context in present:
        for key in context.texts:
            values.pop(key, None)
        values.update(context.values)
        texts.update(context.texts)
        errors.extend(error for error in context.errors if error not in errors)
    return Context(values=values, texts=texts, off=any(context.off for context in present),
                   args_source="comment" if "args" in texts else None, errors=tuple(errors))


def _triton_imports(imports: list[Node]) -> tuple[set[str], dict[str, str]]:
    """Names bound to the triton module, and bare names bound to triton's jit/autotune/heuristics."""
    modules = {"triton"}  # `@triton.jit` is recognised even if the import is elsewhere (a partial paste)
    names: dict[str, str] = {}
    for statement in imports:
        if statement.type == "import_statement":
            for item in statement.children_by_field_name("name"):
                if item.type == "aliased_import" and _node_text(item.child_by_field_name("name")) == "triton":
                    modules.add(_node_text(item.child_by_field_name("alias")))
            continue
        if _node_text(statement.child_by_field_name("module_name")) != "triton":
            continue
        for item in statement.children_by_field_name("name"):
            if item.type == "aliased_import":
                original = _node_text(item.child_by_field_name("name"))
                bound = _node_text(item.child_by_field_name("alias"))
            else:
                original = bound = _node_text(item)
            if original in TRITON_DECORATORS:
                names[bound] = original
    return modules, names


def _function(node: Node, triton_modules: set[str], triton_names: dict[str, str]) -> _Function:
    simple_name = _node_text(node.child_by_field_name("name"))
    scopes = [_node_text(ancestor.child_by_field_name("name")) for ancestor in _ancestors(node)
              if ancestor.type in ("function_definition", "class_definition")]
    outer = node.parent if node.parent is not None and node.parent.type == "decorated_definition" else node
    decorators = [child for child in outer.children if child.type == "decorator"] if outer is not node else []
    return _Function(
        node=node, name=".".join([*reversed(scopes), simple_name]), simple_name=simple_name,
        is_top_level=not scopes, start_line=outer.start_point.row, def_line=node.start_point.row,
        end_line=node.end_point.row,
        is_kernel=any(_is_triton_decorator(decorator, triton_modules, triton_names) for decorator in decorators))


def _is_triton_decorator(decorator: Node, triton_modules: set[str], triton_names: dict[str, str]) -> bool:
    expression = decorator.named_children[0] if decorator.named_children else None
    if expression is not None and expression.type == "call":
        expression = expression.child_by_field_name("function")
    if expression is None:
        return False
    dotted = re.sub(r"\s+", "", _node_text(expression)).split(".")
    if len(dotted) == 1:
        return dotted[0] in triton_names
    return dotted[0] in triton_modules and dotted[-1] in TRITON_DECORATORS


def _launched_kernel(launch: Node, kernels_by_name: dict[str, list[_Function]]) -> _Function | None:
    reference = launch.child_by_field_name("function").child_by_field_name("value")
    if reference is not None and reference.type == "attribute":
        reference = reference.child_by_field_name("attribute")
    if reference is None or reference.type != "identifier":
        return None
    candidates = kernels_by_name.get(_node_text(reference), [])
    # Python semantics: the last definition before the launch is the one that runs.
    before = [kernel for kernel in candidates if kernel.node.start_byte < launch.start_byte]
    if before:
        return before[-1]
    return candidates[0] if candidates else None


def _enclosing_function(node: Node) -> Node | None:
    return next((ancestor for ancestor in _ancestors(node) if ancestor.type == "function_definition"), None)


def _with_helpers(kernels: list[_Function], kernels_by_name: dict[str, list[_Function]]) -> list[_Function]:
    """The launched kernels plus the @triton.jit functions they call, transitively, in file order."""
    pieces = {kernel.node.id: kernel for kernel in kernels}
    pending = list(kernels)
    while pending:
        kernel = pending.pop()
        for callee in _captures("python", _NAMED_CALLS, kernel.node, "callee"):
            for helper in kernels_by_name.get(_node_text(callee), []):
                if helper.node.id not in pieces:
                    pieces[helper.node.id] = helper
                    pending.append(helper)
    return sorted(pieces.values(), key=lambda piece: piece.node.start_byte)


# ----------------------------------------------------------------------------------------------
# Python: arguments from a literal call in the same file


def _literal_call_candidates(all_calls: list[Node], names: set[str]) -> dict[str, list[Node]]:
    calls: dict[str, list[Node]] = {}
    if not names:
        return calls
    for call in all_calls:
        name = _node_text(call.child_by_field_name("function"))
        if name in names:
            calls.setdefault(name, []).append(call)
    for found in calls.values():
        found.sort(key=lambda call: call.start_byte)
    return calls


def _with_call_args(context: Context, calls: Iterable[Node], function: Node) -> Context:
    """Take args (and kwargs) from the first call in file order whose arguments are all literals."""
    for call in calls:
        if function.start_byte <= call.start_byte < function.end_byte:
            continue  # a recursive call's arguments describe a sub-problem, not the call
        parsed = _literal_arguments(call.child_by_field_name("arguments"))
        if parsed is None:
            continue
        values, texts, errors = dict(context.values), dict(context.texts), list(context.errors)
        for key, (value, value_text, error) in parsed.items():
            texts[key] = value_text
            if error is None:
                values[key] = value
            else:
                errors.append(f"perfhint: arguments of the call on line {call.start_point.row + 1}: {error}")
        return replace(context, values=values, texts=texts, args_source="call", errors=tuple(errors))
    return context


def _literal_arguments(arguments: Node | None) -> dict[str, tuple[object, str, str | None]] | None:
    """{"args": (value, text, error), "kwargs": ...} if every argument is a literal; else None.

    A literal refused only for its size (`f([0]*10**9)`) still counts: its text is what the model reads.
    """
    if arguments is None or arguments.type != "argument_list":
        return None  # f(x for x in y)
    positional: list[tuple[object, str]] = []
    keywords: list[tuple[str, object, str]] = []
    too_large: list[str] = []
    for argument in arguments.named_children:
        if argument.type == "comment":
            continue
        if argument.type == "keyword_argument":
            name = _node_text(argument.child_by_field_name("name"))
            value_node = argument.child_by_field_name("value")
        elif argument.type in ("list_splat", "dictionary_splat"):
            return None
        else:
            name, value_node = None, argument
        value_text = _node_text(value_node)
        try:
            value = safe_literal(value_text)
        except UnsafeLiteral as error:
            if not error.too_large:
                return None
            value = None
            too_large.append(f"{value_text}: {error}")
        if name is None:
            positional.append((value, value_text))
        else:
            keywords.append((name, value, value_text))
    error = "; ".join(too_large) or None
    texts = [value_text for _, value_text in positional]
    args_text = f"({texts[0]},)" if len(texts) == 1 else f"({', '.join(texts)})"
    parsed = {"args": (tuple(value for value, _ in positional), args_text, error)}
    if keywords:
        kwargs_text = "{" + ", ".join(f"{name!r}: {value_text}" for name, _, value_text in keywords) + "}"
        parsed["kwargs"] = ({name: value for name, value, _ in keywords}, kwargs_text, error)
    return parsed


# ----------------------------------------------------------------------------------------------
# Python: scripts

_DECLARATIONS = frozenset({
    "import_statement", "import_from_statement", "future_import_statement", "function_definition",
    "class_definition", "decorated_definition", "pass_statement", "comment", "type_alias_statement",
})
_EXECUTES = "[(call) (await) (yield)] @executes"


def _script_region(text: _SourceText, parsed: _PythonIndex) -> Region | None:
    statements = parsed.statements
    guard = next((statement for statement in statements if _is_main_guard(statement)), None)
    if guard is None and all(_is_declaration(statement) for statement in statements):
        return None
    if guard is not None:
        line = guard.start_point.row
        context = text.context_above(line, "#")
    else:
        line = 0
        context = _header_context(text)
    return Region(
        key=f"script:{SCRIPT_NAME}", name=SCRIPT_NAME, kind="script", language="python", line=line,
        hint_lines=(line,), start_line=0, end_line=text.last_line, code=text.source.replace("\r\n", "\n"),
        context=context, has_error=parsed.has_error, code_spans=((0, text.last_line),))


def _is_main_guard(statement: Node) -> bool:
    if statement.type != "if_statement":
        return False
    condition = statement.child_by_field_name("condition")
    if condition is None or condition.type not in ("comparison_operator", "parenthesized_expression"):
        return False
    words = re.sub(r"\s+", "", _node_text(condition)).replace("'", '"').strip("()")
    return words in ('__name__=="__main__"', '"__main__"==__name__')


def _is_declaration(statement: Node) -> bool:
    if statement.type in _DECLARATIONS or statement.is_error:
        return True  # a top-level ERROR is half-typed code: it must not flip the module into a script
    if statement.type == "expression_statement":
        expression = statement.named_children[0] if statement.named_children else None
        if expression is None:
            return True
        if expression.type in ("string", "concatenated_string"):
            return True  # a docstring
        if expression.type == "assignment":
            right = expression.child_by_field_name("right")
            return right is None or not _captures("python", _EXECUTES, right, "executes")
        return False
    if statement.type in ("if_statement", "try_statement"):
        # Conditional imports and `if TYPE_CHECKING:` blocks: declarations if every branch is.
        if statement.type == "if_statement":
            condition = statement.child_by_field_name("condition")
            if condition is not None and _captures("python", _EXECUTES, condition, "executes"):
                return False
        blocks = [node for node in _descendant_blocks(statement)]
        return all(_is_declaration(inner) for block in blocks for inner in block.named_children)
    return False


def _descendant_blocks(statement: Node) -> Iterator[Node]:
    for child in statement.named_children:
        if child.type == "block":
            yield child
        elif child.type in ("elif_clause", "else_clause", "except_clause", "finally_clause", "except_group_clause"):
            yield from _descendant_blocks(child)


def _header_context(text: _SourceText) -> Context:
    """Directives in the leading comment block, unless that block sits directly on a definition."""
    header: list[str] = []
    row = 0
    while row <= text.last_line and (not text.lines[row].strip() or text.lines[row].lstrip().startswith("#")):
        header.append(text.lines[row])
        row += 1
    if row <= text.last_line and re.match(r"(?:async\s+def|def|class)\b|@", text.lines[row]):
        attached = text.comment_block_above(row, "#")
        header = header[:len(header) - len(attached)]
    return (parse_directive("\n".join(header)) if header else None) or EMPTY_CONTEXT


# ----------------------------------------------------------------------------------------------
# C and C++: programs

_DEFINITIONS_C = "(function_definition declarator: (function_declarator declarator: (_) @name)) @definition"
_NOT_GLOBAL_SCOPES = frozenset({"function_definition", "class_specifier", "struct_specifier",
                                "namespace_definition", "compound_statement"})


def _program_regions(text: _SourceText, language: str) -> list[Region]:
    tree = Parser(_language(language)).parse(text.data)
    main = _global_main(tree.root_node, language)
    if main is None and tree.root_node.has_error:
        main = _main_by_reparsing(text, language)
    if main is None:
        return []
    name, definition = main
    line = name.start_point.row
    return [Region(
        key="program:main", name="main", kind="program", language=language, line=line, hint_lines=(line,),
        start_line=0, end_line=text.last_line, code=text.source.replace("\r\n", "\n"),
        context=text.context_above(definition.start_point.row, "//"),
        has_error=tree.root_node.has_error, code_spans=((0, text.last_line),))]


def _global_main(root: Node, language: str) -> tuple[Node, Node] | None:
    """(the `main` identifier, its function_definition) if main is defined at global scope."""
    for _, captures in QueryCursor(_query(language, _DEFINITIONS_C)).matches(root):
        name, definition = captures["name"][0], captures["definition"][0]
        if _node_text(name) == "main" and not any(
                ancestor.type in _NOT_GLOBAL_SCOPES for ancestor in _ancestors(definition)):
            return name, definition
    return None


_DECLARATORS_C = "(function_declarator declarator: (identifier) @name)"
_MAIN_LINE = re.compile(r"[A-Za-z_][^;{}]*\bmain\s*\(")


def _main_by_reparsing(text: _SourceText, language: str) -> tuple[Node, Node] | None:
    """Error recovery for C/C++: an error above `main` (e.g. a C++ range-for in C) can swallow it
    into another function's body. Parse again from each column-0 line that looks like main's."""
    line_starts = [0] + [match.end() for match in re.finditer(b"\n", text.data)]
    end_point = Point(len(line_starts) - 1, len(text.data) - line_starts[-1])
    for row, line in enumerate(text.lines):
        if not _MAIN_LINE.match(line):
            continue
        parser = Parser(_language(language))
        parser.included_ranges = [Range(Point(row, 0), end_point, line_starts[row], len(text.data))]
        root = parser.parse(text.data).root_node
        main = _global_main(root, language)
        if main is not None:
            return main
        # Even alone, main's body may not parse (C++ in a .c file): a `main(` declarator on the very
        # line we started from is evidence enough.
        for name in _captures(language, _DECLARATORS_C, root, "name"):
            if _node_text(name) == "main" and name.start_point.row == row:
                return name, name.parent.parent or name.parent
    return None
