"""Several recipes in one ``tfopt run``: outcomes, the exit code, the summary table and combined reports.

Nothing here imports TensorFlow or prints: the CLI runs each recipe in a worker and hands the
outcomes here for formatting.

JSON schema ``tfopt.run/1`` (``tfopt run --json`` and ``tfopt run --report FILE``)::

    {"schema": "tfopt.run/1", "ok": bool, "exit_code": int,
     "runs": [{"recipe": NAME, "ok": bool, "exit_code": int, "error": str | null,
               "report": <tfopt.report/2 document> | null}, ...]}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import RecipeError, UsageError
from .files import refuse_inputs, same_path, write_atomic
from .render.junit import junit_xml
from .render.markdown import cell, report_section, table
from .render.tables import fmt_bytes, text_table
from .report import Report, dumps

RUN_SCHEMA = "tfopt.run/1"

# exit code -> severity: a usage error beats an interrupt beats a runtime error beats a missed gate beats success
SEVERITY = {0: 0, 3: 1, 1: 2, 130: 3, 2: 4}


@dataclass(frozen=True)
class Outcome:
    """What one recipe of a ``tfopt run`` ended with: a report, or an error."""

    name: str
    report: Report | None = None
    error: str | None = None
    error_code: int = 1

    @property
    def exit_code(self) -> int:
        return self.report.exit_code if self.report is not None else self.error_code

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def status(self) -> str:
        if self.report is None:
            return "ERROR"
        if self.report.verification is None:
            return "not verified"
        return "passed" if self.report.ok else "FAILED"


def worst_exit_code(codes: list[int]) -> int:
    """The most severe exit code (2 usage > 130 interrupted > 1 error > 3 missed gate > 0 ok)."""
    return max(codes, key=lambda c: SEVERITY.get(c, 2), default=0)


def recipe_label(name: str) -> str:
    """A short label for a recipe argument: the file name without .toml/.json, or the shipped name."""
    p = Path(name)
    return p.stem if p.suffix in (".toml", ".json") else name


SUMMARY_HEADER = ("recipe", "mode", "status", "size", "gzip", "vs float32", "gates", "exit")


def summary_rows(outcomes: list[Outcome]) -> list[tuple[str, ...]]:
    rows = []
    for o in outcomes:
        r = o.report
        if r is None:
            rows.append((o.name, "-", o.status, "-", "-", "-", "-", str(o.exit_code)))
            continue
        out, ratio = r.sizes.output if r.sizes else None, r.sizes.output_vs_float32 if r.sizes else None
        v = r.verification
        gates = "-" if v is None else f"{v.gates_evaluated - len(v.failures)}/{v.gates_evaluated} passed"
        rows.append((o.name, r.mode, o.status, fmt_bytes(out.bytes) if out else "-",
                     fmt_bytes(out.gzip_bytes) if out else "-", f"{ratio:.3f}x" if ratio is not None else "-",
                     gates, str(o.exit_code)))
    return rows


def summary(outcomes: list[Outcome]) -> str:
    """The table printed (to stderr) after all recipes ran, with the errors spelled out."""
    n = len(outcomes)
    lines = ["", f"summary of {n} recipe{'s' if n != 1 else ''} (exit {worst_exit_code([o.exit_code for o in outcomes])}):"]
    lines += ["  " + line for line in text_table(SUMMARY_HEADER, summary_rows(outcomes))]
    for o in outcomes:
        if o.error:
            lines.append(f"  {o.name}: Error: {o.error}")
        elif o.report is not None and not o.report.ok:
            lines += [f"  {o.name}: {f}" for f in o.report.failures]
    return "\n".join(lines)


def run_document(outcomes: list[Outcome]) -> dict:
    codes = [o.exit_code for o in outcomes]
    return {
        "schema": RUN_SCHEMA,
        "ok": all(c == 0 for c in codes),
        "exit_code": worst_exit_code(codes),
        "runs": [{"recipe": o.name, "ok": o.ok, "exit_code": o.exit_code, "error": o.error,
                  "report": o.report.to_dict() if o.report is not None else None} for o in outcomes],
    }


def run_json(outcomes: list[Outcome]) -> str:
    return dumps(run_document(outcomes))


def run_markdown(outcomes: list[Outcome]) -> str:
    """One Markdown document: a summary table of every recipe, then each report's tables."""
    failed = sum(not o.ok for o in outcomes)
    verdict = "✅ all passed" if not failed else f"❌ {failed} of {len(outcomes)} did not pass"
    out = [f"# tfopt run — {verdict}", ""] + table(SUMMARY_HEADER, summary_rows(outcomes)) + [""]
    out += [f"- **{cell(o.name)}**: Error: {cell(o.error)}" for o in outcomes if o.error]
    for o in outcomes:
        if o.report is not None:
            out += [""] + report_section(o.report, level=3)
    return "\n".join(out).rstrip() + "\n"


def load_all(names: tuple[str, ...], overrides: list[str]) -> list:
    """Every recipe validated before any runs; all problems of all recipes in one error."""
    from .recipe.templates import load

    loaded, problems = [], []
    for name in names:
        try:
            loaded.append(load(name, overrides))
        except RecipeError as e:
            problems.extend(e.problems or [str(e)])
    if problems:
        raise RecipeError(f"{len(problems)} problems in the recipes" if len(problems) > 1 else problems[0], problems)
    return loaded


def refuse_clashes(named: list, combined: dict[str, Path | None]) -> None:
    """Two recipes writing the same .tflite, or a combined report over an input, are usage errors."""
    from .pipeline import output_path

    seen: dict[str, str] = {}
    for name, recipe in named:
        out = output_path(recipe)
        clash = next((other for path, other in seen.items() if same_path(path, out)), None)
        if clash:
            raise UsageError(f"recipes {clash} and {name} both write {out}", "set output.tflite in one of them")
        seen[out] = name
        refuse_inputs({f"--{k}": str(v) for k, v in combined.items() if v},
                      {**recipe.input_paths(), f"output of {name}": out})


def write_run_reports(outcomes: list[Outcome], report: Path | None, md: Path | None, junit: Path | None,
                      html: Path | None = None) -> None:
    """``tfopt run --report/--markdown/--junit/--html``: one file each covering every recipe."""
    if report:
        write_atomic(report, run_json(outcomes))
    if md:
        write_atomic(md, run_markdown(outcomes))
    if junit:
        suites = [(o.name, o.report, o.error) for o in outcomes]
        write_atomic(junit, junit_xml([r for _, r, _ in suites if r is not None], suites=suites))
    if html:
        write_atomic(html, run_html(outcomes))


def run_html(outcomes: list[Outcome]) -> str:
    """One HTML page: the summary table of every recipe, then each recipe's report (plots included)."""
    from .render.html import runs_html

    failed = sum(not o.ok for o in outcomes)
    title = "tfopt run — all passed" if not failed else f"tfopt run — {failed} of {len(outcomes)} did not pass"
    return runs_html(title, SUMMARY_HEADER, summary_rows(outcomes), [(o.name, o.report, o.error) for o in outcomes])
