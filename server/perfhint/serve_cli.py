"""`perfhint serve`: the language server over stdio (what editors start).

What is hard: stdout *is* the protocol channel, so nothing else may print to it; logs go to stderr,
which editors show as the server's output (Output > perfhint in VS Code, :LspLog in Neovim).
"""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", help="talk LSP over stdin/stdout (the default and only transport)")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default; or $PERFHINT_LOG), WARNING, ERROR")


def run(args: argparse.Namespace) -> int:
    from perfhint.lsp.server import configure_logging, create_server

    configure_logging(args.log_level)
    create_server().start_io()
    return 0
