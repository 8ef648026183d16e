"""``run(recipe)``: the only code path that executes work, for flags and recipe files alike — start reading here.
(``tfopt verify`` of an existing file is ``verify_job.py``.)

    load ─► [stages] ─► convert ─► verify ─► write ─► report

A ``Session`` (``session.py``) holds what a run computes once: the model's conversions, the original model's
outputs on the evaluation samples, the output kinds and the verification of each converted file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import _tf, modes
from .convert import ConvertResult, Converter, output_stem
from .data import DataPlan
from .errors import DataError, UsageError
from .files import Size, check_outputs, failed_path, size_of, write_atomic
from .kinds import OutputKind
from .models import sniff
from .progress import Progress, noop
from .recipe import Recipe
from .report import Report, Sizes, reports_json
from .session import Session, Timings, data_info, keras_layer_names, load, model_info, plan_data, weights_measure
from .tflite.sizes import layer_sizes
from .verify import Reference, VerifyResult

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
    if recipe.mode.search and (not recipe.verify.enabled or recipe.stages):
        raise UsageError(f"--quantize {recipe.mode.name} searches for what meets the verification gates: it needs "
                         "verification (--data FILE, not --no-verify) and no fine-tuning stages")
    check_outputs({"-o": output_path(recipe), **recipe.output_paths()}, recipe.input_paths())


@dataclass
class Shared:
    """What a sweep computes once, in one worker, and hands to every candidate's run (pickled): the data plan
    (read and validated), the original's outputs on the evaluation samples with the labels matched to
    outputs, the output kinds, and the size of the original's float32 conversion.  A candidate still loads
    the model itself (a TensorFlow model cannot cross processes) but recomputes none of these."""

    plan: DataPlan | None
    reference: Reference | None
    kinds: dict[str, OutputKind]
    float32_tflite: Size | None


def run(recipe: Recipe, progress: Progress | None = None, *, checked: bool = False) -> Report:
    """Load → optimize stages → convert → verify → write → report.  Raises TfoptError subclasses.

    ``checked``: the caller already ran ``preflight`` (the CLI does, before it starts the worker)."""
    report, data = execute(recipe, progress, checked=checked)
    if data is None:  # a multi-worker run's other worker: the chief writes the model and the reports
        return report
    report.output, report.failed_output = _write(recipe, data, report.verification)
    write_reports(recipe, [report])
    return report


def execute(recipe: Recipe, progress: Progress | None = None, *, checked: bool = False,
            shared: Shared | None = None) -> tuple[Report, bytes | None]:
    """``run`` without writing anything: the report and the converted model's bytes (None on a multi-worker
    run's non-chief worker, which only fine-tunes).  With ``shared`` (a sweep
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


def _run(recipe: Recipe, session: Session, timings: Timings, progress: Progress,
         shared: Shared | None) -> tuple[Report, bytes | None]:
    if (recipe.verify.enabled or recipe.stages) and shared is None:
        with timings("reference outputs"):
            session.prepare_reference()
    model, stage_results = _fine_tune(recipe, session, timings, progress)
    if _other_worker(recipe):  # every worker trained; the chief converts, verifies and writes
        from .stages.finetune import worker_index

        return Report(recipe=recipe, model=model_info(session.original), mode=recipe.mode.name, output=None,
                      timings=dict(timings), stages=stage_results, versions=_tf.versions(),
                      notes=[f"worker {worker_index()} of a multi-worker run: it fine-tuned; the chief "
                             "converts, verifies and writes the model"], extra={"worker": worker_index()}), None
    mode, converter = recipe.mode, session.converter(model)
    result, verification, extra, explained = _convert_and_verify(recipe, session, converter, timings, shared)
    sizes = _sizes(recipe, session, converter, result, timings, shared)
    if stage_results:
        stage_results[-1].exported_output = weights_measure(result, model.model)
    slim = next((s.slim for s in stage_results if s.slim is not None), None)
    if slim is not None:
        with timings("slim: original vs final .tflite"):
            _measure_slim(session, slim, result)
    notes = (session.plan.notes if session.plan else []) + result.notes + explained
    if recipe.data.calibration == "random" and mode.needs_calibration:
        notes.append("calibrated on synthetic random data (--calibration random): int8 ranges may be wrong")
    report = Report(
        recipe=recipe, model=model_info(session.original), mode=mode.name, output=output_path(recipe),
        data=data_info(session.plan, session.calibration(mode)), io_types=result.tflite.io_types(), sizes=sizes,
        timings=dict(timings), verification=verification, stages=stage_results, notes=notes,
        versions=_tf.versions(), layer_sizes=layer_sizes(result.tflite, keras_layer_names(session.original)),
        extra=extra,
    )
    return report, result.data


def _fine_tune(recipe: Recipe, session: Session, timings: Timings, progress: Progress):
    """The model to convert (the original, or the fine-tuned one) and one result per stage."""
    if not recipe.stages:
        return session.original, []
    from .stages.apply import apply_stages

    with timings("fine-tune"):
        return apply_stages(session.original, recipe.stages, recipe.train, recipe.data, recipe.seed, session.plan,
                            session.measure, progress)


def _other_worker(recipe: Recipe) -> bool:
    """A multi-worker run's non-chief worker: it only fine-tunes."""
    if not recipe.stages or recipe.train.strategy != "multiworker":
        return False
    from .stages.finetune import is_chief

    return not is_chief()


def _convert_and_verify(recipe: Recipe, session: Session, converter: Converter, timings: Timings,
                        shared: Shared | None) -> tuple[ConvertResult, VerifyResult | None, dict, list[str]]:
    """Convert in the recipe's mode (or run the auto search) and verify; a plain int8 run that misses a gate
    carries the per-layer analysis.  Returns (result, verification, report extras, notes)."""
    mode = recipe.mode
    if mode.search:
        from .auto_run import run_auto

        with timings("auto search"):
            result, verification, extra = run_auto(session, converter)
        return result, verification, extra, []
    with timings(f"convert {mode.name}"):
        result = converter.convert(session.config(mode), session.calibration(mode))
    verification = None
    if recipe.verify.enabled:
        with timings("verify"):
            verification = session.verify(result)
    if verification is not None and not verification.passed and mode is modes.INT8 and not recipe.stages \
            and shared is None:  # a sweep compares candidates; one run explains its miss
        from .auto_run import explain_miss

        with timings("per-layer analysis"):
            extra, explained = explain_miss(session, converter)
            return result, verification, extra, explained
    return result, verification, {}, []


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


def _markdown(reports: list[Report]) -> str:
    from .render.markdown import markdown

    return markdown(reports)


def _junit(reports: list[Report]) -> str:
    from .render.junit import junit_xml

    return junit_xml(reports)
