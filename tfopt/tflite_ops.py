"""What is inside a .tflite: its ops with the dtypes they compute in.

``ops(tflite_bytes)`` lists every op of the main subgraph, in execution order, with the
dtypes of its (non-optional) inputs and outputs, read from the flatbuffer by ``tflite_model``
(no interpreter, no TensorFlow).
``OpInfo.computes_in_float`` marks the ops that still compute in floating point in a quantized
model (the QUANTIZE / DEQUANTIZE boundary ops excluded); ``summarize`` groups names by count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .tflite_model import BOUNDARY_OPS, read_tflite

FLOAT_DTYPES = frozenset({"float32", "float16", "float64", "bfloat16"})
# Ops that keep state in variable tensors between invocations (the fused RNN kernels, resource variables):
# a .tflite holding one must be reset (Interpreter.reset_all_variables) before each new sequence.
STATEFUL_OPS = frozenset({
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
    "BIDIRECTIONAL_SEQUENCE_RNN", "SVDF", "ASSIGN_VARIABLE",
})


@dataclass(frozen=True)
class OpInfo:
    """One op of a .tflite: its name (e.g. FULLY_CONNECTED, FlexMatrixDeterminant) and I/O dtypes."""

    index: int
    name: str
    input_dtypes: tuple[str, ...]
    output_dtypes: tuple[str, ...]

    @property
    def is_flex(self) -> bool:
        return self.name.startswith("Flex")

    @property
    def computes_in_float(self) -> bool:
        """True for a compute op (not a boundary QUANTIZE/DEQUANTIZE) with a float input or output."""
        if self.name in BOUNDARY_OPS:
            return False
        return any(d in FLOAT_DTYPES for d in self.input_dtypes + self.output_dtypes)


def ops(tflite: bytes) -> list[OpInfo]:
    """Every op of the main subgraph of ``tflite`` with its input/output dtypes (read from the flatbuffer)."""
    model = read_tflite(tflite)
    dtype = {t.index: t.dtype.lower() for t in model.tensors}
    return [
        OpInfo(op.index, op.name, tuple(dtype[i] for i in op.inputs if i >= 0), tuple(dtype[i] for i in op.outputs if i >= 0))
        for op in model.ops
    ]


def stateful_ops(tflite: bytes) -> list[OpInfo]:
    """The ops that carry state from one invocation to the next."""
    return [op for op in ops(tflite) if op.name in STATEFUL_OPS]


def summarize(items: list[OpInfo]) -> str:
    """``SIN ×2, TANH`` — op names in first-seen order with their counts."""
    counts = Counter(op.name for op in items)
    return ", ".join(name if n == 1 else f"{name} ×{n}" for name, n in counts.items())
