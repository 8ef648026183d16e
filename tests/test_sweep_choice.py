"""The sweep's decisions without running anything: candidate table and recipe files, Pareto fronts, the choice,
the closest candidate when none passes, exit codes, and the reports (JSON, Markdown, JUnit, text)."""

from __future__ import annotations

import json
import math
from xml.etree import ElementTree as ET

import pytest

from conftest import SAMPLE_H5, SAMPLE_NPZ
from test_report import _tables
from tfopt.errors import RecipeError, UsageError
from tfopt.files import Size
from tfopt.kinds import Kind, OutputKind
from tfopt.recipe import from_dict
from tfopt.render import sweep as render
from tfopt.report import ModelInfo, Report, Sizes
from tfopt.sweep.candidates import CANDIDATES, DEFAULT, parse_names, resolve
from tfopt.sweep.result import (Baseline, CandidateRow, Latency, SweepResult, choose, fronts, gate_miss,
                                pareto_front, quality_metric)
from tfopt.verify import Gate, OutputResult, VerifyResult

KIND = OutputKind(Kind.CLASSIFICATION, "graph: softmax (layer 'probs')")
BASE = from_dict({"model": {"path": str(SAMPLE_H5)}, "data": {"path": str(SAMPLE_NPZ), "eval_samples": 300},
                  "train": {"epochs": 1}, "verify": {"max_accuracy_drop": 0.02}})


def report(size: int, accuracy: float, agreement: float = 1.0, drop_limit: float = 0.01) -> Report:
    metrics = {"agreement": agreement, "accuracy": accuracy, "accuracy_reference": 0.95,
               "accuracy_drop": 0.95 - accuracy}
    gates = [Gate("agreement", 0.97, agreement, "default for int8"),
             Gate("accuracy_drop", drop_limit, 0.95 - accuracy, "default for int8")]
    return Report(recipe=None, model=ModelInfo("m.h5", "h5", "2.21.0", (), ()), mode="int8", output=None,
                  sizes=Sizes(Size(4000, 3000), Size(size, size // 2), Size(4000, 3600)),
                  verification=VerifyResult(300, [OutputResult("probs", KIND, True, metrics, gates)]))


def row(name: str, size: int, accuracy: float, p50: float = 1.0, **kw) -> CandidateRow:
    return CandidateRow(name, "table", name, report(size, accuracy, **kw), latency=Latency(p50, p50, p50, p50))


def test_the_table_has_every_option_and_unknown_names_list_them():
    assert list(CANDIDATES) == ["float32", "dynamic", "float16", "int8", "int16x8", "auto", "qat", "prune50-qat",
                                "prune80-qat", "cluster16-qat", "slim50-distill-int8"]
    assert "float32" not in DEFAULT and "auto" not in DEFAULT and len(DEFAULT) == len(CANDIDATES) - 2
    assert parse_names(" float16, prune80-qat ") == ["float16", "prune80-qat"]
    with pytest.raises(UsageError) as e:
        parse_names("float16,int4")
    assert str(e.value) == ("--candidates: unknown candidate 'int4'; expected names from: float32, dynamic, float16, "
                            "int8, int16x8, auto, qat, prune50-qat, prune80-qat, cluster16-qat, slim50-distill-int8 "
                            "(or --recipes DIR for your own recipe files)")


def test_rows_build_recipes_from_the_base_recipe():
    specs = {s.name: s for s in resolve(BASE, ["float16", "prune80-qat", "cluster16-qat"], None)}
    prune = specs["prune80-qat"].recipe
    assert [s.kind for s in prune.stages] == ["prune", "qat"] and prune.stages[0].sparsity == 0.8
    assert prune.mode.name == "int8" and prune.train.epochs == 1 and prune.verify.max_accuracy_drop == 0.02
    assert specs["cluster16-qat"].summary == "cluster → qat → int8" and specs["float16"].recipe.stages == ()
    assert prune.data == BASE.data and prune.model == BASE.model
    assert [s.name for s in resolve(BASE, None, None)] == list(DEFAULT)


def test_recipe_files_keep_their_settings_and_take_the_sweeps_model_data_and_gate_flags(tmp_path):
    (tmp_path / "mine.toml").write_text('version = 1\nseed = 9\n[model]\npath = "elsewhere.h5"\n'
                                        '[convert]\nquantize = "dynamic"\n[verify]\nmin_sqnr = 10.0\n'
                                        'max_accuracy_drop = 0.5\n[output]\ntflite = "x.tflite"\n')
    (tmp_path / "notes.txt").write_text("not a recipe")
    (spec,) = resolve(BASE, None, tmp_path)
    r = spec.recipe
    assert (spec.name, spec.source) == ("mine", str(tmp_path / "mine.toml"))
    assert r.mode.name == "dynamic" and r.model == BASE.model and r.data == BASE.data and r.seed == BASE.seed
    assert r.verify.min_sqnr == 10.0 and r.verify.max_accuracy_drop == 0.02  # the sweep's flag wins
    assert r.output.tflite is None
    with pytest.raises(UsageError, match="two candidates are named 'float16': rename the recipe file or drop it"):
        (tmp_path / "float16.toml").write_text('version = 1\n[convert]\nquantize = "float16"\n')
        resolve(BASE, ["float16"], tmp_path)


def test_bad_recipe_files_are_listed_together(tmp_path):
    (tmp_path / "a.toml").write_text('version = 1\n[convert]\nquantize = "int4"\n')
    (tmp_path / "b.toml").write_text('version = 1\n[train]\nepochz = 2\n')
    with pytest.raises(RecipeError) as e:
        resolve(BASE, None, tmp_path)
    assert len(e.value.problems) == 2 and e.value.problems[0].startswith(f"{tmp_path / 'a.toml'}: convert.quantize")
    with pytest.raises(UsageError, match=r"--recipes .*a\.toml: not a folder \(expected a folder of \*\.toml"):
        resolve(BASE, None, tmp_path / "a.toml")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match=r"no \*.toml recipe files in it"):
        resolve(BASE, None, empty)


def test_pareto_front_keeps_the_points_nothing_beats_on_both():
    points = {"a": (100.0, 0.90), "b": (200.0, 0.95), "c": (150.0, 0.90), "d": (100.0, 0.90), "e": (300.0, 0.95)}
    assert pareto_front(points) == ["a", "b", "d"]  # c is beaten by a; e by b; a and d tie: both stay


def test_the_cheapest_passing_candidate_is_chosen_ties_go_to_quality_then_order():
    rows = [row("big", 4000, 0.95), row("small", 1000, 0.945), row("same", 1000, 0.95),
            row("tiny-bad", 500, 0.90, p50=0.5)]
    assert choose(rows, "size", "accuracy") == ("same", None)
    assert choose(rows, "gzip", "accuracy") == ("same", None)
    rows[0].latency = Latency(0.1, 0.1, 0.1, 0.1)
    assert choose(rows, "latency", "accuracy") == ("big", None)
    assert fronts(rows, "accuracy") == {"size": ["same", "tiny-bad"], "gzip": ["same", "tiny-bad"],
                                        "latency": ["big"]}


def test_when_none_passes_the_closest_is_the_smallest_total_miss_in_points():
    rows = [row("drop3", 1000, 0.92), row("drop1.5", 2000, 0.935), row("agree", 500, 0.95, agreement=0.96)]
    assert [r.miss for r in rows] == [2.0, 0.5, 1.0]
    assert choose(rows, "size", "accuracy") == (None, "drop1.5")
    result = SweepResult("size", rows, Baseline(report(4000, 0.95)), "accuracy", None, "drop1.5")
    assert result.exit_code == 3 and not result.ok
    assert result.failures == ["no candidate met every gate; closest: drop1.5 (misses by 0.5: output 'probs' "
                               "(classification): accuracy drop 1.50 points (reference 95.00%, tflite 93.50%) > 1 "
                               "points (default for int8))"]
    assert gate_miss(Gate("sqnr_db", 30.0, 27.5, "x")) == 2.5 and gate_miss(Gate("sqnr_db", 30.0, 31.0, "x")) == 0
    assert gate_miss(Gate("cosine", 0.99, float("nan"), "x")) == math.inf


def test_a_sweep_where_nothing_ran_exits_1_and_errors_are_failed_rows():
    rows = [CandidateRow("int8", "table", "int8", error="the TFLite converter crashed (SIGSEGV) while converting to int8")]
    result = SweepResult("size", rows, Baseline(report(4000, 0.95)), "accuracy")
    assert choose(rows, "size", "accuracy") == (None, None) and result.exit_code == 1
    assert rows[0].status == "error" and rows[0].miss is None and rows[0].cost("size") is None
    assert result.failures == ["no candidate ran: int8: the TFLite converter crashed (SIGSEGV) while converting to int8"]


def test_quality_is_accuracy_with_labels_else_agreement():
    with_labels = report(1000, 0.94)
    assert quality_metric([with_labels]) == "accuracy"
    for o in with_labels.verification.outputs:
        o.metrics.pop("accuracy")
    assert quality_metric([with_labels]) == "agreement"


def sweep_result() -> SweepResult:
    rows = [row("float16", 2000, 0.95), row("int8", 1000, 0.95, p50=0.5),
            CandidateRow("gru|int8", "table", "int8", error="crashed (SIGSEGV) | see log")]
    result = SweepResult("size", rows, Baseline(report(4000, 0.95), Latency(2, 2, 2, 2), 0.95), "accuracy")
    result.fronts = fronts(rows, "accuracy")
    for r in rows:
        r.pareto = r.name in result.fronts["size"]
    result.chosen, result.closest = choose(rows, "size", "accuracy")
    result.output = "/out/best.tflite"
    return result


def test_sweep_json_markdown_junit_and_summary():
    result = sweep_result()
    doc = json.loads(result.to_json())
    assert (doc["schema"], doc["ok"], doc["exit_code"], doc["chosen"], doc["objective"]) == (
        "tfopt.sweep/1", True, 0, "int8", "size")
    assert [(c["name"], c["status"], c["pareto"], c["bytes"]) for c in doc["candidates"]] == [
        ("float16", "passed", False, 2000), ("int8", "passed", True, 1000), ("gru|int8", "error", False, None)]
    assert doc["candidates"][1]["latency"]["p50_ms"] == 0.5 and doc["baseline"]["quality"] == 0.95
    assert doc["candidates"][1]["report"]["schema"] == "tfopt.report/2"

    md = render.markdown(result)
    assert md.startswith("# tfopt sweep — ✅ chose `int8`\n")
    rows = _tables(md)[0]
    assert rows[0][:3] == ["candidate", "recipe", "status"] and len({len(r) for r in rows}) == 1
    assert rows[3][:3] == ["gru|int8", "int8", "ERROR"]  # the pipe is escaped: the row keeps its cells

    root = ET.fromstring(render.junit(result).split("\n", 1)[1])
    assert [s.get("name") for s in root.findall("testsuite")] == ["float16", "int8", "gru|int8"]
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "0", "1")

    text = render.summary(result)
    assert "chosen: int8 (lowest size among the 2 candidate(s) that passed every gate) -> /out/best.tflite" in text
    assert "  gru|int8: Error: crashed (SIGSEGV) | see log" in text
