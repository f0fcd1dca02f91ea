"""The p10–p90 band calibration: exact conformal margins, widening about the median, the manifest, the
runtime, and `perfhint train calibrate` on a real (tiny) bundle (tests/test_training.py)."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from perfhint import calibration, predict
from perfhint.bundle import MANIFEST_FILE, BundleError, load_bundle
from perfhint.input_template import region_of_text
from perfhint.runtime import Predictor


def noisy_rows(seed: int = 0, n: int = 400, half_decades: float = 0.2) -> tuple[np.ndarray, ...]:
    """Log-normal truths (sd 0.4 decades) around a median whose sampled band is +-half_decades wide."""
    rng = np.random.default_rng(seed)
    median = 10 ** rng.uniform(2, 6, n)
    truth = median * 10 ** rng.normal(0, 0.4, n)
    return truth, median, median / 10 ** half_decades, median * 10 ** half_decades


def test_fitted_margin_covers_the_nominal_share_and_no_smaller_one_does() -> None:
    truth, median, p10, p90 = noisy_rows()
    assert calibration.coverage(truth, median, p10, p90) == pytest.approx(0.38, abs=0.06)
    margin = calibration.fit_margin(truth, median, p10, p90)
    assert margin == pytest.approx(0.4 * 1.2816 - 0.2, abs=0.06)  # the noise's own p90, minus the band
    covered = calibration.coverage(truth, median, p10, p90, margin)
    assert covered >= 0.8 * (1 + 1 / len(truth)) - 1 / len(truth)
    assert calibration.coverage(truth, median, p10, p90, margin - 1e-9) < covered


def test_zero_width_bands_can_be_calibrated() -> None:
    truth, median, _, _ = noisy_rows(seed=2)
    margin = calibration.fit_margin(truth, median, median, median)  # 32 identical samples: a point
    assert margin > 0 and calibration.coverage(truth, median, median, median, margin) >= 0.8


def test_a_too_wide_band_is_narrowed_but_never_past_the_median() -> None:
    truth, median, p10, p90 = noisy_rows(seed=1, half_decades=2.0)
    margin = calibration.fit_margin(truth, median, p10, p90)
    assert margin < 0 and calibration.coverage(truth, median, p10, p90, margin) >= 0.8
    assert calibration.widen(100.0, 99.0, 101.0, -1.0) == (100.0, 100.0)


@pytest.mark.parametrize("median, p10, p90, margin, expected", [
    (100.0, 50.0, 200.0, 1.0, (5.0, 2000.0)),
    (100.0, 50.0, 200.0, 0.0, (50.0, 200.0)),
    (1.0, -1.0, 2.0, 1.0, (-1.0, 2.0)),  # a non-positive value has no log: left as sampled
    (None, None, None, 1.0, (None, None)),
])
def test_widen(median, p10, p90, margin, expected) -> None:  # type: ignore[no-untyped-def]
    widened = calibration.widen(median, p10, p90, margin)
    assert widened == (pytest.approx(expected) if median is not None else expected)


def test_scores_and_refusals() -> None:
    assert calibration.score(100.0, 100.0, 50.0, 200.0) == pytest.approx(-math.log10(2))
    assert calibration.score(400.0, 100.0, 50.0, 200.0) == pytest.approx(math.log10(2))
    assert math.isnan(calibration.score(0.0, 100.0, 50.0, 200.0))
    with pytest.raises(ValueError, match="retrain rather than calibrate"):
        calibration.fit_margin([1e9] * 5, [1.0] * 5, [1.0] * 5, [1.0] * 5)
    with pytest.raises(ValueError, match="no rows"):
        calibration.fit_margin([0.0], [1.0], [1.0], [1.0])


def with_calibration(bundle: Path, tmp_path: Path, value: object) -> Path:
    copy = Path(shutil.copytree(bundle, tmp_path / "calibrated"))
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["calibration"] = value
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    return copy


def test_runtime_widens_the_band_and_keeps_the_median(tiny_bundle: Path, tmp_path: Path) -> None:
    calibrated = with_calibration(tiny_bundle, tmp_path, {"band_margin_log10": [0.5, 0.0], "fitted_on": "test"})
    text = ["def f(n):\n    return [0] * n\n"]
    [plain] = Predictor.from_bundle_path(tiny_bundle).predict_texts(text, samples=16)
    [wide] = Predictor.from_bundle_path(calibrated).predict_texts(text, samples=16)
    before, after = plain.objectives[0], wide.objectives[0]
    assert after.median == before.median and after.n_samples == before.n_samples
    # (This random model's values are negative, so its band stays as sampled; the positive path through the
    # runtime is checked on a trained model in test_training.py::test_calibrate_fits_on_val_and_refuses_test.)
    assert (after.p10, after.p90) == pytest.approx(calibration.widen(before.median, before.p10, before.p90, 0.5))
    assert wide.objectives[1] == plain.objectives[1]  # margin 0: untouched
    assert load_bundle(calibrated).sha256 != load_bundle(tiny_bundle).sha256  # caches see a new bundle
    # The hover says which kind of band it shows (hover.py reads ModelInfo.band_calibrated).
    assert predict.model_info(load_bundle(calibrated), "x").band_calibrated is True
    assert predict.model_info(load_bundle(tiny_bundle), "x").band_calibrated is False


@pytest.mark.parametrize("value", [{"band_margin_log10": [1.0]}, {"band_margin_log10": [9.0, 0.0]},
                                   {"band_margin_log10": "2"}, [2.0],
                                   {"band_margin_log10": [0.0, 0.0], "by_region": {"c/program": {"2": 0.1}}},
                                   {"band_margin_log10": [0.0, 0.0], "by_region": {"c/program": {"0": "x"}}}])
def test_a_bad_calibration_is_refused_with_the_fix(tiny_bundle: Path, tmp_path: Path, value: object) -> None:
    with pytest.raises(BundleError) as error:
        load_bundle(with_calibration(tiny_bundle, tmp_path, value))
    assert "perfhint train calibrate" in str(error.value) + "".join(getattr(error.value, "problems", []))


def test_region_margins_override_the_objective_margin() -> None:
    @dataclass(frozen=True)
    class Summary:
        median: float
        p10: float
        p90: float

    fitted = calibration.BandCalibration.from_dict(
        {"band_margin_log10": [0.1, 0.0], "by_region": {"python/function": {"0": 1.0}}}, 2)
    band = [Summary(100.0, 50.0, 200.0), Summary(1.0, 0.5, 2.0)]
    python, c, raw = (calibration.apply(band, fitted, region) for region in ("python/function", "c/program", None))
    assert (python[0].p10, python[0].p90) == pytest.approx((5.0, 2000.0))  # its own margin: one decade
    assert (c[0].p10, c[0].p90) == pytest.approx(calibration.widen(100.0, 50.0, 200.0, 0.1)) == (raw[0].p10, raw[0].p90)
    assert python[1] == band[1]  # objective 1 has no region margin and a pooled margin of 0
    assert calibration.BandCalibration.from_dict(fitted.to_dict(), 2) == fitted


@pytest.mark.parametrize("text, region", [
    ("<perfhint-v2 task=cost language=python kind=function size=1e6> args=(1,)\ndef f(n): ...", "python/function"),
    ("<perfhint-v1 task=cost language=cpp kind=program>\nint main() {}", "cpp/program"),
    ("<perfhint-v2 task=latency language=python kind=triton_kernel size=?>\n@triton.jit", "python/triton_kernel"),
    ("def f(n):\n    return n\n", None),
    ("<html language=python kind=function>", None),
])
def test_region_of_text_reads_the_header(text: str, region: str | None) -> None:
    assert region_of_text(text) == region
