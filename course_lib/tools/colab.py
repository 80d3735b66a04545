"""The course's address, and the parts of every notebook that depend on it.

``REPO`` below is the one place the repository address is written. The Open-in-Colab badges,
each notebook's setup cell and the README's lesson table are generated from it:

    python -m course_lib.tools.colab sync     # rewrite them after changing REPO or adding a notebook
    python -m course_lib.tools.colab check    # exit 1 if anything is out of date (a test runs this)

A fork changes ``REPO`` and runs ``sync``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

REPO = "generating-audio-course/course"
BRANCH = "main"

from course_lib.io import REPO_ROOT
NOTEBOOK_DIRS = ("notebooks", "solutions", "exercises")
SETUP_TAG = "setup"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
_BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
_TABLE_START = "<!-- lessons:start -->"
_TABLE_END = "<!-- lessons:end -->"


def repo_url() -> str:
    """The repository's web address."""
    return f"https://github.com/{REPO}"


def colab_url(relative_path: str) -> str:
    """The address that opens ``relative_path`` (e.g. ``notebooks/01_x.ipynb``) in Colab."""
    return f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/{relative_path}"


def badge(relative_path: str) -> str:
    """Markdown for an Open-in-Colab badge."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(relative_path)})"


def setup_cell_source() -> str:
    """The single setup cell every notebook starts with.

    In Colab it clones the course (for the notebooks' data and shipped checkpoints) and installs
    ``course_lib`` and the packages Colab lacks, keeping Colab's own torch. Anywhere else it only
    checks that ``course_lib`` is importable (``make lab`` installs everything).
    """
    return f'''# Setup. In Colab: install the course (about a minute; Colab's torch is kept).
# On a machine set up with `make lab` it only sets how torch's threads wait (before torch loads).
import os, sys
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle torch threads sleep, not spin: 4-10x faster on shared cores
if "google.colab" in sys.modules and not os.path.isdir("/content/course"):
    import subprocess
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", "{BRANCH}",
                    "{repo_url()}", "/content/course"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", "/content/course"], check=True)
if "google.colab" in sys.modules:
    sys.path.insert(0, "/content/course")
    os.chdir("/content/course/notebooks")
try:
    import course_lib
except ImportError as error:
    raise ImportError("course_lib is not installed: run `make lab` in the course folder "
                      "(or `pip install -e .` there), then restart the kernel.") from error'''


def _relative(path: Path) -> str:
    return path.resolve().relative_to(REPO_ROOT).as_posix()


def sync_notebook(path: Path, write: bool = True) -> bool:
    """Bring one notebook's badge and setup cell up to date; return True if it changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    rel = _relative(path)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and _BADGE_RE.search(cell.source):
            new = _BADGE_RE.sub(lambda _m: badge(rel), cell.source)
            if new != cell.source:
                cell.source, changed = new, True
            break
    for cell in nb.cells:
        if cell.cell_type == "code" and SETUP_TAG in cell.get("metadata", {}).get("tags", []):
            if cell.source != setup_cell_source():
                cell.source, changed = setup_cell_source(), True
            break
    if changed and write:
        nbformat.write(nb, path)
    return changed


def notebook_problems(path: Path) -> list[str]:
    """What a course notebook lacks: a title, a badge, a tagged setup cell."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    if not nb.cells or nb.cells[0].cell_type != "markdown" or not nb.cells[0].source.lstrip().startswith("# "):
        problems.append("the first cell should be markdown starting with '# Title'")
    if not any(c.cell_type == "markdown" and _BADGE_RE.search(c.source) for c in nb.cells[:2]):
        problems.append("no Open-in-Colab badge in the first cells")
    setup = [c for c in nb.cells if c.cell_type == "code" and SETUP_TAG in c.get("metadata", {}).get("tags", [])]
    if len(setup) != 1:
        problems.append(f"expected one code cell tagged '{SETUP_TAG}', found {len(setup)}")
    return problems


def lesson_notebooks(root: Path = REPO_ROOT) -> list[Path]:
    """The numbered lesson notebooks, in order."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _title(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0].source.strip().splitlines()[0] if nb.cells else path.stem
    return first.lstrip("# ").strip()


def lesson_table(root: Path = REPO_ROOT) -> str:
    """The README's lesson table, generated from the notebooks themselves."""
    rows = ["| # | Lesson | Open | Exercises |", "|---|---|---|---|"]
    for nb in lesson_notebooks(root):
        number = nb.name[:2]
        rel = f"notebooks/{nb.name}"
        ex = sorted((root / "exercises").glob(f"{number}_*.ipynb"))
        ex_cell = " · ".join(f"[{e.stem}](exercises/{e.name}) {badge(f'exercises/{e.name}')}" for e in ex) or "—"
        rows.append(f"| {number} | [{_title(nb)}]({rel}) | {badge(rel)} | {ex_cell} |")
    return "\n".join(rows)


def sync_readme(write: bool = True, root: Path = REPO_ROOT) -> bool:
    """Rewrite the lesson table between the README's markers; return True if it changed."""
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    if _TABLE_START not in text or _TABLE_END not in text:
        raise ValueError(f"README.md lacks the markers {_TABLE_START} … {_TABLE_END} around the lesson table.")
    head, rest = text.split(_TABLE_START, 1)
    _, tail = rest.split(_TABLE_END, 1)
    new = f"{head}{_TABLE_START}\n{lesson_table(root)}\n{_TABLE_END}{tail}"
    if new != text and write:
        readme.write_text(new, encoding="utf-8")
    return new != text


def all_notebooks(root: Path = REPO_ROOT) -> list[Path]:
    return sorted(p for d in NOTEBOOK_DIRS for p in (root / d).glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Keep badges, setup cells and the README table in sync with REPO.")
    parser.add_argument("action", choices=["sync", "check"])
    args = parser.parse_args(argv)
    write = args.action == "sync"
    stale = [_relative(p) for p in all_notebooks() if sync_notebook(p, write=write)]
    if sync_readme(write=write):
        stale.append("README.md")
    if write:
        print("updated: " + ", ".join(stale) if stale else "everything was up to date")
        return 0
    if stale:
        print("out of date (run `python -m course_lib.tools.colab sync`): " + ", ".join(stale))
        return 1
    print("badges, setup cells and the README lesson table are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
