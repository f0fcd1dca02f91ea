"""The program that runs INSIDE the sandbox to measure one Python function (peak_traced_heap).

It is copied into the sandbox and run as `python perfhint_harness.py spec.json`; importing it does
nothing. See metrics.py for the definition it implements. What is hard is keeping the traced window
exactly "the call": tracemalloc starts after the arguments exist and after a full collection, and
nothing of ours allocates between `tracemalloc.start()` and the call, or between the return and
reading the peak (the call happens inside a function, so storing the result allocates no dict
slot). The arguments are built from their text twice, once for the warm-up call and once for the
measured call, so a function that mutates its input (sorts it, appends to it) is measured on the
input as stated.

The literal evaluator is perfhint.context.safe_literal when perfhint is importable (it is: the
sandbox runs the same interpreter), with its item cap raised: that cap protects the editor, which
evaluates on every keystroke, while here the address-space limit bounds what a value may cost.
Without perfhint it falls back to ast.literal_eval (no arithmetic, no `[0]*1000`).

The result is one JSON object written to the file the spec names:
  {"status": "ok", "peak_bytes": N, "call_s": F, "python": "3.11.7", "evaluator": "..."}
  {"status": "bad_input" | "crashed" | "memory_limit", "stage": "...", "message": "..."}
"""

from __future__ import annotations

import sys

SANDBOX_MAX_ITEMS = 10**10  # the address-space limit is the real cap inside the sandbox


def _evaluator():  # type: ignore[no-untyped-def]
    """(evaluate, name). Raises perfhint.context's item cap for the whole process: sandboxed children only."""
    try:
        from perfhint import context
    except ImportError:
        import ast

        return ast.literal_eval, "ast.literal_eval"
    if hasattr(context, "MAX_ITEMS"):
        context.MAX_ITEMS = max(context.MAX_ITEMS, SANDBOX_MAX_ITEMS)
    return context.safe_literal, "perfhint.context.safe_literal"


def _measure(function, make_arguments):  # type: ignore[no-untyped-def]
    """(peak traced bytes, seconds) of one call after a warm-up call; see metrics.PEAK_TRACED_HEAP."""
    import gc
    import time
    import tracemalloc

    args, kwargs = make_arguments()
    if kwargs:
        function(*args, **kwargs)
    else:
        function(*args)
    del args, kwargs
    args, kwargs = make_arguments()
    if tracemalloc.is_tracing():
        tracemalloc.stop()  # a peak left over from an earlier call in this process must not count
    gc.collect()
    started = time.perf_counter()
    try:  # entering a try block allocates nothing on CPython 3.11+
        if kwargs:
            tracemalloc.start()
            result = function(*args, **kwargs)
            peak = tracemalloc.get_traced_memory()[1]
        else:
            tracemalloc.start()
            result = function(*args)
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        elapsed = time.perf_counter() - started
        tracemalloc.stop()
    del result
    return peak, elapsed


# Public names for the two pieces batch labelling reuses in its own long-lived child
# (training/perfhint_train/datasets/harness.py), so labels keep exactly this traced window.
literal_evaluator = _evaluator
traced_call = _measure


def main(spec_path: str) -> int:
    import json
    import os
    import platform
    import traceback
    import types

    with open(spec_path, encoding="utf-8") as stream:
        spec = json.load(stream)
    result_path = spec["result_path"]

    def finish(result: dict) -> int:
        temporary = result_path + ".partial"
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(result, stream)
        os.replace(temporary, result_path)
        return 0 if result["status"] == "ok" else 1

    def failure(stage: str, error: BaseException) -> int:
        status = "memory_limit" if isinstance(error, MemoryError) else "crashed"
        lines = traceback.format_exception_only(type(error), error)
        message = lines[-1].strip() if lines else type(error).__name__
        print(f"perfhint: {stage} failed: {message}", file=sys.stderr)
        return finish({"status": status, "stage": stage, "message": message})

    evaluate, evaluator_name = _evaluator()

    def build(text: str | None, default: object, what: str) -> object:
        if text is None or not text.strip():
            return default
        return evaluate(text)

    def make_arguments() -> tuple[tuple, dict]:
        args = build(spec["args_text"], (), "args")
        kwargs = build(spec.get("kwargs_text"), {}, "kwargs")
        if not isinstance(args, tuple):
            args = (args,)  # `args=10**6` means one argument, as in perfhint.context
        return args, kwargs  # type: ignore[return-value]

    try:
        args, kwargs = make_arguments()
    except MemoryError as error:
        return failure("building the arguments", error)
    except Exception as error:  # noqa: BLE001 - every evaluator error is the user's input
        return finish({"status": "bad_input", "stage": "arguments",
                       "message": f"cannot build the arguments: {error}"})
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        return finish({"status": "bad_input", "stage": "arguments",
                       "message": "kwargs must be a dict with string keys, e.g. {'n': 10**6}"})
    del args, kwargs

    module = types.ModuleType(spec["module_name"])
    module.__file__ = spec["module_path"]
    sys.modules[spec["module_name"]] = module
    try:
        with open(spec["module_path"], encoding="utf-8") as stream:
            code = compile(stream.read(), spec["module_path"], "exec")
        exec(code, module.__dict__)  # noqa: S102 - this is the sandboxed child; running the code is its job
    except BaseException as error:  # noqa: BLE001 - SystemExit from module level is the user's too
        return failure("running the module", error)

    import inspect

    target: object = module
    owner: object = None
    for part in spec["qualname"].split("."):
        if part == "<locals>" or not hasattr(target, part):
            where = "a nested function" if part == "<locals>" else f"no attribute {part!r}"
            return finish({"status": "bad_input", "stage": "lookup",
                           "message": f"cannot reach {spec['qualname']} from the module ({where}); "
                                      f"only module-level functions, classes' static methods and "
                                      f"class methods can be called without an instance"})
        owner, target = target, getattr(target, part)
    if inspect.isclass(owner) and inspect.isfunction(inspect.getattr_static(owner, spec["qualname"].rsplit(".", 1)[-1])):
        return finish({"status": "bad_input", "stage": "lookup",
                       "message": f"{spec['qualname']} is a method and needs an instance; measure a module-level "
                                  f"function that builds the object and calls it"})
    if not callable(target):
        return finish({"status": "bad_input", "stage": "lookup", "message": f"{spec['qualname']} is not callable"})

    try:
        peak, elapsed = _measure(target, make_arguments)
    except BaseException as error:  # noqa: BLE001
        return failure("the call", error)
    return finish({"status": "ok", "peak_bytes": peak, "call_s": elapsed,
                   "python": platform.python_version(), "evaluator": evaluator_name})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
