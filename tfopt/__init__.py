"""tfopt: turn a trained Keras model into a small, fast TFLite model and prove it still works.

The public API (nothing here imports TensorFlow until used)::

    from tfopt import from_dict, load_recipe, run, verify_file, load_model, TfoptError
    report = run(from_dict({"model": {"path": "model.h5"}, "data": {"path": "calib.npz"},
                            "convert": {"quantize": "int8"}}))
"""

from .errors import TfoptError
from .recipe import Recipe, from_dict, load_recipe

__all__ = ["Recipe", "TfoptError", "VerifyJob", "from_dict", "load_model", "load_recipe", "run", "verify_file"]


def __getattr__(name: str):
    if name in ("run", "verify_file", "VerifyJob"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "load_model":
        from .models import load_model

        return load_model
    raise AttributeError(name)
