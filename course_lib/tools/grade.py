"""The teacher's grader: run submitted exercise notebooks and count the exercises that pass.

::

    python -m course_lib.tools.grade PATH... [--json] [--timeout SECONDS] [--total-timeout SECONDS]
                                       [--reference DIR] [--profile quick|full]

``PATH`` is a submitted notebook or a folder of them (searched recursively; checkpoint folders
are skipped). For each notebook the grader

1. reads it; a file that is not a readable notebook gets a row saying so (score 0) instead of
   stopping the run;
2. finds the released exercise notebook of the same file name in the reference folder
   (``--reference``; by default the repository's ``exercises/`` folder when it holds one). The
   reference decides which exercises exist and their points, and each check cell's source is
   replaced by the released one, so that editing a check does not help (the output says how many
   were restored). A check cell is matched by its ``course.exercise`` id (see
   :mod:`course_lib.tools.exercises`); a check cell that is missing from the submission counts as
   failed. Without a reference the notebook is graded as it is, and the output says so;
3. runs it top to bottom in a fresh ``python3`` kernel (nbclient, errors allowed, so one broken
   cell does not stop the rest) with the notebook's folder as working directory and
   ``COURSE_PROFILE=quick`` (or ``--profile``; an explicit ``COURSE_PROFILE`` in the grader's
   environment wins), a per-cell time limit (``--timeout``, default 120 s; the cell is
   interrupted) and a limit for the whole notebook (``--total-timeout``, default 900 s; later
   cells are not run);
4. counts an exercise as passed iff its check cell ran without an error. Each check cell is
   preceded by one line that reloads :mod:`course_lib.checks` and re-imports its ``check_*``
   functions, so that redefining or monkeypatching them earlier in the notebook does not help.

It prints a per-exercise pass/fail table per notebook and the totals, or with ``--json`` one JSON
object (``{"notebooks": [...], "total": {...}}``). Exit code: 0 when grading ran, whatever the
marks; 2 on bad arguments (a path that does not exist, no notebooks found, a bad limit).

Submissions are code: run the grader in a throwaway container or account.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from nbformat import NotebookNode

from course_lib.tools.exercises import METADATA_KEY, find_check_cells, read_notebook
from course_lib.settings import PROFILES
from course_lib.errors import CourseInputError
from course_lib.io import REPO_ROOT, check_dir

__all__ = [
    "ExerciseResult",
    "NotebookReport",
    "CHECK_PREAMBLE",
    "default_reference_dir",
    "collect_notebooks",
    "grade_notebook",
    "grade_paths",
    "format_table",
    "main",
]

KERNEL_NAME = "python3"
DEFAULT_TIMEOUT = 120
DEFAULT_TOTAL_TIMEOUT = 900

# Put before every check cell: fresh check functions, whatever the notebook did to them.
CHECK_PREAMBLE = (
    "import importlib as _grader_importlib, course_lib.checks as _grader_checks; "
    "_grader_importlib.reload(_grader_checks); from course_lib.checks import *  # added by the grader\n"
)


@dataclass
class ExerciseResult:
    """The outcome of one exercise: points earned out of its points, and why."""

    exercise: str
    points: int
    max_points: int
    passed: bool
    detail: str


@dataclass
class NotebookReport:
    """The grading of one notebook. ``status`` is 'graded', 'unreadable' or 'not run'."""

    path: str
    status: str
    reference: str | None
    notes: list[str] = field(default_factory=list)
    exercises: list[ExerciseResult] = field(default_factory=list)

    @property
    def score(self) -> int:
        """Points earned."""
        return sum(e.points for e in self.exercises)

    @property
    def max_score(self) -> int:
        """Points available."""
        return sum(e.max_points for e in self.exercises)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, scores included."""
        data = asdict(self)
        data["score"] = self.score
        data["max_score"] = self.max_score
        return data


def default_reference_dir() -> Path | None:
    """The repository's ``exercises/`` folder when ``course_lib`` runs from a checkout, else None."""
    folder = REPO_ROOT / "exercises"
    return folder if folder.is_dir() else None


def collect_notebooks(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders into the list of notebooks to grade (folders: ``**/*.ipynb``).

    Raises :class:`CourseInputError` for a path that does not exist or when nothing is found.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise CourseInputError("paths: give at least one notebook or folder of notebooks to grade.")
    found: list[Path] = []
    for raw in paths:
        if not isinstance(raw, (str, os.PathLike)):
            raise CourseInputError(f"paths: expected file or folder paths, got {type(raw).__name__}.")
        p = Path(raw)
        if p.is_dir():
            found.extend(
                sorted(q for q in p.rglob("*.ipynb") if q.is_file() and ".ipynb_checkpoints" not in q.parts)
            )
        elif p.is_file():
            found.append(p)
        else:
            raise CourseInputError(f"paths: {str(p)!r} does not exist; give a notebook or a folder of notebooks.")
    if not found:
        raise CourseInputError(f"paths: no .ipynb notebooks found in {[str(p) for p in paths]}.")
    unique: list[Path] = []
    for p in found:
        if p.resolve() not in {q.resolve() for q in unique}:
            unique.append(p)
    return unique


def _first_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _load_reference(path: Path, reference_dir: Path | None, notes: list[str]) -> tuple[str | None, list[Any] | None]:
    """The reference notebook's path and check cells, or (None, None) with a note saying why."""
    if reference_dir is None:
        notes.append("no reference folder: graded as is (check cells not restored)")
        return None, None
    ref_path = reference_dir / path.name
    if not ref_path.is_file():
        notes.append(f"no reference notebook {ref_path}: graded as is (check cells not restored)")
        return None, None
    try:
        ref_nb = read_notebook(ref_path, "reference")
        cells = find_check_cells(ref_nb, str(ref_path), strict=True)
    except CourseInputError as err:
        notes.append(f"reference {ref_path} is unusable ({_first_line(err)}): graded as is")
        return None, None
    return str(ref_path), cells


def _find_cell(nb: NotebookNode, exercise: str) -> int | None:
    for index, cell in enumerate(nb.cells):
        info = cell.get("metadata", {}).get(METADATA_KEY)
        if cell.get("cell_type") == "code" and isinstance(info, dict) and info.get("exercise") == exercise:
            return index
    return None


def _execute(
    nb: NotebookNode, folder: Path, timeout: int, total_timeout: int, env: dict[str, str]
) -> tuple[dict[int, tuple[str, str]], str | None]:
    """Run ``nb`` in a fresh kernel; return {cell index: (status, detail)} and a problem, if any.

    status is 'ok' or 'error'; cells that never ran are absent.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    outcome: dict[int, tuple[str, str]] = {}

    def on_executed(cell: Any, cell_index: int, execute_reply: dict[str, Any] | None) -> None:
        content = (execute_reply or {}).get("content", {})
        if content.get("status") == "ok":
            outcome[cell_index] = ("ok", "")
        else:
            detail = f"{content.get('ename', 'Error')}: {_first_line(content.get('evalue', ''))}"
            outcome[cell_index] = ("error", detail)

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeout", "evalue": f"the cell ran past the time limit of {timeout} s"},
        record_timing=False,
        extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no start-up warnings on the teacher's terminal
        resources={"metadata": {"path": str(folder)}},
        on_cell_executed=on_executed,
    )
    deadline = time.monotonic() + total_timeout
    problem: str | None = None
    try:
        with client.setup_kernel(env=env):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    problem = f"stopped at cell {index}: the notebook ran past the overall limit of {total_timeout} s"
                    break
                client.timeout = max(1, int(min(timeout, remaining)))
                try:
                    client.execute_cell(cell, index)
                except CellTimeoutError:
                    outcome[index] = ("error", f"CellTimeout: the cell ran past {client.timeout} s")
    except DeadKernelError:
        problem = "the kernel died (out of memory, or the code crashed Python); later cells did not run"
    except Exception as err:  # kernel failed to start, lost connection, ...
        problem = f"could not run the notebook: {type(err).__name__}: {_first_line(err)}"
    return outcome, problem


def grade_notebook(
    path: str | os.PathLike[str],
    reference_dir: str | os.PathLike[str] | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
    profile: str | None = None,
) -> NotebookReport:
    """Grade one submitted notebook (see the module docstring); never raises for a bad submission.

    ``reference_dir`` holds the released exercise notebooks (None: grade as is). ``profile`` is
    the kernel's ``COURSE_PROFILE`` (default: the grader's own ``COURSE_PROFILE``, else quick).
    """
    from course_lib.validate import check_positive_int

    timeout = check_positive_int(timeout, "timeout")
    total_timeout = check_positive_int(total_timeout, "total_timeout")
    if profile is None:
        profile = os.environ.get("COURSE_PROFILE", "").strip().lower() or "quick"
    if profile not in PROFILES:
        raise CourseInputError(f"profile: {profile!r} is not one of {PROFILES}.")
    if not isinstance(path, (str, os.PathLike)):
        raise CourseInputError(f"path: expected a notebook path, got {type(path).__name__}.")
    nb_path = Path(path)
    ref_dir = check_dir(reference_dir, "reference_dir") if reference_dir is not None else None

    notes: list[str] = []
    ref_name, ref_cells = _load_reference(nb_path, ref_dir, notes)
    report = NotebookReport(path=str(nb_path), status="graded", reference=ref_name, notes=notes)

    try:
        nb = read_notebook(nb_path, "path")
    except CourseInputError as err:
        report.status = "unreadable"
        notes.insert(0, f"cannot be parsed as a notebook: {_first_line(err)}")
        for ref_cell in ref_cells or []:
            report.exercises.append(ExerciseResult(ref_cell.exercise, 0, ref_cell.points, False, "notebook unreadable"))
        return report

    # Decide which cells are graded, restoring released check cells where there is a reference.
    graded: list[tuple[str, int, int | None]] = []  # (exercise, points, cell index or None)
    if ref_cells is not None:
        restored = []
        for ref_cell in ref_cells:
            index = _find_cell(nb, ref_cell.exercise)
            if index is not None:
                if nb.cells[index].source != ref_cell.source:
                    restored.append(ref_cell.exercise)
                nb.cells[index].source = ref_cell.source
            graded.append((ref_cell.exercise, ref_cell.points, index))
        if restored:
            notes.append(f"restored {len(restored)} modified check cell(s) from the reference: {', '.join(restored)}")
    else:
        for own in find_check_cells(nb, str(nb_path), strict=False):
            graded.append((own.exercise, own.points, own.index))
    if not graded:
        notes.append("no check cells found: nothing to grade")
        return report
    for _, _, index in graded:
        if index is not None:
            nb.cells[index].source = CHECK_PREAMBLE + nb.cells[index].source

    env = dict(os.environ)
    env["COURSE_PROFILE"] = profile
    folder = nb_path.resolve().parent
    outcome, problem = _execute(nb, folder, timeout, total_timeout, env)
    if problem:
        notes.append(problem)
        if not outcome:
            report.status = "not run"

    for exercise, points, index in graded:
        if index is None:
            result = ExerciseResult(exercise, 0, points, False, "check cell missing (deleted, or its metadata removed)")
        elif index not in outcome:
            result = ExerciseResult(exercise, 0, points, False, "check cell did not run")
        else:
            status, detail = outcome[index]
            passed = status == "ok"
            result = ExerciseResult(exercise, points if passed else 0, points, passed, "" if passed else detail)
        report.exercises.append(result)
    return report


def grade_paths(
    paths: Sequence[str | os.PathLike[str]],
    reference_dir: str | os.PathLike[str] | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
    profile: str | None = None,
) -> list[NotebookReport]:
    """Grade every notebook under ``paths`` (files or folders), one fresh kernel each."""
    notebooks = collect_notebooks(paths)
    return [grade_notebook(p, reference_dir, timeout, total_timeout, profile) for p in notebooks]


def format_table(reports: Sequence[NotebookReport]) -> str:
    """The human-readable grading: one table per notebook, then the totals."""
    lines: list[str] = []
    for report in reports:
        lines.append(f"== {report.path}  [{report.status}]")
        lines.append(f"   reference: {report.reference or 'none'}")
        for note in report.notes:
            lines.append(f"   note: {note}")
        width = max([len("exercise"), *(len(e.exercise) for e in report.exercises)])
        if report.exercises:
            lines.append(f"   {'exercise':<{width}}  points  result")
            for e in report.exercises:
                mark = "pass" if e.passed else "FAIL"
                detail = f"  {_first_line(e.detail, 120)}" if e.detail else ""
                lines.append(f"   {e.exercise:<{width}}  {f'{e.points}/{e.max_points}':>6}  {mark}{detail}")
        lines.append(f"   {'total':<{width}}  {f'{report.score}/{report.max_score}':>6}")
        lines.append("")
    score = sum(r.score for r in reports)
    best = sum(r.max_score for r in reports)
    lines.append(f"{len(reports)} notebook(s) graded: {score}/{best} points in total")
    if len(reports) > 1:
        width = max(len(r.path) for r in reports)
        for r in reports:
            lines.append(f"  {r.path:<{width}}  {r.score}/{r.max_score}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 0 when grading ran (whatever the marks), 2 on bad arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.tools.grade",
        description="Grade submitted exercise notebooks: run each in a fresh kernel and count passing check cells.",
    )
    parser.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help=f"seconds per cell (default {DEFAULT_TIMEOUT})")
    parser.add_argument(
        "--total-timeout", type=int, default=DEFAULT_TOTAL_TIMEOUT,
        help=f"seconds per notebook (default {DEFAULT_TOTAL_TIMEOUT})",
    )
    parser.add_argument("--reference", default=None, help="folder of released exercise notebooks (default: the repo's exercises/)")
    parser.add_argument("--profile", choices=PROFILES, default=None, help="COURSE_PROFILE for the kernel (default: quick)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on bad arguments, 0 for --help
        return int(exc.code or 0)
    try:
        for label, value in (("--timeout", args.timeout), ("--total-timeout", args.total_timeout)):
            if value < 1:
                raise CourseInputError(f"{label}: must be at least 1 second, got {value}.")
        reference = check_dir(args.reference, "--reference") if args.reference is not None else default_reference_dir()
        notebooks = collect_notebooks(args.paths)
    except CourseInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    reports = [grade_notebook(p, reference, args.timeout, args.total_timeout, args.profile) for p in notebooks]
    if args.json:
        payload = {
            "notebooks": [r.to_dict() for r in reports],
            "total": {
                "notebooks": len(reports),
                "score": sum(r.score for r in reports),
                "max_score": sum(r.max_score for r in reports),
            },
        }
        print(json.dumps(payload, indent=1, ensure_ascii=False))
    else:
        print(format_table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
