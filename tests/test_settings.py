import os
import socket
import threading
import time

import numpy as np
import pytest
import torch

from course_lib import settings


def test_profile_default_and_quick(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert settings.profile() == "full" and not settings.is_quick()
    assert settings.pick(1, 2) == 2
    monkeypatch.setenv("COURSE_PROFILE", "quick")
    assert settings.is_quick() and settings.pick(1, 2) == 1


def test_unknown_profile_is_explained(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="quick"):
        settings.profile()


def test_hf_hub_offline_is_honoured_without_probing(monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(settings, "_probe", lambda *a: (_ for _ in ()).throw(AssertionError("probed")))
    assert settings.is_online() is False


def test_course_offline_overrides(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    assert settings.is_online() is True
    monkeypatch.setenv("COURSE_OFFLINE", "yes")
    assert settings.is_online() is False
    monkeypatch.setenv("COURSE_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="COURSE_OFFLINE"):
        settings.is_online()


def _server(handler_status: int, delay: float = 0.0):
    """A local HTTP server answering HEAD with a status, optionally after a delay."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self):
            time.sleep(delay)
            self.send_response(handler_status)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}/api"


@pytest.mark.parametrize("status, expected", [(200, True), (401, True), (503, False)])
def test_probe_reads_a_real_http_answer(status, expected):
    srv, url = _server(status)
    try:
        assert settings._probe(url, 1.0) is expected
    finally:
        srv.shutdown()


def test_probe_answers_within_its_timeout_when_the_server_hangs():
    srv, url = _server(200, delay=5.0)
    try:
        start = time.monotonic()
        assert settings._probe(url, 0.3) is False
        assert time.monotonic() - start < 3.0  # gave up long before the 5 s answer
    finally:
        srv.shutdown()


def test_probe_fails_fast_for_an_unknown_host_or_a_silent_listener():
    assert settings._probe("https://no-such-host.invalid/", 1.0) is False
    silent = socket.socket()  # accepts TCP connections but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    try:
        start = time.monotonic()
        assert settings._probe(f"http://127.0.0.1:{silent.getsockname()[1]}/", 0.5) is False
        assert time.monotonic() - start < 3.0  # did not wait for an answer that never comes
    finally:
        silent.close()


def test_online_answer_is_cached(monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls = []
    monkeypatch.setattr(settings, "_probe", lambda *a: calls.append(a) or False)
    monkeypatch.setattr(settings, "_online_cache", None)
    assert settings.is_online() is False and settings.is_online() is False
    assert len(calls) == 1
    settings.is_online(refresh=True)
    assert len(calls) == 2


def test_seed_everything_is_deterministic():
    g1 = settings.seed_everything(123)
    a = (torch.rand(3, generator=g1), torch.rand(3), np.random.rand(3))
    g2 = settings.seed_everything(123)
    b = (torch.rand(3, generator=g2), torch.rand(3), np.random.rand(3))
    for x, y in zip(a, b):
        assert np.allclose(np.asarray(x), np.asarray(y))
    g3 = settings.seed_everything(124)
    assert not torch.equal(a[0], torch.rand(3, generator=g3))


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_seed_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="seed"):
        settings.seed_everything(bad)


def test_device(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert settings.device() in ("cpu", "cuda", "mps")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert settings.device() == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="unknown"):
        settings.device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("COURSE_DEVICE", "cuda")
        with pytest.raises(ValueError, match="no CUDA"):
            settings.device()


def test_setup_offline_tells_the_hub_libraries(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    s = settings.setup(seed=7)
    assert s.online is False and s.seed == 7
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert "offline" in str(s)


def _probe_env(monkeypatch, endpoint):
    """Online variables cleared, HF_ENDPOINT set (or removed), and no cached probe answer."""
    for var in ("COURSE_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    if endpoint is None:
        monkeypatch.delenv("HF_ENDPOINT", raising=False)
    else:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setattr(settings, "_online_cache", None)


def test_probe_asks_hf_endpoint_when_set(monkeypatch):
    _probe_env(monkeypatch, None)
    assert settings.hub_url() == settings.HUB_URL == "https://huggingface.co/api/models?limit=1"
    _probe_env(monkeypatch, "https://hf-mirror.example/")
    assert settings.hub_url() == "https://hf-mirror.example/api/models?limit=1"
    asked = []
    monkeypatch.setattr(settings, "_probe", lambda url, timeout: asked.append(url) or True)
    assert settings.is_online() is True
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # another address: the cached answer is not reused
    settings.is_online()
    assert asked == ["https://hf-mirror.example/api/models?limit=1", "http://127.0.0.1:9/api/models?limit=1"]
    monkeypatch.setenv("HF_ENDPOINT", "hf-mirror.example")
    with pytest.raises(ValueError, match="HF_ENDPOINT"):
        settings.is_online()


@pytest.fixture
def standin_endpoint(tmp_path):
    """The Hub stand-in (tests/hub_standin) serving an empty folder: enough to answer the probe."""
    from hub_standin import HubStandin

    with HubStandin(tmp_path) as hub:
        yield hub.endpoint


@pytest.mark.parametrize("var", ["COURSE_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_variables_win_over_hf_endpoint(monkeypatch, standin_endpoint, var):
    _probe_env(monkeypatch, standin_endpoint)
    monkeypatch.setenv(var, "1")
    monkeypatch.setattr(settings, "_probe", lambda *a: (_ for _ in ()).throw(AssertionError("probed")))
    assert settings.is_online() is False


def test_probe_against_the_hub_standin_is_online(monkeypatch, standin_endpoint):
    _probe_env(monkeypatch, standin_endpoint)
    assert settings.is_online(refresh=True) is True
    monkeypatch.setenv("COURSE_OFFLINE", "1")  # still the first word
    assert settings.is_online() is False


def test_probe_against_a_closed_port_is_offline_at_once(monkeypatch):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: the connection is refused
    _probe_env(monkeypatch, f"http://127.0.0.1:{port}")
    start = time.monotonic()
    assert settings.is_online(refresh=True) is False
    assert time.monotonic() - start < 1.0
