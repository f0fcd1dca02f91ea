"""Make the p10–p90 band cover what it claims: one width factor per objective, fitted on held-out data.

The band the hint shows is the 10th–90th percentile of the model's samples. Nothing in training makes
those samples calibrated: our first default model's bands held the measured value for only 50–60 % of
held-out memory rows, where a p10–p90 band promises 80 %. So a bundle may carry `calibration` in its
manifest: per objective a factor `k` that stretches (k > 1) or shrinks (k < 1) the band about the
median, in log space for positive values (costs are positive and their errors multiplicative):

    p10' = median * (p10 / median) ** k        p90' = median * (p90 / median) ** k

(and linearly, `median - k * (median - p10)`, when any of the three is <= 0). The median is never
changed, so rankings, Spearman and Δ are exactly what they were.

What is hard is fitting k honestly. For each held-out row the smallest k whose band contains the
measured value has a closed form (the log-ratio of the error to the half-band on that side; 0 when
the value equals the median, infinite when that half-band is empty), so the fraction of rows covered
by a given k is the empirical CDF of those per-row k, and the k for 80 % coverage is their 80th
percentile: exact, no grid search. It is fitted on the validation split and reported on the test
split (`perfhint train calibrate`, then `perfhint train evaluate`), never on the rows it is scored on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

NOMINAL_COVERAGE = 0.8  # p10–p90
MAX_SCALE = 100.0  # a factor beyond this means the band says nothing; refuse rather than ship it


@dataclass(frozen=True)
class BandCalibration:
    """The manifest's `calibration` object: `band_scale[i]` widens objective i's band (1.0 = unchanged)."""

    band_scale: tuple[float, ...]
    fitted_on: str  # what data chose the factors, e.g. "val split, 3,261 rows"
    coverage_before: tuple[float | None, ...]  # on the fitting rows, p10–p90 coverage at k = 1
    coverage_after: tuple[float | None, ...]  # on the fitting rows, at the fitted k

    def to_dict(self) -> dict[str, Any]:
        return {"method": "p10-p90 band widened about the median in log space (perfhint/calibration.py)",
                "nominal_coverage": NOMINAL_COVERAGE, "band_scale": list(self.band_scale),
                "fitted_on": self.fitted_on, "coverage_before": list(self.coverage_before),
                "coverage_after": list(self.coverage_after)}

    @classmethod
    def from_dict(cls, data: Any, n_objectives: int) -> "BandCalibration":
        """Parse and check a manifest's `calibration`; ValueError names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"must be an object, got {type(data).__name__}")
        scales = data.get("band_scale")
        if (not isinstance(scales, list) or len(scales) != n_objectives
                or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s <= MAX_SCALE
                           for s in scales)):
            raise ValueError(f"band_scale must be a list of {n_objectives} number(s) in (0, {MAX_SCALE:g}], "
                             f"got {scales!r}")

        def coverages(key: str) -> tuple[float | None, ...]:
            values = data.get(key) or [None] * n_objectives
            return tuple(None if value is None else float(value) for value in values)

        return cls(band_scale=tuple(float(s) for s in scales), fitted_on=str(data.get("fitted_on", "")),
                   coverage_before=coverages("coverage_before"), coverage_after=coverages("coverage_after"))


def widen(median: float | None, p10: float | None, p90: float | None, scale: float
          ) -> tuple[float | None, float | None]:
    """(p10', p90'): the band stretched by `scale` about the median (module docstring)."""
    if median is None or p10 is None or p90 is None or scale == 1.0:
        return p10, p90
    if median > 0 and p10 > 0 and p90 > 0:
        return median * (p10 / median) ** scale, median * (p90 / median) ** scale
    return median - scale * (median - p10), median + scale * (p90 - median)


def apply(summaries: Sequence[Any], calibration: BandCalibration | None) -> list[Any]:
    """The runtime's ObjectiveSummary list with each band widened by its objective's factor."""
    if calibration is None:
        return list(summaries)
    out = []
    for summary, scale in zip(summaries, calibration.band_scale, strict=True):
        p10, p90 = widen(summary.median, summary.p10, summary.p90, scale)
        out.append(replace(summary, p10=p10, p90=p90))
    return out


def needed_scale(truth: float, median: float, p10: float, p90: float) -> float:
    """The smallest k whose widened band contains `truth` (inf when no k does)."""
    if truth == median:
        return 0.0
    positive = truth > 0 and median > 0 and p10 > 0 and p90 > 0
    if truth > median:
        edge = p90
        gap, half = ((math.log(truth / median), math.log(p90 / median)) if positive else (truth - median, p90 - median))
    else:
        edge = p10
        gap, half = ((math.log(median / truth), math.log(median / p10)) if positive else (median - truth, median - p10))
    if half <= 0 or edge == median:
        return math.inf
    return gap / half


def coverage(truth: Sequence[float], median: Sequence[float], p10: Sequence[float], p90: Sequence[float],
             scale: float = 1.0) -> float | None:
    """Share of rows whose widened band contains the truth (None with no rows)."""
    inside = []
    for t, m, lo, hi in zip(truth, median, p10, p90, strict=True):
        lo2, hi2 = widen(m, lo, hi, scale)
        inside.append(lo2 <= t <= hi2)
    return float(np.mean(inside)) if inside else None


def fit_scale(truth: Sequence[float], median: Sequence[float], p10: Sequence[float], p90: Sequence[float],
              target: float = NOMINAL_COVERAGE) -> float:
    """The k at which `target` of the rows are covered: the `target` quantile of the per-row needed k."""
    needed = np.array([needed_scale(t, m, lo, hi) for t, m, lo, hi in zip(truth, median, p10, p90, strict=True)])
    if needed.size == 0:
        raise ValueError("no rows to calibrate on")
    # The smallest observed k that covers at least `target` of the rows: order statistic ceil(target n).
    # (1 + 1e-9): the boundary row's truth sits exactly on the widened edge, which pow() may round past.
    scale = float(np.sort(needed)[max(0, math.ceil(target * needed.size - 1e-9) - 1)]) * (1 + 1e-9)
    if not math.isfinite(scale) or scale > MAX_SCALE:
        raise ValueError(f"covering {target:.0%} of the rows needs a band {scale:.3g}x as wide (limit "
                         f"{MAX_SCALE:g}x): the model's bands are degenerate; retrain rather than calibrate")
    return max(scale, 1e-3)
