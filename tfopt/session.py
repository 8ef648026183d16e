"""The run-scoped ``Session``: what one run computes once and shares.

The model's conversions (one ``Converter`` per model), the original model's outputs on the evaluation
samples, the output kinds and the verification of each converted file; stage measurements, the size
baseline and the final verification share them.  ``load`` / ``plan_data`` read the model and the data;
``model_info`` / ``data_info`` describe them for the report.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from . import _tf, kinds, shapes
from .convert import ConvertConfig, ConvertResult, Converter
from .data import UNNAMED, DataPlan, Subset, load_data, random_calibration
from .models import LoadedModel, load_model
from .modes import Mode
from .files import size_of
from .progress import Progress, noop
from .recipe import Recipe
from .report import DataInfo, ModelInfo, StageMeasure
from .tflite import kernel_sparsity
from .tflite.reader import array_stats
from .verify import GateSettings, Reference, VerifyResult, output_metrics, verify


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


def load(recipe: Recipe) -> tuple[LoadedModel, dict]:
    _tf.seed_everything(recipe.seed)
    original = load_model(recipe.model.path, recipe.model.custom_objects)
    fixed = shapes.resolve(original.inputs, recipe.model.input_shapes)
    return original.replace(inputs=shapes.apply(original.inputs, fixed)), fixed  # data are checked against these


def keras_layer_names(model: LoadedModel) -> list[str]:
    """The Keras layer names of a model (none for a bare SavedModel signature)."""
    return [layer.name for layer in getattr(model.model, "layers", [])]


def model_info(model: LoadedModel) -> ModelInfo:
    return ModelInfo(str(model.path), model.format, model.keras_version, tuple(model.inputs), tuple(model.outputs))


def data_info(plan: DataPlan | None, calibration: Subset | None) -> DataInfo:
    n_cal = len(calibration) if calibration is not None else 0
    if plan is None:
        return DataInfo(None, n_cal, 0, False)
    return DataInfo(str(plan.source), n_cal, len(plan.evaluation), plan.evaluation.has_labels)
