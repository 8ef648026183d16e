"""A run's ``--quantize auto`` and ``tfopt analyze``: the probe (calibrate once, selective int8, the gates)
built from the pipeline's ``Session``, the other modes as candidates, and the chosen ``ConvertResult``.

    result, verification, extra = run_auto(session, converter)      # pipeline._run, mode.search
    analysis = analyze_recipe(recipe, progress)                      # tfopt analyze
"""

from __future__ import annotations

import dataclasses
import time

from . import ids, modes
from .analyze import Analysis, Probe, analyze
from .auto import Search, choose
from .convert import ConvertConfig, ConvertResult, Converter
from .errors import TfoptError, UsageError
from .modes import Mode
from .selective import Calibrated, LayerNames, quantize
from .tflite import TFLiteModel, read
from .verify import VerifyResult, verify


def int8_config(session) -> ConvertConfig:
    """The int8 configuration of a run: the run's io type when int8 allows it."""
    io = session.recipe.convert.io_type
    config = session.config(modes.INT8)
    return dataclasses.replace(config, io_type=io if io in modes.INT8.io_types else None)


def probe_for(session, converter: Converter, budget: Mode) -> tuple[Probe, list[str]]:
    """Calibrate once; int8 candidates with layers in float (id inputs exact); the gates of ``budget``."""
    config = int8_config(session)
    calibration = session.calibration(modes.INT8)
    names = LayerNames.of(converter.model.model, [o.name for o in converter.model.outputs])
    cal = Calibrated.of(converter.calibrated(config, calibration), names)
    io = config.resolved_io_type
    found = ids.id_inputs(read(quantize(cal, io_type=modes.FLOAT32.default_io_type), "the int8 model"))
    notes: list[str] = []
    if found and io != modes.FLOAT32.default_io_type:
        _, notes = ids.with_io_type(quantize(cal, io_type=modes.FLOAT32.default_io_type), io, found)

    def make(layers) -> TFLiteModel:
        if found and io != modes.FLOAT32.default_io_type:
            data, _ = ids.with_io_type(quantize(cal, layers, modes.FLOAT32.default_io_type), io, found)
            return read(data, "the int8 model")
        return read(quantize(cal, layers, io), "the int8 model")

    settings = session.gate_settings(budget)

    def check(model: TFLiteModel) -> VerifyResult:
        return verify(model, session.reference, session.kinds, settings)

    feeds, _ = session.reference.subset.all()
    return Probe(cal, make, check, feeds), notes


def run_auto(session, converter: Converter) -> tuple[ConvertResult, VerifyResult, dict]:
    """The auto search of a run: the chosen (or, when nothing meets the budget, the closest) candidate."""
    start = time.perf_counter()
    budget = session.recipe.mode
    probe, id_notes = probe_for(session, converter, budget)
    notes: list[str] = []  # modes the converter refused
    results: dict[str, ConvertResult] = {}
    analysis: list[Analysis] = []

    def ranked() -> Analysis:
        if not analysis:
            session.progress("measuring each layer's effect on the outputs")
            analysis.append(analyze(probe, debug_samples=32))
        return analysis[0]

    def other(mode: Mode):
        def convert() -> tuple[TFLiteModel, VerifyResult]:
            io = session.recipe.convert.io_type
            config = dataclasses.replace(session.config(mode), io_type=io if io in mode.io_types else None)
            results[mode.name] = converter.convert(config, session.calibration(mode))
            return results[mode.name].tflite, probe.check(results[mode.name].tflite)
        return convert

    others = {m.name: other(m) for m in modes.MODES.values()
              if m not in (modes.FLOAT32, modes.INT8) and not m.search}
    search = Search(probe, ranked, other(modes.FLOAT32), {}, session.recipe.convert.objective,
                    session.recipe.convert.allow_slower)
    search.others = {name: _guarded(name, fn, notes) for name, fn in others.items()}
    sample = {k: v[:1] for k, v in probe.feeds.items()}
    outcome = choose(search, sample)
    outcome.notes = notes + outcome.notes
    picked = outcome.chosen or outcome.closest or outcome.full_int8
    if picked.mode in results:
        result = results[picked.mode]
    else:
        result = ConvertResult(picked.tflite, int8_config(session), time.perf_counter() - start, list(id_notes))
    extra = {"auto": outcome}
    if analysis:
        extra["analysis"] = analysis[0]
    return result, picked.verification, extra


def _guarded(name: str, convert, notes: list[str]):
    """A mode the converter refuses for this model is no candidate (noted)."""
    def attempt():
        try:
            return convert()
        except TfoptError as e:
            notes.append(f"{name}: not a candidate ({e})")
            return None
    return attempt


def analyze_session(session, converter: Converter, debug_samples: int = 32) -> Analysis:
    """``tfopt analyze``: per-layer statistics and single-layer sensitivity under the int8 gates."""
    if session.reference is None:
        raise UsageError("tfopt analyze needs evaluation data: pass --data FILE")
    probe, notes = probe_for(session, converter, modes.INT8)
    result = analyze(probe, debug_samples)
    result.notes += notes
    return result


def explain_miss(session, converter: Converter) -> tuple[dict, list[str]]:
    """When plain int8 misses a gate: the per-layer table for the report (``extra["analysis"]``) and a note."""
    try:
        analysis = analyze_session(session, converter, debug_samples=32)
    except TfoptError as e:
        return {}, [f"no per-layer analysis of the int8 miss: {e}"]
    if not analysis.layers:
        return {}, []
    return {"analysis": analysis}, [
        f"int8 missed a gate; the layer whose int8 error moves the outputs most is '{analysis.layers[0].layer}' "
        f"(per-layer table above): --quantize {modes.AUTO.name} keeps the layers the gates need in float"]
