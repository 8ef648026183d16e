"""``tfopt analyze``: per-layer int8 error of a Keras model on held-out data (``analyze.py``), one worker job.

    analysis = analyze_model(AnalyzeJob("m.h5", "test.npz"))
    print(analysis.table()); analysis.to_dict()
"""

from __future__ import annotations

from dataclasses import dataclass

from . import modes
from .analyze import Analysis
from .auto_run import analyze_session
from .errors import DataError
from .files import check_outputs, write_atomic
from .session import Session, load, plan_data
from .progress import Progress, noop
from .recipe import from_dict
from .report import dumps


@dataclass(frozen=True)
class AnalyzeJob:
    model: str
    data: str
    quantize: str = modes.INT8.name
    io_type: str | None = None
    custom_objects: str | None = None
    calibration_samples: int = 200
    eval_samples: int | None = None
    debug_samples: int = 32
    seed: int = 0
    report: str | None = None  # also write the JSON here


def analyze_model(job: AnalyzeJob, progress: Progress = noop) -> Analysis:
    """Calibrate once, then the debugger's statistics and each layer's measured single-layer effect."""
    recipe = from_dict({"model": {"path": job.model, "custom_objects": job.custom_objects},
                        "data": {"path": job.data, "calibration_samples": job.calibration_samples,
                                 "eval_samples": job.eval_samples},
                        "convert": {"quantize": job.quantize, "io_type": job.io_type}, "seed": job.seed})
    check_outputs({"--report": job.report}, recipe.input_paths())
    progress("loading the model and data")
    original, fixed = load(recipe)
    plan = plan_data(recipe, original)
    if plan is None or not len(plan.evaluation):
        raise DataError(f"{job.data}: no held-out samples to analyze on")
    session = Session(recipe, original, plan, fixed, progress)
    try:
        progress("running the original model on the evaluation data")
        session.prepare_reference()
        progress("calibrating and measuring each layer")
        analysis = analyze_session(session, session.converter(original), job.debug_samples)
    finally:
        session.close()
    if job.report:
        write_atomic(job.report, dumps(analysis.to_dict()))
    return analysis
