"""Recipe files: strict parsing, --set overrides, relative paths, flags ↔ fields, dumping, CI report files.

Everything here is in-process and needs no TensorFlow (CLI calls that only validate spawn no worker).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from conftest import ROOT, SAMPLE_H5, SAMPLE_NPZ, sha256
from test_report import make_report
from tfopt.cli.convert import convert
from tfopt.errors import RecipeError, UsageError
from tfopt.recipe import STAGES, Recipe, from_dict, load_recipe
from tfopt.recipe.files import dumps_recipe, dumps_toml, relative_paths, split_field_path
from tfopt.recipe.flags import FLAGS, recipe_from_flags, to_raw
from tfopt.recipe.templates import find, load, shipped
from tfopt.render.junit import junit_xml
from tfopt.runs import Outcome, run_markdown, summary, worst_exit_code

SHIPPED = ["cluster16-qat-int8", "dynamic", "float16", "int8", "int8-qat", "prune24-int8", "prune80-qat-int8",
           "slim50-distill-int8"]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def problems(fn, *args, **kwargs) -> list[str]:
    with pytest.raises(RecipeError) as info:
        fn(*args, **kwargs)
    return info.value.problems


# ---------------------------------------------------------------- shipped recipes


FILES = [f"model.path={SAMPLE_H5}", f"data.path={SAMPLE_NPZ}"]


def test_every_shipped_template_is_a_described_job_without_files():
    assert list(shipped()) == SHIPPED
    for name, path in shipped().items():
        first, second = path.read_text().splitlines()[:2]
        assert first.startswith("# ") and len(first) > 20, name
        assert second == f"# template: tfopt run {name} --set model.path=MODEL --set data.path=DATA", name
        recipe = load(name, FILES)
        assert recipe.model.path == str(SAMPLE_H5) and recipe.data.path == str(SAMPLE_NPZ), name
        assert recipe.verify.enabled, name


def test_a_template_without_its_files_says_which_set_flags_it_needs():
    assert problems(load, "int8") == [
        "template int8: model: got nothing, expected a table (this template needs --set model.path=MODEL)",
    ]
    assert problems(load, "int8", [f"model.path={SAMPLE_H5}"]) == [
        "template int8: data.path: got nothing, expected calibration data: --quantize int8 calibrates on real "
        "samples (pass --data FILE, or --calibration random to accept synthetic calibration) "
        "(this template needs --set data.path=DATA)",
    ]


def test_shipped_stage_templates_hold_the_documented_settings():
    kinds = {name: [(s.kind, getattr(s, "sparsity", None)) for s in load(name, FILES).stages] for name in SHIPPED}
    assert kinds["prune80-qat-int8"] == [("prune", 0.8), ("qat", None)]
    assert kinds["cluster16-qat-int8"] == [("cluster", None), ("qat", None)]
    assert load("cluster16-qat-int8", FILES).stages[0].clusters == 16
    assert load("prune24-int8", FILES).stages[0].pattern == "2:4"
    assert kinds["int8-qat"] == [("qat", None)] and kinds["int8"] == [] and kinds["float16"] == []
    assert [s.kind for s in load("slim50-distill-int8", FILES).stages] == ["slim", "distill"]
    assert load("slim50-distill-int8", FILES).stages[0].ratio == 0.5
    assert {n: load(n, FILES).convert.quantize for n in ("float16", "dynamic", "int8")} == {
        "float16": "float16", "dynamic": "dynamic", "int8": "int8"}  # fmt: skip


def test_examples_are_the_templates_applied_to_the_samples():
    assert sorted(p.stem for p in (ROOT / "examples").glob("*.toml")) == sorted(SHIPPED)
    assert not (ROOT / "recipes").is_symlink()
    for name in SHIPPED:
        example = load_recipe(ROOT / "examples" / f"{name}.toml")
        assert Path(example.model.path) == SAMPLE_H5 and Path(example.data.path) == SAMPLE_NPZ
        assert example.stages == load(name, FILES).stages and example.convert == load(name, FILES).convert


def test_a_qat_stage_in_a_file_means_int8_like_the_flag():
    raw = {"model": {"path": "m.h5"}, "data": {"path": "d.npz"}, "stages": [{"kind": "qat"}]}
    assert from_dict(raw).convert.quantize == "int8"
    assert recipe_from_flags({"model": Path("m.h5"), "data": Path("d.npz"), "qat": True}).convert.quantize == "int8"


def test_unknown_shipped_name_lists_the_shipped_ones():
    with pytest.raises(RecipeError, match=r"^int9: no such recipe file or shipped recipe; shipped: cluster16-qat-int8, "):
        find("int9")


# ---------------------------------------------------------------- strict validation


BAD_TOML = """\
version = 1
seed = -1

[modle]
path = "m.h5"

[data]
calibration_samples = 0
eval_samples = 1.5

[[stages]]
kind = "prun"

[[stages]]
kind = "prune"
sparsity = 1.2
pattrn = "2:4"

[convert]
quantize = "int9"
allow_float_fallback = "yes"

[verify]
max_accuracy_drop = nan
"""


def test_every_error_in_a_file_is_reported_at_once_with_field_paths(tmp_path):
    path = write(tmp_path / "bad.toml", BAD_TOML)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.exit_code == 2
    assert info.value.message == f"11 problems in {path}"
    assert info.value.problems == [
        f"{path}: " + p
        for p in (
            "modle: got an unknown key (did you mean 'model'?), expected one of "
            "['convert', 'data', 'model', 'output', 'seed', 'stages', 'train', 'verify', 'version']",
            "model: got nothing, expected a table",
            "seed: got -1, expected 0 <= x",
            "data.calibration_samples: got 0, expected 1 <= x",
            "data.eval_samples: got 1.5, expected an integer",
            "stages[0].kind: got 'prun', expected one of ['slim', 'distill', 'prune', 'cluster', 'qat'] (did you mean 'prune'?)",
            "stages[1].pattrn: got an unknown key (did you mean 'pattern'?), expected one of "
            + str(sorted(f.name for f in dataclasses.fields(STAGES["prune"]))),
            "stages[1].sparsity: got 1.2, expected 0 <= x < 1",
            "convert.quantize: got 'int9', expected one of ['none', 'dynamic', 'float16', 'int8', 'int16x8', 'auto'] "
            "(did you mean 'int8'?)",
            "convert.allow_float_fallback: got 'yes', expected true or false",
            "verify.max_accuracy_drop: got nan, expected a finite number",
        )
    ]


def test_the_same_errors_from_json(tmp_path):
    raw = tomllib.loads(BAD_TOML)
    raw["verify"]["max_accuracy_drop"] = 2  # JSON has no nan
    path = write(tmp_path / "bad.json", json.dumps(raw))
    found = problems(load_recipe, path)
    assert len(found) == 11
    assert f"{path}: verify.max_accuracy_drop: got 2, expected 0 <= x <= 1" in found
    assert f"{path}: stages[0].kind: got 'prun', expected one of ['slim', 'distill', 'prune', 'cluster', 'qat'] (did you mean 'prune'?)" in found


def test_contradictions_are_reported_with_the_other_errors():
    found = problems(from_dict, {
        "model": {"path": "m.h5"},
        "stages": [{"kind": "qat"}, {"kind": "prune", "sparsity": 2}],
        "convert": {"quantize": "float16", "io_type": "int8"},
        "verify": {"enabled": False, "min_sqnr": 30},
    }, source="r.toml")  # fmt: skip
    assert found == [
        "r.toml: stages[1].sparsity: got 2, expected 0 <= x < 1",
        "r.toml: convert.io_type: got 'int8', expected one of ['float32'] for quantize = 'float16'",
        "r.toml: convert.quantize: got 'float16', expected 'int8' with a qat stage (QAT trains for int8)",
        "r.toml: data.path: got nothing, expected training data for the fine-tuning stages",
        "r.toml: verify.min_sqnr: got 30.0, expected no gate with verify.enabled = false (--no-verify)",
    ]


def test_stage_order_and_duplicates_are_contradictions():
    raw = {"model": {"path": "m.h5"}, "data": {"path": "d.npz"}, "convert": {"quantize": "int8"},
           "stages": [{"kind": "qat"}, {"kind": "prune"}, {"kind": "qat"}]}  # fmt: skip
    assert problems(from_dict, raw) == [
        "recipe: stages: got ['qat', 'prune', 'qat'], expected each kind at most once",
        "recipe: stages: got order ['qat', 'prune', 'qat'], expected the fixed order slim → distill → prune → cluster → qat",
    ]


def test_wrong_shapes_of_data(tmp_path):
    assert problems(from_dict, [1, 2]) == ["recipe: recipe: got [1, 2], expected a table"]
    assert problems(from_dict, {"model": "m.h5", "stages": {"kind": "qat"}}) == [
        "recipe: model: got 'm.h5', expected a table",
        "recipe: stages: got a table, expected a list of tables",
    ]
    assert problems(from_dict, {"model": {"path": "m.h5"}, "stages": [3, {}]}) == [
        "recipe: stages[0]: got 3, expected a table with kind = one of ['slim', 'distill', 'prune', 'cluster', 'qat']",
        "recipe: stages[1].kind: got nothing, expected one of ['slim', 'distill', 'prune', 'cluster', 'qat']",
    ]
    assert problems(from_dict, {"model": {"path": "m.h5"}, "version": 2}) == ["recipe: version: got 2, expected 1"]


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(RecipeError, match=r"nope.toml: cannot read recipe \(No such file or directory\)"):
        load_recipe(tmp_path / "nope.toml")
    bad = write(tmp_path / "x.toml", "[model\npath = 1\n")
    with pytest.raises(RecipeError, match=rf"^{bad}: not valid TOML: .*line 1"):
        load_recipe(bad)
    bad = write(tmp_path / "x.json", "{")
    with pytest.raises(RecipeError, match=rf"^{bad}: not valid JSON: "):
        load_recipe(bad)


# ---------------------------------------------------------------- paths and --set


MINIMAL = '[model]\npath = "models/m.h5"\n[data]\npath = "../data/d.npz"\n[output]\ntflite = "out/m.tflite"\n'


def test_relative_paths_resolve_against_the_recipe_folder(tmp_path, monkeypatch):
    (tmp_path / "ci").mkdir()
    path = write(tmp_path / "ci" / "r.toml", MINIMAL + 'junit = "/abs/j.xml"\n')
    monkeypatch.chdir(tmp_path)
    r = load_recipe("ci/r.toml")
    assert r.model.path == str(tmp_path / "ci" / "models" / "m.h5")
    assert r.data.path == str(tmp_path / "data" / "d.npz")
    assert r.output.tflite == str(tmp_path / "ci" / "out" / "m.tflite")
    assert r.output.junit == "/abs/j.xml"
    assert load_recipe(path) == r


def test_set_overrides_any_field_including_stage_indexes(tmp_path, monkeypatch):
    path = write(tmp_path / "r.toml", MINIMAL + '[convert]\nquantize = "int8"\n[[stages]]\nkind = "prune"\n')
    monkeypatch.chdir(tmp_path / "..")
    r = load_recipe(path, [
        "stages[0].sparsity=0.9", "stages.0.schedule=constant", "stages[1].kind=qat",  # [1] appends a stage
        "verify.max_accuracy_drop=0.005", "convert.io_type=uint8", "data.path=x/calib.npz",
        "model.input_shapes.image=[1, 28, 28, 1]", "train.epochs = 3",
    ])  # fmt: skip
    assert [(s.kind, getattr(s, "sparsity", None)) for s in r.stages] == [("prune", 0.9), ("qat", None)]
    assert r.stages[0].schedule == "constant" and r.train.epochs == 3
    assert r.verify.max_accuracy_drop == 0.005 and r.convert.io_type == "uint8"
    assert r.data.path == str(Path.cwd() / "x" / "calib.npz")  # typed on the command line: relative to cwd
    assert r.model.path == str(tmp_path / "models" / "m.h5")  # from the file: relative to the recipe
    assert r.model.input_shapes == {"image": (1, 28, 28, 1)}


def test_bad_set_overrides_are_reported_with_the_file_errors(tmp_path):
    path = write(tmp_path / "r.toml", MINIMAL + "[[stages]]\nkind = 'prune'\nsparsity = 7\n")
    found = problems(load_recipe, path, ["stages[3].sparsity=0.5", "model.path.x=1", "novalue", "convert.quantise=int8",
                                         "stages[0].sparsity=0.95"])  # fmt: skip
    assert found == [
        "--set stages[3].sparsity=0.5: got index [3], expected 0..1 (stages has 1 entries; 1 appends)",
        "--set model.path.x=1: got .x, expected model.path to be a table, but it is 'models/m.h5'",
        "--set novalue: got 'novalue', expected field.path=value (e.g. stages[0].sparsity=0.8)",
        f"{path}: convert.quantise: got an unknown key (did you mean 'quantize'?), expected one of "
        "['allow_float_fallback', 'allow_slower', 'io_type', 'objective', 'quantize', 'sparse_encoding'] (from --set)",
    ]  # stages[0].sparsity = 7 in the file was fixed by the last --set


def test_split_field_path():
    assert split_field_path("stages[0].sparsity") == ["stages", 0, "sparsity"]
    assert split_field_path("stages.1.block") == ["stages", 1, "block"]
    assert split_field_path("model.input_shapes.image") == ["model", "input_shapes", "image"]
    assert split_field_path("a..b") is None and split_field_path("[0].x") is None


# ---------------------------------------------------------------- flags ↔ recipe fields


def _leaf_paths(cls, prefix: str) -> set[str]:
    out = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out |= _leaf_paths(hints[f.name], f"{prefix}{f.name}.")
        elif f.name == "stages":
            for kind, stage in STAGES.items():
                names = [g.name for g in dataclasses.fields(stage) if g.name != "kind"]
                out |= {f"stages[{kind}].{n}" for n in names} if names else {f"stages[{kind}]"}
        else:
            out.add(prefix + f.name)
    return out


def test_every_convert_flag_has_a_recipe_field_and_every_field_a_flag():
    fields = _leaf_paths(Recipe, "") - {"version"}  # the file format version has no flag
    flag_params = {p.name for p in convert.params} - {"dump_recipe", "json_out", "quiet", "debug"}
    assert set(FLAGS) == flag_params, "recipe.flags.FLAGS must list every convert option"
    mapped = set(FLAGS.values())
    assert fields - mapped == set(), "recipe fields without a convert flag"
    adders = {f"stages[{kind}]" for kind in STAGES}  # a flag that only adds a stage (--qat, --distill)
    assert mapped - fields - adders == set(), "CONVERT_FLAGS entries that are not recipe fields"


def test_flags_build_the_same_recipe_as_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags = {"model": Path("m.h5"), "data": Path("d.npz"), "quantize": "int8", "prune": 0.5, "prune_pattern": "2:4",
             "qat": True, "epochs": 3, "max_accuracy_drop": ("0.02",), "min_sqnr": ("boxes=25",),
             "output": Path("o.tflite"), "seed": 7}  # fmt: skip
    from_flags = recipe_from_flags(flags)
    assert from_flags == from_dict(to_raw(flags))
    path = write(tmp_path / "r.toml", 'seed = 7\n[model]\npath = "m.h5"\n[data]\npath = "d.npz"\n'
                 '[[stages]]\nkind = "prune"\nsparsity = 0.5\npattern = "2:4"\n[[stages]]\nkind = "qat"\n'
                 '[train]\nepochs = 3\n[convert]\nquantize = "int8"\n[verify]\nmax_accuracy_drop = 0.02\n'
                 'min_sqnr = {boxes = 25}\n[output]\ntflite = "o.tflite"\n')  # fmt: skip
    assert load_recipe(path) == from_flags
    with pytest.raises(UsageError, match=r"^--prune-schedule needs --prune$"):
        recipe_from_flags({"model": Path("m.h5"), "prune_schedule": "constant"})


def test_dumped_toml_round_trips_with_paths_relative_to_the_dump(tmp_path):
    (tmp_path / "models").mkdir()
    recipe = from_dict({
        "model": {"path": str(tmp_path / "models" / "m.h5"), "input_shapes": {"image": [1, 28, 28, 1]}},
        "data": {"path": str(tmp_path / "d.npz")}, "seed": 3,
        "stages": [{"kind": "prune", "sparsity": 0.8, "block": [1, 4]}, {"kind": "qat"}],
        "convert": {"quantize": "int8"}, "output": {"tflite": "/elsewhere/o.tflite"},
    })  # fmt: skip
    assert from_dict(tomllib.loads(dumps_toml(recipe))) == recipe
    (tmp_path / "ci").mkdir()
    text = dumps_recipe(relative_paths(recipe, tmp_path / "ci"), header="hello")
    assert text.startswith("# hello\nversion = 1\nseed = 3\n\n[model]\npath = \"../models/m.h5\"\n")
    assert 'tflite = "/elsewhere/o.tflite"' in text  # shares only / with the recipe: stays absolute
    assert write(tmp_path / "ci" / "r.toml", text) and load_recipe(tmp_path / "ci" / "r.toml") == recipe
    assert json.loads(dumps_recipe(recipe, "json")) == recipe.to_dict()


# ---------------------------------------------------------------- CI report files


def report(name: str, flip: bool = False):
    r = make_report(flip=flip)
    r.output = f"/x/{name}.tflite"
    return r


def test_junit_has_one_case_per_gate_and_errors_for_runs_that_stopped():
    outcomes = [Outcome("good", report("good")), Outcome("bad", report("bad", flip=True)),
                Outcome("broken", error="model not found")]
    root = ET.fromstring(junit_xml([], suites=[(o.name, o.report, o.error) for o in outcomes]).split("\n", 1)[1])
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("errors")) == ("testsuites", "5", "2", "1")
    good, bad, broken = root.findall("testsuite")
    assert [c.get("name") for c in good.findall("testcase")] == [
        "probs (classification): top-1 agreement >= 0.97", "probs (classification): accuracy drop <= 1 pts"]
    assert not good.findall(".//failure")
    assert {p.get("name"): p.get("value") for p in good.find("properties")}["output_gzip_bytes"] == "900"
    messages = [c.find("failure").get("message") for c in bad.findall("testcase")]
    assert messages[0] == "output 'probs' (classification): top-1 agreement 0.9300 < 0.97 (default for int8)"
    (case,) = broken.findall("testcase")
    assert case.find("error").get("message") == "model not found" and broken.get("errors") == "1"


def test_run_markdown_and_summary_table():
    outcomes = [Outcome("good", report("good")), Outcome("bad", report("bad", flip=True)), Outcome("broken", error="boom")]
    md = run_markdown(outcomes)
    assert md.startswith("# tfopt run — ❌ 2 of 3 did not pass\n\n| recipe | mode | status | size | gzip |")
    assert "| good | int8 | passed | 1000 B | 900 B | 0.250x | 2/2 passed | 0 |" in md
    assert "| bad | int8 | FAILED | 1000 B | 900 B | 0.250x | 0/2 passed | 3 |" in md
    assert "| broken | - | ERROR | - | - | - | - | 1 |" in md and "- **broken**: Error: boom" in md
    assert "### `good.tflite` — int8 — ✅ passed" in md
    text = summary(outcomes)
    assert "summary of 3 recipes (exit 1):" in text
    assert "  bad: output 'probs' (classification): top-1 agreement 0.9300 < 0.97 (default for int8)" in text
    assert "  broken: Error: boom" in text
    assert "summary of 1 recipe (exit 0):" in summary(outcomes[:1])


def test_worst_exit_code_orders_usage_interrupt_error_threshold():
    assert worst_exit_code([0, 3, 0]) == 3
    assert worst_exit_code([3, 1]) == 1 and worst_exit_code([1, 2, 3]) == 2 and worst_exit_code([]) == 0
    assert worst_exit_code([1, 130, 3]) == 130 and worst_exit_code([130, 2]) == 2


# ---------------------------------------------------------------- CLI (validation only: no worker)


def test_cli_validate_lists_every_problem_and_exits_2(cli, tmp_path):
    bad = write(tmp_path / "bad.toml", BAD_TOML)
    before = sha256(bad)
    result = cli("recipes", "validate", ROOT / "examples" / "int8.toml", bad)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"ok: {ROOT / 'examples' / 'int8.toml'}" and lines[1] == "Error: 11 problem(s):"
    assert lines[2] == f"  {bad}: modle: got an unknown key (did you mean 'model'?), expected one of " \
                       "['convert', 'data', 'model', 'output', 'seed', 'stages', 'train', 'verify', 'version']"
    assert len(lines) == 13 and sha256(bad) == before


def test_cli_run_refuses_invalid_recipes_before_running_any(cli, tmp_path):
    bad = write(tmp_path / "bad.toml", MINIMAL + "[convert]\nquantize = 'int9'\n")
    example = ROOT / "examples" / "int8.toml"
    result = cli("run", example, bad, "--set", "verify.min_sqnr=high")
    assert result.exit_code == 2 and "===" not in result.stderr
    assert result.stderr.splitlines() == [
        "Error: 3 problems in the recipes:",
        f"  {example}: verify.min_sqnr: got 'high', expected a number or a table (from --set)",
        f"  {bad}: convert.quantize: got 'int9', expected one of ['none', 'dynamic', 'float16', 'int8', 'int16x8', 'auto'] "
        "(did you mean 'int8'?)",
        f"  {bad}: verify.min_sqnr: got 'high', expected a number or a table (from --set)",
    ]


def test_cli_run_refuses_two_recipes_writing_one_file(cli, tmp_path):
    result = cli("run", "int8", "dynamic", "--set", f"output.tflite={tmp_path / 'same.tflite'}",
                 *[a for f in FILES for a in ("--set", f)])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: recipes int8 and dynamic both write {tmp_path / 'same.tflite'} "
                             "(set output.tflite in one of them)\n")  # fmt: skip


def test_cli_recipes_list_and_show(cli):
    listing = cli("recipes", "list").stdout.splitlines()
    assert [ln.split()[0] for ln in listing] == SHIPPED
    assert any(ln.startswith("prune24-int8") and "2:4" in ln for ln in listing)
    assert cli("recipes", "show", "float16").stdout == find("float16").read_text()
    missing = cli("recipes", "show", "nope")
    assert missing.exit_code == 2 and missing.stderr.startswith("Error: nope: no such recipe file or shipped recipe")


def test_recipes_readme_documents_every_field_flag_and_shipped_recipe():
    readme = (ROOT / "recipes" / "README.md").read_text()
    for path in _leaf_paths(Recipe, ""):
        leaf = path.rsplit(".", 1)[-1].removeprefix("stages[").rstrip("]")
        assert f"`{leaf}`" in readme, f"recipes/README.md does not document {path}"
    for param in convert.params:
        if param.name not in ("dump_recipe", "json_out", "quiet", "debug", "model"):
            assert any(opt in readme for opt in param.opts), f"recipes/README.md does not mention {param.opts}"
    for name in SHIPPED:
        assert f"| `{name}` |" in readme
    assert "<!-- recipes-table:start -->" in readme and "<!-- recipes-table:end -->" in readme
