"""The real language server with the fake predictor in place of onnxruntime (see fake_predictor.py).

Run as a script by the end-to-end tests: everything but the model is the production code path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_predictor import FakePredictor  # noqa: E402

import perfhint.engine  # noqa: E402
from perfhint.engine import Engine  # noqa: E402
from perfhint.lsp.server import configure_logging, create_server  # noqa: E402


def main() -> None:
    configure_logging()
    if os.environ.get("PERFHINT_TEST_NO_SHIPPED_MODEL"):  # act as an install whose default model is missing
        perfhint.engine.shipped_bundle_path = lambda: None
    engine = Engine(cache_dir=None, loader=lambda path, device: FakePredictor.from_bundle_path(path, device=device))
    create_server(engine).start_io()


if __name__ == "__main__":
    main()
