"""The repository address lives in one place; badges, setup cells and the README table follow it."""

import subprocess
import sys
from pathlib import Path

import nbformat

from course_lib.tools import colab

ROOT = colab.REPO_ROOT


def test_everything_is_in_sync_with_repo():
    result = subprocess.run([sys.executable, "-m", "course_lib.tools.colab", "check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_address_is_written_in_one_place():
    """Outside course_lib/tools/colab.py the address only appears in files generated from it."""
    generated = {"README.md"} | {p.relative_to(ROOT).as_posix() for p in colab.all_notebooks()}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for rel in tracked:
        if rel in generated or rel == "course_lib/tools/colab.py" or not Path(ROOT, rel).is_file():
            continue
        text = Path(ROOT, rel).read_text(encoding="utf-8", errors="ignore")
        assert colab.REPO not in text, f"{rel} repeats the repository address; take it from course_lib.tools.colab"


def test_every_course_notebook_has_title_badge_and_one_setup_cell():
    notebooks = colab.all_notebooks()
    assert notebooks, "no notebooks found"
    for path in notebooks:
        assert colab.notebook_problems(path) == [], path


def test_setup_cell_is_valid_python_and_does_nothing_outside_colab():
    source = colab.setup_cell_source()
    compile(source, "setup", "exec")
    namespace: dict = {}
    exec(source, namespace)  # outside Colab: only imports course_lib
    assert "subprocess" not in namespace
    assert "torch" not in source.split("pip")[-1]  # never reinstalls Colab's torch


def test_sync_rewrites_a_stale_badge_and_setup_cell(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A lesson\n\n[![Open In Colab](x.svg)](https://example.org/old)"),
        nbformat.v4.new_code_cell("print('old setup')", metadata={"tags": ["setup"]}),
    ]
    (tmp_path / "notebooks").mkdir()
    path = tmp_path / "notebooks" / "09_demo.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setattr(colab, "REPO_ROOT", tmp_path)
    assert colab.sync_notebook(path) is True
    assert colab.sync_notebook(path) is False
    again = nbformat.read(path, as_version=4)
    assert colab.colab_url("notebooks/09_demo.ipynb") in again.cells[0].source
    assert again.cells[1].source == colab.setup_cell_source()
    assert "09 | [A lesson]" in colab.lesson_table(tmp_path)


def test_setup_cell_makes_torch_threads_wait_passively_before_anything_loads_torch():
    code = (
        "import os, sys\n"
        "os.environ.pop('OMP_WAIT_POLICY', None)\n"
        f"exec(compile({colab.setup_cell_source()!r}, 'setup', 'exec'))\n"
        "assert os.environ['OMP_WAIT_POLICY'] == 'PASSIVE'\n"
        "assert 'torch' not in sys.modules  # still unloaded: OpenMP reads the policy when torch starts\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
