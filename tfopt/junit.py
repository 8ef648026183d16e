"""JUnit XML for CI systems: one test case per threshold per output of each run."""

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


def junit_xml(reports: list[Report]) -> str:
    suites = ET.Element("testsuites", name="tfopt")
    for r in reports:
        name = Path(r.output).name if r.output else str(r.model.get("path"))
        suite = ET.SubElement(suites, "testsuite", name=name)
        cases = failures = 0
        v = r.verification or {"outputs": [], "thresholds": {}}
        for out in v["outputs"]:
            for t_key, m_key, op, label in CHECKS:
                limit, value = v["thresholds"].get(t_key), out.get(m_key)
                if limit is None or value is None:
                    continue
                cases += 1
                case = ET.SubElement(suite, "testcase", classname=name, name=f"{out['name']}: {label} {op} {limit:g}")
                ok = value <= limit if op == "<=" else value >= limit
                if not ok:
                    failures += 1
                    ET.SubElement(case, "failure", message=f"{label} = {value:.6g}, limit {op} {limit:g}").text = (
                        f"output {out['name']}: {label} {value:.6g} violates {op} {limit:g}"
                    )
        suite.set("tests", str(cases))
        suite.set("failures", str(failures))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
