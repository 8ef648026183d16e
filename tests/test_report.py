"""Report renderings: strict JSON (no Infinity), text summary, Markdown that GitHub renders, JUnit."""

from __future__ import annotations

import json
import math
from xml.etree import ElementTree as ET

import numpy as np
from markdown_it import MarkdownIt

from tfopt.files import Size, size_of
from tfopt.kinds import Kind, OutputKind
from tfopt.modes import MODES
from tfopt.render.junit import junit_xml
from tfopt.render.markdown import cell, markdown
from tfopt.render.text import summary
from tfopt.report import ModelInfo, Report, SkippedLayer, Sizes, StageResult
from tfopt.verify import Gate, OutputResult, VerifyResult, output_metrics


def make_report(sqnr_out=None, flip=False, failed_output=None, stages=()):
    ref = np.eye(4)[[0, 1, 2, 3] * 25]
    out = ref.copy()
    if flip:
        out[:10] = np.eye(4)[[1] * 10]
    if sqnr_out is not None:
        out = out + sqnr_out
    kind = OutputKind(Kind.CLASSIFICATION, "graph: softmax (layer 'probs')")
    labels = np.array([0, 1, 2, 3] * 25)
    metrics = output_metrics(ref, out, labels, kind)
    gates = [Gate("agreement", 0.97, metrics["agreement"], "default for int8"),
             Gate("accuracy_drop", 0.01, metrics["accuracy_drop"], "default for int8")]
    verification = VerifyResult(100, [OutputResult("probs", kind, True, metrics, gates)])
    return Report(
        recipe=None, model=ModelInfo("m.h5", "h5", "2.21.0", (), ()), mode="int8", output="/x/m.int8.tflite",
        sizes=Sizes(Size(4000, 3000), Size(1000, 900), Size(4000, 3600)), timings={"load": 1.0},
        verification=verification, failed_output=failed_output, stages=list(stages),
    )


def test_json_is_strict_and_infinite_sqnr_becomes_null():
    doc = json.loads(make_report().to_json())
    assert doc["schema"] == "tfopt.report/2" and doc["ok"] is True and doc["exit_code"] == 0
    (probs,) = doc["verification"]["outputs"]
    assert probs["metrics"]["sqnr_db"] is None and probs["kind"] == "classification"
    assert probs["gates"][0] == {"metric": "agreement", "op": ">=", "limit": 0.97, "value": 1.0, "passed": True,
                                 "evaluated": True, "source": "default for int8"}
    assert list(doc)[:3] == ["schema", "ok", "exit_code"]
    assert doc["sizes"]["output_vs_float32"] == 0.25


def test_failed_report_exits_3_and_summary_lists_failures():
    r = make_report(flip=True, failed_output="/x/m.int8.failed.tflite")
    assert r.exit_code == 3 and not r.ok
    text = summary(r)
    assert "verification: FAILED\n  - output 'probs' (classification): top-1 agreement 0.9300 < 0.97" in text
    assert "the model was written to /x/m.int8.failed.tflite, not to the output path" in text
    assert "0.250x" in text and "probs: classification (graph: softmax (layer 'probs'))" in text


def _tables(md: str) -> list[list[list[str]]]:
    """Every GFM table of a Markdown document as rows of cell texts (what GitHub renders)."""
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    tables, row, current = [], None, None
    for i, t in enumerate(tokens):
        if t.type == "table_open":
            current = []
        elif t.type == "tr_open":
            row = []
        elif t.type in ("th_open", "td_open"):
            row.append(tokens[i + 1].content)
        elif t.type == "tr_close":
            current.append(row)
        elif t.type == "table_close":
            tables.append(current)
    return tables


def test_markdown_renders_as_tables_with_every_cell_in_its_column():
    md = markdown([make_report(sqnr_out=0.001)])
    assert "## `m.int8.tflite` — int8 — ✅ passed" in md
    sizes, metrics, gates = _tables(md)
    assert sizes[0] == ["model", "size", "gzip", "vs float32"] and sizes[-1] == ["output", "1000 B", "900 B", "0.250x"]
    assert metrics[0] == ["output", "kind", "agreement", "acc (ref)", "acc (tflite)", "drop (pts)", "F1 drop (pts)",
                          "max abs err", "cosine", "SQNR dB"]
    assert all(len(r) == len(metrics[0]) for r in metrics)
    assert gates[1] == ["probs", "classification", "top-1 agreement", "1.0000", ">= 0.97", "pass"]


def test_markdown_escapes_pipes_in_cells():
    assert cell("a|b") == "a\\|b" and cell("x\ny") == "x y"
    stage = StageResult("prune", {"target_sparsity": 0.8, "pattern": "unstructured"}, "labels", "mse", 10, 8, 1e-3, 1, 2,
                        skipped_layers=[SkippedLayer("odd|name", "Lambda", "no | support")])
    tables = _tables(markdown([make_report(stages=[stage])]))
    assert tables[-1][1] == ["prune", "odd|name", "Lambda", "no | support"]


def test_junit_has_one_case_per_gate_and_failures_carry_value_and_limit():
    root = ET.fromstring(junit_xml([make_report(flip=True)]).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "2"
    names = [c.get("name") for c in suite.findall("testcase")]
    assert names == ["probs (classification): top-1 agreement >= 0.97", "probs (classification): accuracy drop <= 1 pts"]
    assert "0.9300 < 0.97" in suite.find("testcase/failure").get("message")


def test_size_of_bytes_is_deterministic():
    a, b = size_of(b"x" * 1000), size_of(b"x" * 1000)
    assert a == b and a.bytes == 1000 and a.gzip_bytes < 100


def test_mode_table_defaults_are_what_the_help_says():
    assert MODES["int8"].min_agreement == 0.97 and not math.isnan(MODES["float16"].max_accuracy_drop)


def test_the_stage_table_names_block_and_2_4_pruning():
    from tfopt.render.tables import stage_rows

    def stage(**settings):
        return StageResult("prune", {"target_sparsity": 0.8, **settings}, "labels", "mse", 10, 8, 1e-3, 1, 2)

    report = make_report(stages=[stage(pattern="unstructured", block="8x1"), stage(pattern="2:4"),
                                 stage(pattern="unstructured")])
    assert [row[0] for row in stage_rows(report)] == ["prune 80% (block 8x1)", "prune 80% (2:4)",
                                                      "prune 80% (unstructured)"]


def test_the_slim_section_renders_in_text_markdown_html_and_json():
    from tfopt.render.html import report_html
    from tfopt.render.markdown import markdown
    from tfopt.render.text import summary
    from tfopt.report import LayerChannels, LeftAlone, SlimSection

    channels = [LayerChannels("conv1", "Conv2D", 16, 8), LayerChannels("probs", "Dense", 10, 10)]
    section = SlimSection(0.5, {}, 1, "auto", channels,
                          [LeftAlone("probs", "Dense", "model output 'probs'")], [], 2, 1, 1000, 250, 4000, 1000,
                          {"original": {"mode": "int8", "bytes": 4096, "gzip_bytes": 4000, "latency_us": 50.0},
                           "final": {"mode": "int8", "bytes": 1024, "gzip_bytes": 1000, "latency_us": 25.0}},
                          "1 thread")
    slim = StageResult("slim", {"ratio": 0.5}, "nothing (slimming does not train)", "", 0, 64, 0.0, 0, 0, slim=section)
    report = make_report(stages=[slim])
    text = summary(report)
    assert "parameters      1,000     250      0.250x" in text and ".tflite (int8)  4.0 KiB   1.0 KiB  0.250x" in text
    assert "latency (µs)    50.0      25.0     0.50x" in text and "conv1  Conv2D  16 → 8" in text
    assert "| conv1 | Conv2D | 16 → 8 |" in markdown([report]) and "16 → 8" in report_html(report)
    doc = report.to_dict()["stages"][0]["slim"]
    assert doc["params_ratio"] == 0.25
    assert doc["channels"][0] == {"name": "conv1", "cls": "Conv2D", "before": 16, "after": 8}
