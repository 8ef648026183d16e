"""Run every shipped template on the sample model and rewrite the results table in recipes/README.md.

    .venv/bin/python bench/recipes_table.py            # all shipped templates
    .venv/bin/python bench/recipes_table.py int8 float16   # a subset (other rows are kept)

It runs exactly what a user runs (`tfopt run NAME... --set model.path=… --set data.path=…
--output-dir TMP --report TMP/run.json`),
reads the tfopt.run/1 JSON document and replaces the text between the markers
``<!-- recipes-table:start -->`` and ``<!-- recipes-table:end -->``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "recipes" / "README.md"
START, END = "<!-- recipes-table:start -->", "<!-- recipes-table:end -->"
HEADER = ("recipe", "mode", "stages", ".tflite size", "gzip size", "gzip vs .h5", "accuracy", "accuracy drop (pts)",
          "agreement", "verdict")  # fmt: skip


def run_recipes(names: list[str]) -> dict:
    tfopt = Path(sys.executable).with_name("tfopt")
    with tempfile.TemporaryDirectory(prefix="tfopt-recipes-") as tmp:
        report = Path(tmp) / "run.json"
        samples = ROOT / "sample_models"
        cmd = [str(tfopt), "run", *names, "--set", f"model.path={samples / 'mnist_cnn.h5'}",
               "--set", f"data.path={samples / 'mnist.npz'}", "--output-dir", tmp, "--report", str(report), "--quiet"]
        proc = subprocess.run(cmd, cwd=ROOT, check=False)
        if not report.exists():
            sys.exit(f"tfopt run failed (exit {proc.returncode}) before writing {report}")
        return json.loads(report.read_text())


def kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def row(run: dict) -> tuple[str, ...]:
    r = run["report"]
    if r is None:
        return (f"`{run['recipe']}`", "-", "-", "-", "-", "-", "-", "-", "-", f"error: {run['error']}")
    out, h5 = r["sizes"]["output"], r["sizes"]["input"]
    (m,) = [o["metrics"] for o in r["verification"]["outputs"]]
    stages = " → ".join(s["kind"] for s in r["recipe"].get("stages", [])) or "-"
    return (
        f"`{run['recipe']}`", r["mode"], stages, kib(out["bytes"]), kib(out["gzip_bytes"]),
        f"{h5['gzip_bytes'] / out['gzip_bytes']:.1f}x smaller", f"{m['accuracy'] * 100:.2f}%",
        f"{m['accuracy_drop'] * 100:+.2f}", f"{m['agreement'] * 100:.2f}%", "passed" if run["ok"] else "FAILED",
    )  # fmt: skip


def old_rows(text: str) -> dict[str, str]:
    body = text[text.index(START) : text.index(END)]
    return {m.group(1): line for line in body.splitlines() if (m := re.match(r"\| `([^`]+)` \|", line))}


def render(rows: dict[str, str], names: list[str], versions: dict) -> str:
    lines = [START, "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += [rows[n] for n in names if n in rows]
    env = ", ".join(f"{k} {v}" for k, v in versions.items())
    lines += ["", f"Measured by `bench/recipes_table.py` on `sample_models/mnist_cnn.h5` (1000 test images; {env}).", "", END]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    from tfopt.recipe.templates import shipped

    every = list(shipped())
    names = argv or every
    doc = run_recipes(names)
    text = README.read_text()
    rows = old_rows(text)
    rows.update({run["recipe"]: "| " + " | ".join(row(run)) + " |" for run in doc["runs"]})
    versions = next((run["report"]["versions"] for run in doc["runs"] if run["report"]), {})
    table = render(rows, every, versions)
    README.write_text(text[: text.index(START)] + table + text[text.index(END) + len(END) :])
    print(table)
    print(f"tfopt run exit code: {doc['exit_code']}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
