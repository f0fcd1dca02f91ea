"""`perfhint doctor`: what is wrong with this install, and the fix, one line each.

What is hard: the person running it is usually looking at an editor that shows nothing, so every
check must say what it found (a version, a path) and, when it fails, the one thing to do next. The
checks run in the order things depend on each other (interpreter, packages, parser grammars, model
bundle, a real prediction, git, cache) and a failed check never hides the ones after it. Exit status
1 if anything failed; warnings (a test bundle, no git) do not fail.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    found: str
    fix: str = ""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", help="model bundle to check (default: as `perfhint annotate` finds it)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="where the model runs (default cpu)")


def check_interpreter() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < (3, 10):
        return Check(FAIL, "interpreter", f"Python {version} at {sys.executable}",
                     "perfhint needs Python 3.10+: install it and `pip install perfhint` there")
    return Check(OK, "interpreter", f"Python {version} at {sys.executable}")


def check_package(module: str, why: str, pip_name: str | None = None) -> Check:
    try:
        imported = importlib.import_module(module)
    except Exception as error:  # ImportError, or a broken binary wheel raising anything
        return Check(FAIL, module, f"cannot import ({type(error).__name__}: {error})",
                     f"{why}: pip install --force-reinstall {pip_name or module}")
    return Check(OK, module, f"{getattr(imported, '__version__', 'installed')}")


def check_onnxruntime(device: str) -> Check:
    try:
        import onnxruntime
    except Exception as error:
        return Check(FAIL, "onnxruntime", f"cannot import ({error})",
                     "the model runs on onnxruntime: pip install --force-reinstall onnxruntime")
    providers = onnxruntime.get_available_providers()
    found = f"{onnxruntime.__version__}, providers {', '.join(providers)}"
    if device == "gpu" and "CUDAExecutionProvider" not in providers:
        return Check(FAIL, "onnxruntime", found, "perfhint.runtimeDevice is gpu but this onnxruntime has no CUDA: "
                     "pip install onnxruntime-gpu, or set perfhint.runtimeDevice to cpu")
    return Check(OK, "onnxruntime", found)


def check_grammars() -> Check:
    try:
        from perfhint.regions import find_regions

        found = {language: len(find_regions(source, language)) for language, source in (
            ("python", "def f(n):\n    return n\n"), ("c", "int main(void) { return 0; }\n"),
            ("cpp", "int main() { return 0; }\n"))}
    except Exception as error:
        return Check(FAIL, "tree-sitter grammars", f"cannot parse ({type(error).__name__}: {error})",
                     "pip install --force-reinstall tree-sitter tree-sitter-python tree-sitter-c tree-sitter-cpp")
    if any(count != 1 for count in found.values()):
        return Check(FAIL, "tree-sitter grammars", f"unexpected regions {found}",
                     "pip install --force-reinstall tree-sitter tree-sitter-python tree-sitter-c tree-sitter-cpp")
    return Check(OK, "tree-sitter grammars", "python, c, cpp parse")


def check_bundle(bundle: str | None, device: str) -> tuple[list[Check], object | None]:
    from perfhint.engine import BundleProblem, Engine, NoBundle, resolve_bundle_path
    from perfhint.settings import load_project_settings

    settings, _, root = load_project_settings(Path.cwd())
    configured = str(Path(bundle).resolve()) if bundle else settings.bundle_path
    try:
        path = resolve_bundle_path(configured, root=root, how_to_set="pass --bundle PATH or set perfhint.bundlePath")
    except NoBundle as error:
        return [Check(FAIL, "model bundle", "none", str(error).removeprefix("perfhint: "))], None
    engine = Engine(cache_dir=None)
    started = time.perf_counter()
    try:
        predictor = engine.predictor(path, device)
    except BundleProblem as error:
        return [Check(FAIL, "model bundle", str(path), str(error).removeprefix("perfhint: "))], None
    load_s = time.perf_counter() - started
    manifest = predictor.bundle.manifest
    model = manifest["model"]
    checks = [Check(OK, "model bundle", f"{path}: {model['name']} {model['version']} (purpose {model['purpose']}), "
                                        f"verified, loaded in {load_s:.2f} s")]
    if model["purpose"] == "test":
        checks.append(Check(WARN, "model purpose", "test: random weights, numbers are not predictions",
                            "use a trained bundle for real numbers (perfhint.bundlePath / --bundle)"))
    try:
        started = time.perf_counter()
        [result] = predictor.predict_texts(["def f(n):\n    return [0] * n\n"], samples=8, seed=0)
        elapsed_ms = (time.perf_counter() - started) * 1000
        checks.append(Check(OK, "prediction", f"one region, 8 samples in {elapsed_ms:.0f} ms "
                                              f"({result.n_tokens} tokens)"))
    except Exception as error:
        checks.append(Check(FAIL, "prediction", f"{type(error).__name__}: {error}",
                            "run `perfhint bundle verify PATH`; re-export the bundle with `perfhint export`"))
    return checks, predictor


def check_git() -> Check:
    git = shutil.which("git")
    if git is None:
        return Check(WARN, "git", "not found", "install git for Δ against HEAD and `perfhint compare`")
    try:
        result = subprocess.run([git, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as error:
        return Check(WARN, "git", f"{git} fails to run ({error})", "reinstall git")
    return Check(OK, "git", f"{result.stdout.strip()} at {git}")


def check_cache() -> Check:
    from perfhint.engine import CACHE_DIR_ENV, default_cache_dir

    directory = default_cache_dir()
    if directory is None:
        return Check(OK, "prediction cache", f"disk cache off (${CACHE_DIR_ENV}=off)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory):
            pass
    except OSError as error:
        return Check(WARN, "prediction cache", f"{directory} not writable ({error.strerror or error})",
                     f"set ${CACHE_DIR_ENV} to a writable directory (numbers are then cached in memory only)")
    return Check(OK, "prediction cache", str(directory))


def run(args: argparse.Namespace) -> int:
    checks: list[Check] = [check_interpreter()]
    steps: list[Callable[[], Check]] = [
        lambda: check_package("numpy", "decoding needs numpy"),
        lambda: check_onnxruntime(args.device),
        lambda: check_package("tokenizers", "HF tokenizer bundles need it"),
        lambda: check_package("sentencepiece", "SentencePiece bundles need it"),
        lambda: check_package("pygls", "the language server needs it"),
        check_grammars,
    ]
    for step in steps:
        checks.append(step())
    bundle_checks, _ = check_bundle(args.bundle, args.device)
    checks += bundle_checks + [check_git(), check_cache()]
    width = max(len(check.name) for check in checks)
    for check in checks:
        print(f"{check.status:4}  {check.name.ljust(width)}  {check.found}")
        if check.fix:
            print(f"{'':4}  {'':{width}}  fix: {check.fix}")
    failed = [check for check in checks if check.status == FAIL]
    print(f"\nperfhint doctor: {len(failed)} problem(s)" if failed else "\nperfhint doctor: all good")
    if os.environ.get("PERFHINT_BUNDLE"):
        print(f"(PERFHINT_BUNDLE={os.environ['PERFHINT_BUNDLE']})")
    return 1 if failed else 0
