"""textDocument/hover: everything a number rests on, so that nobody mistakes it for a measurement.

What is hard: the hover is where the caveats live, and caveats only work if they are specific. It
says which metric and what it means, the median and the p10–p90 band over N samples (and how many
decoded to no number), the context the model was conditioned on and where each part came from (a
`# perfhint:` comment, a literal call in the file, a setting), the model and its purpose (a `test`
bundle has random weights and says so), Δ against the baseline, whether the input was cut, and that
code called but defined elsewhere is invisible to the model. Markdown is kept to lists and code
spans: editors render tables differently, lists the same.
"""

from __future__ import annotations

from lsprotocol import types

from perfhint import predict
from perfhint.lsp.analysis import CALCULATING, FAILED, SYNTAX_ERROR, DocumentView, RegionView

NOT_SEEN = "Code this region calls but that is defined elsewhere (other files, libraries) is not seen by the model."


def region_at(document_view: DocumentView, line: int) -> RegionView | None:
    """The region whose hint is on `line`, else the innermost region containing it."""
    on_hint = [view for view in document_view.regions if line in view.region.hint_lines]
    if on_hint:
        return on_hint[0]
    containing = [view for view in document_view.regions if view.region.start_line <= line <= view.region.end_line]
    if not containing:
        return None
    return min(containing, key=lambda view: (view.region.end_line - view.region.start_line, view.region.key))


def markdown(view: RegionView, document_view: DocumentView) -> str:
    """Paragraphs: title, state, test-model warning, one per metric, assumptions, the caveat."""
    region = view.region
    paragraphs = [f"**perfhint** · `{region.name}` ({region.kind.replace('_', ' ')}, {region.language})"]
    prediction = view.prediction
    if view.status == CALCULATING:
        paragraphs.append("*Calculating…*" + (" The numbers below are for the previous version." if prediction else ""))
    elif view.status == FAILED:
        paragraphs.append(f"**Prediction failed**: {view.error}. See Output > perfhint for the traceback.")
    elif view.status == SYNTAX_ERROR:
        paragraphs.append("*The code has a syntax error*: no new number until it parses."
                          + (" The numbers below are for its last version that parsed." if prediction else ""))
    if document_view.problem:
        paragraphs.append(document_view.problem)
    if prediction is None:
        return "\n\n".join(paragraphs)
    if prediction.model.is_test:
        paragraphs.append(f"**TEST model** `{prediction.model.name}`: random weights, for testing perfhint itself. "
                          "These numbers are not predictions.")
    for value in prediction.metrics:
        paragraphs.append("\n".join(_metric_lines(prediction, value, view, document_view)))
    assumptions = [f"- context assumed: {_context(prediction)}"]
    if not prediction.arguments_known:
        assumptions.append("- **arguments unknown** (shown as `≈?`): the model saw the code without its inputs, so "
                           "this number is not checkable by `perfhint measure`. Add `# perfhint: args=(...)` above "
                           "the definition, or call it with literal arguments in this file.")
    assumptions += [f"- {error}" for error in prediction.context_errors]
    if prediction.input_size is not None:
        assumptions.append(f"- input size the model was told: {_size(prediction)}")
    assumptions.append(f"- model: `{prediction.model.name}` {prediction.model.version} "
                       f"(purpose: {prediction.model.purpose}), input {prediction.n_tokens} tokens")
    if prediction.truncated:
        limit = prediction.model.max_input_len
        assumptions.append(f"- **input truncated** ✂: the model read only the first {limit or 'few'} tokens of this "
                           "region; code past that point did not count.")
    paragraphs += ["\n".join(assumptions), NOT_SEEN]
    return "\n\n".join(paragraphs)


def _metric_lines(prediction: predict.Prediction, value: predict.MetricValue, view: RegionView,
                  document_view: DocumentView) -> list[str]:
    metric = value.metric
    title = f"**{metric.name}**" + (f": {metric.meaning}" if metric.meaning else "")
    lines = [title]
    if value.median is None:
        lines.append(f"- no number: none of the {value.n_samples} samples decoded to a finite value")
    else:
        where = f" on {prediction.target_gpu}" if prediction.target_gpu and metric.dimension == "seconds" else ""
        lines.append(f"- median: {predict.format_quantity(value.median, metric.unit)}{where}")
        lines.append(f"- p10–p90: {predict.band(value)}" + (" (widened to hold 80 % of held-out measurements)"
                                                            if prediction.model.band_calibrated
                                                            else " (the samples' spread; not calibrated)"))
    lines.append(f"- samples: {value.n_samples}" + (f" ({value.n_finite} decoded to a number, "
                                                     f"{value.special_fraction:.0%} special values)"
                                                     if value.n_finite != value.n_samples else ""))
    base_value = predict.metric_by_name(view.baseline, metric.name)
    label = document_view.baseline_label or "baseline"
    change = predict.delta(value, base_value)
    if change is not None:
        percent = f" ({change[2]})" if change[2] else ""
        lines.append(f"- Δ vs {label}: {change[1]}{percent} (was {predict.format_quantity(base_value.median, metric.unit)})")
    elif view.baseline is None and document_view.baseline_pending:
        lines.append(f"- Δ vs {label}: calculating…")
    elif view.baseline is None and document_view.baseline_reason:
        lines.append(f"- Δ vs {label}: none ({document_view.baseline_reason})")
    elif view.baseline is None and document_view.baseline_label:
        lines.append(f"- Δ vs {label}: none (the region is new)")
    return lines


def _size(prediction: predict.Prediction) -> str:
    """Say where the size came from, so a user can check it against what they meant."""
    size = prediction.input_size
    if size == "?":
        return "unknown (`?`: a stated value could not be read)"
    if prediction.kind in ("program", "script") and not {"args", "kwargs", "shape"} & set(prediction.context):
        main = "its `if __name__ == \"__main__\":` block" if prediction.language == "python" else "`main`"
        source = f"a heuristic: the integer literals and string lengths in {main} and in constants"
    else:
        source = "the elements of `args`/`kwargs`/`shape`; a number argument counts as its value"
    return f"`{size}` ({source})" if size != "0" else "`0` (nothing states a size)"


def _context(prediction: predict.Prediction) -> str:
    if not prediction.context:
        return "none (the model saw the code only)"
    parts = []
    for key, text in sorted(prediction.context.items()):
        if key in prediction.defaulted:
            source = "from settings"
        elif key in ("args", "kwargs") and prediction.args_source == "call":
            source = "from a literal call in this file"
        else:
            source = "from a `# perfhint:` comment"
        parts.append(f"`{key}={text}` ({source})")
    return ", ".join(parts)


def hover(document_view: DocumentView, line: int) -> types.Hover | None:
    view = region_at(document_view, line)
    if view is None:
        if document_view.problem:  # e.g. a file too large for hints: say why there are none
            return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=document_view.problem))
        return None
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=markdown(view, document_view)))

