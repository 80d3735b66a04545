"""The package's architecture, checked: layers written down (.importlinter), no import cycles, modules a
reader can hold in mind, and teacher tools that start without torch."""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "course_lib"
MAX_LINES = 900


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    return mods


def _import_graph() -> dict[str, set[str]]:
    """Module -> course_lib modules it imports, at any depth (imports inside functions count)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rsplit(".", 1)[0] if "." in t else ""
                # A module importing its own package's __init__ (for a re-export) is not an edge of the design.
                if t and t != m and not (mods[t].name == "__init__.py" and m.startswith(t + ".")):
                    graph[m].add(t)
                    break
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_no_import_cycles():
    assert _cycle(_import_graph()) is None, f"import cycle: {' -> '.join(_cycle(_import_graph()))}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_too_long_to_read():
    long = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them along a seam a learner would guess): {long}"


def test_every_module_has_a_place_in_the_layer_contract():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    layers = cfg["importlinter:contract:layers"]["layers"]
    placed = {name.strip() for line in layers.splitlines() for name in line.split("|") if name.strip()}
    top = {".".join(p.relative_to(ROOT).parts[:2]).removesuffix(".py") for p in PKG.glob("*")
           if (p.suffix == ".py" and p.name != "__init__.py") or (p.is_dir() and (p / "__init__.py").exists())}
    assert placed <= top, f"the contract names modules that do not exist: {placed - top}"
    assert top - placed == {"course_lib.tools"}, f"modules without a layer: {top - placed - {'course_lib.tools'}}"


TEACHER_COMMANDS = [
    ["course_lib.tools.exercises", "--help"],
    ["course_lib.tools.grade", "--help"],
    ["course_lib.tools.colab", "--help"],
]


@pytest.mark.parametrize("argv", TEACHER_COMMANDS, ids=lambda a: a[0])
def test_teacher_tools_start_without_torch(argv):
    code = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        f"    runpy.run_module({argv[0]!r}, run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert stop.code in (0, None), stop.code\n"
        "heavy = sorted(m for m in ('torch', 'torchaudio', 'diffusers', 'transformers', 'scipy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_checking_the_exercises_imports_no_torch():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['exercises', 'check']\n"
        "try:\n"
        "    runpy.run_module('course_lib.tools.exercises', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert stop.code in (0, None), stop.code\n"
        "assert 'torch' not in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
