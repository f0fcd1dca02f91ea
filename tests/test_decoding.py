"""Constrained sampling over a fake decoder step, a replay of regress-lm's greedy path, and aggregation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from perfhint.decoding import (
    ObjectiveSummary,
    aggregate,
    decode_samples,
    masked_probabilities,
    sample_numbers,
    summarise,
)
from perfhint.numbers import NEG_INF, PAD_ID, DecoderCodec, codec_from_spec

CODECS = {
    "ieee": ({"type": "ieee"}, 1),
    "ieee_nan_only_2objs": ({"type": "ieee", "num_mantissa_digits": 6, "special_values": ["NAN"]}, 2),
    "p10_specials_pad_3objs": ({"type": "p10", "special_values": "default", "append_pad": True}, 3),
}


class FakeDecoder:
    """logits = table[position, previous token] + a per-input bias; records what it was fed."""

    def __init__(
        self, codec: DecoderCodec, n_inputs: int, n_samples: int, seed: int = 7, input_bias: np.ndarray | None = None
    ) -> None:
        rng = np.random.default_rng(seed)
        self.table = rng.normal(0.0, 2.0, (codec.decode_len, codec.vocab_size, codec.vocab_size)).astype(np.float32)
        self.input_of_row = np.arange(n_inputs * n_samples) // n_samples
        self.input_bias = np.zeros((n_inputs, codec.vocab_size), np.float32) if input_bias is None else input_bias
        self.fed: list[np.ndarray] = []

    def __call__(self, prev_tokens: np.ndarray, position: int) -> np.ndarray:
        assert prev_tokens.dtype == np.int64 and position == len(self.fed)
        self.fed.append(prev_tokens.copy())
        return self.table[position, prev_tokens] + self.input_bias[self.input_of_row]


def greedy_reference(codec: DecoderCodec, decoder: FakeDecoder, n_rows: int) -> np.ndarray:
    """Argmax path written independently of allowed_mask: the table row plus the lock rule, row by row."""
    paths = np.zeros((n_rows, codec.decode_len), dtype=np.int64)
    for row in range(n_rows):
        prev = PAD_ID
        for position in range(codec.decode_len):
            k = position % codec.num_tokens_per_obj
            first = paths[row, position - k]
            if 0 < k < codec.num_value_tokens and first in codec.special_ids:
                allowed = [first]
            else:
                allowed = np.flatnonzero(codec.allowed[k]).tolist()
            logits = decoder.table[position, prev] + decoder.input_bias[decoder.input_of_row[row]]
            prev = paths[row, position] = max(allowed, key=lambda token: (logits[token], -token))
    return paths


def run(name: str, n_inputs: int = 2, n_samples: int = 8, **kwargs) -> tuple[DecoderCodec, FakeDecoder, np.ndarray]:
    spec, max_num_objs = CODECS[name]
    codec = codec_from_spec(spec, max_num_objs)
    decoder = FakeDecoder(codec, n_inputs, n_samples, **kwargs.pop("decoder", {}))
    return codec, decoder, sample_numbers(decoder, codec, n_inputs, n_samples, **kwargs)


@pytest.mark.parametrize("name", list(CODECS))
def test_every_sample_parses_and_follows_the_protocol(name: str) -> None:
    codec, decoder, tokens = run(name, n_inputs=3, n_samples=64, temperature=1.5, seed=1)
    assert tokens.shape == (3, 64, codec.decode_len) and tokens.dtype == np.int64
    values = decode_samples(codec, tokens)  # raises on any grammar violation
    assert len(values) == 3 and all(len(per_input) == 64 for per_input in values)
    flat = tokens.reshape(-1, codec.decode_len)
    for position in range(codec.decode_len):
        assert codec.allowed_mask(flat[:, :position])[np.arange(len(flat)), flat[:, position]].all()
    # BOS first, then each chosen token; the last one is never fed back.
    assert len(decoder.fed) == codec.decode_len
    assert (decoder.fed[0] == PAD_ID).all()
    for position in range(1, codec.decode_len):
        assert np.array_equal(decoder.fed[position], flat[:, position - 1])
    if codec.special_ids.size:
        assert np.isin(flat, codec.special_ids).any(), "the fake logits should make specials appear"


@pytest.mark.parametrize("name", list(CODECS))
def test_greedy_is_the_argmax_path(name: str) -> None:
    codec, decoder, tokens = run(name, n_inputs=2, n_samples=3, greedy=True)
    expected = greedy_reference(codec, decoder, 6).reshape(2, 3, codec.decode_len)
    assert np.array_equal(tokens, expected)
    assert (tokens == tokens[:, :1]).all()


def test_seeds() -> None:
    _, _, first = run("p10_specials_pad_3objs", seed=3)
    _, _, again = run("p10_specials_pad_3objs", seed=3)
    _, _, other = run("p10_specials_pad_3objs", seed=4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("name", list(CODECS))
def test_low_temperature_approaches_greedy(name: str) -> None:
    _, _, greedy = run(name, n_samples=16, greedy=True)
    _, _, cold = run(name, n_samples=16, temperature=1e-4, seed=5)
    _, _, hot = run(name, n_samples=16, temperature=1.0, seed=5)
    assert np.array_equal(cold, greedy)
    assert not np.array_equal(hot, greedy)


def test_rows_belong_to_input_row_div_n_samples() -> None:
    codec = codec_from_spec({"type": "ieee"})
    bias = np.zeros((2, codec.vocab_size), np.float32)
    bias[0, codec.stoi["<->"]] = bias[1, codec.stoi["<+>"]] = 100.0  # input 0 negative, input 1 positive
    _, _, tokens = run("ieee", n_inputs=2, n_samples=32, decoder={"input_bias": bias})
    assert (tokens[0, :, 0] == codec.stoi["<->"]).all() and (tokens[1, :, 0] == codec.stoi["<+>"]).all()


def test_sampling_follows_the_masked_softmax() -> None:
    codec = codec_from_spec({"type": "p10", "special_values": "default"})
    decoder = FakeDecoder(codec, 1, 20000, seed=11)
    tokens = sample_numbers(decoder, codec, 1, 20000, temperature=2.0, seed=2)
    expected = masked_probabilities(decoder.table[0, :1], codec.allowed[:1], 2.0)[0]
    observed = np.bincount(tokens[0, :, 0], minlength=codec.vocab_size) / 20000
    assert np.abs(observed - expected).max() < 0.02
    assert (observed[~codec.allowed[0]] == 0).all()


def test_masking_matches_regress_lm_formula() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 17)).astype(np.float32)
    mask = rng.random((5, 17)) < 0.5
    mask[:, 0] = True
    reference = mask * logits.astype(np.float64) + (1 - mask) * NEG_INF
    reference = np.exp(reference - reference.max(-1, keepdims=True))
    reference /= reference.sum(-1, keepdims=True)
    assert np.allclose(masked_probabilities(logits, mask), reference, rtol=0, atol=1e-15)
    assert (masked_probabilities(logits, mask, 1e6)[~mask] == 0).all()  # absurd temperature: still parses


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0.0}, "greedy=True"),
        ({"temperature": math.nan}, "temperature"),
        ({"n_samples": 0}, ">= 1"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    codec = codec_from_spec({"type": "ieee"})
    arguments = {"n_inputs": 1, "n_samples": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        sample_numbers(FakeDecoder(codec, 1, 2), codec, **arguments)


@pytest.mark.parametrize(
    ("logits", "message"),
    [
        (np.zeros((2, 5), np.float32), "shape"),
        (np.full((2, 13), np.nan, np.float32), "non-finite"),
    ],
)
def test_bad_logits(logits: np.ndarray, message: str) -> None:
    codec = codec_from_spec({"type": "ieee"})
    with pytest.raises(ValueError, match=message):
        sample_numbers(lambda prev, position: logits, codec, 1, 2)


# Replay of regress-lm's greedy decoding: its recorded logits through our loop give its tokens ---------------

FIXTURE_CODECS = {
    "rlm_tiny_ieee": ({"type": "ieee"}, 1),
    "rlm_tiny_p10_multi": ({"type": "p10", "special_values": "default"}, 2),
}


@pytest.mark.parametrize("name", list(FIXTURE_CODECS))
def test_replay_of_regress_lm_greedy(name: str, regress_lm_fixtures: Path) -> None:
    fixtures = json.loads((regress_lm_fixtures / "golden.json").read_text())["fixtures"]
    cases = next(fixture for fixture in fixtures if fixture["fixture"] == name)["cases"]
    codec = codec_from_spec(*FIXTURE_CODECS[name])

    def replay(prev_tokens: np.ndarray, position: int) -> np.ndarray:
        rows = []
        for case, prev in zip(cases, prev_tokens):
            step = case["greedy"]["steps"][position]
            assert prev == ([PAD_ID] + step["prefix_ids"])[-1]
            rows.append(step["logits"])
        return np.array(rows, dtype=np.float32)

    tokens = sample_numbers(replay, codec, len(cases), 1, greedy=True)
    assert tokens[:, 0].tolist() == [case["greedy"]["token_ids"] for case in cases]
    for case in cases:
        for step in case["greedy"]["steps"]:
            mask = codec.allowed_mask(np.array([step["prefix_ids"]], np.int64).reshape(1, -1))
            probabilities = masked_probabilities(np.array([step["logits"]], np.float32), mask)
            assert np.allclose(probabilities[0], step["masked_softmax_T1"], rtol=0, atol=1e-6)


# Aggregation ------------------------------------------------------------------------------------------------


def check(values_per_sample: list, expected: list[ObjectiveSummary]) -> None:
    assert aggregate(values_per_sample) == expected


def test_aggregate_with_specials() -> None:
    specials = ["INVALID", math.nan, math.inf, -math.inf] * 3  # 11 samples: indices of p10/p90 are whole
    check(
        [[10.0 * sample, 5.0 if sample == 0 else specials[sample]] for sample in range(11)],
        [
            ObjectiveSummary(median=50.0, p10=10.0, p90=90.0, special_fraction=0.0, n_samples=11, n_finite=11),
            ObjectiveSummary(median=5.0, p10=5.0, p90=5.0, special_fraction=10 / 11, n_samples=11, n_finite=1),
        ],
    )


def test_aggregate_all_special() -> None:
    check([["INVALID"], [math.nan]], [ObjectiveSummary(None, None, None, 1.0, 2, 0)])


def test_aggregate_matches_numpy_percentiles() -> None:
    values = np.random.default_rng(3).lognormal(size=101)
    (summary,) = aggregate([[float(value)] for value in values])
    assert summary.median == float(np.median(values))
    assert (summary.p10, summary.p90) == tuple(float(q) for q in np.percentile(values, [10, 90]))


@pytest.mark.parametrize(
    ("values_per_sample", "message"),
    [([], "at least one"), ([[1.0], [1.0, 2.0]], "objective"), ([["NA"]], "unexpected")],
)
def test_aggregate_errors(values_per_sample: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        aggregate(values_per_sample)


def test_summarise_end_to_end() -> None:
    codec, _, tokens = run("ieee_nan_only_2objs", n_inputs=2, n_samples=32, seed=9)
    summaries = summarise(codec, tokens)
    assert [len(per_input) for per_input in summaries] == [2, 2]
    for summary in (s for per_input in summaries for s in per_input):
        assert summary.n_samples == 32 and 0.0 <= summary.special_fraction <= 1.0
        if summary.n_finite:
            assert summary.p10 <= summary.median <= summary.p90


@pytest.mark.parametrize("name, costs", [("ieee_nan_only_2objs", (1,)), ("ieee_nan_only_2objs", (0, 1)),
                                         ("p10_specials_pad_3objs", (0, 2))])
def test_costs_are_numbers_at_least_zero_even_when_the_model_prefers_nan(name: str, costs: tuple[int, ...]) -> None:
    spec, max_num_objs = CODECS[name]
    codec = codec_from_spec(spec, max_num_objs)
    bias = np.zeros((1, codec.vocab_size), np.float32)
    bias[0, [*codec.special_ids, codec.stoi["<->"]]] = 50.0  # a model that all but always says NaN or "-"
    free = sample_numbers(FakeDecoder(codec, 1, 64, input_bias=bias), codec, 1, 64)
    asked = sample_numbers(FakeDecoder(codec, 1, 64, input_bias=bias), codec, 1, 64, costs=costs)
    for objective in range(max_num_objs):
        first = objective * codec.num_tokens_per_obj
        assert np.isin(free[0, :, first], [*codec.special_ids, codec.stoi["<->"]]).all()  # the bias bites
        values = [codec.decode(ids)[objective] for ids in asked[0]]
        if objective in costs:
            assert all(isinstance(value, float) and math.isfinite(value) and value >= 0 for value in values), values
        else:  # objectives not asked for keep the full grammar, so the model's NaN or "-" stays
            assert np.isin(asked[0, :, first], [*codec.special_ids, codec.stoi["<->"]]).all()


def test_costs_must_name_an_objective_of_the_codec() -> None:
    codec = codec_from_spec({"type": "ieee"}, 1)
    with pytest.raises(ValueError, match="costs names objective 1, but the codec decodes 1"):
        sample_numbers(FakeDecoder(codec, 1, 2), codec, 1, 2, costs=(1,))
