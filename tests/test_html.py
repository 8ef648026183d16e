"""The HTML report: one self-contained page (inline CSS and SVG, no script, no URL) whose every plot a real
headless browser draws, without errors and without a single network request; every text escaped."""

from __future__ import annotations

import pytest

from browser import INSTALL, external_references, find_browser, probe
from test_report import make_report
from tfopt.render.html import report_html
from tfopt.report import StageResult
from tfopt.tflite.sizes import LayerSize

HOSTILE = '<img src=x onerror="alert(1)"> & </table>'


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        pytest.skip(f"no headless browser found for the HTML report test; install one with: {INSTALL}")
    return found


def full_report():
    stage = StageResult("prune", {"target_sparsity": 0.5, "pattern": "unstructured"}, "labels", "loss", 400, 64,
                        1e-4, 3, 21, history={"loss": [0.40, 0.31, 0.28], "accuracy": [0.90, 0.93, 0.94]})
    report = make_report(stages=[stage])
    report.notes.append(HOSTILE)
    report.layer_sizes = [LayerSize("hidden", 160, 544, ("INT8", "INT32"), 2),
                          LayerSize("probs", 60, 204, ("INT8", "INT32"), 2)]
    report.extra["analysis"] = {"layers": [{"layer": "hidden", "sqnr_db": 31.5, "cosine": 0.9995},
                                           {"layer": HOSTILE, "sqnr_db": 18.25, "cosine": 0.991}]}
    return report


def test_a_report_page_holds_every_section_escaped_and_loads_nothing(tmp_path):
    text = report_html(full_report())
    assert text.startswith("<!DOCTYPE html>") and text.count("<svg") == 3  # analysis, layer sizes, stage curve
    assert external_references(text) == []
    assert HOSTILE not in text and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &lt;/table&gt;" in text
    for heading in ("Sizes", "Verification on 100 samples", "Gates (2 evaluated)", "Quantization error per layer",
                    "Size per layer", "Fine-tuning stages", "Notes"):
        assert f">{heading}</h2>" in text, heading
    assert "<td class=\"result\">pass</td>" in text and "0.294x" in text  # hidden: 160 of 544 bytes
    assert report_html(full_report()) .count("tfopt-plot-") == text.count("tfopt-plot-")  # ids unique per plot


def test_the_page_renders_in_a_headless_browser_with_every_plot_drawn(tmp_path, browser):
    page = tmp_path / "report.html"
    page.write_text(report_html(full_report()))
    verdict = probe(page, browser)
    assert verdict == {"plots": 3, "drawn": 3, "errors": [], "title": "tfopt — m.int8.tflite", "resources": 0,
                       "tables": 7}


@pytest.mark.slow
def test_convert_verify_and_run_write_html_reports(cli, tiny, tmp_path, browser):
    out = tmp_path / "m.tflite"
    converted = cli("convert", tiny["h5"], "--prune", "0.5", "--epochs", "2", "--data", tiny["npz"], "-o", out,
                    "--html", tmp_path / "convert.html")
    assert converted.exit_code == 0, converted.stderr
    verdict = probe(tmp_path / "convert.html", browser)
    assert (verdict["plots"], verdict["drawn"], verdict["errors"], verdict["resources"]) == (2, 2, [], 0)
    text = (tmp_path / "convert.html").read_text()
    assert "prune 50% (unstructured): loss, accuracy per epoch (301 steps, 400 samples)" in text
    assert ">hidden</td>" in text

    verified = cli("verify", out, "--reference", tiny["h5"], "--data", tiny["npz"], "--fine-tuned",
                   "--html", tmp_path / "verify.html")
    assert verified.exit_code == 0, verified.stderr
    assert "Gates (2 evaluated)" in (tmp_path / "verify.html").read_text()

    ran = cli("run", "float16", "--set", f"model.path={tiny['h5']}", "--set", f"data.path={tiny['npz']}",
              "--output-dir", tmp_path / "run", "--html", tmp_path / "run.html")
    assert ran.exit_code == 0, ran.stderr
    verdict = probe(tmp_path / "run.html", browser)
    assert (verdict["plots"], verdict["drawn"], verdict["errors"], verdict["title"]) == (
        1, 1, [], "tfopt run — all passed")


def test_an_html_path_in_a_missing_folder_is_refused_before_any_work(cli, tiny, tmp_path):
    result = cli("convert", tiny["h5"], "--quantize", "float16", "--data", tiny["npz"], "-o", tmp_path / "m.tflite",
                 "--html", tmp_path / "nowhere" / "r.html")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"Error: cannot write --html {tmp_path / 'nowhere' / 'r.html'}: folder "
                                     f"{tmp_path / 'nowhere'} does not exist")
    assert not (tmp_path / "m.tflite").exists()
