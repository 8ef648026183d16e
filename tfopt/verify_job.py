"""``tfopt verify``: score an existing .tflite against its reference model (the gates of the mode it was made with).

    report = verify_file(VerifyJob("m.int8.tflite", "m.h5", "test.npz"))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import _tf, kinds, modes
from .data import load_data
from .errors import DataError, ModelLoadError
from .files import check_outputs, size_of, write_atomic
from .models import load_model, sniff
from .modes import Mode
from .pipeline import Progress, _junit, _markdown, _noop
from .session import Timings, data_info, keras_layer_names, model_info
from .report import Report, Sizes, reports_json
from .tflite import TFLiteModel, is_tflite_bytes, read
from .tflite.sizes import layer_sizes
from .verify import GateSettings, Reference, verify

@dataclass(frozen=True)
class VerifyJob:
    """``tfopt verify``: an existing .tflite, its reference model, held-out data and the gates."""

    tflite: str
    reference: str
    data: str
    custom_objects: str | None = None
    eval_samples: int | None = None
    limits: dict[str, dict[str, float]] = field(default_factory=dict)
    output_kinds: dict[str, str] = field(default_factory=dict)
    threshold: float = 0.5
    finetuned: bool = False  # the model was fine-tuned: gate accuracy/F1 drops, report agreement
    report: str | None = None
    markdown: str | None = None
    junit: str | None = None
    html: str | None = None

    def outputs(self) -> dict[str, str | None]:
        return {"--report": self.report, "--markdown": self.markdown, "--junit": self.junit, "--html": self.html}

    def inputs(self) -> dict[str, str | None]:
        return {"TFLite model": self.tflite, "reference": self.reference, "data file": self.data}


def check_verify_job(job: VerifyJob) -> None:
    """Before any work: the files exist, the .tflite is one, the report paths can be written."""
    tflite = Path(job.tflite)
    if not tflite.is_file():
        raise DataError(f"TFLite model not found: {tflite} (expected a .tflite file)")
    with tflite.open("rb") as fh:
        if not is_tflite_bytes(fh.read(8)):
            raise ModelLoadError(f"{tflite} is not a TFLite model: the flatbuffer identifier 'TFL3' is missing")
    sniff(Path(job.reference))
    if not Path(job.data).exists():
        raise DataError(f"data not found: {job.data} (expected a .npz or .npy file or a folder of class sub-folders)")
    check_outputs(job.outputs(), job.inputs())


def verify_file(job: VerifyJob, progress: Progress | None = None, *, checked: bool = False) -> Report:
    """Score an existing .tflite against its reference model on held-out data (the mode is read from the file)."""
    progress = progress or _noop
    if not checked:
        check_verify_job(job)
    timings = Timings(progress)
    with timings("load"):
        data = Path(job.tflite).read_bytes()
        tflite = read(data, job.tflite)
        original = load_model(job.reference, job.custom_objects)
        plan = load_data(job.data, original.inputs, original.outputs, calibration_samples=0,
                         eval_samples=job.eval_samples)
    with timings("reference outputs"):
        reference = Reference.compute(original, plan.evaluation)
        decided, labels = kinds.resolve(original, reference.outputs, reference.labels, job.output_kinds,
                                        str(plan.source))
        reference.labels = labels
    mode = detect_mode(tflite)
    with timings("verify"):
        result = verify(tflite, reference, decided, GateSettings(mode, job.finetuned, job.limits, job.threshold),
                        progress=progress)
    report = Report(
        recipe=None, model=model_info(original), mode=mode.name, output=job.tflite, data=data_info(plan, None),
        io_types=tflite.io_types(), sizes=Sizes(size_of(Path(job.reference)), size_of(data)), timings=dict(timings),
        verification=result, notes=plan.notes + [f"gates: the defaults of {mode.name}, the mode this file was "
                                                 "converted with (read from its tensor types)"],
        versions=_tf.versions(), extra={"command": "verify"},
        layer_sizes=layer_sizes(tflite, keras_layer_names(original)),
    )
    o = job
    for path, text in ((o.report, lambda: reports_json([report])), (o.markdown, lambda: _markdown([report])),
                       (o.junit, lambda: _junit([report])), (o.html, lambda: _html(report))):
        if path:
            write_atomic(path, text())
    return report


def _html(report: Report) -> str:
    from .render.html import report_html

    return report_html(report)


def detect_mode(tflite: TFLiteModel) -> Mode:
    activations = {t.dtype for t in tflite.tensors if not t.constant and t.quantization is not None}
    weights = {tflite.tensors[i].dtype for op in tflite.ops for i in op.inputs
               if i >= 0 and tflite.tensors[i].constant and tflite.tensors[i].nbytes > 16}
    return modes.detect(activations, weights)
