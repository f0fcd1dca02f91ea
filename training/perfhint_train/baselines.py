"""Baselines the RLM must beat, fitted on the train split and scored on the same rows as the model.

What is hard: a baseline that only ranks (code length) says nothing about magnitudes or intervals,
so every baseline here predicts log10(value) and a p10-p90 band, and is scored with the same
metrics as the model (evaluate.py):
- `code_length`: log10 value ~ a + b log10(characters of code), fitted per task (language x region
  kind x metric) by least squares; the band is the prediction plus the train residuals' 10th and
  90th percentiles.
- `input_size`: the same with the *input size* (perfhint.input_size, which the model's header also
  states): the sum over the context's `args`/`kwargs` of each
  argument's size (an int counts as its value, a string or container as its number of leaf
  elements) plus, for `shape`, the product of each shape. Programs and scripts state their sizes in
  the code (TransCoder's `param0 = 98`, the generator's `#define N 10L`), so with no such context the
  integer literals and string lengths in `main` and in constant definitions are summed instead: a
  heuristic, and the only baseline that reads sizes out of code.
- `tfidf_gbt`: TF-IDF over code tokens (unigrams and bigrams) reduced by truncated SVD, plus
  log sizes and one-hot task, into scikit-learn's HistGradientBoostingRegressor on log10 value,
  with two quantile models (0.1, 0.9) for the band. Pooled over tasks: per-task data is small.
Values <= 0 are floored (evaluate.LOG_FLOORS) before the log, as in the scoring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perfhint.input_size import record_input_size

CODE_TOKEN = r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]"  # identifiers, numbers, single punctuation
SVD_COMPONENTS = 64
GBT_ITERATIONS = 300


@dataclass
class BaselinePredictions:
    """log10 predictions and band per row, in the order of the rows they were made for."""

    log_median: np.ndarray
    log_p10: np.ndarray
    log_p90: np.ndarray

    def values(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return 10.0 ** self.log_median, 10.0 ** self.log_p10, 10.0 ** self.log_p90


# ----------------------------------------------------------------------------------------------- features


def task_of(record: Mapping[str, Any]) -> str:
    return f"{record['language']}/{record['region_kind']}/{record['metric']}"


def input_size(record: Mapping[str, Any]) -> float:
    """perfhint.input_size's size of a record's input, 0 when unreadable (the model's header says `?`)."""
    return record_input_size(record) or 0.0


def log_feature(value: float) -> float:
    return math.log10(1.0 + max(0.0, value))


# ----------------------------------------------------------------------------------------------- fitting


def _band(train_residuals: np.ndarray) -> tuple[float, float]:
    if train_residuals.size == 0:
        return -0.5, 0.5
    low, high = np.percentile(train_residuals, [10, 90])
    return float(low), float(high)


def per_task_linear(train: Sequence[Mapping[str, Any]], train_log_values: np.ndarray,
                    test: Sequence[Mapping[str, Any]], feature) -> BaselinePredictions:  # type: ignore[no-untyped-def]
    """log10 value ~ a + b * feature(record), least squares per task; the pooled fit for unseen tasks."""
    train_x = np.array([feature(record) for record in train], dtype=float)
    test_x = np.array([feature(record) for record in test], dtype=float)
    train_tasks = np.array([task_of(record) for record in train])
    test_tasks = np.array([task_of(record) for record in test])

    def fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, tuple[float, float]]:
        if y.size == 0:
            return 0.0, 0.0, (-0.5, 0.5)
        if y.size >= 2 and np.ptp(x) > 0:
            slope, intercept = np.polyfit(x, y, 1)
        else:
            slope, intercept = 0.0, float(np.median(y))
        return float(intercept), float(slope), _band(y - (intercept + slope * x))

    pooled = fit(train_x, train_log_values)
    log_median, log_p10, log_p90 = (np.zeros(len(test)) for _ in range(3))
    for task in set(test_tasks.tolist()):
        chosen = train_tasks == task
        intercept, slope, (low, high) = fit(train_x[chosen], train_log_values[chosen]) if chosen.any() else pooled
        rows = test_tasks == task
        log_median[rows] = intercept + slope * test_x[rows]
        log_p10[rows] = log_median[rows] + low
        log_p90[rows] = log_median[rows] + high
    return BaselinePredictions(log_median, log_p10, log_p90)


def tfidf_gbt(train: Sequence[Mapping[str, Any]], train_log_values: np.ndarray,
              test: Sequence[Mapping[str, Any]], *, seed: int = 0) -> BaselinePredictions:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(token_pattern=CODE_TOKEN, lowercase=False, ngram_range=(1, 2), min_df=2,
                                 max_features=20_000, sublinear_tf=True, dtype=np.float32)
    try:
        train_text = vectorizer.fit_transform([record["code"] for record in train])
    except ValueError:  # fewer than min_df documents share any token: tiny train sets
        vectorizer.set_params(min_df=1)
        train_text = vectorizer.fit_transform([record["code"] for record in train])
    test_text = vectorizer.transform([record["code"] for record in test])
    components = max(1, min(SVD_COMPONENTS, train_text.shape[1] - 1, train_text.shape[0] - 1))
    svd = TruncatedSVD(n_components=components, random_state=seed)
    tasks = sorted({task_of(record) for record in train})

    def dense(records: Sequence[Mapping[str, Any]], text_matrix) -> np.ndarray:  # type: ignore[no-untyped-def]
        reduced = svd.transform(text_matrix) if text_matrix.shape[0] else np.zeros((0, components))
        extra = np.array([[log_feature(input_size(record)), log_feature(len(record["code"])),
                           *[float(task_of(record) == task) for task in tasks]] for record in records], dtype=float)
        return np.hstack([reduced, extra.reshape(len(records), -1)])

    svd.fit(train_text)
    train_x, test_x = dense(train, train_text), dense(test, test_text)
    predictions = []
    for loss, quantile in (("squared_error", None), ("quantile", 0.1), ("quantile", 0.9)):
        model = HistGradientBoostingRegressor(loss=loss, quantile=quantile, max_iter=GBT_ITERATIONS,
                                              learning_rate=0.1, random_state=seed)
        model.fit(train_x, train_log_values)
        predictions.append(model.predict(test_x))
    log_median, log_p10, log_p90 = predictions
    return BaselinePredictions(log_median, np.minimum(log_p10, log_p90), np.maximum(log_p10, log_p90))


BASELINES = ("code_length", "input_size", "tfidf_gbt")


def run_baselines(train: Sequence[Mapping[str, Any]], train_log_values: np.ndarray,
                  test: Sequence[Mapping[str, Any]], *, seed: int = 0) -> dict[str, BaselinePredictions]:
    """Every baseline fitted on (train, log10 train values) and predicted for `test`."""
    return {
        "code_length": per_task_linear(train, train_log_values, test, lambda record: log_feature(len(record["code"]))),
        "input_size": per_task_linear(train, train_log_values, test, lambda record: log_feature(input_size(record))),
        "tfidf_gbt": tfidf_gbt(train, train_log_values, test, seed=seed),
    }
