"""The encoder tokenizer: a byte-level BPE trained on permissively licensed code.

What is hard:
- Licences. The merges of a BPE are statistics of its corpus and `tokenizer.json` is committed to an
  Apache-2.0 repository, so the corpus is only code whose licence allows that: the CPython standard
  library (PSF), installed distributions whose metadata says MIT, BSD, Apache or PSF (plus the other
  permissive SPDX ids in PERMISSIVE_LICENCES; vendored copies inside them are skipped, since they carry
  their own licences), TritonBench (Apache-2.0) and Liger-Kernel (BSD-2-Clause). TransCoder-GFG is
  CC-BY-SA 2.0 (share-alike) and stays out unless `--include-share-alike` is given; it is then the
  held-out set on which tokens per line are reported, which is what the model will read.
- Determinism. The same corpus must give byte-identical `tokenizer.json`. Files are read in sorted
  order; a part larger than its byte budget keeps the files with the smallest sha256(relative path)
  (a spread that does not favour early subpackages and does not depend on the file system's order);
  and the trainer runs on one sequence per file. HF `tokenizers` breaks merge ties deterministically.
- Ids regress-lm depends on: `<pad>` is id 0 (the encoder masks id 0 as padding, so no real token may
  have it) and `<unk>` is id 1. There is no BOS/EOS and no post-processor, so `EncoderVocab.encode`
  adds nothing.
- Numbers. Digits are split one per token (as regress-lm's SentencePiece recipe does with
  split_digits): sizes such as 4096 are what the costs depend on, and one token per digit lets the
  model read magnitudes from their length instead of memorising thousands of number tokens. The
  first digit keeps its leading space (` 4`, `0`, `9`, `6`), which costs nothing over plain GPT-2
  pre-tokenization (9.7 vs 9.7 tokens per line on TransCoder functions; a separate space token
  would cost 0.7 more).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import re
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from perfhint_train.datasets.records import REPO_ROOT, SHARED_DATASETS

PAD_TOKEN = "<pad>"  # id 0: the encoder's padding, also regress-lm's convention
UNK_TOKEN = "<unk>"  # id 1: never produced by a byte-level model, kept for regress-lm's vocab layout
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN)
DEFAULT_VOCAB_SIZE = 16000
MIN_FREQUENCY = 2
TOKENIZER_FILE = REPO_ROOT / "training" / "tokenizer" / "tokenizer.json"
CORPUS_REPORT_FILE = "corpus.json"
_F_GOLD = re.compile(r"(?ms)^(def f_gold.*?)(?=^#TOFILL)")  # the function a TransCoder Python file tests  # written beside tokenizer.json: what it was trained on

# SPDX ids (and their spelled-out forms in old metadata) that allow shipping derived statistics in an
# Apache-2.0 repository. The brief's families are MIT, BSD, Apache and PSF; 0BSD, Zlib, CC0, BSL-1.0 and
# ISC are as permissive and appear in numpy's and torch's expressions for bundled parts.
PERMISSIVE_LICENCES = ("MIT", "BSD", "APACHE", "PSF", "PYTHON", "0BSD", "ZLIB", "CC0", "BSL-1.0", "ISC",
                       "LLVM-EXCEPTION", "HPND")
_PERMISSIVE = re.compile(r"(?<![A-Z0-9])(" + "|".join(re.escape(name) for name in PERMISSIVE_LICENCES) + r")(?![A-Z])")
# Budgets keep one huge package (sympy, torch) from deciding the vocabulary; bytes of source text.
DEFAULT_BUDGETS = {"python": 48_000_000, "c_cpp": 14_000_000, "triton": 8_000_000}
PER_DISTRIBUTION_BYTES = 2_000_000
STDLIB_BYTES = 12_000_000
SKIPPED_DISTRIBUTIONS = {"perfhint"}  # our own code: its files are the repo's, not the venv's
VENDORED = re.compile(r"(^|/)(_vendor|vendor|vendored|third_party|_vendored|externals?)(/|$)")
PYTHON_SUFFIXES = (".py",)
# GPT-2's split with two changes for code: an identifier keeps its underscores (`f_gold` is one piece
# that BPE may still split), and a number is split into single digits, the first keeping its space.
PRE_TOKEN_PATTERN = r" ?[\p{L}_]+| ?\p{N}| ?[^\s\p{L}\p{N}_]+|\s+(?!\S)|\s+"
C_CPP_SUFFIXES = (".h", ".hpp", ".hh", ".c", ".cc", ".cpp", ".cxx", ".cuh", ".inl")


@dataclass
class CorpusPart:
    """One licence-homogeneous slice of the corpus: where it came from, under what licence, which texts."""

    name: str
    language: str  # python | c_cpp | triton
    licence: str
    texts: list[str] = field(default_factory=list)
    files: int = 0
    skipped_bytes: int = 0

    @property
    def bytes(self) -> int:
        return sum(len(text.encode("utf-8")) for text in self.texts)

    @property
    def lines(self) -> int:
        return sum(text.count("\n") + 1 for text in self.texts)


# ----------------------------------------------------------------------------------------------- licences


def distribution_licence(distribution: importlib.metadata.Distribution) -> str:
    """The licence a distribution declares: License-Expression, else its classifiers, else License's first line."""
    metadata = distribution.metadata
    expression = metadata.get("License-Expression")
    if expression:
        return expression.strip()
    classifiers = [line.split("::")[-1].strip() for line in (metadata.get_all("Classifier") or [])
                   if line.startswith("License ::")]
    if classifiers:
        return " AND ".join(classifiers)
    text = (metadata.get("License") or "").strip()
    return text.splitlines()[0].strip() if text else ""


def is_permissive(licence: str) -> bool:
    """True when every term of the licence (split on AND/OR/WITH) is a permissive one; unknown -> False."""
    terms = [term.strip(" ()") for term in re.split(r"\s+(?:AND|OR|WITH)\s+", licence) if term.strip(" ()")]
    if not terms:
        return False
    return all(_PERMISSIVE.search(term.upper()) for term in terms)


# ----------------------------------------------------------------------------------------------- corpus


def _stable_key(relative: str) -> str:
    return hashlib.sha256(relative.encode("utf-8")).hexdigest()


def _read_within_budget(part: CorpusPart, files: Iterable[tuple[str, Path]], budget: int) -> CorpusPart:
    """Add files (relative name, path) in sha256(name) order until `budget` bytes; unreadable files are skipped."""
    used = 0
    for relative, path in sorted(files, key=lambda item: _stable_key(item[0])):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        size = len(text.encode("utf-8"))
        if not text.strip():
            continue
        if used + size > budget:
            part.skipped_bytes += size
            continue
        part.texts.append(text)
        part.files += 1
        used += size
    return part


def _files_under(root: Path, suffixes: tuple[str, ...], exclude: re.Pattern[str] | None = None
                 ) -> list[tuple[str, Path]]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in suffixes or not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        if exclude is not None and exclude.search(relative):
            continue
        found.append((relative, path))
    return found


def stdlib_part(budget: int = STDLIB_BYTES) -> CorpusPart:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    exclude = re.compile(r"(^|/)(site-packages|test|tests|idle_test|lib2to3/tests)(/|$)")
    part = CorpusPart("python-stdlib", "python", "PSF-2.0")
    return _read_within_budget(part, _files_under(stdlib, PYTHON_SUFFIXES, exclude), budget)


def cpython_headers_part() -> CorpusPart:
    include = Path(sysconfig.get_paths()["include"])
    part = CorpusPart("cpython-include", "c_cpp", "PSF-2.0")
    return _read_within_budget(part, _files_under(include, C_CPP_SUFFIXES), 10**9)


def distribution_parts(per_distribution: int = PER_DISTRIBUTION_BYTES) -> tuple[list[CorpusPart], list[dict[str, str]]]:
    """Python and C/C++ parts of every permissively licensed installed distribution, and what was refused."""
    parts, refused = [], []
    seen = set()
    for distribution in sorted(importlib.metadata.distributions(), key=lambda d: (d.metadata["Name"] or "").lower()):
        name = (distribution.metadata["Name"] or "").lower()
        if not name or name in seen or name in SKIPPED_DISTRIBUTIONS:
            continue
        seen.add(name)
        licence = distribution_licence(distribution)
        if not is_permissive(licence):
            refused.append({"distribution": name, "licence": licence or "(none declared)"})
            continue
        files: dict[str, list[tuple[str, Path]]] = {"python": [], "c_cpp": []}
        for entry in distribution.files or []:
            relative = entry.as_posix()
            if VENDORED.search(relative) or ".dist-info/" in relative or relative.startswith(".."):
                continue
            language = ("python" if relative.endswith(PYTHON_SUFFIXES)
                        else "c_cpp" if relative.endswith(C_CPP_SUFFIXES) else None)
            if language:
                files[language].append((relative, Path(distribution.locate_file(entry))))
        for language, language_files in files.items():
            if language_files:
                part = CorpusPart(f"{name} ({language})", language, licence)
                parts.append(_read_within_budget(part, language_files, per_distribution * (4 if name == "torch" else 1)))
    return parts, refused


def triton_parts(shared: Path = SHARED_DATASETS) -> list[CorpusPart]:
    """TritonBench operator modules (code + tests + benchmark harness) and Liger-Kernel's module texts."""
    parts = []
    operators = shared / "tritonbench" / "operators.jsonl"
    if operators.is_file():
        part = CorpusPart("tritonbench", "triton", "Apache-2.0")
        for line in operators.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for key in ("code", "test_code", "bench_code"):
                if row.get(key):
                    part.texts.append(row[key])
            part.files += 1
        parts.append(part)
    sources = shared / "liger" / "sources.jsonl"
    if sources.is_file():
        part = CorpusPart("liger-kernel", "triton", "BSD-2-Clause")
        for line in sources.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("code"):
                part.texts.append(row["code"])
                part.files += 1
        parts.append(part)
    return parts


def transcoder_files(shared: Path = SHARED_DATASETS) -> dict[str, list[Path]]:
    """TransCoder-GFG files per language (CC-BY-SA 2.0): held out, or share-alike corpus when asked for."""
    root = shared / "transcoder_gfg"
    return {language: sorted((root / language).glob(f"*.{suffix}"))
            for language, suffix in (("python", "py"), ("c", "c"), ("cpp", "cpp")) if (root / language).is_dir()}


def transcoder_parts(shared: Path = SHARED_DATASETS) -> list[CorpusPart]:
    parts = []
    for language, paths in transcoder_files(shared).items():
        part = CorpusPart(f"transcoder-gfg ({language})", "python" if language == "python" else "c_cpp",
                          "CC-BY-SA-2.0")
        parts.append(_read_within_budget(part, [(path.name, path) for path in paths], 10**9))
    return parts


def build_corpus(*, include_share_alike: bool = False, budgets: dict[str, int] | None = None,
                 shared: Path = SHARED_DATASETS) -> tuple[list[CorpusPart], list[dict[str, str]]]:
    """All parts, each language trimmed to its budget by dropping whole parts' tails (largest parts first)."""
    budgets = {**DEFAULT_BUDGETS, **(budgets or {})}
    packages, refused = distribution_parts()
    parts = [stdlib_part(), cpython_headers_part(), *packages, *triton_parts(shared)]
    if include_share_alike:
        parts += transcoder_parts(shared)
    for language, budget in budgets.items():
        _fit_language(parts, language, budget)
    return [part for part in parts if part.texts], refused


def _fit_language(parts: list[CorpusPart], language: str, budget: int) -> None:
    """Shrink the largest parts of `language` (dropping their last texts) until the total fits."""
    chosen = [part for part in parts if part.language == language]
    while sum(part.bytes for part in chosen) > budget:
        largest = max(chosen, key=lambda part: (part.bytes, part.name))
        dropped = largest.texts.pop()
        largest.files -= 1
        largest.skipped_bytes += len(dropped.encode("utf-8"))


def corpus_texts(parts: Iterable[CorpusPart]) -> Iterator[str]:
    for part in parts:
        yield from part.texts


# ----------------------------------------------------------------------------------------------- training


def new_tokenizer():
    """An untrained byte-level BPE with perfhint's pre-tokenization (digits split) and no special-token template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRE_TOKEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE, min_frequency: int = MIN_FREQUENCY):
    """Train on `texts` (one sequence each); `<pad>` = 0, `<unk>` = 1, then the 256 byte symbols, then merges."""
    from tokenizers import pre_tokenizers, trainers

    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    for token_id, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != token_id:
            raise RuntimeError(f"{token} got id {tokenizer.token_to_id(token)}, expected {token_id}")
    return tokenizer


def tokens_per_line(tokenizer, texts: Iterable[str]) -> float:
    """Mean tokens per non-empty line over `texts` (whole files encoded, so merges across lines count)."""
    n_tokens = n_lines = 0
    for text in texts:
        n_tokens += len(tokenizer.encode(text).ids)
        n_lines += sum(1 for line in text.splitlines() if line.strip())
    return n_tokens / max(n_lines, 1)


def held_out_report(tokenizer, shared: Path = SHARED_DATASETS) -> dict[str, float]:
    """Tokens per non-empty line on code the corpus does not contain, shaped like the model's inputs.

    TransCoder-GFG Python `f_gold` functions (a `function` region), whole C/C++ programs (a `program`
    region) and CPython's own tests (Lib/test, excluded from the corpus).
    """
    files = transcoder_files(shared)
    functions = [match.group(1) for path in files.get("python", [])
                 if (match := _F_GOLD.search(path.read_text(encoding="utf-8", errors="replace")))]
    report = {"transcoder_python_functions": tokens_per_line(tokenizer, functions)}
    for language in ("c", "cpp"):
        texts = [path.read_text(encoding="utf-8", errors="replace") for path in files.get(language, [])]
        report[f"transcoder_{language}_programs"] = tokens_per_line(tokenizer, texts)
    tests = sorted((Path(sysconfig.get_paths()["stdlib"]) / "test").glob("test_*.py"))[:200]
    report["cpython_tests"] = tokens_per_line(tokenizer, [path.read_text(encoding="utf-8", errors="replace")
                                                          for path in tests])
    return {name: round(value, 2) for name, value in report.items()}


def corpus_summary(parts: list[CorpusPart], refused: list[dict[str, str]]) -> dict[str, object]:
    by_language: dict[str, int] = {}
    for part in parts:
        by_language[part.language] = by_language.get(part.language, 0) + part.bytes
    return {
        "bytes_by_language": by_language,
        "bytes": sum(by_language.values()),
        "parts": [{"name": part.name, "language": part.language, "licence": part.licence, "files": part.files,
                   "bytes": part.bytes} for part in parts],
        "refused_distributions": refused,
    }


# ----------------------------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE,
                        help=f"BPE vocabulary size including <pad> and <unk> (default {DEFAULT_VOCAB_SIZE})")
    parser.add_argument("--out", type=Path, default=TOKENIZER_FILE, help=f"tokenizer.json to write (default {TOKENIZER_FILE})")
    parser.add_argument("--include-share-alike", action="store_true",
                        help="also train on TransCoder-GFG (CC-BY-SA 2.0); the result must then not be committed "
                             "to an Apache-2.0 repository")
    parser.add_argument("--python-mb", type=float, default=DEFAULT_BUDGETS["python"] / 1e6,
                        help="Python bytes budget in MB")
    parser.add_argument("--c-cpp-mb", type=float, default=DEFAULT_BUDGETS["c_cpp"] / 1e6, help="C/C++ budget in MB")
    parser.add_argument("--triton-mb", type=float, default=DEFAULT_BUDGETS["triton"] / 1e6, help="Triton budget in MB")


def run(args: argparse.Namespace) -> int:
    budgets = {"python": int(args.python_mb * 1e6), "c_cpp": int(args.c_cpp_mb * 1e6),
               "triton": int(args.triton_mb * 1e6)}
    parts, refused = build_corpus(include_share_alike=args.include_share_alike, budgets=budgets)
    summary = corpus_summary(parts, refused)
    print(f"corpus: {summary['bytes'] / 1e6:.1f} MB in {len(parts)} parts "
          + ", ".join(f"{language} {size / 1e6:.1f} MB" for language, size in summary["bytes_by_language"].items()))
    tokenizer = train_tokenizer(corpus_texts(parts), vocab_size=args.vocab_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(args.out))
    held_out = held_out_report(tokenizer)
    summary.update(vocab_size=tokenizer.get_vocab_size(), tokens_per_line=held_out,
                   include_share_alike=args.include_share_alike,
                   tokenizer_sha256=hashlib.sha256(args.out.read_bytes()).hexdigest())
    (args.out.parent / CORPUS_REPORT_FILE).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} (vocab {tokenizer.get_vocab_size()}, {args.out.stat().st_size / 1e6:.2f} MB); "
          f"tokens per line: " + ", ".join(f"{name} {value}" for name, value in held_out.items()))
    return 0
