"""Plots for the HTML report, as inline SVG strings (matplotlib, imported on first use: ``--help`` stays fast).

Figures are drawn with ``matplotlib.figure.Figure`` (no pyplot, no global state, no display); text is
drawn as paths (no font needed to view it); each plot gets its own id salt so several SVGs can share
one page, and no date or creator metadata is written, so the same data give the same bytes.

    svg = scatter([Point("int8", 112_000, 0.95, "passed")], "size (KiB)", "accuracy", chosen="int8", front=["int8"])
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from itertools import count

COLORS = {"passed": "#2a9d8f", "failed": "#e63946", "reference": "#8d99ae", "chosen": "#f4a261"}
_salt = count()


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    status: str  # passed | failed | reference


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.subplots()


def to_svg(fig) -> str:
    """The figure as an inline ``<svg>`` element (no XML prologue, no metadata, ids unique to this plot)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": f"tfopt-plot-{next(_salt)}"}):
        fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)


def scatter(points: list[Point], xlabel: str, ylabel: str, chosen: str | None = None,
            front: list[str] | None = None, percent: bool = True) -> str:
    """Candidates as points (passed / failed / reference), the Pareto front as a dashed line, the chosen one starred."""
    fig, ax = _figure(6.4, 4.2)
    for status in ("reference", "failed", "passed"):
        pts = [p for p in points if p.status == status]
        if pts:
            ax.scatter([p.x for p in pts], [_y(p.y, percent) for p in pts], s=46, color=COLORS[status],
                       label=status if status != "reference" else "float32 baseline", zorder=3)
    on_front = sorted((p for p in points if p.label in (front or [])), key=lambda p: p.x)
    if on_front:  # ringed, and joined by a dashed line
        ax.plot([p.x for p in on_front], [_y(p.y, percent) for p in on_front], "--o", color="#457b9d", lw=1.2,
                markersize=12, markerfacecolor="none", label="Pareto front", zorder=2)
    for p, dy in zip(points, _label_offsets(points)):
        ax.annotate(p.label, (p.x, _y(p.y, percent)), textcoords="offset points", xytext=(5, dy), fontsize=8)
    best = next((p for p in points if p.label == chosen), None)
    if best is not None:
        ax.scatter([best.x], [_y(best.y, percent)], s=260, marker="*", color=COLORS["chosen"], edgecolor="black",
                   linewidth=0.8, label=f"chosen: {best.label}", zorder=4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + (" (%)" if percent else ""))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return to_svg(fig)


def _label_offsets(points: list[Point]) -> list[float]:
    """Vertical label offsets (points) that stack the labels of points lying close together."""
    xs, ys = [p.x for p in points], [p.y for p in points]
    dx, dy = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    offsets: list[float] = []
    for i, p in enumerate(points):
        near = sum(abs(p.x - q.x) < 0.08 * dx and abs(p.y - q.y) < 0.05 * dy for q in points[:i])
        offsets.append(5 + 11 * near)
    return offsets


def _y(value: float, percent: bool) -> float:
    return value * 100 if percent else value


def bars(labels: list[str], series: dict[str, list[float]], xlabel: str) -> str:
    """Horizontal grouped bars, one group per label (e.g. a layer's float32 and stored KiB)."""
    fig, ax = _figure(6.4, max(1.6, 0.42 * len(labels) * max(1, len(series)) ** 0.5 + 1.0))
    height = 0.8 / max(1, len(series))
    palette = ["#8d99ae", "#2a9d8f", "#e9c46a", "#e76f51"]
    for k, (name, values) in enumerate(series.items()):
        ax.barh([i + k * height for i in range(len(labels))], values, height=height, label=name,
                color=palette[k % len(palette)])
    ax.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(labels))], labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="best")
    return to_svg(fig)


def curves(series: dict[str, list[float]], xlabel: str = "epoch", ylabel: str = "") -> str:
    """Lines per named series (a fine-tuning stage's loss per epoch), epochs counted from 1."""
    fig, ax = _figure(6.4, 3.4)
    for name, values in series.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, loc="best")
    return to_svg(fig)
