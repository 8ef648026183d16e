"""JUnit XML for CI systems: one test suite per run, one test case per verification gate.

A missed gate is a ``<failure>`` whose message carries the measured value and the limit; a gate that
could not be evaluated is ``<skipped>``; a run that stopped with an error (no verdict) is one test
case with an ``<error>``.  Sizes go into the suite's ``<properties>`` so CI dashboards can chart them.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from ..report import Report
from ..verify import gate_message
from .tables import gate_limit, gate_name


def _name(r: Report) -> str:
    return Path(r.output).name if r.output else r.model.path


def junit_xml(reports: list[Report], suites: list[tuple[str, Report | None, str | None]] | None = None) -> str:
    """JUnit XML for ``reports`` (suite named after the output file), or for ``suites`` given as
    (name, report or None, error message or None) — the form ``tfopt run`` uses."""
    root = ET.Element("testsuites", name="tfopt")
    for name, report, error in suites if suites is not None else [(_name(r), r, None) for r in reports]:
        suite = ET.SubElement(root, "testsuite", name=name)
        if report is None:
            case = ET.SubElement(suite, "testcase", classname=name, name="run")
            ET.SubElement(case, "error", message=error or "error").text = error
            counts = (1, 0, 1, 0)
        else:
            counts = _gate_cases(suite, name, report)
        for key, value in zip(("tests", "failures", "errors", "skipped"), counts):
            suite.set(key, str(value))
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key)) for s in root)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _gate_cases(suite: ET.Element, name: str, r: Report) -> tuple[int, int, int, int]:
    props = ET.SubElement(suite, "properties")
    for key, value in _properties(r).items():
        ET.SubElement(props, "property", name=key, value=str(value))
    cases = failures = skipped = 0
    for out in r.verification.outputs if r.verification else []:
        for gate in out.gates:
            cases += 1
            label = f"{out.name} ({out.kind.kind}): {gate_name(out, gate)} {gate_limit(gate)}"
            case = ET.SubElement(suite, "testcase", classname=name, name=label)
            if not gate.evaluated:
                skipped += 1
                ET.SubElement(case, "skipped", message="not evaluated (no labels for this output)")
            elif not gate.passed:
                failures += 1
                message = gate_message(out, gate)
                ET.SubElement(case, "failure", message=message).text = message
    return cases, failures, 0, skipped


def _properties(r: Report) -> dict[str, object]:
    props: dict[str, object] = {"mode": r.mode, "output": r.output or ""}
    if r.sizes:
        for key, size in (("output", r.sizes.output), ("float32_tflite", r.sizes.float32_tflite), ("input", r.sizes.input)):
            if size:
                props[f"{key}_bytes"], props[f"{key}_gzip_bytes"] = size.bytes, size.gzip_bytes
    return props
