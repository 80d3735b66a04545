"""Tests for course_lib.tools.exercises: stubbing solution regions, building and checking exercise notebooks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.tools import exercises
from course_lib.tools.exercises import (
    BEGIN_MARKER,
    END_MARKER,
    NBGRADER_KEY,
    STUB_LINE,
    ExerciseFormatError,
    build,
    check,
    find_check_cells,
    main,
    make_exercise,
    nbgrader_blocks,
    read_notebook,
    render_exercise,
    stale_nbgrader_cells,
    stamp_nbgrader,
    strip_solution,
)
from course_lib.validate import CourseInputError

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_SOLUTION = FIXTURES / "solutions" / "00_fixture.ipynb"
FIXTURE_EXERCISE = FIXTURES / "exercises" / "00_fixture.ipynb"

FUNCTION_CELL = '''def denormalise(norm, lo, hi):
    """Undo min-max normalisation."""
    ### BEGIN SOLUTION
    span = hi - lo
    return norm * span + lo
    ### END SOLUTION
    # a comment after the region is kept
'''


def _notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=list(cells))


def _check_cell(source: str, exercise: str, points: int = 1, cell_id: str | None = None) -> nbformat.NotebookNode:
    meta = {"tags": ["check"], "course": {"exercise": exercise, "points": points}}
    return nbformat.v4.new_code_cell(source, metadata=meta, **({"id": cell_id} if cell_id else {}))


# ----------------------------------------------------------------------------- strip_solution


def test_function_region_becomes_indented_stub():
    out, regions = strip_solution(FUNCTION_CELL)
    assert regions == 1
    assert out.splitlines() == [
        "def denormalise(norm, lo, hi):",
        '    """Undo min-max normalisation."""',
        f"    {STUB_LINE}",
        "    # a comment after the region is kept",
    ]
    namespace: dict = {}
    exec(compile(out, "<exercise>", "exec"), namespace)  # still valid Python
    with pytest.raises(NotImplementedError, match="Exercise: write your answer here"):
        namespace["denormalise"](0.5, -80.0, 0.0)


def test_top_level_region_and_several_regions():
    source = f"x = 1\n{BEGIN_MARKER}\nanswer = 42\n{END_MARKER}\nprint(answer)\n\ndef f():\n  {BEGIN_MARKER}\n  return 1\n  {END_MARKER}"
    out, regions = strip_solution(source)
    assert regions == 2
    assert out == f"x = 1\n{STUB_LINE}\nprint(answer)\n\ndef f():\n  {STUB_LINE}"
    compile(out, "<exercise>", "exec")
    assert "42" not in out and "return 1" not in out


def test_source_without_markers_is_unchanged():
    assert strip_solution("a = 1\nb = 2") == ("a = 1\nb = 2", 0)
    assert strip_solution("") == ("", 0)


@pytest.mark.parametrize(
    ("source", "match"),
    [
        (f"{BEGIN_MARKER}\nx = 1\n", "line 1: '### BEGIN SOLUTION' is never closed"),
        (f"x = 1\n{END_MARKER}\n", "line 2: '### END SOLUTION' without"),
        (f"{BEGIN_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}\n{END_MARKER}\n", "line 2: .*cannot be nested"),
        ("## BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "line 1: '## BEGIN SOLUTION' looks like a solution marker"),
        ("### begin solution\nx = 1\n", "looks like a solution marker"),
        ("    #### END SOLUTION ####\n", "looks like a solution marker"),
    ],
)
def test_bad_markers(source, match):
    with pytest.raises(ExerciseFormatError, match=match):
        strip_solution(source, "nb.ipynb, cell 3")


def test_error_is_a_course_input_error_naming_the_cell():
    with pytest.raises(CourseInputError, match=r"^nb.ipynb, cell 3, line 1"):
        strip_solution(f"{BEGIN_MARKER}\n", "nb.ipynb, cell 3")


@settings(max_examples=25, deadline=None)
@given(
    indent=st.sampled_from(["", " ", "    ", "\t", "        "]),
    body=st.lists(st.text(alphabet="abcxyz =+1()", min_size=1, max_size=12), min_size=1, max_size=5),
)
def test_stub_keeps_the_marker_indentation(indent, body):
    lines = ["before = 0", f"{indent}{BEGIN_MARKER}", *(f"{indent}sol_{b}" for b in body), f"{indent}{END_MARKER}", "after = 1"]
    out, regions = strip_solution("\n".join(lines) + "\n")
    assert regions == 1
    assert out.splitlines() == ["before = 0", f"{indent}{STUB_LINE}", "after = 1"]
    assert "sol_" not in out


# ----------------------------------------------------------------------------- notebooks


def test_marker_in_markdown_cell_is_an_error():
    nb = _notebook(nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell(f"Text\n{BEGIN_MARKER}\nmore"))
    with pytest.raises(ExerciseFormatError, match=r"lesson.ipynb, cell 1, line 2: .*markdown cell"):
        make_exercise(nb, "lesson.ipynb")


def test_marker_in_check_cell_is_an_error():
    nb = _notebook(_check_cell(f"{BEGIN_MARKER}\ncheck_x(x)\n{END_MARKER}", "ex1"))
    with pytest.raises(ExerciseFormatError, match="lesson.ipynb, cell 0: a check cell cannot hold solution markers"):
        make_exercise(nb, "lesson.ipynb")


def test_unbalanced_marker_names_notebook_and_cell():
    nb = _notebook(nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(f"def f():\n    {BEGIN_MARKER}\n    return 1"))
    with pytest.raises(ExerciseFormatError, match=r"lesson.ipynb, cell 1, line 2: .*never closed"):
        make_exercise(nb, "lesson.ipynb")


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"tags": ["check"]}, "has no metadata"),
        ({"tags": ["check"], "course": {"exercise": "has space"}}, "not a valid id"),
        ({"tags": ["check"], "course": {"exercise": "ex1", "points": 0}}, "course.points=0"),
        ({"tags": ["check"], "course": {"exercise": "ex1", "points": 1.5}}, "course.points=1.5"),
        ({"course": {"exercise": "ex1"}}, "not the tag 'check'"),
    ],
)
def test_bad_check_cell_metadata(metadata, match):
    nb = _notebook(nbformat.v4.new_code_cell("check_x(x)", metadata=metadata))
    with pytest.raises(ExerciseFormatError, match=f"lesson.ipynb, cell 0: .*{match}"):
        make_exercise(nb, "lesson.ipynb")
    assert find_check_cells(nb, "lesson.ipynb", strict=False) == []


def test_duplicate_exercise_ids():
    nb = _notebook(_check_cell("a", "ex1"), _check_cell("b", "ex1"))
    with pytest.raises(ExerciseFormatError, match="cell 1: exercise id 'ex1' is already used by cell 0"):
        find_check_cells(nb, "lesson.ipynb")
    assert [c.index for c in find_check_cells(nb, strict=False)] == [0]


def test_find_check_cells_on_fixture():
    cells = find_check_cells(read_notebook(FIXTURE_SOLUTION), "00_fixture.ipynb")
    assert [(c.exercise, c.points, c.source) for c in cells] == [
        ("ex1-playback", 1, "check_playback(playback)"),
        ("ex2-denormalise", 2, "check_denormalise(denormalise)"),
    ]


def test_fixture_exercise_is_stubbed_and_stripped():
    solution = read_notebook(FIXTURE_SOLUTION)
    exercise = nbformat.reads(render_exercise(FIXTURE_SOLUTION), as_version=4)
    assert any(cell.get("outputs") for cell in solution.cells)  # the fixture does have outputs to strip
    assert len(exercise.cells) == len(solution.cells)
    for sol_cell, ex_cell in zip(solution.cells, exercise.cells):
        assert ex_cell.id == sol_cell.id
        assert BEGIN_MARKER not in ex_cell.source and END_MARKER not in ex_cell.source
        if ex_cell.cell_type == "code":
            assert ex_cell.outputs == [] and ex_cell.execution_count is None
            assert "execution" not in ex_cell.metadata
            compile(ex_cell.source, "<cell>", "exec")
    answers = [c.source for c in exercise.cells if "def " in c.source]
    assert len(answers) == 2
    for source in answers:
        assert f"    {STUB_LINE}" in source.splitlines()
        assert "return" not in source
    assert exercise.metadata["course"]["solution"] == "00_fixture.ipynb"
    assert exercise.metadata["kernelspec"]["name"] == "python3"
    # Check cells and their metadata survive unchanged.
    assert [c.source for c in exercise.cells if "check" in c.metadata.get("tags", [])] == [
        "check_playback(playback)",
        "check_denormalise(denormalise)",
    ]


def test_widget_state_is_dropped():
    nb = _notebook(nbformat.v4.new_code_cell("x = 1"))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    assert "widgets" not in make_exercise(nb, "w.ipynb").metadata


def test_make_exercise_does_not_modify_its_input():
    nb = read_notebook(FIXTURE_SOLUTION)
    before = nbformat.writes(nb)
    make_exercise(nb, "00_fixture.ipynb")
    assert nbformat.writes(nb) == before


def test_committed_fixture_pair_is_in_sync():
    assert render_exercise(FIXTURE_SOLUTION).encode("utf-8") == FIXTURE_EXERCISE.read_bytes()
    assert main(["check", "--solutions", str(FIXTURES / "solutions"), "--out", str(FIXTURES / "exercises")]) == 0


def test_real_repo_exercises_are_up_to_date(capsys):
    # With no solution notebooks yet this passes trivially; later it guards the committed exercises.
    # (git keeps no empty folders: in a fresh clone without solutions/ the command reports a bad argument.)
    solutions = REPO / "solutions"
    code = main(["check", "--solutions", str(solutions), "--out", str(REPO / "exercises")])
    out = capsys.readouterr()
    assert code == (0 if solutions.is_dir() else 2), out.out + out.err


def test_missing_cell_ids_get_deterministic_ids(tmp_path):
    data = json.loads(FIXTURE_SOLUTION.read_text(encoding="utf-8"))
    for cell in data["cells"]:
        del cell["id"]
    data["cells"][1]["id"] = "cell-0"  # a clash the filler must avoid
    src = tmp_path / "noids.ipynb"
    src.write_text(json.dumps(data), encoding="utf-8")
    first, second = render_exercise(src), render_exercise(src)
    assert first == second
    ids = [c.id for c in nbformat.reads(first, as_version=4).cells]
    assert len(set(ids)) == len(ids)
    assert ids[1] == "cell-0" and ids[0] != "cell-0"


# ----------------------------------------------------------------------------- build and check


@pytest.fixture()
def course(tmp_path):
    """A tmp course with the fixture solution and an empty exercises folder."""
    (tmp_path / "solutions").mkdir()
    shutil.copy(FIXTURE_SOLUTION, tmp_path / "solutions" / "00_fixture.ipynb")
    return tmp_path


def test_build_is_deterministic_and_idempotent(course, capsys):
    sol, out = course / "solutions", course / "exercises"
    assert main(["check", "--solutions", str(sol), "--out", str(out)]) == 1
    assert "missing: " in capsys.readouterr().out
    assert main(["build", "--solutions", str(sol), "--out", str(out)]) == 0
    data = (out / "00_fixture.ipynb").read_bytes()
    assert data == FIXTURE_EXERCISE.read_bytes()
    assert build(sol, out) == []  # nothing changes the second time
    (out / "00_fixture.ipynb").unlink()
    assert build(sol, out) == [out / "00_fixture.ipynb"]
    assert (out / "00_fixture.ipynb").read_bytes() == data
    assert check(sol, out) == []


def test_check_detects_out_of_date_and_orphans(course, capsys):
    sol, out = course / "solutions", course / "exercises"
    build(sol, out)
    nb = read_notebook(sol / "00_fixture.ipynb")
    nb.cells[0].source += "\n\nA new sentence."
    (sol / "00_fixture.ipynb").write_text(nbformat.writes(nb), encoding="utf-8")
    shutil.copy(FIXTURE_EXERCISE, out / "99_old.ipynb")
    code = main(["check", "--solutions", str(sol), "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 1
    assert f"out of date: {out / '00_fixture.ipynb'}" in text
    assert f"orphan: {out / '99_old.ipynb'}" in text
    assert "2 problem(s)" in text
    (out / "99_old.ipynb").unlink()
    assert main(["build", "--solutions", str(sol), "--out", str(out)]) == 0
    assert check(sol, out) == []


def test_build_reports_a_bad_solution_and_writes_nothing(course, capsys):
    sol, out = course / "solutions", course / "exercises"
    nb = _notebook(nbformat.v4.new_code_cell(f"def f():\n    {BEGIN_MARKER}\n    return 1"))
    (sol / "01_bad.ipynb").write_text(nbformat.writes(nb), encoding="utf-8")
    assert main(["build", "--solutions", str(sol), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "01_bad.ipynb, cell 0, line 2" in err and "never closed" in err
    assert not out.exists()


def test_unreadable_solution_and_bad_arguments(course, capsys):
    sol, out = course / "solutions", course / "exercises"
    (sol / "02_broken.ipynb").write_text("{not json", encoding="utf-8")
    assert main(["check", "--solutions", str(sol), "--out", str(out)]) == 1
    assert "02_broken.ipynb: is not a notebook" in capsys.readouterr().err
    assert main(["check", "--solutions", str(course / "nope"), "--out", str(out)]) == 2
    assert "is not an existing folder" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main([]) == 2
    with pytest.raises(CourseInputError, match="nb: expected a notebook"):
        make_exercise("not a notebook")  # type: ignore[arg-type]


def test_empty_solutions_folder_passes(tmp_path):
    (tmp_path / "solutions").mkdir()
    assert main(["check", "--solutions", str(tmp_path / "solutions"), "--out", str(tmp_path / "exercises")]) == 0
    assert exercises.build(tmp_path / "solutions", tmp_path / "exercises") == []


def test_solution_only_cells_are_dropped_and_badges_point_at_the_exercise():
    import nbformat

    from course_lib.tools.exercises import make_exercise

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# T\n[![Open In Colab](b.svg)](https://colab.research.google.com/github/o/r/blob/main/solutions/01_x.ipynb)"
        ),
        nbformat.v4.new_markdown_cell("These are the worked answers.", metadata={"tags": ["solution-only"]}),
        nbformat.v4.new_code_cell("x = 1"),
    ]
    out = make_exercise(nb, "01_x.ipynb")
    assert len(out.cells) == 2
    assert "/blob/main/exercises/01_x.ipynb" in out.cells[0].source
    assert "worked answers" not in nbformat.writes(out)


# ----------------------------------------------------------------------------- nbgrader metadata


def _answer(source: str = f"def f():\n    {BEGIN_MARKER}\n    return 1\n    {END_MARKER}", **kw) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, **kw)


def _answer_block(grade_id: str) -> dict:
    return {"grade": False, "solution": True, "locked": False, "task": False, "grade_id": grade_id, "schema_version": 3}


def _check_block(grade_id: str, points: int) -> dict:
    return {"grade": True, "solution": False, "locked": True, "task": False, "grade_id": grade_id,
            "points": points, "schema_version": 3}


def test_nbgrader_blocks_of_the_fixture():
    blocks = nbgrader_blocks(read_notebook(FIXTURE_SOLUTION), "00_fixture.ipynb")
    assert blocks == {
        3: _answer_block("ex1-playback-answer"),
        4: _check_block("ex1-playback", 1),
        6: _answer_block("ex2-denormalise-answer"),
        7: _check_block("ex2-denormalise", 2),
    }


def test_committed_notebooks_carry_their_nbgrader_blocks():
    for path in [FIXTURE_SOLUTION, *sorted((REPO / "solutions").glob("*.ipynb"))]:
        nb = read_notebook(path)
        assert stale_nbgrader_cells(nb, path.name) == [], path
        stamped = [c for c in nb.cells if NBGRADER_KEY in c.metadata]
        assert stamped and len(stamped) % 2 == 0  # an answer and a check per exercise


def test_answer_ids_follow_the_next_check_cell():
    nb = _notebook(
        _answer(),  # 0: answers the check at 3
        nbformat.v4.new_markdown_cell("text"),
        _answer(f"{BEGIN_MARKER}\nx = 2\n{END_MARKER}"),  # 2: a second answer to the same check
        _check_cell("check_f(f)", "ex1.part-a", points=3),  # 3: '.' is not allowed in nbgrader ids
        nbformat.v4.new_code_cell("plain = 1", metadata={NBGRADER_KEY: {"grade": False, "solution": False,
                                                                        "locked": True, "grade_id": "old"}}),
        _answer(id="tail-cell"),  # 5: no check after it
    )
    blocks = nbgrader_blocks(nb, "lesson.ipynb")
    assert blocks == {
        0: _answer_block("ex1_part-a-answer"),
        2: _answer_block("ex1_part-a-answer-2"),
        3: _check_block("ex1_part-a", 3),
        5: _answer_block("answer-tail-cell"),
    }
    assert stale_nbgrader_cells(nb, "lesson.ipynb") == [0, 2, 3, 4, 5]
    stamped = stamp_nbgrader(nb, "lesson.ipynb")
    assert [c.metadata.get(NBGRADER_KEY) for c in stamped.cells] == [blocks.get(i) for i in range(6)]
    assert NBGRADER_KEY in nb.cells[4].metadata and NBGRADER_KEY not in nb.cells[0].metadata  # input untouched
    assert stale_nbgrader_cells(stamped, "lesson.ipynb") == []
    assert [c.source for c in stamped.cells] == [c.source for c in nb.cells]


@pytest.mark.parametrize(
    ("cells", "match"),
    [
        ([_check_cell("a", "ex1.a"), _check_cell("b", "ex1_a")], r"cell 1: its nbgrader grade_id 'ex1_a' .*also the grade_id of cell 0"),
        ([_answer(), _check_cell("a", "ex1"), _check_cell("b", "ex1-answer")], r"cell 2: .*'ex1-answer' .*cell 0 \(from the answer"),
    ],
)
def test_clashing_nbgrader_ids_are_an_error(cells, match):
    with pytest.raises(ExerciseFormatError, match=rf"lesson.ipynb, {match}"):
        nbgrader_blocks(_notebook(*cells), "lesson.ipynb")
    with pytest.raises(ExerciseFormatError, match="rename one of the exercises"):
        make_exercise(_notebook(*cells), "lesson.ipynb")


def test_exercise_keeps_the_nbgrader_blocks_of_the_cells_it_keeps():
    solution = read_notebook(FIXTURE_SOLUTION)
    exercise = nbformat.reads(render_exercise(FIXTURE_SOLUTION), as_version=4)
    assert [c.metadata.get(NBGRADER_KEY) for c in exercise.cells] == [c.metadata.get(NBGRADER_KEY) for c in solution.cells]


def test_check_reports_stale_nbgrader_metadata_and_build_stamps_it(course, capsys):
    sol, out = course / "solutions", course / "exercises"
    build(sol, out)
    nb = read_notebook(sol / "00_fixture.ipynb")
    del nb.cells[3].metadata[NBGRADER_KEY]  # missing
    nb.cells[7].metadata[NBGRADER_KEY]["points"] = 5  # stale: course.points says 2
    nb.cells[0].metadata[NBGRADER_KEY] = {"grade": False, "solution": False, "locked": True, "grade_id": "intro"}
    (sol / "00_fixture.ipynb").write_text(nbformat.writes(nb), encoding="utf-8")
    assert main(["check", "--solutions", str(sol), "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert f"nbgrader metadata missing or stale: {sol / '00_fixture.ipynb'} (cells 0, 3, 7)" in text
    assert "1 problem(s)" in text  # the exercise is rendered from the stamped solution: still current
    assert main(["build", "--solutions", str(sol), "--out", str(out)]) == 0
    assert "0 exercise notebook(s) written, 1 unchanged; 1 solution notebook(s) given fresh" in capsys.readouterr().out
    assert (sol / "00_fixture.ipynb").read_bytes() == FIXTURE_SOLUTION.read_bytes()
    assert check(sol, out) == [] and build(sol, out) == []
