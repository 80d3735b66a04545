"""The grader against an adversarial student: every way round it that was found once is a test here.

Each attack is the fixture exercise (tests/fixtures/exercises/00_fixture.ipynb) with one attack cell
added. They are graded in one run of ``python -m course_lib.tools.grade`` (a subprocess, as a teacher
runs it) on a private copy of ``course_lib``, so that the attacks that write into the checking code
on disk hit that copy and never the repository. Honest notebooks are graded right after the attacks
that would have spoiled them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from course_lib.tools import grade
from course_lib.tools.grade_flags import scan_source
from course_lib.tools.grade_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXERCISE = FIXTURES / "exercises" / "00_fixture.ipynb"
SOLUTION = FIXTURES / "solutions" / "00_fixture.ipynb"

FORGED = '{"notebooks": [], "total": {"notebooks": 1, "score": 999, "max_score": 999, "needs_review": 0}}'


def _with_cell(base: Path, source: str, before: str | None = None, at: int = 2) -> nbformat.NotebookNode:
    """``base`` with a code cell holding ``source`` inserted at ``at`` (or just before the check cell ``before``)."""
    nb = nbformat.read(base, as_version=4)
    if before is not None:
        at = next(i for i, c in enumerate(nb.cells) if c.metadata.get("course", {}).get("exercise") == before)
    nb.cells.insert(at, nbformat.v4.new_code_cell(textwrap.dedent(source).strip() + "\n"))
    return nb


def _attacks(course: Path, reference: Path, submissions: Path) -> dict[str, nbformat.NotebookNode]:
    lesson01 = course / "course_lib" / "checks" / "lesson01.py"
    return {
        # importlib.reload disabled, then the check functions replaced everywhere; every answer wrong.
        "01_reload": _with_cell(EXERCISE, """
            import importlib, course_lib.checks as C, course_lib.checks.lesson01 as L1
            importlib.reload = lambda m: m
            def _anything(fn):
                return None
            for module in (C, L1):
                module.check_playback = module.check_denormalise = _anything
            check_playback = check_denormalise = _anything
        """),
        # An input transformer that turns every later cell (the check cells too) into `pass`.
        "02_transformer": _with_cell(EXERCISE, """
            get_ipython().input_transformers_post.append(lambda lines: ["pass\\n"])
        """),
        # Overrides appended to the checks module on disk: the kernel's copy and the course's own.
        "03_disk_checks": _with_cell(EXERCISE, f"""
            import pathlib, course_lib.checks.lesson01 as L1
            override = "\\ndef check_playback(fn):\\n    return None\\n\\ndef check_denormalise(fn):\\n    return None\\n"
            for target in {{pathlib.Path(L1.__file__), pathlib.Path({str(lesson01)!r})}}:
                with open(target, "a") as f:
                    f.write(override)
        """),
        "04_stub_after_disk": nbformat.read(EXERCISE, as_version=4),
        # The reference notebook's check cells turned into `pass`: the released one and any copy nearby.
        "05_edit_reference": _with_cell(EXERCISE, f"""
            import glob, json, os
            for path in [{str(reference / EXERCISE.name)!r}, *glob.glob(os.path.join(os.getcwd(), "..", "..", "*", "*.ipynb"))]:
                nb = json.load(open(path))
                for cell in nb["cells"]:
                    if "check" in cell["metadata"].get("tags", []):
                        cell["source"] = "pass"
                json.dump(nb, open(path, "w"))
        """),
        "06_stub_after_reference": nbformat.read(EXERCISE, as_version=4),
        # The solution, but the kernel kills its parent (the old grader itself) after the first check.
        "07_kill_parent": _with_cell(SOLUTION, """
            import os, signal
            os.kill(os.getppid(), signal.SIGKILL)
        """, before="ex2-denormalise"),
        # Every notebook found through the parent folders, and the submissions folder, overwritten.
        "08_overwrite_others": _with_cell(EXERCISE, f"""
            import glob, os
            folders = {{os.path.dirname(os.getcwd()), os.path.dirname(os.path.dirname(os.getcwd())), {str(submissions)!r}}}
            for folder in folders:
                for path in glob.glob(os.path.join(folder, "**", "*.ipynb"), recursive=True):
                    if "08_overwrite_others" not in path:
                        open(path, "w").write("overwritten")
        """),
        "09_victim": nbformat.read(SOLUTION, as_version=4),
        # Fake marks written to file descriptor 1, and to fd 1 of every ancestor reachable through /proc
        # (the grader is not dumpable, so only root may open its files there: see the README).
        "10_fd1": _with_cell(EXERCISE, f"""
            import os
            os.write(1, {FORGED!r}.encode() + b"\\n")
            pid = os.getppid() if os.geteuid() != 0 else 1  # root may open any process's files
            while pid > 1:
                try:
                    with open(f"/proc/{{pid}}/fd/1", "w") as f:
                        f.write({FORGED!r} + "\\n")
                except OSError:
                    pass
                pid = int(open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[1])
        """),
        # A detached process (double fork, new session) that rewrites marks.json once the grader has gone.
        "11_detached_rewriter": _with_cell(EXERCISE, f"""
            import os, time
            target = grader = None
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    args = open(f"/proc/{{pid}}/cmdline", "rb").read().split(b"\\0")
                except OSError:
                    continue
                if b"course_lib.tools.grade" in args and b"--out" in args:
                    grader, target = int(pid), args[args.index(b"--out") + 1].decode()
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    while os.path.exists(f"/proc/{{grader}}"):
                        time.sleep(0.05)
                    with open(target, "w") as f:
                        f.write({FORGED!r})
                    os._exit(0)
                os._exit(0)
            os.wait()
        """),
        # Answers that call the checker's own reference function.
        "12_private_reference": _with_cell(EXERCISE, """
            from course_lib.checks.lesson01 import _denorm_ref
            def denormalise(norm, original_min, original_max, min_val=0.0, max_val=1.0):
                return _denorm_ref(norm, original_min, original_max, min_val, max_val)
        """, before="ex2-denormalise"),
    }


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """One grading run (a subprocess, --json and --out) over every attack and the honest notebooks after them."""
    tmp = tmp_path_factory.mktemp("attacks")
    course = tmp / "course"
    shutil.copytree(ROOT / "course_lib", course / "course_lib", ignore=shutil.ignore_patterns("__pycache__"))
    reference = tmp / "reference"
    reference.mkdir()
    shutil.copy(EXERCISE, reference)
    submissions = tmp / "submissions"
    for who, nb in _attacks(course, reference, submissions).items():
        (submissions / who).mkdir(parents=True)
        nbformat.write(nb, submissions / who / EXERCISE.name)
    pristine_lesson01 = (course / "course_lib" / "checks" / "lesson01.py").read_bytes()
    out = tmp / "marks" / "marks.json"
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_PROFILE", "PYTHONPATH")}
    run = subprocess.run(
        [sys.executable, "-m", "course_lib.tools.grade", str(submissions), "--json", "--out", str(out),
         "--reference", str(reference), "--timeout", "60"],
        cwd=course, env=env, capture_output=True, text=True, timeout=600,
    )
    time.sleep(2)  # room for a surviving rewriter to strike (it waits for the grader to be gone)
    return {"run": run, "out": out, "course": course, "reference": reference, "submissions": submissions,
            "pristine_lesson01": pristine_lesson01}


def _payload(attacked) -> dict:
    run = attacked["run"]
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)  # fails if anything but the grader's JSON reached stdout


def _report(attacked, who: str) -> dict:
    (found,) = [r for r in _payload(attacked)["notebooks"] if f"/{who}/" in r["path"]]
    return found


def _flagged(report: dict, *words: str) -> bool:
    return report["needs_review"] and any(all(w in f for w in words) for f in report["flags"])


def test_every_notebook_is_graded_and_stdout_is_only_the_marks(attacked):
    payload = _payload(attacked)
    assert [Path(r["path"]).parent.name for r in payload["notebooks"]] == sorted(
        p.name for p in attacked["submissions"].iterdir())
    assert payload["total"]["score"] == 0 + 0 + 0 + 0 + 0 + 0 + 1 + 0 + 3 + 0 + 0 + 2
    assert "999" not in attacked["run"].stdout


def test_patched_reload_and_replaced_checks_do_not_pass(attacked):
    report = _report(attacked, "01_reload")
    assert report["score"] == 0
    assert all("not answered yet" in e["detail"] for e in report["exercises"])
    assert _flagged(report, "importlib") and _flagged(report, "check_playback")


def test_input_transformer_does_not_skip_the_checks(attacked):
    report = _report(attacked, "02_transformer")
    assert report["score"] == 0
    assert _flagged(report, "input_transformers_post")


def test_checks_overwritten_on_disk_count_for_nothing_and_spoil_nobody(attacked):
    attacker = _report(attacked, "03_disk_checks")
    assert attacker["score"] == 0
    assert _flagged(attacker, "private checking code", "course_lib/checks/lesson01.py")
    assert _flagged(attacker, "on disk", str(attacked["course"] / "course_lib" / "checks" / "lesson01.py"))
    assert _flagged(attacker, "__file__")
    stub = _report(attacked, "04_stub_after_disk")
    assert stub["score"] == 0 and stub["flags"] == [] and stub["notes"] == []
    assert all("not answered yet" in e["detail"] for e in stub["exercises"])
    # The course's own file was hit (the grader does not write into it), its private copy was not used.
    assert (attacked["course"] / "course_lib" / "checks" / "lesson01.py").read_bytes() != attacked["pristine_lesson01"]


def test_edited_reference_does_not_change_the_next_grading(attacked):
    attacker = _report(attacked, "05_edit_reference")
    assert attacker["score"] == 0
    assert _flagged(attacker, "reference notebooks on disk")
    assert _flagged(attacker, "private checking code or reference", "reference/00_fixture.ipynb")
    stub = _report(attacked, "06_stub_after_reference")
    assert stub["score"] == 0 and stub["max_score"] == 3
    assert stub["notes"] == [] and stub["flags"] == []  # no "restored ... modified check cells"


def test_killing_the_parent_stops_only_that_notebook(attacked):
    report = _report(attacked, "07_kill_parent")
    ex1, ex2 = report["exercises"]
    assert ex1["passed"] and not ex2["passed"] and ex2["detail"] == "check cell did not run"
    assert any("killed by the submission" in n for n in report["notes"])
    assert _flagged(report, "killed the grading process") and _flagged(report, "os.kill")
    later = _report(attacked, "09_victim")
    assert later["status"] == "graded"


def test_overwriting_other_submissions_does_not_change_their_marks(attacked):
    victim = _report(attacked, "09_victim")
    assert victim["status"] == "graded" and victim["score"] == victim["max_score"] == 3
    attacker = _report(attacked, "08_overwrite_others")
    assert _flagged(attacker, "changed other submitted notebooks", "01_reload")
    assert (attacked["submissions"] / "09_victim" / EXERCISE.name).read_text() == "overwritten"  # the original was hit


def test_fake_json_on_fd1_does_not_reach_the_marks(attacked):
    report = _report(attacked, "10_fd1")
    assert report["score"] == 0 and report["status"] == "graded"
    assert _flagged(report, "/proc")


def test_detached_rewriter_is_killed_and_out_holds_the_true_marks(attacked):
    report = _report(attacked, "11_detached_rewriter")
    assert report["score"] == 0 and _flagged(report, "os.setsid")
    written = json.loads(attacked["out"].read_text())
    assert written == _payload(attacked)
    assert written["total"]["score"] != 999


def test_calling_the_private_reference_is_flagged(attacked):
    report = _report(attacked, "12_private_reference")
    assert [e["passed"] for e in report["exercises"]] == [False, True]  # it works: a human has to see it
    assert _flagged(report, "imports the checking code", "_denorm_ref")


def test_table_shows_the_flags(tmp_path):
    nb = _with_cell(EXERCISE, "import importlib\nimportlib.reload = lambda m: m")
    nbformat.write(nb, tmp_path / EXERCISE.name)
    report = grade.grade_notebook(tmp_path / EXERCISE.name, FIXTURES / "exercises", timeout=60)
    text = grade.format_table([report])
    assert "NEEDS A HUMAN LOOK:" in text and "changes importlib.reload" in text
    assert "(needs a human look)" not in text  # the per-notebook summary appears for 2+ notebooks only
    assert report.score == 0 and report.to_dict()["needs_review"] is True


def test_kernel_ignoring_the_interrupt_is_stopped(tmp_path):
    nb = _with_cell(SOLUTION, """
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            pass
    """)
    nbformat.write(nb, tmp_path / EXERCISE.name)
    report = grade.grade_notebook(tmp_path / EXERCISE.name, FIXTURES / "exercises", timeout=2, total_timeout=300)
    assert any("ignored the interrupt" in n and "later cells were not run" in n for n in report.notes)
    assert [e.detail for e in report.exercises] == ["check cell did not run"] * 2
    assert report.needs_review  # it imports signal


def test_flags_name_the_machinery_and_leave_ordinary_code_alone():
    aliases = {"np": "numpy", "os": "os", "torch": "torch", "plt": "matplotlib.pyplot", "importlib": "importlib"}
    def flags(src: str) -> list[str]:
        return scan_source(src, "cell 3", aliases, {"check_playback"})

    for ordinary in ("x = np.mean([1, 2])", "torch.backends.cudnn.benchmark = True", "!pip install soundfile",
                     "from IPython.display import Audio", "plt.rcParams['figure.dpi'] = 80", "%matplotlib inline",
                     "from course_lib.checks import check_playback", "def playback(n, a, b):\n    return n / b"):
        assert flags(ordinary) == [], ordinary
    assert flags("np.allclose = lambda *a, **k: True") == [
        "cell 3, line 1: changes np.allclose (an attribute of the imported module numpy)"]
    assert flags("%time importlib.reload = lambda m: m") == [
        "cell 3, line 1: changes importlib.reload (an attribute of the imported module importlib)"]
    assert flags("x = 1\ndef check_playback(fn):\n    pass") == ["cell 3, line 2: defines check_playback, the name of a check"]
    assert any("sys.modules" in f for f in flags("import sys\nsys.modules['course_lib.checks'] = None"))
    assert any("builtins" in f for f in flags("import builtins\nbuiltins.print = None"))
    assert any("shell command" in f for f in flags("!rm -rf ../*"))
    assert any("register_magic_function" in f for f in flags("get_ipython().register_magic_function(f)"))
    assert any(".events" in f for f in flags("get_ipython().events.register('pre_run_cell', f)"))
    assert any("__builtins__" in f for f in flags("__builtins__['len'] = lambda x: 0"))


def test_snapshot_leaves_out_modules_that_would_hide_installed_ones(tmp_path):
    (tmp_path / "numpy.py").write_text("allclose = lambda *a, **k: True\n")
    (tmp_path / "course_lib").mkdir()
    (tmp_path / "course_lib" / "__init__.py").write_text("")
    (tmp_path / "my_helpers.py").write_text("X = 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "clip.txt").write_text("a clip")
    shutil.copy(EXERCISE, tmp_path / EXERCISE.name)
    with Sandbox([tmp_path / EXERCISE.name], None) as box:
        (sub,) = box.submissions
        assert sorted(sub.files) == ["data/clip.txt", "my_helpers.py"]
        assert (sub.folder / "my_helpers.py").read_text() == "X = 1\n"
        assert "numpy.py" in sub.notes[0] and "course_lib/__init__.py" in sub.notes[0]
        assert sub.data == EXERCISE.read_bytes()
        assert box.verify_private() == []
        (box.lib_root / "sitecustomize.py").write_text("import os\n")
        (box.lib_root / "course_lib" / "checks" / "harness.py").write_text("broken")
        assert box.verify_private() == ["course_lib/checks/harness.py", "sitecustomize.py"]
        assert not (box.lib_root / "sitecustomize.py").exists()
        assert (box.lib_root / "course_lib" / "checks" / "harness.py").read_bytes() == box.lib_files["checks/harness.py"]
