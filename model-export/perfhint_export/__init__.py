"""perfhint_export: the PyTorch side of perfhint.

Owns the RLM architectures (model.py) that training and export share, loading of regress-lm and perfhint
checkpoints, and the PyTorch -> ONNX -> int8 -> verified bundle path. Needs the `export` extra (torch).
"""
