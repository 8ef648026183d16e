"""Measure ``--quantize auto`` where full int8 misses the gate (bench/RESULTS.md, "Auto quantization").

The model is built here (seeded, no downloads): an MNIST CNN whose heavy convolutions carry most of the
MACs, with one small SeparableConv2D ``sep_sensitive`` whose depthwise channel 0 is scaled by ``--outlier``
and the matching pointwise row by its inverse (the float function is unchanged; the depthwise output's
per-tensor int8 scale is crushed).  Full int8 misses the default agreement gate; auto must meet it with
≥ 80 % of the MACs in int8.  Reported: the candidates auto measured (size, latency at 1 thread, int8 shares)
against full int8 and float32, the layers kept in float and why, and the time the search took.

    .venv/bin/python bench/auto.py [--no-write]      (runs auto twice: by default, then with --allow-slower)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tfopt import from_dict  # noqa: E402
from tfopt.pipeline import run  # noqa: E402

from render import write_section  # noqa: E402

HEADING = "## Auto quantization"
INTRO = ("On this CPU (x86, XNNPACK, 1 thread) int8 kernels run these small CNNs *slower* than float32 (see "
         "\"Latency of the produced models\": mnist_cnn int8 1.8× float32), so by default auto refuses every int8 "
         "candidate as slower than float32 and takes the smallest candidate that meets the gates and is not slower "
         "(float16 here); with `--allow-slower` (size first, e.g. for a microcontroller or an NPU) it keeps the one "
         "sensitive layer in float and everything else int8. The layers kept do not depend on latency.")
MNIST = ROOT / "sample_models" / "mnist.npz"


def build(d: Path, outlier: float, epochs: int = 2) -> tuple[Path, Path]:
    from tfopt import _tf

    _tf.seed_everything(0)
    K = _tf.tf_keras()
    data = np.load(MNIST)
    x, y = data["x_train"].astype(np.float32), data["y_train"]
    L = K.layers
    inp = K.Input((28, 28, 1), name="image")
    h = L.Conv2D(32, 3, activation="relu", name="conv1")(inp)
    h = L.MaxPooling2D(2, name="pool1")(L.Conv2D(32, 3, activation="relu", name="conv2")(h))
    h = L.SeparableConv2D(32, 3, activation="relu", name="sep_sensitive")(h)
    h = L.Conv2D(64, 3, activation="relu", name="conv3")(h)
    h = L.Flatten(name="flatten")(L.MaxPooling2D(2, name="pool2")(h))
    out = L.Dense(10, activation="softmax", name="probs")(L.Dense(64, activation="relu", name="fc1")(h))
    model = K.Model(inp, out, name="bench_cnn")
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    layer = model.get_layer("sep_sensitive")
    depthwise, pointwise, bias = layer.get_weights()
    depthwise[:, :, 0, :] *= outlier
    pointwise[:, :, 0, :] /= outlier
    layer.set_weights([depthwise, pointwise, bias])
    model.save(d / "bench_cnn.h5", include_optimizer=False)
    np.savez(d / "bench_cnn.npz", x_train=x[:1000], y_train=y[:1000], x_test=data["x_test"], y_test=data["y_test"])
    return d / "bench_cnn.h5", d / "bench_cnn.npz"


def measure(model: Path, data: Path, out: Path, allow_slower: bool) -> tuple[dict, float]:
    start = time.perf_counter()
    report = run(from_dict({"model": {"path": str(model)}, "data": {"path": str(data)},
                            "convert": {"quantize": "auto", "allow_slower": allow_slower},
                            "output": {"tflite": str(out)}}))
    return report.to_dict(), time.perf_counter() - start


def render(doc: dict, seconds: float, outlier: float, allow_slower: bool) -> str:
    auto = doc["auto"]
    f32, i8 = auto["float32"], auto["full_int8"]
    chosen = auto["chosen"]
    rows = ["| candidate | gates | agreement | bytes | vs full int8 | vs float32 | latency ms | vs full int8 | "
            "vs float32 | MACs in int8 | weights in int8 |", "|" + "---|" * 11]
    for c in [f32] + auto["candidates"]:
        mark = " **(chosen)**" if chosen and c["label"] == chosen["label"] else ""
        rows.append(f"| {c['label']}{mark} | {'pass' if c['passed'] else 'miss'} | {c['score']['agreement']:.4f} | "
                    f"{c['bytes']} | {c['bytes'] / i8['bytes']:.2f}× | {c['bytes'] / f32['bytes']:.2f}× | "
                    f"{c['latency_ms']:.3f} | {c['latency_ms'] / i8['latency_ms']:.2f}× | "
                    f"{c['latency_ms'] / f32['latency_ms']:.2f}× | {c['int8_mac_share']:.1%} | "
                    f"{c['int8_weight_share']:.1%} |")
    share = chosen["int8_mac_share"] if chosen else 0.0
    goal = "met" if chosen and chosen["mode"] == "int8" and share >= 0.8 else "**missed**"
    kept = "; ".join(f"`{k}` — {v}" for k, v in auto["kept_in_float"].items()) or "none"
    return "\n".join([
        f"### {'With `--allow-slower`' if allow_slower else 'Default (never slower than float32)'}", "",
        f"`bench/auto.py` (`--outlier {outlier:g}`{', --allow-slower' if allow_slower else ''}): a seeded MNIST CNN "
        "(built by the script, 2 epochs) whose small SeparableConv2D `sep_sensitive` carries one outlier depthwise "
        "channel; `tfopt convert --quantize auto` with the default int8 gates (agreement ≥ 0.97) on the 1000 "
        f"MNIST test samples. Latency: LiteRT + XNNPACK, 1 thread, batch 1, the lowest of 3 medians of 30 invokes, measured "
        f"inside the search on this shared 2-core machine. Whole run (load, reference, search, write): {seconds:.1f} s; "
        f"{auto['evaluations']} int8 mixes verified.", "",
        *rows, "",
        f"Kept in float: {kept}.", "",
        f"Goal — full int8 misses the gate, auto meets it with ≥ 80 % of the MACs in int8: {goal} "
        f"({share:.1%} of the MACs in int8; full int8 {'missed' if not i8['passed'] else 'passed'}).", "",
        *(f"* {n}" for n in auto["notes"]), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only; do not update bench/RESULTS.md")
    parser.add_argument("--outlier", type=float, default=1000.0)
    args = parser.parse_args()
    parts = []
    with tempfile.TemporaryDirectory() as d:
        model, data = build(Path(d), args.outlier)
        for allow_slower in (False, True):  # the default, then with --allow-slower
            doc, seconds = measure(model, data, Path(d) / "auto.tflite", allow_slower)
            parts.append(render(doc, seconds, args.outlier, allow_slower))
    text = "\n".join([HEADING, "", INTRO, "", *parts])
    print(text)
    if not args.no_write:
        write_section(ROOT / "bench" / "RESULTS.md", HEADING, text)


if __name__ == "__main__":
    main()
