"""Input/output specs (``TensorSpec``) and static input shapes (``--input-shape [NAME=]d0,d1,...``).

A shape is the FULL shape, batch first (``seq=1,20,8``); ``-1`` keeps the batch dimension
dynamic.  An unnamed shape (``--input-shape 1,20,8``) is stored under ``"*"`` and applies to
a single-input model.  No TensorFlow here: the CLI parses flags with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: its name, shape (None = dynamic) and dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @property
    def is_integer(self) -> bool:
        return self.dtype.startswith(("int", "uint"))


ANY_INPUT = "*"
FLAG = "--input-shape"


def parse_flag(text: str) -> tuple[str, tuple[int, ...]]:
    """``'seq=1,20,8'`` → ``('seq', (1, 20, 8))``; ``'1,20,8'`` → ``('*', (1, 20, 8))``."""
    name, sep, dims = text.rpartition("=")
    name = name.strip() if sep else ANY_INPUT
    try:
        shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
    except ValueError:
        shape = ()
    if not shape or not name:
        raise UsageError(f"{FLAG} {text!r}: expected [NAME=]d0,d1,... with integer dimensions, batch first (e.g. seq=1,20,8)")
    return name, shape


def parse_flags(values: tuple[str, ...] | list[str] | None) -> dict[str, list[int]] | None:
    """Repeated flags → the recipe's ``model.input_shapes`` table (None when no flag was given)."""
    if not values:
        return None
    table: dict[str, list[int]] = {}
    for text in values:
        name, shape = parse_flag(text)
        if name in table:
            raise UsageError(f"{FLAG}: input {name!r} given twice")
        table[name] = list(shape)
    return table


def resolve(inputs: list[TensorSpec], table: dict[str, tuple[int, ...]]) -> dict[str, tuple[int | None, ...]]:
    """Check ``table`` against the model inputs; return full shapes by input name (None = dynamic)."""
    if not table:
        return {}
    names = [i.name for i in inputs]
    if ANY_INPUT in table and len(table) == 1 and len(inputs) == 1:
        table = {names[0]: table[ANY_INPUT]}
    unknown = [k for k in table if k not in names]
    if unknown:
        where = "an unnamed shape" if unknown == [ANY_INPUT] else f"input {unknown[0]!r}"
        raise UsageError(
            f"{FLAG} (model.input_shapes): {where} does not match the model inputs {names}; "
            f"expected NAME=d0,d1,... with NAME one of them"
        )
    out: dict[str, tuple[int | None, ...]] = {}
    for spec in inputs:
        if spec.name in table:
            out[spec.name] = _check(spec, tuple(table[spec.name]))
    return out


def _check(spec: TensorSpec, shape: tuple[int, ...]) -> tuple[int | None, ...]:
    where = f"{FLAG} {spec.name}={','.join(map(str, shape))}"
    if len(shape) != len(spec.shape):
        raise UsageError(
            f"{where}: got {len(shape)} dimensions, expected {len(spec.shape)} (batch first) for input "
            f"'{spec.name}' of shape {format_shape(spec.shape)}"
        )
    fixed: list[int | None] = []
    for i, (got, model_dim) in enumerate(zip(shape, spec.shape)):
        if got == -1 and i == 0:
            fixed.append(None)
            continue
        if got < 1:
            raise UsageError(f"{where}: dimension {i} is {got}, expected a positive size (-1 only for the batch)")
        if model_dim is not None and got != model_dim and i > 0:
            raise UsageError(f"{where}: dimension {i} is {got}, but the model fixes it to {model_dim}")
        fixed.append(got)
    if fixed[0] not in (None, 1):
        raise UsageError(f"{where}: batch {fixed[0]}, expected 1 or -1 (dynamic); tfopt verifies sample by sample")
    return tuple(fixed)


def format_shape(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def example_flag(spec: TensorSpec) -> str:
    """``--input-shape seq=1,T,8`` with a placeholder for each dynamic dimension."""
    dims = ["1"] + [("T" if i == 1 else f"D{i}") if d is None else str(d) for i, d in enumerate(spec.shape) if i > 0]
    return f"{FLAG} {spec.name}={','.join(dims)}"


def apply(inputs: list[TensorSpec], shapes: dict[str, tuple[int | None, ...]]) -> list[TensorSpec]:
    """Input specs with the fixed shapes (batch kept dynamic in the spec: data have any count)."""
    return [TensorSpec(s.name, (None,) + tuple(shapes[s.name][1:]), s.dtype) if s.name in shapes else s for s in inputs]
