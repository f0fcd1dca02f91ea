"""A stand-in for runtime.Predictor: deterministic numbers from the model text, no onnxruntime.

The engine and server tests need numbers that change when (and only when) a region's model text
changes, and a way to make the model slow or fail on demand. The median is a function of the text's
sha256, so an edit gives a new number and an unchanged region the same one; `FAIL_MARKER` in a text
makes its batch raise. End-to-end tests that need the real runtime use the `tiny_bundle` fixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

FAIL_MARKER = "PERFHINT_TEST_FAIL"
MANIFEST = {
    "model": {"name": "fake-test-model", "version": "0", "purpose": "test"},
    "max_input_len": 64,
    "metrics": [
        {"name": "peak_memory", "unit": "B", "meaning": "peak resident memory while the code runs"},
        {"name": "latency", "unit": "s", "meaning": "GPU kernel time"},
    ],
    "input_template": {"kind": "perfhint-v2", "task": "cost"},  # what the default model reads
}


@dataclass(frozen=True)
class Summary:
    median: float | None
    p10: float | None
    p90: float | None
    special_fraction: float
    n_samples: int
    n_finite: int


@dataclass(frozen=True)
class TextPrediction:
    objectives: list
    n_tokens: int
    truncated: bool
    greedy: list | None = None


class FakeBundle:
    def __init__(self, manifest: dict) -> None:
        self.manifest = manifest


class FakePredictor:
    def __init__(self, manifest: dict | None = None, delay_s: float = 0.0) -> None:
        self.bundle = FakeBundle(manifest or MANIFEST)
        self.bundle_sha256 = hashlib.sha256(json.dumps(self.bundle.manifest, sort_keys=True).encode()).hexdigest()
        self.delay_s = delay_s
        self.calls: list[list[str]] = []
        self.regions: list[list[str] | None] = []  # what each call said the texts' regions were

    @classmethod
    def from_bundle_path(cls, path, *, device="cpu", threads=None) -> "FakePredictor":
        manifest_path = Path(path) / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
        return cls(manifest, delay_s=float(os.environ.get("PERFHINT_FAKE_DELAY_S", "0")))

    def predict_texts(self, texts, *, samples=32, seed=0, greedy=False, regions=None):
        self.calls.append(list(texts))
        self.regions.append(None if regions is None else list(regions))
        if self.delay_s:
            time.sleep(self.delay_s * len(texts))
        if any(FAIL_MARKER in text for text in texts):
            raise RuntimeError("the fake model was asked to fail")
        return [self._one(text, samples, seed) for text in texts]

    def _one(self, text: str, samples: int, seed: int) -> TextPrediction:
        digest = int(hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()[:12], 16)
        memory = float(1024 * (1 + digest % 50_000))  # 1 KiB .. ~49 MiB
        latency = float(1e-6 * (1 + digest % 5_000))  # 1 µs .. 5 ms
        max_len = int(self.bundle.manifest.get("max_input_len") or 64)
        n_tokens = len(text.split())
        return TextPrediction(
            objectives=[Summary(memory, memory * 0.8, memory * 1.25, 0.0, samples, samples),
                        Summary(latency, latency * 0.9, latency * 1.1, 0.0, samples, samples)],
            n_tokens=min(n_tokens, max_len), truncated=n_tokens > max_len)


def write_fake_bundle(directory: Path, manifest: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps(manifest or MANIFEST))
    return directory
