"""The `perfhint` command line: one entry point, one module per subcommand.

What is hard: the runtime install has no torch, yet `perfhint export` and `perfhint train` live in the
same CLI. So subcommands are looked up in a table and imported only when asked for; a subcommand whose
extra is missing fails with one line that names the extra, before anything heavy is imported. Each
subcommand module provides `configure_parser(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from dataclasses import dataclass

from perfhint import __version__


@dataclass(frozen=True)
class Command:
    module: str
    summary: str
    extra: str | None = None  # the pip extra whose packages the module imports
    needs: tuple[str, ...] = ()  # top-level modules that must be importable for that extra


TORCH_EXTRA = ("torch", "onnx")

COMMANDS: dict[str, Command] = {
    "predict": Command("perfhint.predict_cli", "predict costs for JSONL records with a model bundle"),
    "bundle": Command("perfhint.bundle_cli", "inspect (`info`) or check (`verify`) a model bundle"),
    "measure": Command("perfhint.measure.cli", "measure for real what a hint predicts (runs the code in a sandbox)"),
    "export": Command("perfhint_export.cli", "convert a PyTorch RLM checkpoint to a verified ONNX bundle",
                      extra="export", needs=TORCH_EXTRA),
    "serve": Command("perfhint.serve_cli", "start the language server over stdio (editors run this)"),
    "annotate": Command("perfhint.annotate_cli", "print the predicted cost of every region of source files"),
    "compare": Command("perfhint.compare_cli", "before/after/Δ per region against a git revision (CI)"),
    "doctor": Command("perfhint.doctor_cli", "check interpreter, onnxruntime, model bundle and git; name fixes"),
    "train": Command("perfhint_train.cli", "build datasets, train, evaluate and fine-tune the RLM",
                     extra="train", needs=TORCH_EXTRA + ("sklearn", "scipy")),
}


def _missing(needs: tuple[str, ...]) -> list[str]:
    return [name for name in needs if importlib.util.find_spec(name) is None]


def _print_overview() -> None:
    print(f"perfhint {__version__}: predicted peak memory and GPU latency next to your code\n")
    print("usage: perfhint COMMAND [ARGS...]   (perfhint COMMAND --help for its options)\n")
    print("commands:")
    width = max(len(name) for name in COMMANDS)
    for name, command in COMMANDS.items():
        extra = f"  [needs perfhint[{command.extra}]]" if command.extra else ""
        print(f"  {name.ljust(width)}  {command.summary}{extra}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        _print_overview()
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"perfhint {__version__}")
        return 0
    name = argv[0]
    command = COMMANDS.get(name)
    if command is None:
        print(f"perfhint: unknown command {name!r}; run `perfhint --help` for the list", file=sys.stderr)
        return 2
    missing = _missing(command.needs)
    if missing:
        print(f"perfhint {name} needs the '{command.extra}' extra ({', '.join(missing)} not installed): "
              f"pip install 'perfhint[{command.extra}]'", file=sys.stderr)
        return 2
    module = importlib.import_module(command.module)
    parser = argparse.ArgumentParser(prog=f"perfhint {name}", description=command.summary)
    module.configure_parser(parser)
    args = parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
