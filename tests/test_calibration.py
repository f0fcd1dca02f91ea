"""The p10–p90 band calibration: exact fitting, widening about the median, the manifest, the runtime,
and `perfhint train calibrate` on a real (tiny) bundle."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from perfhint import calibration
from perfhint.bundle import MANIFEST_FILE, BundleError, load_bundle
from perfhint.runtime import Predictor


def noisy_rows(seed: int = 0, n: int = 400) -> tuple[np.ndarray, ...]:
    """Log-normal truths around a median whose sampled band is too narrow (half the true spread)."""
    rng = np.random.default_rng(seed)
    median = 10 ** rng.uniform(2, 6, n)
    truth = median * 10 ** rng.normal(0, 0.4, n)
    half = 10 ** (0.5 * 0.4 * 1.2816)  # a band half as wide as the noise's own p10–p90
    return truth, median, median / half, median * half


def test_fitted_scale_covers_the_nominal_share_and_no_smaller_one_does() -> None:
    truth, median, p10, p90 = noisy_rows()
    assert calibration.coverage(truth, median, p10, p90) == pytest.approx(0.5, abs=0.06)
    scale = calibration.fit_scale(truth, median, p10, p90)
    assert scale == pytest.approx(2.0, rel=0.15)  # the band was half as wide as it should be
    assert calibration.coverage(truth, median, p10, p90, scale) >= 0.8
    assert calibration.coverage(truth, median, p10, p90, scale * (1 - 1e-8)) < 0.8


def test_a_too_wide_band_is_narrowed() -> None:
    truth, median, p10, p90 = noisy_rows(seed=1)
    wide_p10, wide_p90 = median * (p10 / median) ** 4, median * (p90 / median) ** 4
    scale = calibration.fit_scale(truth, median, wide_p10, wide_p90)
    assert scale < 1 and calibration.coverage(truth, median, wide_p10, wide_p90, scale) >= 0.8


@pytest.mark.parametrize("median, p10, p90, scale, expected", [
    (100.0, 50.0, 200.0, 2.0, (25.0, 400.0)),  # log space: ratios squared
    (100.0, 50.0, 200.0, 1.0, (50.0, 200.0)),
    (1.0, -1.0, 2.0, 2.0, (-3.0, 3.0)),  # a non-positive value: linear
    (None, None, None, 2.0, (None, None)),
])
def test_widen(median, p10, p90, scale, expected) -> None:  # type: ignore[no-untyped-def]
    widened = calibration.widen(median, p10, p90, scale)
    assert widened == (pytest.approx(expected) if median is not None else expected)


def test_needed_scale_edges() -> None:
    assert calibration.needed_scale(100.0, 100.0, 50.0, 200.0) == 0.0
    assert calibration.needed_scale(400.0, 100.0, 50.0, 200.0) == pytest.approx(2.0)
    assert calibration.needed_scale(400.0, 100.0, 50.0, 100.0) == math.inf  # empty upper half-band
    with pytest.raises(ValueError, match="retrain rather than calibrate"):
        calibration.fit_scale([400.0] * 5, [100.0] * 5, [100.0] * 5, [100.0] * 5)


def with_calibration(bundle: Path, tmp_path: Path, value: object) -> Path:
    copy = Path(shutil.copytree(bundle, tmp_path / "calibrated"))
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["calibration"] = value
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    return copy


def test_runtime_widens_the_band_and_keeps_the_median(tiny_bundle: Path, tmp_path: Path) -> None:
    entry = {"band_scale": [3.0, 1.0], "fitted_on": "test"}
    calibrated = with_calibration(tiny_bundle, tmp_path, entry)
    text = ["def f(n):\n    return [0] * n\n"]
    [plain] = Predictor.from_bundle_path(tiny_bundle).predict_texts(text, samples=16)
    [wide] = Predictor.from_bundle_path(calibrated).predict_texts(text, samples=16)
    before, after = plain.objectives[0], wide.objectives[0]
    assert after.median == before.median and after.n_samples == before.n_samples
    assert (after.p10, after.p90) == pytest.approx(calibration.widen(before.median, before.p10, before.p90, 3.0))
    assert wide.objectives[1] == plain.objectives[1]  # factor 1: untouched
    assert load_bundle(calibrated).sha256 != load_bundle(tiny_bundle).sha256  # caches see a new bundle


@pytest.mark.parametrize("value", [{"band_scale": [1.0]}, {"band_scale": [0.0, 1.0]}, {"band_scale": "2"}, [2.0]])
def test_a_bad_calibration_is_refused_with_the_fix(tiny_bundle: Path, tmp_path: Path, value: object) -> None:
    with pytest.raises(BundleError) as error:
        load_bundle(with_calibration(tiny_bundle, tmp_path, value))
    assert "perfhint train calibrate" in str(error.value) + "".join(getattr(error.value, "problems", []))
