"""The solution notebooks under real nbgrader: generate_assignment on every lesson, autograde on the fixture.

Each test course lives in a tmp folder, with nbgrader's home, config and data folders there too, and
uses the repository's nbgrader_config.py as a teacher would (copied into the course folder).
Autograding a whole lesson takes minutes, so only the small fixture notebook is autograded.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib.tools.exercises import (
    BEGIN_MARKER,
    END_MARKER,
    NBGRADER_KEY,
    find_check_cells,
    make_exercise,
    read_notebook,
)

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "solutions"
EXERCISES = REPO / "exercises"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_SOLUTION = FIXTURES / "solutions" / "00_fixture.ipynb"
FIXTURE_EXERCISE = FIXTURES / "exercises" / "00_fixture.ipynb"
BIN = Path(sys.executable).parent  # the venv's bin: nbgrader, and alembic, which nbgrader calls by name
LESSONS = sorted(SOLUTIONS.glob("*.ipynb"))


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        COURSE_PROFILE="quick",
        HF_HUB_OFFLINE="1",
        OMP_WAIT_POLICY="PASSIVE",
    )
    return env


def _nbgrader(course: Path, *args: str) -> None:
    run = subprocess.run(
        [str(BIN / "nbgrader"), *args], cwd=course, env=_env(course.parent / "home"),
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"


def _new_course(root: Path, assignment: str, notebooks: list[Path]) -> Path:
    course = root / "course"
    (course / "source" / assignment).mkdir(parents=True)
    for path in notebooks:
        shutil.copy(path, course / "source" / assignment / path.name)
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    return course


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, str]]:
    return [(c.cell_type, c.get("id", ""), c.source) for c in nb.cells]


def _region_bodies(source: str) -> list[str]:
    """The text inside each solution region of a cell, markers excluded."""
    bodies, current = [], None
    for line in source.splitlines():
        if line.strip() == BEGIN_MARKER:
            current = []
        elif line.strip() == END_MARKER:
            bodies.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return bodies


# ----------------------------------------------------------------------------- generate_assignment, all lessons


@pytest.fixture(scope="module")
def lessons_release(tmp_path_factory) -> Path:
    """nbgrader's release folder of one assignment holding all seven solution notebooks."""
    course = _new_course(tmp_path_factory.mktemp("nbgrader_lessons"), "lessons", LESSONS)
    _nbgrader(course, "generate_assignment", "lessons", "--force")
    return course


def test_there_are_seven_lessons():
    assert [p.name[:2] for p in LESSONS] == ["01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("solution", LESSONS, ids=lambda p: p.stem)
def test_release_is_the_course_exercise(lessons_release, solution):
    released = nbformat.read(lessons_release / "release" / "lessons" / solution.name, as_version=4)
    exercise = nbformat.read(EXERCISES / solution.name, as_version=4)
    # Every cell, in order: same type, id and source (stubs, check cells, text, no solution-only cells).
    assert _cells(released) == _cells(exercise)
    # The solution-only cells (a "this is the solution notebook" note, worked explanations) stay out.
    hidden = [c.source for c in read_notebook(solution).cells if "solution-only" in c.metadata.get("tags", [])]
    text = "\n".join(c.source for c in released.cells)
    assert hidden and not any(source in text for source in hidden)


@pytest.mark.parametrize("solution", LESSONS, ids=lambda p: p.stem)
def test_release_leaks_no_solution(lessons_release, solution):
    released = nbformat.read(lessons_release / "release" / "lessons" / solution.name, as_version=4)
    text = "\n".join(c.source for c in released.cells)
    assert BEGIN_MARKER not in text and END_MARKER not in text
    bodies = [b for c in read_notebook(solution).cells if c.cell_type == "code" for b in _region_bodies(c.source)]
    assert len(bodies) >= 6
    for body in bodies:
        assert body.strip() and body not in text
    assert all(not c.get("outputs") for c in released.cells if c.cell_type == "code")


def test_release_grades_the_check_cells(lessons_release):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{lessons_release / 'gradebook.db'}") as gb:
            saved = {
                nb.name: sorted((g.name, g.max_score) for g in nb.grade_cells)
                for nb in gb.find_assignment("lessons").notebooks
            }
    assert sorted(saved) == [p.stem for p in LESSONS]
    for solution in LESSONS:
        checks = find_check_cells(read_notebook(solution), solution.name)
        assert saved[solution.stem] == sorted((c.exercise, float(c.points)) for c in checks)
        released = nbformat.read(lessons_release / "release" / "lessons" / solution.name, as_version=4)
        graded = [(c.id, c.metadata[NBGRADER_KEY]["points"]) for c in released.cells
                  if c.metadata.get(NBGRADER_KEY, {}).get("grade")]
        assert graded == [(read_notebook(solution).cells[c.index].id, c.points) for c in checks]


# ----------------------------------------------------------------------------- autograde, the fixture


def _answered_ex1_only() -> nbformat.NotebookNode:
    """The course's exercise notebook with exercise 1 answered and exercise 2's check cell 'edited' to pass."""
    solution = read_notebook(FIXTURE_SOLUTION)
    nb = nbformat.read(FIXTURE_EXERCISE, as_version=4)
    by_id = {c.id: c for c in nb.cells}
    by_id["ex1-answer"].source = solution.cells[[c.id for c in solution.cells].index("ex1-answer")].source
    by_id["ex2-check"].source = "pass  # 'fixed' by the student"
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    """The fixture autograded for three students: full solution, released stub, partial answer."""
    course = _new_course(tmp_path_factory.mktemp("nbgrader_fixture"), "fixture", [FIXTURE_SOLUTION])
    _nbgrader(course, "generate_assignment", "fixture", "--force")
    released = course / "release" / "fixture" / "00_fixture.ipynb"
    submissions = {
        "alice": FIXTURE_SOLUTION.read_text(encoding="utf-8"),
        "bob": released.read_text(encoding="utf-8"),
        "carol": nbformat.writes(_answered_ex1_only()),
    }
    for student, text in submissions.items():
        folder = course / "submitted" / student / "fixture"
        folder.mkdir(parents=True)
        (folder / "00_fixture.ipynb").write_text(text, encoding="utf-8")
    _nbgrader(course, "autograde", "fixture", "--create", "--force")
    _nbgrader(course, "export", "--to", str(course / "grades.csv"))
    return course


def _scores(course: Path, student: str) -> list[tuple[str, float, float]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
            sub = gb.find_submission_notebook("00_fixture", "fixture", student)
            return sorted((g.name, g.score, g.max_score) for g in sub.grades)


def test_full_solution_gets_full_marks(graded):
    assert _scores(graded, "alice") == [("ex1-playback", 1.0, 1.0), ("ex2-denormalise", 2.0, 2.0)]


def test_released_stub_gets_zero(graded):
    assert _scores(graded, "bob") == [("ex1-playback", 0.0, 1.0), ("ex2-denormalise", 0.0, 2.0)]
    run = nbformat.read(graded / "autograded" / "bob" / "fixture" / "00_fixture.ipynb", as_version=4)
    errors = [o for c in run.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert any("not answered yet" in "\n".join(o.traceback) for o in errors)


def test_course_exercise_is_autograded_with_its_check_cells_restored(graded):
    # The exercise from exercises/ (not nbgrader's release) carries the same nbgrader ids, so nbgrader
    # grades it; the edited check cell of exercise 2 is put back (locked), so it fails honestly.
    assert _scores(graded, "carol") == [("ex1-playback", 1.0, 1.0), ("ex2-denormalise", 0.0, 2.0)]
    run = nbformat.read(graded / "autograded" / "carol" / "fixture" / "00_fixture.ipynb", as_version=4)
    assert [c.source for c in run.cells if c.id == "ex2-check"] == ["check_denormalise(denormalise)"]


def test_exported_csv_has_the_totals(graded):
    with open(graded / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["student_id"]: (float(row["score"]), float(row["max_score"])) for row in csv.DictReader(f)}
    assert rows == {"alice": (3.0, 3.0), "bob": (0.0, 3.0), "carol": (1.0, 3.0)}


# ----------------------------------------------------------------------------- the release preprocessor alone


def test_course_release_preprocessor_matches_make_exercise():
    from course_lib.tools.nbgrader_release import CourseRelease

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("[badge](https://colab.research.google.com/github/o/r/blob/main/solutions/01_x.ipynb)"),
        nbformat.v4.new_markdown_cell("These are the worked answers.", metadata={"tags": ["solution-only"]}),
        nbformat.v4.new_code_cell("x = 1  # /solutions/ in code stays"),
    ])
    expected = [(c.cell_type, c.source) for c in make_exercise(nb, "01_x.ipynb").cells]
    out, resources = CourseRelease()(nb, {"marker": 1})
    assert [(c.cell_type, c.source) for c in out.cells] == expected
    assert expected[0][1].endswith("/exercises/01_x.ipynb)") and expected[1][1] == "x = 1  # /solutions/ in code stays"
    assert resources == {"marker": 1}
