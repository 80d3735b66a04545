"""`make lab` starts JupyterLab through `python -m course_lib.tools.lab`: start it the same way and ask it for the notebooks."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from course_lib.tools.lab import REPO_ROOT, free_port, lab_command


def test_lab_command_is_loopback_free_port_and_token():
    cmd, url = lab_command(open_browser=False)
    joined = " ".join(cmd)
    assert "--ServerApp.ip=127.0.0.1" in joined
    assert "--ServerApp.open_browser=False" in joined
    token = re.search(r"token=([0-9a-f]+)", url).group(1)
    assert len(token) >= 32
    _, url2 = lab_command(open_browser=False)
    assert url2 != url  # a fresh token (and port) each time


def test_free_port_is_bindable():
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_lab_serves_the_course_notebooks(tmp_path):
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "course_lib.tools.lab", "--no-browser"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/lab/tree/notebooks\?token=([0-9a-f]+)", first)
        assert match, f"no URL printed: {first!r}"
        port, token = match.groups()
        api = f"http://127.0.0.1:{port}/api/contents/notebooks?token={token}"
        deadline = time.monotonic() + 90
        listing = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, "JupyterLab exited early"
            try:
                with urllib.request.urlopen(api, timeout=5) as r:
                    listing = json.load(r)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert listing is not None, "JupyterLab did not answer within 90 s"
        served = {item["name"] for item in listing["content"]}
        expected = {p.name for p in Path(REPO_ROOT, "notebooks").glob("*.ipynb")}
        assert expected and expected <= served
        # Without the token the server refuses.
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/notebooks", timeout=5)
            raise AssertionError("server answered without a token")
        except urllib.error.HTTPError as e:
            assert e.code in (401, 403)
        # The lab page itself is served.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as r:
            assert r.status == 200 and b"JupyterLab" in r.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode is not None


def test_lab_kernels_inherit_passive_omp_threads(monkeypatch):
    """The launcher sets OMP_WAIT_POLICY=PASSIVE (unless the user chose a policy) before it becomes JupyterLab."""
    from course_lib.tools import lab

    seen = {}

    def fake_execv(path, args):
        seen["policy"] = os.environ.get("OMP_WAIT_POLICY")
        raise SystemExit(0)

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(lab.os, "execv", fake_execv)
    monkeypatch.setattr(lab.os, "chdir", lambda path: None)
    try:
        lab.main(["--no-browser"])
    except SystemExit:
        pass
    assert seen["policy"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    try:
        lab.main(["--no-browser"])
    except SystemExit:
        pass
    assert seen["policy"] == "ACTIVE"
