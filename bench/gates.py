"""Measure the verification metrics behind the default gates (bench/RESULTS.md, "Default gates").

For each output kind (the tiny seeded models of tests/kind_models.py: a binary text model fed by float
ids, a face model with a softmax head and two regression heads, per-frame sigmoid maps, a logits
classifier) and each mode, the metrics of a good conversion; then the same for a broken one (weights
perturbed by 0.3 × their std, converted float32). The defaults must pass every good row and fail every
broken one.

    .venv/bin/python bench/gates.py [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import kind_models  # noqa: E402
from tfopt import from_dict  # noqa: E402
from tfopt.errors import TfoptError  # noqa: E402
from tfopt.modes import MODES  # noqa: E402
from tfopt.pipeline import run  # noqa: E402

from render import write_section  # noqa: E402

HEADING = "## Default gates"
METRICS = ("agreement", "accuracy_drop", "f1_drop", "sqnr_db", "cosine")


def rows_for(name: str, entry: dict, tmp: Path) -> list[tuple]:
    rows = []
    broken = kind_models.perturbed(entry["keras"], tmp / f"{name}_broken.h5", scale=0.3)
    plain = tuple(m.name for m in MODES.values() if not m.search)  # auto is a search over these (bench/auto.py)
    for label, model, modes in (("good", entry["model"], plain), ("broken", broken, ("none",))):
        for mode in modes:
            try:
                report = run(from_dict({"model": {"path": str(model)}, "data": {"path": str(entry["data"])},
                                        "convert": {"quantize": mode}, "output": {"tflite": str(tmp / "o.tflite")}}))
            except TfoptError as e:
                rows.append((name, label, mode, "-", f"error: {e}"[:60], *["-"] * len(METRICS), "-"))
                continue
            if label == "broken":  # verified against the good model: what a broken .tflite looks like
                report = _against(entry, tmp)
            for out in report.verification.outputs:
                m = out.metrics
                cells = [f"{m[k]:.4f}" if k in m and m[k] is not None else "-" for k in METRICS]
                rows.append((name, label, mode, out.name, str(out.kind.kind), *cells,
                             "pass" if not out.failures() else "FAIL"))
    return rows


def _against(entry: dict, tmp: Path):
    from tfopt.verify_job import VerifyJob, verify_file

    return verify_file(VerifyJob(str(tmp / "o.tflite"), str(entry["model"]), str(entry["data"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        models = {"text": kind_models.text(tmp), "face": kind_models.face(tmp), "audio": kind_models.audio(tmp),
                  "logits": kind_models.logits(tmp)}
        rows = [r for name, entry in models.items() for r in rows_for(name, entry, tmp)]
    header = ("model", "conversion", "mode", "output", "kind", *METRICS, "default gates")
    lines = [HEADING, "", "`bench/gates.py`: the metrics of good conversions in every mode and of a broken one "
             "(weights perturbed by 0.3 × their std, verified against the good model) for the output kinds of "
             "`tests/kind_models.py`. The default gates (README, \"Verification\") must pass every good row and "
             "fail every broken one.", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", *summary(rows), ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(ROOT / "bench" / "RESULTS.md", HEADING, text)


def summary(rows: list[tuple]) -> list[str]:
    """Verdicts per conversion (a conversion passes when every output passes), not per output row."""
    conversions: dict[tuple, list[tuple]] = {}
    for r in rows:
        conversions.setdefault(r[:3], []).append(r)
    verdict = {key: ("error" if rs[0][3] == "-" else "pass" if all(r[-1] == "pass" for r in rs) else "FAIL")
               for key, rs in conversions.items()}
    good_failed = [f"{m} {mode}" for (m, c, mode), v in verdict.items() if c == "good" and v == "FAIL"]
    errors = [f"{m} {mode}" for (m, c, mode), v in verdict.items() if v == "error"]
    broken_passed = [m for (m, c, _), v in verdict.items() if c == "broken" and v == "pass"]
    out = [f"* Good conversions that miss a default gate: {', '.join(good_failed) or 'none'}; converter errors "
           f"(no verdict): {', '.join(errors) or 'none'}.",
           f"* Broken models caught: {sum(c == 'broken' and v == 'FAIL' for (_, c, _), v in verdict.items())} "
           f"of {sum(c == 'broken' for (_, c, _) in verdict)}; passed: {', '.join(broken_passed) or 'none'}."]
    for m in broken_passed:
        agreements = [r[5] for r in conversions[(m, "broken", "none")]]
        out.append(f"  {m}: the perturbation left every decision as it was (agreement {', '.join(agreements)}); "
                   "a classifier is judged on its decisions, so it passes; SQNR and cosine are reported, not gated.")
    return out


if __name__ == "__main__":
    main()
