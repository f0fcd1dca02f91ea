"""From a region to a Prediction, and from numbers to the text a person reads. No LSP, no caching.

What is hard:
- The model predicts a *distribution* (samples of a number). What we show must say so: a median with
  a p10–p90 band, the number of samples, the fraction that decoded to no number, and the context it
  was conditioned on. A number without its assumptions reads like a measurement; it is not one.
- Which metric fits which region: a bundle may predict several objectives (manifest `metrics`, one per
  decoded object). A Triton kernel is about latency on a GPU; a Python function or a C program is
  about peak memory. A metric whose unit is a time is shown for kernels, one in bytes for the rest; a
  bundle with neither kind of metric shows what it has.
- Units: values are kept in base units (bytes, seconds) and formatted with a unit always. Memory is
  binary (B, KiB, MiB, GiB: the largest unit in which the value is at least 1); time is µs, ms, s
  (the largest in which the value is at least 0.1, so 210 µs reads "0.21 ms"). Two significant
  digits below 10, none after the point at 10 or more ("12 MiB", "3.1 MiB", "0.21 ms"). A change is
  signed with a real minus sign ("+3.1 MiB", "−12 %").
- A region whose arguments are unknown still gets a number (the model was conditioned on nothing),
  but it is flagged (`arguments_known=False`) so the editor greys it as `≈?` and the hover says the
  number cannot be checked by `perfhint measure`.

`engine.py` batches and caches calls into `model_input` / `to_prediction`; `predict()` is the
one-region path without either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from perfhint.input_template import region_name, render_model_input, size_of_text
from perfhint.settings import BYTES, SECONDS, UNITS, Settings

MINUS = "\u2212"  # the typographic minus: "−12 %" never reads as a hyphen
TIME_KINDS = frozenset({"triton_kernel"})  # region kinds whose cost is a GPU latency
TARGET_GPU_KEY = "gpu"  # the context key of the GPU a latency is predicted for (context.py)

_MEMORY_UNITS = (("GiB", 1024.0**3), ("MiB", 1024.0**2), ("KiB", 1024.0), ("B", 1.0))
_TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6))


# --- formatting -------------------------------------------------------------------------------------

def to_base(value: float, unit: str) -> tuple[float, str | None]:
    """A value in `unit` -> (value in bytes or seconds, dimension); unknown units pass through."""
    if unit in UNITS:
        dimension, scale = UNITS[unit]
        return value * scale, dimension
    return value, None


def display_unit(value: float, dimension: str | None) -> tuple[str, float]:
    """(unit, scale) in which `value` (base units) is shown."""
    magnitude = abs(value)
    if dimension == BYTES:
        for unit, scale in _MEMORY_UNITS:
            if magnitude >= scale:
                return unit, scale
        return "B", 1.0
    if dimension == SECONDS:
        for unit, scale in _TIME_UNITS:
            if magnitude >= 0.1 * scale:
                return unit, scale
        return "µs", 1e-6
    return "", 1.0


def format_number(number: float) -> str:
    """Two significant digits below 10, integers above; never exponent notation for ordinary sizes."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "∞" if number > 0 else f"{MINUS}∞"
    magnitude = abs(number)
    if magnitude >= 10:
        text = f"{magnitude:.0f}"
    elif magnitude >= 1:
        text = f"{magnitude:.1f}"
    elif magnitude == 0:
        text = "0"
    elif magnitude >= 1e-3:
        text = f"{magnitude:.2g}"
    else:
        text = f"{magnitude:.1e}"
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return f"{MINUS}{text}" if number < 0 and text != "0" else text


def format_quantity(value: float, unit: str) -> str:
    """`format_quantity(12.5 * 2**20, "B")` -> "12 MiB"; `format_quantity(2.1e-4, "s")` -> "0.21 ms"."""
    base, dimension = to_base(value, unit)
    if dimension is None:
        return f"{format_number(value)} {unit}".strip()
    shown_unit, scale = display_unit(base, dimension)
    return f"{format_number(base / scale)} {shown_unit}"


def format_band(p10: float, p90: float, unit: str) -> str:
    """"9.8–14 MiB": both ends in the unit of the larger end, so they compare at a glance."""
    low, dimension = to_base(p10, unit)
    high, _ = to_base(p90, unit)
    if dimension is None:
        return f"{format_number(p10)}–{format_number(p90)} {unit}".strip()
    shown_unit, scale = display_unit(max(abs(low), abs(high)), dimension)
    return f"{format_number(low / scale)}–{format_number(high / scale)} {shown_unit}"


def format_delta(delta: float, unit: str) -> str:
    """"+3.1 MiB", "−512 KiB", "±0 B": always signed, so a change never reads as an absolute value."""
    if delta == 0:
        base_unit = {BYTES: "B", SECONDS: "s"}.get(to_base(0.0, unit)[1] or "", unit)
        return f"±0 {base_unit}".strip()
    text = format_quantity(abs(delta), unit)
    return f"+{text}" if delta > 0 else f"{MINUS}{text}"


def format_percent(before: float, after: float) -> str | None:
    """"+12 %", "−3.4 %"; None where there is no meaningful ratio (a zero or non-finite before)."""
    if not (math.isfinite(before) and math.isfinite(after)) or before == 0:
        return None
    percent = (after - before) / abs(before) * 100
    if percent == 0:
        return "±0 %"
    text = format_number(abs(percent))
    return f"+{text} %" if percent > 0 else f"{MINUS}{text} %"


# --- predictions ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """One objective of the bundle: manifest `metrics[i]`, decoded from object i."""

    index: int
    name: str
    unit: str
    meaning: str

    @property
    def dimension(self) -> str | None:
        return to_base(1.0, self.unit)[1]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    purpose: str  # default | test | user
    sha256: str
    max_input_len: int | None
    band_calibrated: bool = False  # the manifest carries a p10–p90 calibration (calibration.py)

    @property
    def is_test(self) -> bool:
        return self.purpose == "test"


@dataclass(frozen=True)
class MetricValue:
    """A metric's summary for one region, in the metric's own unit (see Metric.unit)."""

    metric: Metric
    median: float | None  # None: no sample decoded to a finite number
    p10: float | None
    p90: float | None
    n_samples: int
    n_finite: int
    special_fraction: float

    def base(self, value: float | None) -> float | None:
        return None if value is None else to_base(value, self.metric.unit)[0]


@dataclass(frozen=True)
class Prediction:
    key: str
    name: str
    kind: str
    language: str
    line: int
    metrics: tuple[MetricValue, ...]
    context: Mapping[str, str]  # the context texts the model was conditioned on (defaults included)
    context_errors: tuple[str, ...]
    arguments_known: bool
    model: ModelInfo
    samples: int
    n_tokens: int
    truncated: bool
    cache_key: str = ""  # engine.cache_key of the model text this came from
    target_gpu: str | None = None
    args_source: str | None = None  # "comment" | "call" | None: where the arguments came from
    defaulted: tuple[str, ...] = ()  # context keys filled in from settings, not written in the code
    has_error: bool = False  # the region's code had a syntax error when predicted
    input_size: str | None = None  # the size the model's header stated (perfhint-v2 templates), e.g. "1e6"

    @property
    def primary(self) -> MetricValue | None:
        return self.metrics[0] if self.metrics else None


def model_info(bundle: Any, sha256: str) -> ModelInfo:
    manifest = bundle_manifest(bundle)
    model = manifest.get("model") or {}
    return ModelInfo(name=str(model.get("name") or "unnamed model"), version=str(model.get("version") or "?"),
                     purpose=str(model.get("purpose") or "user"), sha256=sha256,
                     max_input_len=_int_or_none(manifest.get("max_input_len")),
                     band_calibrated=manifest.get("calibration") is not None)


def bundle_manifest(bundle: Any) -> Mapping[str, Any]:
    manifest = getattr(bundle, "manifest", None)
    if isinstance(manifest, Mapping):
        return manifest
    return {}


def bundle_metrics(bundle: Any) -> tuple[Metric, ...]:
    manifest = bundle_manifest(bundle)
    metrics = manifest.get("metrics") or [{"name": "value", "unit": "", "meaning": "the model's output"}]
    return tuple(Metric(index=index, name=str(item.get("name", f"objective {index}")), unit=str(item.get("unit", "")),
                        meaning=str(item.get("meaning", ""))) for index, item in enumerate(metrics))


def metrics_for(kind: str, metrics: Sequence[Metric], wanted: Sequence[str] = ()) -> tuple[Metric, ...]:
    """The bundle's metrics shown for a region of `kind`, in manifest order (see module docstring)."""
    if wanted:
        chosen = tuple(metric for metric in metrics if metric.name in wanted)
    else:
        dimension = SECONDS if kind in TIME_KINDS else BYTES
        chosen = tuple(metric for metric in metrics if metric.dimension == dimension)
        if not chosen:
            chosen = tuple(metric for metric in metrics if metric.dimension is None) or tuple(metrics[:1])
    return chosen


def arguments_known(region: Any) -> bool:
    """Whether the region's inputs are stated, so `perfhint measure` could check the number.

    A Python function needs its arguments (a `# perfhint: args=` comment or a literal call); a Triton
    kernel its arguments or the `shape` it runs on; scripts and programs run as they are.
    """
    context = region.context
    if region.kind == "function":
        return getattr(context, "args_source", None) is not None
    if region.kind == "triton_kernel":
        return getattr(context, "args_source", None) is not None or "shape" in (getattr(context, "texts", None) or {})
    return True


def assumed_context(region: Any, settings: Settings) -> Any:
    """The region's context with the settings' defaults (target GPU) filled in where the code is silent."""
    from perfhint.context import with_defaults

    defaults = settings.context_defaults()
    if region.kind not in TIME_KINDS:
        defaults.pop(TARGET_GPU_KEY, None)  # peak host memory does not depend on the GPU
    return with_defaults(region.context, defaults)


def region_id(region: Any) -> str:
    """`language/region_kind`: what the runtime decodes as costs and calibrates by (runtime.predict_texts).

    Passed beside the model text because a raw-template text (a regress-lm checkpoint's) is the code
    alone and does not say what region it is."""
    return region_name(region.language, region.kind)


def model_input(region: Any, bundle: Any, settings: Settings) -> tuple[str, Any]:
    """(model text, context assumed) for one region, in the bundle's input format."""
    context = assumed_context(region, settings)
    template = bundle_manifest(bundle).get("input_template") or {"kind": "raw"}
    text = render_model_input(template, language=region.language, region_kind=region.kind, code=region.code,
                              context=context)
    return text, context


def to_prediction(region: Any, context: Any, text_prediction: Any, *, model_text: str, bundle: Any,
                  bundle_sha256: str, settings: Settings, cache_key: str = "") -> Prediction:
    """The Prediction shown for `region`; `model_text` is what the model read (its header states the size)."""
    all_metrics = bundle_metrics(bundle)
    chosen = metrics_for(region.kind, all_metrics, settings.metrics)
    objectives = list(text_prediction.objectives)
    values = []
    for metric in chosen:
        if metric.index >= len(objectives):
            continue
        summary = objectives[metric.index]
        values.append(MetricValue(metric=metric, median=_finite_or_none(summary.median),
                                  p10=_finite_or_none(summary.p10), p90=_finite_or_none(summary.p90),
                                  n_samples=int(summary.n_samples), n_finite=int(summary.n_finite),
                                  special_fraction=float(summary.special_fraction)))
    texts = dict(getattr(context, "texts", None) or {})
    return Prediction(
        key=region.key, name=region.name, kind=region.kind, language=region.language, line=region.line,
        metrics=tuple(values), context=texts, context_errors=tuple(getattr(context, "errors", ()) or ()),
        arguments_known=arguments_known(region), model=model_info(bundle, bundle_sha256),
        samples=settings.samples, n_tokens=int(text_prediction.n_tokens), truncated=bool(text_prediction.truncated),
        cache_key=cache_key, target_gpu=_target_gpu(region.kind, context),
        args_source=getattr(context, "args_source", None),
        defaulted=tuple(sorted(set(texts) - set(getattr(region.context, "texts", None) or {}))),
        has_error=bool(getattr(region, "has_error", False)), input_size=size_of_text(model_text))


def predict(region: Any, settings: Settings, predictor: Any) -> Prediction:
    """One region, no cache, on the calling thread (the engine batches and caches the same steps)."""
    text, context = model_input(region, predictor.bundle, settings)
    [text_prediction] = predictor.predict_texts([text], samples=settings.samples, seed=settings.seed,
                                                regions=[region_id(region)])
    return to_prediction(region, context, text_prediction, model_text=text, bundle=predictor.bundle,
                         bundle_sha256=predictor.bundle_sha256, settings=settings)


def _target_gpu(kind: str, context: Any) -> str | None:
    if kind not in TIME_KINDS:
        return None
    values = getattr(context, "values", None) or {}
    value = values.get(TARGET_GPU_KEY)
    return str(value) if value is not None else None


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- sentences shared by the hover, the CLI tables and the code lens --------------------------------

def headline(prediction: Prediction, value: MetricValue | None = None) -> str:
    """"≈ 12 MiB", "≈? 12 MiB" (arguments unknown), "≈ 0.21 ms @H100"; "no number" if none decoded."""
    value = value or prediction.primary
    if value is None:
        return "≈ no metric"
    mark = "≈" if prediction.arguments_known else "≈?"
    if value.median is None:
        return f"{mark} no number"
    text = f"{mark} {format_quantity(value.median, value.metric.unit)}"
    if value.metric.dimension == SECONDS and prediction.target_gpu:
        text += f" @{prediction.target_gpu}"
    return text


def band(value: MetricValue) -> str:
    if value.p10 is None or value.p90 is None:
        return "no band"
    return format_band(value.p10, value.p90, value.metric.unit)


def delta(now: MetricValue | None, before: MetricValue | None) -> tuple[float, str, str | None] | None:
    """(Δ in the metric's unit, "+3.1 MiB", "+12 %") between two predictions of the same metric."""
    if now is None or before is None or now.median is None or before.median is None:
        return None
    if now.metric.name != before.metric.name or now.metric.unit != before.metric.unit:
        return None
    change = now.median - before.median
    return change, format_delta(change, now.metric.unit), format_percent(before.median, now.median)


def metric_by_name(prediction: Prediction | None, name: str) -> MetricValue | None:
    if prediction is None:
        return None
    return next((value for value in prediction.metrics if value.metric.name == name), None)


def context_line(prediction: Prediction) -> str:
    pairs = [f"{key}={text}" for key, text in sorted(prediction.context.items())]
    return ", ".join(pairs) if pairs else "none"


# --- a file at a glance (code lens, CLI footers) ----------------------------------------------------

@dataclass(frozen=True)
class UnitSummary:
    """One unit dimension of one file: never mixes bytes with seconds."""

    dimension: str | None
    metric: Metric  # the metric of the largest value (its unit formats the totals)
    largest: MetricValue
    largest_in: Prediction
    total_delta: float | None  # Σ (now − before) over regions present on both sides, in `metric.unit`
    n_compared: int


def file_summary(predictions: Sequence[Prediction],
                 baseline: Mapping[str, Prediction] | None = None) -> list[UnitSummary]:
    """Largest median per unit dimension and Σ Δ against `baseline` (matched by region key and metric name)."""
    summaries: dict[str | None, UnitSummary] = {}
    totals: dict[str | None, float] = {}
    counts: dict[str | None, int] = {}
    for prediction in predictions:
        for value in prediction.metrics:
            if value.median is None:
                continue
            dimension = value.metric.dimension
            current = summaries.get(dimension)
            if current is None or (value.base(value.median) or 0.0) > (current.largest.base(current.largest.median) or 0.0):
                summaries[dimension] = UnitSummary(dimension, value.metric, value, prediction, None, 0)
            if baseline is not None:
                change = delta(value, metric_by_name(baseline.get(prediction.key), value.metric.name))
                if change is not None:
                    totals[dimension] = totals.get(dimension, 0.0) + to_base(change[0], value.metric.unit)[0]
                    counts[dimension] = counts.get(dimension, 0) + 1
    result = []
    for dimension, summary in summaries.items():
        total = totals.get(dimension)
        if total is not None:
            total = total / to_base(1.0, summary.metric.unit)[0]  # back into the metric's own unit
        result.append(UnitSummary(dimension, summary.metric, summary.largest, summary.largest_in, total,
                                  counts.get(dimension, 0)))
    order = {BYTES: 0, SECONDS: 1}
    return sorted(result, key=lambda summary: order.get(summary.dimension or "", 2))


# --- before / after tables (compare command, `perfhint compare`) ------------------------------------

@dataclass(frozen=True)
class CompareRow:
    key: str
    name: str
    kind: str
    line: int | None  # 0-based line in the *after* text; None for a removed region
    metric: str
    unit: str
    before: float | None  # medians in `unit`
    after: float | None
    delta: float | None
    percent: float | None  # (after − before) / |before| × 100
    status: str  # "changed" | "same" | "new" | "removed" | "no number"

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "kind": self.kind, "line": self.line, "metric": self.metric,
                "unit": self.unit, "before": self.before, "after": self.after, "delta": self.delta,
                "percent": self.percent, "status": self.status,
                "before_text": format_quantity(self.before, self.unit) if self.before is not None else None,
                "after_text": format_quantity(self.after, self.unit) if self.after is not None else None,
                "delta_text": format_delta(self.delta, self.unit) if self.delta is not None else None}


def compare_rows(before: Mapping[str, Prediction], after: Sequence[Prediction]) -> list[CompareRow]:
    """One row per (region, metric): regions matched by key; new and removed regions get their own rows."""
    rows: list[CompareRow] = []
    for prediction in after:
        old = before.get(prediction.key)
        for value in prediction.metrics:
            old_value = metric_by_name(old, value.metric.name)
            rows.append(_row(prediction, value, old_value, new=old is None))
    after_keys = {prediction.key for prediction in after}
    for key, old in before.items():
        if key in after_keys:
            continue
        for value in old.metrics:
            rows.append(CompareRow(key, old.name, old.kind, None, value.metric.name, value.metric.unit, value.median,
                                   None, None, None, "removed"))
    return rows


def _row(prediction: Prediction, value: MetricValue, old_value: MetricValue | None, *, new: bool) -> CompareRow:
    metric = value.metric
    if new:
        return CompareRow(prediction.key, prediction.name, prediction.kind, prediction.line, metric.name, metric.unit,
                          None, value.median, None, None, "new")
    if value.median is None or old_value is None or old_value.median is None:
        return CompareRow(prediction.key, prediction.name, prediction.kind, prediction.line, metric.name, metric.unit,
                          old_value.median if old_value else None, value.median, None, None, "no number")
    change = value.median - old_value.median
    percent = change / abs(old_value.median) * 100 if old_value.median != 0 else None
    return CompareRow(prediction.key, prediction.name, prediction.kind, prediction.line, metric.name, metric.unit,
                      old_value.median, value.median, change, percent, "same" if change == 0 else "changed")
