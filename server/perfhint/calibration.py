"""Make the p10–p90 band cover what it claims: conformalized quantiles, one margin per objective.

The band the hint shows is the 10th–90th percentile of the model's samples. Nothing in training makes
those samples calibrated: our first default model's bands held the measured value for only 50–60 % of
held-out memory rows (a p10–p90 band promises 80 %), and a longer-trained one often draws 32 identical
samples, a band of width zero. So a bundle may carry `calibration` in its manifest: per objective a
margin `q` (in log10 units) added on both sides of the band, as in conformalized quantile regression
(Romano, Patterson and Candès, 2019), in log space because costs are positive and their errors
multiplicative:

    p10' = p10 / 10**q        p90' = p90 * 10**q

q may be negative (a band that was too wide shrinks; p10' never passes the median). The median is
never changed, so rankings, Spearman and Δ are exactly what they were. A value <= 0 has no log: such a
band is left as sampled.

Fitting: each held-out row's conformity score is how far (log10) the measured value lies outside its
band, max(log p10 - log y, log y - log p90) (negative inside). A margin q covers exactly the rows whose
score is <= q, so the margin for 80 % coverage is the ceil(0.8 (n + 1))-th smallest score (CQR's
finite-sample rule): exact, no grid search, and it works for zero-width bands where stretching the
band by a factor cannot. It is fitted on the validation split and reported on the test split
(`perfhint train calibrate`, then `perfhint train evaluate`), never on the rows it is scored on.

One margin per objective is not enough when one objective serves several kinds of region: memory
errors of Python functions are ten times those of C programs, so a pooled margin over-covers C and
under-covers Python (measured: 0.94 vs 0.40 of test rows). So margins are also fitted per region
(`language/region_kind`, read back from the model text's header by input_template.region_of_text)
wherever the validation split has at least MIN_REGION_ROWS rows of it; other regions, and raw texts,
use the objective's own margin, fitted on the rows of the regions that have none of their own (so
every group of rows is covered as promised, not only their union).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

NOMINAL_COVERAGE = 0.8  # p10–p90
MAX_MARGIN = 6.0  # log10: beyond a million-fold each side the values themselves are broken; refuse
WIDE_MARGIN = 1.0  # log10: past 10x each side, calibrate warns that the objective predicts poorly
MIN_REGION_ROWS = 100  # fewer held-out rows of a region kind than this: it uses the objective's margin


@dataclass(frozen=True)
class BandCalibration:
    """The manifest's `calibration` object: `band_margin_log10[i]` widens objective i's band (0 = unchanged)."""

    band_margin_log10: tuple[float, ...]
    fitted_on: str  # what data chose the margins, e.g. "val.jsonl: 1,600 rows, 32 samples, seed 0"
    coverage_before: tuple[float | None, ...]  # on the fitting rows, p10–p90 coverage as sampled
    coverage_after: tuple[float | None, ...]  # on the fitting rows, with the fitted margin
    # `language/region_kind` -> {objective index: margin} where that region had enough rows of its own
    by_region: dict[str, dict[int, float]] = field(default_factory=dict)

    def margin(self, objective: int, region: str | None) -> float:
        return self.by_region.get(region or "", {}).get(objective, self.band_margin_log10[objective])

    def to_dict(self) -> dict[str, Any]:
        return {"method": "conformalized p10-p90 band, log10 margin (perfhint/calibration.py)",
                "nominal_coverage": NOMINAL_COVERAGE, "band_margin_log10": list(self.band_margin_log10),
                "by_region": {region: {str(index): margin for index, margin in sorted(margins.items())}
                              for region, margins in sorted(self.by_region.items())},
                "fitted_on": self.fitted_on, "coverage_before": list(self.coverage_before),
                "coverage_after": list(self.coverage_after)}

    @classmethod
    def from_dict(cls, data: Any, n_objectives: int) -> "BandCalibration":
        """Parse and check a manifest's `calibration`; ValueError names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"must be an object, got {type(data).__name__}")
        margins = data.get("band_margin_log10")
        if (not isinstance(margins, list) or len(margins) != n_objectives
                or not all(_is_margin(m) for m in margins)):
            raise ValueError(f"band_margin_log10 must be a list of {n_objectives} number(s) in "
                             f"[-{MAX_MARGIN:g}, {MAX_MARGIN:g}], got {margins!r}")

        def coverages(key: str) -> tuple[float | None, ...]:
            values = data.get(key) or [None] * n_objectives
            return tuple(None if value is None else float(value) for value in values)

        by_region: dict[str, dict[int, float]] = {}
        regions = data.get("by_region") or {}
        if not isinstance(regions, dict):
            raise ValueError(f"by_region must be an object, got {type(regions).__name__}")
        for region, entries in regions.items():
            if not isinstance(entries, dict) or not all(
                    isinstance(key, str) and key.isdigit() and int(key) < n_objectives and _is_margin(value)
                    for key, value in entries.items()):
                raise ValueError(f"by_region[{region!r}] must map objective indices (< {n_objectives}) to margins "
                                 f"in [-{MAX_MARGIN:g}, {MAX_MARGIN:g}], got {entries!r}")
            by_region[str(region)] = {int(key): float(value) for key, value in entries.items()}
        return cls(band_margin_log10=tuple(float(m) for m in margins), fitted_on=str(data.get("fitted_on", "")),
                   coverage_before=coverages("coverage_before"), coverage_after=coverages("coverage_after"),
                   by_region=by_region)


def _is_margin(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and abs(value) <= MAX_MARGIN)


def widen(median: float | None, p10: float | None, p90: float | None, margin: float
          ) -> tuple[float | None, float | None]:
    """(p10', p90'): the band moved out by `margin` log10 units on each side, never past the median."""
    if median is None or p10 is None or p90 is None or margin == 0.0 or not (median > 0 and p10 > 0 and p90 > 0):
        return p10, p90
    factor = 10.0 ** margin
    return min(p10 / factor, median), max(p90 * factor, median)


def apply(summaries: Sequence[Any], calibration: BandCalibration | None, region: str | None = None) -> list[Any]:
    """The runtime's ObjectiveSummary list with each band widened by its objective's (and region's) margin."""
    if calibration is None:
        return list(summaries)
    out = []
    for index, summary in enumerate(summaries):
        p10, p90 = widen(summary.median, summary.p10, summary.p90, calibration.margin(index, region))
        out.append(replace(summary, p10=p10, p90=p90))
    return out


def score(truth: float, median: float, p10: float, p90: float) -> float:
    """How far (log10) `truth` lies outside the band; negative inside; nan where a value is <= 0."""
    if not (truth > 0 and median > 0 and p10 > 0 and p90 > 0):
        return math.nan
    return max(math.log10(p10 / truth), math.log10(truth / p90))


def coverage(truth: Sequence[float], median: Sequence[float], p10: Sequence[float], p90: Sequence[float],
             margin: float | Sequence[float] = 0.0) -> float | None:
    """Share of rows whose widened band contains the truth (None with no rows); one margin, or one per row."""
    margins = [margin] * len(truth) if isinstance(margin, (int, float)) else margin
    inside = []
    for t, m, lo, hi, q in zip(truth, median, p10, p90, margins, strict=True):
        lo2, hi2 = widen(m, lo, hi, q)
        inside.append(lo2 <= t <= hi2)
    return float(np.mean(inside)) if inside else None


def fit_margin(truth: Sequence[float], median: Sequence[float], p10: Sequence[float], p90: Sequence[float],
               target: float = NOMINAL_COVERAGE) -> float:
    """The CQR margin: the ceil(target (n + 1))-th smallest conformity score of the rows."""
    scores = np.array([score(t, m, lo, hi) for t, m, lo, hi in zip(truth, median, p10, p90, strict=True)])
    scores = np.sort(scores[np.isfinite(scores)])
    if scores.size == 0:
        raise ValueError("no rows with positive values to calibrate on")
    rank = min(scores.size, math.ceil(target * (scores.size + 1) - 1e-9))
    # + 1e-12: the boundary row's value sits exactly on the widened edge, which 10**q may round past.
    margin = float(scores[rank - 1]) + 1e-12
    if abs(margin) > MAX_MARGIN:
        raise ValueError(f"covering {target:.0%} of the rows needs a margin of {margin:.3g} decades (limit "
                         f"{MAX_MARGIN:g}): the model's bands say nothing; retrain rather than calibrate")
    return margin
