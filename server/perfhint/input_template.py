"""The text a model reads for one region: the single source of truth for serving *and* training.

What is hard: the model only ever sees a string, so every piece of information that changes the cost
(the code, its language, what kind of region it is, the arguments and the GPU it is assumed to run
with) must be written into that string the same way at training time and in the editor. A byte of
difference (key order, a trailing space, a different quote) is a distribution shift the model was not
trained on. So this module is the only place that builds model text; training imports it too.

A bundle's manifest names the format in `input_template`:

`{"kind": "raw"}`
    The code text alone, byte for byte. This is what a plain regress-lm bundle was trained on; the
    context is not shown to the model (the hover still says which context was assumed).

`{"kind": "perfhint-v1", "task": "<task>"}`  (`task` optional, default `cost`)
    One header line, a newline, then the code byte for byte:

        <perfhint-v1 task=<task> language=<language> kind=<region_kind>> <key>=<text>; <key>=<text>

    - `<language>` is `python`, `c`, `cpp`; `<region_kind>` is `function`, `script`, `program`,
      `triton_kernel`.
    - The pairs are the context's *source texts* (what the user wrote, e.g. `args=(1024, 'float32')`,
      not a repr of the parsed value), sorted by key with Python's default string order, separated
      by `; ` (semicolon, space). Inside a text every run of whitespace (newlines included) becomes one
      space and leading/trailing whitespace is dropped, so a literal written over several lines still
      gives one header line. A text is never quoted or escaped further.
    - With no context pairs the header ends right after the closing `>` (no trailing space).
    - The code follows the newline unchanged: no stripping, no tab expansion, no added final newline.

    Example (`task=latency`, a Triton kernel with a directive `# perfhint: shape=(4096, 4096)` and
    the target GPU from the settings):

        <perfhint-v1 task=latency language=python kind=triton_kernel> gpu=H100; shape=(4096, 4096)
        @triton.jit
        def add_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
            ...

Any other kind is an error that names the kinds this version knows, so a newer bundle fails loudly
rather than being fed text in the wrong shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

RAW = "raw"
PERFHINT_V1 = "perfhint-v1"
KNOWN_KINDS = (RAW, PERFHINT_V1)
DEFAULT_TASK = "cost"

_WHITESPACE = re.compile(r"\s+")


class TemplateError(ValueError):
    """The manifest asks for an input format this version of perfhint cannot build."""


class _HasTexts(Protocol):
    texts: Mapping[str, str]


def render_model_input(template: Mapping[str, Any] | None, *, language: str, region_kind: str, code: str,
                       context: _HasTexts | None) -> str:
    """Model text for one region, in the format the bundle's `input_template` names."""
    kind = (template or {}).get("kind", RAW)
    if kind == RAW:
        return code
    if kind == PERFHINT_V1:
        task = str((template or {}).get("task") or DEFAULT_TASK)
        return f"{header_line(task=task, language=language, region_kind=region_kind, context=context)}\n{code}"
    raise TemplateError(f"unknown input_template kind {kind!r}; this perfhint knows {', '.join(KNOWN_KINDS)}: "
                        f"upgrade perfhint or re-export the bundle")


def header_line(*, task: str, language: str, region_kind: str, context: _HasTexts | None) -> str:
    head = f"<{PERFHINT_V1} task={_one_line(task)} language={_one_line(language)} kind={_one_line(region_kind)}>"
    texts = dict(getattr(context, "texts", None) or {})
    pairs = "; ".join(f"{key}={_one_line(str(texts[key]))}" for key in sorted(texts))
    return f"{head} {pairs}" if pairs else head


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()
