"""The program that runs INSIDE the sandbox, on a CUDA machine, to time one Triton launcher.

Copied into the sandbox and run as `python perfhint_kernel_harness.py spec.json`; importing it does
nothing (and in particular imports no torch: perfhint's runtime never does). What is hard is only
the contract, fixed in metrics.py: one tensor per stated shape (random normal, or random integers
for integer dtypes), in the stated dtype, on the GPU, then the literal args; the launcher is called
through `triton.testing.do_bench(..., return_mode="median")`, which warms up, flushes the L2 cache
between repetitions and reports milliseconds.
"""

from __future__ import annotations

import sys

DTYPE_ALIASES = {
    "fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32", "float": "float32",
    "fp64": "float64", "double": "float64", "fp8": "float8_e4m3fn", "int": "int32", "long": "int64",
}


def main(spec_path: str) -> int:
    import inspect
    import json
    import os
    import traceback
    import types

    with open(spec_path, encoding="utf-8") as stream:
        spec = json.load(stream)

    def finish(result: dict) -> int:
        temporary = spec["result_path"] + ".partial"
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(result, stream)
        os.replace(temporary, spec["result_path"])
        return 0 if result["status"] == "ok" else 1

    try:
        from perfhint.context import safe_literal as evaluate
    except ImportError:
        import ast

        evaluate = ast.literal_eval
    try:
        import torch
        import triton.testing
    except ImportError as error:
        return finish({"status": "unavailable", "message": f"cannot import torch/triton in the sandbox: {error}"})
    if not torch.cuda.is_available():
        return finish({"status": "unavailable", "message": "torch sees no CUDA device inside the sandbox"})

    try:
        shapes = evaluate(spec["shape_text"]) if spec.get("shape_text") else ()
        if isinstance(shapes, tuple) and all(isinstance(size, int) for size in shapes) and shapes:
            shapes = [shapes]  # one shape, e.g. (4096, 4096)
        name = (spec.get("dtype") or "float32").removeprefix("torch.")
        dtype = getattr(torch, DTYPE_ALIASES.get(name, name))
        extra = evaluate(spec["args_text"]) if spec.get("args_text") else ()
        extra = extra if isinstance(extra, tuple) else (extra,)
        kwargs = evaluate(spec["kwargs_text"]) if spec.get("kwargs_text") else {}
    except Exception as error:  # noqa: BLE001 - bad shapes/dtypes are the user's input
        return finish({"status": "bad_input", "message": f"cannot build the inputs: {error}"})

    module = types.ModuleType("perfhint_measured")
    module.__file__ = spec["module_path"]
    sys.modules["perfhint_measured"] = module
    try:
        with open(spec["module_path"], encoding="utf-8") as stream:
            exec(compile(stream.read(), spec["module_path"], "exec"), module.__dict__)  # noqa: S102
        launcher: object = module
        for part in spec["qualname"].split("."):
            launcher = getattr(launcher, part)
        tensors = []
        for shape in shapes:
            if dtype.is_floating_point:
                tensors.append(torch.randn(tuple(shape), device="cuda").to(dtype))
            else:
                tensors.append(torch.randint(0, 100, tuple(shape), device="cuda", dtype=dtype))
        args = (*tensors, *extra)
        try:  # a shape list that does not fit the launcher is the user's input, not a crash
            inspect.signature(launcher).bind(*args, **kwargs)
        except TypeError as error:
            return finish({"status": "bad_input", "message": (
                f"the directive gives {len(tensors)} tensor(s) and {len(extra)} other argument(s), which "
                f"{spec['qualname']}{inspect.signature(launcher)} cannot take ({error}): state one shape per "
                f"tensor argument, e.g. shape=[(4096, 4096), (4096, 4096)], and the rest with args=(...)")})
        except ValueError:
            pass  # no introspectable signature (a builtin, a C extension): let the call say what is wrong
        median_ms = triton.testing.do_bench(lambda: launcher(*args, **kwargs), return_mode="median")
    except BaseException as error:  # noqa: BLE001
        lines = traceback.format_exception_only(type(error), error)
        status = "memory_limit" if "out of memory" in str(error).lower() else "crashed"
        return finish({"status": status, "message": lines[-1].strip() if lines else repr(error)})
    return finish({"status": "ok", "median_ms": float(median_ms), "gpu": torch.cuda.get_device_name(),
                   "triton": getattr(triton, "__version__", "?"), "torch": torch.__version__})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
