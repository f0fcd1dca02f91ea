"""TritonBench-G and Liger-Kernel: GPU latency (and Liger peak GPU memory) records from published runs.

Nothing is measured here; the values are upstream's. What is hard is saying faithfully what was
measured, because each source leaves part of it implicit:

- TritonBench rows list argument shapes without dtypes and without the GPU. The dtypes are read
  from the harness's `get_input_tensors` (local `dtype = torch.x` assignments resolved, comments
  dropped); the GPU is *inferred* (A100-80GB SXM, from the efficiency script's 2039 GB/s and
  312 TFLOPS peaks) and provenance says so. Suite T is PyTorch eager code and is never emitted as
  Triton (it is left out).
- A Liger row sweeps one axis (`x_name`=`x_value`); the rest of the shape is in the JSON config.
  The kernel text is joined through three tables (benchmarks -> row_sources -> source_index ->
  sources). Only providers that run Liger's own Triton modules are kept: `liger-cutile` and
  `liger-cutedsl` run other backends whose code is not stored, chunked-loss kernels have no
  `@triton.jit`, and runs whose helper module did not exist at the row commit
  (`files_present_at_row_commit == partial`) have incomplete code.
- Leakage: the same kernel is copied across repos and between the two sources. Groups are the
  connected components of "shares a Liger module file", "same repo and near-identical name", and
  "code lines overlap heavily" (overlap coefficient of normalised line sets >= 0.5), computed over
  TritonBench operators and Liger module texts together, so an operator and its Liger counterpart
  always land in one split.
"""

from __future__ import annotations

import csv
import difflib
import itertools
import json
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from perfhint_train.datasets.records import GPU_LATENCY, GPU_PEAK_MEMORY, LATENCY_UNIT, Record, require_shared

TRITONBENCH_GPU = "A100-SXM4-80GB"  # inferred, see module docstring
TRITONBENCH_GPU_NOTE = "not recorded upstream; A100-80GB SXM inferred from the efficiency script's peaks"
LIGER_EXCLUDED_PROVIDERS = ("liger-cutile", "liger-cutedsl")  # not Triton; their code is not in sources.jsonl
LINE_OVERLAP_THRESHOLD = 0.5
MIN_LINES_FOR_OVERLAP = 8
NAME_SIMILARITY_THRESHOLD = 0.8

_TORCH_DTYPE_NAMES = {
    "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32", "bfloat16": "bf16",
    "float64": "fp64", "double": "fp64", "int8": "int8", "uint8": "uint8", "int16": "int16",
    "int32": "int32", "int": "int32", "int64": "int64", "long": "int64", "bool": "bool",
    "float8_e4m3fn": "fp8e4m3", "float8_e5m2": "fp8e5m2",
}


def short_dtype(torch_name: str) -> str:
    name = torch_name.removeprefix("torch.")
    return _TORCH_DTYPE_NAMES.get(name, name)


def short_gpu(device_name: str) -> str:
    """`torch.cuda.get_device_name()` as one bare word: 'NVIDIA GeForce RTX 4090' -> 'RTX-4090'.

    perfhint.context accepts `gpu=` and `dtype=` values unquoted only as one word without spaces.
    """
    name = device_name
    for prefix in ("NVIDIA GeForce ", "NVIDIA ", "AMD Instinct ", "AMD "):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    return "-".join(name.split())


# ---------------------------------------------------------------------------------------------
# TritonBench G


def load_tritonbench_operators() -> list[dict[str, Any]]:
    path = require_shared("tritonbench") / "operators.jsonl"
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def input_dtypes(bench_code: str) -> list[str]:
    """Dtypes of the harness's input tensors in order of first use, e.g. ['fp16', 'int32'].

    Reads `get_input_tensors` only (where the inputs are built); a bare `dtype=dtype` resolves to the
    last `dtype = torch.x` assignment above it. Torch's default (fp32) applies when tensors are made
    without a dtype (`torch.rand(...)`), and nothing when the inputs are plain sizes.
    """
    match = re.search(r"def get_input_tensors\(self\):(.*?)(?=\n    def |\Z)", bench_code, re.S)
    body = match.group(1) if match else ""
    local: str | None = None
    found: list[str] = []
    for raw_line in body.splitlines():
        line = raw_line.split("#", 1)[0]
        assignment = re.match(r"\s*dtype\s*=\s*(torch\.\w+)", line)
        if assignment:
            local = assignment.group(1)
            continue
        for value in re.findall(r"dtype\s*=\s*([\w\.]+)", line):
            resolved = value if value.startswith("torch.") else local
            if resolved:
                short = short_dtype(resolved)
                if short not in found:
                    found.append(short)
        if not re.search(r"dtype\s*=", line) and re.search(r"torch\.(rand|randn|empty|zeros|ones)\(", line):
            if "fp32" not in found:
                found.append("fp32")
    return found


def _is_size(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, list) and all(_is_size(item) for item in value)


def tritonbench_shape(input_size: list[Any]) -> dict[str, str]:
    """`shape` = upstream's per-argument list (a tensor as its shape, an int or bool as its value).

    `shape=` must hold non-negative integers only (perfhint.context rejects anything else), so the
    few float arguments (softmax scales, eps: 149 rows) move, in order, to `scalars`.
    """
    sizes = [item for item in input_size if _is_size(item) or isinstance(item, bool)]
    sizes = [int(item) if isinstance(item, bool) else item for item in sizes]
    scalars = [item for item in input_size if not (_is_size(item) or isinstance(item, bool))]
    texts = {"shape": repr(sizes)}
    if scalars:
        texts["scalars"] = repr(tuple(scalars))
    return texts


def tritonbench_records() -> list[Record]:
    records = []
    groups = kernel_groups()
    for op in load_tritonbench_operators():
        if op["suite"] != "G" or op.get("code_kind") != "triton":
            continue  # suite T is PyTorch reference code: not Triton, not emitted
        dtypes = input_dtypes(op["bench_code"])
        name = op["id"].split("/", 1)[1]
        for row_idx, row in enumerate(op["rows"]):
            context = {"gpu": TRITONBENCH_GPU, **tritonbench_shape(row["input_size"])}
            if dtypes:
                context["dtype"] = "+".join(dtypes)  # one bare word: 'fp16,int32' would not parse
            records.append(Record(
                id=f"tritonbench/{name}/{row_idx}",
                language="python",
                region_kind="triton_kernel",
                metric=GPU_LATENCY,
                unit=LATENCY_UNIT,
                code=op["code"],
                context=context,
                value=float(row["ms"]),
                group=groups[op["id"]],
                source="tritonbench",
                provenance={
                    "upstream": op["upstream"], "source_repo": op["source_repo"],
                    "gpu_note": TRITONBENCH_GPU_NOTE, "timing": "triton.testing.do_bench median, warmup=100 rep=1000",
                    "licence": "Apache-2.0 (TritonBench); original repo's licence may also apply",
                    "dtype_note": "read from bench_code get_input_tensors",
                },
                measured_on="tritonbench-golden-a100-inferred",
            ))
    return records


# ---------------------------------------------------------------------------------------------
# Liger


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@lru_cache(maxsize=1)
def _liger_tables() -> tuple[list[dict[str, str]], dict[tuple[str, ...], dict[str, str]],
                             dict[tuple[str, str], str], dict[str, str]]:
    root = require_shared("liger")
    benchmarks = _read_csv(root / "benchmarks.csv")
    row_sources = {(row["kernel_name"], row["liger_version"], row["gpu_name"], row["timestamp"]): row
                   for row in _read_csv(root / "row_sources.csv")}
    source_index = {(row["row_commit"], row["file"]): row["blob"] for row in _read_csv(root / "source_index.csv")}
    with (root / "sources.jsonl").open(encoding="utf-8") as lines:
        blobs = {item["blob"]: item["code"] for item in map(json.loads, lines)}
    return benchmarks, row_sources, source_index, blobs


def liger_row_usable(row: dict[str, str], source: dict[str, str] | None) -> bool:
    provider = row["kernel_provider"]
    return (provider.startswith("liger") and provider not in LIGER_EXCLUDED_PROVIDERS and source is not None
            and source["has_triton_jit"] == "yes" and source["files_present_at_row_commit"] == "all")


def liger_code(source: dict[str, str]) -> tuple[str, list[str]]:
    """The module text(s) a run executed; several modules are joined under a one-line file banner."""
    _, _, source_index, blobs = _liger_tables()
    files = [name for name in source["source_files"].split(";") if name]
    if len(files) == 1:
        return blobs[source_index[(source["row_commit"], files[0])]], files
    parts = [f"# ---- {name} ----\n{blobs[source_index[(source['row_commit'], name)]]}" for name in files]
    return "\n".join(parts), files


def _number(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _x_sizes(x_name: str, x_value: str) -> list[tuple[str, int]] | None:
    """The swept axis as (name, size) pairs: '4096' -> [(V, 4096)]; '(256, 512, 256)' with x_name
    'Matrix Size (m x k x n)' -> [(m, 256), (k, 512), (n, 256)]; a model name -> None."""
    text = x_value.strip()
    if re.fullmatch(r"\d+", text):
        return [(x_name, int(text))]
    if re.fullmatch(r"\(\s*\d+(\s*,\s*\d+)*\s*\)", text):
        values = [int(part) for part in re.findall(r"\d+", text)]
        inner = re.search(r"\(([^)]*)\)", x_name)
        names = [name.strip() for name in inner.group(1).split("x")] if inner else []
        if len(names) != len(values):
            names = [f"{x_name}[{index}]" for index in range(len(values))]
        return list(zip(names, values))
    return None


def liger_context(row: dict[str, str]) -> dict[str, str]:
    """gpu, full shape (swept axis + fixed sizes), its dimension names, dtype when recorded, mode,
    and the remaining settings.

    `shape=` must be integers for perfhint.context, so the named sizes are written as two texts in
    one order: `shape=(8, 2048, 32768)` and `dims=('B', 'T', 'V')` (swept axis last). Keys other than
    gpu/dtype need Python literals, hence the quotes in `mode='forward'`.
    """
    config = json.loads(row["extra_benchmark_config_str"] or "{}")
    sizes: list[tuple[str, int]] = []
    settings: dict[str, Any] = {}
    dtype = None
    for key, value in config.items():
        if key == "dtype":
            dtype = short_dtype(str(value))
        elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            sizes.append((key, value))
        else:
            settings[key] = value
    swept = _x_sizes(row["x_name"], row["x_value"])
    if swept is None:
        settings = {row["x_name"]: row["x_value"], **settings}
    else:
        sizes = [(name, size) for name, size in sizes if name not in dict(swept)] + swept
    context = {"gpu": short_gpu(row["gpu_name"]), "mode": repr(row["kernel_operation_mode"])}
    if sizes:
        context["shape"] = repr(tuple(size for _, size in sizes)) if len(sizes) > 1 else f"({sizes[0][1]},)"
        context["dims"] = repr(tuple(name for name, _ in sizes))
    if dtype:
        context["dtype"] = dtype
    if settings:
        context["config"] = repr(settings)
    return context


def liger_records() -> list[Record]:
    benchmarks, row_sources, source_index, _ = _liger_tables()
    groups = kernel_groups()
    records = []
    counters: dict[str, int] = defaultdict(int)
    for row in benchmarks:
        source = row_sources.get((row["kernel_name"], row["liger_version"], row["gpu_name"], row["timestamp"]))
        if not liger_row_usable(row, source):
            continue
        assert source is not None
        code, files = liger_code(source)
        metric, unit = (GPU_LATENCY, LATENCY_UNIT) if row["metric_name"] == "speed" else (GPU_PEAK_MEMORY, "MB")
        key = f"{row['kernel_name']}/{row['kernel_provider']}/{row['kernel_operation_mode']}/{row['metric_name']}"
        index = counters[key]
        counters[key] += 1
        records.append(Record(
            id=f"liger/{key}/{index}",
            language="python",
            region_kind="triton_kernel",
            metric=metric,
            unit=unit,
            code=code,
            context=liger_context(row),
            value=float(row["y_value_50"]),
            group=groups[f"liger-kernel/{row['kernel_name']}"],
            source="liger",
            provenance={
                "repo": "linkedin/Liger-Kernel", "row_commit": source["row_commit"], "files": files,
                "kernel_name": row["kernel_name"], "provider": row["kernel_provider"],
                "gpu_name": row["gpu_name"], "timestamp": row["timestamp"], "liger_version": row["liger_version"],
                "p20": float(row["y_value_20"]), "p80": float(row["y_value_80"]),
                "metric_upstream": f"{row['metric_name']}/{row['metric_unit']}", "licence": "BSD-2-Clause",
            },
            measured_on=f"liger-upstream/{short_gpu(row['gpu_name'])}",
        ))
    return records


# ---------------------------------------------------------------------------------------------
# Groups shared by both sources


def _normalised_lines(code: str) -> set[str]:
    lines = set()
    for raw in code.splitlines():
        line = re.sub(r"\s+", " ", raw.strip())
        if len(line) < 12 or line.startswith(("#", "import ", "from ")):
            continue
        lines.add(line)
    return lines


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)


def _name_stem(name: str) -> str:
    parts = name.split("_")
    return "_".join(parts[:-1]) if len(parts) >= 3 else name


@lru_cache(maxsize=1)
def kernel_groups() -> dict[str, str]:
    """Node -> group for TritonBench ids ('G/op') and Liger kernel names ('liger-kernel/<name>')."""
    union = _UnionFind()
    texts: dict[str, set[str]] = {}
    operators = [op for op in load_tritonbench_operators() if op["suite"] == "G"]
    for op in operators:
        union.find(op["id"])
        texts[op["id"]] = _normalised_lines(op["code"])
    # Same repo and near-identical names (token_softmax_bloom / token_softmax_llama).
    for a, b in itertools.combinations(operators, 2):
        if a["source_repo"] != b["source_repo"]:
            continue
        name_a, name_b = a["id"][2:], b["id"][2:]
        similar = difflib.SequenceMatcher(None, name_a, name_b).ratio() >= NAME_SIMILARITY_THRESHOLD
        if similar or (_name_stem(name_a) == _name_stem(name_b) and _name_stem(name_a) != name_a):
            union.union(a["id"], b["id"])
    # Liger: kernel names that share a module file are one family; each blob a kernel ran is a node.
    benchmarks, row_sources, source_index, blobs = _liger_tables()
    file_owner: dict[str, str] = {}
    for source in row_sources.values():
        node = f"liger-kernel/{source['kernel_name']}"
        union.find(node)
        for name in filter(None, source["source_files"].split(";")):
            if name in file_owner:
                union.union(node, file_owner[name])
            else:
                file_owner[name] = node
            blob = source_index.get((source["row_commit"], name))
            if blob is not None:
                union.union(node, f"liger-blob/{blob}")
                texts.setdefault(f"liger-blob/{blob}", _normalised_lines(blobs[blob]))
    # Heavy line overlap anywhere (copies across repos, TritonBench's Liger operators).
    nodes = sorted(texts)
    for a, b in itertools.combinations(nodes, 2):
        if a.startswith("liger-blob/") and b.startswith("liger-blob/"):
            continue  # blobs are already tied by kernel family; cross-family overlap is shared helpers
        lines_a, lines_b = texts[a], texts[b]
        smaller = min(len(lines_a), len(lines_b))
        if smaller >= MIN_LINES_FOR_OVERLAP and len(lines_a & lines_b) / smaller >= LINE_OVERLAP_THRESHOLD:
            union.union(a, b)
    members: dict[str, list[str]] = defaultdict(list)
    for node in list(union.parent):
        members[union.find(node)].append(node)
    groups = {}
    for root, nodes_in in members.items():
        named = sorted(n for n in nodes_in if not n.startswith("liger-blob/"))
        label = "triton:" + (named[0] if named else root).replace("liger-kernel/", "liger/")
        for node in nodes_in:
            groups[node] = label
    return groups
