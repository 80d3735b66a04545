"""Spot answer cells that reach for the grading machinery, so that a human looks at them.

Code in the learner's kernel can do anything its user can; the grader runs the checks so that the
usual ways round them fail (:mod:`course_lib.tools.grade_worker`), and this module reads the
submission's own code (the answer cells: not the check cells, not cells left as released) and
names every line that touches what the checks rely on:

- the import system and the interpreter's insides: ``importlib``, ``sys.modules``/``meta_path``,
  ``__import__``, ``builtins``/``__builtins__``, ``gc``, ``ctypes``, frames and function internals
  (``__code__``, ``__globals__``, ``f_back`` ...), ``exec``/``eval``/``compile``;
- the kernel's hooks: ``get_ipython()`` (input transformers, events, magics ...), magics other than
  ``%matplotlib``/``%time``/``%timeit``/``%%capture`` (whose code is read too), shell commands other
  than ``pip install``;
- the checking code: importing ``course_lib.checks`` modules or their private ``_`` names,
  redefining a check's name, changing an attribute of any imported module (monkeypatching);
- other processes: ``os.kill``/``killpg``/``getppid``/``setsid``/``fork``, ``signal``,
  ``subprocess``, threads, ``/proc``;
- files the grader reads: strings naming ``course_lib`` or a ``.ipynb`` notebook.

A flag is not a verdict: the message names the cell and line, and the teacher decides.
"""

from __future__ import annotations

import ast
import re
from typing import Iterable

__all__ = ["scan_cells", "scan_source"]

SUSPECT_MODULES = {
    "importlib": "the import system",
    "imp": "the import system",
    "builtins": "Python's builtins",
    "__builtin__": "Python's builtins",
    "ctypes": "raw memory and C calls",
    "gc": "every object in the kernel",
    "signal": "signals",
    "subprocess": "other processes",
    "pty": "other processes",
    "threading": "threads running beside the checks",
    "_thread": "threads running beside the checks",
    "ipykernel": "the kernel's insides",
    "IPython.core": "the kernel's insides",
    "jupyter_client": "the kernel's insides",
}
SUSPECT_NAMES = {
    "__import__": "imports through __import__",
    "__builtins__": "touches __builtins__",
    "get_ipython": "uses get_ipython() (input transformers, events, magics: the kernel's hooks)",
    "exec": "runs code from a string (exec)",
    "eval": "runs code from a string (eval)",
    "compile": "compiles code from a string",
    "globals": "reaches the notebook's namespace through globals()",
}
SUSPECT_ATTRIBUTES = {
    "__code__", "__globals__", "__closure__", "__defaults__", "__kwdefaults__", "__file__", "__path__", "__spec__",
    "__loader__", "__builtins__", "__subclasses__", "__bases__", "__mro__", "f_globals", "f_locals", "f_back",
    "f_builtins", "tb_frame", "gi_frame", "cr_frame", "input_transformers_cleanup", "input_transformers_post",
    "input_transformer_manager", "ast_transformers", "events", "register_magic_function", "register_magics",
    "user_expressions", "set_custom_exc",
}
MODULE_CALLS = {
    "sys": {"modules", "meta_path", "path_hooks", "path_importer_cache", "settrace", "setprofile", "_getframe",
            "addaudithook", "stdout", "__stdout__"},
    "os": {"kill", "killpg", "getppid", "setsid", "setpgrp", "setpgid", "fork", "forkpty", "daemon", "system",
           "popen", "posix_spawn", "posix_spawnp", "execv", "execve", "execl", "execlp", "execvp", "execvpe",
           "spawnv", "spawnl", "spawnve", "spawnlp", "dup2", "_exit", "pidfd_open"},
}
ALLOWED_MAGICS = {"matplotlib", "time", "timeit", "capture", "%capture", "%time", "%timeit"}
# Attribute assignments on these module paths are ordinary configuration, not monkeypatching.
ALLOWED_SETTINGS = ("torch.backends.", "np.set_printoptions", "plt.rcParams", "matplotlib.rcParams", "pd.options.")
PIP_INSTALL = re.compile(r"^\s*(pip3?|python3? -m pip|\S*python\S* -m pip)\s+install\b")


def _ipython_to_python(source: str) -> str:
    """IPython syntax (magics, ``!shell``) as plain Python calls, when IPython is there to translate."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython comes with the kernel the grader needs
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:
        return source


class _Scanner(ast.NodeVisitor):
    def __init__(self, where: str, aliases: dict[str, str], check_names: set[str], out: list[str]) -> None:
        self.where, self.aliases, self.check_names, self.out = where, aliases, check_names, out
        self.line_offset = 0

    def flag(self, node: ast.AST, what: str) -> None:
        line = getattr(node, "lineno", 0) + self.line_offset
        message = f"{self.where}, line {line}: {what}"
        if message not in self.out:
            self.out.append(message)

    # -- what names and dotted paths mean
    def dotted(self, node: ast.AST) -> str | None:
        """``np.linalg.norm`` with the alias resolved (``numpy.linalg.norm``), or None."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        base = self.aliases.get(node.id, node.id)
        return ".".join([base, *reversed(parts)])

    def root_module(self, node: ast.AST) -> str | None:
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        return self.aliases.get(node.id) if isinstance(node, ast.Name) else None

    # -- imports
    def _module(self, node: ast.AST, module: str, names: Iterable[str]) -> None:
        for prefix, why in SUSPECT_MODULES.items():
            if module == prefix or module.startswith(prefix + "."):
                self.flag(node, f"imports {module} ({why})")
        if module.startswith("course_lib.checks") or (module == "course_lib" and "checks" in names):
            private = [n for n in names if n.startswith("_") or n == "*"]
            if isinstance(node, ast.Import) or private or module.count(".") > 1:
                self.flag(node, f"imports the checking code ({module}{': ' + ', '.join(private) if private else ''})")
        elif module.startswith("course_lib") and any(n.startswith("_") for n in names):
            self.flag(node, f"imports private names from {module}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._module(node, alias.name, [])
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = [a.name for a in node.names]
        self._module(node, node.module or "", names)
        if node.module in MODULE_CALLS:
            for name in names:
                if name in MODULE_CALLS[node.module]:
                    self.flag(node, f"imports {node.module}.{name}")
        self.generic_visit(node)

    # -- names, attributes, calls
    def visit_Name(self, node: ast.Name) -> None:
        if node.id in SUSPECT_NAMES and node.id not in self.aliases:
            self.flag(node, SUSPECT_NAMES[node.id])
        if isinstance(node.ctx, (ast.Store, ast.Del)) and node.id in self.check_names:
            self.flag(node, f"assigns {node.id}, the name of a check")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        path = self.dotted(node)
        if node.attr in SUSPECT_ATTRIBUTES:
            self.flag(node, f"uses .{node.attr} ({path or ast.unparse(node)})")
        if path:
            base, _, rest = path.rpartition(".")
            if base in MODULE_CALLS and rest in MODULE_CALLS[base]:
                self.flag(node, f"uses {path}")
            if path.startswith("course_lib.checks") and rest.startswith("_") and not rest.endswith("__"):
                self.flag(node, f"uses the checker's private {path}")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            root = self.root_module(node)
            if root is not None and not (path or "").startswith(ALLOWED_SETTINGS) and \
                    not ast.unparse(node).startswith(ALLOWED_SETTINGS):
                self.flag(node, f"changes {ast.unparse(node)} (an attribute of the imported module {root})")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("setattr", "delattr") and node.args:
            root = self.root_module(node.args[0])
            if root is not None:
                self.flag(node, f"{func.id}() on the imported module {root}")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) and \
                isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython" and \
                func.attr in ("run_line_magic", "run_cell_magic", "system", "getoutput"):
            self._magic(node, func.attr)
            return
        self.generic_visit(node)

    def _magic(self, node: ast.Call, kind: str) -> None:
        args = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args]
        if kind in ("system", "getoutput"):
            command = args[0] if args else None
            if command is None or not PIP_INSTALL.match(command):
                self.flag(node, f"runs a shell command ({command!r})")
            return
        name = (args[0] or "?") if args else "?"
        if name not in ALLOWED_MAGICS:
            self.flag(node, f"uses the %{name.lstrip('%')} magic")
            return
        code = args[-1] if len(args) >= 2 else None
        if code and name.lstrip("%") in ("time", "timeit", "capture"):
            self._nested(node, code)

    def _nested(self, node: ast.AST, code: str) -> None:
        try:
            tree = ast.parse(_ipython_to_python(code))
        except SyntaxError:
            return
        saved = self.line_offset
        self.line_offset += getattr(node, "lineno", 1) - 1
        for child in tree.body:
            self.visit(child)
        self.line_offset = saved

    def _defines(self, node: ast.AST, name: str) -> None:
        if name in self.check_names:
            self.flag(node, f"defines {name}, the name of a check")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._defines(node, node.name)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._defines(node, node.name)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            text = node.value
            if "course_lib" in text:
                self.flag(node, "names the course_lib package's files in a string")
            if re.search(r"\.ipynb\b", text):
                self.flag(node, "names a notebook file in a string")
            if "/proc/" in text or text.rstrip("/") == "/proc":
                self.flag(node, "reads /proc (other processes)")


def _aliases(sources: Iterable[str]) -> dict[str, str]:
    """{name bound by an import: the module or object it names}, over all the given cells."""
    found: dict[str, str] = {}
    for source in sources:
        try:
            tree = ast.parse(_ipython_to_python(source))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    found[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    if a.name != "*":
                        found[a.asname or a.name] = f"{node.module}.{a.name}"
    return found


def scan_source(source: str, where: str, aliases: dict[str, str], check_names: set[str]) -> list[str]:
    """The flags for one cell's source (``where`` starts each message, e.g. ``"cell 4"``)."""
    out: list[str] = []
    try:
        tree = ast.parse(_ipython_to_python(source))
    except SyntaxError:
        return out  # the kernel will refuse it too
    _Scanner(where, aliases, check_names, out).visit(tree)
    return out


def scan_cells(cells: list[tuple[int, str]], all_sources: Iterable[str], check_names: set[str]) -> list[str]:
    """Flags for the answer cells ``cells`` ((index, source) pairs); imports are read from ``all_sources``."""
    aliases = _aliases(all_sources)
    flags: list[str] = []
    for index, source in cells:
        flags.extend(scan_source(source, f"cell {index}", aliases, check_names))
    return flags
