"""workspace/executeCommand: `perfhint.compareWithHead` (a per-region table) and `perfhint.toggle`.

What is hard: a command's answer goes back to whatever asked (an extension, a test, a user's Lua), so
it is plain JSON with both the numbers and their formatted text, and a failure is an answer too
(`{"error": ...}` with the fix) rather than a JSON-RPC error an editor shows as a stack trace. The
first parameter is named `ls`: that is how pygls knows to pass the server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from perfhint import baseline as baselines
from perfhint import predict
from perfhint.regions import SourceTooLarge, find_regions

logger = logging.getLogger("perfhint.lsp")

COMPARE_WITH_HEAD = "perfhint.compareWithHead"
TOGGLE = "perfhint.toggle"


async def compare_with_head(ls: Any, *arguments: Any) -> dict[str, Any]:
    try:
        return await _compare_with_head(ls, *arguments)
    except Exception as error:
        logger.exception("perfhint: %s failed", COMPARE_WITH_HEAD)
        ls.show_failure()
        return {"error": f"perfhint: compare failed ({type(error).__name__}: {error}); see Output > perfhint"}


async def _compare_with_head(ls: Any, *arguments: Any) -> dict[str, Any]:
    uri = arguments[0] if arguments else None
    if isinstance(uri, dict):
        uri = uri.get("uri")
    if not isinstance(uri, str):
        return {"error": f"{COMPARE_WITH_HEAD} needs the document URI as its argument"}
    state = ls.analysis.documents.get(uri)
    document = ls.open_document(uri)
    if state is None or document is None:
        return {"uri": uri, "error": "the document is not open in the editor"}
    if state.path is None or state.language is None:
        return {"uri": uri, "error": "only files in a supported language (Python, C, C++) can be compared"}
    settings = ls.settings
    predictor = await ls.analysis._predictor(settings)
    if predictor is None:
        return {"uri": uri, "error": ls.analysis.predictor_problem or "no model bundle"}
    loop = asyncio.get_running_loop()
    head = await loop.run_in_executor(None, baselines.revision_text, state.path, "HEAD")
    try:
        before = await _predict(ls, head.text, state.language, settings, predictor) if head.text is not None else []
        after = await _predict(ls, document.source, state.language, settings, predictor)
    except SourceTooLarge as error:
        return {"uri": uri, "error": str(error)}
    rows = predict.compare_rows({p.key: p for p in before}, after)
    return {"uri": uri, "revision": "HEAD", "reason": head.reason or None,
            "rows": [row.as_json() for row in rows]}


async def _predict(ls: Any, text: str, language: str, settings: Any, predictor: Any) -> list[predict.Prediction]:
    loop = asyncio.get_running_loop()
    regions = await loop.run_in_executor(None, find_regions, text, language)
    requests = ls.engine.requests([region for region in regions if not region.has_error], settings, predictor)
    outcomes = await ls.engine.run_async(requests, settings, predictor)
    return [outcome.prediction for outcome in outcomes if outcome.prediction is not None]


def toggle(ls: Any, *arguments: Any) -> dict[str, Any]:
    try:
        return {"enabled": ls.toggle()}
    except Exception:
        logger.exception("perfhint: %s failed", TOGGLE)
        ls.show_failure()
        return {"error": "perfhint: toggle failed; see Output > perfhint"}


COMMANDS = {COMPARE_WITH_HEAD: compare_with_head, TOGGLE: toggle}
