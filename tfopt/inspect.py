"""``tfopt inspect``: what is inside a Keras model or a .tflite, before and after optimizing.

    result = inspect_path("model.int8.tflite")      # no TensorFlow needed for a .tflite
    result.layers[0].kind, result.layers[0].params, result.float_ops
    result = inspect_path("model.h5")                # Keras: + which TF-MOT stage supports each layer

For a .tflite the file is read as a flatbuffer (``tflite_model``): ops, tensors, dtypes and
quantization parameters are what the file stores.  For a Keras model, support for each TF-MOT
stage comes from TF-MOT's own registries (``tfmot_support``); ``int8_check`` converts the model
to int8 with float fallback on synthetic calibration data and lists the ops that stayed float
(the ops without an int8 kernel).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelLoadError
from .report import size_of
from .tflite_model import TFLiteModel, read_tflite

MIN_WEIGHT_ELEMENTS = 2  # constant tensors smaller than this (scalars) are not "weights"


@dataclass(frozen=True)
class WeightStats:
    name: str
    shape: tuple[int, ...]
    dtype: str
    sparsity: float  # fraction of exact zeros (quantized: stored value == zero point)
    unique_values: int


@dataclass
class LayerRow:
    """One Keras layer or one TFLite op."""

    name: str
    kind: str  # Keras class name or TFLite op name
    params: int
    output_shape: str
    dtypes: str = ""  # TFLite: the dtypes the op computes on
    sparsity: float | None = None  # over the layer's weights
    unique_values: int | None = None
    weights: list[WeightStats] = field(default_factory=list)
    stages: dict[str, bool | None] = field(default_factory=dict)  # Keras: prune / quantize / cluster support


@dataclass
class InspectResult:
    path: str
    kind: str  # "tflite" | "keras"
    format: str  # tflite / h5 / keras / savedmodel
    size: dict[str, int]
    inputs: list[dict]
    outputs: list[dict]
    layers: list[LayerRow]
    total_params: int
    tensors: list[dict] = field(default_factory=list)  # TFLite: every tensor with dtype and quantization
    stage_support: dict[str, dict] = field(default_factory=dict)  # Keras: per stage supported / unsupported
    float_ops: list[str] | None = None  # ops without an integer kernel (None: not checked)
    integer_only: bool | None = None
    notes: list[str] = field(default_factory=list)
    schema: str = "tfopt.inspect/1"

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"schema": d.pop("schema"), **d}


def inspect_path(path: str | Path, int8_check: bool = True, progress=None) -> InspectResult:
    """Inspect a .tflite file or a Keras model (``int8_check``: Keras only, converts once)."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model not found: {path} (expected a .tflite file, a Keras .h5/.keras file or a SavedModel)")
    if path.is_file() and is_tflite(path):
        return inspect_tflite(path.read_bytes(), str(path))
    from .inspect_keras import inspect_keras

    return inspect_keras(path, int8_check, progress or (lambda _m: None))


def is_tflite(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(8)
    return head[4:8] == b"TFL3" or path.suffix == ".tflite"


def weight_stats(name: str, values: np.ndarray, zero_point: np.ndarray | int = 0) -> WeightStats:
    flat = values.reshape(-1)
    zeros = values == zero_point  # zero_point broadcasts along the quantized axis
    return WeightStats(name, tuple(int(s) for s in values.shape), str(values.dtype),
                       round(float(np.mean(zeros)), 6) if flat.size else 0.0, int(np.unique(flat).size))


def summarize(weights: list[WeightStats]) -> tuple[float | None, int | None]:
    """(sparsity, unique values) of a layer's largest weight — its kernel — or None without weights."""
    if not weights:
        return None, None
    kernel = max(weights, key=lambda w: int(np.prod(w.shape)))
    return kernel.sparsity, kernel.unique_values


# ------------------------------------------------------------------ .tflite


def inspect_tflite(data: bytes, source: str = "model.tflite") -> InspectResult:
    model = read_tflite(data, source)
    stats = {t.index: _tensor_stats(model, t.index) for t in model.tensors if t.constant}
    dequantized = _dequantized_constants(model, stats)
    rows = [_op_row(model, op, stats, dequantized) for op in model.ops]
    sig = next(iter(model.signatures.values()), None)
    inputs = _io(model, sig["inputs"] if sig else {model.tensors[i].name: i for i in model.inputs})
    outputs = _io(model, sig["outputs"] if sig else {model.tensors[i].name: i for i in model.outputs})
    quantized = any(t.dtype in ("INT8", "INT16", "UINT8") and t.quantization and not t.constant for t in model.tensors)
    float_ops = [f"{op.name} ({_op_label(model, op)})" for op in model.float_ops()] if quantized else None
    notes = []
    if model.subgraphs > 1:
        notes.append(f"{model.subgraphs} subgraphs: only the main graph (subgraph 0) is listed")
    if not quantized:
        notes.append("activations are float: not an integer model, so no int8 kernel check applies")
    elif float_ops:
        notes.append(f"{len(float_ops)} op(s) compute in float inside an integer model (float fallback)")
    tensors = [{**t.to_dict(), **({"sparsity": stats[t.index].sparsity, "unique_values": stats[t.index].unique_values}
                                  if stats.get(t.index) else {})} for t in model.tensors]
    return InspectResult(
        path=source, kind="tflite", format="tflite", size=size_of(data), inputs=inputs, outputs=outputs,
        layers=rows, total_params=sum(r.params for r in rows), tensors=tensors, float_ops=float_ops,
        integer_only=(not float_ops) if quantized else False, notes=notes,
    )


def _tensor_stats(model: TFLiteModel, index: int) -> WeightStats | None:
    values = model.tensor_data(index)
    if values is None or values.size < MIN_WEIGHT_ELEMENTS:
        return None
    t = model.tensors[index]
    zero: np.ndarray | int = 0
    q = t.quantization
    if q is not None and any(q.zero_point):
        zp = np.asarray(q.zero_point, dtype=np.int64)
        if zp.size == 1 or values.ndim == 0:
            zero = int(zp[0])
        else:
            shape = [1] * values.ndim
            shape[q.axis] = zp.size
            zero = zp.reshape(shape)
    return weight_stats(t.name, values, zero)


def _op_row(model: TFLiteModel, op, stats: dict, dequantized: dict[int, int]) -> LayerRow:
    """A row per op; weights stored as float16/int8 behind a DEQUANTIZE count for the op that uses them."""
    if op.name == "DEQUANTIZE" and op.inputs and op.inputs[0] in stats:
        weights = []
    else:
        sources = [dequantized.get(i, i) for i in op.inputs if i >= 0]
        weights = [stats[i] for i in sources if stats.get(i) is not None and _is_parameter(model.tensors[i])]
    params = sum(int(np.prod(w.shape)) for w in weights)
    out_shapes = ", ".join(_shape(model.tensors[i].shape) for i in op.outputs if i >= 0)
    dtypes = "/".join(dict.fromkeys(d.lower() for d in model.op_dtypes(op)))
    sparsity, unique = summarize(weights)
    return LayerRow(_op_label(model, op), op.name, params, out_shapes, dtypes, sparsity, unique, weights)


def _is_parameter(t) -> bool:
    """Weights and biases (float or quantized), not shape/axis constants."""
    return t.dtype in ("FLOAT32", "FLOAT16", "BFLOAT16") or t.quantization is not None


def _dequantized_constants(model: TFLiteModel, stats: dict) -> dict[int, int]:
    """Output tensor of a DEQUANTIZE of a constant -> that constant."""
    return {op.outputs[0]: op.inputs[0] for op in model.ops
            if op.name == "DEQUANTIZE" and op.inputs and op.inputs[0] in stats and op.outputs}


def _op_label(model: TFLiteModel, op) -> str:
    """A readable name for an op: the layer path of its first output tensor (``model/conv1``)."""
    if not op.outputs or op.outputs[0] < 0:
        return f"op{op.index}"
    first = model.tensors[op.outputs[0]].name.split(";")[0]
    parts = first.split("/")
    name = "/".join(parts[:-1]) if len(parts) > 2 else first
    return name if len(name) <= 60 else name[:57] + "..."


def _io(model: TFLiteModel, mapping: dict[str, int]) -> list[dict]:
    out = []
    for name, index in mapping.items():
        t = model.tensors[index]
        out.append({"name": name, "shape": list(t.shape), "dtype": t.dtype.lower(),
                    "quantization": t.quantization.to_dict() if t.quantization else None})
    return out


def _shape(shape) -> str:
    return "(" + ", ".join("?" if s in (-1, None) else str(s) for s in shape) + ")"


# ------------------------------------------------------------------ text rendering


def render_text(r: InspectResult, max_rows: int = 400) -> str:
    """A human summary (what the CLI prints without --json)."""
    lines = [f"{r.path}  ({r.format}, {r.size['bytes']:,} bytes, gzip {r.size['gzip_bytes']:,} bytes)", ""]
    for label, specs in (("inputs", r.inputs), ("outputs", r.outputs)):
        for s in specs:
            lines.append(f"{label[:-1]:6s} {s['name']}: {_shape(s['shape'])} {s['dtype']}{_qtext(s.get('quantization'))}")
    lines.append("")
    has_stages = any(row.stages for row in r.layers)
    head = f"{'layer' if r.kind == 'keras' else 'op':40s} {'type':22s} {'params':>10s} {'sparsity':>8s} {'unique':>8s}"
    head += "  prune quant clust" if has_stages else "  dtypes"
    lines += [head, "-" * len(head)]
    for row in r.layers[:max_rows]:
        sp = "" if row.sparsity is None else f"{row.sparsity:.1%}"
        un = "" if row.unique_values is None else str(row.unique_values)
        line = f"{row.name[:40]:40s} {row.kind[:22]:22s} {row.params:>10,} {sp:>8s} {un:>8s}"
        if has_stages:
            line += "  " + " ".join(f"{_yes(row.stages.get(s)):5s}" for s in ("prune", "quantize", "cluster"))
        else:
            line += f"  {row.dtypes}"
        lines.append(line)
    if len(r.layers) > max_rows:
        lines.append(f"... {len(r.layers) - max_rows} more (use --json for all)")
    lines.append(f"total parameters: {r.total_params:,}")
    for stage, info in r.stage_support.items():
        bad, unknown = info["unsupported"], info.get("unknown", [])
        text = "unsupported: " + ", ".join(bad) if bad else ("all layers supported" if not unknown else "")
        if unknown:
            text += ("; " if text else "") + "cannot tell: " + ", ".join(unknown)
        lines.append(f"{stage}: {text}")
    if r.float_ops is not None:
        lines.append("int8: every op has an integer kernel" if not r.float_ops
                     else "int8: ops without an int8 kernel (stay float): " + ", ".join(r.float_ops))
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def _yes(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: "?"}[value]


def _qtext(q: dict | None) -> str:
    if not q:
        return ""
    if q["per_channel"]:
        return f" (per-channel, {len(q['scale'])} scales)"
    return f" (scale {q['scale']:.6g}, zero point {q['zero_point']})"
