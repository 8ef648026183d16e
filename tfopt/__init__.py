"""tfopt: turn a trained Keras model into a small, fast TFLite model and prove it still works.

The public API (importing tfopt imports nothing heavy; each name loads its module on first use)::

    from tfopt import from_dict, load_recipe, run, verify_file, load_model, TfoptError
    report = run(from_dict({"model": {"path": "model.h5"}, "data": {"path": "calib.npz"},
                            "convert": {"quantize": "int8"}}))
"""

from importlib import import_module

from .errors import TfoptError

_LAZY = {  # name -> module that defines it
    "Recipe": ".recipe", "from_dict": ".recipe", "load_recipe": ".recipe", "run": ".pipeline",
    "verify_file": ".verify_job", "VerifyJob": ".verify_job", "load_model": ".models",
}
__all__ = ["TfoptError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)
