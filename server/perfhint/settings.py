"""Settings: what the editor sends under `perfhint.`, what a project writes in `[tool.perfhint]`.

What is hard: settings arrive from three places with three spellings (the editor's camelCase JSON,
pyproject's TOML, command-line flags) and any of them may be missing, mistyped or from an older
version. A wrong value must never take the server down and must never silently become a number the
user did not ask for, so every field is parsed on its own: a bad one falls back to its default and
leaves one readable line in `problems` (the server logs them; the CLI prints them).

Thresholds (`hideBelow`) are per unit dimension: `{"bytes": "1 MiB", "seconds": "1 µs"}`; a value is a
number in the base unit (bytes, seconds) or a string with a unit ("512 KiB", "0.05 ms").
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BYTES = "bytes"
SECONDS = "seconds"

DEFAULT_SAMPLES = 32
DEFAULT_DEBOUNCE_MS = 500
DEFAULT_TARGET_GPU = "H100"
RUNTIME_DEVICES = ("cpu", "gpu")
BASELINES = ("saved", "HEAD")
MAX_SAMPLES = 1024  # beyond this the band stops moving and the latency goal is gone

# Display units, base-unit multiples. Shared with predict.py, which formats with the same table.
UNITS: dict[str, tuple[str, float]] = {
    "B": (BYTES, 1.0), "byte": (BYTES, 1.0), "bytes": (BYTES, 1.0),
    "KiB": (BYTES, 1024.0), "MiB": (BYTES, 1024.0**2), "GiB": (BYTES, 1024.0**3), "TiB": (BYTES, 1024.0**4),
    "KB": (BYTES, 1e3), "kB": (BYTES, 1e3), "MB": (BYTES, 1e6), "GB": (BYTES, 1e9),
    "s": (SECONDS, 1.0), "sec": (SECONDS, 1.0), "seconds": (SECONDS, 1.0),
    "ms": (SECONDS, 1e-3), "µs": (SECONDS, 1e-6), "μs": (SECONDS, 1e-6), "us": (SECONDS, 1e-6),
    "ns": (SECONDS, 1e-9),
}

_GPU_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-+]{0,63}\Z")  # a bare word, as context.py reads `gpu=`
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµμ]*)\s*$")


def parse_quantity(value: Any, dimension: str) -> float:
    """`"512 KiB"` -> 524288.0 (bytes); a bare number is already in the base unit."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number or a quantity like '1 MiB', got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    match = _QUANTITY.match(str(value))
    if not match:
        raise ValueError(f"cannot read {value!r} as a quantity like '1 MiB' or '0.05 ms'")
    number, unit = float(match.group(1)), match.group(2)
    if not unit:
        return number
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r} in {value!r}; use one of B, KiB, MiB, GiB, µs, ms, s")
    unit_dimension, scale = UNITS[unit]
    if unit_dimension != dimension:
        raise ValueError(f"{value!r} is in {unit_dimension}, expected {dimension}")
    return number * scale


@dataclass(frozen=True)
class Settings:
    enable: bool = True
    metrics: tuple[str, ...] = ()  # empty: every metric the bundle predicts that fits the region
    hide_below: Mapping[str, float] = field(default_factory=dict)  # dimension -> base-unit threshold
    samples: int = DEFAULT_SAMPLES
    runtime_device: str = "cpu"
    target_gpu: str = DEFAULT_TARGET_GPU
    bundle_path: str | None = None
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    baseline: str = "saved"
    exclude: tuple[str, ...] = ()  # glob patterns (project config); matching files get no predictions
    seed: int = 0

    def context_defaults(self) -> dict[str, str]:
        """Context texts assumed where the code does not say (see context.with_defaults)."""
        return {"gpu": self.target_gpu}

    def hidden(self, dimension: str | None, value: float | None) -> bool:
        if dimension is None or value is None:
            return False
        threshold = self.hide_below.get(dimension)
        return threshold is not None and abs(value) < threshold

    def excludes(self, path: str | Path, root: str | Path | None = None) -> bool:
        path = Path(path)
        candidates = [path.as_posix(), path.name]
        if root is not None:
            try:
                candidates.append(path.resolve().relative_to(Path(root).resolve()).as_posix())
            except (ValueError, OSError):
                pass
        return any(fnmatch.fnmatch(candidate, pattern) or fnmatch.fnmatch(candidate, pattern.rstrip("/") + "/*")
                   for pattern in self.exclude for candidate in candidates)


# Editor key (camelCase, as in the VS Code extension's package.json) -> Settings field; pyproject.toml
# uses the field names (snake_case, dashes accepted) and also accepts the camelCase keys.
_EDITOR_KEYS: dict[str, str] = {
    "enable": "enable", "metrics": "metrics", "hideBelow": "hide_below", "samples": "samples",
    "runtimeDevice": "runtime_device", "targetGpu": "target_gpu", "bundlePath": "bundle_path",
    "debounceMs": "debounce_ms", "baseline": "baseline", "exclude": "exclude",
}


def _parse_field(name: str, value: Any) -> Any:
    if name == "enable":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if name == "metrics":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"expected a list of metric names, got {value!r}")
        return tuple(value)
    if name == "hide_below":
        if not isinstance(value, Mapping):
            raise ValueError(f"expected an object like {{\"bytes\": \"1 MiB\", \"seconds\": \"1 µs\"}}, got {value!r}")
        thresholds = {}
        for dimension, threshold in value.items():
            dimension = {"memory": BYTES, "latency": SECONDS, "B": BYTES, "s": SECONDS}.get(dimension, dimension)
            if dimension not in (BYTES, SECONDS):
                raise ValueError(f"unknown unit dimension {dimension!r}; use 'bytes' or 'seconds'")
            if threshold is None:
                continue
            thresholds[dimension] = parse_quantity(threshold, dimension)
        return thresholds
    if name == "samples":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SAMPLES:
            raise ValueError(f"expected an integer from 1 to {MAX_SAMPLES}, got {value!r}")
        return value
    if name == "runtime_device":
        if value not in RUNTIME_DEVICES:
            raise ValueError(f"expected one of {', '.join(RUNTIME_DEVICES)}, got {value!r}")
        return value
    if name == "target_gpu":
        if not isinstance(value, str) or not _GPU_NAME.match(value.strip()):
            raise ValueError(f"expected a GPU name such as 'H100' or 'A100-80GB' (no spaces), got {value!r}")
        return value.strip()
    if name == "bundle_path":
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise ValueError(f"expected a path, got {value!r}")
        return value
    if name == "debounce_ms":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 60_000:
            raise ValueError(f"expected milliseconds from 0 to 60000, got {value!r}")
        return int(value)
    if name == "baseline":
        by_lower = {choice.lower(): choice for choice in BASELINES}
        if not isinstance(value, str) or value.lower() not in by_lower:
            raise ValueError(f"expected one of {', '.join(BASELINES)}, got {value!r}")
        return by_lower[value.lower()]
    if name == "exclude":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"expected a list of glob patterns, got {value!r}")
        return tuple(value)
    raise KeyError(name)


def merge(base: Settings, values: Mapping[str, Any] | None, *, source: str,
          camel: bool = True) -> tuple[Settings, list[str]]:
    """Apply `values` (editor JSON if `camel`, else pyproject keys) over `base`; bad fields are reported."""
    if not values:
        return base, []
    if not isinstance(values, Mapping):
        return base, [f"{source}: expected an object of settings, got {type(values).__name__}; using defaults"]
    lookup = dict(_EDITOR_KEYS)
    if not camel:
        fields = set(_EDITOR_KEYS.values())
        lookup.update({name: name for name in fields})
        lookup.update({name.replace("_", "-"): name for name in fields})
    changes: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in values.items():
        name = lookup.get(key)
        if name is None:
            continue  # a setting from a newer or older client: not ours to judge
        if value is None:
            continue  # the client's way of saying "unset"
        try:
            changes[name] = _parse_field(name, value)
        except ValueError as error:
            problems.append(f"{source}: {key}: {error}; using {getattr(base, name)!r}")
    return dataclasses.replace(base, **changes), problems


def load_project_settings(start: str | Path, base: Settings | None = None) -> tuple[Settings, list[str], Path | None]:
    """Settings from the `[tool.perfhint]` table of the nearest pyproject.toml above `start`."""
    base = base or Settings()
    path = find_pyproject(start)
    if path is None:
        return base, [], None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: no TOML reader in the standard library
        return base, [f"{path}: [tool.perfhint] ignored: reading it needs Python 3.11+"], path.parent
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        return base, [f"{path}: cannot read ({error}); [tool.perfhint] ignored"], path.parent
    table = data.get("tool", {}).get("perfhint")
    settings, problems = merge(base, table, source=f"{path} [tool.perfhint]", camel=False)
    return settings, problems, path.parent


def find_pyproject(start: str | Path) -> Path | None:
    start = Path(start).resolve()
    for directory in [start, *start.parents] if start.is_dir() else list(start.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None
