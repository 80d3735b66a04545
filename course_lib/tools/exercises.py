"""Build the learners' exercise notebooks from the solution notebooks, and keep them in sync.

The course keeps one source of truth per exercise notebook: the *solution* notebook in
``solutions/``. The exercise notebook in ``exercises/`` is generated from it and never edited
by hand::

    python -m course_lib.tools.exercises build  [--solutions solutions] [--out exercises]
    python -m course_lib.tools.exercises check  [--solutions solutions] [--out exercises]

``build`` first stamps each solution notebook's nbgrader cell metadata (below) where it is
missing or stale, then (re)writes every exercise notebook whose bytes would change; ``check``
writes nothing and exits with 1, listing the solutions whose nbgrader metadata is missing or
stale and the exercise notebooks that are missing, out of date, or left over without a solution
(an ``exercises/*.ipynb`` with no solution of the same name). Both exit with
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

nbgrader metadata. So that ``nbgrader generate_assignment`` and ``nbgrader autograde`` work on the
solution notebooks, every answer cell and check cell carries nbgrader's cell metadata (schema 3),
derived from the course metadata above, which stays the one source of truth (:func:`nbgrader_blocks`):

- an answer cell (a code cell with a solution region): ``solution: true``, ``grade: false``,
  ``locked: false``, ``grade_id`` = ``<id of the next check cell>-answer`` (``-answer-2``, ... for
  further answer cells before the same check; ``answer-<cell id>`` when no check cell follows);
- a check cell: ``grade: true``, ``solution: false``, ``locked: true``, ``points`` =
  ``course.points``, ``grade_id`` = ``course.exercise`` (a ``.``, which nbgrader's ids do not
  allow, becomes ``_``);
- every other cell: no nbgrader metadata (``build`` removes any). The learner may change any
  other cell (the lessons invite it), and only the check cells are restored at grading, as the
  course's own grader does.

Two cells whose derived ids clash are an error. The exercise notebooks carry the same blocks, so
an exercise notebook handed out from ``exercises/`` can be autograded by nbgrader like its own
release. ``nbgrader_config.py`` at the repository root makes nbgrader's release match
``exercises/`` (same stub line, ``solution-only`` cells dropped; see README, "Grading with nbgrader").

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
from course_lib.io import atomic_write, check_dir

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
    "NBGRADER_KEY",
    "nbgrader_grade_id",
    "nbgrader_blocks",
    "stamp_nbgrader",
    "stale_nbgrader_cells",
    "learner_cells",
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
NBGRADER_KEY = "nbgrader"
NBGRADER_SCHEMA = 3
_NOT_IN_GRADE_ID = re.compile(r"[^A-Za-z0-9_-]")  # nbgrader's ids: ^[a-zA-Z0-9_-]+$


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


# ----------------------------------------------------------------------------- nbgrader metadata


def nbgrader_grade_id(exercise: str) -> str:
    """nbgrader's ``grade_id`` for a course exercise id: the same id, with any ``.`` as ``_``."""
    return _NOT_IN_GRADE_ID.sub("_", exercise)


def _nbgrader_block(grade_id: str, *, check: bool, points: int = 0) -> dict[str, Any]:
    block: dict[str, Any] = {
        "grade": check,
        "solution": not check,
        "locked": check,
        "task": False,
        "grade_id": grade_id,
        "schema_version": NBGRADER_SCHEMA,
    }
    if check:
        block["points"] = points
    return block


def nbgrader_blocks(nb: NotebookNode, notebook: str = "notebook") -> dict[int, dict[str, Any]]:
    """The nbgrader cell metadata of each answer and check cell of ``nb``, by cell index.

    Derived from the course's own conventions only (solution regions, ``course`` metadata of the
    check cells): cells not in the result should carry no nbgrader metadata. Raises
    :class:`ExerciseFormatError` for malformed check cells or regions, and when two cells would
    get the same ``grade_id``.
    """
    blocks: dict[int, dict[str, Any]] = {}
    origin: dict[int, str] = {}
    for found in find_check_cells(nb, notebook, strict=True):
        blocks[found.index] = _nbgrader_block(nbgrader_grade_id(found.exercise), check=True, points=found.points)
        origin[found.index] = f"course.exercise {found.exercise!r}"
    check_indexes = sorted(blocks)
    answers_before: dict[int, int] = {}
    for index, cell in enumerate(nb.get("cells", [])):
        if index in blocks or not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        _, regions = strip_solution(cell.get("source", ""), _where(notebook, index))
        if not regions:
            continue
        following = next((i for i in check_indexes if i > index), None)
        if following is None:
            cell_id = cell.get("id") or f"cell-{index}"
            grade_id = f"answer-{_NOT_IN_GRADE_ID.sub('_', str(cell_id))}"
            origin[index] = "an answer cell with no check cell after it"
        else:
            answers_before[following] = answers_before.get(following, 0) + 1
            count = answers_before[following]
            grade_id = f"{blocks[following]['grade_id']}-answer" + (f"-{count}" if count > 1 else "")
            origin[index] = f"the answer to the check cell {following}"
        blocks[index] = _nbgrader_block(grade_id, check=False)
    seen: dict[str, int] = {}
    for index in sorted(blocks):
        grade_id = blocks[index]["grade_id"]
        if grade_id in seen:
            raise ExerciseFormatError(
                f"{_where(notebook, index)}: its nbgrader grade_id {grade_id!r} (from {origin[index]}) is also the "
                f"grade_id of cell {seen[grade_id]} (from {origin[seen[grade_id]]}); nbgrader needs unique ids: "
                "rename one of the exercises (course.exercise)."
            )
        seen[grade_id] = index
    return blocks


def stamp_nbgrader(nb: NotebookNode, notebook: str = "notebook") -> NotebookNode:
    """A copy of ``nb`` whose answer and check cells carry their nbgrader metadata and no other cell does.

    The input is not modified. See :func:`nbgrader_blocks` for what each cell gets.
    """
    if not isinstance(nb, dict) or "cells" not in nb:
        raise CourseInputError("nb: expected a notebook (nbformat.NotebookNode), e.g. from read_notebook(path).")
    blocks = nbgrader_blocks(nb, notebook)
    out = copy.deepcopy(nb)
    for index, cell in enumerate(out.cells):
        if index in blocks:
            cell.metadata[NBGRADER_KEY] = NotebookNode(blocks[index])
        else:
            cell.metadata.pop(NBGRADER_KEY, None)
    return out


def stale_nbgrader_cells(nb: NotebookNode, notebook: str = "notebook") -> list[int]:
    """The indexes of the cells whose nbgrader metadata is missing, stale or not wanted (empty: all current)."""
    blocks = nbgrader_blocks(nb, notebook)
    return [
        index
        for index, cell in enumerate(nb.cells)
        if cell.get("metadata", {}).get(NBGRADER_KEY) != blocks.get(index)
    ]


def learner_cells(cells: list[Any]) -> list[Any]:
    """The cells a learner gets: ``solution-only`` cells left out, Colab links moved to ``/exercises/``.

    Changes the sources of the kept markdown and raw cells in place and returns the kept cells;
    shared by :func:`make_exercise` and nbgrader's release (:mod:`course_lib.tools.nbgrader_release`).
    """
    kept = [c for c in cells if SOLUTION_ONLY_TAG not in (c.get("metadata", {}).get("tags", []) or [])]
    for cell in kept:
        if cell.get("cell_type") != "code" and isinstance(cell.get("source"), str):
            cell["source"] = cell["source"].replace("/solutions/", "/exercises/")
    return kept


def make_exercise(nb: NotebookNode, notebook: str = "notebook") -> NotebookNode:
    """The exercise version of a solution notebook: regions stubbed, outputs and counts removed.

    ``notebook`` is the solution's file name, used in error messages and recorded in
    ``metadata.course.solution``. The input is not modified.
    """
    out = stamp_nbgrader(nb, notebook)  # a copy; the nbgrader metadata travels with the exercise
    # Cells tagged "solution-only" (e.g. "these are the worked answers") do not go to learners, and
    # Open-in-Colab badges point at the exercise notebook, not at its solution.
    out.cells = learner_cells(out.cells)
    checks = {c.index for c in find_check_cells(out, notebook, strict=True)}
    for index, cell in enumerate(out.cells):
        where = _where(notebook, index)
        source = cell.get("source", "")
        if cell.cell_type != "code":
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


def _text(nb: NotebookNode) -> str:
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def render_exercise(solution_path: Path | str) -> str:
    """The exact text of the exercise notebook for ``solution_path`` (stable JSON, trailing newline)."""
    path = Path(solution_path)
    return _text(make_exercise(read_notebook(path, "solution_path"), path.name))


def _solutions(solutions_dir: Path | str) -> list[Path]:
    folder = check_dir(solutions_dir, "solutions")
    return sorted(p for p in folder.glob("*.ipynb") if p.is_file())


@dataclass(frozen=True)
class _Plan:
    """What build/check found for one solution notebook."""

    source: Path
    stale_cells: list[int]  # cells whose nbgrader metadata is missing or stale
    solution_text: str  # the solution, stamped (what build writes when stale_cells is not empty)
    exercise_bytes: bytes


def _plan(src: Path) -> _Plan:
    nb = read_notebook(src, "solution")
    stamped = stamp_nbgrader(nb, src.name)
    exercise = make_exercise(stamped, src.name)
    return _Plan(src, stale_nbgrader_cells(nb, src.name), _text(stamped), _text(exercise).encode("utf-8"))


def _write_text(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def build(solutions_dir: Path | str = "solutions", out_dir: Path | str = "exercises") -> list[Path]:
    """Stamp the solutions' nbgrader metadata and write their exercise notebooks; return the files written.

    A solution notebook is rewritten only when its nbgrader metadata is missing or stale (see
    :func:`nbgrader_blocks`), and an exercise notebook only when its bytes would change, so a
    second run writes nothing. Every notebook is rendered before anything is written: a malformed
    solution leaves all files as they were.
    """
    plans = [_plan(src) for src in _solutions(solutions_dir)]  # all or nothing
    out = Path(out_dir)
    written: list[Path] = []
    for plan in plans:
        if plan.stale_cells:
            _write_text(plan.source, plan.solution_text.encode("utf-8"))
            written.append(plan.source)
    for plan in plans:
        target = out / plan.source.name
        if target.is_file() and target.read_bytes() == plan.exercise_bytes:
            continue
        _write_text(target, plan.exercise_bytes)
        written.append(target)
    return written


def check(solutions_dir: Path | str = "solutions", out_dir: Path | str = "exercises") -> list[str]:
    """List what ``build`` would fix: stale nbgrader metadata, missing or out-of-date exercises, orphans.

    An empty list means every solution is stamped and every exercise notebook is up to date.
    """
    problems: list[str] = []
    out = Path(out_dir)
    sources = _solutions(solutions_dir)
    for plan in map(_plan, sources):
        if plan.stale_cells:
            cells = ", ".join(map(str, plan.stale_cells))
            problems.append(f"nbgrader metadata missing or stale: {plan.source} (cells {cells})")
        target = out / plan.source.name
        if not target.is_file():
            problems.append(f"missing: {target} (from {plan.source})")
        elif target.read_bytes() != plan.exercise_bytes:
            problems.append(f"out of date: {target} (from {plan.source})")
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
            total = len(_solutions(args.solutions))
            exercises = sum(1 for path in written if path.parent == Path(args.out))
            stamped = len(written) - exercises
            print(
                f"{exercises} exercise notebook(s) written, {total - exercises} unchanged; "
                f"{stamped} solution notebook(s) given fresh nbgrader metadata."
            )
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
