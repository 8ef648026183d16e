"""Benchmark `tfopt sweep` on the shipped sample (bench/RESULTS.md, section "## Sweep").

    .venv/bin/python bench/sweep.py            # the default candidates, --jobs 1 and 2, Ray (if installed)
    .venv/bin/python bench/sweep.py --quick    # post-training candidates only

Measures: the sweep's table and choice (per objective), wall time per phase with --jobs 1 and --jobs 2,
what the shared preparation saves the candidates, the Ray executor on a local instance against local
workers (same table), and the HTML report (size, plots).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODEL, DATA = ROOT / "sample_models" / "mnist_cnn.h5", ROOT / "sample_models" / "mnist.npz"
RESULTS, HEADING = ROOT / "bench" / "RESULTS.md", "## Sweep"
QUICK = "--quick" in sys.argv
PTQ = "float16,dynamic,int8,int16x8"
CLI = "import sys; from tfopt.cli import main; sys.argv[0] = 'tfopt'; main()"
HEAD = ("import sys, ray; ray.init(num_cpus=2, include_dashboard=False, logging_level='ERROR'); "
        "print(ray.get_runtime_context().gcs_address, flush=True); sys.stdin.read(); ray.shutdown()")


def sweep(out: Path, tag: str, *flags: str, env: dict | None = None) -> tuple[dict, float]:
    args = [str(MODEL), "--data", str(DATA), "-o", str(out / f"{tag}.tflite"), "--report", str(out / f"{tag}.json"),
            "--html", str(out / f"{tag}.html"), "--quiet", *flags] + (["--candidates", PTQ] if QUICK else [])
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CLI, "sweep", *args], capture_output=True, text=True,
                          env=env or os.environ)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"sweep {tag} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads((out / f"{tag}.json").read_text()), wall


def ray_sweep(out: Path) -> tuple[dict, float] | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return None
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = subprocess.Popen([sys.executable, "-c", HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        address = head.stdout.readline().strip()
        return sweep(out, "ray", "--executor", "ray", "--address", address, "--candidates", PTQ, env=env)
    finally:
        head.stdin.close()
        head.wait(timeout=120)


def table(doc: dict) -> list[str]:
    lines = ["| candidate | status | size | gzip | p50 ms | accuracy | gates | front (size) |", "|---|---|---|---|---|---|---|---|"]
    for c in doc["candidates"] + [{"name": "float32 baseline", "status": "reference", **doc["baseline"]}]:
        v = (c.get("report") or {}).get("verification") or {}
        gates = f"{v['gates_evaluated'] - c['gates_failed']}/{v['gates_evaluated']}" if v else "-"
        mark = " **(chosen)**" if c["name"] == doc["chosen"] else ""
        if c["bytes"] is None:  # an error row
            lines.append(f"| {c['name']} | error: {c['error']} | - | - | - | - | - | |")
            continue
        lines.append(f"| {c['name']}{mark} | {c['status']} | {c['bytes'] / 1024:.1f} KiB | {c['gzip_bytes'] / 1024:.1f} KiB"
                     f" | {c['latency']['p50_ms']:.3f} | {c['quality'] * 100:.2f}% | {gates} | "
                     f"{'*' if c.get('pareto') else ''} |")
    return lines


def by_objective(doc: dict) -> dict[str, str]:
    from tfopt.sweep.result import OBJECTIVES

    passed = [c for c in doc["candidates"] if c["status"] == "passed"]
    cost = {"size": lambda c: c["bytes"], "gzip": lambda c: c["gzip_bytes"], "latency": lambda c: c["latency"]["p50_ms"]}
    return {o: min(passed, key=lambda c: (cost[o](c), -c["quality"]))["name"] for o in OBJECTIVES} if passed else {}


def seconds(timings: dict) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())


def html_render(doc_path: Path) -> str:
    html = doc_path.with_suffix(".html").read_text()
    return f"{len(html) / 1024:.0f} KiB, {html.count('<svg')} inline SVG plots, no script, no URL"


def render(runs: dict, html: str) -> str:
    doc2, wall2 = runs[2]
    doc1, wall1 = runs[1]
    shared = doc2["baseline"]["shared_timings"]
    n = len(doc2["candidates"])
    saved = shared.get("reference outputs", 0) + shared.get("convert float32 baseline", 0)
    out = [HEADING, "",
           f"Measured by `bench/sweep.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
           f"{os.cpu_count()} CPUs (shared with other jobs: timings carry ±20 % noise). "
           f"`tfopt sweep sample_models/mnist_cnn.h5 --data sample_models/mnist.npz`"
           + (f" --candidates {PTQ}" if QUICK else " (default candidates and settings: at least 300 optimizer steps per stage)") + ".", ""]
    out += table(doc2) + [""]
    choices = ", ".join(f"`--objective {o}` → {name}" for o, name in by_objective(doc2).items())
    out += [f"* Chosen among the candidates that passed, per objective: {choices}."
            f" Quality = accuracy on {doc2['data']['eval_samples']} held-out samples.",
            f"* Wall time: `--jobs 1` **{wall1:.0f} s**, `--jobs 2` **{wall2:.0f} s** ({wall1 / wall2:.2f}× faster). "
            f"Phases with --jobs 2: {seconds(doc2['timings'])}; with --jobs 1: {seconds(doc1['timings'])}.",
            f"* Per candidate (its worker, --jobs 1): " + ", ".join(f"{c['name']} {c['seconds']:.1f} s"
                                                                     for c in doc1["candidates"]) + ". "
            f"About {doc1['candidates'][0]['report']['timings'].get('load', 0):.1f} s of each is the worker starting "
            "TensorFlow and loading the model (a fresh process per candidate: a converter crash stays one row).",
            f"* Shared once instead of per candidate ({seconds(shared)}): the reference outputs and the float32 baseline "
            f"({saved:.2f} s) are not recomputed by the {n} candidates (≈ {saved * (n - 1):.1f} s of work saved), "
            "nor are the data read and validated again.",
            f"* The HTML report (`--html`): {html}."]
    return "\n".join(out)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tfopt-bench-sweep-") as tmp:
        out = Path(tmp)
        runs = {jobs: sweep(out, f"jobs{jobs}", "--jobs", str(jobs)) for jobs in (2, 1)}
        ray = ray_sweep(out)
        text = render(runs, html_render(out / "jobs2.json"))
        if ray is not None:
            doc, wall = ray
            local = {c["name"]: (c["bytes"], c["gzip_bytes"], c["status"]) for c in runs[2][0]["candidates"]}
            same = all(local.get(c["name"]) == (c["bytes"], c["gzip_bytes"], c["status"]) for c in doc["candidates"])
            text += (f"\n* Ray executor (a local Ray instance, 2 CPUs; candidates {PTQ}): {wall:.0f} s wall, "
                     f"phases {seconds(doc['timings'])}; sizes and gate results {'identical to' if same else 'DIFFERENT from'} "
                     "the local workers'.")
    write_section(text)
    print(text)
    return 0


def write_section(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# tfopt benchmarks\n"
    if HEADING in current:
        start = current.index(HEADING)
        nxt = current.find("\n## ", start + len(HEADING))
        current = current[:start] + current[nxt + 1:] if nxt != -1 else current[:start]
    RESULTS.write_text(current.rstrip() + "\n\n" + text.rstrip() + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
