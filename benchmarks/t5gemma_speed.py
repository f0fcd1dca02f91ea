"""What a regress-lm T5Gemma-2-270M RLM costs per region in the editor, on CPU: 512 / 2048 / 8192 tokens, fp32 vs int8.

The model is regress-lm's published shape (REGRESS_LM_FACTS §5) with random weights (its speed, not its
accuracy): a T5Gemma 2 encoder of Gemma 3 270M's sizes as we know them from the public config — vocab
262,144, hidden 640, 18 layers, 4 query heads / 1 key-value head of 256, MLP 2048 (GeGLU), sliding window
512 on 5 of every 6 layers, query_pre_attn_scalar 256, RoPE theta 1e6 global / 1e4 local, no attention
soft-capping; 268M parameters, 168M of them the embedding — then regress-lm's RLM decoder: 12 layers,
d_model 640, 8 heads, FFN 2560, decoder vocabulary IEEE with 6 mantissa digits + NaN (14 tokens, 9 per
number). No hub access: the config is built here and the weights are transformers' random init.

"Per region" is what the language server does for one stale region: encode the text once
(`encoder.onnx` -> cross K/V), then sample 32 numbers with the KV-cached `decoder_step.onnx`, through
the runtime's own step (`runtime._DecoderStep`, prefix sharing on) and grammar loop
(`decoding.sample_numbers`), with the runtime's session options. Encoder and decoder are timed
separately; every number is the median of --runs runs after one warm-up.

What is hard: this runs on a 2-core machine shared with other engineers, so the load average is printed
next to every row, and the machine's matmul peak too. Eager attention materialises [heads, L, L] scores
for every layer, sliding ones included (the window is a mask), so the encoder grows as L^2: at 8192
tokens one encoder call is tens of TFLOPs. `--max-fp32-length` skips fp32 above a length (its time is then
extrapolated from the measured lengths, labelled as such) when the machine cannot afford it.

Usage:
    python benchmarks/t5gemma_speed.py [--lengths 512 2048 8192] [--runs 3] [--threads 2] [--max-fp32-length N]
Graphs are exported once (needs perfhint[export,hf]) into .work/bench-t5gemma/ (about 1.5 GB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".work" / "bench-t5gemma"
SAMPLES = 32
SEED = 0
TEXT_CONFIG = dict(vocab_size=262_144, hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
                   query_pre_attn_scalar=256, max_position_embeddings=32_768, rope_theta=1_000_000.0,
                   rope_local_base_freq=10_000.0, attn_logit_softcapping=None, final_logit_softcapping=None,
                   pad_token_id=0, eos_token_id=1, bos_token_id=2)
DECODER = dict(num_decoder_layers=12, decoder_dim_feedforward=4 * 640)
DECODER_TOKENIZER = {"type": "ieee", "num_mantissa_digits": 6, "special_values": ["NAN"]}


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def build_graphs(max_input_len: int) -> dict[str, Path]:
    """fp32 and int8 graphs of the random 270M model, exported once and kept in WORK."""
    graphs = {precision: {role: WORK / precision / f"{role}.onnx" for role in ("encoder", "decoder_step")}
              for precision in ("fp32", "int8")}
    if all(path.is_file() for by_role in graphs.values() for path in by_role.values()):
        return graphs
    import torch
    import transformers

    from perfhint.numbers import codec_from_spec
    from perfhint_export import quantize, t5gemma

    vision = dict(model_type="siglip_vision_model", hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                  num_attention_heads=2, image_size=28, patch_size=14)  # regress-lm drops the vision tower
    config = transformers.T5Gemma2Config(encoder=dict(text_config=dict(TEXT_CONFIG), vision_config=vision),
                                         decoder=dict(TEXT_CONFIG), vocab_size=TEXT_CONFIG["vocab_size"])
    directory = WORK / "hf-config"
    config.save_pretrained(str(directory))
    spec = t5gemma.load_hf_encoder_spec(directory)
    codec = codec_from_spec(DECODER_TOKENIZER)
    rlm_config = t5gemma.rlm_config_for(spec, encoder_vocab_size=TEXT_CONFIG["vocab_size"],
                                        decoder_vocab_size=codec.vocab_size, decode_len=codec.decode_len,
                                        max_input_len=max_input_len, encoder_pad_id=0, **DECODER)
    torch.manual_seed(0)
    started = time.perf_counter()
    model = t5gemma.fresh_model(spec, rlm_config)
    encoder_params = sum(p.numel() for p in model.encoder.parameters())
    print(f"# built: encoder {encoder_params / 1e6:.0f}M parameters, RLM total "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M ({time.perf_counter() - started:.0f} s)")
    started = time.perf_counter()
    fp32 = t5gemma.export_graphs(model, WORK / "fp32")
    print(f"# exported fp32 graphs in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    quantize.quantize_graphs(fp32, WORK / "int8")
    print(f"# quantized int8 graphs in {time.perf_counter() - started:.0f} s")
    return graphs


def measure(graphs: dict[str, Path], length: int, runs: int, threads: int) -> tuple[float, float, float]:
    """(encoder ms, decode ms for 32 samples) medians for one input of `length` tokens, and the peak RSS (GiB)
    of this process; run in a fresh child process per row (see `measure_in_child`) so the RSS is the row's own."""
    import resource

    import onnxruntime as ort

    from perfhint.decoding import sample_numbers
    from perfhint.numbers import codec_from_spec
    from perfhint.runtime import _DecoderStep, session_options

    options = session_options(threads)
    encoder = ort.InferenceSession(str(graphs["encoder"]), options, providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(graphs["decoder_step"]), options, providers=["CPUExecutionProvider"])
    codec = codec_from_spec(DECODER_TOKENIZER)
    past_k = next(item for item in decoder.get_inputs() if item.name == "past_k").shape
    fake = types.SimpleNamespace(decoder=decoder, _cache_shape=(past_k[0], past_k[2], past_k[4]),
                                 timings=dict.fromkeys(("decoder_s", "decoder_cpu_s", "decoder_calls", "decoder_rows"), 0))
    ids = np.random.default_rng(length).integers(3, TEXT_CONFIG["vocab_size"], size=(1, length)).astype(np.int64)
    mask = np.ones_like(ids)
    encoder_ms, decode_ms = [], []
    for run in range(runs + 1):
        started = time.perf_counter()
        cross_k, cross_v = encoder.run(["cross_k", "cross_v"], {"input_ids": ids, "attention_mask": mask})
        encoded = time.perf_counter()
        step = _DecoderStep(fake, (cross_k, cross_v), mask, SAMPLES, share_prefixes=True)
        sample_numbers(step, codec, 1, SAMPLES, seed=SEED + run)
        finished = time.perf_counter()
        if run:  # the first run is the warm-up
            encoder_ms.append(1e3 * (encoded - started))
            decode_ms.append(1e3 * (finished - encoded))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return statistics.median(encoder_ms), statistics.median(decode_ms), rss


def _child(graphs: dict[str, Path], length: int, runs: int, threads: int, results) -> None:
    results.put(measure(graphs, length, runs, threads))


def measure_in_child(graphs: dict[str, Path], length: int, runs: int, threads: int) -> tuple[float, float, float]:
    """`measure` in a spawned process: sessions, arenas and peak memory of one row never leak into the next."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_child, args=(graphs, length, runs, threads, results))
    process.start()
    measured = results.get()
    process.join()
    return measured


def matmul_peak(threads: int) -> float:
    """fp32 GFLOP/s of a 2048^3 matmul in onnxruntime-free numpy (BLAS), as a yardstick for this machine."""
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    started = time.perf_counter()
    for _ in range(3):
        a @ a
    return 3 * 2 * 2048**3 / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["int8", "fp32"], choices=["fp32", "int8"])
    parser.add_argument("--max-fp32-length", type=int, default=None,
                        help="skip fp32 above this length (the table extrapolates it, labelled)")
    args = parser.parse_args()
    graphs = build_graphs(max(args.lengths))
    sizes = {precision: sum(path.stat().st_size for path in by_role.values()) / 2**20
             for precision, by_role in graphs.items()}
    print(f"# machine: {os.cpu_count()} cores, numpy matmul peak {matmul_peak(args.threads):.0f} GFLOP/s; "
          f"onnxruntime {args.threads} intra-op thread(s); {SAMPLES} samples per region; median of {args.runs} runs")
    print(f"# graph sizes: fp32 {sizes['fp32']:.0f} MiB, int8 {sizes['int8']:.0f} MiB")
    print("| precision | tokens | encoder ms | decode ms (32 samples) | per region ms | max RSS GiB | load (1/5/15 min) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    measured: dict[tuple[str, int], float] = {}
    for precision in args.precisions:
        for length in args.lengths:
            if precision == "fp32" and args.max_fp32_length and length > args.max_fp32_length:
                continue
            before = load_average()
            encoder_ms, decode_ms, rss = measure_in_child(graphs[precision], length, args.runs, args.threads)
            measured[precision, length] = encoder_ms + decode_ms
            print(f"| {precision} | {length} | {encoder_ms:.0f} | {decode_ms:.0f} | {encoder_ms + decode_ms:.0f} | "
                  f"{rss:.1f} | {before} -> {load_average()} |", flush=True)
    for length in args.lengths:  # fp32 rows that were skipped: extrapolate from fp32/int8 at measured lengths
        if ("fp32", length) in measured or ("int8", length) not in measured:
            continue
        ratios = [measured["fp32", other] / measured["int8", other] for other in args.lengths
                  if ("fp32", other) in measured and ("int8", other) in measured]
        if ratios:
            print(f"| fp32 (extrapolated: int8 x {max(ratios):.2f}, the largest measured fp32/int8 ratio) | {length} | "
                  f"- | - | ~{measured['int8', length] * max(ratios):.0f} | - | not measured |")


if __name__ == "__main__":
    main()
