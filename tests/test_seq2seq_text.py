"""Numbers written as text by an HF seq2seq model (the paper's end-to-end T5Gemma baseline), decoded under a grammar.

Two halves. The grammar (server/perfhint/text_numbers.py) is tested on its own with the tiny tokenizer of
tiny_hf.py, whose vocabulary mixes single characters with multi-character pieces ("1.", "e+", "00",
"5e+0", "nan", "inf", "in"): no torch, no transformers. The export (perfhint_export/seq2seq.py) round-trips
a tiny random T5GemmaForConditionalGeneration saved with save_pretrained: `perfhint export MODEL_DIR`
-> bundle -> `perfhint predict --greedy` must equal transformers' full-forward greedy decoding under the
same grammar (fp32: logits within 1e-4; int8 within 0.2, parity.py's tolerances).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tokenizers

import tiny_hf
from perfhint.text_numbers import CharAutomaton, TextNumberGrammar

SPEC = {"type": "text_number", "format": ".4e", "separator": ",", "specials": ["nan", "inf", "-inf"],
        "max_decode_len": 32, "decoder_start_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
        "prefix_token_ids": [2]}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> tokenizers.Tokenizer:
    directory = tiny_hf.write_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    return tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))


def grammar_for(tokenizer, max_num_objs: int = 1, **spec) -> TextNumberGrammar:
    return TextNumberGrammar(tokenizer, {**SPEC, **spec}, max_num_objs)


# ----------------------------------------------------------------------------------------------- characters


CHARACTER_CASES = {  # text -> complete? (EOS allowed after it) / None: no path at all
    "1.2345e+03": True, "-9.0000e-12": True, "0.0000e+00": True, "1.0000e+100": True, "nan": True,
    "inf": True, "-inf": True,
    "1.234e+03": None, "1.23456e+03": None, "1.2345e+3": False, "1.2345e+1000": None, "12.345e+03": None,
    "1.2345E+03": None, "+1.2345e+03": None, "1.2345e03": None, "-nan": None, "": False,
}


@pytest.mark.parametrize("text, expected", CHARACTER_CASES.items(), ids=list(CHARACTER_CASES))
def test_character_automaton(text: str, expected: bool | None) -> None:
    automaton = CharAutomaton(digits=4)
    state = automaton.walk(automaton.start, text)
    assert (None if state == -1 else bool(automaton.accepting[state])) == expected


def test_two_objectives_are_comma_separated() -> None:
    automaton = CharAutomaton(digits=4, max_num_objs=2)
    assert automaton.accepting[automaton.walk(0, "1.0000e+00,-inf")]
    assert not automaton.accepting[automaton.walk(0, "1.0000e+00")]  # the second objective is missing
    assert automaton.walk(0, "1.0000e+00,2.0000e+00,3.0000e+00") == -1


COST_CASES = {  # two objectives, the second a cost: text -> complete? / None: no path
    "-1.0000e+00,1.0000e-05": True, "nan,0.0000e+00": True, "1.0000e+00,-1.0000e+00": None,
    "1.0000e+00,nan": None, "1.0000e+00,inf": None, "1.0000e+00,-inf": None, "1.0000e+999,1.0000e+99": True,
    "1.0000e+00,1.0000e+999": None,  # float("1e+999") is inf
}


@pytest.mark.parametrize("text, expected", COST_CASES.items(), ids=list(COST_CASES))
def test_costs_have_no_sign_and_no_special_value(text: str, expected: bool | None) -> None:
    automaton = CharAutomaton(digits=4, max_num_objs=2, costs=(1,))
    state = automaton.walk(automaton.start, text)
    assert (None if state == -1 else bool(automaton.accepting[state])) == expected


# ----------------------------------------------------------------------------------------------- tokens


def ids_of(tokenizer, pieces: list[str]) -> list[int]:
    return [tokenizer.token_to_id(piece) for piece in pieces]


def walk(grammar: TextNumberGrammar, ids: list[int]) -> list[bool]:
    """For each token of `ids` (after the forced prefix): was it allowed where it came?"""
    state, verdicts = np.array([grammar.automaton.start]), []
    for position, token in enumerate(ids, start=len(grammar.prefix)):
        verdicts.append(bool(grammar.allowed_mask(state, grammar.max_decode_len - position)[0, token]))
        state = grammar.advance(state, np.array([token]))
    return verdicts


def check_tokens(tokenizer, pieces: list[str], expected_value, **spec) -> None:
    grammar = grammar_for(tokenizer, **spec)
    ids = ids_of(tokenizer, pieces)
    assert all(walk(grammar, ids)), list(zip(pieces, walk(grammar, ids)))
    assert repr(grammar.decode([*grammar.prefix, *ids])) == repr([expected_value])


def test_multi_character_tokens_spell_a_number(tokenizer) -> None:
    check_tokens(tokenizer, ["1.", "2", "3", "4", "5", "e+", "0", "3", "<eos>"], 1234.5)
    check_tokens(tokenizer, ["-", "9.", "99", "99", "e-", "12", "<eos>"], -9.9999e-12)
    check_tokens(tokenizer, ["1", ".", "0", "00", "0", "e", "+", "00", "<eos>"], 1.0)
    check_tokens(tokenizer, ["nan", "<eos>"], float("nan"))
    check_tokens(tokenizer, ["-", "in", "f", "<eos>"], float("-inf"))


def test_tokens_that_break_the_format_are_refused(tokenizer) -> None:
    grammar = grammar_for(tokenizer)
    assert walk(grammar, ids_of(tokenizer, ["1.", "2", "3", "4", "e+"])) == [True, True, True, True, False]
    assert walk(grammar, ids_of(tokenizer, ["1.", "2", "3", "4", "5", "e+", "0", "<eos>"]))[-1] is False
    assert walk(grammar, ids_of(tokenizer, ["5e+0"])) == [False]  # "5e" needs "." first: no path
    start = grammar.allowed_mask(np.array([grammar.automaton.start]), grammar.max_decode_len)[0]
    assert not start[tokenizer.token_to_id("n")]  # "n" could only go on with "a", which no token spells
    assert not start[tokenizer.token_to_id("def")] and not start[grammar.eos_id]


def test_every_random_path_parses(tokenizer) -> None:
    """Uniformly random allowed tokens, with a budget barely long enough: every row completes and parses."""
    for max_num_objs, max_decode_len in ((1, 14), (2, 40)):
        values = random_values(grammar_for(tokenizer, max_num_objs=max_num_objs, max_decode_len=max_decode_len))
        assert not any("INVALID" in value for value in values)
        assert any(isinstance(value[0], float) and np.isfinite(value[0]) for value in values)


def random_values(grammar: TextNumberGrammar, rows: int = 300, seed: int = 0) -> list[list]:
    """Uniformly random allowed tokens until EOS (every row must get there within the budget), decoded."""
    rng = np.random.default_rng(seed)
    state, tokens, done = np.full(rows, grammar.automaton.start), [np.full(rows, 2)], np.zeros(rows, bool)
    for position in range(1, grammar.max_decode_len):
        allowed = grammar.allowed_mask(state, grammar.max_decode_len - position)
        allowed[done] = False
        allowed[done, grammar.eos_id] = True
        chosen = np.array([rng.choice(np.flatnonzero(row)) for row in allowed])
        state = np.where(done, state, grammar.advance(state, chosen))
        done |= chosen == grammar.eos_id
        tokens.append(chosen)
    assert done.all()
    return [grammar.decode(row.tolist()) for row in np.stack(tokens, axis=1)]


def test_for_costs_spells_only_numbers_at_least_zero(tokenizer) -> None:
    """Multi-character tokens ("-", "nan", "in", "inf") cannot smuggle a sign or a special into a cost."""
    grammar = grammar_for(tokenizer, max_num_objs=2, max_decode_len=40)
    assert grammar.for_costs(()) is grammar and grammar.for_costs((1,)) is grammar.for_costs([1, 1])
    free = random_values(grammar)
    assert any(not np.isfinite(value[1]) or value[1] < 0 for value in free)  # random paths do say them
    costs = random_values(grammar.for_costs((1,)))
    assert all(isinstance(value[1], float) and np.isfinite(value[1]) and value[1] >= 0 for value in costs)
    assert any(not np.isfinite(value[0]) or value[0] < 0 for value in costs)  # objective 0 keeps its grammar


def test_budget_too_short_is_refused(tokenizer) -> None:
    with pytest.raises(ValueError, match="max_decode_len 2 is too short: a number needs 3 tokens"):
        grammar_for(tokenizer, max_decode_len=2)  # <bos>, "nan", <eos> is the shortest


# ----------------------------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random T5GemmaForConditionalGeneration saved as a user would have it (weights + tokenizer)."""
    pytest.importorskip("transformers", reason="the seq2seq export needs the hf extra: pip install -e '.[hf]'")
    import torch
    import transformers

    config = tiny_hf.t5gemma_config(1)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.T5GemmaForConditionalGeneration(config).eval()
    with torch.no_grad():
        noise = torch.Generator().manual_seed(1)
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=noise))  # int8 stays within 0.2
    directory = tmp_path_factory.mktemp("seq2seq") / "t5gemma-tiny-seq2seq"
    model.save_pretrained(str(directory))
    tiny_hf.write_tokenizer(directory)
    (directory.parent / "seq2seq.json").write_text(json.dumps({
        "format": "hf-seq2seq", "number_format": ".4e", "max_decode_len": 24, "max_input_len": 48,
        "max_num_objs": 1, "metrics": [{"name": "latency", "unit": "ms"}]}))
    return directory


@pytest.fixture(scope="module")
def bundle(model_dir: Path) -> Path:
    from perfhint import cli

    out = model_dir.parent / "bundle-fp32"
    assert cli.main(["export", str(model_dir), "--config", str(model_dir.parent / "seq2seq.json"), "--out", str(out),
                     "--precision", "fp32", "--purpose", "test"]) == 0
    return out


def reference_greedy(model_dir: Path, bundle: Path, text: str) -> list:
    """transformers' full forward pass re-run per token, argmax under the bundle's grammar."""
    from perfhint.runtime import Predictor
    from perfhint_export import seq2seq

    predictor = Predictor.from_bundle_path(bundle)
    ids = predictor.encode_text(text).ids[None]
    model = seq2seq.load_seq2seq_model(model_dir)
    tokens = seq2seq.greedy(lambda dec: seq2seq.reference_logits(model, ids, np.ones_like(ids), dec, 1),
                            predictor.codec, 1)[0]
    return [repr(value) for value in predictor.codec.decode(tokens.tolist())]


def test_predict_greedy_equals_transformers(model_dir: Path, bundle: Path, tmp_path: Path) -> None:
    from perfhint import cli

    texts = ["def f ( n ) : return n", "x = 1", "", "for i in range ( 9 ) : tl . store ( x )"]
    inputs, outputs = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inputs.write_text("".join(json.dumps({"id": index, "text": text}) + "\n" for index, text in enumerate(texts)))
    assert cli.main(["predict", "--bundle", str(bundle), "--jsonl", str(inputs), "--out", str(outputs), "--greedy",
                     "--samples", "16"]) == 0
    lines = [json.loads(line) for line in outputs.read_text().splitlines()]
    served = [[repr(float(value)) if value != "INVALID" else repr(value) for value in line["greedy"]] for line in lines]
    assert served == [reference_greedy(model_dir, bundle, text) for text in texts]


def test_samples_always_parse_and_manifest(bundle: Path) -> None:
    from perfhint.bundle import load_bundle
    from perfhint.runtime import Predictor
    from perfhint.text_numbers import TextNumberPredictor

    predictor = Predictor.from_bundle_path(bundle)
    assert isinstance(predictor, TextNumberPredictor)
    [prediction] = predictor.predict_texts(["def f ( n ) : return n"], samples=32, seed=3, return_token_ids=True)
    values = [predictor.codec.decode(row.tolist()) for row in prediction.token_ids]
    assert not any("INVALID" in value for value in values)
    assert all(row[0] == 2 for row in prediction.token_ids)  # the forced <bos> the targets start with
    manifest = load_bundle(bundle).manifest
    assert manifest.codec.decoder_tokenizer["prefix_token_ids"] == [2] and manifest.parity["passed"]
    assert manifest.parity["max_abs_diff"]["logits"] <= 1e-4
    assert [case["length"] for case in manifest.parity["cases"]] == [1, 19, 33, 48]


def test_a_latency_region_gets_latencies_at_least_zero(bundle: Path) -> None:
    from perfhint.runtime import Predictor

    predictor = Predictor.from_bundle_path(bundle)
    assert predictor.objectives_asked("python/triton_kernel") == (0,)  # the metric is in ms
    text = "def f ( n ) : return n"
    [free] = predictor.predict_texts([text], samples=64, seed=1, return_token_ids=True)
    [cost] = predictor.predict_texts([text], samples=64, seed=1, return_token_ids=True,
                                     regions=["python/triton_kernel"])
    free_values = [predictor.codec.decode(row.tolist())[0] for row in free.token_ids]
    values = [predictor.codec.decode(row.tolist())[0] for row in cost.token_ids]
    assert any(not np.isfinite(value) or value < 0 for value in free_values)  # the random model says them
    assert all(np.isfinite(value) and value >= 0 for value in values), values


def test_int8_bundle(model_dir: Path) -> None:
    from perfhint.bundle import load_bundle
    from perfhint_export.seq2seq import export_seq2seq_bundle

    out = export_seq2seq_bundle(model_dir, model_dir.parent / "seq2seq.json", model_dir.parent / "bundle-int8",
                                precision="int8", purpose="test", probe_count=4).path
    manifest = load_bundle(out).manifest
    assert manifest.precision == "int8" and manifest.parity["max_abs_diff"]["logits"] <= 0.2


def test_t5gemma2_and_bad_configs_are_refused(model_dir: Path, tmp_path: Path) -> None:
    from perfhint_export.seq2seq import Seq2SeqError, export_seq2seq_bundle, load_seq2seq_config

    v2 = tiny_hf.write_hf_dir(tmp_path / "v2", 2)
    with pytest.raises(Seq2SeqError, match="T5Gemma 2's merged decoder attention is not supported yet"):
        export_seq2seq_bundle(v2, None, tmp_path / "out", precision="fp32")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"number_format": ".4f", "max_num_objs": 2, "metrics": [{"name": "a"}], "x": 1}))
    with pytest.raises(Seq2SeqError) as raised:
        load_seq2seq_config(bad)
    for snippet in ("x: unknown key", "number_format: number format '.4f'", "metrics: 1 entries for max_num_objs 2"):
        assert snippet in str(raised.value)
