"""Constrained decoding of numbers, token by token, over an abstract decoder step.

A prediction is `decode_len` tokens (`max_num_objs` numbers back to back, no EOS). At each step the
logits are masked to the tokens the grammar allows after the tokens generated so far, so every sample
parses; the grammar is numbers.py's table `allowed[position, token]` plus its special-value lock. What
is hard:

- The model is behind a callable, `step_fn(prev_tokens, position) -> logits [rows, vocab]`, that owns the
  KV cache: it is fed BOS (id 0) at step 0 and each chosen token after it, and the last chosen token is
  never fed back (exactly `decode_len` calls). This loop knows nothing of onnxruntime, so it is tested
  with a fake step function and reused unchanged over real sessions.
- Rows are `n_inputs * n_samples` (row r belongs to input r // n_samples): samples of one input are
  independent rows sharing that input's encoder memory, which the caller repeats or broadcasts.
- Masking. regress-lm computes `mask * logits + (1 - mask) * NEG_INF` with NEG_INF = -1e7; we use
  `where(mask, logits, NEG_INF)`, the same numbers wherever the mask is 0 or 1 (and immune to a NaN
  logit on a disallowed token). Both give the same argmax and, after softmax, probabilities identical
  to float64 rounding. We then multiply the probabilities by the mask: at any sane temperature that
  changes nothing (exp(-1e7 / T) underflows to 0), and at absurd temperatures (T > ~1e4) it keeps the
  guarantee that every sample parses, where regress-lm could draw a disallowed token.
- Determinism. Sampling draws one uniform per row per step from `np.random.default_rng(seed)` and inverts
  the row's cumulative distribution, so the same (logits, seed, temperature) give the same samples on
  every machine; regress-lm's torch.multinomial stream is not reproducible here and is not a target.
- Costs are numbers >= 0. The codec lets any objective be negative or a special value (training marks
  the objective a record does not label with NaN), so a model that misreads a region can spend the
  samples of the objective the region asks for on NaN or on negative latencies (an out-of-distribution
  Triton kernel read as a memory task did both). `costs` names the objectives whose first token may be
  neither special nor `<->`; the others keep the full grammar.
- Aggregation over samples keeps special values (NaN, ±inf, "INVALID") out of the quantiles but reports
  how often they were drawn: a model that says "INVALID" for 40 % of samples is telling you something.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from perfhint.numbers import INVALID, NEG_INF, PAD_ID, DecoderCodec, Value

StepFn = Callable[[np.ndarray, int], np.ndarray]  # (prev_tokens int64 [rows], position) -> logits [rows, V]


def masked_logits(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float64 logits with disallowed tokens at NEG_INF (regress-lm's value, see the module docstring)."""
    return np.where(mask, np.asarray(logits, dtype=np.float64), NEG_INF)


def masked_probabilities(logits: np.ndarray, mask: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The distribution sampled from: softmax(masked / temperature), exactly 0 on disallowed tokens."""
    scaled = masked_logits(logits, mask) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    probabilities = np.exp(scaled) * mask
    return probabilities / probabilities.sum(axis=-1, keepdims=True)


def _check_logits(logits: np.ndarray, mask: np.ndarray, position: int) -> np.ndarray:
    logits = np.asarray(logits)
    if logits.shape != mask.shape:
        raise ValueError(
            f"step_fn returned logits of shape {logits.shape} at step {position}, expected {mask.shape} "
            "(rows = n_inputs * n_samples, vocab = the codec's vocab_size); "
            "check the decoder's output and the bundle's decoder_tokenizer"
        )
    if not np.isfinite(logits[mask]).all():
        raise ValueError(
            f"step_fn returned non-finite logits for allowed tokens at step {position}; "
            "the decoder graph is broken (re-run `perfhint export`, which checks parity)"
        )
    return logits


class CostGrammar:
    """The codec's grammar with `costs` decoded as numbers >= 0: the one rule, shared by every decoding loop.

    `allowed_mask(prefixes)` is the codec's, except that at the first token of each objective in `costs`
    the special values and `<->` are masked. The ONNX loop (`sample_numbers`) and the PyTorch reference
    loop (`perfhint_export.model.EncoderDecoder.sample`, used by `perfhint train evaluate` on checkpoints)
    both take it, so a checkpoint is scored under the rule the editor applies.
    """

    def __init__(self, codec: DecoderCodec, costs: Sequence[int] = ()) -> None:
        for objective in costs:
            if not 0 <= objective < codec.max_num_objs:
                raise ValueError(f"costs names objective {objective}, but the codec decodes {codec.max_num_objs}")
        self.codec, self.costs = codec, tuple(costs)
        self.vocab_size, self.decode_len = codec.vocab_size, codec.decode_len
        self.first_positions = frozenset(objective * codec.num_tokens_per_obj for objective in self.costs)
        self.not_a_cost = np.array([*codec.special_ids, codec.stoi["<->"]], dtype=np.int64)

    def allowed_mask(self, prefixes: np.ndarray) -> np.ndarray:
        mask = self.codec.allowed_mask(prefixes)
        if np.asarray(prefixes).shape[1] in self.first_positions:
            mask[:, self.not_a_cost] = False
        return mask

    def decode(self, ids: Sequence[int]) -> list[Value]:
        return self.codec.decode(ids)


def sample_numbers(
    step_fn: StepFn,
    codec: DecoderCodec,
    n_inputs: int,
    n_samples: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    greedy: bool = False,
    costs: Sequence[int] = (),
) -> np.ndarray:
    """Token ids int64 [n_inputs, n_samples, decode_len], each row valid under the codec's grammar.

    Objectives listed in `costs` are decoded as numbers >= 0: never a special value, never negative.

    `greedy=True` takes the argmax at every step (all samples of an input are then equal) and ignores
    `temperature` and `seed`.
    """
    if n_inputs < 1 or n_samples < 1:
        raise ValueError(f"n_inputs and n_samples must be >= 1, got {n_inputs} and {n_samples}")
    if not greedy and not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}; for argmax use greedy=True")
    n_rows = n_inputs * n_samples
    rng = np.random.default_rng(seed)
    tokens = np.zeros((n_rows, codec.decode_len), dtype=np.int64)
    prev_tokens = np.full(n_rows, PAD_ID, dtype=np.int64)  # BOS
    grammar = CostGrammar(codec, costs)
    for position in range(codec.decode_len):
        mask = grammar.allowed_mask(tokens[:, :position])
        logits = _check_logits(step_fn(prev_tokens, position), mask, position)
        if greedy:
            chosen = masked_logits(logits, mask).argmax(axis=-1)
        else:
            cumulative = np.cumsum(masked_probabilities(logits, mask, temperature), axis=-1)
            threshold = rng.random(n_rows) * cumulative[:, -1]
            # The first token whose cumulative probability exceeds the threshold; never a zero-probability one.
            chosen = (cumulative <= threshold[:, None]).sum(axis=-1)
        tokens[:, position] = chosen
        prev_tokens = tokens[:, position].copy()
    return tokens.reshape(n_inputs, n_samples, codec.decode_len)


def decode_samples(codec: DecoderCodec, token_ids: np.ndarray) -> list[list[list[Value]]]:
    """Values [n_inputs][n_samples][max_num_objs] for `sample_numbers`' output."""
    return [[codec.decode(ids) for ids in per_input] for per_input in np.asarray(token_ids)]


@dataclass(frozen=True)
class ObjectiveSummary:
    """One objective over the samples of one input. Quantiles are over finite samples only."""

    median: float | None  # None when no sample was finite
    p10: float | None
    p90: float | None
    special_fraction: float  # share of samples that were NaN, ±inf or "INVALID"
    n_samples: int
    n_finite: int


def _is_finite(value: Value) -> bool:
    if isinstance(value, str):
        if value != INVALID:
            raise ValueError(f"unexpected sample value {value!r}: samples are floats or {INVALID!r}")
        return False
    return math.isfinite(value)


def aggregate(values_per_sample: Sequence[Sequence[Value]]) -> list[ObjectiveSummary]:
    """Per-objective median, p10, p90 (np.percentile, linear) and special-value share of one input's samples."""
    if len(values_per_sample) == 0:
        raise ValueError("aggregate needs at least one sample")
    n_objs = len(values_per_sample[0])
    if any(len(values) != n_objs for values in values_per_sample):
        raise ValueError(f"every sample must have {n_objs} objective(s), as the first one does")
    n_samples = len(values_per_sample)
    summaries = []
    for obj in range(n_objs):
        finite = [float(values[obj]) for values in values_per_sample if _is_finite(values[obj])]
        if finite:
            p10, median, p90 = (float(q) for q in np.percentile(finite, [10, 50, 90]))
        else:
            p10 = median = p90 = None
        summaries.append(
            ObjectiveSummary(
                median=median,
                p10=p10,
                p90=p90,
                special_fraction=(n_samples - len(finite)) / n_samples,
                n_samples=n_samples,
                n_finite=len(finite),
            )
        )
    return summaries


def summarise(codec: DecoderCodec, token_ids: np.ndarray) -> list[list[ObjectiveSummary]]:
    """`aggregate` for every input of `sample_numbers`' output: [n_inputs][max_num_objs]."""
    return [aggregate(values) for values in decode_samples(codec, token_ids)]
