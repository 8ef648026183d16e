"""tfopt: turn a trained Keras model into a small, fast TFLite model and prove it still works.

The public API (nothing here imports TensorFlow until used)::

    from tfopt import Recipe, run, load_model, verify, TfoptError
"""

from .errors import TfoptError
from .recipe import Recipe, from_dict, load_recipe

__all__ = ["Recipe", "TfoptError", "from_dict", "load_recipe", "load_model", "run", "verify"]


def __getattr__(name: str):
    if name == "run":
        from .pipeline import run

        return run
    if name == "load_model":
        from .models import load_model

        return load_model
    if name == "verify":
        from .verify import verify

        return verify
    raise AttributeError(name)
