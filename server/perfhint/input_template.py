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

`{"kind": "perfhint-v2", "task": "<task>"}`  (what the default model reads)
    perfhint-v1 with the region's input size stated inside the tag, after the region kind:

        <perfhint-v2 task=<task> language=<language> kind=<region_kind> size=<size>> <key>=<text>; ...

    `<size>` is `perfhint.input_size.region_input_size` of the context texts (and, for programs and
    scripts without them, of the code) in `size_text` notation: two significant digits and a bare
    exponent (`4.2e6`), `0` when nothing states a size, `?` when a stated value cannot be read.
    Why: a d_model-128 model did not learn to multiply the digits of `shape=[[4096, 4096]]` in 25
    CPU minutes (Triton Spearman 0.29 where the size alone ranks at 0.85); one magnitude token it
    can map. It is computed from the same texts the header shows, so it adds no information the
    user did not write, and the `input_size` baseline of training uses the same function.

Any other kind is an error that names the kinds this version knows, so a newer bundle fails loudly
rather than being fed text in the wrong shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from perfhint.input_size import region_input_size, size_text

RAW = "raw"
PERFHINT_V1 = "perfhint-v1"
PERFHINT_V2 = "perfhint-v2"
KNOWN_KINDS = (RAW, PERFHINT_V1, PERFHINT_V2)
DEFAULT_TASK = "cost"

_WHITESPACE = re.compile(r"\s+")
_TAG = re.compile(rf"<(?:{PERFHINT_V1}|{PERFHINT_V2}) task=\S* language=(\S+) kind=([^\s>]+)[ >]")
_SIZE = re.compile(rf"<{PERFHINT_V2} task=\S* language=\S+ kind=[^\s>]+ size=([^\s>]+)>")


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
    if kind in (PERFHINT_V1, PERFHINT_V2):
        task = str((template or {}).get("task") or DEFAULT_TASK)
        size = None
        if kind == PERFHINT_V2:
            texts = dict(getattr(context, "texts", None) or {})
            size = size_text(region_input_size(context=texts, code=code, region_kind=region_kind))
        return f"{header_line(task=task, language=language, region_kind=region_kind, context=context, size=size)}\n{code}"
    raise TemplateError(f"unknown input_template kind {kind!r}; this perfhint knows {', '.join(KNOWN_KINDS)}: "
                        f"upgrade perfhint or re-export the bundle")


def header_line(*, task: str, language: str, region_kind: str, context: _HasTexts | None,
                size: str | None = None) -> str:
    """The v1 header line, or with `size` the v2 one (`size=` inside the tag)."""
    tag = PERFHINT_V1 if size is None else PERFHINT_V2
    sized = "" if size is None else f" size={size}"
    head = f"<{tag} task={_one_line(task)} language={_one_line(language)} kind={_one_line(region_kind)}{sized}>"
    texts = dict(getattr(context, "texts", None) or {})
    pairs = "; ".join(f"{key}={_one_line(str(texts[key]))}" for key in sorted(texts))
    return f"{head} {pairs}" if pairs else head


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def region_name(language: str, region_kind: str) -> str:
    """`language/region_kind`: how a region is named to the runtime (which objectives are costs) and in a
    bundle's calibration (`by_region`)."""
    return f"{language}/{region_kind}"


def region_of_text(text: str) -> str | None:
    """`language/region_kind` of a perfhint-v1/v2 model text (what calibration is keyed by); None for raw text.

    The inverse of header_line for the two fields that say what kind of cost the text asks for. A raw
    text (regress-lm bundles) carries no header, and code that merely starts with `<` does not match."""
    match = _TAG.match(text)
    return region_name(match.group(1), match.group(2)) if match else None


def size_of_text(text: str) -> str | None:
    """The `size=` a perfhint-v2 model text told the model (size_text notation); None for other texts."""
    match = _SIZE.match(text)
    return match.group(1) if match else None
