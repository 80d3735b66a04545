"""The teacher's grader: run submitted exercise notebooks and count the exercises that pass.

::

    python -m course_lib.tools.grade PATH... [--json] [--out FILE] [--timeout SECONDS]
                                       [--total-timeout SECONDS] [--reference DIR] [--profile quick|full]

``PATH`` is a submitted notebook or a folder of them (searched recursively; checkpoint folders
are skipped). Before any submission runs, the grader copies the ``course_lib`` package (the
checking code) and the reference notebooks into a private folder, keeping their bytes and hashes,
and snapshots every submission (:class:`~course_lib.tools.grade_sandbox.Sandbox`). Then, for
each notebook, it

1. reads it from the snapshot; a file that is not a readable notebook gets a row saying so
   (score 0) instead of stopping the run;
2. finds the released exercise notebook of the same file name in the reference folder
   (``--reference``; by default the repository's ``exercises/`` folder when it holds one). The
   reference decides which exercises exist and their points, and each check cell's source is
   replaced by the released one, so that editing a check does not help (the output says how many
   were restored). A check cell is matched by its ``course.exercise`` id (see
   :mod:`course_lib.tools.exercises`); a check cell that is missing from the submission counts as
   failed. Without a reference the notebook is graded as it is, and the output says so;
3. reads its answer cells for code that reaches for the grading machinery
   (:mod:`~course_lib.tools.grade_flags`): each finding is listed under "needs a human look";
4. runs it top to bottom in a fresh ``python3`` kernel (errors allowed, so one broken cell does
   not stop the rest), in a worker process of its own session (:mod:`~course_lib.tools.grade_worker`),
   with a private copy of the notebook's folder as working directory, the private ``course_lib``
   first on the path and ``COURSE_PROFILE=quick`` (or ``--profile``; an explicit
   ``COURSE_PROFILE`` in the grader's environment wins), a per-cell time limit (``--timeout``,
   default 120 s: the cell is interrupted, and a kernel that ignores the interrupt is stopped, the
   later cells not run) and a limit for the whole notebook (``--total-timeout``, default 900 s).
   The kernel's output never reaches the grader's; every process the submission started is
   killed before the next notebook runs;
5. counts an exercise as passed iff its check cell ran without an error. A check cell runs with
   the check functions loaded afresh from the grader's in-memory copy (not from disk, not through
   the kernel's ``importlib``), outside IPython's input transformers and magics;
6. checks the private copy again: a submission that changed it gets no marks and a flag, and the
   copy is restored for the next one. Changes to the original checking code, reference notebooks
   or other submissions are flagged too.

It prints a per-exercise pass/fail table per notebook and the totals, or with ``--json`` one JSON
object (``{"notebooks": [...], "total": {...}}``); ``--out FILE`` writes that JSON to ``FILE`` in
one atomic step once every kernel is gone. Exit code: 0 when grading ran, whatever the marks; 2 on
bad arguments (a path that does not exist, no notebooks found, a bad limit).

What code in the learner's own kernel can still do (and how to run the grader in a container for
marks that count) is in the README's grader section.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from nbformat import NotebookNode

from course_lib.tools.exercises import METADATA_KEY, find_check_cells, read_notebook
from course_lib.tools.grade_flags import scan_cells
from course_lib.tools.grade_sandbox import (
    KERNEL_NAME,
    STARTUP_SECONDS,
    Sandbox,
    descendants,
    guarded_process,
    kill_new_descendants,
    process_table,
    run_worker,
)
from course_lib.settings import PROFILES
from course_lib.errors import CourseInputError
from course_lib.io import REPO_ROOT, check_dir, write_json

__all__ = [
    "ExerciseResult",
    "NotebookReport",
    "default_reference_dir",
    "collect_notebooks",
    "grade_notebook",
    "grade_paths",
    "format_table",
    "marks_payload",
    "main",
]

DEFAULT_TIMEOUT = 120
DEFAULT_TOTAL_TIMEOUT = 900


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
    """The grading of one notebook. ``status`` is 'graded', 'unreadable' or 'not run'.

    ``flags`` lists what a human should look at (code reaching for the grading machinery, damage
    done to the checking code or to other submissions); ``needs_review`` is whether there is any.
    """

    path: str
    status: str
    reference: str | None
    notes: list[str] = field(default_factory=list)
    exercises: list[ExerciseResult] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def needs_review(self) -> bool:
        """Whether a human should look at this submission."""
        return bool(self.flags)

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
        data["needs_review"] = self.needs_review
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


def _reference(box: Sandbox, path: Path, notes: list[str]) -> tuple[str | None, list[Any] | None, list[str]]:
    """The reference's path, its check cells and all its code cells' sources (from the in-memory copy)."""
    if box.reference_source is None:
        notes.append("no reference folder: graded as is (check cells not restored)")
        return None, None, []
    ref_path = box.reference_source / path.name
    if path.name not in box.ref_files:
        notes.append(f"no reference notebook {ref_path}: graded as is (check cells not restored)")
        return None, None, []
    try:
        ref_nb = read_notebook(box.ref_root / path.name, "reference")
        cells = find_check_cells(ref_nb, str(ref_path), strict=True)
    except CourseInputError as err:
        notes.append(f"reference {ref_path} is unusable ({_first_line(err)}): graded as is")
        return None, None, []
    return str(ref_path), cells, [c.source for c in ref_nb.cells if c.get("cell_type") == "code"]


def _find_cell(nb: NotebookNode, exercise: str) -> int | None:
    for index, cell in enumerate(nb.cells):
        info = cell.get("metadata", {}).get(METADATA_KEY)
        if cell.get("cell_type") == "code" and isinstance(info, dict) and info.get("exercise") == exercise:
            return index
    return None


def _check_names(box: Sandbox) -> set[str]:
    """The names the checking package exports (its ``__all__``), read from the copy, not imported."""
    import ast

    names: set[str] = set()
    tree = ast.parse(box.checks["sources"][box.checks["package"]])
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            with contextlib.suppress(ValueError):
                names.update(n for n in ast.literal_eval(node.value) if isinstance(n, str))
    return names


def _grade_one(box: Sandbox, number: int, timeout: int, total_timeout: int, profile: str) -> NotebookReport:
    """Grade the sandbox's submission ``number`` (see the module docstring)."""
    sub = box.submissions[number]
    notes: list[str] = list(sub.notes)
    flags: list[str] = []
    ref_name, ref_cells, ref_sources = _reference(box, sub.path, notes)
    report = NotebookReport(path=str(sub.path), status="graded", reference=ref_name, notes=notes, flags=flags)
    restored = box.verify_private()
    if restored:
        notes.append(f"the grader's private copy had changed and was restored first: {_listing(restored)}")
    damaged = box.changed_submission_copy(sub)
    if damaged:
        flags.append(f"files of this submission's folder changed before it ran (another submission?): {_listing(damaged)}")

    job_dir = box.root / "jobs" / f"{number:03d}"
    job_dir.mkdir(parents=True)
    try:
        if sub.data is None:
            raise CourseInputError(f"{sub.path}: cannot be read ({sub.error}).")
        private_nb = sub.folder / sub.path.name
        private_nb.write_bytes(sub.data)
        nb = read_notebook(private_nb, "path")
    except CourseInputError as err:
        report.status = "unreadable"
        message = str(err).replace(str(sub.folder / sub.path.name), str(sub.path))
        notes.insert(0, f"cannot be parsed as a notebook: {_first_line(message)}")
        for ref_cell in ref_cells or []:
            report.exercises.append(ExerciseResult(ref_cell.exercise, 0, ref_cell.points, False, "notebook unreadable"))
        return report

    # Decide which cells are graded, restoring released check cells where there is a reference.
    graded: list[tuple[str, int, int | None]] = []  # (exercise, points, cell index or None)
    if ref_cells is not None:
        changed = []
        for ref_cell in ref_cells:
            index = _find_cell(nb, ref_cell.exercise)
            if index is not None:
                if nb.cells[index].source != ref_cell.source:
                    changed.append(ref_cell.exercise)
                nb.cells[index].source = ref_cell.source
            graded.append((ref_cell.exercise, ref_cell.points, index))
        if changed:
            notes.append(f"restored {len(changed)} modified check cell(s) from the reference: {', '.join(changed)}")
    else:
        for own in find_check_cells(nb, str(sub.path), strict=False):
            graded.append((own.exercise, own.points, own.index))
    if not graded:
        notes.append("no check cells found: nothing to grade")
        return report

    exercise_at = {index: exercise for exercise, _, index in graded if index is not None}
    released = {src.strip() for src in ref_sources}
    answers = [(i, c.source) for i, c in enumerate(nb.cells)
               if c.cell_type == "code" and i not in exercise_at and c.source.strip() not in released]
    all_code = [c.source for c in nb.cells if c.cell_type == "code"]
    flags.extend(scan_cells(answers, all_code, _check_names(box) | {"ExerciseFailed"}))

    cells = [{"index": i, "source": c.source, "exercise": exercise_at.get(i)}
             for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    job = {"cells": cells, "cwd": str(sub.folder), "timeout": timeout, "total_timeout": total_timeout,
           "kernel_name": KERNEL_NAME, "check": box.checks}
    env = box.worker_environment(job_dir, profile)
    job["env"] = env
    result = run_worker(box.worker_source, job, job_dir, env, total_timeout + STARTUP_SECONDS)
    notes.extend(result.problems)
    if result.killed:
        notes.append("the grading process was killed by the submission: the cells that had finished count, "
                     "later cells were not run")
        flags.append("killed the grading process")
    if not result.outcome and (result.problems or result.killed):
        report.status = "not run"

    withheld = ""
    changed_private = box.verify_private()
    if changed_private:
        withheld = "marks withheld: the submission changed the grader's checking code or reference while it ran"
        flags.append(f"changed the grader's private checking code or reference while it ran (restored): "
                     f"{_listing(changed_private)}")
    for what, files in (("the course's checking code or reference notebooks on disk", box.changed_sources()),
                        ("other submitted notebooks", box.changed_originals())):
        if files:
            flags.append(f"changed {what}: {_listing(files)}")
    box.accept_current_sources()
    for other in box.submissions[number + 1:]:
        touched = box.touched_submission_copy(other)
        if touched:
            flags.append(f"changed the private copy of {other.path}: {_listing(touched)}")

    for exercise, points, index in graded:
        if index is None:
            result_ = ExerciseResult(exercise, 0, points, False, "check cell missing (deleted, or its metadata removed)")
        elif withheld:
            result_ = ExerciseResult(exercise, 0, points, False, withheld)
        elif index not in result.outcome:
            result_ = ExerciseResult(exercise, 0, points, False, "check cell did not run")
        else:
            status, detail = result.outcome[index]
            passed = status == "ok"
            result_ = ExerciseResult(exercise, points if passed else 0, points, passed, "" if passed else detail)
        report.exercises.append(result_)
    return report


def _listing(items: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _check_limits(timeout: int, total_timeout: int, profile: str | None) -> tuple[int, int, str]:
    from course_lib.validate import check_positive_int

    timeout = check_positive_int(timeout, "timeout")
    total_timeout = check_positive_int(total_timeout, "total_timeout")
    if profile is None:
        profile = os.environ.get("COURSE_PROFILE", "").strip().lower() or "quick"
    if profile not in PROFILES:
        raise CourseInputError(f"profile: {profile!r} is not one of {PROFILES}.")
    return timeout, total_timeout, profile


def _grade_all(
    notebooks: Sequence[Path], reference_dir: str | os.PathLike[str] | None, timeout: int, total_timeout: int,
    profile: str | None,
) -> list[NotebookReport]:
    timeout, total_timeout, profile = _check_limits(timeout, total_timeout, profile)
    ref_dir = check_dir(reference_dir, "reference_dir") if reference_dir is not None else None
    before = set(descendants(process_table(), os.getpid()))  # the caller's own children are left alone
    with guarded_process(), Sandbox(notebooks, ref_dir) as box:
        try:
            return [_grade_one(box, n, timeout, total_timeout, profile) for n in range(len(box.submissions))]
        finally:
            kill_new_descendants(before)  # nothing a submission started outlives the grading


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
    _check_limits(timeout, total_timeout, profile)
    if not isinstance(path, (str, os.PathLike)):
        raise CourseInputError(f"path: expected a notebook path, got {type(path).__name__}.")
    return _grade_all([Path(path)], reference_dir, timeout, total_timeout, profile)[0]


def grade_paths(
    paths: Sequence[str | os.PathLike[str]],
    reference_dir: str | os.PathLike[str] | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
    profile: str | None = None,
) -> list[NotebookReport]:
    """Grade every notebook under ``paths`` (files or folders), each in its own worker and kernel.

    All of them are snapshotted before the first one runs.
    """
    return _grade_all(collect_notebooks(paths), reference_dir, timeout, total_timeout, profile)


def format_table(reports: Sequence[NotebookReport]) -> str:
    """The human-readable grading: one table per notebook, then the totals."""
    lines: list[str] = []
    for report in reports:
        lines.append(f"== {report.path}  [{report.status}]")
        lines.append(f"   reference: {report.reference or 'none'}")
        for note in report.notes:
            lines.append(f"   note: {note}")
        if report.flags:
            lines.append("   NEEDS A HUMAN LOOK:")
            lines.extend(f"     - {flag}" for flag in report.flags)
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
            look = "  (needs a human look)" if r.needs_review else ""
            lines.append(f"  {r.path:<{width}}  {r.score}/{r.max_score}{look}")
    return "\n".join(lines)


def marks_payload(reports: Sequence[NotebookReport]) -> dict[str, Any]:
    """The JSON the grader prints (``--json``) or writes (``--out``)."""
    return {
        "notebooks": [r.to_dict() for r in reports],
        "total": {
            "notebooks": len(reports),
            "score": sum(r.score for r in reports),
            "max_score": sum(r.max_score for r in reports),
            "needs_review": sum(r.needs_review for r in reports),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 0 when grading ran (whatever the marks), 2 on bad arguments, 130 on Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib.tools.grade",
        description="Grade submitted exercise notebooks: run each in a fresh kernel and count passing check cells.",
    )
    parser.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--out", default=None, help="also write the JSON to this file (atomically, at the end)")
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
        if args.out is not None and Path(args.out).is_dir():
            raise CourseInputError(f"--out: {args.out!r} is a folder; give the path of the JSON file to write.")
        reference = check_dir(args.reference, "--reference") if args.reference is not None else default_reference_dir()
        notebooks = collect_notebooks(args.paths)
    except CourseInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        reports = _grade_all(notebooks, reference, args.timeout, args.total_timeout, args.profile)
    except KeyboardInterrupt:  # Ctrl-C: the running kernel and its processes are already stopped
        print("interrupted: grading stopped, no marks written", file=sys.stderr)
        return 130
    payload = marks_payload(reports)
    if args.out is not None:
        write_json(args.out, payload)  # every kernel and its descendants are gone by now
    if args.json:
        print(json.dumps(payload, indent=1, ensure_ascii=False))
    else:
        print(format_table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
