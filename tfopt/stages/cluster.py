"""Weight clustering (TF-MOT ``cluster_weights``): each kernel keeps at most N distinct values.

After a prune stage the clustering preserves sparsity (zeros stay zero: sparsity-preserving
clustering, the "PC" of PCQAT).  The wrappers are stripped before export.
"""

from __future__ import annotations

from typing import Any

from .. import _tf
from ..recipe.schema import ClusterStage

INITS = {"kmeans++": "KMEANS_PLUS_PLUS", "linear": "LINEAR", "random": "RANDOM", "density-based": "DENSITY_BASED"}


def unsupported_reason(layer, stage: ClusterStage) -> str | None:
    """None when TF-MOT can cluster ``layer`` (layers without weights need nothing), else "" (no support)."""
    if not layer.weights:
        return None
    return None if _tf.tfmot_supports()["cluster"](layer) else ""


def wrap_layer(layer, stage: ClusterStage, steps: int, previous: tuple[str, ...]) -> Any:
    c = _tf.tfmot().clustering.keras
    init = getattr(c.CentroidInitialization, INITS[stage.init])
    return c.cluster_weights(layer, number_of_clusters=stage.clusters, cluster_centroids_init=init,
                             preserve_sparsity="prune" in previous)


def callbacks(stage: ClusterStage) -> list:
    return []


def strip(model):
    return _tf.tfmot().clustering.keras.strip_clustering(model)


def describe(stage: ClusterStage, previous: tuple[str, ...]) -> dict:
    return {"clusters": stage.clusters, "init": stage.init, "preserve_sparsity": "prune" in previous}
