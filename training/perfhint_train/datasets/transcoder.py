"""TransCoder-GFG: make each `f_gold` runnable on inputs scaled over orders of magnitude.

What is hard:

- The shipped inputs are tiny (scalars, strings and arrays of <= 49 elements), so measured memory
  would be the runtime baseline for every problem. Each problem is turned into a *chain* of tasks:
  one base parameter set scaled by growing factors on a half-decade log grid. Arrays and strings
  are tiled (`[3, 1, 4] * 1000`: the only way to write a large input in a perfhint `args=` text,
  which allows literals, arithmetic and repetition but no calls); an int that equals an array's
  length (or length - 1, an index of the last element) follows the array's new length; other ints
  keep their value. Problems without any sequence argument scale their positive ints instead
  (`f(73)` -> `f(73000)`). Scaling can change what an algorithm does (recursion deeper than the
  interpreter allows, quadratic loops that time out): a chain is measured in increasing size and
  stops at its first failure, and failures are labelled as such, never as values.
- What the model reads is not what runs. A Python record's `code` is the `f_gold` function (the
  region an editor annotates); it runs after upstream's import header (numpy, math, collections,
  ...), which provenance records. A C/C++ record is a whole program: the upstream includes and
  helpers, `f_gold`, and a new `main` that builds the scaled inputs with the sizes as constants and
  a deterministic fill (the base case repeated), calls `f_gold` once (not twice, as the upstream
  harness does through `f_filled`) and prints the result so the optimiser cannot drop the call.
- C files are machine-translated (about 30 % do not compile or crash; those chains fail at their
  first task and are labelled failed). Writing our own `main` also sidesteps the upstream C harness
  bugs (`len()` on a decayed pointer, the broken `printf`).
- Groups: an id and its `_1`, `_2` variants are one problem, in every language.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from perfhint_train.datasets.records import PEAK_RSS, PEAK_TRACED_HEAP, require_shared

# Upstream's header (codegen_sources/model/src/evaluation/comp_acc_computation.py), prepended to every
# Python file before it runs.
UPSTREAM_PYTHON_HEADER = ("import numpy as np\nimport math\nfrom math import *\nimport collections\n"
                          "from collections import *\nimport heapq\nimport itertools\nimport random\nimport sys\n")

# Target element counts for the scaled inputs: half decades. Python stops lower (interpreted loops).
PYTHON_TARGETS = (10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000)
PROGRAM_TARGETS = (10, 100, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000)
INT_FACTORS = (1, 3, 10, 30, 100, 300, 1_000, 3_000, 10_000, 100_000, 1_000_000)
SAFE_LITERAL_MAX_ITEMS = 1_000_000  # perfhint.context.MAX_ITEMS: args= texts must stay buildable
MAX_BASE_TEXT = 600  # prefer a base case whose literal stays short: the label table stores it
LANGUAGE_DIRS = {"python": ("python", ".py"), "cpp": ("cpp", ".cpp"), "c": ("c", ".c")}


def problem_group(problem_id: str) -> str:
    return "transcoder:" + re.sub(r"(_\d+)+$", "", problem_id)


def problem_ids(language: str) -> list[str]:
    folder, suffix = LANGUAGE_DIRS[language]
    root = require_shared("transcoder_gfg") / folder
    return sorted(path.name[: -len(suffix)] for path in root.glob(f"*{suffix}"))


def read_source(language: str, problem_id: str) -> str:
    folder, suffix = LANGUAGE_DIRS[language]
    return (require_shared("transcoder_gfg") / folder / f"{problem_id}{suffix}").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Task:
    """One measurement to make: what the record will say, and what to run to get its value."""

    id: str
    chain: str  # tasks of one chain run in order and stop at the first failure
    language: str
    region_kind: str
    metric: str
    code: str  # what the model reads
    context: dict[str, str]
    group: str
    source: str
    run: dict[str, Any]  # what runs: {"kind": "python_function", "source", "qualname", "args"} | {"kind": "program", ...}
    params: str  # the label table's description of the input (args text, or N=... for programs)
    provenance: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Scaling shared by all languages. A parameter value is int/float/bool/str, or a list of those
# (an array) or a list of lists (a matrix, Python only).


def _is_seq(value: Any) -> bool:
    return isinstance(value, (str, list)) and len(value) > 0


def _seq_len(value: Any) -> int:
    return len(value) if isinstance(value, (str, list)) else 0


def _is_matrix(value: Any) -> bool:
    return isinstance(value, list) and value and all(isinstance(row, list) for row in value) \
        and all(not isinstance(item, list) for row in value for item in row)


def choose_base_case(cases: list[tuple], *, sequences: bool) -> int | None:
    """Index of the case to scale: the longest sequences (or largest ints) whose text stays short."""
    best, best_key = None, None
    for index, case in enumerate(cases):
        if len(repr(case)) > MAX_BASE_TEXT:
            continue  # perfhint.context caps a value text at 10,000 characters; the table stores it
        if sequences:
            key = sum(_seq_len(value) for value in case)
        else:
            ints = [value for value in case if isinstance(value, int) and not isinstance(value, bool)]
            key = max(ints) if ints else -1
        if best_key is None or key > best_key:
            best, best_key = index, key
    return best


def scale_mode(cases: list[tuple]) -> str:
    if not cases:
        return "none"
    if any(_is_seq(value) for case in cases for value in case):
        return "seq"
    if any(isinstance(value, int) and not isinstance(value, bool) and value > 0 for case in cases for value in case):
        return "int"
    return "none"


@dataclass(frozen=True)
class ScaledArg:
    """One argument after scaling: the base value and how it grows."""

    value: Any  # the base value (int, float, str, list, matrix)
    repeat: int = 1  # sequences: outer repetition; matrices: rows and columns both repeated
    new_int: int | None = None  # ints: the value it takes at this scale

    def length(self) -> int:
        if isinstance(self.value, (str, list)):
            return len(self.value) * self.repeat
        return 0


def scale_case(case: tuple, factor: int, mode: str) -> list[ScaledArg]:
    """Scale one parameter set by `factor` (sequence repetition, or int multiplication)."""
    if mode == "int":
        return [ScaledArg(value, new_int=value * factor) if isinstance(value, int) and not isinstance(value, bool)
                and value > 0 else ScaledArg(value) for value in case]
    scaled = [ScaledArg(value, repeat=factor) if _is_seq(value) else ScaledArg(value) for value in case]
    lengths: list[tuple[int, int]] = []  # (old length, new length) of every sequence, rows and columns
    for arg in scaled:
        if _is_seq(arg.value):
            lengths.append((len(arg.value), len(arg.value) * factor))
            if _is_matrix(arg.value):
                width = max(len(row) for row in arg.value)
                lengths.append((width, width * factor))
    out = []
    for arg in scaled:
        value = arg.value
        if isinstance(value, int) and not isinstance(value, bool) and factor > 1:
            new = next((new for old, new in lengths if value == old), None)
            if new is None:
                new = next((new - 1 for old, new in lengths if value == old - 1 and old > 2), None)
            out.append(ScaledArg(value, new_int=new) if new is not None else arg)
        else:
            out.append(arg)
    return out


def factors_for(base_case: tuple, mode: str, targets: tuple[int, ...]) -> list[int]:
    """Distinct repetition factors reaching each target size, 1 (the base case) first."""
    if mode == "int":
        return list(INT_FACTORS)
    sizes = []
    for value in base_case:
        if _is_matrix(value):
            sizes.append(("matrix", len(value) * max(len(row) for row in value)))
        elif _is_seq(value):
            sizes.append(("seq", len(value)))
    if not sizes:
        return [1]
    kind, size = max(sizes, key=lambda item: item[1])
    factors = [1]
    for target in targets:
        factor = round(math.sqrt(target / size)) if kind == "matrix" else round(target / size)
        if factor > factors[-1]:
            factors.append(factor)
    return factors


# ---------------------------------------------------------------------------------------------
# Python


def _python_literal(arg: ScaledArg) -> str:
    value = arg.value
    if arg.new_int is not None:
        return repr(arg.new_int)
    if _is_matrix(value) and arg.repeat > 1:
        rows = ", ".join(f"{row!r} * {arg.repeat}" for row in value)
        return f"[{rows}] * {arg.repeat}"
    if _is_seq(value) and arg.repeat > 1:
        return f"{value!r} * {arg.repeat}"
    return repr(value)


def literal_items(args: list[ScaledArg]) -> int:
    """Items perfhint.context.safe_literal spends building these arguments (it refuses > MAX_ITEMS)."""
    def base_items(value: Any) -> int:
        if isinstance(value, str):
            return len(value)
        if isinstance(value, list):
            return len(value) + sum(base_items(item) for item in value)
        return 0

    total = len(args)
    for arg in args:
        value, repeat = arg.value, arg.repeat
        if arg.new_int is not None or not _is_seq(value):
            total += base_items(value)
        elif _is_matrix(value) and repeat > 1:
            total += sum(len(row) * (1 + repeat) for row in value) + len(value) * (1 + repeat)
        else:
            total += base_items(value) + (len(value) * repeat if repeat > 1 else 0)
    return total


def python_args_text(args: list[ScaledArg]) -> str:
    parts = [_python_literal(arg) for arg in args]
    return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"


@dataclass(frozen=True)
class PythonProblem:
    problem_id: str
    function_text: str  # the f_gold definition, exactly as in the file
    run_source: str  # upstream header + the file's own imports + f_gold
    cases: list[tuple]


@lru_cache(maxsize=None)
def python_problem(problem_id: str) -> PythonProblem | None:
    text = read_source("python", problem_id)
    head = text.split("#TOFILL", 1)[0]
    try:
        tree = ast.parse(head)
        full = ast.parse(text)
    except SyntaxError:
        return None
    lines = head.splitlines(keepends=True)
    function = next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "f_gold"), None)
    if function is None:
        return None
    start = min([function.lineno] + [decorator.lineno for decorator in function.decorator_list])
    function_text = "".join(lines[start - 1: function.end_lineno]).rstrip() + "\n"
    imports = "".join("".join(lines[node.lineno - 1: node.end_lineno]) for node in tree.body
                      if isinstance(node, (ast.Import, ast.ImportFrom)))
    cases = None
    for node in ast.walk(full):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "param" for t in node.targets):
            try:
                cases = [tuple(case) for case in ast.literal_eval(node.value)]
            except (ValueError, TypeError, SyntaxError):
                return None
    if not cases:
        return None
    return PythonProblem(problem_id, function_text, UPSTREAM_PYTHON_HEADER + imports + function_text, cases)


def python_tasks(problem_id: str) -> list[Task]:
    problem = python_problem(problem_id)
    if problem is None:
        return []
    mode = scale_mode(problem.cases)
    base = choose_base_case(problem.cases, sequences=mode == "seq") if mode != "none" else 0
    if base is None:
        return []
    base_case = problem.cases[base]
    chain = f"transcoder/python/{problem_id}"
    tasks = []
    for factor in (factors_for(base_case, mode, PYTHON_TARGETS) if mode != "none" else [1]):
        scaled = scale_case(base_case, factor, mode)
        if literal_items(scaled) > SAFE_LITERAL_MAX_ITEMS:
            break  # the editor could not build these arguments either
        args_text = python_args_text(scaled)
        tasks.append(Task(
            id=f"{chain}/c{base}x{factor}",
            chain=chain, language="python", region_kind="function", metric=PEAK_TRACED_HEAP,
            code=problem.function_text, context={"args": args_text}, group=problem_group(problem_id),
            source="transcoder",
            run={"kind": "python_function", "source": problem.run_source, "qualname": "f_gold", "args": args_text},
            params=args_text,
            provenance={"upstream": f"facebookresearch/CodeGen data/transcoder_evaluation_gfg/python/{problem_id}.py",
                        "base_case": base, "factor": factor, "scale_mode": mode,
                        "runs_with": "upstream import header (numpy, math, collections, heapq, itertools, random, sys)",
                        "licence": "CC-BY-SA 2.0"},
        ))
    return tasks


def python_script_source(problem: PythonProblem, args_text: str) -> str:
    """The problem as a user's script: imports, `f_gold`, and a `__main__` block that prints one call.

    The script is what runs *and* what the model reads (peak RSS of the whole process), so it carries
    its imports: upstream's header without numpy unless the problem uses numpy (importing it is about
    15 MB of the peak), then the file's own imports."""
    own_imports = problem.run_source[len(UPSTREAM_PYTHON_HEADER): -len(problem.function_text)]
    uses_numpy = "np." in problem.function_text or "numpy" in own_imports
    header = "".join(line for line in UPSTREAM_PYTHON_HEADER.splitlines(keepends=True)
                     if uses_numpy or "numpy" not in line)
    call = args_text[:-2] + ")" if args_text.endswith(",)") else args_text
    return (f"{header}{own_imports}\n\n{problem.function_text}\n\n"
            f"if __name__ == \"__main__\":\n    print(f_gold{call})\n")


def python_script_tasks(problem_id: str) -> list[Task]:
    """The chain of `python_tasks(problem_id)` again, run as scripts: real-program `script` rows.

    Without them the only scripts in training were the synthetic ten-line `N = ...` templates (peak
    RSS 11 MB to 1.6 GB), and the model put a file of functions plus a `__main__` block at 63 KiB,
    below the interpreter's own floor. Same problem, same group, so the split keeps a problem's
    function and script rows together."""
    problem = python_problem(problem_id)
    tasks = []
    for function_task in python_tasks(problem_id):
        args_text = function_task.context["args"]
        code = python_script_source(problem, args_text)  # type: ignore[arg-type]
        provenance = {**function_task.provenance,
                      "runs_with": "the code itself (imports included), as `python script.py`"}
        tasks.append(Task(
            id=function_task.id.replace("transcoder/python/", "transcoder/python-script/", 1),
            chain=function_task.chain.replace("transcoder/python/", "transcoder/python-script/", 1),
            language="python", region_kind="script", metric=PEAK_RSS, code=code, context={},
            group=function_task.group, source="transcoder", run={"kind": "python_script", "source": code},
            params=args_text, provenance=provenance))
    return tasks


# ---------------------------------------------------------------------------------------------
# C and C++: parse the upstream main's parameter tables, write a new main per scale.

_C_SCALARS = {"int", "long", "long long", "long int", "long long int", "unsigned int", "unsigned", "float",
              "double", "char", "bool", "short"}


def _tokenize_initializer(text: str) -> list[str]:
    pattern = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[{},]|[^\s{},]+)""")
    tokens, position = [], 0
    while position < len(text):
        match = pattern.match(text, position)
        if not match or match.end() == position:
            break
        tokens.append(match.group(1))
        position = match.end()
    return [token for token in tokens if token]


def parse_initializer(text: str) -> Any:
    """`{1,2,{3}}` -> ['1', '2', ['3']]: nested lists of token texts (kept as written)."""
    tokens = _tokenize_initializer(text)
    position = 0

    def parse() -> Any:
        nonlocal position
        token = tokens[position]
        if token == "{":
            position += 1
            items = []
            while tokens[position] != "}":
                items.append(parse())
                if tokens[position] == ",":
                    position += 1
            position += 1
            return items
        position += 1
        return token

    return parse()


def _balanced(text: str, start: int, open_char: str, close_char: str) -> int:
    """Index just past the bracket matching text[start] (skips string and char literals)."""
    depth, index, quote = 0, start, ""
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == open_char:
            depth += 1
        elif char == close_char:
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise ValueError("unbalanced brackets")


@dataclass(frozen=True)
class CParam:
    name: str
    kind: str  # "scalar", "array", "string"
    ctype: str  # element type for arrays, the scalar type, or "string"/"char*"
    cases: list[Any]  # per case: token text (scalar), list of token texts (array), string literal text


@dataclass(frozen=True)
class ProgramProblem:
    problem_id: str
    language: str
    prelude: str  # includes, helpers and f_gold: everything before the placeholder, licence comment dropped
    returns_void: bool
    call: str  # f_gold(...) with paramK[i] -> paramK
    params: dict[str, CParam]


def _strip_licence(text: str) -> str:
    lines = text.splitlines(keepends=True)
    index = 0
    while index < len(lines) and lines[index].lstrip().startswith("//"):
        index += 1
    return "".join(lines[index:]).lstrip("\n")


def _f_gold_signature(prelude: str) -> str | None:
    match = re.search(r"^([^\n]*?)\bf_gold\s*\(", prelude, re.M)
    return match.group(1) if match else None


def _main_call(main: str) -> str | None:
    match = re.search(r"\bf_gold\s*\(", main)
    if not match:
        return None
    end = _balanced(main, match.end() - 1, "(", ")")
    call = main[match.start(): end]
    replaced = re.sub(r"\bparam(\d+)\[i\]", r"param\1", call)
    if re.search(r"\[i\]|filled_function|\barr\d", replaced):
        return None
    return replaced


def _cpp_params(main: str) -> dict[str, CParam] | None:
    params = {}
    for match in re.finditer(r"vector<(.+?)>\s+(param\d+)\s*\{", main):
        inner, name = match.group(1).strip(), match.group(2)
        start = match.end() - 1
        values = parse_initializer(main[start: _balanced(main, start, "{", "}")])
        if inner.startswith("vector<") and inner.endswith(">"):
            element = inner[len("vector<"):-1].strip()
            if element.startswith("vector") or element == "string":
                return None
            params[name] = CParam(name, "array", element, values)
        elif inner == "string":
            params[name] = CParam(name, "string", "string", values)
        elif inner in _C_SCALARS:
            params[name] = CParam(name, "scalar", inner, values)
        else:
            return None
    return params


def _c_params(main: str) -> dict[str, CParam] | None:
    params: dict[str, CParam] = {}
    arrays: dict[str, list[Any]] = {}
    for match in re.finditer(r"\b([a-z ]+?)\s+(param\d+)_(\d+)\s*\[\]\s*=\s*\{", main):
        start = match.end() - 1
        arrays[f"{match.group(2)}_{match.group(3)}"] = parse_initializer(main[start: _balanced(main, start, "{", "}")])
        arrays.setdefault(f"type:{match.group(2)}", match.group(1).strip())
    for match in re.finditer(r"\b([a-z ]+?)\s*(\*?)\s*(param\d+)\s*(\[[^\]]*\])(\[\d+\])?\s*=\s*\{", main):
        ctype, pointer, name, _, width = match.groups()
        ctype = ctype.strip()
        start = match.end() - 1
        values = parse_initializer(main[start: _balanced(main, start, "{", "}")])
        if pointer:
            element = arrays.get(f"type:{name}", ctype)
            params[name] = CParam(name, "array", element, [arrays.get(token) for token in values])
            if any(case is None for case in params[name].cases):
                return None
        elif width and ctype == "char":
            params[name] = CParam(name, "string", "char*", values)
        elif ctype in _C_SCALARS:
            params[name] = CParam(name, "scalar", ctype, values)
        else:
            return None
    return params


@lru_cache(maxsize=None)
def program_problem(language: str, problem_id: str) -> ProgramProblem | None:
    text = read_source(language, problem_id)
    if language == "cpp":
        if "//TOFILL" not in text:
            return None
        head, rest = text.split("//TOFILL", 1)
    else:
        stub = re.search(r"^[^\n]*\bf_filled\s*\([^\n]*\)\s*\{\s*\}\s*$", text, re.M)
        if stub is None:
            return None  # the stub spans several lines (16 files): not filled automatically
        head, rest = text[: stub.start()], text[stub.end():]
    main_match = re.search(r"\bint\s+main\s*\(", rest)
    if main_match is None or rest.count("int main") != 1:
        return None
    main = rest[main_match.start():]
    signature = _f_gold_signature(head)
    call = _main_call(main)
    try:
        params = _cpp_params(main) if language == "cpp" else _c_params(main)
    except (ValueError, IndexError):
        return None  # an initializer we cannot read (a handful of machine-translated C files)
    if signature is None or call is None or not params:
        return None
    used = set(re.findall(r"\bparam\d+\b", call))
    if not used <= set(params):
        return None
    params = {name: params[name] for name in sorted(used, key=lambda name: int(name[5:]))}
    n_cases = {len(param.cases) for param in params.values()}
    if len(n_cases) != 1:
        return None
    return ProgramProblem(problem_id, language, _strip_licence(head).rstrip() + "\n", "void" in signature.split(),
                          call, params)


def _token_value(token: Any) -> Any:
    """Token text -> Python value for the scaling rules (ints matter; the rest is kept as text)."""
    if isinstance(token, list):
        return [_token_value(item) for item in token]
    if isinstance(token, str) and re.fullmatch(r"-?\d+", token):
        return int(token)
    if isinstance(token, str) and token.startswith('"'):
        return ast.literal_eval(token)
    return token


def program_cases(problem: ProgramProblem) -> list[tuple]:
    n_cases = len(next(iter(problem.params.values())).cases)
    return [tuple(_token_value(param.cases[index]) for param in problem.params.values()) for index in range(n_cases)]


def _c_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def program_main(problem: ProgramProblem, base: int, factor: int, mode: str) -> tuple[str, str]:
    """(main text, params description) for one scale of one problem."""
    case = program_cases(problem)[base]
    scaled = scale_case(case, factor, mode)
    cpp = problem.language == "cpp"
    lines = ["int main() {" if cpp else "int main(void) {"]
    described = []
    for (name, param), arg in zip(problem.params.items(), scaled):
        raw = param.cases[base]
        if param.kind == "array":
            size = len(raw) * arg.repeat
            element = param.ctype
            base_list = "{" + ", ".join(raw) + "}"
            lines.append(f"    const int n_{name} = {size};")
            if cpp:
                lines.append(f"    const {element} base_{name}[] = {base_list};")
                lines.append(f"    vector<{element}> {name}(n_{name});")
            else:
                lines.append(f"    static const {element} base_{name}[] = {base_list};")
                lines.append(f"    {element} *{name} = ({element} *) malloc(n_{name} * sizeof({element}));")
            lines.append(f"    for (int j = 0; j < n_{name}; j++) {name}[j] = base_{name}[j % {len(raw)}];")
            described.append(f"{name}={len(raw)}x{arg.repeat}")
        elif param.kind == "string":
            value = _token_value(raw)
            size = len(value) * arg.repeat
            lines.append(f"    const int n_{name} = {size};")
            lines.append(f"    const char base_{name}[] = {_c_string(value)};")
            if cpp:
                lines.append(f"    string {name}(n_{name}, ' ');")
            else:
                lines.append(f"    char *{name} = (char *) malloc(n_{name} + 1);")
                lines.append(f"    {name}[n_{name}] = 0;")
            if size:
                lines.append(f"    for (int j = 0; j < n_{name}; j++) {name}[j] = base_{name}[j % {len(value)}];")
            described.append(f"{name}={len(value)}x{arg.repeat}")
        else:
            text = str(arg.new_int) if arg.new_int is not None else str(raw)
            lines.append(f"    {param.ctype} {name} = {text};")
            described.append(f"{name}={text}")
    if problem.returns_void:
        lines.append(f"    {problem.call};")
        first_array = next((name for name, param in problem.params.items() if param.kind != "scalar"), None)
        shown = f"{first_array}[0]" if first_array else "0"
        lines.append(f"    cout << {shown} << endl;" if cpp else f"    printf(\"%d\\n\", (int) {shown});")
    else:
        lines.append(f"    cout << {problem.call} << endl;" if cpp else
                     f"    printf(\"%g\\n\", (double) {problem.call});")
    lines.append("    return 0;")
    lines.append("}")
    return "\n".join(lines) + "\n", "; ".join(described)


def program_tasks(language: str, problem_id: str) -> list[Task]:
    problem = program_problem(language, problem_id)
    if problem is None:
        return []
    cases = program_cases(problem)
    mode = scale_mode(cases)
    base = choose_base_case(cases, sequences=mode == "seq") if mode != "none" else 0
    if base is None:
        return []
    chain = f"transcoder/{language}/{problem_id}"
    tasks = []
    for factor in (factors_for(cases[base], mode, PROGRAM_TARGETS) if mode != "none" else [1]):
        main, described = program_main(problem, base, factor, mode)
        code = problem.prelude + "\n" + main
        tasks.append(Task(
            id=f"{chain}/c{base}x{factor}", chain=chain, language=language, region_kind="program",
            metric=PEAK_RSS, code=code, context={}, group=problem_group(problem_id), source="transcoder",
            run={"kind": "program", "source": code, "language": language}, params=described,
            provenance={"upstream": f"facebookresearch/CodeGen data/transcoder_evaluation_gfg/{language}/"
                                    f"{problem_id}.{'cpp' if language == 'cpp' else 'c'}",
                        "base_case": base, "factor": factor, "scale_mode": mode,
                        "main": "rewritten: scaled inputs, one f_gold call, result printed",
                        "licence": "CC-BY-SA 2.0"},
        ))
    return tasks


def transcoder_tasks(languages: tuple[str, ...] = ("python", "cpp", "c")) -> list[Task]:
    tasks = []
    for language in languages:
        for problem_id in problem_ids(language):
            if language == "python":
                tasks.extend(python_tasks(problem_id))
                tasks.extend(python_script_tasks(problem_id))
            else:
                tasks.extend(program_tasks(language, problem_id))
    return tasks
