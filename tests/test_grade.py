"""Tests for course_lib.tools.grade: full marks for the solution, 0 for the stub, tampering undone, bad files reported.

Each graded notebook starts a kernel (about 1-3 s), so the notebooks are graded in as few runs as possible.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import pytest

from course_lib.tools import grade
from course_lib.tools.grade import ExerciseResult, NotebookReport, collect_notebooks, format_table, main
from course_lib.validate import CourseInputError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_SOLUTION = FIXTURES / "solutions" / "00_fixture.ipynb"
FIXTURE_EXERCISE = FIXTURES / "exercises" / "00_fixture.ipynb"
REFERENCE = FIXTURES / "exercises"


def _tampered(path: Path) -> None:
    """An untouched exercise whose learner edited a check cell and deleted the other one."""
    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        if cell.metadata.get("course", {}).get("exercise") == "ex1-playback":
            cell.source = "print('all good')  # tampered: would pass if kept"
            nb.cells.insert(index, nbformat.v4.new_code_cell("def check_playback(fn):\n    pass", id="sneaky"))
            break
    nb.cells = [c for c in nb.cells if c.metadata.get("course", {}).get("exercise") != "ex2-denormalise"]
    nbformat.write(nb, path)


def _environment_probe(path: Path) -> None:
    """A notebook without a reference that checks the kernel's profile and working directory."""
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import os\nfrom pathlib import Path"),
            nbformat.v4.new_code_cell(
                "assert os.environ['COURSE_PROFILE'] == 'quick'",
                metadata={"tags": ["check"], "course": {"exercise": "profile"}},
            ),
            nbformat.v4.new_code_cell(
                "assert Path('data.txt').read_text() == 'here'",
                metadata={"tags": ["check"], "course": {"exercise": "cwd", "points": 3}},
            ),
            nbformat.v4.new_code_cell(
                "assert False, 'this one fails'",
                metadata={"tags": ["check"], "course": {"exercise": "failing"}},
            ),
        ]
    )
    nbformat.write(nb, path)
    (path.parent / "data.txt").write_text("here")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One grading run (JSON) over a folder of submissions."""
    root = tmp_path_factory.mktemp("submissions")
    for who, source in (("alice", FIXTURE_SOLUTION), ("bob", FIXTURE_EXERCISE), ("carol", FIXTURE_EXERCISE)):
        (root / who).mkdir()
        shutil.copy(source, root / who / "00_fixture.ipynb")
    _tampered(root / "carol" / "00_fixture.ipynb")
    (root / "dave").mkdir()
    (root / "dave" / "00_fixture.ipynb").write_text('{"cells": [', encoding="utf-8")
    (root / "erin").mkdir()
    _environment_probe(root / "erin" / "probe.ipynb")
    (root / "alice" / ".ipynb_checkpoints").mkdir()
    shutil.copy(FIXTURE_EXERCISE, root / "alice" / ".ipynb_checkpoints" / "00_fixture-checkpoint.ipynb")
    return root


@pytest.fixture(scope="module")
def result(graded):
    mp = pytest.MonkeyPatch()
    mp.delenv("COURSE_PROFILE", raising=False)
    try:
        buffer = io.StringIO()
        with redirect_stdout(buffer):
            code = main([str(graded), "--json", "--reference", str(REFERENCE), "--timeout", "60"])
    finally:
        mp.undo()
    return code, json.loads(buffer.getvalue())


def _report(payload: dict, who: str) -> dict:
    (found,) = [r for r in payload["notebooks"] if f"/{who}/" in r["path"]]
    return found


def test_exit_code_and_totals(result):
    code, payload = result
    assert code == 0
    assert [Path(r["path"]).parent.name for r in payload["notebooks"]] == ["alice", "bob", "carol", "dave", "erin"]
    assert payload["total"] == {
        "notebooks": 5, "score": 3 + 0 + 0 + 0 + 4, "max_score": 3 + 3 + 3 + 3 + 5, "needs_review": 1,  # carol
    }


def test_solution_gets_full_marks(result):
    alice = _report(result[1], "alice")
    assert alice["status"] == "graded"
    assert alice["reference"] == str(REFERENCE / "00_fixture.ipynb")
    assert [(e["exercise"], e["points"], e["max_points"], e["passed"]) for e in alice["exercises"]] == [
        ("ex1-playback", 1, 1, True),
        ("ex2-denormalise", 2, 2, True),
    ]
    assert alice["notes"] == [] and alice["flags"] == [] and alice["needs_review"] is False


def test_untouched_exercise_gets_zero(result):
    bob = _report(result[1], "bob")
    assert bob["status"] == "graded" and bob["score"] == 0 and bob["max_score"] == 3
    for e in bob["exercises"]:
        assert not e["passed"]
        assert e["detail"].startswith("ExerciseFailed: ❌") and "not answered yet" in e["detail"]


def test_tampered_check_cell_is_restored(result):
    carol = _report(result[1], "carol")
    ex1, ex2 = carol["exercises"]
    assert not ex1["passed"] and "not answered yet" in ex1["detail"]  # the real check ran, not the redefined one
    assert not ex2["passed"] and "check cell missing" in ex2["detail"]
    assert any("restored 1 modified check cell(s) from the reference: ex1-playback" in n for n in carol["notes"])
    assert carol["needs_review"] and carol["flags"] == ["cell 4, line 1: defines check_playback, the name of a check"]


def test_unparsable_notebook_gets_a_row(result):
    dave = _report(result[1], "dave")
    assert dave["status"] == "unreadable"
    assert "cannot be parsed as a notebook" in dave["notes"][0]
    assert dave["score"] == 0 and dave["max_score"] == 3  # the reference's exercises, all failed


def test_no_reference_profile_and_cwd(result):
    erin = _report(result[1], "erin")
    assert erin["reference"] is None
    assert any("graded as is" in n for n in erin["notes"])
    assert [(e["exercise"], e["passed"]) for e in erin["exercises"]] == [("profile", True), ("cwd", True), ("failing", False)]
    assert erin["exercises"][2]["detail"] == "AssertionError: this one fails"
    assert erin["score"] == 4 and erin["max_score"] == 5


def test_checkpoints_are_skipped(graded):
    found = collect_notebooks([graded])
    assert not any(".ipynb_checkpoints" in p.parts for p in found)
    assert len(found) == 5


def test_cell_timeout_is_interrupted_and_grading_goes_on(tmp_path, capsys):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("import time\ntime.sleep(120)"),
            nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["check"], "course": {"exercise": "after"}}),
            nbformat.v4.new_code_cell("time.sleep(120)", metadata={"tags": ["check"], "course": {"exercise": "slow"}}),
        ]
    )
    path = tmp_path / "slow.ipynb"
    nbformat.write(nb, path)
    report = grade.grade_notebook(path, None, timeout=4, total_timeout=120, profile="quick")
    assert [(e.exercise, e.passed) for e in report.exercises] == [("after", True), ("slow", False)]
    assert report.exercises[1].detail.startswith("CellTimeout")


def test_text_table_for_an_unreadable_file(tmp_path, capsys):
    bad = tmp_path / "broken.ipynb"
    bad.write_bytes(b"\x00\x01 not a notebook")
    assert main([str(bad), "--reference", str(REFERENCE)]) == 0
    out = capsys.readouterr().out
    assert f"== {bad}  [unreadable]" in out
    assert "cannot be parsed as a notebook" in out
    assert "1 notebook(s) graded: 0/0 points in total" in out


def test_format_table():
    reports = [
        NotebookReport("a.ipynb", "graded", "ref/a.ipynb", ["a note"], [ExerciseResult("ex1", 1, 1, True, ""), ExerciseResult("ex2", 0, 2, False, "ExerciseFailed: ❌ nope")]),
        NotebookReport("b.ipynb", "unreadable", None, ["cannot be parsed as a notebook: x"], []),
    ]
    text = format_table(reports)
    assert re.search(r"^   ex1 +1/1  pass$", text, re.M)
    assert re.search(r"^   ex2 +0/2  FAIL  ExerciseFailed: ❌ nope$", text, re.M)
    assert re.search(r"^   total +1/3$", text, re.M)
    assert "   note: a note" in text
    assert "2 notebook(s) graded: 1/3 points in total" in text
    assert reports[0].to_dict()["score"] == 1 and reports[0].to_dict()["max_score"] == 3


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main([]) == 2
    assert main([str(tmp_path / "missing.ipynb")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2  # empty folder: nothing to grade
    assert "no .ipynb notebooks found" in capsys.readouterr().err
    shutil.copy(FIXTURE_SOLUTION, tmp_path / "00_fixture.ipynb")
    assert main([str(tmp_path), "--timeout", "0"]) == 2
    assert main([str(tmp_path), "--reference", str(tmp_path / "nope")]) == 2
    assert main([str(tmp_path), "--profile", "slow"]) == 2
    with pytest.raises(CourseInputError, match="timeout"):
        grade.grade_notebook(tmp_path / "00_fixture.ipynb", timeout=-1)
    with pytest.raises(CourseInputError, match="profile"):
        grade.grade_notebook(tmp_path / "00_fixture.ipynb", profile="medium")


def test_default_reference_is_the_repo_exercises_folder():
    folder = grade.default_reference_dir()
    assert folder is None or (folder.name == "exercises" and folder.parent == Path(grade.__file__).resolve().parents[2])


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to list the grader's processes")
def test_ctrl_c_stops_grading_cleanly_and_leaves_no_process(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import time\ntime.sleep(120)"),
        nbformat.v4.new_code_cell("pass", metadata={"tags": ["check"], "course": {"exercise": "x"}}),
    ])
    nbformat.write(nb, tmp_path / "slow.ipynb")
    out = tmp_path / "marks.json"
    proc = subprocess.Popen([sys.executable, "-m", "course_lib.tools.grade", str(tmp_path / "slow.ipynb"),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(_descendants(proc.pid)) < 2 and time.monotonic() < deadline:  # the worker and its kernel
        time.sleep(0.2)
    below = _descendants(proc.pid)
    assert len(below) >= 2, "the grader never started a worker and a kernel"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists()
    time.sleep(0.5)
    alive = [p for p in below if Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    assert not alive, f"processes left running after Ctrl-C: {alive}"
