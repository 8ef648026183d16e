"""tfopt performance benchmarks: every ratio measured in one run; writes bench/RESULTS.md.

    make bench          # or: .venv/bin/python bench/run.py [--quick]

Sections (goals from issue 6): start-up, conversion overhead, verification cost, peak memory,
latency of the produced models (sample CNN and a MobileNetV2-sized model with random weights),
size table, converter entry points, and a cProfile of the conversion.  Each measurement runs in
a fresh process (a wrapper records the process tree's peak RSS with RUSAGE_CHILDREN).  This file
owns the "## Performance" section of RESULTS.md; other sections (bench/stages.py appends
"## Fine-tuning stages") are kept.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TFOPT = str(Path(PY).parent / "tfopt")
H5 = ROOT / "sample_models" / "mnist_cnn.h5"
NPZ = ROOT / "sample_models" / "mnist.npz"
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Performance"
QUICK = "--quick" in sys.argv
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}

WRAPPER = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "rc": p.returncode, "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stdout": p.stdout[-20000:], "stderr": p.stderr[-3000:]}))
"""

MINIMAL_CONVERT = """
import os, sys, time
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf, tf_keras
model = tf_keras.models.load_model(sys.argv[1], compile=False)
x = np.load(sys.argv[2])["x_train"]
x = x[np.sort(np.random.default_rng(0).permutation(len(x))[:200])].astype(np.float32)  # tfopt's seeded subset
t = time.perf_counter()
c = tf.lite.TFLiteConverter.from_keras_model(model)
c.optimizations = [tf.lite.Optimize.DEFAULT]
c.representative_dataset = lambda: ([x[i : i + 1]] for i in range(len(x)))
c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
c.inference_input_type = c.inference_output_type = tf.int8
open(sys.argv[3], "wb").write(c.convert())
print(time.perf_counter() - t)
"""

# the same for a Keras 3 model: Keras 3's own loader, and from_keras_model (which exports a SavedModel itself)
MINIMAL_CONVERT_KERAS3 = MINIMAL_CONVERT.replace('os.environ["TF_USE_LEGACY_KERAS"] = "1"\n', "").replace(
    "import numpy as np, tensorflow as tf, tf_keras\nmodel = tf_keras.models.load_model(sys.argv[1], compile=False)",
    "import numpy as np, tensorflow as tf, keras\nmodel = keras.saving.load_model(sys.argv[1], compile=False)")
KERAS3 = ROOT / "sample_models" / "mnist_cnn.keras"

NAIVE_VERIFY = """
import os, sys, time, json
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf, tf_keras
from ai_edge_litert.interpreter import Interpreter
model = tf_keras.models.load_model(sys.argv[1], compile=False)
d = np.load(sys.argv[2]); x, y = d["x_test"][:1000].astype(np.float32), d["y_test"][:1000]
t0 = time.perf_counter()
ref = model.predict(x, batch_size=250, verbose=0)
t1 = time.perf_counter()
it = Interpreter(model_path=sys.argv[3], num_threads=os.cpu_count()); it.allocate_tensors()
i, o = it.get_input_details()[0], it.get_output_details()[0]
(si, zi), (so, zo) = i["quantization"], o["quantization"]
out = []
for k in range(len(x)):
    it.set_tensor(i["index"], np.clip(np.round(x[k : k + 1] / si + zi), -128, 127).astype(np.int8))
    it.invoke()
    out.append((it.get_tensor(o["index"]).astype(np.float32) - zo) * so)
out = np.concatenate(out)
t2 = time.perf_counter()
print(json.dumps({"total": t2 - t0, "predict": t1 - t0, "loop": t2 - t1,
                  "agreement": float(np.mean(out.argmax(1) == ref.argmax(1)))}))
"""

MAKE_MODELS = """
import sys, json, time
from pathlib import Path
from tfopt import _tf
from tfopt.convert import ConvertConfig, convert
from tfopt.data import load_data, random_calibration
from tfopt.models import load_model
from tfopt.modes import MODES
out = Path(sys.argv[1]); quick = sys.argv[2] == "1"
_tf.seed_everything(0)
K = _tf.tf_keras()
mnv2 = K.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classes=1000)  # random weights
mnv2.save(out / "mobilenetv2.h5", include_optimizer=False)
times = {}
for name, path in (("mnist_cnn", sys.argv[3]), ("mobilenetv2", str(out / "mobilenetv2.h5"))):
    model = load_model(path)
    if name == "mnist_cnn":
        cal = load_data(sys.argv[4], model.inputs, model.outputs, calibration_samples=200).calibration
    else:  # random calibration is fine for speed: the weights are random too
        cal = random_calibration(model.inputs, 8 if quick else 32, 0)
    for mode in ("none", "dynamic", "float16", "int8"):
        t = time.perf_counter()
        data = convert(model, ConvertConfig(MODES[mode]), cal if mode == "int8" else None).data
        times[f"{name} {mode}"] = time.perf_counter() - t
        (out / f"{name}.{mode}.tflite").write_bytes(data)
print(json.dumps(times))
"""

ENTRY_POINTS = """
import os, sys, time, json, tempfile
from tfopt import _tf
tf = _tf.tf(); K = _tf.tf_keras()
model = K.models.load_model(sys.argv[1], compile=False)
def keras_model():
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()
def saved_model():
    with tempfile.TemporaryDirectory() as d:
        tf.saved_model.save(model, d)
        return tf.lite.TFLiteConverter.from_saved_model(d).convert()
def concrete():  # a dict keyed by the output layer's name keeps the signature names of from_keras_model
    fn = tf.function(lambda x: {model.output_names[0]: model(x, training=False)})
    spec = tf.TensorSpec((None,) + tuple(model.inputs[0].shape[1:]), model.inputs[0].dtype, name=model.input_names[0])
    return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function(spec)], model).convert()
out, keras3 = {}, {}
order = [("from_concrete_functions (dict outputs)", concrete), ("SavedModel export + from_saved_model", saved_model),
         ("from_keras_model", keras_model)]
for rep in range(2):
    for name, f in order:
        t = time.perf_counter(); n = len(f()); out.setdefault(name, []).append(time.perf_counter() - t)
        keras3.setdefault(name, "keras" in sys.modules)
print(json.dumps({"times": out, "keras3_imported_after_first": keras3}))
"""

PROFILE = """
import cProfile, pstats, io, sys
from tfopt.recipe import from_dict
from tfopt import pipeline
recipe = from_dict({"model": {"path": sys.argv[1]}, "data": {"path": sys.argv[2]}, "convert": {"quantize": "int8"},
                    "verify": {"enabled": True}, "output": {"tflite": sys.argv[3]}})
prof = cProfile.Profile(); prof.enable(); report = pipeline.run(recipe); prof.disable()
s = io.StringIO(); pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(45)
print("TIMINGS", __import__("json").dumps(report.timings))
print(s.getvalue())
"""


def wrapped(*cmd: str) -> dict:
    """Run ``cmd`` under a fresh wrapper process: wall time, exit code and the tree's peak RSS."""
    p = subprocess.run([PY, "-c", WRAPPER, *map(str, cmd)], capture_output=True, text=True, env=ENV)
    result = json.loads(p.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{result['stderr']}")
    return result


def script(code: str, *args) -> str:
    return wrapped(PY, "-c", textwrap.dedent(code), *args)["stdout"]


def startup() -> dict:
    help_ = [wrapped(TFOPT, "--help")["wall"] for _ in range(5)]
    tf = [wrapped(PY, "-c", "import tensorflow")["wall"] for _ in range(2 if QUICK else 3)]
    return {"tfopt_help_s": statistics.median(help_), "import_tf_s": statistics.median(tf)}


def conversion(tmp: Path) -> dict:
    """tfopt convert --no-verify vs a bare converter script, for a tf_keras (.h5) and a Keras 3 (.keras) model."""
    return {"tf_keras": conversion_pairs(tmp, H5, MINIMAL_CONVERT), "keras3": conversion_pairs(tmp, KERAS3, MINIMAL_CONVERT_KERAS3)}


def conversion_pairs(tmp: Path, model: Path, minimal: str) -> dict:
    reps = 1 if QUICK else 3
    ours, mine = [], []
    for i in range(reps):  # interleaved pairs: both sides of a pair see the same machine load
        run = wrapped(TFOPT, "convert", model, "--quantize", "int8", "--data", NPZ, "--no-verify", "-q",
                      "-o", tmp / "tfopt.int8.tflite", "--report", tmp / f"convert{i}.json")
        run["timings"] = json.loads((tmp / f"convert{i}.json").read_text())["timings"]
        ours.append(run)
        mine.append(wrapped(PY, "-c", minimal, model, NPZ, tmp / "minimal.int8.tflite"))
    pairs = sorted(range(reps), key=lambda i: ours[i]["wall"] / mine[i]["wall"])
    o, m = ours[pairs[len(pairs) // 2]], mine[pairs[len(pairs) // 2]]  # the median pair
    return {"model": model.name, "tfopt_s": o["wall"], "minimal_s": m["wall"], "tfopt_all": [r["wall"] for r in ours],
            "minimal_all": [r["wall"] for r in mine], "tfopt_peak_mb": max(r["peak_mb"] for r in ours),
            "minimal_peak_mb": max(r["peak_mb"] for r in mine), "timings": o["timings"],
            "minimal_convert_s": float(m["stdout"].strip().splitlines()[-1])}


def verification(tmp: Path) -> dict:
    run = wrapped(TFOPT, "convert", H5, "--quantize", "int8", "--data", NPZ, "-q", "-o", tmp / "v.int8.tflite",
                  "--report", tmp / "verify.json")
    report = json.loads((tmp / "verify.json").read_text())
    naive = json.loads(script(NAIVE_VERIFY, H5, NPZ, tmp / "v.int8.tflite").strip().splitlines()[-1])
    v, t = report["verification"], report["timings"]
    return {"wall_s": run["wall"], "verify_s": t["verify"] + t["reference outputs"], "samples": v["samples"],
            "reference_s": v["reference_seconds"], "tflite_s": v["tflite_seconds"], "naive": naive,
            "baseline_s": t.get("convert float32 baseline", 0.0)}


def latency(models: Path) -> dict:
    """Per model and thread count: each model's least-disturbed p50 over REPEATS interleaved `tfopt bench` calls."""
    out = {}
    runs = {"mnist_cnn": (50, 200), "mobilenetv2": (5, 15 if QUICK else 30)}
    repeats = 1 if QUICK else 3
    for name, (warmup, n) in runs.items():
        files = [models / f"{name}.{m}.tflite" for m in ("none", "dynamic", "float16", "int8")]
        keras = H5 if name == "mnist_cnn" else models / "mobilenetv2.h5"
        for threads in (1, 2):
            best = None
            for _ in range(repeats):
                doc = json.loads(wrapped(TFOPT, "bench", files[0], *sum([["--compare", f] for f in files[1:]], []),
                                         "--keras", keras, "--threads", threads, "--runs", n, "--warmup", warmup,
                                         "--json")["stdout"])
                best = doc["runs"] if best is None else [min(a, b, key=lambda r: r["p50_ms"])
                                                         for a, b in zip(best, doc["runs"])]
            out[(name, threads)] = best
    out["repeats"] = repeats
    return out


def sizes(models: Path) -> list[tuple[str, str, int, int]]:
    import gzip

    rows = []
    for name in ("mnist_cnn", "mobilenetv2"):
        for mode in ("none", "dynamic", "float16", "int8"):
            data = (models / f"{name}.{mode}.tflite").read_bytes()
            rows.append((name, "float32" if mode == "none" else mode, len(data), len(gzip.compress(data, 9, mtime=0))))
    return rows


def profile(tmp: Path) -> tuple[dict, list[str]]:
    text = script(PROFILE, H5, NPZ, tmp / "p.int8.tflite")
    timings = json.loads(text.split("TIMINGS ", 1)[1].splitlines()[0])
    keep = ("pipeline.py", "convert.py", "verify.py", "models.py", "data.py", "lite.py", "convert_phase",
            "load_model", "_convert", "representative", "saving", "predict", "signature_runner", "__call__")
    lines = [ln for ln in text.splitlines() if ln.strip() and ln.strip()[0].isdigit() and any(k in ln for k in keep)]
    return timings, lines[:25]


def main() -> None:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tfopt-bench-") as d:
        tmp = Path(d)
        print("start-up ...", file=sys.stderr)
        s = startup()
        print("conversion ...", file=sys.stderr)
        c = conversion(tmp)
        print("verification ...", file=sys.stderr)
        v = verification(tmp)
        print("models (MobileNetV2 with random weights) ...", file=sys.stderr)
        conv_times = json.loads(script(MAKE_MODELS, tmp, "1" if QUICK else "0", H5, NPZ).strip().splitlines()[-1])
        print("latency ...", file=sys.stderr)
        lat = latency(tmp)
        z = sizes(tmp)
        print("converter entry points ...", file=sys.stderr)
        entry = json.loads(script(ENTRY_POINTS, H5).strip().splitlines()[-1])
        print("profile ...", file=sys.stderr)
        prof_timings, prof = profile(tmp)
    text = render(s, c, v, lat, z, conv_times, entry, prof_timings, prof, time.perf_counter() - start)
    write_section(text)
    print(text)


def write_section(text: str) -> None:
    """Replace this script's section of RESULTS.md, keep every other section."""
    old = RESULTS.read_text() if RESULTS.exists() else "# tfopt benchmarks\n"
    head, sep, rest = old.partition(SECTION)
    tail = ""
    if sep:
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
    RESULTS.write_text(head.rstrip() + "\n\n" + text.rstrip() + "\n\n" + tail.lstrip())


sys.path.insert(0, str(Path(__file__).parent))
from render import render  # noqa: E402 - the Markdown lives in bench/render.py to keep this file short

if __name__ == "__main__":
    main()
