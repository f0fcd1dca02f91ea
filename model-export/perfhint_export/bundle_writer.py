"""Checkpoint -> verified bundle directory: export, quantize, gate on parity, then publish atomically.

What is hard:

- **No bundle unless parity passed.** Everything is written into a staging directory beside the target
  (same filesystem, so the final `rename` is atomic) and published only after the parity gate passes
  and the staged bundle loads through the runtime's own verifier (perfhint.bundle.load_bundle). On any
  failure — parity, quantization, a full disk, Ctrl-C — the staging directory is removed and the target
  is left as it was: there is never a half-written or unverified bundle at `out_dir`.
- **Replacing an old bundle.** Re-exporting into an existing bundle directory swaps it out with two
  renames (old -> trash, staged -> target) and then deletes the trash; a directory that exists but is not
  a bundle is refused rather than overwritten, because it might be the user's data.
- **The manifest is the runtime's schema.** It is built from perfhint.bundle's dataclasses, so the writer
  cannot produce a manifest the runtime rejects without the self-check below failing first.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import perfhint
from perfhint.bundle import (
    DECODER_STEP_FILE,
    ENCODER_FILE,
    MANIFEST_FILE,
    EXPORT_PRECISIONS,
    PURPOSES,
    TOKENIZER_FILES,
    Bundle,
    BundleError,
    Codec,
    EncoderTokenizer,
    Graph,
    Manifest,
    Metric,
    ModelInfo,
    Provenance,
    finite_json,
    load_bundle,
    sha256_file,
)
from perfhint_export import float_fallback, onnx_graphs, parity, quantize
from perfhint_export.checkpoint import LoadedCheckpoint

DEFAULT_PRECISION = "int8"
DEFAULT_PURPOSE = "user"
_SCRATCH = ".fp32-export"  # inside the staging directory; removed before publishing

GraphHook = Callable[[dict[str, Path]], None]
KeepFloat = Mapping[str, Sequence[str]]  # {role: layer names of quantize.weight_layers}
AUTO = "auto"


class BundleWriteError(RuntimeError):
    """The bundle could not be written (bad target directory, bad options); the message names the fix."""


def write_bundle(checkpoint: LoadedCheckpoint, out_dir: str | Path, *, precision: str = DEFAULT_PRECISION,
                 name: str | None = None, version: str | None = None, purpose: str = DEFAULT_PURPOSE,
                 probe_count: int = parity.PROBE_COUNT, before_parity: GraphHook | None = None,
                 keep_float: KeepFloat | str | None = None,
                 on_trial: Callable[[float_fallback.Trial], None] | None = None) -> Bundle:
    """Export `checkpoint` to a verified bundle at `out_dir`; raise ParityError (and write nothing) on mismatch.

    `keep_float` leaves layers of the int8 graphs in float: {role: layers}, or "auto" to search for the
    fewest that pass (float_fallback.py; `on_trial` sees each round). `before_parity` is called with the
    staged graph paths {"encoder", "decoder_step"} right before the gate; tests use it to corrupt a weight
    and prove the gate refuses it.
    """
    if precision not in EXPORT_PRECISIONS:
        raise BundleWriteError(f"precision {precision!r} is not one of {list(EXPORT_PRECISIONS)}")
    if purpose not in PURPOSES:
        raise BundleWriteError(f"purpose {purpose!r} is not one of {list(PURPOSES)}")
    if keep_float and precision == "fp32":
        raise BundleWriteError("--keep-float applies to int8 graphs; drop it or choose --precision int8")
    if isinstance(keep_float, str) and keep_float != AUTO:
        raise BundleWriteError(f"keep_float {keep_float!r}: pass {AUTO!r} or {{role: [layers]}}")
    out_dir = Path(out_dir).absolute()
    _check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); a bundle is ordinary shared data
        graphs, quantization = _stage_graphs(checkpoint, staging, precision, keep_float, on_trial)
        if before_parity is not None:
            before_parity(dict(graphs))
        report = parity.check_parity(checkpoint.model, checkpoint.config, checkpoint.codec, graphs["encoder"],
                                     graphs["decoder_step"], precision, probe_count=probe_count)
        tokenizer = _stage_tokenizer(checkpoint, staging)
        manifest = _manifest(checkpoint, staging, graphs, tokenizer, precision, quantization, report,
                             name=name, version=version, purpose=purpose)
        (staging / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
        load_bundle(staging)  # the runtime's verifier, before anyone else can see the directory
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_bundle(out_dir)


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def _check_target(out_dir: Path) -> None:
    if out_dir.is_file():
        raise BundleWriteError(f"--out {out_dir} is a file; a bundle is a directory: choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file():
        raise BundleWriteError(f"--out {out_dir} exists and is not a perfhint bundle (no {MANIFEST_FILE}); "
                               f"refusing to overwrite it: choose an empty or new directory")


def _stage_graphs(checkpoint: LoadedCheckpoint, staging: Path, precision: str, keep_float: KeepFloat | str | None,
                  on_trial: Callable[[float_fallback.Trial], None] | None
                  ) -> tuple[dict[str, Path], dict[str, Any] | None]:
    scratch = staging / _SCRATCH
    own_export = getattr(checkpoint.model, "export_graphs", None)  # models with a foreign encoder (t5gemma.py)
    if own_export is not None:
        exported = own_export(scratch, encoder_file=ENCODER_FILE, decoder_file=DECODER_STEP_FILE)
    else:
        exported = onnx_graphs.export_graphs(checkpoint.model.state_dict(), checkpoint.config, scratch,
                                             encoder_file=ENCODER_FILE, decoder_file=DECODER_STEP_FILE)
    plan = EXPORT_PRECISIONS[precision]
    to_quantize = {role: path for role, path in exported.items() if plan[role] == "int8"}
    graphs, quantization = quantize.copy_graphs({role: path for role, path in exported.items()
                                                 if role not in to_quantize}, staging), None
    if to_quantize:
        search = None
        if keep_float == AUTO:
            search = _search_float_layers(checkpoint, scratch, exported, to_quantize, on_trial)
            keep_float = search.kept_float
        quantized, quantization = quantize.quantize_graphs(to_quantize, staging, keep_float)
        if search is not None:
            quantization["kept_float_search"] = search.to_dict()
        graphs.update(quantized)
    shutil.rmtree(scratch)
    return graphs, quantization


def _search_float_layers(checkpoint: LoadedCheckpoint, scratch: Path, exported: dict[str, Path],
                         to_quantize: dict[str, Path], on_trial: Callable[[float_fallback.Trial], None] | None
                         ) -> float_fallback.Search:
    """float_fallback's search, each trial quantized into scratch and checked on the search probes."""
    trial_dir = scratch / "trial"
    precision = "int8"  # the int8 tolerance applies to every quantized mix (parity.TOLERANCES)

    def measure(kept: dict[str, tuple[str, ...]]) -> tuple[float, bool]:
        quantized, _ = quantize.quantize_graphs(to_quantize, trial_dir, kept)
        paths = {**exported, **quantized}
        try:
            report = parity.check_parity(checkpoint.model, checkpoint.config, checkpoint.codec, paths["encoder"],
                                         paths["decoder_step"], precision,
                                         probe_count=float_fallback.SEARCH_PROBE_COUNT,
                                         probe_seed=float_fallback.SEARCH_PROBE_SEED)
        except parity.ParityError as error:
            report = error.report
        return report["max_abs_diff"]["logits"], report["passed"]

    layers = {role: tuple(quantize.weight_layers(path)) for role, path in to_quantize.items()}
    return float_fallback.choose_float_layers(layers, measure, on_trial)


def _stage_tokenizer(checkpoint: LoadedCheckpoint, staging: Path) -> EncoderTokenizer:
    vocab = checkpoint.encoder_vocab
    if vocab.kind not in TOKENIZER_FILES:
        raise BundleWriteError(f"encoder vocabulary kind {vocab.kind!r} has no bundle file name; "
                               f"use one of {list(TOKENIZER_FILES)}")
    file_name = TOKENIZER_FILES[vocab.kind]
    (staging / file_name).write_bytes(vocab.data)  # the exact bytes the checkpoint was validated against
    return EncoderTokenizer(kind=vocab.kind, file=file_name, sha256=sha256_file(staging / file_name),
                            pad_id=int(vocab.pad_id))


def _manifest(checkpoint: LoadedCheckpoint, staging: Path, graphs: dict[str, Path], tokenizer: EncoderTokenizer,
              precision: str, quantization: dict[str, Any] | None, report: dict[str, Any], *, name: str | None,
              version: str | None, purpose: str) -> Manifest:
    provenance = checkpoint.provenance
    metrics = tuple(
        Metric(name=metric.name, unit=metric.unit,
               meaning=metric.meaning or f"objective {index} of the model's output, named by its checkpoint "
                                         f"(the checkpoint does not say what it measures)")
        for index, metric in enumerate(checkpoint.metrics))
    return Manifest(
        model=ModelInfo(name=name or Path(provenance.path).stem, version=version or provenance.sha256[:12],
                        purpose=purpose),
        encoder_tokenizer=tokenizer,
        max_input_len=checkpoint.config.max_input_len,
        codec=Codec(decoder_tokenizer=dict(checkpoint.decoder_tokenizer), max_num_objs=checkpoint.max_num_objs),
        architecture={**checkpoint.config.to_dict(), **getattr(checkpoint.model, "manifest_architecture", {})},
        metrics=metrics,
        input_template=dict(checkpoint.input_template),
        graphs={role: Graph(file=path.name, precision=EXPORT_PRECISIONS[precision][role], sha256=sha256_file(path),
                            bytes=path.stat().st_size)
                for role, path in graphs.items()},
        quantization=quantization,
        parity=finite_json(report),
        provenance=Provenance(
            checkpoint=str(provenance.path), checkpoint_sha256=provenance.sha256,
            checkpoint_format=provenance.format, exported_by=f"perfhint {perfhint.__version__}",
            exported_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")),
    )


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the verified staging directory to out_dir, replacing an old bundle there."""
    if out_dir.is_dir() and any(out_dir.iterdir()):
        _check_target(out_dir)  # still a bundle: it may have changed while we exported
        trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
        old = trash / "bundle"
        os.replace(out_dir, old)
        try:
            os.replace(staging, out_dir)
        except BaseException:
            os.replace(old, out_dir)  # put the old bundle back
            raise
        finally:
            shutil.rmtree(trash, ignore_errors=True)
        return
    if out_dir.is_dir():
        out_dir.rmdir()  # empty; os.replace of a directory needs the target gone on some platforms
    os.replace(staging, out_dir)


__all__ = ["BundleError", "BundleWriteError", "DEFAULT_PRECISION", "DEFAULT_PURPOSE", "write_bundle"]
