"""How long one prediction (one text, 32 samples) takes, four ways, at 128-2048 input tokens.

    (a) regress-lm's decoding in PyTorch: the memory copied once per sample, the whole decoder re-run
        over the prefix at every step, cross-attention K/V re-projected every step
        (`perfhint_export.model.EncoderDecoder.sample`, written the regress-lm way on purpose);
    (b) PyTorch with a KV cache: the export modules of onnx_graphs.py run eagerly (encoder + cross K/V
        once, one cached decoder step per token, cross K/V broadcast over the samples);
    (c) onnxruntime fp32 and (d) onnxruntime int8, both through `perfhint.runtime.Predictor`,
        i.e. the language server's own path (tokenizing and summarising included).

The model is a randomly initialised RLM of the default model's intended size (d_model 256, 6 encoder +
2 decoder layers, 8 heads, FFN 1024, 16k encoder vocabulary, IEEE default codec, max_input_len 2048):
random weights have the real model's speed, not its accuracy. Its encoder vocabulary is a word-level
`tokenizers` JSON (`t0 t1 ...`), so a text of N words is exactly N tokens.

What is hard: measuring, on a shared 2-core machine, something that can be compared. Every timing is
the median of --runs runs after a warm-up run; torch and onnxruntime get the same thread count
(torch.set_num_threads / intra_op_num_threads), 1 and 2 by default, and the load average before and
after is printed. Note (a) is generous to regress-lm: regress-lm itself always pads inputs to
max_input_len, so its real cost at every length is the 2048 column.

The encoder's FLOPs are set against a measured fp32 matmul peak (torch.mm 2048^3 at the same thread
count) to show how far from the hardware the encoder runs; the decoder split comes from the
Predictor's own per-graph timers.

Usage:
    python benchmarks/decode_speed.py [--threads 1 2] [--lengths 128 512 1024 2048] [--runs 5]
Bundles are built once (needs perfhint[export], i.e. torch) into .work/bench-decode-speed/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".work" / "bench-decode-speed"
SAMPLES = 32
SEED = 0
ENCODER_VOCAB = 16384
CONFIG = dict(encoder_vocab_size=ENCODER_VOCAB, decoder_vocab_size=13, d_model=256, num_encoder_layers=6,
              num_decoder_layers=2, decode_len=7, max_input_len=2048, encoder_pad_id=0, encoder_nhead=8,
              decoder_nhead=8, encoder_dim_feedforward=1024, decoder_dim_feedforward=1024)


# ----------------------------------------------------------------------------------------------- the model


def word_level_tokenizer() -> bytes:
    """tokenizer.json with `<pad>` = 0, `<unk>` = 1 and words t0..t16381: N space-separated words, N tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<unk>": 1, **{f"t{i}": i + 2 for i in range(ENCODER_VOCAB - 2)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer.to_str().encode("utf-8")


def build_bundles() -> dict[str, Path]:
    """The random default-sized model as a perfhint checkpoint plus fp32 and int8 bundles (cached in WORK)."""
    paths = {"checkpoint": WORK / "random-default.safetensors", "fp32": WORK / "fp32", "int8": WORK / "int8"}
    if all(path.exists() for path in paths.values()):
        return paths
    import torch

    from perfhint.encoder_vocab import HF_TOKENIZERS, EncoderVocab
    from perfhint_export.bundle_writer import write_bundle
    from perfhint_export.checkpoint import load_checkpoint, save_perfhint_checkpoint
    from perfhint_export.config import RLMConfig
    from perfhint_export.model import EncoderDecoder
    from perfhint_export.sidecar import Metric

    WORK.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = EncoderDecoder(RLMConfig(**CONFIG)).eval()
    vocab = EncoderVocab(HF_TOKENIZERS, word_level_tokenizer(), pad_id=0, source="word-level t0..t16381")
    save_perfhint_checkpoint(paths["checkpoint"], model, decoder_tokenizer={"type": "ieee"}, max_num_objs=1,
                             metrics=[Metric("value", "")], encoder_vocab=vocab)
    loaded = load_checkpoint(paths["checkpoint"])
    for precision in ("fp32", "int8"):
        started = time.perf_counter()
        write_bundle(loaded, paths[precision], precision=precision, name="random-default-size", purpose="test",
                     probe_count=4)
        print(f"# built {precision} bundle in {time.perf_counter() - started:.0f} s")
    return paths


def text_of(length: int) -> str:
    rng = np.random.default_rng(length)
    return " ".join(f"t{i}" for i in rng.integers(0, ENCODER_VOCAB - 2, size=length))


# ----------------------------------------------------------------------------------------------- the four ways


class TorchWays:
    """(a) and (b) on the checkpoint's weights, in eager PyTorch."""

    def __init__(self, checkpoint: Path) -> None:
        from perfhint_export.checkpoint import load_checkpoint
        from perfhint_export.onnx_graphs import DecoderStepGraph, EncoderGraph

        loaded = load_checkpoint(checkpoint)
        self.model = loaded.model.eval()
        self.codec = loaded.codec
        self.config = loaded.config
        self.vocab = loaded.encoder_vocab
        state = self.model.state_dict()
        self.encoder = EncoderGraph(state, self.config).eval()
        self.decoder = DecoderStepGraph(state, self.config).eval()

    def ids(self, text: str):
        import torch

        return torch.tensor([self.vocab.input_ids(text, self.config.max_input_len)], dtype=torch.long)

    def regress_lm(self, text: str) -> None:
        import torch

        self.model.sample(self.ids(text), self.codec, SAMPLES, generator=torch.Generator().manual_seed(SEED))

    def kv_cache(self, text: str) -> None:
        import torch

        from perfhint.decoding import sample_numbers

        ids = self.ids(text)
        mask = (ids != self.config.encoder_pad_id).long()
        config = self.config
        with torch.no_grad():
            _, cross_k, cross_v = self.encoder(ids, mask)
            empty = torch.zeros(config.num_decoder_layers, SAMPLES, config.decoder_nhead, 0, config.decoder_head_dim)
            cache = {"k": empty, "v": empty}

            def step(prev_tokens: np.ndarray, position: int) -> np.ndarray:
                logits, cache["k"], cache["v"] = self.decoder(
                    torch.from_numpy(prev_tokens), torch.tensor([position]), cache["k"], cache["v"], cross_k, cross_v,
                    mask)
                return logits.numpy()

            sample_numbers(step, self.codec, 1, SAMPLES, seed=SEED)


@dataclass(frozen=True)
class Timing:
    wall_ms: float  # median wall-clock time
    cpu_ms: float  # median process CPU time (all threads): what a loaded machine does not inflate

    def __str__(self) -> str:
        return f"{self.wall_ms:.1f}/{self.cpu_ms:.1f}"


def measure(action, runs: int) -> Timing:
    action()  # warm-up: first-call allocations, onnxruntime's kernel selection
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return Timing(statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3)


def matmul_peak(threads: int, size: int = 2048, runs: int = 5) -> dict[str, float]:
    """fp32 GFLOP per CPU-second of a size^3 matmul in torch (MKL/oneDNN), numpy (OpenBLAS, in a subprocess so
    its thread count can be set) and onnxruntime (MLAS), at `threads` threads: the best is this machine's peak.
    Per CPU-second, because wall time on a loaded machine measures the other users too."""
    import subprocess
    import sys

    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    from perfhint.runtime import session_options

    flop = 2 * size**3
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    peaks = {"torch": flop / measure(lambda: torch.mm(a, b), runs).cpu_ms / 1e6}
    code = ("import numpy as np, time, statistics\n"
            f"a = np.random.rand({size}, {size}).astype(np.float32); b = a.T.copy(); a @ b\n"
            "cpu = []\n"
            f"for _ in range({runs}):\n"
            "    t = time.process_time(); a @ b; cpu.append(time.process_time() - t)\n"
            "print(statistics.median(cpu))\n")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    seconds = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout)
    peaks["numpy"] = flop / seconds / 1e9
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, [size, size]) for name in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=["CPUExecutionProvider"])
    feeds = {"a": a.numpy(), "b": b.numpy()}
    peaks["onnxruntime"] = flop / measure(lambda: session.run(None, feeds), runs).cpu_ms / 1e6
    return peaks


def encoder_gflop(length: int) -> float:
    """Multiply-adds x 2 of the encoder graph at `length` (projections, attention, FFN, cross K/V)."""
    d, ffn, layers = CONFIG["d_model"], CONFIG["encoder_dim_feedforward"], CONFIG["num_encoder_layers"]
    per_layer = 2 * (4 * length * d * d + 2 * length * d * ffn + 2 * length * length * d)
    cross_kv = 2 * (2 * CONFIG["num_decoder_layers"] * length * d * d)
    return (layers * per_layer + cross_kv) / 1e9


def load_average() -> str:  # 1, 5 and 15 minute load averages
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# ----------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 1024, 2048])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ways", default="abcd", help="subset of abcd to time")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args()

    import torch

    from perfhint.runtime import Predictor

    paths = build_bundles()
    ways = TorchWays(paths["checkpoint"]) if set(args.ways) & set("ab") else None
    sizes = {precision: sum(f.stat().st_size for f in paths[precision].glob("*.onnx")) for precision in ("fp32", "int8")}
    print(f"# load average before: {load_average()}  (cores: {os.cpu_count()})")
    results = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        predictors = {precision: Predictor.from_bundle_path(paths[precision], threads=threads)
                      for precision in ("fp32", "int8")}
        peaks = matmul_peak(threads)
        peak_cpu = max(peaks.values())
        print(f"\n## {threads} thread(s). Cells: median wall ms / median CPU ms over {args.runs} runs. fp32 2048^3 "
              f"matmul, GFLOP per CPU-second: " + ", ".join(f"{name} {value:.0f}" for name, value in peaks.items()))
        header = (f"{'tokens':>6} | {'(a) regress-lm':>15} | {'(b) torch KV':>13} | {'(c) ORT fp32':>12} | "
                  f"{'(d) ORT int8':>12} | {'(x)/(a) cpu: b, c, d':>20} | {'enc GFLOP':>9} | "
                  f"{'fp32 enc cpu ms':>15} | {'% peak':>6} | {'int8 enc+dec cpu ms':>19}")
        print(header)
        print("-" * len(header))
        for length in args.lengths:
            text = text_of(length)
            row: dict[str, object] = {"threads": threads, "tokens": length, "load": os.getloadavg()[0]}
            with torch.no_grad():
                row["a"] = measure(lambda: ways.regress_lm(text), args.runs) if "a" in args.ways else None
                row["b"] = measure(lambda: ways.kv_cache(text), args.runs) if "b" in args.ways else None
            for way, precision in (("c", "fp32"), ("d", "int8")):
                predictor = predictors[precision]
                row[way] = None
                if way not in args.ways:
                    continue
                row[way] = measure(lambda: predictor.predict_texts([text], samples=SAMPLES, seed=SEED), args.runs)
                for key in predictor.timings:
                    predictor.timings[key] = 0
                for _ in range(args.runs):  # the split by graph, averaged over as many more runs
                    predictor.predict_texts([text], samples=SAMPLES, seed=SEED)
                for key in ("encoder_cpu_s", "decoder_cpu_s", "decoder_rows"):
                    row[f"{way}_{key}"] = predictor.timings[key] / args.runs
            flop = encoder_gflop(length)
            row["encoder_gflop"] = flop
            enc_cpu_ms = row["c_encoder_cpu_s"] * 1e3 if row["c"] else None
            row["fp32_encoder_peak_fraction"] = flop / (enc_cpu_ms / 1e3) / peak_cpu if enc_cpu_ms else None
            results.append(row)
            a, d = row["a"], row["d"]
            ratios = ", ".join(f"{row[way].cpu_ms / a.cpu_ms:.3f}" if a and row[way] else "-" for way in "bcd")
            split = (f"{row['d_encoder_cpu_s'] * 1e3:.1f}+{row['d_decoder_cpu_s'] * 1e3:.1f}" if d else "-")
            peak_text = f"{100 * row['fp32_encoder_peak_fraction']:.0f}%" if enc_cpu_ms else "-"
            print(f"{length:>6} | {str(a or '-'):>15} | {str(row['b'] or '-'):>13} | {str(row['c'] or '-'):>12} | "
                  f"{str(d or '-'):>12} | {ratios:>20} | {flop:>9.2f} | "
                  f"{(f'{enc_cpu_ms:.1f}' if enc_cpu_ms else '-'):>15} | {peak_text:>6} | {split:>19}")
    print(f"\n# bundle graphs: fp32 {sizes['fp32'] / 1e6:.1f} MB, int8 {sizes['int8'] / 1e6:.1f} MB")
    print(f"# load average after: {load_average()}")
    print("# one prediction = 1 text, 32 samples, 7 decoder steps. (a) pads nothing; regress-lm itself pads every "
          "input to 2048, so its real cost is the 2048 row at every length.")
    if args.json:
        args.json.write_text(json.dumps([{key: dataclasses.asdict(value) if isinstance(value, Timing) else value
                                          for key, value in row.items()} for row in results], indent=2))


if __name__ == "__main__":
    main()
