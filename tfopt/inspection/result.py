"""What ``tfopt inspect`` returns (``InspectResult``, one ``LayerRow`` per layer or op) and its text rendering."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..files import Size
from ..tflite.reader import WeightStats


@dataclass
class LayerRow:
    """One Keras layer or one TFLite op."""

    name: str
    kind: str  # Keras class name or TFLite op name
    params: int
    output_shape: str
    dtypes: str = ""  # TFLite: the dtypes the op computes on
    sparsity: float | None = None  # of the layer's kernel (its largest weight)
    unique_values: int | None = None
    weights: list[WeightStats] = field(default_factory=list)
    stages: dict[str, bool | None] = field(default_factory=dict)  # Keras: prune / quantize / cluster support
    support_notes: dict[str, str] = field(default_factory=dict)  # stage -> why not / how (e.g. tfopt's config)


@dataclass
class InspectResult:
    path: str
    kind: str  # "tflite" | "keras"
    format: str  # tflite / h5 / keras / savedmodel
    size: Size
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
        d["size"] = self.size.to_dict()
        return {"schema": d.pop("schema"), **d}


def summarize(weights: list[WeightStats]) -> tuple[float | None, int | None]:
    """(sparsity, unique values) of a layer's largest weight — its kernel — or None without weights."""
    if not weights:
        return None, None
    kernel = max(weights, key=lambda w: int(np.prod(w.shape)))
    return round(kernel.sparsity, 6), kernel.unique_values


def shape_text(shape) -> str:
    return "(" + ", ".join("?" if s in (-1, None) else str(s) for s in shape) + ")"


def render_text(r: InspectResult, max_rows: int = 400) -> str:
    """A human summary (what the CLI prints without --json)."""
    lines = [f"{r.path}  ({r.format}, {r.size.bytes:,} bytes, gzip {r.size.gzip_bytes:,} bytes)", ""]
    for label, specs in (("input", r.inputs), ("output", r.outputs)):
        for s in specs:
            lines.append(f"{label:6s} {s['name']}: {shape_text(s['shape'])} {s['dtype']}{_qtext(s.get('quantization'))}")
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
    for row in r.layers:
        for stage, why in row.support_notes.items():
            lines.append(f"{stage} {row.name}: {why}")
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


def tensor_lines(r: InspectResult) -> list[str]:
    """``--tensors``: every tensor with its dtype, shape and quantization."""
    lines = []
    for t in r.tensors:
        q = t["quantization"]
        qtext = "" if not q else (f" per-channel[{len(q['scale'])}]" if q["per_channel"]
                                  else f" scale={q['scale']:.6g} zp={q['zero_point']}")
        lines.append(f"{t['index']:4d} {t['dtype']:8s} {str(tuple(t['shape'])):22s}{qtext}  {t['name'][:80]}")
    return lines


def _yes(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: "?"}[value]


def _qtext(q: dict | None) -> str:
    if not q:
        return ""
    if q["per_channel"]:
        return f" (per-channel, {len(q['scale'])} scales)"
    return f" (scale {q['scale']:.6g}, zero point {q['zero_point']})"
