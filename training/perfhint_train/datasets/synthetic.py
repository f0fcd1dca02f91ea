"""Seeded synthetic programs with known-shaped memory behaviour, measured like the real ones.

What is hard: real code covers memory behaviours unevenly (TransCoder is mostly O(1)-memory loops
over small arrays), so the generator fills the gaps on purpose: containers of every kind, strings
built by concatenation or join, recursion depth, DP tables, numpy arrays by dtype, buffers freed
early versus late, generators versus lists, pages reserved but never touched (RSS counts touched
pages only), malloc/new/vector/std::string/map. Each template is a *concept* (e.g. `list_append`)
rendered in one language; its variants vary names, element types and constants so that the model
cannot key on one spelling; sizes follow a half-decade log grid per template.

Determinism: every choice comes from `random.Random(f"{SEED}:{template}:{variant}")` (string seeds
hash with sha512, independent of PYTHONHASHSEED), and sizes are fixed tuples, so the same seed
enumerates byte-identical tasks in any process; the label tables rely on that.

Leakage: group = `synthetic:<family>/<concept>`. A concept written in several languages
(`list_append` in Python, `vector_push` in C++ are different concepts, but `recursion_depth`
is one concept in three languages) stays in one split with all its variants and sizes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perfhint_train.datasets.records import PEAK_RSS, PEAK_TRACED_HEAP
from perfhint_train.datasets.transcoder import Task

SEED = 20260101
VARIANTS = 30  # chains per template
DECADES = (10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000,
           30_000_000, 100_000_000)


def grid(low: int, high: int) -> tuple[int, ...]:
    return tuple(size for size in DECADES if low <= size <= high)


@dataclass(frozen=True)
class Template:
    concept: str
    family: str
    language: str  # python | c | cpp
    kind: str  # function | script | program
    sizes: tuple[int, ...]
    choose: Callable[[random.Random], dict[str, Any]]
    render: Callable[[dict[str, Any], int], tuple[str, str | None]]  # -> (code, args text or None)


TEMPLATES: list[Template] = []


def template(concept: str, family: str, language: str, kind: str, sizes: tuple[int, ...]):
    """Register the (choose, render) pair that the decorated factory returns."""
    def register(factory: Callable[[], tuple[Callable[[random.Random], dict[str, Any]],
                                             Callable[[dict[str, Any], int], tuple[str, str | None]]]]):
        choose, render = factory()
        TEMPLATES.append(Template(concept, family, language, kind, sizes, choose, render))
        return factory
    return register


FUNCTION_NAMES = ("build", "make_items", "compute", "collect", "process", "generate", "prepare", "load_data",
                  "transform", "run", "solve", "accumulate", "create_table", "assemble", "gather")
PARAM_NAMES = ("n", "size", "count", "length", "num_items", "k", "total", "limit")
VAR_NAMES = ("out", "result", "items", "values", "acc", "data", "buf", "table", "res", "store")


def _names(rng: random.Random) -> dict[str, str]:
    return {"f": rng.choice(FUNCTION_NAMES), "n": rng.choice(PARAM_NAMES), "v": rng.choice(VAR_NAMES)}


def _args(*values: Any) -> str:
    return f"({values[0]},)" if len(values) == 1 else "(" + ", ".join(str(value) for value in values) + ")"


# ---------------------------------------------------------------------------------------------
# Python functions: peak traced heap of one call; sizes in the args.

ELEMENT_EXPRS = ("i", "i * i", "str(i)", "(i, i + 1)", "float(i)", "[i]", "i % 7", "'x' * 8", "{i: i}", "i / 3")


@template("list_append", "containers", "python", "function", grid(10, 1_000_000))
def _list_append():
    def choose(rng):
        return {**_names(rng), "expr": rng.choice(ELEMENT_EXPRS), "style": rng.choice(("append", "comp", "extend"))}

    def render(c, n):
        f, p, v, e = c["f"], c["n"], c["v"], c["expr"]
        if c["style"] == "append":
            body = f"    {v} = []\n    for i in range({p}):\n        {v}.append({e})\n    return {v}\n"
        elif c["style"] == "comp":
            body = f"    {v} = [{e} for i in range({p})]\n    return {v}\n"
        else:
            body = f"    {v} = []\n    for i in range({p}):\n        {v}.extend([{e}])\n    return {v}\n"
        return f"def {f}({p}):\n{body}", _args(n)
    return choose, render


@template("dict_build", "containers", "python", "function", grid(10, 1_000_000))
def _dict_build():
    def choose(rng):
        return {**_names(rng), "key": rng.choice(("i", "str(i)", "i % 1000", "(i, i)", "i * 2")),
                "val": rng.choice(("i", "None", "[i]", "str(i)", "i * 0.5")), "style": rng.choice(("loop", "comp"))}

    def render(c, n):
        f, p, v = c["f"], c["n"], c["v"]
        if c["style"] == "loop":
            body = f"    {v} = {{}}\n    for i in range({p}):\n        {v}[{c['key']}] = {c['val']}\n    return {v}\n"
        else:
            body = f"    return {{{c['key']}: {c['val']} for i in range({p})}}\n"
        return f"def {f}({p}):\n{body}", _args(n)
    return choose, render


@template("set_build", "containers", "python", "function", grid(10, 1_000_000))
def _set_build():
    def choose(rng):
        return {**_names(rng), "mod": rng.choice((None, 10, 1000, 100_000)), "ret": rng.choice(("set", "len"))}

    def render(c, n):
        f, p, v = c["f"], c["n"], c["v"]
        element = f"i % {c['mod']}" if c["mod"] else "i"
        tail = f"    return {v}\n" if c["ret"] == "set" else f"    return len({v})\n"
        return f"def {f}({p}):\n    {v} = {{{element} for i in range({p})}}\n{tail}", _args(n)
    return choose, render


@template("string_concat", "strings", "python", "function", grid(10, 1_000_000))
def _string_concat():
    def choose(rng):
        return {**_names(rng), "piece": rng.choice(("'a'", "str(i)", "'ab' * 4", "chr(65 + i % 26)")),
                "style": rng.choice(("plus", "join_list", "join_gen", "format"))}

    def render(c, n):
        f, p, v, piece = c["f"], c["n"], c["v"], c["piece"]
        if c["style"] == "plus":
            body = f"    {v} = ''\n    for i in range({p}):\n        {v} += {piece}\n    return {v}\n"
        elif c["style"] == "join_list":
            body = f"    parts = [{piece} for i in range({p})]\n    return ''.join(parts)\n"
        elif c["style"] == "join_gen":
            body = f"    return ''.join({piece} for i in range({p}))\n"
        else:
            body = f"    return ','.join(f'{{i}}' for i in range({p}))\n"
        return f"def {f}({p}):\n{body}", _args(n)
    return choose, render


@template("generator_vs_list", "generators", "python", "function", grid(10, 1_000_000))
def _generator_vs_list():
    def choose(rng):
        return {**_names(rng), "lazy": rng.random() < 0.5, "expr": rng.choice(("i * i", "i % 3", "i + 1", "abs(i - 5)")),
                "reduce": rng.choice(("sum", "max", "min", "len_filter"))}

    def render(c, n):
        f, p, e = c["f"], c["n"], c["expr"]
        seq = f"({e} for i in range({p}))" if c["lazy"] else f"[{e} for i in range({p})]"
        if c["reduce"] == "len_filter":
            inner = f"x for x in {seq} if x % 2 == 0"
            body = f"    return sum(1 for _ in ({inner}))\n" if c["lazy"] else f"    return len([{inner}])\n"
        else:
            body = f"    return {c['reduce']}({seq})\n"
        return f"def {f}({p}):\n{body}", _args(n)
    return choose, render


@template("recursion_depth", "recursion", "python", "function", (10, 30, 100, 300, 900))
def _recursion_python():
    def choose(rng):
        return {**_names(rng), "local": rng.choice((0, 1, 16, 128)), "memo": rng.random() < 0.3}

    def render(c, n):
        f, p = c["f"], c["n"]
        local = f"    pad = [0] * {c['local']}\n" if c["local"] else ""
        if c["memo"]:
            return (f"def {f}({p}, memo=None):\n    if memo is None:\n        memo = {{}}\n{local}"
                    f"    if {p} <= 1:\n        return 1\n    if {p} in memo:\n        return memo[{p}]\n"
                    f"    memo[{p}] = {f}({p} - 1, memo) + 1\n    return memo[{p}]\n"), _args(n)
        return f"def {f}({p}):\n{local}    if {p} <= 0:\n        return 0\n    return 1 + {f}({p} - 1)\n", _args(n)
    return choose, render


@template("dp_table", "dp", "python", "function", grid(10, 3_000))
def _dp_table():
    def choose(rng):
        return {**_names(rng), "shape": rng.choice(("square", "wide", "rolling")), "cell": rng.choice(("0", "0.0", "None", "False"))}

    def render(c, n):
        f, cell = c["f"], c["cell"]
        if c["shape"] == "rolling":
            body = (f"    prev = [{cell}] * (m + 1)\n    for i in range(1, n + 1):\n        cur = [{cell}] * (m + 1)\n"
                    f"        for j in range(1, m + 1):\n            cur[j] = i + j\n        prev = cur\n    return prev[m]\n")
        else:
            body = (f"    dp = [[{cell}] * (m + 1) for _ in range(n + 1)]\n    for i in range(1, n + 1):\n"
                    f"        for j in range(1, m + 1):\n            dp[i][j] = i + j\n    return dp[n][m]\n")
        m = n if c["shape"] == "square" else max(1, n // 10) if c["shape"] == "wide" else n
        return f"def {f}(n, m):\n{body}", _args(n, m)
    return choose, render


@template("numpy_alloc", "numpy", "python", "function", grid(10, 10_000_000))
def _numpy_alloc():
    def choose(rng):
        return {**_names(rng), "dtype": rng.choice(("float64", "float32", "int64", "int32", "int8", "bool", "complex128")),
                "op": rng.choice(("zeros", "ones", "arange_sq", "cumsum", "copy_twice", "empty_sum")),
                "import_inside": rng.random() < 0.5}

    def render(c, n):
        f, p, dt = c["f"], c["n"], c["dtype"]
        imp = "    import numpy as np\n" if c["import_inside"] else ""
        ops = {
            "zeros": f"    a = np.zeros({p}, dtype=np.{dt})\n    return a\n",
            "ones": f"    a = np.ones({p}, dtype=np.{dt})\n    return float(a.sum())\n",
            "arange_sq": f"    a = np.arange({p}).astype(np.{dt})\n    return a * a\n",
            "cumsum": f"    a = np.ones({p}, dtype=np.{dt})\n    return np.cumsum(a)[-1]\n",
            "copy_twice": f"    a = np.zeros({p}, dtype=np.{dt})\n    b = a.copy()\n    c = b + a\n    return c\n",
            "empty_sum": f"    a = np.empty({p}, dtype=np.{dt})\n    a.fill(1)\n    return a.sum()\n",
        }
        header = "" if c["import_inside"] else "import numpy as np\n\n\n"
        return f"{header}def {f}({p}):\n{imp}{ops[c['op']]}", _args(n)
    return choose, render


@template("lifetime", "lifetime", "python", "function", grid(10, 1_000_000))
def _lifetime_python():
    def choose(rng):
        return {**_names(rng), "free_early": rng.random() < 0.5, "kind": rng.choice(("list", "bytes", "dict", "str"))}

    def render(c, n):
        f, p = c["f"], c["n"]
        make = {"list": f"[0] * {p}", "bytes": f"bytearray({p})", "dict": f"dict.fromkeys(range({p}))",
                "str": f"'z' * {p}"}[c["kind"]]
        free = "    del first\n" if c["free_early"] else ""
        body = (f"    first = {make}\n    total = len(first)\n{free}    second = {make}\n"
                f"    return total + len(second)\n")
        return f"def {f}({p}):\n{body}", _args(n)
    return choose, render


@template("sort_copy", "sequences", "python", "function", grid(10, 300_000))
def _sort_copy():
    def choose(rng):
        base = [rng.randrange(-100, 100) for _ in range(rng.choice((3, 5, 8, 10)))]
        return {**_names(rng), "base": base, "op": rng.choice(("sorted", "sort_inplace", "slice_copy", "reversed_list",
                                                               "step_slice", "set_of", "tuple_of", "enumerate_list"))}

    def render(c, n):
        f, v = c["f"], c["v"]
        ops = {"sorted": f"    return sorted({v})\n", "sort_inplace": f"    {v}.sort()\n    return {v}[0]\n",
               "slice_copy": f"    copy = {v}[:]\n    return len(copy)\n", "reversed_list": f"    return list(reversed({v}))\n",
               "step_slice": f"    return {v}[::2]\n", "set_of": f"    return len(set({v}))\n",
               "tuple_of": f"    return tuple({v})\n", "enumerate_list": f"    return list(enumerate({v}))\n"}
        repeat = max(1, n // len(c["base"]))
        return f"def {f}({v}):\n{ops[c['op']]}", _args(f"{c['base']!r} * {repeat}")
    return choose, render


@template("text_split", "strings", "python", "function", grid(10, 300_000))
def _text_split():
    def choose(rng):
        word = rng.choice(("ab,", "hello world ", "x;y;", "12 34 ", "a\\n"))
        return {**_names(rng), "word": word, "op": rng.choice(("split", "upper", "replace", "count_chars", "words_set", "encode"))}

    def render(c, n):
        f, v = c["f"], c["v"]
        ops = {"split": f"    return {v}.split()\n", "upper": f"    return {v}.upper()\n",
               "replace": f"    return {v}.replace('a', 'bb')\n",
               "count_chars": f"    counts = {{}}\n    for ch in {v}:\n        counts[ch] = counts.get(ch, 0) + 1\n    return counts\n",
               "words_set": f"    return set({v}.split())\n", "encode": f"    return {v}.encode('utf-8')\n"}
        repeat = max(1, n // len(c["word"].encode().decode("unicode_escape")))
        return f"def {f}({v}):\n{ops[c['op']]}", _args(f"'{c['word']}' * {repeat}")
    return choose, render


@template("nested_lists", "containers", "python", "function", grid(10, 300_000))
def _nested_lists():
    def choose(rng):
        return {**_names(rng), "width": rng.choice((1, 2, 4, 8, 16, 64)), "inner": rng.choice(("list", "tuple", "dict"))}

    def render(c, n):
        f, p, w = c["f"], c["n"], c["width"]
        inner = {"list": f"[i] * {w}", "tuple": f"tuple(range({w}))", "dict": f"{{j: i for j in range({w})}}"}[c["inner"]]
        return f"def {f}({p}):\n    return [{inner} for i in range({p})]\n", _args(n)
    return choose, render


@template("counter_groupby", "containers", "python", "function", grid(10, 1_000_000))
def _counter():
    def choose(rng):
        return {**_names(rng), "buckets": rng.choice((2, 10, 1000, 10**6)), "kind": rng.choice(("counter", "defaultdict_list", "dict_get"))}

    def render(c, n):
        f, p, b = c["f"], c["n"], c["buckets"]
        if c["kind"] == "counter":
            body = f"    from collections import Counter\n    return Counter(i % {b} for i in range({p}))\n"
        elif c["kind"] == "defaultdict_list":
            body = (f"    from collections import defaultdict\n    groups = defaultdict(list)\n    for i in range({p}):\n"
                    f"        groups[i % {b}].append(i)\n    return groups\n")
        else:
            body = f"    seen = {{}}\n    for i in range({p}):\n        seen[i % {b}] = seen.get(i % {b}, 0) + 1\n    return seen\n"
        return f"def {f}({p}):\n{body}", _args(n)
    return choose, render


@template("bytes_buffer", "buffers", "python", "function", grid(10, 10_000_000))
def _bytes_buffer():
    def choose(rng):
        return {**_names(rng), "kind": rng.choice(("bytearray", "bytes", "bytesio", "memoryview_slice", "array"))}

    def render(c, n):
        f, p = c["f"], c["n"]
        bodies = {"bytearray": f"    buf = bytearray({p})\n    buf[0] = 1\n    return buf\n",
                  "bytes": f"    return bytes({p})\n",
                  "bytesio": f"    import io\n    stream = io.BytesIO()\n    stream.write(b'\\0' * {p})\n    return stream.getvalue()\n",
                  "memoryview_slice": f"    buf = bytearray({p})\n    view = memoryview(buf)[: {p} // 2]\n    return bytes(view)\n",
                  "array": f"    from array import array\n    return array('d', bytes(8 * {p}))\n"}
        return f"def {f}({p}):\n{bodies[c['kind']]}", _args(n)
    return choose, render


# ---------------------------------------------------------------------------------------------
# Python scripts: peak RSS of the whole `python script.py`; sizes are constants in the code.


def _script_sizes(c: dict[str, Any], n: int) -> str:
    return f"{c['const']} = {n}\n"


@template("script_list", "containers", "python", "script", grid(10, 10_000_000))
def _script_list():
    def choose(rng):
        return {"const": rng.choice(("N", "SIZE", "COUNT", "N_ITEMS")), "expr": rng.choice(("i", "i * 2", "str(i)", "float(i)")),
                "kind": rng.choice(("list", "dict", "set", "tuple"))}

    def render(c, n):
        k, e = c["const"], c["expr"]
        make = {"list": f"[{e} for i in range({k})]", "dict": f"{{i: {e} for i in range({k})}}",
                "set": f"{{{e} for i in range({k})}}", "tuple": f"tuple({e} for i in range({k}))"}[c["kind"]]
        return f"{_script_sizes(c, n)}\ndata = {make}\nprint(len(data))\n", None
    return choose, render


@template("script_numpy", "numpy", "python", "script", grid(10, 100_000_000))
def _script_numpy():
    def choose(rng):
        return {"const": rng.choice(("N", "ROWS", "SIZE")), "dtype": rng.choice(("float64", "float32", "int8", "int64", "uint16")),
                "op": rng.choice(("ones", "zeros_untouched", "random", "matmul_vec", "concat"))}

    def render(c, n):
        k, dt = c["const"], c["dtype"]
        ops = {"ones": f"a = np.ones({k}, dtype=np.{dt})\nprint(a.sum())\n",
               "zeros_untouched": f"a = np.zeros({k}, dtype=np.{dt})\nprint(a.shape)\n",
               "random": f"rng = np.random.default_rng(0)\na = rng.random({k}).astype(np.{dt})\nprint(a.mean())\n",
               "matmul_vec": f"a = np.ones({k}, dtype=np.{dt})\nb = a * 2 + 1\nprint(float(b @ a))\n",
               "concat": f"a = np.ones({k}, dtype=np.{dt})\nb = np.concatenate([a, a])\nprint(b.size)\n"}
        return f"import numpy as np\n\n{_script_sizes(c, n)}{ops[c['op']]}", None
    return choose, render


@template("script_strings", "strings", "python", "script", grid(10, 10_000_000))
def _script_strings():
    def choose(rng):
        return {"const": rng.choice(("N", "LENGTH", "N_LINES")), "op": rng.choice(("join", "plus", "lines", "repeat"))}

    def render(c, n):
        k = c["const"]
        ops = {"join": f"text = ''.join(str(i % 10) for i in range({k}))\nprint(len(text))\n",
               "plus": f"text = ''\nfor i in range({k}):\n    text += 'x'\nprint(len(text))\n",
               "lines": f"lines = ['line %d' % i for i in range({k})]\nblob = '\\n'.join(lines)\nprint(len(blob))\n",
               "repeat": f"text = 'abc' * {k}\nprint(text.count('a'))\n"}
        return f"{_script_sizes(c, n)}\n{ops[c['op']]}", None
    return choose, render


@template("script_lifetime", "lifetime", "python", "script", grid(10, 10_000_000))
def _script_lifetime():
    def choose(rng):
        return {"const": rng.choice(("N", "SIZE")), "free_early": rng.random() < 0.5, "kind": rng.choice(("list", "bytearray"))}

    def render(c, n):
        k = c["const"]
        make = f"[0] * {k}" if c["kind"] == "list" else f"bytearray({k})"
        free = "del first\n" if c["free_early"] else ""
        return f"{_script_sizes(c, n)}\nfirst = {make}\n{free}second = {make}\nprint(len(second))\n", None
    return choose, render


@template("script_generator", "generators", "python", "script", grid(10, 10_000_000))
def _script_generator():
    def choose(rng):
        return {"const": rng.choice(("N", "TOTAL")), "lazy": rng.random() < 0.5}

    def render(c, n):
        k = c["const"]
        seq = f"(i * i for i in range({k}))" if c["lazy"] else f"[i * i for i in range({k})]"
        return f"{_script_sizes(c, n)}\nprint(sum({seq}))\n", None
    return choose, render


# ---------------------------------------------------------------------------------------------
# C programs: peak RSS; sizes are constants.

C_TYPES = ("int", "long", "double", "char", "float", "short")


@template("heap_array", "buffers", "c", "program", grid(10, 100_000_000))
def _c_heap_array():
    def choose(rng):
        return {"type": rng.choice(C_TYPES), "alloc": rng.choice(("malloc", "calloc")), "touch": rng.choice(("all", "half", "none", "first")),
                "free": rng.random() < 0.5, "const": rng.choice(("N", "SIZE", "LEN"))}

    def render(c, n):
        t, k = c["type"], c["const"]
        alloc = f"({t} *) malloc({k} * sizeof({t}))" if c["alloc"] == "malloc" else f"({t} *) calloc({k}, sizeof({t}))"
        touch = {"all": f"    for (long i = 0; i < {k}; i++) a[i] = ({t}) i;\n",
                 "half": f"    for (long i = 0; i < {k} / 2; i++) a[i] = ({t}) i;\n",
                 "none": "", "first": "    a[0] = 1;\n"}[c["touch"]]
        free = "    free(a);\n" if c["free"] else ""
        return (f"#include <stdio.h>\n#include <stdlib.h>\n\n#define {k} {n}L\n\nint main(void) {{\n    {t} *a = {alloc};\n"
                f"    if (!a) return 1;\n{touch}    printf(\"%d\\n\", (int) a[0]);\n{free}    return 0;\n}}\n"), None
    return choose, render


@template("static_array", "buffers", "c", "program", grid(10, 100_000_000))
def _c_static_array():
    def choose(rng):
        return {"type": rng.choice(C_TYPES), "touch": rng.choice(("all", "none", "stride")), "const": rng.choice(("N", "CAP"))}

    def render(c, n):
        t, k = c["type"], c["const"]
        touch = {"all": f"    for (long i = 0; i < {k}; i++) table[i] = ({t}) (i & 7);\n", "none": "",
                 "stride": f"    for (long i = 0; i < {k}; i += 4096) table[i] = 1;\n"}[c["touch"]]
        return (f"#include <stdio.h>\n\n#define {k} {n}L\nstatic {t} table[{k}];\n\nint main(void) {{\n{touch}"
                f"    printf(\"%d\\n\", (int) table[{k} - 1]);\n    return 0;\n}}\n"), None
    return choose, render


@template("recursion_depth", "recursion", "c", "program", grid(10, 100_000))
def _c_recursion():
    def choose(rng):
        return {"frame": rng.choice((0, 16, 64, 256)), "name": rng.choice(("depth", "walk", "descend", "rec"))}

    def render(c, n):
        name, frame = c["name"], c["frame"]
        local = f"    volatile char pad[{frame}];\n    pad[0] = (char) n;\n" if frame else ""
        extra = " + pad[0] * 0" if frame else ""
        return (f"#include <stdio.h>\n\nlong {name}(long n) {{\n{local}    if (n == 0) return 0;\n"
                f"    return 1 + {name}(n - 1){extra};\n}}\n\nint main(void) {{\n    printf(\"%ld\\n\", {name}({n}));\n    return 0;\n}}\n"), None
    return choose, render


@template("linked_list", "containers", "c", "program", grid(10, 10_000_000))
def _c_linked_list():
    def choose(rng):
        return {"payload": rng.choice(("int value;", "double value;", "char value[32];", "long value[4];")),
                "free": rng.random() < 0.5, "const": rng.choice(("N", "COUNT"))}

    def render(c, n):
        k = c["const"]
        free = ("    while (head) {\n        struct node *next = head->next;\n        free(head);\n        head = next;\n    }\n"
                if c["free"] else "")
        return (f"#include <stdio.h>\n#include <stdlib.h>\n\n#define {k} {n}\n\nstruct node {{\n    struct node *next;\n    {c['payload']}\n}};\n\n"
                f"int main(void) {{\n    struct node *head = NULL;\n    for (long i = 0; i < {k}; i++) {{\n"
                f"        struct node *item = malloc(sizeof *item);\n        item->next = head;\n        head = item;\n    }}\n"
                f"    printf(\"%p\\n\", (void *) head);\n{free}    return 0;\n}}\n"), None
    return choose, render


@template("realloc_growth", "buffers", "c", "program", grid(10, 100_000_000))
def _c_realloc():
    def choose(rng):
        return {"type": rng.choice(("int", "double", "char")), "growth": rng.choice(("double", "plus_one", "x1_5")), "const": rng.choice(("N", "TARGET"))}

    def render(c, n):
        t, k = c["type"], c["const"]
        grow = {"double": "cap * 2", "plus_one": "cap + 1024", "x1_5": "cap + cap / 2 + 1"}[c["growth"]]
        return (f"#include <stdio.h>\n#include <stdlib.h>\n\n#define {k} {n}L\n\nint main(void) {{\n    long cap = 16, len = 0;\n"
                f"    {t} *buf = malloc(cap * sizeof({t}));\n    for (long i = 0; i < {k}; i++) {{\n        if (len == cap) {{\n"
                f"            cap = {grow};\n            buf = realloc(buf, cap * sizeof({t}));\n        }}\n        buf[len++] = ({t}) i;\n    }}\n"
                f"    printf(\"%ld\\n\", len);\n    free(buf);\n    return 0;\n}}\n"), None
    return choose, render


@template("matrix_rows", "dp", "c", "program", grid(10, 10_000))
def _c_matrix():
    def choose(rng):
        return {"type": rng.choice(("int", "double", "long")), "layout": rng.choice(("rows", "flat", "vla_stack")), "wide": rng.random() < 0.3}

    def render(c, n):
        t = c["type"]
        m = max(1, n // 10) if c["wide"] else n
        if c["layout"] == "rows":
            body = (f"    {t} **dp = malloc(R * sizeof({t} *));\n    for (int i = 0; i < R; i++) dp[i] = calloc(C, sizeof({t}));\n"
                    f"    for (int i = 1; i < R; i++)\n        for (int j = 1; j < C; j++) dp[i][j] = dp[i - 1][j] + 1;\n"
                    f"    printf(\"%ld\\n\", (long) dp[R - 1][C - 1]);\n")
        elif c["layout"] == "flat":
            body = (f"    {t} *dp = calloc((size_t) R * C, sizeof({t}));\n    for (long i = 1; i < R; i++)\n"
                    f"        for (long j = 1; j < C; j++) dp[i * C + j] = dp[(i - 1) * C + j] + 1;\n"
                    f"    printf(\"%ld\\n\", (long) dp[(long) R * C - 1]);\n")
        else:
            body = (f"    {t} row[C];\n    for (int j = 0; j < C; j++) row[j] = j;\n    for (int i = 1; i < R; i++)\n"
                    f"        for (int j = 1; j < C; j++) row[j] += row[j - 1];\n    printf(\"%ld\\n\", (long) row[C - 1]);\n")
        return (f"#include <stdio.h>\n#include <stdlib.h>\n\n#define R {n}\n#define C {m}\n\nint main(void) {{\n{body}    return 0;\n}}\n"), None
    return choose, render


@template("string_build", "strings", "c", "program", grid(10, 100_000_000))
def _c_string():
    def choose(rng):
        return {"op": rng.choice(("memset", "strcat_chunks", "sprintf_fill", "strdup_copies"))}

    def render(c, n):
        ops = {"memset": "    char *s = malloc(N + 1);\n    memset(s, 'a', N);\n    s[N] = 0;\n    printf(\"%zu\\n\", strlen(s));\n",
               "strcat_chunks": "    char *s = malloc(N + 8);\n    s[0] = 0;\n    size_t len = 0;\n    while (len + 4 <= N) {\n"
                                "        memcpy(s + len, \"abcd\", 4);\n        len += 4;\n    }\n    s[len] = 0;\n    printf(\"%zu\\n\", strlen(s));\n",
               "sprintf_fill": "    char *s = malloc(N + 16);\n    size_t len = 0;\n    for (long i = 0; len + 12 < N; i++) len += sprintf(s + len, \"%ld,\", i);\n"
                               "    printf(\"%zu\\n\", len);\n",
               "strdup_copies": "    char *s = malloc(N + 1);\n    memset(s, 'b', N);\n    s[N] = 0;\n    char *t = strdup(s);\n    char *u = strdup(t);\n"
                                "    printf(\"%zu\\n\", strlen(u));\n"}
        return f"#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n#define N {n}L\n\nint main(void) {{\n{ops[c['op']]}    return 0;\n}}\n", None
    return choose, render


# ---------------------------------------------------------------------------------------------
# C++ programs


CPP_TYPES = ("int", "long long", "double", "char", "float", "short")


@template("vector_push", "containers", "cpp", "program", grid(10, 30_000_000))
def _cpp_vector():
    def choose(rng):
        return {"type": rng.choice(CPP_TYPES), "reserve": rng.random() < 0.4, "shrink": rng.random() < 0.2,
                "style": rng.choice(("push_back", "emplace_back", "resize", "ctor"))}

    def render(c, n):
        t = c["type"]
        if c["style"] in ("push_back", "emplace_back"):
            reserve = "    v.reserve(N);\n" if c["reserve"] else ""
            body = f"    std::vector<{t}> v;\n{reserve}    for (long i = 0; i < N; i++) v.{c['style']}(({t}) i);\n"
        elif c["style"] == "resize":
            body = f"    std::vector<{t}> v;\n    v.resize(N);\n    for (long i = 0; i < N; i++) v[i] = ({t}) i;\n"
        else:
            body = f"    std::vector<{t}> v(N, ({t}) 1);\n"
        shrink = "    v.shrink_to_fit();\n" if c["shrink"] else ""
        return (f"#include <cstdio>\n#include <vector>\n\nconst long N = {n};\n\nint main() {{\n{body}{shrink}"
                f"    std::printf(\"%zu\\n\", v.size());\n    return 0;\n}}\n"), None
    return choose, render


@template("std_string", "strings", "cpp", "program", grid(10, 100_000_000))
def _cpp_string():
    def choose(rng):
        return {"op": rng.choice(("append_char", "plus_equals", "ctor_fill", "ostringstream", "copies")), "reserve": rng.random() < 0.3}

    def render(c, n):
        reserve = "    s.reserve(N);\n" if c["reserve"] else ""
        ops = {"append_char": f"    std::string s;\n{reserve}    for (long i = 0; i < N; i++) s.push_back('a' + i % 26);\n",
               "plus_equals": f"    std::string s;\n{reserve}    for (long i = 0; i < N / 4; i++) s += \"abcd\";\n",
               "ctor_fill": "    std::string s(N, 'x');\n",
               "ostringstream": "    std::ostringstream out;\n    for (long i = 0; i < N / 8; i++) out << \"1234567,\";\n    std::string s = out.str();\n",
               "copies": "    std::string s(N, 'y');\n    std::string t = s;\n    std::string u = s + t;\n"}
        include = "#include <sstream>\n" if c["op"] == "ostringstream" else ""
        return (f"#include <cstdio>\n#include <string>\n{include}\nconst long N = {n};\n\nint main() {{\n{ops[c['op']]}"
                f"    std::printf(\"%zu\\n\", s.size());\n    return 0;\n}}\n"), None
    return choose, render


@template("ordered_map", "containers", "cpp", "program", grid(10, 3_000_000))
def _cpp_map():
    def choose(rng):
        return {"container": rng.choice(("std::map<int, int>", "std::unordered_map<int, int>", "std::set<int>", "std::unordered_set<int>",
                                         "std::map<long long, std::string>", "std::multiset<int>")),
                "mod": rng.choice((None, None, 1000, 100))}

    def render(c, n):
        cont = c["container"]
        key = f"(int) (i % {c['mod']})" if c["mod"] else "(int) i"
        if "set" in cont:
            insert = f"m.insert({key});"
        elif "string" in cont:
            insert = f"m[{key}] = std::to_string(i);"
        else:
            insert = f"m[{key}] = (int) i;"
        includes = "".join(f"#include <{h}>\n" for h in ("map", "set", "string", "unordered_map", "unordered_set")
                           if h in cont.replace("multiset", "set").replace("std::", ""))
        return (f"#include <cstdio>\n{includes}\nconst long N = {n};\n\nint main() {{\n    {cont} m;\n"
                f"    for (long i = 0; i < N; i++) {insert}\n    std::printf(\"%zu\\n\", m.size());\n    return 0;\n}}\n"), None
    return choose, render


@template("dp_table", "dp", "cpp", "program", grid(10, 10_000))
def _cpp_dp():
    def choose(rng):
        return {"type": rng.choice(("int", "long long", "double", "char")), "layout": rng.choice(("nested", "flat", "rolling")), "wide": rng.random() < 0.3}

    def render(c, n):
        t = c["type"]
        m = max(1, n // 10) if c["wide"] else n
        bodies = {"nested": f"    std::vector<std::vector<{t}>> dp(R + 1, std::vector<{t}>(C + 1, 0));\n"
                            f"    for (int i = 1; i <= R; i++)\n        for (int j = 1; j <= C; j++) dp[i][j] = dp[i - 1][j] + 1;\n"
                            f"    std::printf(\"%d\\n\", (int) dp[R][C]);\n",
                  "flat": f"    std::vector<{t}> dp((size_t) (R + 1) * (C + 1), 0);\n"
                          f"    for (long i = 1; i <= R; i++)\n        for (long j = 1; j <= C; j++) dp[i * (C + 1) + j] = dp[(i - 1) * (C + 1) + j] + 1;\n"
                          f"    std::printf(\"%d\\n\", (int) dp.back());\n",
                  "rolling": f"    std::vector<{t}> prev(C + 1, 0), cur(C + 1, 0);\n    for (int i = 1; i <= R; i++) {{\n"
                             f"        for (int j = 1; j <= C; j++) cur[j] = prev[j] + 1;\n        std::swap(prev, cur);\n    }}\n"
                             f"    std::printf(\"%d\\n\", (int) prev[C]);\n"}
        return (f"#include <cstdio>\n#include <vector>\n#include <utility>\n\nconst int R = {n};\nconst int C = {m};\n\n"
                f"int main() {{\n{bodies[c['layout']]}    return 0;\n}}\n"), None
    return choose, render


@template("new_delete", "lifetime", "cpp", "program", grid(10, 100_000_000))
def _cpp_new_delete():
    def choose(rng):
        return {"type": rng.choice(CPP_TYPES), "free_early": rng.random() < 0.5, "smart": rng.choice(("raw", "unique_ptr", "vector"))}

    def render(c, n):
        t = c["type"]
        if c["smart"] == "raw":
            first, use, free1, second, free2 = (f"    {t} *first = new {t}[N]();\n", "first[N - 1]", "    delete[] first;\n",
                                                f"    {t} *second = new {t}[N]();\n", "    delete[] second;\n")
        elif c["smart"] == "unique_ptr":
            first, use, free1, second, free2 = (f"    auto first = std::make_unique<{t}[]>(N);\n", "first[N - 1]", "    first.reset();\n",
                                                f"    auto second = std::make_unique<{t}[]>(N);\n", "")
        else:
            first, use, free1, second, free2 = (f"    std::vector<{t}> first(N);\n", "first[N - 1]",
                                                f"    std::vector<{t}>().swap(first);\n", f"    std::vector<{t}> second(N);\n", "")
        keep = f"    double sum = (double) {use};\n"
        order = (first + keep + free1 + second) if c["free_early"] else (first + keep + second + free1)
        return (f"#include <cstdio>\n#include <memory>\n#include <vector>\n\nconst long N = {n};\n\nint main() {{\n{order}"
                f"    std::printf(\"%f\\n\", sum + (double) second[0]);\n{free2}    return 0;\n}}\n"), None
    return choose, render


@template("node_containers", "containers", "cpp", "program", grid(10, 10_000_000))
def _cpp_nodes():
    def choose(rng):
        return {"container": rng.choice(("std::list<int>", "std::deque<int>", "std::forward_list<int>", "std::list<double>", "std::deque<char>")),
                "shared": rng.random() < 0.2}

    def render(c, n):
        cont = c["container"]
        header = cont.split("<")[0].replace("std::", "")
        if c["shared"]:
            return (f"#include <cstdio>\n#include <memory>\n#include <vector>\n\nconst long N = {n};\n\nint main() {{\n"
                    f"    std::vector<std::shared_ptr<int>> v;\n    for (long i = 0; i < N; i++) v.push_back(std::make_shared<int>((int) i));\n"
                    f"    std::printf(\"%zu\\n\", v.size());\n    return 0;\n}}\n"), None
        push = "push_front" if "forward_list" in cont else "push_back"
        element = cont.split("<")[1].rstrip(">")
        return (f"#include <cstdio>\n#include <{header}>\n\nconst long N = {n};\n\nint main() {{\n    {cont} items;\n"
                f"    for (long i = 0; i < N; i++) items.{push}(({element}) i);\n    std::printf(\"%d\\n\", (int) items.front());\n"
                f"    return 0;\n}}\n"), None
    return choose, render


@template("recursion_depth", "recursion", "cpp", "program", grid(10, 100_000))
def _cpp_recursion():
    def choose(rng):
        return {"frame": rng.choice((0, 32, 128, 512)), "name": rng.choice(("depth", "visit", "descend", "go"))}

    def render(c, n):
        name, frame = c["name"], c["frame"]
        local = f"    volatile char pad[{frame}];\n    pad[0] = (char) n;\n" if frame else ""
        return (f"#include <cstdio>\n\nlong {name}(long n) {{\n{local}    if (n == 0) return 0;\n    return 1 + {name}(n - 1);\n}}\n\n"
                f"int main() {{\n    std::printf(\"%ld\\n\", {name}({n}));\n    return 0;\n}}\n"), None
    return choose, render


@template("vector_of_strings", "strings", "cpp", "program", grid(10, 3_000_000))
def _cpp_vector_strings():
    def choose(rng):
        return {"length": rng.choice((1, 8, 15, 16, 40, 100)), "reserve": rng.random() < 0.3}

    def render(c, n):
        reserve = "    v.reserve(N);\n" if c["reserve"] else ""
        return (f"#include <cstdio>\n#include <string>\n#include <vector>\n\nconst long N = {n};\n\nint main() {{\n"
                f"    std::vector<std::string> v;\n{reserve}    for (long i = 0; i < N; i++) v.emplace_back({c['length']}, 'a' + i % 26);\n"
                f"    std::printf(\"%zu\\n\", v.size());\n    return 0;\n}}\n"), None
    return choose, render


# ---------------------------------------------------------------------------------------------


def template_tasks(tmpl: Template, variants: int = VARIANTS) -> list[Task]:
    tasks = []
    metric = PEAK_TRACED_HEAP if tmpl.kind == "function" else PEAK_RSS
    for variant in range(variants):
        rng = random.Random(f"{SEED}:{tmpl.language}:{tmpl.concept}:{variant}")
        choice = tmpl.choose(rng)
        chain = f"synthetic/{tmpl.language}/{tmpl.concept}/v{variant}"
        for size in tmpl.sizes:
            code, args_text = tmpl.render(choice, size)
            if tmpl.kind == "function":
                qualname = code.split("def ", 1)[1].split("(", 1)[0] if code.startswith("def ") else \
                    code.split("\ndef ", 1)[1].split("(", 1)[0]
                run = {"kind": "python_function", "source": code, "qualname": qualname, "args": args_text}
                context = {"args": args_text}
                params = args_text
            elif tmpl.kind == "script":
                run, context, params = {"kind": "python_script", "source": code}, {}, f"n={size}"
            else:
                run, context, params = {"kind": "program", "source": code, "language": tmpl.language}, {}, f"n={size}"
            tasks.append(Task(
                id=f"{chain}/n{size}", chain=chain, language=tmpl.language, region_kind=tmpl.kind, metric=metric,
                code=code, context=context, group=f"synthetic:{tmpl.family}/{tmpl.concept}", source="synthetic",
                run=run, params=params,
                provenance={"generator": "perfhint_train.datasets.synthetic", "seed": SEED, "template": tmpl.concept,
                            "family": tmpl.family, "variant": variant, "size": size, "choices": repr(choice)},
            ))
    return tasks


def synthetic_tasks(variants: int = VARIANTS) -> list[Task]:
    return [task for tmpl in TEMPLATES for task in template_tasks(tmpl, variants)]
