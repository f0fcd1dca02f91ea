"""onnxruntime sessions for a model bundle, and the KV-cached decoding loop over them.

Text in, one `TextPrediction` (median, p10, p90 per objective) out. What is hard:

- **Encode once, decode many.** regress-lm copies the encoder memory once per sample and re-runs the
  whole decoder prefix at every step (REGRESS_LM_FACTS §4.1). Here the encoder graph runs once per
  batch of inputs and already returns the decoder's cross-attention K/V; each decoder step is one call
  of `decoder_step.onnx` for all samples of an input, with the self-attention K/V cache carried from
  step to step and the cross K/V passed once per input (the graph broadcasts them over the samples,
  never tiled here). Samples whose tokens so far are identical are run as one row (every sample starts
  from BOS, and a confident model keeps many samples on few prefixes): measured on a random
  default-sized model, 114 decoder rows instead of 224 for 32 samples x 7 steps, more saved on a trained
  one. The encoder is most of the cost (~80 % of one int8 prediction at 512 tokens); see
  benchmarks/decode_speed.py.
- **Padding must not change a number.** Inputs are right-padded to the longest of their batch, and
  keys that are padding are masked (the mask is `id != pad_id`, exactly regress-lm's, so a real token
  equal to the pad id is masked as regress-lm masks it). After the encoder, each input's cross K/V are
  cut back to its own length before decoding, so the decoder never sees its batch-mates' padding.
  What is left, the encoder's summation order over zero-weight padded keys, moves logits by ~1e-7
  (FACTS §3.3); texts of similar length are batched together to keep padding (and its cost) small.
- **Same text + seed -> same numbers, whatever else is in the batch.** The language server caches a
  prediction by (bundle, text, samples, seed) and batches whatever regions happen to be stale, so an
  input's samples must not depend on its batch-mates. Each input is therefore decoded by its own
  `decoding.sample_numbers` call (n_inputs=1) with its own `default_rng(seed)` stream; only the
  encoder is batched. This costs a few extra decoder calls per batch (~0.1 ms each), not extra maths:
  the per-input cross-attention work is the same either way. And only a float encoder is batched:
  onnxruntime's dynamic int8 (`DynamicQuantizeLinear`) picks one activation scale per tensor, over
  every text and padding position of the batch, so an int8 encoder's output for a text moved with its
  batch-mates (the default model: one test row's median 23.7 MB alone, 28.3 MB among ten). An int8
  encoder therefore runs once per text, unpadded. The decoder is safe either way: its rows are one
  input's own sample prefixes.
- **The empty text.** "" has zero tokens; the graphs turn a fully masked attention row into zeros,
  as torch does (FACTS §3.3), so the empty text decodes like any other, from a length-0 memory.
- **Threads.** Spin-waiting is off for both sessions (`session.intra_op.allow_spinning = "0"`): the
  encoder and decoder sessions each own a thread pool, and with spinning on, the idle pool burns the
  cores the busy one needs (a prototype with two sessions on two cores ran at half speed). The intra-op
  thread count is configurable; by default onnxruntime uses one thread per physical core.
- **Devices.** `device="gpu"` asks for onnxruntime's CUDA provider, which exists only in the
  `onnxruntime-gpu` package. If it is not there we fail with a message that names both fixes, never
  fall back silently: a user who asked for the GPU and gets the CPU would not know why it is slow.
  The CUDA path is deliberately thin (same graphs, same numpy feeds) and untested here: no CI machine
  has a GPU.

The bundle is loaded and every file's sha256 checked by `perfhint.bundle.load_bundle`; the graph bytes
given to onnxruntime are the ones that were hashed (read once, checked, then handed over as bytes), so a
file swapped after the check is never run. Never imports torch.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from perfhint import calibration
from perfhint.bundle import REEXPORT, Bundle, BundleError, Manifest, Metric, load_bundle
from perfhint.decoding import ObjectiveSummary, decode_samples, sample_numbers, summarise
from perfhint.encoder_vocab import EncoderVocab
from perfhint.input_template import region_of_text
from perfhint.numbers import DecoderCodec, Value, codec_from_spec
from perfhint.predict import Metric as PredictMetric
from perfhint.predict import bundle_metrics, metrics_for

DEVICES = ("cpu", "gpu")
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
ENCODER = "encoder"
DECODER_STEP = "decoder_step"

ENCODER_INPUTS = ("input_ids", "attention_mask")
ENCODER_OUTPUTS = ("memory", "cross_k", "cross_v")
DECODER_INPUTS = ("token", "position", "past_k", "past_v", "cross_k", "cross_v", "memory_mask")
DECODER_OUTPUTS = ("logits", "present_k", "present_v")

DEFAULT_SAMPLES = 32
MAX_BATCH_INPUTS = 16  # inputs per encoder call
# Encoder attention scores are [batch, heads, length, length] floats: bound the batch by sum(length^2)
# so a batch of long inputs cannot take gigabytes (2 x 2048^2 x 8 heads x 4 bytes = 268 MB at most).
MAX_BATCH_SQUARED_TOKENS = 2 * 2048 * 2048
# Inputs share a batch only while the longest is at most this much longer than the shortest (ratio
# plus a small absolute slack for short texts, where per-call overhead dominates the padded work).
BATCH_LENGTH_RATIO = 1.25
BATCH_LENGTH_SLACK = 16


class RuntimeSetupError(RuntimeError):
    """The bundle's graphs cannot be run here (wrong device, a graph that breaks the contract); names the fix."""


class DeviceUnavailable(RuntimeSetupError):
    """device="gpu" was asked for, but this onnxruntime has no working CUDA provider."""


@dataclass(frozen=True)
class TextPrediction:
    """One text's prediction: one summary per objective (manifest `metrics` order).

    `n_tokens` counts the text's encoder tokens before truncation; `truncated` says the model saw only
    the first max_input_len of them. `greedy` holds the argmax decode's values (floats, NaN/±inf or
    "INVALID") when asked for, else None. With `return_token_ids`, `token_ids` holds the sampled ids
    [samples, decode_len] and `greedy_token_ids` the argmax path [decode_len] (if greedy), else None.
    """

    objectives: list[ObjectiveSummary]
    n_tokens: int
    truncated: bool
    greedy: list[Value] | None = None
    token_ids: np.ndarray | None = field(default=None, compare=False)
    greedy_token_ids: np.ndarray | None = field(default=None, compare=False)


# ----------------------------------------------------------------------------------------------- sessions


def select_providers(device: str, available: Sequence[str] | None = None) -> list[str]:
    """onnxruntime execution providers for `device`, most preferred first; raises if it cannot be served."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return [CPU_PROVIDER]
    available = list(ort.get_available_providers() if available is None else available)
    if CUDA_PROVIDER not in available:
        raise DeviceUnavailable(
            f"device 'gpu' needs onnxruntime's {CUDA_PROVIDER}, which this onnxruntime {ort.__version__} does not "
            f"have (it has {', '.join(available) or 'none'}); install onnxruntime-gpu "
            f"(pip uninstall onnxruntime && pip install onnxruntime-gpu), or use device 'cpu' "
            f"(perfhint.runtimeDevice = cpu)")
    return [CUDA_PROVIDER, CPU_PROVIDER]


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """Sequential execution, all graph optimisations, no spin-waiting, `threads` intra-op threads (None: cores)."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive int or None (one per physical core), got {threads!r}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default, one thread per physical core
    options.inter_op_num_threads = 1  # sequential execution never uses the inter-op pool
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; shape-inference warnings are not actionable for users
    return options


def _open_session(graph_bytes: bytes, name: str, options: ort.SessionOptions, providers: list[str]
                  ) -> ort.InferenceSession:
    try:
        session = ort.InferenceSession(graph_bytes, options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RuntimeSetupError(
            f"onnxruntime {ort.__version__} cannot load {name}: {reason}; re-export the bundle with "
            f"`perfhint export` (or upgrade onnxruntime if the bundle was made by a newer one)") from None
    if providers[0] == CUDA_PROVIDER and CUDA_PROVIDER not in session.get_providers():
        raise DeviceUnavailable(
            f"onnxruntime has {CUDA_PROVIDER} but could not start it for {name} (CUDA or cuDNN libraries missing "
            f"or not matching onnxruntime-gpu {ort.__version__}); fix the CUDA install, or use device 'cpu' "
            f"(perfhint.runtimeDevice = cpu)")
    return session


def _check_io(session: ort.InferenceSession, name: str, inputs: Sequence[str], outputs: Sequence[str]) -> None:
    have_inputs = [item.name for item in session.get_inputs()]
    have_outputs = [item.name for item in session.get_outputs()]
    if sorted(have_inputs) != sorted(inputs) or not set(outputs) <= set(have_outputs):
        raise RuntimeSetupError(
            f"{name} has inputs {have_inputs} and outputs {have_outputs}; this perfhint runs graphs with inputs "
            f"{list(inputs)} and outputs {list(outputs)}. Re-export the bundle with this version's `perfhint export`")


# ----------------------------------------------------------------------------------------------- predictor


@dataclass(frozen=True)
class _Encoded:
    """One text's encoder input: the first max_input_len ids, and the untruncated count."""

    ids: np.ndarray  # int64 [length]
    n_tokens: int
    truncated: bool


class Predictor:
    """A bundle's two graphs in onnxruntime, with its tokenizer and number codec.

    Build it with `Predictor.from_bundle_path(path)` or `Predictor(load_bundle(path))`. Not thread-safe:
    use one Predictor per thread (the engine keeps one on its worker thread).
    """

    def __new__(cls, bundle: Bundle, **options) -> "Predictor":
        # Bundles of numbers written as text (an HF seq2seq model) decode differently: text_numbers.py.
        if cls is Predictor and bundle.manifest.codec.decoder_tokenizer.get("type") == "text_number":
            from perfhint.text_numbers import TextNumberPredictor
            cls = TextNumberPredictor
        return super().__new__(cls)

    def __init__(self, bundle: Bundle, *, device: str = "cpu", threads: int | None = None,
                 share_prefixes: bool = True) -> None:
        self.bundle = bundle
        self.share_prefixes = share_prefixes  # decode samples with identical prefixes once (see _DecoderStep)
        self.device = device
        self.threads = threads
        manifest = bundle.manifest
        self.bundle_sha256 = bundle.sha256
        self.metrics: tuple[Metric, ...] = manifest.metrics
        self.max_input_len = manifest.max_input_len
        try:
            self.codec: DecoderCodec = codec_from_spec(manifest.codec.decoder_tokenizer, manifest.codec.max_num_objs)
            self.encoder_vocab = EncoderVocab(manifest.encoder_tokenizer.kind,
                                              _verified_bytes(bundle.tokenizer_path, manifest.encoder_tokenizer.sha256),
                                              pad_id=manifest.encoder_tokenizer.pad_id, source=str(bundle.tokenizer_path))
        except ValueError as error:  # EncoderVocabError is a ValueError, so are the codec's spec errors
            raise RuntimeSetupError(f"the bundle at {bundle.path} cannot be used: {error}; {REEXPORT}") from None
        self.pad_id = self.encoder_vocab.pad_id
        providers = select_providers(device)
        options = session_options(threads)
        self.providers = providers
        graphs = manifest.graphs
        self.encoder = _open_session(_verified_bytes(bundle.encoder_path, graphs[ENCODER].sha256), ENCODER,
                                     options, providers)
        self.decoder = _open_session(_verified_bytes(bundle.decoder_step_path, graphs[DECODER_STEP].sha256),
                                     DECODER_STEP, options, providers)
        _check_io(self.encoder, ENCODER, ENCODER_INPUTS, ENCODER_OUTPUTS)
        _check_io(self.decoder, DECODER_STEP, DECODER_INPUTS, DECODER_OUTPUTS)
        self._cache_shape = self._decoder_cache_shape(manifest)
        # Observability, cumulative: wall and process CPU seconds per graph (CPU time is what a loaded machine
        # does not inflate), calls, and decoder rows actually run (see _DecoderStep's prefix sharing).
        self.timings: dict[str, float] = dict.fromkeys(
            ("encoder_s", "encoder_cpu_s", "encoder_calls", "decoder_s", "decoder_cpu_s", "decoder_calls",
             "decoder_rows"), 0)

    @classmethod
    def from_bundle_path(cls, path: str | Path, *, device: str = "cpu", threads: int | None = None,
                         share_prefixes: bool = True) -> "Predictor":
        return cls(load_bundle(path), device=device, threads=threads, share_prefixes=share_prefixes)

    def __repr__(self) -> str:
        name = self.bundle.manifest.model.name
        return f"Predictor({name!r}, device={self.device!r}, threads={self.threads}, bundle_sha256={self.bundle_sha256[:12]})"

    def _decoder_cache_shape(self, manifest: Manifest) -> tuple[int, int, int]:
        """(decoder layers, heads, head_dim) of the KV cache: static dims of `past_k`, else the manifest."""
        past_k = next(item for item in self.decoder.get_inputs() if item.name == "past_k")
        dims = past_k.shape
        static = [dims[index] if isinstance(dims[index], int) else None for index in (0, 2, 4)]
        if None in static:
            architecture = manifest.architecture
            try:
                d_model = int(architecture["d_model"])
                heads = int(architecture["decoder_nhead"])
                static = [int(architecture["num_decoder_layers"]), heads, d_model // heads]
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                raise RuntimeSetupError(
                    f"decoder_step.onnx past_k has shape {dims} with symbolic layers/heads/head_dim and the manifest's "
                    f"architecture does not give them; re-export the bundle with `perfhint export`") from None
        return static[0], static[1], static[2]

    # Tokenizing ------------------------------------------------------------------------------------

    def encode_text(self, text: str) -> _Encoded:
        ids = self.encoder_vocab.encode(text)
        kept = ids[: self.max_input_len]
        return _Encoded(np.asarray(kept, dtype=np.int64), len(ids), len(ids) > self.max_input_len)

    @property
    def batch_encoder(self) -> bool:
        """Whether texts may share an encoder call. A dynamic int8 encoder quantizes activations with one
        scale over the whole batch, so only a float one may batch texts without their numbers depending on
        their batch-mates (module docstring)."""
        return self.bundle.manifest.graphs[ENCODER].precision != "int8"

    # Predicting ------------------------------------------------------------------------------------

    def predict_texts(self, texts: Sequence[str], *, samples: int = DEFAULT_SAMPLES, seed: int = 0,
                      temperature: float = 1.0, greedy: bool = False, return_token_ids: bool = False,
                      regions: Sequence[str | None] | None = None) -> list[TextPrediction]:
        """One TextPrediction per text, in order. See the module docstring for what is guaranteed.

        `regions` gives each text's region as `language/region_kind` when the caller knows it; None (or
        a None entry) reads it from the text's perfhint header. It picks the objectives decoded as costs
        (numbers >= 0) and the calibration, so callers of raw-template bundles (regress-lm checkpoints,
        whose text is the code alone) must pass it or get the unconstrained grammar."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"predict_texts takes a list of strings, got {type(texts).__name__}; "
                            f"wrap a single text as [text]")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] is {type(text).__name__}, not str; pass the model input text")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an int >= 1, got {samples!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if not (isinstance(temperature, (int, float)) and temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a positive finite number, got {temperature!r}; "
                             f"for the argmax use greedy=True")
        if regions is not None and (isinstance(regions, str) or len(regions) != len(texts)):
            raise ValueError(f"regions must be a list with one entry per text ({len(texts)}), got {regions!r:.80}")
        encoded = [self.encode_text(text) for text in texts]
        results: list[TextPrediction | None] = [None] * len(texts)
        lengths = [len(item.ids) for item in encoded]
        batches = plan_batches(lengths) if self.batch_encoder else [[index] for index in range(len(texts))]
        for batch in batches:
            cross = self._encode_batch([encoded[index].ids for index in batch])
            for position, index in enumerate(batch):
                length = len(encoded[index].ids)
                input_cross = _input_cross(cross, position, length)
                mask = (encoded[index].ids != self.pad_id).astype(np.int64)[None, :]
                region = regions[index] if regions is not None and regions[index] is not None \
                    else region_of_text(texts[index])  # None for raw text
                costs = self.objectives_asked(region)
                token_ids = self._decode(input_cross, mask, samples, seed=seed, temperature=temperature, greedy=False,
                                         costs=costs)
                greedy_ids = greedy_values = None
                if greedy:
                    greedy_ids = self._decode(input_cross, mask, 1, seed=seed, temperature=temperature, greedy=True,
                                              costs=costs)
                    greedy_values = decode_samples(self.codec, greedy_ids)[0][0]
                results[index] = TextPrediction(
                    objectives=calibration.apply(summarise(self.codec, token_ids)[0], self.bundle.manifest.calibration,
                                                 region),
                    n_tokens=encoded[index].n_tokens,
                    truncated=encoded[index].truncated,
                    greedy=greedy_values,
                    token_ids=token_ids[0] if return_token_ids else None,
                    greedy_token_ids=greedy_ids[0, 0] if return_token_ids and greedy_ids is not None else None,
                )
        return [result for result in results if result is not None]

    def objectives_asked(self, region: str | None) -> tuple[int, ...]:
        """The objectives a region asks for (memory for code, latency for Triton kernels), by its kind and the
        manifest's metric units; () for None (raw text, no header). `region` is `language/region_kind`, as
        input_template.region_of_text reads it from a perfhint-v1/v2 text. Those objectives are decoded as
        costs, numbers >= 0 (decoding.py); the others may still be NaN, as training marked them. Only
        metrics in bytes or seconds count: a unitless metric (a regress-lm sidecar without units) may be a
        log or a difference, so it keeps the full grammar."""
        if region is None:
            return ()
        if region.count("/") != 1:
            raise ValueError(f"region must be 'language/region_kind' (e.g. 'python/function'), got {region!r}")
        kind = region.split("/", 1)[1]
        return tuple(metric.index for metric in metrics_for(kind, self._metric_views)
                     if metric.index < self.codec.max_num_objs and metric.dimension is not None)

    @functools.cached_property
    def _metric_views(self) -> tuple[PredictMetric, ...]:
        """predict.Metric views of the manifest's metrics, built once (objectives_asked runs per text)."""
        return bundle_metrics(self.bundle)

    def teacher_forced_logits(self, text: str, token_ids: Sequence[int]) -> np.ndarray:
        """float32 [len(token_ids), V]: row t is the decoder's logits for token t given BOS + token_ids[:t].

        For checking a decode against a reference (regress-lm's teacher-forced logits, an fp32 bundle)
        and for scoring a given number; no grammar mask is applied.
        """
        token_ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if not 1 <= len(token_ids) <= self.codec.decode_len:
            raise ValueError(f"token_ids must hold 1..{self.codec.decode_len} (decode_len) ids, got {len(token_ids)}")
        encoded = self.encode_text(text)
        input_cross = _input_cross(self._encode_batch([encoded.ids]), 0, len(encoded.ids))
        step = _DecoderStep(self, input_cross, (encoded.ids != self.pad_id).astype(np.int64)[None, :], 1)
        previous = np.concatenate([[0], token_ids[:-1]]).astype(np.int64)  # BOS (<pad>, id 0), then the path
        return np.stack([step(previous[position : position + 1], position)[0] for position in range(len(token_ids))])

    def _encode_batch(self, id_rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """cross_k, cross_v [layers, batch, heads, longest, head_dim] for right-padded inputs."""
        longest = max(len(ids) for ids in id_rows)
        input_ids = np.full((len(id_rows), longest), self.pad_id, dtype=np.int64)
        for row, ids in enumerate(id_rows):
            input_ids[row, : len(ids)] = ids
        attention_mask = (input_ids != self.pad_id).astype(np.int64)
        started, started_cpu = time.perf_counter(), time.process_time()
        cross_k, cross_v = self.encoder.run(["cross_k", "cross_v"],
                                            {"input_ids": input_ids, "attention_mask": attention_mask})
        self.timings["encoder_s"] += time.perf_counter() - started
        self.timings["encoder_cpu_s"] += time.process_time() - started_cpu
        self.timings["encoder_calls"] += 1
        return cross_k, cross_v

    def _decode(self, cross: tuple[np.ndarray, np.ndarray], mask: np.ndarray, samples: int, *, seed: int,
                temperature: float, greedy: bool, costs: Sequence[int] = ()) -> np.ndarray:
        """Token ids [1, samples, decode_len] for one input."""
        step = _DecoderStep(self, cross, mask, samples, share_prefixes=self.share_prefixes)
        return sample_numbers(step, self.codec, 1, samples, temperature=temperature, seed=seed, greedy=greedy,
                              costs=costs)


class _DecoderStep:
    """`decoding.StepFn` over decoder_step.onnx for one input, with the self-attention KV cache.

    With `share_prefixes`, samples whose tokens so far are identical are one decoder row: they have
    the same cache and the same next logits. All samples start from BOS, so step 0 runs 1 row instead
    of `rows`, and a confident model keeps many samples on few prefixes for several steps (IEEE: at
    most 2, 4, 40 distinct prefixes after 1, 2, 3 tokens). The cache rows are re-gathered whenever a
    prefix splits; that is a copy of a few kB.
    """

    def __init__(self, predictor: Predictor, cross: tuple[np.ndarray, np.ndarray], mask: np.ndarray, rows: int,
                 share_prefixes: bool = True) -> None:
        layers, heads, head_dim = predictor._cache_shape
        self.predictor = predictor
        self.rows = rows
        self.share_prefixes = share_prefixes
        cache_rows = 1 if share_prefixes else rows
        self.prefix_of_row = np.zeros(rows, dtype=np.int64)  # row -> index of its prefix in the cache
        self.feeds = {
            "past_k": np.zeros((layers, cache_rows, heads, 0, head_dim), dtype=np.float32),
            "past_v": np.zeros((layers, cache_rows, heads, 0, head_dim), dtype=np.float32),
            "cross_k": cross[0],
            "cross_v": cross[1],
            "memory_mask": mask,
        }

    def __call__(self, prev_tokens: np.ndarray, position: int) -> np.ndarray:
        prev_tokens = np.asarray(prev_tokens, dtype=np.int64)
        if self.share_prefixes:
            # A row's new prefix is (its old prefix, the token it was just fed): one decoder row per distinct pair.
            vocab = int(prev_tokens.max()) + 1
            pairs, first_row, self.prefix_of_row = np.unique(self.prefix_of_row * vocab + prev_tokens,
                                                             return_index=True, return_inverse=True)
            parents = pairs // vocab
            if position > 0 and not np.array_equal(parents, np.arange(self.feeds["past_k"].shape[1])):
                self.feeds["past_k"] = np.take(self.feeds["past_k"], parents, axis=1)
                self.feeds["past_v"] = np.take(self.feeds["past_v"], parents, axis=1)
            tokens = prev_tokens[first_row]
        else:
            tokens = prev_tokens
        self.feeds["token"] = np.ascontiguousarray(tokens)
        self.feeds["position"] = np.array([position], dtype=np.int64)
        started, started_cpu = time.perf_counter(), time.process_time()
        logits, present_k, present_v = self.predictor.decoder.run(list(DECODER_OUTPUTS), self.feeds)
        timings = self.predictor.timings
        timings["decoder_s"] += time.perf_counter() - started
        timings["decoder_cpu_s"] += time.process_time() - started_cpu
        timings["decoder_calls"] += 1
        timings["decoder_rows"] += len(tokens)
        self.feeds["past_k"], self.feeds["past_v"] = present_k, present_v
        return logits[self.prefix_of_row] if self.share_prefixes else logits


def _input_cross(cross: tuple[np.ndarray, np.ndarray], row: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """One input's cross K/V [layers, 1, heads, length, head_dim], cut back to its own length (contiguous)."""
    return tuple(np.ascontiguousarray(part[:, row : row + 1, :, :length]) for part in cross)  # type: ignore[return-value]


def plan_batches(lengths: Sequence[int]) -> list[list[int]]:
    """Indices of `lengths` grouped into encoder batches of similar length, shortest first.

    Sorting by length and cutting where the longest would exceed BATCH_LENGTH_RATIO x the shortest
    (+ BATCH_LENGTH_SLACK) bounds the padded work; MAX_BATCH_INPUTS and MAX_BATCH_SQUARED_TOKENS bound
    the memory of one call.
    """
    order = sorted(range(len(lengths)), key=lambda index: (lengths[index], index))
    batches: list[list[int]] = []
    for index in order:
        length = lengths[index]
        if batches:
            batch = batches[-1]
            shortest = lengths[batch[0]]
            fits = (len(batch) < MAX_BATCH_INPUTS
                    and length <= shortest * BATCH_LENGTH_RATIO + BATCH_LENGTH_SLACK
                    and (len(batch) + 1) * length * length <= MAX_BATCH_SQUARED_TOKENS)
            if fits:
                batch.append(index)
                continue
        batches.append([index])
    return batches


# ----------------------------------------------------------------------------------------------- bundle access


def _verified_bytes(path: Path, sha256: str) -> bytes:
    """The file's bytes, checked again against the manifest: what onnxruntime runs is what was hashed."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise BundleError(f"cannot read {path}: {error}; {REEXPORT}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BundleError(f"refusing the model bundle at {Path(path).parent}: {Path(path).name} changed after the "
                          f"bundle was checked (its sha256 no longer matches manifest.json); {REEXPORT}")
    return data
