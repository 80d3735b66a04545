"""The grader's isolation: private copies, their hashes, one worker process per submission, no survivors.

:class:`Sandbox` is made before any submission runs. It

- copies the ``course_lib`` package (the checking code and everything it imports) and the reference
  exercise notebooks into a private temporary folder, keeping every file's bytes and sha256 in
  memory; :meth:`Sandbox.verify_private` compares the folder with them, restores what changed and
  removes what was added (a ``sitecustomize.py`` say), and says which files those were;
- snapshots every submission: the notebook's bytes in memory, and a private copy of the rest of its
  folder (other graded notebooks, checkpoints and modules that would shadow an installed one left
  out), with hashes, so that a submission cannot damage another or the originals it is graded from;
- runs each submission through :func:`run_worker`: ``course_lib/tools/grade_worker.py`` (from the
  in-memory copy) in a new process session, its output to a private log, its report through a pipe
  the kernel does not hold; then every process the submission left behind is killed
  (:func:`kill_new_descendants`: on Linux the grader is a child subreaper while it grades, so
  double-forked, ``setsid``'d processes come back to it; elsewhere the worker's process group).

Nothing here can stop code in the kernel from doing what its user may do (see the README's grader
section): the sandbox makes that visible and keeps one submission from changing another's marks.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterator, Sequence

from course_lib.errors import CourseInputError

__all__ = ["Sandbox", "Submission", "WorkerResult", "guarded_process", "kill_new_descendants", "process_table",
           "descendants", "run_worker", "CHECKS_PACKAGE"]

CHECKS_PACKAGE = "course_lib.checks"
KERNEL_NAME = "course-grader-python"
# Repository folders that course_lib finds through its own location (shipped checkpoints, Hub stand-ins).
LINKED = ("checkpoints", "course_data", "tests/hub_standin")
SKIPPED_DIRS = {".ipynb_checkpoints", "__pycache__", ".git", ".venv", "venv", "node_modules", ".cache"}
MAX_FOLDER_BYTES = 256 << 20  # per submission folder; the rest is left out (and said so)
STARTUP_SECONDS = 120  # kernel start and shutdown on top of the notebook's own limit

# The worker's first lines: its code and its job come through stdin (not the command line, not a file).
WORKER_BOOTSTRAP = (
    "import json, sys; data = json.loads(sys.stdin.buffer.read().decode('utf-8')); "
    "ns = {'__name__': 'course_grader_worker'}; "
    "exec(compile(data['worker'], '<course_lib/tools/grade_worker.py>', 'exec'), ns); sys.exit(ns['main'](data['job']))"
)
PR_SET_DUMPABLE, PR_GET_DUMPABLE = 4, 3
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _walk(root: Path, skip: set[Path] | None = None, caches: bool = False) -> tuple[list[tuple[str, Path]], list[str]]:
    """(relative posix path, path) of the regular files under ``root``, and the odd entries left out.

    Bytecode caches are skipped unless ``caches`` (a private copy must not hold any), and so are
    checkpoints, version control and virtual environments.
    """
    found: list[tuple[str, Path]] = []
    odd: list[str] = []
    skip = skip or set()
    for folder, dirs, names in os.walk(root):
        keep = []
        for d in sorted(dirs):
            path = Path(folder, d)
            if path.is_symlink():
                odd.append(path.relative_to(root).as_posix())
            elif (d not in SKIPPED_DIRS or (caches and d == "__pycache__")) and not (path / "pyvenv.cfg").exists():
                keep.append(d)
        dirs[:] = keep
        for name in sorted(names):
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            if path.resolve() in skip or (name.endswith(".pyc") and not caches):
                continue
            if path.is_symlink() or not path.is_file():
                odd.append(rel)
                continue
            found.append((rel, path))
    return found, odd


def _read_tree(root: Path, caches: bool = False) -> tuple[dict[str, bytes], list[str]]:
    """{relative posix path: bytes} of the regular files under ``root`` (see :func:`_walk`), and the odd ones."""
    found, odd = _walk(root, caches=caches)
    return {rel: path.read_bytes() for rel, path in found}, odd


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _diff_tree(root: Path, files: dict[str, bytes], restore: bool) -> list[str]:
    """Files under ``root`` that differ from ``files`` (changed, missing, added); restored when asked."""
    on_disk, odd = _read_tree(root, caches=True)
    changed = sorted({rel for rel in files if on_disk.get(rel) != files[rel]} | (set(on_disk) - set(files)) | set(odd))
    if changed and restore:
        for rel in changed:
            path = root / rel
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
        _write_tree(root, {rel: files[rel] for rel in changed if rel in files})
    return changed


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=None)
def _shadowing(name: str) -> bool:
    """Would a module ``name`` in the kernel's working folder hide an installed or standard one?"""
    import importlib.util

    if name == "course_lib" or name in sys.builtin_module_names or name in getattr(sys, "stdlib_module_names", ()):
        return True
    saved = sys.path[:]
    try:
        sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != Path.cwd().resolve()]
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
    finally:
        sys.path[:] = saved


@dataclass
class Submission:
    """One notebook to grade, snapshotted before any kernel ran."""

    path: Path
    data: bytes | None  # None: could not be read
    error: str
    folder: Path  # the private copy of its folder
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 of the private copy
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)  # relative path -> (size, mtime_ns)
    notes: list[str] = field(default_factory=list)


@dataclass
class WorkerResult:
    """What came back from one worker: cell outcomes, problems, and whether the worker finished."""

    outcome: dict[int, tuple[str, str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    finished: bool = False
    killed: bool = False


class Sandbox:
    """The private folder for one grading run (see the module docstring); use as a context manager."""

    def __init__(self, notebooks: Sequence[Path], reference_dir: Path | None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="course-grade-"))
        try:
            self._build(notebooks, reference_dir)
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _build(self, notebooks: Sequence[Path], reference_dir: Path | None) -> None:
        import course_lib

        self.source_package = Path(course_lib.__file__).resolve().parent
        self.lib_root = self.root / "lib"
        self.lib_files, _ = _read_tree(self.source_package)
        _write_tree(self.lib_root / "course_lib", self.lib_files)
        for rel in LINKED:
            target = self.source_package.parent / rel
            if target.exists():
                (self.lib_root / rel).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target, self.lib_root / rel)
        self.reference_source = reference_dir.resolve() if reference_dir is not None else None
        self.ref_root = self.root / "reference"
        self.ref_files: dict[str, bytes] = {}
        if reference_dir is not None:
            self.ref_files = {p.name: p.read_bytes() for p in sorted(reference_dir.glob("*.ipynb")) if p.is_file()}
        _write_tree(self.ref_root, self.ref_files)
        checks_dir = self.source_package / "checks"
        self.checks = self._check_sources()
        self.watched_source = {p: p.read_bytes() for p in sorted(checks_dir.rglob("*.py"))}
        self.watched_source.update({reference_dir / n: b for n, b in self.ref_files.items()} if reference_dir else {})
        self.submissions = [self._snapshot(i, p, notebooks) for i, p in enumerate(notebooks)]
        self.originals = {s.path.resolve(): sha256(s.data) for s in self.submissions if s.data is not None}
        self.worker_source = self.lib_files["tools/grade_worker.py"]

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ snapshots and verification
    def _check_sources(self) -> dict[str, Any]:
        """The checking package's sources, module names, file names and package folders (for the kernel)."""
        base = self.lib_root / "course_lib" / "checks"
        sources, files, roots = {}, {}, {}
        for rel, data in self.lib_files.items():
            if not rel.startswith("checks/") or not rel.endswith(".py"):
                continue
            parts = rel[: -len(".py")].split("/")
            is_package = parts[-1] == "__init__"
            name = ".".join(["course_lib", *(parts[:-1] if is_package else parts)])
            sources[name] = data.decode("utf-8")
            files[name] = str(self.lib_root / "course_lib" / rel)
            if is_package:
                roots[name] = str((self.lib_root / "course_lib" / rel).parent)
        if not base.is_dir() or CHECKS_PACKAGE not in sources:
            raise CourseInputError(f"course_lib: {self.source_package} has no checks/__init__.py; the grader needs "
                                   "the checking code: reinstall the course (pip install -e .).")
        return {"package": CHECKS_PACKAGE, "sources": sources, "files": files, "roots": roots}

    def _snapshot(self, number: int, path: Path, notebooks: Sequence[Path]) -> Submission:
        folder = self.root / "submissions" / f"{number:03d}"
        folder.mkdir(parents=True)
        try:
            data: bytes | None = path.read_bytes()
            error = ""
        except OSError as err:
            data, error = None, f"{type(err).__name__}: {err}"
        sub = Submission(path=path, data=data, error=error, folder=folder)
        found, left_out = _walk(path.parent, skip={p.resolve() for p in notebooks})
        names = {rel for rel, _ in found}
        total = 0
        for rel, source in found:
            parts = rel.split("/")
            module = parts[0][: -len(".py")] if len(parts) == 1 and rel.endswith(".py") else (
                parts[0] if len(parts) > 1 and f"{parts[0]}/__init__.py" in names else "")
            if module and module.isidentifier() and _shadowing(module):
                left_out.append(rel)
                continue
            size = source.stat().st_size
            if total + size > MAX_FOLDER_BYTES:
                left_out.append(rel)
                continue
            try:
                data_bytes = source.read_bytes()
            except OSError:
                left_out.append(rel)
                continue
            total += size
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data_bytes)
            sub.files[rel] = sha256(data_bytes)
            sub.stats[rel] = _stat(folder / rel)
        if left_out:
            shown = ", ".join(sorted(left_out)[:8]) + (" ..." if len(left_out) > 8 else "")
            sub.notes.append(f"not copied into the private folder (links, modules that would hide installed ones, "
                             f"or past {MAX_FOLDER_BYTES >> 20} MiB): {shown}")
        return sub

    def verify_private(self) -> list[str]:
        """Restore the private course_lib and reference copies; the files that had changed."""
        changed = [f"course_lib/{rel}" for rel in _diff_tree(self.lib_root / "course_lib", self.lib_files, True)]
        for rel in LINKED:
            link, target = self.lib_root / rel, self.source_package.parent / rel
            if target.exists() and (not link.is_symlink() or Path(os.readlink(link)) != target):
                changed.append(rel)
                if link.is_dir() and not link.is_symlink():
                    shutil.rmtree(link)
                elif link.exists() or link.is_symlink():
                    link.unlink()
                os.symlink(target, link)
        extra = sorted(p.name for p in self.lib_root.iterdir() if p.name not in {"course_lib", *(r.split("/")[0] for r in LINKED)})
        for name in extra:
            path = self.lib_root / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        changed += extra
        changed += [f"reference/{rel}" for rel in _diff_tree(self.ref_root, self.ref_files, True)]
        return changed

    def changed_sources(self) -> list[str]:
        """The checking code and reference notebooks the sandbox was copied from, where they changed on disk."""
        changed = []
        for path, data in self.watched_source.items():
            try:
                same = path.read_bytes() == data
            except OSError:
                same = False
            if not same:
                changed.append(str(path))
        return changed

    def accept_current_sources(self) -> None:
        """Take the sources and originals as they are now, so that a change is reported once."""
        for path in self.watched_source:
            with contextlib.suppress(OSError):
                self.watched_source[path] = path.read_bytes()
        for path in self.originals:
            with contextlib.suppress(OSError):
                self.originals[path] = sha256(path.read_bytes())

    def changed_submission_copy(self, sub: Submission) -> list[str]:
        """Files of ``sub``'s private folder that differ from its snapshot."""
        on_disk, odd = _read_tree(sub.folder)
        now = {rel: sha256(b) for rel, b in on_disk.items()}
        return sorted({r for r in sub.files if now.get(r) != sub.files[r]} | (set(now) - set(sub.files)) | set(odd))

    def touched_submission_copy(self, sub: Submission) -> list[str]:
        """A quick look (size and time stamp) for files of ``sub``'s private folder that changed."""
        found, odd = _walk(sub.folder)
        now = {rel: _stat(path) for rel, path in found}
        return sorted({r for r in sub.stats if now.get(r) != sub.stats[r]} | (set(now) - set(sub.stats)) | set(odd))

    def changed_originals(self) -> list[str]:
        """Submitted notebooks (the originals) whose bytes changed since the snapshot."""
        changed = []
        for path, digest in self.originals.items():
            try:
                same = sha256(path.read_bytes()) == digest
            except OSError:
                same = False
            if not same:
                changed.append(str(path))
        return changed

    # ------------------------------------------------------------------ running
    def worker_environment(self, job_dir: Path, profile: str) -> dict[str, str]:
        """The worker's environment: private Jupyter and IPython folders, the private course_lib first."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSTARTUP", "PYTHONHOME", "JUPYTER_PREFER_ENV_PATH")}
        for key, sub in (("JUPYTER_PATH", "jupyter"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_CONFIG_DIR", "config"),
                         ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "mpl")):
            (job_dir / sub).mkdir(parents=True, exist_ok=True)
            env[key] = str(job_dir / sub)
        spec = job_dir / "jupyter" / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        argv = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-m", "ipykernel_launcher",
                "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "grader", "language": "python"}))
        env["PYTHONNOUSERSITE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(job_dir / "pycache")  # no bytecode read from or written into the copies
        env["PYTHONPATH"] = os.pathsep.join([str(self.lib_root), *filter(None, [os.environ.get("PYTHONPATH")])])
        env["COURSE_PROFILE"] = profile
        return env


@contextlib.contextmanager
def guarded_process() -> Iterator[bool]:
    """While grading: this process is a child subreaper and not dumpable (Linux); yields whether it is."""
    if not sys.platform.startswith("linux"):
        yield False
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        reaper = ctypes.c_int(0)
        libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(reaper), 0, 0, 0)
        dumpable = libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)
        ok = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        yield False
        return
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    try:
        yield ok
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, reaper.value, 0, 0, 0)
        libc.prctl(PR_SET_DUMPABLE, 1 if dumpable < 0 else dumpable, 0, 0, 0)


def process_table() -> dict[int, tuple[int, str]]:
    """{pid: (parent pid, state letter)} from /proc (empty where there is no /proc)."""
    table: dict[int, tuple[int, str]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            table[int(entry)] = (int(fields[1]), fields[0].decode())
        except (OSError, IndexError, ValueError):
            continue
    return table


def descendants(table: dict[int, tuple[int, str]], root: int, protected: Collection[int] = ()) -> list[int]:
    """Processes below ``root`` in ``table``, not entering the subtrees of ``protected``."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in protected:
            continue
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_new_descendants(protected: Collection[int], fallback_group: int | None = None) -> int:
    """SIGKILL every descendant of this process outside ``protected``, reap, repeat until none; how many died.

    Without /proc, the process group ``fallback_group`` (the worker's session) is killed instead.
    """
    me = os.getpid()
    if not os.path.isdir("/proc/self"):
        if fallback_group is not None:
            with contextlib.suppress(OSError):
                os.killpg(fallback_group, signal.SIGKILL)
        return 0
    killed: set[int] = set()
    for _ in range(400):
        table = process_table()
        below = descendants(table, me, protected)
        for pid in below:
            if table[pid][0] == me:  # ours to reap once dead
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)
        live = [pid for pid in below if table[pid][1] not in ("Z", "X")]
        if not below:
            return len(killed)
        for pid in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.02)
    return len(killed)


def run_worker(worker_source: bytes, job: dict[str, Any], job_dir: Path, env: dict[str, str], limit: float
               ) -> WorkerResult:
    """Run one job in a worker process (new session) and collect its report; kill what it leaves behind."""
    result = WorkerResult()
    protected = set(descendants(process_table(), os.getpid()))
    read_end, write_end = os.pipe()
    log = open(job_dir / "worker.log", "wb")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", WORKER_BOOTSTRAP], stdin=subprocess.PIPE, stdout=log,
            stderr=log, cwd=job_dir, env=env, start_new_session=True, pass_fds=(write_end,),
        )
    finally:
        os.close(write_end)
        log.close()
    buffer = b""
    try:
        try:
            assert proc.stdin is not None
            message = {"worker": worker_source.decode("utf-8"), "job": {**job, "report_fd": write_end}}
            proc.stdin.write(json.dumps(message).encode("utf-8"))
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        deadline = time.monotonic() + limit
        with selectors.DefaultSelector() as sel:
            sel.register(read_end, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    result.problems.append(f"the grading process did not finish within {int(limit)} s; it was stopped")
                    break
                if not sel.select(timeout=min(left, 1.0)):
                    continue
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    _take(result, line)
        try:
            code = proc.wait(timeout=5 if result.finished else 0.5)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if not result.finished and code == -signal.SIGKILL and not any("did not finish" in p for p in result.problems):
            result.killed = True
        elif not result.finished and not result.problems:
            tail = (job_dir / "worker.log").read_text(errors="replace").strip().splitlines()[-1:]
            result.problems.append(f"the grading process failed (exit code {code}){': ' + tail[0] if tail else ''}")
    finally:
        os.close(read_end)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_new_descendants(protected, fallback_group=proc.pid)
    return result


def _take(result: WorkerResult, line: bytes) -> None:
    try:
        record = json.loads(line)
    except ValueError:
        return
    kind = record.get("type")
    if kind == "cell":
        result.outcome[int(record["index"])] = (str(record["status"]), str(record.get("detail", "")))
    elif kind == "problem":
        result.problems.append(str(record["text"]))
    elif kind == "done":
        result.finished = True
