"""perfhint: predicted peak memory and GPU kernel latency for code, before it runs.

This is the runtime side (language server, CLI, ONNX decoding, measuring). It must stay importable
without torch: `python -c "import perfhint, sys; assert 'torch' not in sys.modules"` is a test.
"""

__version__ = "0.1.0"
