"""``run(recipe)``: the only code path that executes work, for flags and recipe files alike."""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from . import _tf, shapes
from .convert import MODES, ConvertConfig, convert
from .data import DataPlan, load_data, random_calibration
from .errors import DataError, UsageError
from .files import refuse_clashes, refuse_inputs, write_atomic
from .models import LoadedModel, load_model, sniff
from .recipe import Recipe
from .report import Report, markdown, reports_json, size_of
from .tflite_model import read_tflite
from .verify import Thresholds, TFLiteRunner, verify

Progress = Callable[[str], None]


def default_output(recipe: Recipe) -> str:
    model = Path(recipe.model.path)
    stem = model.name if model.is_dir() else model.stem
    tags = [s.kind + (f"{round(s.sparsity * 100)}" if s.kind == "prune" else "") for s in recipe.stages]
    tag = ".".join(tags + [MODES[recipe.convert.quantize].file_tag])
    return str(model.parent / f"{stem}.{tag}.tflite")


def output_path(recipe: Recipe) -> str:
    return recipe.output.tflite or default_output(recipe)


def preflight(recipe: Recipe) -> None:
    """Checks that need no TensorFlow: inputs exist, outputs are not inputs, verify has data."""
    sniff(Path(recipe.model.path))
    for label, p in (("data", recipe.data.path), ("training data", recipe.data.train)):
        if p is not None and not Path(p).exists():
            raise DataError(f"{label} not found: {p} (expected a .npz or .npy file or a folder of class sub-folders)")
    if recipe.verify.enabled and recipe.data.path is None:
        raise UsageError(
            "verification needs held-out data: pass --data FILE (or --no-verify to skip verification explicitly)"
        )
    outputs = {"output": output_path(recipe), **{f"{k} report": v for k, v in _reports(recipe).items()}}
    inputs = {"input model": recipe.model.path, "data file": recipe.data.path, "training data": recipe.data.train}
    refuse_inputs(outputs, inputs)
    refuse_clashes(outputs)
    if recipe.model.custom_objects and recipe.model.custom_objects.endswith(".py"):
        refuse_inputs(outputs, {"custom objects file": recipe.model.custom_objects})


def _reports(recipe: Recipe) -> dict[str, str]:
    o = recipe.output
    return {k: v for k, v in (("JSON", o.report), ("Markdown", o.markdown), ("JUnit", o.junit)) if v}


@contextmanager
def _timed(timings: dict, name: str, progress: Progress):
    progress(name)
    start = time.perf_counter()
    yield
    timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - start, 4)


def thresholds_for(recipe: Recipe) -> Thresholds:
    mode = MODES[recipe.convert.quantize]
    v = recipe.verify
    return Thresholds(
        max_accuracy_drop=mode.max_accuracy_drop if v.max_accuracy_drop is None else v.max_accuracy_drop,
        min_agreement=mode.min_agreement if v.min_agreement is None else v.min_agreement,
        min_sqnr=v.min_sqnr,
    )


def plan_data(recipe: Recipe, model: LoadedModel) -> DataPlan | None:
    d = recipe.data
    if d.path is None:
        return None
    return load_data(
        d.path,
        model.inputs,
        model.outputs,
        calibration_samples=d.calibration_samples,
        eval_samples=d.eval_samples,
        seed=recipe.seed,
        scale=d.scale,
        offset=d.offset,
    )


def run(recipe: Recipe, progress: Progress | None = None) -> Report:
    """Load → optimize stages → convert → verify → report.  Raises TfoptError subclasses."""
    progress = progress or (lambda _msg: None)
    preflight(recipe)
    timings: dict[str, float] = {}
    notes: list[str] = []
    with _timed(timings, "load", progress):
        _tf.seed_everything(recipe.seed)
        model = load_model(recipe.model.path, recipe.model.custom_objects)
        fixed_shapes = shapes.resolve(model.inputs, recipe.model.input_shapes)
        model.inputs = shapes.apply(model.inputs, fixed_shapes)  # data are checked against the fixed shapes
        plan = plan_data(recipe, model)
    stage_results: list[dict] = []
    original = model  # verification compares against the model the user gave, not the fine-tuned one
    if recipe.stages:
        from .stages import apply_stages

        with _timed(timings, "fine-tune", progress):
            model, stage_results = apply_stages(model, recipe, plan, progress)
    calibration = None
    if MODES[recipe.convert.quantize].needs_calibration:
        if recipe.data.calibration == "random":
            calibration = random_calibration(model.inputs, recipe.data.calibration_samples, recipe.seed)
            notes.append("calibrated on synthetic random data (--calibration random): int8 ranges may be wrong")
        else:
            calibration = plan.calibration
    config = ConvertConfig(
        recipe.convert.quantize, recipe.convert.io_type, recipe.convert.allow_float_fallback, recipe.convert.sparse_encoding,
        input_shapes=fixed_shapes, select_tf_ops=not recipe.verify.enabled,
    )
    with _timed(timings, f"convert {recipe.convert.quantize}", progress):
        result = convert(model, config, calibration)
    sizes = _sizes(recipe, model, config, result, calibration, lambda name: _timed(timings, name, progress))
    if stage_results:
        from .stages import layer_names, weights_summary

        stage_results[-1]["exported_output"] = weights_summary(result.tflite, layer_names(model.model))
    out = output_path(recipe)
    write_atomic(out, result.tflite)
    verification = None
    if recipe.verify.enabled:
        with _timed(timings, "verify", progress):
            verification = verify(result.tflite, original, plan.evaluation, thresholds_for(recipe)).to_dict()
    if plan is not None:
        notes = plan.notes + notes
    report = Report(
        recipe=recipe.to_dict(),
        model=_model_info(original),
        mode=recipe.convert.quantize,
        output=out,
        data=_data_info(plan, calibration),
        io_types=TFLiteRunner(result.tflite).io_types(),
        sizes=sizes,
        timings=timings,
        verification=verification,
        stages=stage_results,
        notes=notes + result.notes,
        versions=_tf.versions(),
    )
    write_reports(recipe, [report])
    return report


def _sizes(recipe: Recipe, model: LoadedModel, config: ConvertConfig, result, calibration, timed) -> dict:
    """Bytes and gzip bytes of the input, the output and the float32 TFLite baseline (plus ratios)."""
    sizes = {"input": size_of(Path(recipe.model.path)), "output": size_of(result.tflite)}
    if recipe.convert.quantize == "none" and not recipe.convert.sparse_encoding:
        sizes["float32_tflite"] = sizes["output"]
    else:  # the plain float32 conversion (no sparse encoding) is the baseline
        with timed("convert float32 baseline"):
            baseline = ConvertConfig("none", input_shapes=result.input_shapes, select_tf_ops=result.select_tf_ops)
            sizes["float32_tflite"] = size_of(convert(model, baseline).tflite)
    sizes["output_vs_float32"] = round(sizes["output"]["bytes"] / sizes["float32_tflite"]["bytes"], 4)
    sizes["output_vs_input_gzip"] = round(sizes["output"]["gzip_bytes"] / sizes["input"]["gzip_bytes"], 4)
    if recipe.convert.sparse_encoding and recipe.convert.quantize == "none":
        sizes["output_without_sparse_encoding"] = sizes["float32_tflite"]
    elif recipe.convert.sparse_encoding:
        with timed("convert without sparse encoding"):
            plain = dataclasses.replace(config, sparse_encoding=False)
            sizes["output_without_sparse_encoding"] = size_of(convert(model, plain, calibration).tflite)
    return sizes


def verify_file(tflite_path: str, params: dict, progress: Progress | None = None) -> Report:
    """``tfopt verify``: score an existing .tflite against its reference model on held-out data."""
    progress = progress or (lambda _msg: None)
    tflite = Path(tflite_path)
    if not tflite.is_file():
        raise DataError(f"TFLite model not found: {tflite} (expected a .tflite file)")
    if params.get("report"):
        refuse_inputs({"JSON report": params["report"]}, {"TFLite model": str(tflite), "reference": params["reference"],
                                                         "data file": params["data"]})
    timings: dict[str, float] = {}
    with _timed(timings, "load", progress):
        model = load_model(params["reference"], params.get("custom_objects"))
        plan = load_data(params["data"], model.inputs, model.outputs, calibration_samples=0,
                         eval_samples=params.get("eval_samples"))
    defaults = MODES["int8"]
    thresholds = Thresholds(
        defaults.max_accuracy_drop if params.get("max_accuracy_drop") is None else params["max_accuracy_drop"],
        defaults.min_agreement if params.get("min_agreement") is None else params["min_agreement"],
        params.get("min_sqnr"),
    )
    data = tflite.read_bytes()
    read_tflite(data, source=str(tflite))  # a clear error, naming the file, for anything that is not a .tflite
    with _timed(timings, "verify", progress):
        result = verify(data, model, plan.evaluation, thresholds)
    report = Report(
        recipe={"verify": {k: v for k, v in params.items() if v is not None}},
        model=_model_info(model),
        mode="verify",
        output=str(tflite),
        data=_data_info(plan, None),
        io_types=TFLiteRunner(data).io_types(),
        sizes={"input": size_of(Path(params["reference"])), "output": size_of(data)},
        timings=timings,
        verification=result.to_dict(),
        notes=plan.notes,
        versions=_tf.versions(),
    )
    if params.get("report"):
        write_atomic(params["report"], report.to_json())
    return report


def write_reports(recipe: Recipe, reports: list[Report]) -> None:
    from .junit import junit_xml

    o = recipe.output
    if o.report:
        write_atomic(o.report, reports_json(reports))
    if o.markdown:
        write_atomic(o.markdown, markdown(reports))
    if o.junit:
        write_atomic(o.junit, junit_xml(reports))


def _model_info(model: LoadedModel) -> dict:
    return {
        "path": str(model.path),
        "format": model.format,
        "keras_version": model.keras_version,
        "inputs": [dataclasses.asdict(s) for s in model.inputs],
        "outputs": [dataclasses.asdict(s) for s in model.outputs],
    }


def _data_info(plan: DataPlan | None, calibration) -> dict:
    if plan is None:
        return {"calibration_samples": len(calibration) if calibration is not None else 0}
    return {
        "source": str(plan.source),
        "calibration_samples": len(calibration) if calibration is not None else 0,
        "eval_samples": len(plan.evaluation),
        "labels": plan.evaluation.has_labels,
    }
