"""Numbers written as text by a Hugging Face seq2seq model, decoded under a grammar (no torch, no transformers).

The paper's end-to-end T5Gemma baseline (regress-lm's `t5gemma_model.T5GemmaModel`) is a plain seq2seq
model trained to write `format(y, ".4e")` (objectives joined by ",") and then EOS, e.g. `1.2345e+03<eos>`,
with tokens from its ordinary text vocabulary; regress-lm samples it unconstrained and parses the strings
afterwards, so some samples are not numbers. Here every sample parses. What is hard:

- **Tokens are not characters.** A vocabulary has "1", but also "1.", "e+", "00", "5e+0", "▁1" and
  byte-fallback pieces. The grammar is a small automaton over *characters* (`-? d . d{P} e [+-] d d d?`,
  or nan / inf / -inf, "," between objectives, then EOS); a token is allowed in a state when the automaton
  can read its whole surface string from there, and its target state is where that walk ends. So the
  table is `next_state[state, token]`, built once per bundle by walking every candidate token from every
  state (about 20 states per objective; only tokens made of grammar characters can be candidates, a few
  hundred of a 262k vocabulary).
- **Dead ends and the length budget.** A character path can exist with no token path ("n" needs an "a"
  that no token spells; a number needs more tokens than max_decode_len leaves). So every state gets the
  fewest tokens that still complete the output, and a token is allowed only if, after it, the output can
  still be completed in the steps left: every sample ends with EOS and parses, none is cut off.
- **A token's surface depends on its neighbours.** SentencePiece-style decoders turn "▁" into a space and
  drop it at the start of the text. So surfaces are measured in context: the first token of the number as
  `decode([t])`, later ones as `decode([anchor, t]) - decode([anchor])` with a digit as anchor. The number's
  text is the concatenation of those surfaces, so what is parsed is exactly what the grammar walked.
- **What the model was trained to emit first.** regress-lm tokenizes targets with special tokens, so a
  Gemma tokenizer's labels start with <bos>; the model learnt to write it after the decoder start token.
  The exporter records those leading ids (`prefix_token_ids`) and the runtime forces them.
- **Variable length.** Decoding stops when every row has emitted EOS (or at max_decode_len; a number
  still incomplete then is "INVALID"), rows that are done are fed EOS and pinned to pad.

Bundles of this kind (manifest `codec.decoder_tokenizer.type == "text_number"`) keep the runtime's graph
contract (`encoder.onnx` -> cross K/V; `decoder_step.onnx` with a KV cache); `runtime.Predictor` hands
them to `TextNumberPredictor` below, which reuses its sessions, batching and summaries.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from perfhint.bundle import REEXPORT, Bundle
from perfhint.decoding import masked_probabilities
from perfhint.encoder_vocab import EncoderVocab
from perfhint.numbers import INVALID, Value
from perfhint.runtime import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    DECODER_STEP,
    ENCODER,
    ENCODER_INPUTS,
    ENCODER_OUTPUTS,
    Predictor,
    RuntimeSetupError,
    _check_io,
    _DecoderStep,
    _input_cross,
    _open_session,
    _verified_bytes,
    select_providers,
    session_options,
)

TEXT_NUMBER = "text_number"
SPEC_KEYS = ("type", "format", "separator", "specials", "max_decode_len", "decoder_start_token_id", "eos_token_id",
             "pad_token_id", "prefix_token_ids")
DEFAULT_SPECIALS = ("nan", "inf", "-inf")  # what format(y, ".4e") writes for NaN and the infinities
_FORMAT = re.compile(r"\.(\d{1,2})e")
_GRAMMAR_CHARS = frozenset("0123456789.e+-,naif")
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPACE_MARKERS = ("\u2581", "\u0120")  # SentencePiece "▁" and byte-level "Ġ": a space once decoded
DEAD = -1


def is_text_number_spec(spec: Any) -> bool:
    return isinstance(spec, dict) and spec.get("type") == TEXT_NUMBER


def mantissa_digits(number_format: str) -> int:
    match = _FORMAT.fullmatch(number_format)
    if not match:
        raise ValueError(f"number format {number_format!r} is not one this runtime knows; use '.<digits>e' "
                         f"(regress-lm's default is '.4e')")
    return int(match.group(1))


# ----------------------------------------------------------------------------------------------- characters


class CharAutomaton:
    """Deterministic automaton over characters for `max_num_objs` numbers in `.{P}e` format, comma-separated.

    States are `objective * per_object + local`; `step(state, char)` is the next state or DEAD;
    `accepting` says where EOS may come (a complete last objective).
    """

    def __init__(self, digits: int, max_num_objs: int = 1, separator: str = ",",
                 specials: Sequence[str] = DEFAULT_SPECIALS, costs: Sequence[int] = ()) -> None:
        """Objectives in `costs` are finite numbers >= 0: their start state has no "-" and no special-value
        edge, and their exponent has two digits (a third would let 1e+999 through, which parses as inf)."""
        if len(separator) != 1:
            raise ValueError(f"separator must be one character, got {separator!r}")
        for objective in costs:
            if not 0 <= objective < max_num_objs:
                raise ValueError(f"costs names objective {objective}, but the grammar decodes {max_num_objs}")
        self.digits, self.max_num_objs, self.separator = digits, max_num_objs, separator
        self.specials, self.costs = tuple(specials), tuple(sorted(set(costs)))
        local: dict[tuple[str, str], str] = {}  # (state name, char) -> state name, one objective
        numbers = "0123456789"

        def edge(source: str, chars: str, target: str) -> None:
            for char in chars:
                local[source, char] = target

        edge("start", "-", "minus")
        edge("start", numbers, "lead")
        edge("minus", numbers, "lead")
        if digits:
            edge("lead", ".", "frac0")
            for index in range(digits):
                edge(f"frac{index}", numbers, f"frac{index + 1}")
            edge(f"frac{digits}", "e", "exp")
        else:
            edge("lead", "e", "exp")
        edge("exp", "+-", "exp_sign")
        edge("exp_sign", numbers, "exp1")
        edge("exp1", numbers, "exp2")  # Python writes at least two exponent digits...
        edge("exp2", numbers, "exp3")  # ...and three from 1e+100 on
        accepting = {"exp2", "exp3"}
        for special in specials:  # nan, inf, -inf: a chain of states per spelling, sharing prefixes
            source = "start"
            for position, char in enumerate(special):
                target = f"special:{special[:position + 1]}"
                if (source, char) in local:
                    target = local[source, char]
                local[source, char] = target
                source = target
            accepting.add(source)
        names = sorted({"start"} | {name for key, name in local.items()} | {key[0] for key in local},
                       key=lambda name: (name != "start", name))
        self.per_object = len(names)
        self.local_index = {name: index for index, name in enumerate(names)}
        self.n_states = self.per_object * max_num_objs
        self._table: dict[tuple[int, str], int] = {}
        self.accepting = np.zeros(self.n_states, dtype=bool)
        for obj in range(max_num_objs):
            base = obj * self.per_object
            for (source, char), target in local.items():
                if obj in self.costs and (source == "start" and (char == "-" or target.startswith("special:"))
                                          or target == "exp3"):
                    continue  # a cost: no sign, no nan/inf, and |exponent| <= 99 (e+309 and up parse as inf)
                self._table[base + self.local_index[source], char] = base + self.local_index[target]
            for name in accepting:
                state = base + self.local_index[name]
                if obj + 1 < max_num_objs:
                    self._table[state, separator] = (obj + 1) * self.per_object  # the next objective's start
                else:
                    self.accepting[state] = True
        self.start = 0

    def step(self, state: int, char: str) -> int:
        return self._table.get((state, char), DEAD)

    def walk(self, state: int, text: str) -> int:
        for char in text:
            state = self._table.get((state, char), DEAD)
            if state == DEAD:
                return DEAD
        return state


# ----------------------------------------------------------------------------------------------- tokens


def _candidate(token: str) -> bool:
    """Could this vocabulary entry decode to grammar characters only? (a cheap filter before decoding)"""
    byte = _BYTE_TOKEN.fullmatch(token)
    if byte:
        return chr(int(byte.group(1), 16)) in _GRAMMAR_CHARS
    stripped = token
    for marker in _SPACE_MARKERS:
        stripped = stripped.replace(marker, "")
    return bool(token) and set(stripped) <= _GRAMMAR_CHARS


class TextNumberGrammar:
    """Token-level grammar and decoder for one bundle: tables over the tokenizer's vocabulary (see the docstring)."""

    def __init__(self, tokenizer: Any, spec: dict[str, Any], max_num_objs: int) -> None:
        """`tokenizer` is a `tokenizers.Tokenizer` (the bundle's tokenizer.json)."""
        self.spec = spec
        self.max_num_objs = max_num_objs
        self.automaton = CharAutomaton(mantissa_digits(spec["format"]), max_num_objs, spec.get("separator", ","),
                                       spec.get("specials", DEFAULT_SPECIALS))
        self._with_costs: dict[tuple[int, ...], TextNumberGrammar] = {(): self}
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.eos_id, self.pad_id = int(spec["eos_token_id"]), int(spec["pad_token_id"])
        self.start_id = int(spec["decoder_start_token_id"])
        self.prefix = [int(token) for token in spec.get("prefix_token_ids", [])]
        self.max_decode_len = int(spec["max_decode_len"])
        special_ids = {self.eos_id, self.pad_id, self.start_id, *self.prefix}
        candidates = sorted(token_id for token, token_id in tokenizer.get_vocab(with_added_tokens=True).items()
                            if token_id not in special_ids and _candidate(token))
        anchor = tokenizer.token_to_id("0")
        anchor_text = tokenizer.decode([anchor], skip_special_tokens=False) if anchor is not None else None
        self.surface_first: dict[int, str] = {}
        self.surface_next: dict[int, str] = {}
        for token_id in candidates:
            first = tokenizer.decode([token_id], skip_special_tokens=False)
            following = first
            if anchor is not None:
                both = tokenizer.decode([anchor, token_id], skip_special_tokens=False)
                following = both[len(anchor_text):] if both.startswith(anchor_text) else ""
            if first:
                self.surface_first[token_id] = first
            if following:
                self.surface_next[token_id] = following
        self.candidates = np.array(sorted(set(self.surface_first) | set(self.surface_next)), dtype=np.int64)
        self.candidate_of = np.full(self.vocab_size, DEAD, dtype=np.int64)
        self.candidate_of[self.candidates] = np.arange(len(self.candidates))
        self._build_tables()

    def for_costs(self, costs: Sequence[int]) -> TextNumberGrammar:
        """This grammar with the objectives in `costs` spelled as numbers >= 0 (no "-", no nan/inf): the
        text-number form of decoding.CostGrammar. Built once per costs tuple (the tables are per state)."""
        key = tuple(sorted(set(costs)))
        if key not in self._with_costs:
            automaton = self.automaton
            variant = copy.copy(self)
            variant.automaton = CharAutomaton(automaton.digits, automaton.max_num_objs, automaton.separator,
                                              automaton.specials, costs=key)
            variant._build_tables()
            self._with_costs[key] = variant
        return self._with_costs[key]

    def _build_tables(self) -> None:
        """next_state, steps_to_end and cost for self.automaton over the candidate tokens."""
        spec = self.spec
        # next_state over the candidate tokens only (a few hundred columns, not the whole vocabulary):
        # DEAD where the token cannot follow. The start state reads first-token surfaces.
        automaton = self.automaton
        self.next_state = np.full((automaton.n_states, len(self.candidates)), DEAD, dtype=np.int64)
        for column, token_id in enumerate(self.candidates.tolist()):
            for state in range(automaton.n_states):
                surfaces = self.surface_first if state == automaton.start else self.surface_next
                if token_id in surfaces:
                    self.next_state[state, column] = automaton.walk(state, surfaces[token_id])
        # steps_to_end[state]: fewest tokens (EOS included) that complete the output from there. A state
        # no token sequence completes (e.g. "n" in a vocabulary without "a") is never entered, and a
        # token is allowed only if the output can still be completed within max_decode_len.
        unreachable = np.iinfo(np.int64).max // 2
        steps = np.where(automaton.accepting, 1, unreachable)
        for _ in range(automaton.n_states + 1):
            via = np.where(self.next_state != DEAD, steps[np.maximum(self.next_state, 0)], unreachable).min(axis=1)
            steps = np.minimum(steps, np.where(via < unreachable, via + 1, unreachable))
        self.steps_to_end = steps
        self.cost = np.where(self.next_state != DEAD, steps[np.maximum(self.next_state, 0)], unreachable)
        if steps[automaton.start] >= unreachable:
            raise ValueError(f"no sequence of this vocabulary's tokens spells a number in format {spec['format']!r}; "
                             f"is this the tokenizer the model was trained with?")
        needed = len(self.prefix) + int(steps[automaton.start])
        if needed > self.max_decode_len:
            raise ValueError(f"max_decode_len {self.max_decode_len} is too short: a number needs {needed} tokens here")

    def allowed_mask(self, states: np.ndarray, remaining: int) -> np.ndarray:
        """bool [rows, vocab]: tokens allowed in each row's state with `remaining` steps left (this one included)."""
        states = np.asarray(states, dtype=np.int64)
        mask = np.zeros((len(states), self.vocab_size), dtype=bool)
        mask[:, self.candidates] = self.cost[states] <= remaining - 1
        mask[:, self.eos_id] |= self.automaton.accepting[states]
        return mask

    def advance(self, states: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The states after reading `tokens` (EOS keeps the state); DEAD for a token the grammar forbids."""
        states, tokens = np.asarray(states, dtype=np.int64), np.asarray(tokens, dtype=np.int64)
        columns = self.candidate_of[tokens]
        after = np.where(columns >= 0, self.next_state[states, np.maximum(columns, 0)], DEAD)
        return np.where(tokens == self.eos_id, states, after)

    # Decoding ----------------------------------------------------------------------------------------

    def text_of(self, ids: Sequence[int]) -> tuple[str, bool]:
        """(the number text the ids spell, whether they ended with EOS); ids after EOS are ignored."""
        pieces, complete = [], False
        for index, token_id in enumerate(int(token) for token in ids):
            if index < len(self.prefix):
                continue
            if token_id == self.eos_id:
                complete = True
                break
            surfaces = self.surface_first if not pieces else self.surface_next
            pieces.append(surfaces.get(token_id, "\ufffd"))
        return "".join(pieces), complete

    def decode(self, ids: Sequence[int]) -> list[Value]:
        """One value per objective: a float (nan/±inf included) or "INVALID" (never completed, never parsed)."""
        text, complete = self.text_of(ids)
        parts = text.split(self.automaton.separator)
        if not complete or len(parts) != self.max_num_objs:
            return [INVALID] * self.max_num_objs
        values: list[Value] = []
        for part in parts:
            try:
                values.append(float(part))
            except ValueError:
                values.append(INVALID)
        return values


# ----------------------------------------------------------------------------------------------- predictor


@dataclass
class _Rows:
    """Decoding state of one input's rows."""

    state: np.ndarray  # automaton state per row
    done: np.ndarray  # bool: EOS emitted


class TextNumberPredictor(Predictor):
    """`runtime.Predictor` for text-number bundles: same sessions and summaries, the decoding loop of this module.

    Built by `Predictor(bundle)` when the manifest says `text_number` (see runtime.Predictor.__new__).
    """

    def __init__(self, bundle: Bundle, *, device: str = "cpu", threads: int | None = None,
                 share_prefixes: bool = True) -> None:
        import tokenizers

        self.bundle, self.device, self.threads, self.share_prefixes = bundle, device, threads, share_prefixes
        manifest = bundle.manifest
        self.bundle_sha256 = bundle.sha256
        self.metrics = manifest.metrics
        self.max_input_len = manifest.max_input_len
        spec = dict(manifest.codec.decoder_tokenizer)
        try:
            missing = [key for key in SPEC_KEYS if key not in spec]
            if missing:
                raise ValueError(f"codec.decoder_tokenizer lacks {missing}")
            data = _verified_bytes(bundle.tokenizer_path, manifest.encoder_tokenizer.sha256)
            self.encoder_vocab = EncoderVocab(manifest.encoder_tokenizer.kind, data,
                                              pad_id=manifest.encoder_tokenizer.pad_id, source=str(bundle.tokenizer_path))
            self.codec = TextNumberGrammar(tokenizers.Tokenizer.from_str(data.decode("utf-8")), spec,
                                           manifest.codec.max_num_objs)
        except ValueError as error:
            raise RuntimeSetupError(f"the text-number bundle at {bundle.path} cannot be used: {error}; "
                                    f"{REEXPORT}") from None
        self.pad_id = self.encoder_vocab.pad_id
        self.providers = select_providers(device)
        options = session_options(threads)
        graphs = manifest.graphs
        self.encoder = _open_session(_verified_bytes(bundle.encoder_path, graphs[ENCODER].sha256), ENCODER,
                                     options, self.providers)
        self.decoder = _open_session(_verified_bytes(bundle.decoder_step_path, graphs[DECODER_STEP].sha256),
                                     DECODER_STEP, options, self.providers)
        _check_io(self.encoder, ENCODER, ENCODER_INPUTS, ENCODER_OUTPUTS)
        _check_io(self.decoder, DECODER_STEP, DECODER_INPUTS, DECODER_OUTPUTS)
        architecture = manifest.architecture
        try:
            self._cache_shape = (int(architecture["num_decoder_layers"]), int(architecture["decoder_kv_heads"]),
                                 int(architecture["decoder_head_dim"]))
        except (KeyError, TypeError, ValueError):
            raise RuntimeSetupError(f"the text-number bundle at {bundle.path} does not state its decoder cache shape "
                                    f"(architecture.num_decoder_layers / decoder_kv_heads / decoder_head_dim); "
                                    f"{REEXPORT}") from None
        self.timings = dict.fromkeys(("encoder_s", "encoder_cpu_s", "encoder_calls", "decoder_s", "decoder_cpu_s",
                                      "decoder_calls", "decoder_rows"), 0)

    def _decode(self, cross: tuple[np.ndarray, np.ndarray], mask: np.ndarray, samples: int, *, seed: int,
                temperature: float, greedy: bool, costs: Sequence[int] = ()) -> np.ndarray:
        """Token ids [1, samples, max_decode_len] for one input (pad after EOS); objectives in `costs` are
        spelled as numbers >= 0 (TextNumberGrammar.for_costs)."""
        grammar: TextNumberGrammar = self.codec.for_costs(costs)
        step = _DecoderStep(self, cross, mask, samples, share_prefixes=self.share_prefixes)
        rng = np.random.default_rng(seed)
        tokens = np.full((samples, grammar.max_decode_len), grammar.pad_id, dtype=np.int64)
        rows = _Rows(state=np.full(samples, grammar.automaton.start, dtype=np.int64), done=np.zeros(samples, bool))
        previous = np.full(samples, grammar.start_id, dtype=np.int64)
        for position in range(grammar.max_decode_len):
            logits = step(previous, position)
            if position < len(grammar.prefix):
                chosen = np.full(samples, grammar.prefix[position], dtype=np.int64)
            else:
                allowed = grammar.allowed_mask(rows.state, grammar.max_decode_len - position)
                allowed[rows.done] = False
                allowed[rows.done, grammar.eos_id] = True  # finished rows: EOS fed, pad written
                if not np.isfinite(logits[allowed]).all():
                    raise ValueError(f"decoder_step returned non-finite logits for allowed tokens at step {position}; "
                                     f"the graph is broken ({REEXPORT})")
                if greedy:
                    chosen = np.where(allowed, logits.astype(np.float64), -np.inf).argmax(axis=-1)
                else:
                    cumulative = np.cumsum(masked_probabilities(logits, allowed, temperature), axis=-1)
                    threshold = rng.random(samples) * cumulative[:, -1]
                    chosen = (cumulative <= threshold[:, None]).sum(axis=-1)
                ending = (chosen == grammar.eos_id) & ~rows.done
                rows.state = np.where(rows.done, rows.state, grammar.advance(rows.state, chosen))
                tokens[~rows.done, position] = chosen[~rows.done]
                rows.done |= ending
                if rows.done.all():
                    break
            if position < len(grammar.prefix):
                tokens[:, position] = chosen
            previous = chosen.astype(np.int64)
        return tokens[None]

    def teacher_forced_logits(self, text: str, token_ids: Sequence[int]) -> np.ndarray:
        """float32 [len(token_ids), V]: row t is the logits for token t given the start token + token_ids[:t]."""
        grammar: TextNumberGrammar = self.codec
        token_ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if not 1 <= len(token_ids) <= grammar.max_decode_len:
            raise ValueError(f"token_ids must hold 1..{grammar.max_decode_len} (max_decode_len) ids, got {len(token_ids)}")
        encoded = self.encode_text(text)
        input_cross = _input_cross(self._encode_batch([encoded.ids]), 0, len(encoded.ids))
        step = _DecoderStep(self, input_cross, (encoded.ids != self.pad_id).astype(np.int64)[None, :], 1)
        previous = np.concatenate([[grammar.start_id], token_ids[:-1]]).astype(np.int64)
        return np.stack([step(previous[position:position + 1], position)[0] for position in range(len(token_ids))])


__all__ = ["CharAutomaton", "TEXT_NUMBER", "TextNumberGrammar", "TextNumberPredictor", "is_text_number_spec",
           "mantissa_digits"]
