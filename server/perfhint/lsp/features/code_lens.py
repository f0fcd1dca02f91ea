"""textDocument/codeLens: one line per unit at the top of the file: the largest predicted cost and Σ Δ.

What is hard: a file mixes kinds (host memory of functions, GPU latency of kernels), and a sum of
bytes and milliseconds is meaningless, so there is one lens per unit dimension. Σ Δ runs over the
regions present in both the current text and the baseline (matched by key). While numbers are
missing the lens says how many are still being calculated or failed, so a partial maximum is never
read as the file's maximum. Clicking a lens compares the file with git HEAD.
"""

from __future__ import annotations

from lsprotocol import types

from perfhint import predict
from perfhint.lsp.analysis import CALCULATING, FAILED, READY, SYNTAX_ERROR, DocumentView

COMPARE_COMMAND = "perfhint.compareWithHead"


def titles(document_view: DocumentView) -> list[str]:
    if document_view.problem:
        return [document_view.problem]
    views = document_view.regions
    if not views:
        return []
    ready = [view.prediction for view in views if view.status == READY and view.prediction is not None]
    baseline = {view.region.key: view.baseline for view in views if view.baseline is not None}
    label = document_view.baseline_label or "baseline"
    result = []
    test_mark = "[TEST model] " if any(prediction.model.is_test for prediction in ready) else ""
    for summary in predict.file_summary(ready, baseline if baseline else None):
        text = (f"perfhint: {test_mark}largest {summary.metric.name} {predict.headline(summary.largest_in, summary.largest)}"
                f" in {summary.largest_in.name}")
        if summary.total_delta is not None:
            text += f" · Σ Δ {predict.format_delta(summary.total_delta, summary.metric.unit)} vs {label}"
        result.append(text)
    pending = sum(1 for view in views if view.status in (CALCULATING, SYNTAX_ERROR))
    failed = sum(1 for view in views if view.status == FAILED)
    if pending:
        result.append(f"perfhint: calculating… ({pending} of {len(views)} regions)")
    if failed:
        result.append(f"perfhint: prediction failed for {failed} of {len(views)} regions, see Output > perfhint")
    return result


def code_lenses(document_view: DocumentView) -> list[types.CodeLens]:
    top = types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0))
    return [types.CodeLens(range=top, command=types.Command(title=title, command=COMPARE_COMMAND,
                                                            arguments=[document_view.uri]))
            for title in titles(document_view)]
