"""Labelled datasets: (code, context) -> measured or published cost, split by leakage group.

What is hard, and where it is handled:

- Labels must mean what the editor's hint means: a Python function's tracemalloc peak for one call
  with the `args=` the user wrote, a script's or program's peak RSS, a Triton kernel's latency on a
  named GPU. `harness.py` measures; `records.py` names the metrics once.
- Real code has tiny inputs, so `transcoder.py` scales them over orders of magnitude, and
  `synthetic.py` covers memory behaviours real code rarely shows. Both emit *tasks* in chains of
  growing size; `build.py` measures chains in parallel, sharded and resumable.
- Published GPU numbers (`gpu_kernels.py`) leave hardware, dtypes and full shapes implicit; the
  records make them explicit and say what was inferred.
- Leakage: `splits.py` assigns whole groups (problem, kernel family, template) to one split.
- Third-party code is never committed: `labels.py` keeps ids, inputs and values in
  `training/labels/`, and records are rebuilt from ../shared. `card.py` writes training/DATASETS.md.
"""
