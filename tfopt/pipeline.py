"""``run(recipe)``: the only code path that executes work, for flags and recipe files alike — start reading here.
(``tfopt verify`` of an existing file is ``verify_job.py``.)

    load ─► [stages] ─► convert ─► verify ─► write ─► report

A ``Session`` holds what a run computes once: the model's conversions (one ``Converter`` per model),
the original model's outputs on the evaluation samples, the output kinds and the verification of
each converted file.  Stage measurements, the size baseline and the final verification share them.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from pathlib import Path

from . import _tf, kinds, modes, shapes
from .convert import ConvertConfig, ConvertResult, Converter, output_stem
from .data import UNNAMED, DataPlan, Subset, load_data, random_calibration
from .errors import DataError, UsageError
from .files import Size, check_outputs, failed_path, size_of, write_atomic
from .models import LoadedModel, load_model, sniff
from .modes import Mode
from .progress import Progress, noop
from .recipe import Recipe
from .report import DataInfo, ModelInfo, Report, Sizes, StageMeasure, reports_json
from .tflite import kernel_sparsity
from .tflite.reader import array_stats
from .tflite.sizes import layer_sizes
from .verify import GateSettings, Reference, VerifyResult, output_metrics, verify

_noop = noop


def default_output(recipe: Recipe) -> str:
    folder, stem = output_stem(recipe.model.path)
    tags = [s.kind + (f"{round(getattr(s, 'sparsity', getattr(s, 'ratio', 0)) * 100)}" if s.kind in ("prune", "slim")
                      else "") for s in recipe.stages]
    return str(folder / f"{stem}.{'.'.join(tags + [recipe.mode.file_tag])}.tflite")


def output_path(recipe: Recipe) -> str:
    return recipe.output.tflite or default_output(recipe)


def preflight(recipe: Recipe) -> None:
    """Checks that need no TensorFlow, before any work: inputs exist, every output path can be written."""
    sniff(Path(recipe.model.path))
    student = getattr(recipe.stage("distill"), "student", None)
    if student:
        sniff(Path(student))
    for label, p in (("data", recipe.data.path), ("training data", recipe.data.train)):
        if p is not None and not Path(p).exists():
            raise DataError(f"{label} not found: {p} (expected a .npz or .npy file or a folder of class sub-folders)")
    if recipe.verify.enabled and recipe.data.path is None:
        raise UsageError(
            "verification needs held-out data: pass --data FILE (or --no-verify to skip verification explicitly)"
        )
    check_outputs({"-o": output_path(recipe), **recipe.output_paths()}, recipe.input_paths())


class Timings(dict):
    """Seconds per named step, reported to ``progress`` as each step starts."""

    def __init__(self, progress: Progress):
        super().__init__()
        self.progress = progress

    @contextmanager
    def __call__(self, name: str):
        self.progress(name)
        start = time.perf_counter()
        yield
        self[name] = round(self.get(name, 0.0) + time.perf_counter() - start, 4)


class Session:
    """What one run computes once and shares: conversions, reference outputs, kinds, verifications."""

    def __init__(self, recipe: Recipe, model: LoadedModel, plan: DataPlan | None, fixed_shapes: dict,
                 progress: Progress = noop):
        self.recipe, self.original, self.plan, self.fixed_shapes = recipe, model, plan, fixed_shapes
        self.progress = progress
        self.reference: Reference | None = None
        self.kinds: dict[str, kinds.OutputKind] = {}
        self._converters: dict[int, Converter] = {}
        self._verified: dict[tuple, VerifyResult] = {}

    def close(self) -> None:
        for converter in self._converters.values():
            converter.close()

    def prepare_reference(self) -> None:
        """The original's outputs on the evaluation samples, the output kinds, and whose labels are whose."""
        if self.reference is not None or self.plan is None:
            return
        self.reference = Reference.compute(self.original, self.plan.evaluation)
        decided, labels = kinds.resolve(self.original, self.reference.outputs, self.reference.labels,
                                        self.recipe.verify.output_kinds, str(self.plan.source))
        if UNNAMED in self.reference.labels:
            owner = next(name for name, value in labels.items() if value is self.reference.labels[UNNAMED])
            self.plan.name_labels(owner)
        self.kinds, self.reference.labels = decided, labels

    def converter(self, model: LoadedModel) -> Converter:
        key = id(model.model)
        if key not in self._converters:
            self._converters[key] = Converter(model, self.progress)
        return self._converters[key]

    def config(self, mode: Mode) -> ConvertConfig:
        c = self.recipe.convert
        same = mode is self.recipe.mode
        return ConvertConfig(mode, c.io_type if same else None, c.allow_float_fallback if same else False,
                             c.sparse_encoding if same else False, tuple(sorted(self.fixed_shapes.items())),
                             select_tf_ops=not self.recipe.verify.enabled)

    def calibration(self, mode: Mode) -> Subset | None:
        if not mode.needs_calibration:
            return None
        if self.recipe.data.calibration == "random" or self.plan is None:
            return self._random_calibration()
        return self.plan.calibration

    def _random_calibration(self) -> Subset:
        if not hasattr(self, "_random"):
            self._random = random_calibration(self.original.inputs, self.recipe.data.calibration_samples,
                                              self.recipe.seed)
        return self._random

    def gate_settings(self, mode: Mode) -> GateSettings:
        v = self.recipe.verify
        return GateSettings(mode, self.recipe.finetuned, v.limits(), v.threshold)

    def verify(self, result: ConvertResult) -> VerifyResult:
        key = (id(result.tflite), result.mode.name)
        if key not in self._verified:
            self._verified[key] = verify(result.tflite, self.reference, self.kinds, self.gate_settings(result.mode),
                                         progress=self.progress)
        return self._verified[key]

    def measure(self, keras_model, last: bool) -> StageMeasure:
        """A fine-tuning stage's result: the last stage in the run's own conversion (made once, shared with the
        output); an earlier one in its stripped Keras weights and outputs (what a float32 export holds)."""
        from .stages.apply import as_loaded

        exported = as_loaded(self.original, keras_model)
        if last:
            mode = self.recipe.mode
            result = self.converter(exported).convert(self.config(mode), self.calibration(mode))
            measured = weights_measure(result, keras_model)
            first = self.verify(result).outputs[0].metrics if self.reference is not None else {}
        else:
            measured = keras_measure(keras_model)
            first = self._keras_metrics(exported)
        measured.accuracy, measured.accuracy_reference = first.get("accuracy"), first.get("accuracy_reference")
        measured.accuracy_drop, measured.agreement = first.get("accuracy_drop"), first.get("agreement")
        return measured

    def _keras_metrics(self, model: LoadedModel) -> dict:
        if self.reference is None or not len(self.reference):
            return {}
        first = self.original.outputs[0].name
        x, _ = self.reference.subset.all()
        out = model.predict(x)[first]
        return output_metrics(self.reference.outputs[first], out, self.reference.labels.get(first), self.kinds[first])


def weights_measure(result: ConvertResult, keras_model) -> StageMeasure:
    """Per-kernel sparsity and unique values of a converted fine-tuned model, by Keras layer name."""
    from .stages.apply import layer_names, original_name

    names = layer_names(keras_model)
    known = set(names)
    kernels = result.tflite.kernels(names)
    layers = {original_name(k.layer, known): {"sparsity": round(k.sparsity, 4), "unique_values": k.unique_values,
                                              "max_unique_per_channel": k.max_unique_per_channel, "dtype": k.dtype}
              for k in kernels}
    where = f"{result.mode.file_tag} TFLite export"
    return StageMeasure(where, size_of(result.data), kernel_sparsity(kernels), layers)


KERNEL_ATTRIBUTES = ("kernel", "depthwise_kernel")


def keras_measure(keras_model) -> StageMeasure:
    """Per-kernel sparsity and unique values of a stripped tf_keras model (the float32 export stores the same)."""
    from .stages.apply import original_name

    known = {layer.name for layer in keras_model.layers}
    kernels = []
    for layer in keras_model.layers:
        inner = getattr(layer, "layer", layer)
        for attr in KERNEL_ATTRIBUTES:
            weight = getattr(inner, attr, None)
            if weight is not None:
                kernels.append(array_stats(original_name(layer.name, known), np.asarray(weight.numpy())))
    layers = {k.name: {"sparsity": round(k.sparsity, 4), "unique_values": k.unique_values,
                       "max_unique_per_channel": k.max_unique_per_channel, "dtype": k.dtype} for k in kernels}
    return StageMeasure("stripped Keras weights (float32)", None, kernel_sparsity(kernels), layers)


def plan_data(recipe: Recipe, model: LoadedModel) -> DataPlan | None:
    d = recipe.data
    if d.path is None:
        return None
    return load_data(d.path, model.inputs, model.outputs, calibration_samples=d.calibration_samples,
                     eval_samples=d.eval_samples, seed=recipe.seed, scale=d.scale, offset=d.offset,
                     fine_tune=bool(recipe.stages) and d.train is None)


@dataclass
class Shared:
    """What a sweep computes once, in one worker, and hands to every candidate's run (pickled): the data plan
    (read and validated), the original's outputs on the evaluation samples with the labels matched to
    outputs, the output kinds, and the size of the original's float32 conversion.  A candidate still loads
    the model itself (a TensorFlow model cannot cross processes) but recomputes none of these."""

    plan: DataPlan | None
    reference: Reference | None
    kinds: dict[str, kinds.OutputKind]
    float32_tflite: Size | None


def run(recipe: Recipe, progress: Progress | None = None, *, checked: bool = False) -> Report:
    """Load → optimize stages → convert → verify → write → report.  Raises TfoptError subclasses.

    ``checked``: the caller already ran ``preflight`` (the CLI does, before it starts the worker)."""
    report, data = execute(recipe, progress, checked=checked)
    report.output, report.failed_output = _write(recipe, data, report.verification)
    write_reports(recipe, [report])
    return report


def execute(recipe: Recipe, progress: Progress | None = None, *, checked: bool = False,
            shared: Shared | None = None) -> tuple[Report, bytes]:
    """``run`` without writing anything: the report and the converted model's bytes.  With ``shared`` (a sweep
    candidate) the data plan, reference outputs, kinds and float32 size are taken from it, not recomputed."""
    progress = progress or _noop
    if not checked:
        preflight(recipe)
    timings = Timings(progress)
    _tf.prefer_legacy_keras(bool(recipe.stages))  # only fine-tuning needs tf_keras for TF-MOT
    if recipe.stages and recipe.train.strategy != "none":
        from .stages.finetune import strategy_for

        strategy_for(recipe.train.strategy)  # before any op: a multi-worker strategy configures the runtime
    with timings("load"):
        original, fixed = load(recipe)
        plan = shared.plan if shared is not None else plan_data(recipe, original)
    session = Session(recipe, original, plan, fixed, progress)
    if shared is not None:
        session.reference, session.kinds = shared.reference, shared.kinds
    try:
        return _run(recipe, session, timings, progress, shared)
    finally:
        session.close()


def load(recipe: Recipe) -> tuple[LoadedModel, dict]:
    _tf.seed_everything(recipe.seed)
    original = load_model(recipe.model.path, recipe.model.custom_objects)
    fixed = shapes.resolve(original.inputs, recipe.model.input_shapes)
    return original.replace(inputs=shapes.apply(original.inputs, fixed)), fixed  # data are checked against these


def keras_layer_names(model: LoadedModel) -> list[str]:
    """The Keras layer names of a model (none for a bare SavedModel signature)."""
    return [layer.name for layer in getattr(model.model, "layers", [])]


def _run(recipe: Recipe, session: Session, timings: Timings, progress: Progress,
         shared: Shared | None) -> tuple[Report, bytes]:
    if (recipe.verify.enabled or recipe.stages) and shared is None:
        with timings("reference outputs"):
            session.prepare_reference()
    model, stage_results = session.original, []
    if recipe.stages:
        from .stages.apply import apply_stages

        with timings("fine-tune"):
            model, stage_results = apply_stages(session.original, recipe.stages, recipe.train, recipe.data,
                                                recipe.seed, session.plan, session.measure, progress)
    if recipe.stages and recipe.train.strategy == "multiworker":
        from .stages.finetune import is_chief, worker_index

        if not is_chief():  # every worker trained; the chief converts, verifies and writes
            return Report(recipe=recipe, model=model_info(session.original), mode=recipe.mode.name, output=None,
                          timings=dict(timings), stages=stage_results, versions=_tf.versions(),
                          notes=[f"worker {worker_index()} of a multi-worker run: it fine-tuned; the chief "
                                 "converts, verifies and writes the model"], extra={"worker": worker_index()})
    mode, converter = recipe.mode, session.converter(model)
    with timings(f"convert {mode.name}"):
        result = converter.convert(session.config(mode), session.calibration(mode))
    verification = None
    if recipe.verify.enabled:
        with timings("verify"):
            verification = session.verify(result)
    sizes = _sizes(recipe, session, converter, result, timings, shared)
    if stage_results:
        stage_results[-1].exported_output = weights_measure(result, model.model)
    slim = next((s.slim for s in stage_results if s.slim is not None), None)
    if slim is not None:
        with timings("slim: original vs final .tflite"):
            _measure_slim(session, slim, result)
    notes = (session.plan.notes if session.plan else []) + result.notes
    if recipe.data.calibration == "random" and mode.needs_calibration:
        notes.append("calibrated on synthetic random data (--calibration random): int8 ranges may be wrong")
    report = Report(
        recipe=recipe, model=model_info(session.original), mode=mode.name, output=output_path(recipe),
        data=data_info(session.plan, session.calibration(mode)), io_types=result.tflite.io_types(), sizes=sizes,
        timings=dict(timings), verification=verification, stages=stage_results, notes=notes,
        versions=_tf.versions(), layer_sizes=layer_sizes(result.tflite, keras_layer_names(session.original)),
    )
    return report, result.data


def _sizes(recipe: Recipe, session: Session, converter: Converter, result: ConvertResult, timings: Timings,
           shared: Shared | None = None) -> Sizes:
    """Bytes and gzip bytes of the input, the output and (when measuring) the float32 TFLite baseline:
    the plain float32 conversion of the user's model, what they would ship without tfopt."""
    sizes = Sizes(input=size_of(Path(recipe.model.path)), output=size_of(result.data))
    baseline = session.config(modes.FLOAT32)
    if result.config == baseline and not recipe.stages:
        sizes.float32_tflite = sizes.output
    elif shared is not None:
        sizes.float32_tflite = shared.float32_tflite
    elif recipe.verify.enabled or recipe.stages:  # --no-verify converts only what was asked for
        with timings("convert float32 baseline"):
            sizes.float32_tflite = size_of(session.converter(session.original).convert(baseline).data)
    if recipe.convert.sparse_encoding:
        import dataclasses

        plain = dataclasses.replace(result.config, sparse_encoding=False)
        with timings("convert without sparse encoding"):
            sizes.output_without_sparse_encoding = size_of(
                converter.convert(plain, session.calibration(result.mode)).data)
    return sizes


def _measure_slim(session: Session, section, result: ConvertResult) -> None:
    """The original converted in the run's mode beside the slimmed output: bytes and measured latency."""
    from .slim_measure import measure_slim

    mode = result.mode
    original = session.converter(session.original).convert(session.config(mode), session.calibration(mode))
    measure_slim(section, original.data, result.data, mode.file_tag)


def _write(recipe: Recipe, data: bytes, verification: VerifyResult | None) -> tuple[str | None, str | None]:
    """Only a verified (or explicitly unverified) model sits at the output path; one that missed a gate
    is written beside it as ``<stem>.failed.tflite``."""
    out = output_path(recipe)
    if verification is not None and not verification.passed:
        failed = str(failed_path(out))
        write_atomic(failed, data)
        return out, failed
    write_atomic(out, data)
    return out, None


def write_reports(recipe: Recipe, reports: list[Report]) -> None:
    o = recipe.output
    if o.report:
        write_atomic(o.report, reports_json(reports))
    if o.markdown:
        write_atomic(o.markdown, _markdown(reports))
    if o.junit:
        write_atomic(o.junit, _junit(reports))
    if o.html:
        from .render.html import report_html

        write_atomic(o.html, report_html(reports[0]))


def model_info(model: LoadedModel) -> ModelInfo:
    return ModelInfo(str(model.path), model.format, model.keras_version, tuple(model.inputs), tuple(model.outputs))


def data_info(plan: DataPlan | None, calibration: Subset | None) -> DataInfo:
    n_cal = len(calibration) if calibration is not None else 0
    if plan is None:
        return DataInfo(None, n_cal, 0, False)
    return DataInfo(str(plan.source), n_cal, len(plan.evaluation), plan.evaluation.has_labels)


def _markdown(reports: list[Report]) -> str:
    from .render.markdown import markdown

    return markdown(reports)


def _junit(reports: list[Report]) -> str:
    from .render.junit import junit_xml

    return junit_xml(reports)
