"""``tfopt inspect``: what is inside a Keras model or a .tflite, before and after optimizing.

    result = inspect_path("model.int8.tflite")      # no TensorFlow needed for a .tflite
    result = inspect_path("model.h5")                # Keras: + which TF-MOT stage supports each layer
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelLoadError
from ..tflite.reader import is_tflite_bytes
from .result import InspectResult, LayerRow, render_text, tensor_lines
from .tflite import inspect_tflite

__all__ = ["InspectResult", "LayerRow", "inspect_path", "inspect_tflite", "is_tflite", "render_text", "tensor_lines"]


def is_tflite(path: Path) -> bool:
    with path.open("rb") as fh:
        return is_tflite_bytes(fh.read(8)) or path.suffix == ".tflite"


def inspect_path(path: str | Path, int8_check: bool = True, progress=None) -> InspectResult:
    """Inspect a .tflite file or a Keras model (``int8_check``: Keras only, converts once)."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model not found: {path} (expected a .tflite file, a Keras .h5/.keras file or a SavedModel)")
    if path.is_file() and is_tflite(path):
        return inspect_tflite(path.read_bytes(), str(path))
    from .keras import inspect_keras

    return inspect_keras(path, int8_check, progress or (lambda _m: None))
