"""The number codec against regress-lm's golden tables (tokenizer_golden.json, golden.json), plus properties."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from perfhint.numbers import NEG_INF, PAD_ID, DecoderCodec, codec_from_spec, normalise_spec

# Same folder as the `regress_lm_fixtures` fixture; needed here at collection time to parametrize.
GOLDEN_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "regress_lm"

# Our spec for each configuration of tokenizer_golden.json (its "description" names the regress-lm objects).
SPECS: dict[str, dict] = {
    "ieee_default": {"type": "ieee", "base": 10, "num_exponent_digits": 1, "num_mantissa_digits": 4},
    "ieee_e2_m6": {"type": "ieee", "base": 10, "num_exponent_digits": 2, "num_mantissa_digits": 6},
    "ieee_base2_e3_m8": {"type": "ieee", "base": 2, "num_exponent_digits": 3, "num_mantissa_digits": 8},
    "ieee_m6_nan_only": {"type": "ieee", "num_mantissa_digits": 6, "special_values": ["NAN"]},
    "ieee_default_specials": {"type": "ieee", "special_values": "default"},
    "ieee_append_pad": {"type": "ieee", "append_pad": True},
    "p10_default": {"type": "p10", "num_digits": 4, "exponent_range": 10},
    "p10_default_specials": {"type": "p10", "special_values": "default"},
    "p10_d3_r5": {"type": "p10", "num_digits": 3, "exponent_range": 5},
}
FIXTURE_SPECS: dict[str, tuple[dict, int]] = {  # golden.json model fixtures: (spec, max_num_objs)
    "rlm_tiny_ieee": ({"type": "ieee"}, 1),
    "rlm_tiny_p10_multi": ({"type": "p10", "special_values": "default"}, 2),
}


def _load(name: str) -> dict:
    path = GOLDEN_DIR / name
    return json.loads(path.read_text()) if path.is_file() else {}


TOKENIZER_GOLDEN = _load("tokenizer_golden.json").get("configs", {})
MODEL_GOLDEN = {fixture["fixture"]: fixture for fixture in _load("golden.json").get("fixtures", [])}


def _cases(kind: str) -> list:
    return [
        pytest.param(name, case, id=f"{name}-{index}-{case.get('input_repr', case.get('prefix_ids'))}")
        for name, config in TOKENIZER_GOLDEN.items()
        for index, case in enumerate(config[kind])
    ]


def _golden_input(case: dict) -> list:
    """The values regress-lm's `to_token_ids` got; a bare string stays bare (regress-lm rejects it)."""
    if case["input_repr"] == "'INVALID'":
        return "INVALID"  # type: ignore[return-value]
    if case["input_repr"] == "['INVALID']":
        return ["INVALID"]
    return [float(case["input"])]


def _repr_values(values: list) -> list[str]:
    return [repr(value) for value in values]


def _golden_value(value: object) -> object:
    return float(value) if value in ("nan", "inf", "-inf") else value


# The one place that calls the API for golden comparisons ---------------------------------------------------


def check(codec: DecoderCodec, values: object, expected: dict) -> None:
    """`expected` holds token_ids and decoded_repr, or encode_error (regress-lm raised: we raise ValueError)."""
    if "encode_error" in expected:
        with pytest.raises(ValueError):
            codec.encode(values)  # type: ignore[arg-type]
        return
    ids = codec.encode(values)  # type: ignore[arg-type]
    assert ids == expected["token_ids"]
    assert codec.to_tokens(ids) == expected["tokens"]
    assert _repr_values(codec.decode(expected["token_ids"])) == expected["decoded_repr"]


def check_allowed(codec: DecoderCodec, prefix_ids: list[int], expected_ids: list[int]) -> None:
    mask = codec.allowed_mask(np.array([prefix_ids], dtype=np.int64).reshape(1, len(prefix_ids)))
    assert np.flatnonzero(mask[0]).tolist() == sorted(expected_ids)


def golden_codec(name: str, max_num_objs: int = 1) -> DecoderCodec:
    return codec_from_spec(SPECS[name], max_num_objs)


# tokenizer_golden.json -------------------------------------------------------------------------------------


def test_golden_files_present(regress_lm_fixtures: Path) -> None:
    assert regress_lm_fixtures == GOLDEN_DIR
    assert set(TOKENIZER_GOLDEN) == set(SPECS), "tokenizer_golden.json configs changed: update SPECS"
    assert set(MODEL_GOLDEN) == set(FIXTURE_SPECS)


@pytest.mark.parametrize("name", list(SPECS))
def test_vocab(name: str) -> None:
    golden, codec = TOKENIZER_GOLDEN[name], golden_codec(name)
    assert codec.itos == golden["itos"]
    assert codec.vocab_size == golden["vocab_size"] == len(codec.itos)
    assert golden["bos_pad_id"] == PAD_ID == 0
    assert codec.num_tokens_per_obj == golden["num_tokens_per_obj"]
    assert repr(codec.max_abs_val) == repr(golden["max_abs_val"])
    assert codec.allowed.shape == (codec.num_tokens_per_obj, codec.vocab_size)
    specials = [token for token in golden["itos"] if token[1:-1] in ("INVALID", "NAN", "INF", "NINF")]
    assert sorted(codec.itos[i] for i in codec.special_ids) == specials


@pytest.mark.parametrize(("name", "case"), _cases("encodings"))
def test_golden_encoding(name: str, case: dict) -> None:
    check(golden_codec(name), _golden_input(case), case)


@pytest.mark.parametrize(("name", "case"), _cases("encodings"))
def test_golden_encoding_quirk_mode(name: str, case: dict) -> None:
    # regress-lm's own recipe must reproduce the golden set too (none of it hits the quirk).
    if "encode_error" in case:
        return
    assert golden_codec(name).encode(_golden_input(case), regress_lm_exponent_quirk=True) == case["token_ids"]


@pytest.mark.parametrize(("name", "case"), _cases("grammar"))
def test_golden_grammar(name: str, case: dict) -> None:
    check_allowed(golden_codec(name), case["prefix_ids"], case["allowed_ids"])


# golden.json: multi-objective encodings, greedy paths with their allowed sets, sampled token ids ------------


def _model_cases() -> list:
    return [
        pytest.param(name, case, id=f"{name}-{index}")
        for name, fixture in MODEL_GOLDEN.items()
        for index, case in enumerate(fixture["cases"])
    ]


@pytest.mark.parametrize(("name", "case"), _model_cases())
def test_model_fixture_targets_and_greedy(name: str, case: dict) -> None:
    spec, max_num_objs = FIXTURE_SPECS[name]
    codec = codec_from_spec(spec, max_num_objs)
    config = MODEL_GOLDEN[name]["config"]
    assert (codec.itos, codec.decode_len) == (config["decoder_vocab_itos"], config["decode_len"])
    targets = [_golden_value(value) for value in case["target_y"]]
    assert [PAD_ID, *codec.encode(targets)] == case["decoder_input_ids"][: codec.decode_len + 1]
    greedy = case["greedy"]
    assert _repr_values(codec.decode(greedy["token_ids"])) == _repr_values([_golden_value(v) for v in greedy["values"]])
    for step in greedy["steps"]:
        check_allowed(codec, step["prefix_ids"], step["allowed_ids"])


@pytest.mark.parametrize("name", list(FIXTURE_SPECS))
def test_model_fixture_sampled_ids_decode(name: str) -> None:
    spec, max_num_objs = FIXTURE_SPECS[name]
    codec = codec_from_spec(spec, max_num_objs)
    reference = MODEL_GOLDEN[name]["torch_rng_sampling_reference"]
    for ids_per_sample, values_per_sample in zip(reference["token_ids"], reference["values"]):
        for ids, values in zip(ids_per_sample, values_per_sample):
            assert _repr_values(codec.decode(ids)) == _repr_values([_golden_value(v) for v in values])


# The §1.8 IEEE exponent quirk -------------------------------------------------------------------------------

QUIRK_CASES = [
    # (spec, value, ours, regress-lm's)
    ({"type": "ieee"}, 9.999999999999999e-09, 9.999e-09, 9.99e-08),
    ({"type": "ieee"}, 999999999.9999999, 999900000.0, 100000000.0),
    ({"type": "ieee", "num_exponent_digits": 2}, 1e-11, 9.999e-12, 9.99e-11),
    ({"type": "ieee"}, 9.999999999999999e-10, 0.0, 9.99e-09),  # the exact exponent underflows E=1
]


@pytest.mark.parametrize(("spec", "value", "ours", "reference"), QUIRK_CASES)
def test_exponent_quirk(spec: dict, value: float, ours: float, reference: float) -> None:
    codec = codec_from_spec(spec)
    assert codec.decode(codec.encode([value])) == [ours]
    assert codec.decode(codec.encode([value], regress_lm_exponent_quirk=True)) == [reference]


# Specs and errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
def test_spec_round_trip(name: str) -> None:
    codec = golden_codec(name, 3)
    again = codec_from_spec(json.loads(json.dumps(codec.spec)), 3)
    assert again.spec == codec.spec and again.itos == codec.itos
    assert np.array_equal(again.allowed, codec.allowed)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "float"}, "type must be"),
        ({"type": "ieee", "base": 16}, "base must be an int in 2..10"),
        ({"type": "ieee", "num_digits": 4}, "unknown keys"),
        ({"type": "p10", "special_values": ["NAN", "NAN"]}, "twice"),
        ({"type": "p10", "special_values": ["NULL"]}, "unknown special value"),
        ({"type": "p10", "append_pad": 1}, "append_pad"),
    ],
)
def test_bad_spec(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        codec_from_spec(spec)


def test_special_values_normalised() -> None:
    for special_values in ([], "default"):  # regress-lm: an empty map falls back to the default map
        spec = normalise_spec({"type": "p10", "special_values": special_values})
        assert spec["special_values"] == ["INVALID", "NAN", "INF", "NINF"]


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([1, 1, 3, 4, 3, 3], "expected 7 token ids"),
        ([1, 1, 3, 4, 3, 3, 99], "outside the decoder vocabulary"),
        ([3, 1, 3, 4, 3, 3, 3], "not allowed"),
        ([1, 1, 3, 4, 3, 3, 1], "not allowed"),
    ],
)
def test_decode_errors(ids: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        codec_from_spec({"type": "ieee"}).decode(ids)


def test_encode_wrong_count() -> None:
    with pytest.raises(ValueError, match="max_num_objs"):
        codec_from_spec({"type": "ieee"}, 2).encode([1.0])


# Properties -------------------------------------------------------------------------------------------------

RNG_SEED = 20260623


def _random_values(n: int) -> np.ndarray:
    rng = np.random.default_rng(RNG_SEED)
    return rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-12, 16, n)


@pytest.mark.parametrize("name", list(SPECS))
def test_round_trip_within_truncation(name: str) -> None:
    codec = golden_codec(name)
    fmt = codec.spec
    for value in _random_values(300):
        decoded = codec.decode(codec.encode([value]))[0]
        clipped = math.copysign(min(abs(value), codec.max_abs_val), value)
        if fmt["type"] == "ieee":
            tiny = fmt["base"] ** -(fmt["base"] ** fmt["num_exponent_digits"] - 1)
            relative = fmt["base"] ** -(fmt["num_mantissa_digits"] - 1)  # truncation: one unit of the last digit
        else:
            tiny = 10 ** (fmt["num_digits"] - 1 - fmt["exponent_range"])
            relative = 0.5 * 10 ** -(fmt["num_digits"] - 1)  # rounding: half a unit
        if abs(clipped) < tiny:
            assert abs(decoded) <= tiny * (1 + 1e-9), (value, decoded)
        else:
            assert abs(decoded - clipped) <= relative * abs(clipped) * (1 + 1e-9), (value, decoded)
            if decoded != 0:
                assert math.copysign(1, decoded) == math.copysign(1, clipped)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_encoding_is_allowed_by_the_grammar(name: str) -> None:
    codec = golden_codec(name, 2)
    values: list = list(_random_values(60)) + [0.0, math.inf, -math.inf]
    values += [math.nan] if "NAN" in codec.special_keys else []
    values += ["INVALID"] if "INVALID" in codec.special_keys else []
    sequences = np.array([codec.encode([a, b]) for a, b in zip(values, values[::-1])], dtype=np.int64)
    for step in range(codec.decode_len):
        mask = codec.allowed_mask(sequences[:, :step])
        assert mask[np.arange(len(sequences)), sequences[:, step]].all(), f"step {step}"
    # ...and the grammar is no looser than necessary: after a special start, only that special.
    if codec.special_ids.size:
        special = int(codec.special_ids[0])
        mask = codec.allowed_mask(np.array([[special]]))
        assert np.flatnonzero(mask[0]).tolist() == [special]


def test_allowed_mask_is_vectorised_over_rows() -> None:
    codec = codec_from_spec({"type": "p10", "special_values": "default", "append_pad": True}, 2)
    nan_id, plus_id = codec.stoi["<NAN>"], codec.stoi["<+>"]
    prefixes = np.array([[nan_id, nan_id], [plus_id, codec.stoi["<3>"]]])
    mask = codec.allowed_mask(prefixes)
    assert np.flatnonzero(mask[0]).tolist() == [nan_id]
    assert np.array_equal(mask[1], codec.allowed[2])
    pad_position = np.full((1, codec.num_value_tokens), nan_id)
    assert np.flatnonzero(codec.allowed_mask(pad_position)[0]).tolist() == [PAD_ID]
    assert codec.allowed_mask(np.zeros((5, 0), dtype=np.int64)).shape == (5, codec.vocab_size)
    assert codec.decode(codec.encode(["INVALID", 2.5])) == ["INVALID", 2.5]
    assert NEG_INF == -1.0e7


@pytest.mark.parametrize("name", [name for name in SPECS if SPECS[name]["type"] == "ieee"])
def test_values_beside_powers_of_the_base_encode_within_truncation(name: str) -> None:
    # The §1.8 quirk lives here: a few ulps either side of base**k. Ours stays within one last-digit unit.
    codec = golden_codec(name)
    base, n_exp, n_man = (codec.spec[key] for key in ("base", "num_exponent_digits", "num_mantissa_digits"))
    tiny = base ** -(base**n_exp - 1)
    quirk_hits = 0
    for k in range(-(base**n_exp - 1), base**n_exp):
        below = above = float(base) ** k
        for _ in range(4):
            below, above = math.nextafter(below, 0), math.nextafter(above, math.inf)
            for value in (below, above):
                if not tiny <= value <= codec.max_abs_val:
                    continue
                decoded = codec.decode(codec.encode([value]))[0]
                assert abs(decoded - value) <= base ** -(n_man - 1) * value * (1 + 1e-9), (value, decoded)
                quirk_hits += decoded != codec.decode(codec.encode([value], regress_lm_exponent_quirk=True))[0]
    assert quirk_hits > 0, "the reference quirk should show up beside some power of the base"
