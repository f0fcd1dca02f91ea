"""textDocument/inlayHint: `≈ 12 MiB +3.1 MiB` at the end of each line in a region's `hint_lines`.

What is hard: the hint must say what kind of number it is in a dozen characters. `≈` marks a
prediction; `≈?` one whose arguments are unknown (not checkable by `perfhint measure`); a trailing
`…` a number for an older text while the new one is computed; `✂` an input cut to the model's
length. A latency names the GPU it is for (`@H100`). A value below the user's threshold for its
unit is not shown at all, but states (calculating, failed, syntax error) always are: an empty line
must mean "small", never "unknown". Positions are the end of the line in the client's position
encoding, with lines counted by `\\n` as regions.py counts them.
"""

from __future__ import annotations

from lsprotocol import types

from perfhint import predict
from perfhint.lsp.analysis import CALCULATING, FAILED, READY, SYNTAX_ERROR, DocumentView, RegionView

FAILED_LINE = "perfhint: prediction failed, see Output > perfhint"
CALCULATING_LINE = "perfhint: calculating…"


def label(view: RegionView, document: DocumentView) -> str | None:
    """The hint text for one region, or None when its number is below the user's threshold."""
    prediction = view.prediction
    if view.status == READY and prediction is not None:
        primary = prediction.primary
        if primary is not None and document.settings.hidden(primary.metric.dimension, primary.base(primary.median)):
            return None
        text = predict.headline(prediction)
        change = predict.delta(primary, predict.metric_by_name(view.baseline, primary.metric.name)) if primary else None
        if change is not None and change[0] != 0:
            text += f" {change[1]}"
        if prediction.truncated:
            text += " ✂"
        return text
    if view.status == CALCULATING:
        return f"{predict.headline(prediction)} …" if prediction is not None else CALCULATING_LINE
    if view.status == SYNTAX_ERROR:
        return (f"{predict.headline(prediction)} … (syntax error)" if prediction is not None
                else "perfhint: syntax error, no number")
    if view.status == FAILED:
        return FAILED_LINE
    return None


def tooltip(view: RegionView) -> str:
    if view.status == READY and view.prediction is not None:
        prediction = view.prediction
        parts = [f"perfhint: predicted {prediction.primary.metric.name if prediction.primary else 'cost'} "
                 f"of {prediction.name} (hover for the band and assumptions)"]
        if not prediction.arguments_known:
            parts.append("arguments unknown: not checkable by `perfhint measure`")
        if prediction.truncated:
            parts.append("input truncated to the model's length")
        if prediction.model.is_test:
            parts.append("TEST model: not a real prediction")
        return "; ".join(parts)
    if view.status == FAILED:
        return f"{FAILED_LINE}: {view.error}"
    if view.status == SYNTAX_ERROR:
        return "perfhint: the region has a syntax error; the number (if any) is for its last version that parsed"
    return "perfhint: calculating… the number shown (if any) is for the previous version"


def inlay_hints(document_view: DocumentView, source: str, codec, visible: types.Range | None) -> list[types.InlayHint]:
    lines = source.split("\n")
    hints: list[types.InlayHint] = []
    first_line = visible.start.line if visible is not None else 0
    last_line = visible.end.line if visible is not None else len(lines)
    if document_view.problem and document_view.regions == ():
        return hints
    problem_shown = False
    for view in document_view.regions:
        text = label(view, document_view)
        hint_tooltip = tooltip(view)
        if document_view.problem and view.status != READY and not problem_shown:
            text, hint_tooltip, problem_shown = document_view.problem, document_view.problem, True
        elif document_view.problem and view.status != READY:
            continue  # one line says what is wrong with the whole file; not one per region
        if text is None:
            continue
        for line in view.region.hint_lines:
            if not first_line <= line <= last_line or line >= len(lines):
                continue
            character = codec.client_num_units(lines[line].removesuffix("\r"))
            hints.append(types.InlayHint(position=types.Position(line=line, character=character),
                                         label=text, padding_left=True, tooltip=hint_tooltip))
    return hints
