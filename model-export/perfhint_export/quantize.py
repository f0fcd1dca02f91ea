"""int8 graphs with onnxruntime's dynamic quantization, in the one setting we measured to be safe.

What is hard:

- **Saturation on CPUs without VNNI.** Dynamic quantization makes activations uint8 and, by default,
  weights int8. onnxruntime's AVX2 u8 x s8 kernel multiplies adjacent pairs with `vpmaddubsw`, which
  sums two products into a *saturating* int16: 255 x 127 x 2 overflows. A prototype on AVX2 machines
  without VNNI gave 99% wrong outputs. We cannot see it here (the export machine has AVX512-VNNI, which
  accumulates in int32), so we emulated the AVX2 kernel in numpy on the real activations: with plain
  s8 weights 55.7% of the matmul outputs of a random 256-wide RLM (0.8% on fixture B) include a
  saturated pair; with `reduce_range` (7-bit weights, |w| <= 64, so 2 x 255 x 64 < 32767) none can.
  Users run bundles on CPUs we do not know, so every setting that can saturate is excluded.
- **Which matmuls.** Only MatMuls whose B input is a weight initializer (`MatMulConstBOnly`): the
  attention products q·kᵀ and p·v multiply two activations, and quantizing both per tensor would add
  error where it is cheapest to keep float. onnx_graphs.py writes every linear layer as `x @ Wᵀ + b`
  with Wᵀ an initializer, because a Gemm (what F.linear exports on 2-D inputs) is not quantized by
  dynamic quantization. Gather (the embedding tables) is quantized too: the encoder embedding is over
  half of a default regress-lm model (16.4 M of 31 M parameters), and it dequantizes exactly per row.
- **Choosing by measurement.** Measured on this machine (1 thread; `enc` = encoder at max_input_len,
  `dec64` = 64 samples x decode_len KV-cached steps; logit error on 200 random probes along the
  reference greedy path; "agree" = exact greedy agreement, which near ties limit, see parity.py):

  | weights (MatMul only unless noted)   | fixture A max/agree | fixture B max/agree | 512-wide L=2048 enc / dec64 / size |
  | ------------------------------------ | ------------------- | ------------------- | ---------------------------------- |
  | fp32                                 | 1.7e-06 / 100%      | 9.5e-07 / 100%      | 290 ms / 196 ms / 124.8 MB         |
  | s8 per-tensor (can saturate)         | 0.067 / 88.0%       | 0.042 / 96.0%       | (256-wide: enc 11.4, dec64 23.0)   |
  | s8 reduce_range                      | 0.102 / 85.0%       | 0.060 / 88.5%       | (256-wide: enc 11.3, dec64 23.0)   |
  | s8 per-channel reduce_range          | 0.101 / 95.5%       | 0.052 / 93.5%       | (256-wide: enc 11.6, dec64 23.2)   |
  | u8 per-tensor                        | 0.066 / 93.5%       | 0.047 / 92.5%       | (256-wide: enc 14.0, dec64 25.5)   |
  | u8 per-channel                       | 0.058 / 93.0%       | 0.046 / 96.0%       | (256-wide: enc 14.5, dec64 25.8)   |
  | s8 per-channel reduce_range + Gather | 0.097 / 97.0%       | 0.059 / 94.0%       | 198 ms / 172 ms / 31.5 MB          |
  | u8 per-channel + Gather              | 0.057 / 94.0%       | 0.044 / 94.0%       | 243 ms / 179 ms / 31.5 MB          |

  The 256-wide fp32 reference was enc 24.0 ms / dec64 27.9 ms. Both saturation-free candidates are
  within the parity tolerance (0.2) with the same greedy behaviour; s8 per-channel with reduce_range is
  1.2x faster on the encoder than u8/u8 (onnxruntime's u8 x s8 kernels are its fastest), so it is the
  choice: `SETTINGS` below, recorded verbatim in every int8 bundle's manifest.
- **When the decoder does not survive int8.** Our first default model (d_model 128, 3+2 layers,
  step 1,100) failed the gate at int8: decoder_step logits off by 0.26-0.32 (> 0.2). Measured per part
  (same gate, 64 probes): both graphs int8 0.32 (fail); decoder without its output projection 0.32
  (fail), decoder MatMuls only (no Gather) 0.33 (fail); decoder feed-forward only 0.17 (pass); encoder
  int8 + decoder fp32 0.12 (pass, greedy agreement 97 %). The error is spread over the decoder's
  attention projections, not one layer, so `--precision int8-encoder` quantizes the encoder only: it
  holds the 16k-row embedding table (2.0 M of 3.2 M parameters) and the per-token work, so it keeps
  most of the win (14 -> 4.9 MB) while the decoder, 14 steps of a 2-layer 128-wide stack, stays float.
- **Weight-only int8 does not rescue a sharp model either.** The shipped default model (logits span
  -23..+46) fails the gate at int8-encoder too (0.60). With 8-bit weights and float activations
  (onnxruntime's MatMulNBits, bits=8, symmetric blocks of 32 along the input dimension), that model's
  max logit error is still 0.21-0.31 (encoder only 0.06-0.31, decoder only 0.18-0.29). The sampling
  distribution moves less (max total variation 0.01-0.07, against 0.11 for dynamic int8-encoder), but
  the gate is not met. It is also slower on CPU, because it dequantizes the weights on every call.
  Encoder at 512 tokens plus 14 decode steps of 32 samples, 2 threads, three alternating runs of 30:
  fp32 34 / 40 / 42 ms, weight-only 50 / 49 / 55 ms. In onnxruntime 1.32 the embedding table, 8 of the
  encoder's 11 MB, can only be blockwise-quantized to 4 bits. So no weight-only setting is offered.
- **Keeping some layers float instead.** What did ship: dynamic int8 with a few layers left float
  (`--keep-float`, weight_layers below, the search in float_fallback.py). For the default model, keeping
  the encoder's first layer float (0.20 M of its 2.71 M weights) brought int8-encoder from 0.223 to 0.177.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
import onnxruntime
from onnxruntime.quantization import QuantType, quantize_dynamic

OP_TYPES = ("MatMul", "Gather")
WEIGHT_TYPE = QuantType.QInt8
PER_CHANNEL = True  # recovers most of the precision the 7-bit range costs (fixture A agree 85% -> 95.5%)
REDUCE_RANGE = True  # 7-bit weights: no int16 saturation in AVX2 u8 x s8 kernels (see module docstring)
EXTRA_OPTIONS = {"MatMulConstBOnly": True}  # weights only; activation x activation matmuls stay float

SETTINGS: dict[str, Any] = {
    "method": "onnxruntime.quantization.quantize_dynamic",
    "weights": "int8 (QInt8), symmetric, per output channel, reduce_range (7-bit)",
    "activations": "uint8, asymmetric, per tensor, computed at run time (DynamicQuantizeLinear)",
    "op_types": list(OP_TYPES),
    "weight_type": "QInt8",
    "per_channel": PER_CHANNEL,
    "reduce_range": REDUCE_RANGE,
    "extra_options": dict(EXTRA_OPTIONS),
    "why": "saturation-free on AVX2 CPUs without VNNI and the fastest of the accurate settings measured; "
           "see perfhint_export/quantize.py",
}


class QuantizationError(RuntimeError):
    """onnxruntime could not quantize a graph."""


@contextlib.contextmanager
def _quiet_root_logger():
    """quantize_dynamic logs a 'consider pre-processing' warning on the root logger for every graph."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


# The layer a weight belongs to, from its initializer name: `l3_linear1_wt` (onnx_graphs.py) -> "l3",
# `encoder.layers.3.mlp.weight` (torch.onnx on foreign models) -> "layers.3"; any other weight (an
# embedding table, the output projection) is a layer of its own, named by the weight.
_LAYER_NAME = re.compile(r"^([a-z]\d+)_|(?:^|\.)(layers?\.\d+)\.")


def weight_layers(graph: str | Path) -> dict[str, tuple[str, ...]]:
    """The nodes quantize_dynamic would quantize in `graph`, grouped by layer: {layer: node names}.

    These are the units `--keep-float` keeps in float (float_fallback.py). A node counts when its op is one
    of OP_TYPES and one input is a weight initializer of rank >= 2 (scalar index Gathers are never
    quantized). Nameless nodes cannot be excluded by quantize_dynamic, so they are left out.
    """
    model = onnx.load(str(graph), load_external_data=False)
    ranks = {init.name: len(init.dims) for init in model.graph.initializer}
    layers: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type not in OP_TYPES or not node.name:
            continue
        weight = next((name for name in node.input if ranks.get(name, 0) >= 2), None)
        if weight is None:
            continue
        match = _LAYER_NAME.search(weight)
        layer = (match.group(1) or match.group(2)) if match else weight
        layers.setdefault(layer, []).append(node.name)
    return {layer: tuple(nodes) for layer, nodes in layers.items()}


def quantize_graph(source: str | Path, target: str | Path, keep_float_nodes: Sequence[str] = ()) -> Path:
    """Write the int8 version of the fp32 graph `source` to `target`; `keep_float_nodes` stay float."""
    source, target = Path(source), Path(target)
    try:
        with _quiet_root_logger():
            quantize_dynamic(source, target, op_types_to_quantize=list(OP_TYPES), weight_type=WEIGHT_TYPE,
                             per_channel=PER_CHANNEL, reduce_range=REDUCE_RANGE, extra_options=dict(EXTRA_OPTIONS),
                             nodes_to_exclude=list(keep_float_nodes))
    except Exception as error:  # onnxruntime raises plain Exceptions of several kinds
        raise QuantizationError(f"onnxruntime {onnxruntime.__version__} could not quantize {source.name}: {error}; "
                                f"export with --precision fp32 instead") from error
    return target


def quantize_graphs(graphs: dict[str, Path], out_dir: str | Path,
                    keep_float: Mapping[str, Sequence[str]] | None = None) -> tuple[dict[str, Path], dict[str, Any]]:
    """Quantize every graph {role: fp32 path} into out_dir under the same file names.

    `keep_float` names, per role, layers of weight_layers() to leave in float. Returns the int8 paths and
    the settings dict for the manifest (`SETTINGS`, the layers kept float, and the onnxruntime version,
    because the quantized graph depends on the quantizer that wrote it).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keep_float = dict(keep_float or {})
    unknown_roles = sorted(set(keep_float) - set(graphs))
    if unknown_roles:
        raise QuantizationError(f"--keep-float names {unknown_roles}, which this precision does not quantize; "
                                f"name layers of {sorted(graphs)} only")
    quantized, kept = {}, {}
    for role, source in graphs.items():
        target = out_dir / Path(source).name
        if target.resolve() == Path(source).resolve():
            raise QuantizationError(f"refusing to quantize {source} onto itself; pass another out_dir")
        layers = weight_layers(source) if keep_float.get(role) else {}
        missing = [layer for layer in keep_float.get(role, ()) if layer not in layers]
        if missing:
            raise QuantizationError(f"--keep-float: the {role} graph has no layer {missing}; "
                                    f"its layers are {sorted(layers)}")
        kept[role] = sorted(keep_float.get(role, ()))
        quantized[role] = quantize_graph(source, target, [node for layer in kept[role] for node in layers[layer]])
    return quantized, {**SETTINGS, "graphs": sorted(quantized), "kept_float": kept,
                       "onnxruntime": onnxruntime.__version__}


def copy_graphs(graphs: dict[str, Path], out_dir: str | Path) -> dict[str, Path]:
    """The fp32 counterpart of quantize_graphs: the graphs as exported."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return {role: Path(shutil.copyfile(source, out_dir / Path(source).name)) for role, source in graphs.items()}
