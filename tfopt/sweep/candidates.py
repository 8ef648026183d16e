"""The sweep's candidates: one table of named ways to build a ``Recipe`` from the sweep's base recipe,
and the user's own recipe files (``--recipes DIR``).

A row is a quantize mode plus fine-tuning stages; the base recipe gives everything else (model, data,
training settings, gates, seed).  Adding an option to tfopt (``--quantize auto``, ``--slim``) is one
row here.  ``float32`` is a row but not in the default list: the float32 baseline is measured anyway.

    specs = resolve(base, names=["int8", "prune50-qat"], recipes_dir=None)
    specs[1].recipe.stages, specs[1].recipe.mode.name
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import modes
from ..errors import RecipeError, UsageError
from ..modes import Mode
from ..recipe import Recipe
from ..recipe.schema import ClusterStage, DistillStage, OutputSection, PruneStage, QatStage, SlimStage


@dataclass(frozen=True)
class Candidate:
    """A row of the table: how to build a candidate's recipe from the base recipe."""

    name: str
    summary: str
    mode: Mode
    stages: tuple = ()
    default: bool = True  # in the list `tfopt sweep` tries without --candidates

    def build(self, base: Recipe) -> Recipe:
        convert = dataclasses.replace(base.convert, quantize=self.mode.name, io_type=None)
        return dataclasses.replace(base, stages=self.stages, convert=convert)


def _table() -> dict[str, Candidate]:
    rows = [Candidate(m.file_tag, f"post-training {m.name} (weights {m.weights}, activations {m.activations})", m,
                      default=m is not modes.FLOAT32 and not m.search) for m in modes.MODES.values()]
    int8 = modes.INT8
    rows += [
        Candidate("qat", "quantization-aware training, then int8", int8, (QatStage(),)),
        Candidate("prune50-qat", "50% magnitude pruning, then pruning-preserving QAT, then int8", int8,
                  (PruneStage(sparsity=0.5), QatStage())),
        Candidate("prune80-qat", "80% magnitude pruning, then pruning-preserving QAT, then int8", int8,
                  (PruneStage(sparsity=0.8), QatStage())),
        Candidate("cluster16-qat", "16 weight clusters per kernel, then cluster-preserving QAT, then int8", int8,
                  (ClusterStage(clusters=16), QatStage())),
        Candidate("slim50-distill-int8", "half the channels removed (a narrower model), distilled from the original, "
                  "then int8", int8, (SlimStage(ratio=0.5), DistillStage())),
    ]
    return {c.name: c for c in rows}


CANDIDATES: dict[str, Candidate] = _table()
DEFAULT = tuple(name for name, c in CANDIDATES.items() if c.default)


@dataclass(frozen=True)
class CandidateSpec:
    """A candidate ready to run: its name, where it came from (the table or a recipe file), its recipe."""

    name: str
    source: str  # "table" or the recipe file
    recipe: Recipe

    @property
    def summary(self) -> str:
        stages = " → ".join(s.kind for s in self.recipe.stages)
        return f"{stages + ' → ' if stages else ''}{self.recipe.mode.name}"


def parse_names(text: str | None) -> list[str]:
    """``"float16, int8"`` → ``["float16", "int8"]``; unknown names are a usage error listing the known ones."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise UsageError(f"--candidates: unknown candidate {unknown[0]!r}; expected names from: "
                         f"{', '.join(CANDIDATES)} (or --recipes DIR for your own recipe files)")
    return names


def resolve(base: Recipe, names: list[str] | None, recipes_dir: str | Path | None) -> list[CandidateSpec]:
    """The candidates to run: the named table rows (default: ``DEFAULT`` unless ``recipes_dir`` is given), then
    every ``*.toml`` of ``recipes_dir``.  Every recipe is validated before any work."""
    if names is None:
        names = [] if recipes_dir is not None else list(DEFAULT)
    specs = [CandidateSpec(n, "table", _validated(n, lambda n=n: CANDIDATES[n].build(base))) for n in names]
    if recipes_dir is not None:
        specs += from_recipe_files(Path(recipes_dir), base)
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise UsageError(f"two candidates are named {s.name!r}: rename the recipe file or drop it from --candidates")
        seen.add(s.name)
    if not specs:
        raise UsageError("no candidates: pass --candidates LIST or --recipes DIR")
    return specs


def _validated(name: str, build) -> Recipe:
    try:
        return build()
    except RecipeError as e:  # e.g. a QAT row with a flag that contradicts it
        raise RecipeError(f"candidate {name}: {e.problems[0] if e.problems else e}", e.problems) from None


def from_recipe_files(folder: Path, base: Recipe) -> list[CandidateSpec]:
    """Every ``*.toml`` in ``folder``, with the sweep's model, data, seed and outputs (the sweep shares the data
    and the reference outputs); their own stages, training, conversion and gates, the sweep's gate flags on top."""
    from ..recipe import load_recipe

    if not folder.is_dir():
        raise UsageError(f"--recipes {folder}: not a folder (expected a folder of *.toml recipe files)")
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise UsageError(f"--recipes {folder}: no *.toml recipe files in it")
    specs, problems = [], []
    overrides = [f"model.path={base.model.path}"] + ([f"data.path={base.data.path}"] if base.data.path else [])
    for f in files:
        try:
            own = load_recipe(f, overrides)
            specs.append(CandidateSpec(f.stem, str(f), _with_base(own, base)))
        except RecipeError as e:
            problems += e.problems or [str(e)]
    if problems:
        raise RecipeError(problems[0] if len(problems) == 1 else f"{len(problems)} problems in --recipes {folder}",
                          problems)
    return specs


def _with_base(own: Recipe, base: Recipe) -> Recipe:
    gates = {f.name: getattr(base.verify, f.name) for f in dataclasses.fields(base.verify)
             if f.name not in ("enabled", "threshold", "output_kinds") and getattr(base.verify, f.name) is not None}
    verify = dataclasses.replace(own.verify, enabled=True, threshold=base.verify.threshold,
                                 output_kinds=base.verify.output_kinds, **gates)
    return dataclasses.replace(own, model=base.model, data=base.data, seed=base.seed, verify=verify,
                               output=OutputSection())
