"""JUnit XML for CI systems: one test suite per run, one test case per threshold per output.

A missed threshold is a ``<failure>`` whose message carries the measured value and the limit; a run
that stopped with an error (no verdict) is one test case with an ``<error>``.  Sizes go into the
suite's ``<properties>`` so CI dashboards can chart them.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from .report import Report

# (threshold key, metric key, comparison, label)
CHECKS = (
    ("max_accuracy_drop", "accuracy_drop", "<=", "accuracy drop"),
    ("min_agreement", "agreement", ">=", "top-1 agreement"),
    ("min_sqnr", "sqnr_db", ">=", "SQNR dB"),
)


def _name(r: Report) -> str:
    return Path(r.output).name if r.output else str(r.model.get("path"))


def junit_xml(reports: list[Report], suites: list[tuple[str, Report | None, str | None]] | None = None) -> str:
    """JUnit XML for ``reports`` (suite named after the output file), or for ``suites`` given as
    (name, report or None, error message or None) — the form ``tfopt run`` uses."""
    root = ET.Element("testsuites", name="tfopt")
    for name, report, error in suites if suites is not None else [(_name(r), r, None) for r in reports]:
        suite = ET.SubElement(root, "testsuite", name=name)
        if report is None:
            case = ET.SubElement(suite, "testcase", classname=name, name="run")
            ET.SubElement(case, "error", message=error or "error").text = error
            counts = (1, 0, 1)
        else:
            counts = _threshold_cases(suite, name, report)
        suite.set("tests", str(counts[0]))
        suite.set("failures", str(counts[1]))
        suite.set("errors", str(counts[2]))
    for key, attr in (("tests", "tests"), ("failures", "failures"), ("errors", "errors")):
        root.set(attr, str(sum(int(s.get(key)) for s in root)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _threshold_cases(suite: ET.Element, name: str, r: Report) -> tuple[int, int, int]:
    props = ET.SubElement(suite, "properties")
    for key, value in _properties(r).items():
        ET.SubElement(props, "property", name=key, value=str(value))
    cases = failures = 0
    v = r.verification or {"outputs": [], "thresholds": {}}
    for out in v["outputs"]:
        for t_key, m_key, op, label in CHECKS:
            limit, value = v["thresholds"].get(t_key), out.get(m_key)
            if limit is None or (value is None and m_key != "sqnr_db"):
                continue
            cases += 1
            case = ET.SubElement(suite, "testcase", classname=name, name=f"{out['name']}: {label} {op} {limit:g}")
            if value is None:  # SQNR of identical outputs is infinite (null in JSON): passes any limit
                continue
            if not (value <= limit if op == "<=" else value >= limit):
                failures += 1
                ET.SubElement(case, "failure", message=f"{label} = {value:.6g}, limit {op} {limit:g}").text = (
                    f"output {out['name']}: {label} {value:.6g} violates {op} {limit:g}"
                )
    return cases, failures, 0


def _properties(r: Report) -> dict[str, object]:
    props: dict[str, object] = {"mode": r.mode, "output": r.output or ""}
    for key in ("output", "float32_tflite", "input"):
        size = r.sizes.get(key)
        if size:
            props[f"{key}_bytes"], props[f"{key}_gzip_bytes"] = size["bytes"], size["gzip_bytes"]
    return props
