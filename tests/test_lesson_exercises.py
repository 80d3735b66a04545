"""Every lesson's exercises, graded for real: the untouched exercise notebook scores 0 (without
crashing) and the solution notebook scores full marks."""

from pathlib import Path

import pytest

from course_lib.tools.grade import grade_notebook

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def test_every_lesson_has_exercises():
    lessons = {p.name[:2] for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert lessons and lessons <= {p.name[:2] for p in SOLUTIONS}


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_exercise_grades_zero_and_solution_grades_full(solution):
    exercise = ROOT / "exercises" / solution.name
    untouched = grade_notebook(exercise, timeout=300)
    solved = grade_notebook(solution, timeout=300)
    assert solved.max_score == untouched.max_score > 0
    assert len(solved.exercises) >= 4
    assert untouched.score == 0, untouched.to_dict()
    assert solved.score == solved.max_score, solved.to_dict()
