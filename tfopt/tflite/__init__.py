"""`.tflite` files: one flatbuffer reader (``reader``) and one LiteRT interpreter runner (``runner``)."""

from .reader import TFLiteModel, WeightStats, is_tflite_bytes, kernel_sparsity, read, summarize_ops
from .runner import Runner, dequantize_output, quantize_input

__all__ = ["Runner", "TFLiteModel", "WeightStats", "dequantize_output", "is_tflite_bytes", "kernel_sparsity", "quantize_input", "read",
           "summarize_ops"]
