"""Load Keras models (.h5, .keras from Keras 2 or 3, SavedModel) behind one interface (``LoadedModel``).

``load_model`` sniffs the file (never trusting the extension alone), decides which
Keras wrote it and loads it with that Keras: tf_keras for Keras 2 files, Keras 3 for
Keras 3 files, ``tf.saved_model`` for SavedModels that are not Keras.  The result is a
``LoadedModel`` with a plain input/output signature the other stages rely on.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _tf
from .errors import ModelLoadError
from .shapes import TensorSpec

H5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
EXPECTED = "expected a Keras .h5 or .keras file or a SavedModel directory"


@dataclass(frozen=True)
class LoadedModel:
    """A model plus what tfopt needs to know about it (immutable: ``replace`` gives variants)."""

    path: Path
    format: str  # "h5" | "keras" | "savedmodel"
    keras_version: str | None  # version string that wrote the file; None for a non-Keras SavedModel
    model: Any  # tf_keras model, Keras 3 model, or a tf.saved_model signature function
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    training_config: dict | None = None
    custom_objects: dict[str, Any] = field(default_factory=dict)
    owner: Any = field(default=None, repr=False, compare=False)  # keeps a SavedModel signature's object alive

    def replace(self, **changes) -> "LoadedModel":
        return dataclasses.replace(self, **changes)

    @property
    def trackable(self) -> Any:
        """What holds the variables (the converter freezes them): the Keras model or the SavedModel object."""
        return self.owner if self.flavour == "saved_model" else self.model

    @property
    def keras_major(self) -> int | None:
        return int(self.keras_version.split(".")[0]) if self.keras_version else None

    @property
    def flavour(self) -> str:
        """'tf_keras', 'keras3' or 'saved_model': which converter path applies."""
        return {2: "tf_keras", 3: "keras3"}.get(self.keras_major, "saved_model")

    def predict(self, feeds: dict[str, np.ndarray], batch_size: int = 256) -> dict[str, np.ndarray]:
        """Run the original model on named inputs; returns outputs by name."""
        n = len(next(iter(feeds.values())))
        chunks: dict[str, list[np.ndarray]] = {o.name: [] for o in self.outputs}
        for start in range(0, n, batch_size):
            batch = {k: v[start : start + batch_size] for k, v in feeds.items()}
            for name, value in self._call(batch).items():
                chunks[name].append(value)
        return {k: np.concatenate(v) for k, v in chunks.items()}

    def _call(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tf = _tf.tf()
        if self.flavour == "saved_model":
            out = self.model(**{k: tf.constant(v) for k, v in batch.items()})
            return {k: np.asarray(v) for k, v in out.items()}
        args = [batch[spec.name] for spec in self.inputs]
        out = self.model(args if len(args) > 1 else args[0], training=False)
        if not isinstance(out, (list, tuple)):
            out = [out]
        return {spec.name: np.asarray(v) for spec, v in zip(self.outputs, out)}


def sniff(path: Path) -> str:
    """Return 'h5', 'keras' or 'savedmodel' for a model path, or raise ModelLoadError."""
    if not path.exists():
        raise ModelLoadError(f"model not found: {path} ({EXPECTED})")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "savedmodel"
        raise ModelLoadError(f"{path} is a directory without saved_model.pb ({EXPECTED})")
    with path.open("rb") as fh:
        head = fh.read(8)
    if head == H5_MAGIC:
        return "h5"
    if head[:4] == ZIP_MAGIC:
        return "keras"
    raise ModelLoadError(f"{path} is not a Keras model: neither HDF5 nor a .keras zip ({EXPECTED})")


def keras_version_of(path: Path, fmt: str) -> tuple[str | None, dict | None]:
    """Which Keras wrote the file (version string) and its training config, if any."""
    if fmt == "savedmodel":
        return (_savedmodel_keras_version(path), None)
    if fmt == "h5":
        import h5py

        try:
            with h5py.File(path, "r") as f:
                attrs = dict(f.attrs)
        except OSError as e:
            raise ModelLoadError(f"{path} is a corrupt or truncated HDF5 file ({e})") from e
        if "model_config" not in attrs:
            raise ModelLoadError(
                f"{path} holds no model architecture (weights only?): "
                "expected a file saved with model.save(), not model.save_weights()"
            )
        version = _text(attrs.get("keras_version", "2.0.0"))
        training = attrs.get("training_config")
        return version, (json.loads(_text(training)) if training is not None else None)
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad is not None:
                raise ModelLoadError(f"{path} is corrupt: member {bad} fails its CRC check")
            meta = json.loads(z.read("metadata.json"))
            config = json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise ModelLoadError(f"{path} is a corrupt or truncated .keras file ({e})") from e
    return str(meta.get("keras_version", "3.0.0")), config.get("compile_config")


def _savedmodel_keras_version(path: Path) -> str | None:
    meta = path / "keras_metadata.pb"
    if not meta.is_file():
        return None
    return "2"


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def load_custom_objects(spec: str | None) -> dict[str, Any]:
    """``FILE.py`` (every public class/function in it) or ``module:attr`` (a dict or one object)."""
    if not spec:
        return {}
    _tf.tf()  # user code may import tensorflow: TF_USE_LEGACY_KERAS must be set first
    if spec.endswith(".py"):
        file = Path(spec)
        if not file.is_file():
            raise ModelLoadError(f"custom objects file not found: {file} (expected a .py file)")
        mod_spec = importlib.util.spec_from_file_location(f"tfopt_custom_{file.stem}", file)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_spec.name] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as e:  # user code: any failure is theirs to see
            raise ModelLoadError(f"custom objects file {file} failed to import: {type(e).__name__}: {e}") from e
        explicit = getattr(module, "CUSTOM_OBJECTS", None)
        if isinstance(explicit, dict):
            return dict(explicit)
        return {
            name: obj
            for name, obj in vars(module).items()
            if not name.startswith("_") and callable(obj) and getattr(obj, "__module__", None) == module.__name__
        }
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ModelLoadError(f"custom objects module {module_name!r} cannot be imported ({e})") from e
    if not attr:
        return {n: o for n, o in vars(module).items() if not n.startswith("_") and callable(o)}
    try:
        obj = getattr(module, attr)
    except AttributeError as e:
        raise ModelLoadError(f"custom objects: module {module_name!r} has no attribute {attr!r}") from e
    return dict(obj) if isinstance(obj, dict) else {getattr(obj, "__name__", attr): obj}


def load_model(path: str | Path, custom_objects: str | dict | None = None) -> LoadedModel:
    """Load a Keras model file or SavedModel directory; raise ModelLoadError with a clear message."""
    path = Path(path)
    fmt = sniff(path)
    version, training = keras_version_of(path, fmt)
    objects = custom_objects if isinstance(custom_objects, dict) else load_custom_objects(custom_objects)
    if fmt == "savedmodel" and version is None:
        return _load_signature(path, objects)
    if fmt == "savedmodel":
        return _load_keras_savedmodel(path, version, objects)
    try:
        if version and version.startswith("3"):
            keras = _tf.keras3()
            objects = _registered_aliases(path, objects) if fmt == "keras" else objects
            model = keras.saving.load_model(path, compile=False, custom_objects=objects or None, safe_mode=False)
        else:
            model = _tf.tf_keras().models.load_model(path, compile=False, custom_objects=objects or None)
    except Exception as e:  # Keras raises ValueError, TypeError, OSError, KeyError ...
        raise ModelLoadError(_load_failure(path, e)) from e
    if not hasattr(model, "inputs") or not getattr(model, "inputs", None):
        raise ModelLoadError(
            f"{path}: the model has no input signature (a subclassed model that was never called?): "
            "expected a Functional or Sequential model with defined inputs"
        )
    return LoadedModel(
        path=path,
        format=fmt,
        keras_version=version,
        model=model,
        inputs=_specs(model.inputs, _input_names(model)),
        outputs=_specs(model.outputs, _output_names(model)),
        training_config=training,
        custom_objects=objects,
    )


def _load_keras_savedmodel(path: Path, version: str | None, objects: dict) -> LoadedModel:
    """A tf_keras SavedModel: as Keras when its classes are known, else through its signature.

    Without the custom objects, tf_keras revives custom layers as generic ``Revived*`` layers;
    converting and verifying through the ``serving_default`` signature is then the faithful path.
    """
    try:
        model = _tf.tf_keras().models.load_model(path, compile=False, custom_objects=objects or None)
    except Exception:  # noqa: BLE001 - unknown custom classes and the like: the signature still runs
        return _load_signature(path, objects)
    revived = [layer.name for layer in getattr(model, "layers", []) if type(layer).__module__.endswith("saved_model.load")]
    if revived or not getattr(model, "inputs", None):
        return _load_signature(path, objects)
    return LoadedModel(path, "savedmodel", version, model, _specs(model.inputs, _input_names(model)),
                       _specs(model.outputs, _output_names(model)), None, objects)


def _registered_aliases(path: Path, objects: dict) -> dict:
    """Keras 3 looks classes up by registered name (``package>Class``): alias the user's classes to them."""
    if not objects:
        return objects
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        return objects
    aliases = dict(objects)
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            name, registered = node.get("class_name"), node.get("registered_name")
            if isinstance(registered, str) and name in objects:
                aliases.setdefault(registered, objects[name])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return aliases


def _load_failure(path: Path, e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "Unknown layer" in str(e) or "Could not locate class" in str(e) or "custom_objects" in str(e):
        return (
            f"{path}: the model uses a custom layer or object that is not registered ({text[:200]}); "
            "pass --custom-objects FILE.py or module:attr"
        )
    return f"{path} could not be loaded as a Keras model: {type(e).__name__}: {text[:300]}"


def _input_names(model) -> list[str]:
    names = getattr(model, "input_names", None)
    return list(names) if names else [_strip(t.name) for t in model.inputs]


def _output_names(model) -> list[str]:
    """Names of the layers that produce the outputs (what users call their outputs)."""
    names = []
    for tensor in model.outputs:
        history = getattr(tensor, "_keras_history", None)
        layer = getattr(history, "operation", None) or getattr(history, "layer", None)
        names.append(layer.name if layer is not None else _strip(tensor.name))
    legacy = getattr(model, "output_names", None)
    if len(set(names)) != len(names) and legacy and len(legacy) == len(names):
        return list(legacy)
    return names


def _strip(name: str) -> str:
    return name.split(":")[0].split("/")[0]


def _specs(tensors, names: list[str]) -> list[TensorSpec]:
    out = []
    for tensor, name in zip(tensors, names):
        dtype = getattr(tensor.dtype, "name", str(tensor.dtype))
        out.append(TensorSpec(name=name, shape=tuple(tensor.shape), dtype=str(dtype)))
    return out


def _load_signature(path: Path, objects: dict) -> LoadedModel:
    tf = _tf.tf()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # noqa: BLE001 - TF raises many types for a bad SavedModel
        raise ModelLoadError(f"{path} could not be loaded as a SavedModel: {type(e).__name__}: {e}") from e
    fn = getattr(loaded, "signatures", {}).get("serving_default")
    if fn is None:
        raise ModelLoadError(f"{path}: SavedModel has no 'serving_default' signature (expected an exported model)")
    _, kwargs = fn.structured_input_signature
    inputs = [TensorSpec(k, tuple(s.shape), s.dtype.name) for k, s in sorted(kwargs.items())]
    outputs = [TensorSpec(k, tuple(s.shape), s.dtype.name) for k, s in sorted(fn.structured_outputs.items())]
    return LoadedModel(path, "savedmodel", None, fn, inputs, outputs, None, objects, owner=loaded)
