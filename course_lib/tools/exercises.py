"""Build the learners' exercise notebooks from the solution notebooks, and keep them in sync.

The course keeps one source of truth per exercise notebook: the *solution* notebook in
``solutions/``. The exercise notebook in ``exercises/`` is generated from it and never edited
by hand::

    python -m course_lib.tools.exercises build  [--solutions solutions] [--out exercises]
    python -m course_lib.tools.exercises check  [--solutions solutions] [--out exercises]

``build`` (re)writes every exercise notebook whose bytes would change; ``check`` writes nothing
and exits with 1, listing the exercise notebooks that are missing, out of date, or left over
without a solution (an ``exercises/*.ipynb`` with no solution of the same name). Both exit with
1 on a malformed solution notebook and 2 on bad arguments (e.g. no solutions folder). Paths are
relative to the current folder: run them from the repository root.

Conventions for solution notebooks
----------------------------------
Answer cells. In a code cell, the learner's part sits between two marker lines, written
exactly like this (nbgrader's spelling), possibly indented inside a function body::

    def denormalise(norm, original_min, original_max, min_val=0.0, max_val=1.0):
        \"\"\"Undo min-max normalisation.\"\"\"
        ### BEGIN SOLUTION
        unit = (norm - min_val) / (max_val - min_val)
        return unit * (original_max - original_min) + original_min
        ### END SOLUTION

In the exercise notebook the whole region, markers included, becomes one line at the indentation
of the ``### BEGIN SOLUTION`` line::

        raise NotImplementedError("Exercise: write your answer here")

so the ``def`` line and docstring stay valid Python and calling the stub fails clearly (the
checks report "not answered yet"). A region at the top level of a cell becomes the same
``raise`` line at column 0: the cell then stops there until the learner answers. A cell may hold
several regions. Lines after ``### END SOLUTION`` are kept.

Errors (a :class:`ExerciseFormatError` naming the notebook, cell index and line): a BEGIN without
an END or an END without a BEGIN, nested regions, marker lines in a markdown or raw cell, marker
lines in a check cell, and misspelt markers (e.g. ``## BEGIN SOLUTION`` or
``### begin solution``), which would otherwise leak the solution into the exercise.

Check cells. The code cell that tests an exercise carries this cell metadata::

    {"tags": ["check"], "course": {"exercise": "ex3-denormalise", "points": 1}}

- the tag ``check`` marks it (Jupyter shows and edits tags in its property inspector);
- ``course.exercise`` is the exercise's id: letters, digits, ``-``, ``_`` or ``.``, starting
  with a letter or digit, unique within the notebook;
- ``course.points`` is a whole number ≥ 1 (optional, default 1).

Its source usually calls a :mod:`course_lib.checks` function, e.g. ``check_denormalise(denormalise)``.
The grader (:mod:`course_lib.tools.grade`) counts an exercise as passed when its check cell runs
without an error, and restores each check cell's source from the released exercise notebook.

Generated notebooks have every output and execution count removed, the volatile cell metadata
(``execution``, ``ExecuteTime``) and saved widget state (``metadata.widgets``) dropped, missing cell ids filled in deterministically, and
``metadata.course.solution`` set to the solution's file name. Cells tagged ``solution-only``
are left out, and Open-in-Colab links to ``/solutions/`` point to ``/exercises/``. The same input
bytes always give the same output bytes.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import nbformat
from nbformat import NotebookNode

from course_lib.errors import CourseInputError
from course_lib.io import check_dir

__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "STUB_LINE",
    "CHECK_TAG",
    "ExerciseFormatError",
    "CheckCell",
    "strip_solution",
    "find_check_cells",
    "read_notebook",
    "make_exercise",
    "render_exercise",
    "build",
    "check",
    "main",
]

BEGIN_MARKER = "### BEGIN SOLUTION"
END_MARKER = "### END SOLUTION"
STUB_LINE = 'raise NotImplementedError("Exercise: write your answer here")'
CHECK_TAG = "check"
SOLUTION_ONLY_TAG = "solution-only"
METADATA_KEY = "course"

# Anything that looks like a marker: one or more '#', BEGIN/END, SOLUTION, in any case.
_LOOSE_MARKER = re.compile(r"^\s*#+\s*(BEGIN|END)\s*SOLUTION\b", re.IGNORECASE)
_EXERCISE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VOLATILE_CELL_METADATA = ("execution", "ExecuteTime")


class ExerciseFormatError(CourseInputError):
    """A solution or exercise notebook breaks the conventions; the message names notebook and cell."""


@dataclass(frozen=True)
class CheckCell:
    """One check cell: its position, exercise id, points and source."""

    index: int
    exercise: str
    points: int
    source: str


def _where(notebook: str, index: int, line: int | None = None) -> str:
    return f"{notebook}, cell {index}" + (f", line {line}" if line is not None else "")


def _marker_kind(line: str) -> str | None:
    """'begin' / 'end' for an exact marker line, 'bad' for a misspelt one, None otherwise."""
    stripped = line.strip()
    if stripped == BEGIN_MARKER:
        return "begin"
    if stripped == END_MARKER:
        return "end"
    if _LOOSE_MARKER.match(line):
        return "bad"
    return None


def strip_solution(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace each marked solution region of a code cell's ``source`` by the stub line.

    Returns the new source and the number of regions replaced. ``where`` (e.g.
    ``"01_x.ipynb, cell 7"``) is used in error messages.
    """
    if not isinstance(source, str):
        raise ExerciseFormatError(f"{where}: the cell source should be text, got {type(source).__name__}.")
    out: list[str] = []
    regions = 0
    open_line: int | None = None
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        kind = _marker_kind(line)
        if kind == "bad":
            raise ExerciseFormatError(
                f"{where}, line {number}: {line.strip()!r} looks like a solution marker but is not spelt exactly "
                f"{BEGIN_MARKER!r} or {END_MARKER!r}; fix it, or the solution would leak into the exercise."
            )
        if kind == "begin":
            if open_line is not None:
                raise ExerciseFormatError(
                    f"{where}, line {number}: {BEGIN_MARKER!r} inside the region opened on line {open_line}; "
                    f"regions cannot be nested: close the first one with {END_MARKER!r}."
                )
            open_line = number
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{STUB_LINE}\n")
            regions += 1
        elif kind == "end":
            if open_line is None:
                raise ExerciseFormatError(
                    f"{where}, line {number}: {END_MARKER!r} without a {BEGIN_MARKER!r} before it."
                )
            open_line = None
        elif open_line is None:
            out.append(line)
    if open_line is not None:
        raise ExerciseFormatError(
            f"{where}, line {open_line}: {BEGIN_MARKER!r} is never closed; add {END_MARKER!r} after the solution."
        )
    text = "".join(out)
    if not source.endswith("\n") and text.endswith("\n"):
        text = text[:-1]
    return text, regions


def _check_info(cell: Any) -> dict[str, Any] | None:
    meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
    info = meta.get(METADATA_KEY)
    return info if isinstance(info, dict) else None


def find_check_cells(nb: NotebookNode, notebook: str = "notebook", strict: bool = True) -> list[CheckCell]:
    """The check cells of ``nb`` (tag ``check`` and ``course.exercise`` metadata), in order.

    With ``strict`` (building from solutions) a malformed check cell raises
    :class:`ExerciseFormatError`; without it (grading submissions) malformed cells are skipped
    and, for duplicate ids, the first one wins.
    """
    found: list[CheckCell] = []
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.get("cells", [])):
        if not isinstance(cell, dict):
            continue
        tags = cell.get("metadata", {}).get("tags", []) or []
        info = _check_info(cell)
        tagged = isinstance(tags, list) and CHECK_TAG in tags
        if not tagged and not (info and "exercise" in info):
            continue
        where = _where(notebook, index)
        try:
            if cell.get("cell_type") != "code":
                raise ExerciseFormatError(f"{where}: a check cell must be a code cell, not {cell.get('cell_type')!r}.")
            if not tagged:
                raise ExerciseFormatError(f"{where}: has course.exercise metadata but not the tag {CHECK_TAG!r}; add the tag.")
            if info is None or "exercise" not in info:
                raise ExerciseFormatError(
                    f'{where}: tagged {CHECK_TAG!r} but has no metadata "course": {{"exercise": "<id>", "points": 1}}.'
                )
            exercise = info["exercise"]
            if not isinstance(exercise, str) or not _EXERCISE_ID.match(exercise):
                raise ExerciseFormatError(
                    f"{where}: course.exercise={exercise!r} is not a valid id; use letters, digits, '-', '_' or '.', "
                    "e.g. 'ex3-denormalise'."
                )
            points = info.get("points", 1)
            if isinstance(points, bool) or not isinstance(points, int) or points < 1:
                raise ExerciseFormatError(f"{where}: course.points={points!r}; give a whole number ≥ 1.")
            if exercise in seen:
                raise ExerciseFormatError(
                    f"{where}: exercise id {exercise!r} is already used by cell {seen[exercise]}; ids must be unique."
                )
        except ExerciseFormatError:
            if strict:
                raise
            continue
        seen[exercise] = index
        source = cell.get("source", "")
        found.append(CheckCell(index, exercise, points, source if isinstance(source, str) else "".join(source)))
    return found


def read_notebook(path: Path | str, name: str = "path") -> NotebookNode:
    """Read a notebook deterministically: missing cell ids get stable ids instead of random ones.

    Raises :class:`ExerciseFormatError` (naming the file) when it is not a readable notebook.
    """
    from course_lib.io import check_file

    p = check_file(path, name)
    try:
        data = json.loads(p.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExerciseFormatError(f"{p}: is not a notebook (not valid JSON: {err}).") from err
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list) or data.get("nbformat") != 4:
        raise ExerciseFormatError(f"{p}: is not a Jupyter notebook in format 4 (no 'cells' list or nbformat != 4).")
    if data.get("nbformat_minor", 0) >= 5:
        used = {c.get("id") for c in data["cells"] if isinstance(c, dict)}
        taken: set[str] = set()
        for index, cell in enumerate(data["cells"]):
            if not isinstance(cell, dict):
                continue
            cid = cell.get("id")
            if not isinstance(cid, str) or not cid or cid in taken:
                candidate = f"cell-{index}"
                while candidate in used or candidate in taken:
                    candidate += "-x"
                cell["id"] = candidate
            taken.add(cell["id"])
    try:
        nb = nbformat.reads(json.dumps(data), as_version=4)  # ids now present: nothing random added
        nbformat.validate(nb)
    except Exception as err:  # nbformat.ValidationError and malformed cells
        raise ExerciseFormatError(f"{p}: is not a valid notebook: {_first(err)}") from err
    return nb


def _first(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def make_exercise(nb: NotebookNode, notebook: str = "notebook") -> NotebookNode:
    """The exercise version of a solution notebook: regions stubbed, outputs and counts removed.

    ``notebook`` is the solution's file name, used in error messages and recorded in
    ``metadata.course.solution``. The input is not modified.
    """
    if not isinstance(nb, dict) or "cells" not in nb:
        raise CourseInputError("nb: expected a notebook (nbformat.NotebookNode), e.g. from read_notebook(path).")
    out = copy.deepcopy(nb)
    # Cells tagged "solution-only" (e.g. "these are the worked answers") do not go to learners.
    out.cells = [c for c in out.cells if SOLUTION_ONLY_TAG not in c.get("metadata", {}).get("tags", [])]
    checks = {c.index for c in find_check_cells(out, notebook, strict=True)}
    for index, cell in enumerate(out.cells):
        where = _where(notebook, index)
        source = cell.get("source", "")
        if cell.cell_type != "code":
            # Open-in-Colab badges point at the exercise notebook, not at its solution.
            cell.source = source = source.replace("/solutions/", "/exercises/")
            for number, line in enumerate(source.splitlines(), start=1):
                if _marker_kind(line) is not None:
                    raise ExerciseFormatError(
                        f"{where}, line {number}: solution markers only work in code cells, found one in a "
                        f"{cell.cell_type} cell; move the solution into a code cell (or reword the text)."
                    )
            continue
        if index in checks and any(_marker_kind(line) for line in source.splitlines()):
            raise ExerciseFormatError(
                f"{where}: a check cell cannot hold solution markers; put the answer in the cell before it."
            )
        cell.source, _ = strip_solution(source, where)
        cell.outputs = []
        cell.execution_count = None
        for key in _VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
    out.metadata.pop("widgets", None)  # saved widget state belongs to the run, not the exercise
    meta = out.metadata.get(METADATA_KEY)
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta["solution"] = notebook
    out.metadata[METADATA_KEY] = meta
    return out


def render_exercise(solution_path: Path | str) -> str:
    """The exact text of the exercise notebook for ``solution_path`` (stable JSON, trailing newline)."""
    path = Path(solution_path)
    nb = read_notebook(path, "solution_path")
    text = nbformat.writes(make_exercise(nb, path.name))
    return text if text.endswith("\n") else text + "\n"


def _solutions(solutions_dir: Path | str) -> list[Path]:
    folder = check_dir(solutions_dir, "solutions")
    return sorted(p for p in folder.glob("*.ipynb") if p.is_file())


def build(solutions_dir: Path | str = "solutions", out_dir: Path | str = "exercises") -> list[Path]:
    """Write the exercise notebook of every solution notebook; return the files that changed.

    Files whose bytes would not change are left alone (their timestamps too).
    """
    sources = _solutions(solutions_dir)
    rendered = [(src, render_exercise(src).encode("utf-8")) for src in sources]  # all or nothing
    out = Path(out_dir)
    written: list[Path] = []
    for src, data in rendered:
        target = out / src.name
        if target.is_file() and target.read_bytes() == data:
            continue
        out.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written


def check(solutions_dir: Path | str = "solutions", out_dir: Path | str = "exercises") -> list[str]:
    """List what ``build`` would fix: missing or out-of-date exercise notebooks, and orphans.

    An empty list means every exercise notebook is up to date.
    """
    problems: list[str] = []
    out = Path(out_dir)
    sources = _solutions(solutions_dir)
    for src in sources:
        target = out / src.name
        expected = render_exercise(src).encode("utf-8")
        if not target.is_file():
            problems.append(f"missing: {target} (from {src})")
        elif target.read_bytes() != expected:
            problems.append(f"out of date: {target} (from {src})")
    names = {src.name for src in sources}
    if out.is_dir():
        for extra in sorted(out.glob("*.ipynb")):
            if extra.name not in names:
                problems.append(f"orphan: {extra} has no solution {Path(solutions_dir) / extra.name}; delete it or add the solution")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``build`` or ``check``; returns the exit code (0 ok, 1 problems, 2 bad arguments)."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.tools.exercises",
        description="Build exercise notebooks from solution notebooks, or check that they are up to date.",
    )
    parser.add_argument("command", choices=("build", "check"))
    parser.add_argument("--solutions", default="solutions", help="folder of solution notebooks (default: solutions)")
    parser.add_argument("--out", default="exercises", help="folder of exercise notebooks (default: exercises)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits with 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    try:
        if args.command == "build":
            written = build(args.solutions, args.out)
            for path in written:
                print(f"wrote {path}")
            print(f"{len(written)} exercise notebook(s) written, {len(_solutions(args.solutions)) - len(written)} unchanged.")
            return 0
        problems = check(args.solutions, args.out)
    except ExerciseFormatError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except CourseInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if problems:
        for line in problems:
            print(line)
        print(f"{len(problems)} problem(s); run `python -m course_lib.tools.exercises build` and commit the result.")
        return 1
    print(f"exercise notebooks are up to date ({len(_solutions(args.solutions))} solution notebook(s)).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
