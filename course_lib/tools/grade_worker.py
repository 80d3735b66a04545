"""The grader's worker: run one submission in a fresh kernel and report every cell's outcome.

:mod:`course_lib.tools.grade_sandbox` starts ``python -I -c <bootstrap>`` in a new process session
and sends this file's text and the job through stdin, from the grader's private in-memory copy (so a submission that edited files on
disk cannot change it). The worker

1. gets its job (JSON, read from stdin by the bootstrap), then points stdin at ``/dev/null``;
2. makes itself non-dumpable (so the kernel cannot open its files through ``/proc``) and a child
   subreaper (so the kernel's detached descendants stay in its tree);
3. starts the kernel with the job's environment and working folder, its output going nowhere the
   grader reads, and runs the cells one by one with a per-cell and an overall time limit;
4. runs each check cell through ``user_expressions`` of an empty execute request: the request's
   code is what IPython's input transformers, magics and ``pre_run_cell`` hooks see, and the check
   itself is evaluated afterwards, with the checking package loaded fresh from the sources in the
   job (not from disk, not through ``importlib.reload``);
5. writes one JSON line per finished cell (and per problem) to the report pipe whose number the
   job names, then ``{"type": "done"}``.

It imports only the standard library and :mod:`jupyter_client`.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import time
from typing import Any

# The code the kernel runs for a check cell (defined in a throwaway namespace, then called).
KERNEL_RUNNER = r'''
def _course_grader_check(user_ns, package, sources, files, roots, source, label):
    import sys
    spec_type = type(sys.__spec__)

    class _FreshChecks:
        """Serve the checking package from the grader's sources, never from disk."""

        def find_spec(self, name, path=None, target=None):
            if name not in sources:
                return None
            spec = spec_type(name, self, origin=files[name], is_package=name in roots)
            if name in roots:
                spec.submodule_search_locations = [roots[name]]
            spec.has_location = True
            return spec

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            exec(compile(sources[module.__name__], files[module.__name__], "exec"), module.__dict__)

    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]
    finder = _FreshChecks()
    sys.meta_path.insert(0, finder)
    try:
        __import__(package)
        fresh = sys.modules[package]
    finally:
        while finder in sys.meta_path:
            sys.meta_path.remove(finder)
    names = getattr(fresh, "__all__", None) or [n for n in vars(fresh) if not n.startswith("_")]
    given = {n: getattr(fresh, n) for n in names}
    given[package.rsplit(".", 1)[-1]] = fresh
    namespace = dict(user_ns)
    namespace.update(given)
    exec(compile(source, label, "exec"), namespace)
    for key, value in namespace.items():
        if key == "__builtins__" or (key in given and value is given[key]):
            continue
        if key not in user_ns or user_ns[key] is not value:
            user_ns[key] = value
'''

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    """Linux prctl(option, value); False where it is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _first_line(text: Any, limit: int = 300) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Reporter:
    """JSON lines to the report pipe (a file descriptor the kernel does not inherit)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, **record: Any) -> None:
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        while data:
            written = os.write(self.fd, data)
            data = data[written:]


def check_expression(check: dict[str, Any], source: str, label: str) -> str:
    """The ``user_expressions`` entry that runs one check cell with freshly loaded checks."""
    call = (
        f"g['_course_grader_check'](globals(), {check['package']!r}, {check['sources']!r}, {check['files']!r}, "
        f"{check['roots']!r}, {source!r}, {label!r})"
    )
    return (
        f"(lambda g: (exec(compile({KERNEL_RUNNER!r}, '<course grader>', 'exec'), g), {call})[1])"
        "({'__builtins__': __builtins__})"
    )


def _drain(kc: Any) -> None:
    """Drop the kernel's output messages waiting so far (the grader does not need outputs)."""
    for _ in range(100_000):
        try:
            kc.get_iopub_msg(timeout=0)
        except queue.Empty:
            return


def _wait_reply(km: Any, kc: Any, msg_id: str, seconds: float) -> dict[str, Any] | str:
    """The execute reply's content, or 'timeout' / 'dead'."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "timeout"
        try:
            msg = kc.get_shell_msg(timeout=min(1.0, remaining))
        except queue.Empty:
            _drain(kc)
            if not km.is_alive():
                return "dead"
            continue
        if msg.get("parent_header", {}).get("msg_id") == msg_id:
            _drain(kc)
            return msg["content"]


def run_job(job: dict[str, Any], report: Reporter) -> None:
    """Start the kernel and run the job's cells (see the module docstring)."""
    from jupyter_client.manager import KernelManager

    timeout = float(job["timeout"])
    grace = max(1.0, min(5.0, timeout))
    deadline = time.monotonic() + float(job["total_timeout"])
    km = KernelManager(kernel_name=job["kernel_name"])
    try:
        km.start_kernel(
            cwd=job["cwd"], env=job["env"], stdout=open(os.devnull, "wb"), stderr=open(os.devnull, "wb"),
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
        report.send(type="kernel", pid=km.provisioner.process.pid if km.provisioner else None)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
    except Exception as err:  # the kernel failed to start
        report.send(type="problem", text=f"could not run the notebook: {type(err).__name__}: {_first_line(err)}")
        km.shutdown_kernel(now=True) if km.has_kernel else None
        return
    try:
        for cell in job["cells"]:
            index = cell["index"]
            left = deadline - time.monotonic()
            if left <= 0:
                report.send(type="problem", text=(
                    f"stopped at cell {index}: the notebook ran past the overall limit of {job['total_timeout']} s"))
                return
            limit = min(timeout, left)
            if cell.get("exercise"):
                expr = {"grader": check_expression(job["check"], cell["source"], f"<check cell {cell['exercise']}>")}
                msg_id = kc.execute(f"# check {cell['exercise']} (run by the grader)", user_expressions=expr,
                                    allow_stdin=False, stop_on_error=False)
            else:
                msg_id = kc.execute(cell["source"], allow_stdin=False, stop_on_error=False)
            reply = _wait_reply(km, kc, msg_id, limit)
            if reply == "timeout":
                km.interrupt_kernel()
                after = _wait_reply(km, kc, msg_id, grace)
                report.send(type="cell", index=index, status="error",
                            detail=f"CellTimeout: the cell ran past the time limit of {int(limit)} s")
                if after == "timeout":
                    report.send(type="problem", text=(
                        f"cell {index} ran past {int(limit)} s and the kernel ignored the interrupt; it was stopped "
                        "and later cells were not run"))
                    return
                if after == "dead":
                    report.send(type="problem", text="the kernel died; later cells did not run")
                    return
                continue
            if reply == "dead":
                report.send(type="problem", text=(
                    "the kernel died (out of memory, or the code crashed Python); later cells did not run"))
                return
            assert isinstance(reply, dict)
            status, detail = _outcome(reply, bool(cell.get("exercise")))
            report.send(type="cell", index=index, status=status, detail=detail)
    finally:
        try:
            kc.stop_channels()
        finally:
            km.shutdown_kernel(now=True)


def _outcome(reply: dict[str, Any], is_check: bool) -> tuple[str, str]:
    """('ok', '') or ('error', 'Name: first line of the message') for one execute reply."""
    if reply.get("status") != "ok":
        detail = f"{reply.get('ename', 'Error')}: {_first_line(reply.get('evalue', ''))}"
        return "error", (f"the check did not run ({detail})" if is_check else detail)
    if not is_check:
        return "ok", ""
    result = (reply.get("user_expressions") or {}).get("grader")
    if not isinstance(result, dict):
        return "error", "the check did not run (no result came back)"
    if result.get("status") == "ok":
        return "ok", ""
    return "error", f"{result.get('ename', 'Error')}: {_first_line(result.get('evalue', ''))}"


def main(job: dict[str, Any]) -> int:
    """Run ``job`` and report; the exit code is 0 when the job ran to its end."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.close(null)
    fd = int(job["report_fd"])
    os.set_inheritable(fd, False)
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt meant for the kernel must not stop the worker
    report = Reporter(fd)
    try:
        run_job(job, report)
    except Exception as err:
        report.send(type="problem", text=f"the grading process failed: {type(err).__name__}: {_first_line(err)}")
    report.send(type="done")
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.stdin.buffer.read().decode("utf-8"))))
