"""Data sources → named, validated, batched samples for calibration, evaluation and training.

Sources: ``.npz`` (``x``/``y``; ``x_train``/``y_train``/``x_test``/``y_test``; or one key per
model input name), ``.npy`` (inputs only), or a folder of images with one sub-folder per
class.  Calibration and evaluation decode image folders batch by batch, never all at once;
fine-tuning (``finetune.py``) holds its training samples in memory.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from .errors import DataError
from .shapes import TensorSpec

FINE_TUNE_EVAL_FRACTION = 0.2  # of a one-split source held out for evaluation when fine-tuning
UNNAMED = "y"  # labels that name no output: kinds.resolve matches them to the output they fit
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
_KEY = re.compile(r"(?P<base>.+?)(?:_(?P<part>train|test))?$")
Batch = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # (inputs by name, labels by output name)


class Split(Protocol):
    """A sized collection of samples that can materialise any subset of rows."""

    def __len__(self) -> int: ...

    def rows(self, index: np.ndarray) -> Batch: ...

    def name_labels(self, output: str) -> None: ...


@dataclass
class ArraySplit:
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.x.values())))

    def rows(self, index: np.ndarray) -> Batch:
        return ({k: v[index] for k, v in self.x.items()}, {k: v[index] for k, v in self.y.items()})

    def name_labels(self, output: str) -> None:
        if UNNAMED in self.y:
            self.y[output] = self.y.pop(UNNAMED)


@dataclass
class ImageSplit:
    """Image files decoded on demand and resized to the model input."""

    files: list[Path]
    labels: np.ndarray
    input: TensorSpec
    output_name: str = UNNAMED
    scale: float = 1.0 / 255.0
    offset: float = 0.0

    def __len__(self) -> int:
        return len(self.files)

    def name_labels(self, output: str) -> None:
        self.output_name = output

    def rows(self, index: np.ndarray) -> Batch:
        from . import _tf

        tf = _tf.tf()
        height, width, channels = (self.input.shape[1:] + (None, None, None))[:3]
        images = []
        for i in index:
            raw = tf.io.read_file(str(self.files[i]))
            try:
                img = tf.io.decode_image(raw, channels=channels or 3, expand_animations=False)
            except Exception as e:  # noqa: BLE001 - tf raises InvalidArgumentError
                raise DataError(f"{self.files[i]} is not a readable image ({type(e).__name__})") from e
            img = tf.image.resize(img, (height or img.shape[0], width or img.shape[1]))
            images.append(img.numpy() * self.scale + self.offset)
        x = np.stack(images).astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise DataError(f"{self.files[0].parent.parent}: --scale {self.scale:g} / --offset {self.offset:g} make "
                            "non-finite pixel values; expected finite numbers")
        return {self.input.name: x}, {self.output_name: self.labels[index]}


@dataclass
class Subset:
    """Some rows of a split, read in batches."""

    split: Split
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        for start in range(0, len(self.index), batch_size):
            yield self.split.rows(self.index[start : start + batch_size])

    def all(self) -> Batch:
        return self.split.rows(self.index)

    @property
    def has_labels(self) -> bool:
        return bool(self.split.rows(self.index[:1])[1]) if len(self.index) else False


@dataclass
class DataPlan:
    """Which samples calibrate, which evaluate, which fine-tune — and what the user should know."""

    source: Path
    calibration: Subset
    evaluation: Subset
    train: Subset
    notes: list[str] = field(default_factory=list)

    def name_labels(self, output: str) -> None:
        """The unnamed labels ``y`` belong to ``output`` (decided by ``kinds.resolve``)."""
        for subset in (self.calibration, self.evaluation, self.train):
            subset.split.name_labels(output)


def load_data(
    path: str | Path,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    *,
    calibration_samples: int = 200,
    eval_samples: int | None = None,
    seed: int = 0,
    scale: float | None = None,
    offset: float | None = None,
    fine_tune: bool = False,
) -> DataPlan:
    """Open a data source, validate it against the model signature and plan its use.

    ``fine_tune``: a one-split source is split 80 / 20 into fine-tuning (and calibration) and evaluation
    samples, instead of training on its calibration part only."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data not found: {path} (expected a .npz or .npy file or a folder of class sub-folders)")
    parts = _open(path, inputs, outputs, scale, offset)
    for split in parts.values():
        if isinstance(split, ArraySplit):
            _validate(path, split, inputs)
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    if "train" in parts and "test" in parts:
        train, test = parts["train"], parts["test"]
        cal_pool = rng.permutation(len(train))
        eval_index = np.arange(len(test))
        train_sub = Subset(train, np.arange(len(train)))
    else:
        (only,) = parts.values()
        order = rng.permutation(len(only))
        n_cal = min(calibration_samples, len(only))
        n_eval = int(round(len(only) * FINE_TUNE_EVAL_FRACTION))
        if fine_tune and n_eval >= 1 and len(only) - n_eval >= 1:
            train_index, eval_index = np.sort(order[n_eval:]), np.sort(order[:n_eval])
            notes.append(f"{path.name} has one split: {len(train_index)} seeded samples fine-tune and calibrate, "
                         f"the other {len(eval_index)} evaluate")
            cal_index = np.sort(rng.permutation(train_index)[: min(calibration_samples, len(train_index))])
            if eval_samples is not None:
                eval_index = eval_index[:eval_samples]
            return DataPlan(path, Subset(only, cal_index), Subset(only, eval_index), Subset(only, train_index), notes)
        if n_cal == 0:
            cal_pool, eval_index = order[:0], np.arange(len(only))
        elif len(only) - n_cal >= 1:
            cal_pool, eval_index = order[:n_cal], np.sort(order[n_cal:])
            notes.append(
                f"{path.name} has one split: {n_cal} seeded samples calibrate, the other {len(eval_index)} evaluate"
            )
        else:
            cal_pool, eval_index = order, np.arange(len(only))
            notes.append(f"{path.name} is too small to hold samples out: calibration and evaluation overlap")
        train, test = only, only
        train_sub = Subset(only, np.sort(cal_pool))
    if len(test) == 0 or len(train) == 0:
        raise DataError(f"{path} holds no samples")
    cal_index = np.sort(cal_pool[: min(calibration_samples, len(cal_pool))])
    if eval_samples is not None:
        eval_index = eval_index[:eval_samples]
    return DataPlan(path, Subset(train, cal_index), Subset(test, eval_index), train_sub, notes)


def _open(path: Path, inputs, outputs, scale, offset) -> dict[str, Split]:
    if path.is_dir():
        return {"all": _image_folder(path, inputs, outputs, scale, offset)}
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise DataError(f"{path} is not a readable .npy file ({e})") from e
        if len(inputs) != 1:
            raise DataError(f"{path}: a .npy file feeds one input, but the model has {len(inputs)}; use a .npz")
        _check_array(path, None, array)
        check_finite(path, None, array)
        return {"all": ArraySplit({inputs[0].name: array}, {})}
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path} is not a readable .npz or .npy file ({e})") from e
    return _splits_from_arrays(path, arrays, inputs, outputs)


def _splits_from_arrays(path: Path, arrays: dict, inputs, outputs) -> dict[str, Split]:
    if not arrays:
        raise DataError(f"{path} holds no arrays: expected x (and y), x_train/y_train/x_test/y_test, "
                        "or one key per model input")
    for key, value in arrays.items():
        _check_array(path, key, value)
        check_finite(path, key, value)
    grouped: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        m = _KEY.match(key)
        grouped.setdefault(m["part"] or "all", {})[m["base"]] = value
    if "train" in grouped or "test" in grouped:
        missing = [p for p in ("train", "test") if p not in grouped]
        if missing:
            raise DataError(f"{path}: has *_{'train' if missing[0] == 'test' else 'test'} keys but no *_{missing[0]} keys")
        grouped.pop("all", None)
    return {part: _map_names(path, part, keys, inputs, outputs) for part, keys in grouped.items()}


def _map_names(path: Path, part: str, keys: dict, inputs, outputs) -> ArraySplit:
    input_names = [i.name for i in inputs]
    suffix = "" if part == "all" else f"_{part}"
    if "x" in keys and len(inputs) == 1:
        x = {input_names[0]: keys["x"]}
    elif all(n in keys for n in input_names):
        x = {n: keys[n] for n in input_names}
    else:
        expected = ["x"] if len(inputs) == 1 else input_names
        found = sorted(k + suffix for k in keys)
        raise DataError(
            f"{path}: no data for the model inputs; expected keys "
            f"{[e + suffix for e in expected]} (one per input name), found {found}"
        )
    y = {}
    for out in outputs:
        for key in (f"y_{out.name}", out.name if out.name not in input_names else None):
            if key and key in keys:
                y[out.name] = keys[key]
    if "y" in keys and len(y) < len(outputs):  # y_<name> always wins; plain y is matched to an output later
        y[UNNAMED] = keys["y"]
    n = {key + suffix: len(value) for key, value in keys.items()}  # as the file names them
    if len(set(n.values())) > 1:
        raise DataError(f"{path}: arrays{'' if part == 'all' else ' of ' + part} differ in length: {n}")
    return ArraySplit(x, y)


def _check_array(path: Path, key: str | None, array: np.ndarray) -> None:
    """Numeric, at least one sample: the checks every array gets before anything else."""
    where = f"{path}: key {key!r}" if key is not None else str(path)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"{where} holds {array.dtype} values, expected numbers (float or integer arrays)")
    if array.ndim == 0:
        raise DataError(f"{where} is a single number, expected an array with one row per sample")
    if len(array) == 0:
        raise DataError(f"{where} has no samples (shape {array.shape}), expected at least one")


def check_finite(path: Path, key: str | None, array: np.ndarray) -> None:
    """NaN or ±Inf anywhere is an error naming the file, the key, how many values and the first samples."""
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = ~np.isfinite(array.reshape(len(array), -1))
    count = int(bad.sum())
    if not count:
        return
    rows = np.flatnonzero(bad.any(axis=1))
    kinds = ", ".join(k for k, hit in (("NaN", np.isnan(array).any()), ("+Inf", np.isposinf(array).any()),
                                       ("-Inf", np.isneginf(array).any())) if hit)
    shown = ", ".join(str(int(i)) for i in rows[:5]) + (", ..." if len(rows) > 5 else "")
    where = f"key {key!r}" if key is not None else "the array"
    raise DataError(
        f"{path}: {where} holds {count} non-finite value(s) ({kinds}) in {len(rows)} sample(s), first at "
        f"index {shown}; expected finite numbers: clean the data before calibrating or verifying"
    )


def _validate(path: Path, split: ArraySplit, inputs: list[TensorSpec]) -> None:
    for spec in inputs:
        arr = split.x[spec.name]
        want = spec.shape[1:]
        got = arr.shape[1:]
        if not _fits(got, want):
            if arr.ndim >= 1 and _squeeze(got) == _squeeze(tuple(d for d in want)) and None not in want:
                split.x[spec.name] = arr.reshape((len(arr),) + tuple(want))
            else:
                raise DataError(
                    f"{path}: input '{spec.name}' expects per-sample shape {_fmt(want)}, "
                    f"but the data has {_fmt(got)} (array shape {arr.shape})"
                )
        split.x[spec.name] = _cast(path, spec, split.x[spec.name])


def _cast(path: Path, spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
    want_int = spec.dtype.startswith(("int", "uint"))
    if want_int:
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise DataError(
                    f"{path}: input '{spec.name}' expects integer ids ({spec.dtype}), but the data has "
                    f"non-integer {arr.dtype} values"
                )
        elif not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{path}: input '{spec.name}' expects {spec.dtype}, but the data is {arr.dtype}")
        return arr.astype(spec.dtype)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"{path}: input '{spec.name}' expects {spec.dtype}, but the data is {arr.dtype}")
    return arr.astype(np.float32 if spec.dtype in ("float32", "float16", "bfloat16") else spec.dtype)


def _fits(got: tuple, want: tuple) -> bool:
    return len(got) == len(want) and all(w is None or g == w for g, w in zip(got, want))


def _squeeze(shape: tuple) -> tuple:
    return tuple(d for d in shape if d != 1)


def _fmt(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def _image_folder(path: Path, inputs, outputs, scale, offset) -> ImageSplit:
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        raise DataError(f"{path}: an image folder feeds one image input (N,H,W,C); the model has {len(inputs)} inputs")
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{path}: expected one sub-folder of images per class, found no sub-folders")
    files, labels = [], []
    for label, folder in enumerate(classes):
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(label)
    if not files:
        raise DataError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class sub-folders")
    return ImageSplit(
        files,
        np.asarray(labels, dtype=np.int64),
        inputs[0],
        UNNAMED,
        1.0 / 255.0 if scale is None else scale,
        0.0 if offset is None else offset,
    )


def random_calibration(inputs: list[TensorSpec], n: int, seed: int = 0) -> Subset:
    """Synthetic calibration data (opt-in): uniform [0, 1) floats of the input shapes."""
    rng = np.random.default_rng(seed)
    x = {}
    for spec in inputs:
        if any(d is None for d in spec.shape[1:]):
            raise DataError(f"--calibration random needs static input shapes; '{spec.name}' is {spec.shape}")
        x[spec.name] = rng.random((n,) + tuple(spec.shape[1:]), dtype=np.float32)
    return Subset(ArraySplit(x, {}), np.arange(n))
