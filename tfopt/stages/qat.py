"""Quantization-aware training for full-int8 conversion: TF-MOT where it can, tfopt's own configs beyond.

The whole model goes through TF-MOT's annotate + ``quantize_apply`` (its layout transforms fold
BatchNormalization into the preceding Conv/Depthwise/Dense and split SeparableConv2D), so support is
what TF-MOT really decides (``qat_support``); layers it refuses but the converter runs in int8 get
tfopt's QuantizeConfigs (``qat_configs``); the activation ranges start from measured ranges instead
of TF-MOT's [-6, 6] (``qat_ranges``).  The quantize scheme keeps what earlier stages made: after
pruning the pruning-preserving scheme (PQAT), after clustering the cluster-preserving one (CQAT),
after both PCQAT.  The quantize wrappers are what the TFLite converter reads, so they stay.
"""

from __future__ import annotations

from ..errors import UnsupportedLayerError
from ..recipe.schema import QatStage
from ..report import SkippedLayer
from . import qat_ranges, qat_support

SCHEME_NAMES = {"qat": "QAT", "pqat": "PQAT", "cqat": "CQAT", "pcqat": "PCQAT"}


def transform(model, stage: QatStage, previous: tuple[str, ...], ctx):
    """(QAT model, skipped layers, layers on tfopt's configs, notes); ranges calibrated on training samples."""
    scheme = qat_support.scheme_for(previous)
    try:
        qat_model, info = qat_support.apply_qat(model, scheme, skip_unsupported=ctx.train.skip_unsupported)
    except qat_support.QatUnsupportedError as e:
        raise UnsupportedLayerError(
            f"qat: neither TF-MOT nor tfopt can quantize (QAT) {len(e.refusals)} layer(s) of model '{model.name}': "
            + ", ".join(f"'{r.name}' ({r.cls}: {r.reason})" for r in e.refusals),
            "pass --skip-unsupported to keep them in float and quantize the rest (int8 may then need "
            "--allow-float-fallback)",
        ) from None
    x = ctx.data.feed(ctx.data.x)
    calibration = qat_ranges.calibrate_ranges(qat_model, qat_ranges.batches_of(x, ctx.train.batch_size))
    skipped = [SkippedLayer(r.name, r.cls, r.reason) for r in info.skipped]
    own = [SkippedLayer(name, v["class"], f"{v['config']}: {v['why']}") for name, v in info.tfopt_configs.items()]
    notes = [f"qat: {p['change']}" for p in info.prepared]
    notes.append(f"qat: activation ranges calibrated on {calibration['batches']} training batches "
                 f"({calibration['changed']} of {calibration['range_variables']} range variables moved from [-6, 6])")
    return qat_model, skipped, own, notes


def callbacks(stage: QatStage) -> list:
    return []


def strip(model):
    return model


def describe(stage: QatStage, previous: tuple[str, ...]) -> dict:
    return {"scheme": SCHEME_NAMES[qat_support.scheme_for(previous)]}
