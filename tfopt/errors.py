"""One error hierarchy.  Every error a user can cause is a ``TfoptError``.

``exit_code`` is the process exit status the CLI uses for it: 1 for errors,
2 for usage / recipe errors, 3 for a verification that ran and missed a threshold,
130 for an interrupt.
"""

from __future__ import annotations


class TfoptError(Exception):
    """Base class: a problem tfopt can explain in one line."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(TfoptError):
    """Flags or settings that contradict each other."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe file that does not validate; ``problems`` lists every one found."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])

    def __reduce__(self):
        return (type(self), (self.message, self.problems))


class ModelLoadError(TfoptError):
    """The model path is missing, not a model, corrupt, or has no usable signature."""


class DataError(TfoptError):
    """Data that is missing, unreadable, or does not fit the model's inputs."""


class UnsupportedLayerError(TfoptError):
    """A stage cannot handle some layers of the model."""


class SlimError(UsageError):
    """Slimming settings that cannot apply to this model (a --slim-layer naming no slimmable layer)."""


class StudentMismatchError(TfoptError):
    """A --student model whose input/output names or shapes differ from the teacher's: exit 1, nothing trained."""


class ConversionError(TfoptError):
    """The TFLite converter refused the model or crashed."""


class OutputError(UsageError):
    """An output path that cannot be written (or would overwrite an input): a bad flag, exit 2."""


class WriteError(TfoptError):
    """A write that failed after the work was done (disk full, ...): nothing partial is left."""


class Interrupted(TfoptError):
    """Ctrl-C / SIGTERM: the worker is stopped and nothing is written."""

    exit_code = 130


class MismatchError(TfoptError):
    """A .tflite whose inputs/outputs (names, count, shapes) do not match its reference model: nothing measured."""


class VerificationError(TfoptError):
    """Verification could not decide (e.g. an output with no gate that could be evaluated): never a pass."""


class VerificationFailed(TfoptError):
    """Verification ran and at least one metric missed its threshold."""

    exit_code = 3

    def __init__(self, message: str, failures: list[str] | None = None, report=None):
        super().__init__(message)
        self.failures = list(failures or [])
        self.report = report

    def __reduce__(self):
        return (type(self), (self.message, self.failures, self.report))
