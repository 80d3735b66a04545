"""Start JupyterLab on the course: ``python -m course_lib.tools.lab`` (what ``make lab`` runs).

The server listens on the loopback address only, on a free port, with a fresh random token,
and opens the lesson folder. The URL with its token is printed so you can open it yourself
when no browser opens.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from course_lib.io import REPO_ROOT


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def lab_command(
    root: str | os.PathLike = REPO_ROOT,
    port: int | None = None,
    token: str | None = None,
    open_browser: bool = True,
    host: str = "127.0.0.1",
) -> tuple[list[str], str]:
    """The JupyterLab command line and the URL it will serve (with its token)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ValueError(f"root: {str(root)!r} is not a folder; run from the course repository.")
    port = port or free_port(host)
    token = token or secrets.token_hex(24)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.ip={host}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--ServerApp.open_browser={'True' if open_browser else 'False'}",
        "--ServerApp.default_url=/lab/tree/notebooks",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI machines often run as root
    return cmd, f"http://{host}:{port}/lab/tree/notebooks?token={token}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-browser", action="store_true", help="do not try to open a browser")
    parser.add_argument("--port", type=int, default=None, help="port to use (default: a free one)")
    args = parser.parse_args(argv)
    cmd, url = lab_command(port=args.port, open_browser=not args.no_browser)
    print(f"JupyterLab on the course: {url}\n(stop it with Ctrl-C)", flush=True)
    # The kernels inherit this: torch's idle OpenMP threads sleep instead of spinning, which keeps a kernel
    # fast while another process (a second kernel, a test run) shares the cores (bench/RESULTS.md, "Threads").
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.chdir(REPO_ROOT)
    if os.name == "posix":
        # Replace this process with the server, so that stopping it stops JupyterLab itself.
        os.execv(cmd[0], cmd)
    try:  # pragma: no cover - Windows
        return subprocess.call(cmd)
    except KeyboardInterrupt:  # pragma: no cover
        return 0


if __name__ == "__main__":
    sys.exit(main())
