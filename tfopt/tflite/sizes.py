"""Bytes per Keras layer in a .tflite: what its weights take as stored, and what the same weights take in float32.

Every constant tensor (weights, biases, constants) is attributed to the Keras layer its name comes from
(QAT's ``quant_<layer>`` wrappers map back to ``<layer>``; tensors of no known layer are grouped as
``(other)``).  The float32 column is the tensors' element count × 4: the bytes a float32 conversion
stores for the same weights, so it needs no second conversion (and works for ``tfopt verify`` too).

    rows = layer_sizes(read(data), ["conv1", "dense1", "probs"])
    rows[0].layer, rows[0].bytes, rows[0].float32_bytes, rows[0].dtypes
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .reader import TFLiteModel, layer_of

OTHER = "(other)"
FLOAT32_BYTES = 4


@dataclass(frozen=True)
class LayerSize:
    layer: str
    bytes: int  # stored bytes of the layer's constant tensors
    float32_bytes: int  # the same tensors in float32
    dtypes: tuple[str, ...]  # stored types, largest tensor first (int8 kernel, int32 bias)
    tensors: int

    @property
    def ratio(self) -> float | None:
        return round(self.bytes / self.float32_bytes, 4) if self.float32_bytes else None

    def to_dict(self) -> dict:
        return {"layer": self.layer, "bytes": self.bytes, "float32_bytes": self.float32_bytes,
                "ratio": self.ratio, "dtypes": [d.lower() for d in self.dtypes], "tensors": self.tensors}


def layer_sizes(model: TFLiteModel, layer_names: list[str] | None = None) -> list[LayerSize]:
    """One row per layer that owns constant tensors, in the order the file first uses them."""
    names = list(layer_names or [])
    wrapped = {f"quant_{n}": n for n in names}
    groups: dict[str, list] = {}
    for t in model.tensors:
        if not t.constant or t.nbytes == 0:
            continue
        layer = layer_of(t.name, names + list(wrapped)) if names else OTHER
        layer = wrapped.get(layer, layer)
        groups.setdefault(layer if layer in names else OTHER, []).append(t)
    rows = []
    for layer, tensors in groups.items():
        tensors.sort(key=lambda t: -t.nbytes)
        elements = sum(int(np.prod(t.shape)) if t.shape else 1 for t in tensors)
        rows.append(LayerSize(layer, sum(t.nbytes for t in tensors), elements * FLOAT32_BYTES,
                              tuple(dict.fromkeys(t.dtype for t in tensors)), len(tensors)))
    return sorted(rows, key=lambda r: r.layer == OTHER)  # (other) last, the layers in file order
