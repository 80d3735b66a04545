"""Shared test set-up: deterministic hypothesis, a headless matplotlib, offline Hub libraries."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

# The same examples on every run, so a red test is reproducible; no per-example deadline on a noisy machine.
settings.register_profile(
    "course", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("course")


# ----------------------------------------------------------------------------- the Hub stand-in
# A local stand-in for the Hugging Face Hub (tests/hub_standin): the course's online branch under test.

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def hub_standin_server(tmp_path_factory):
    """The running stand-in (``.endpoint``, ``.requests``), its repos built once per session."""
    from hub_standin import HubStandin, build_all

    root = build_all(tmp_path_factory.mktemp("hub-standin"))
    with HubStandin(root) as server:
        yield server


@pytest.fixture(scope="session")
def hub_standin(hub_standin_server):
    """The stand-in's endpoint, ``http://127.0.0.1:PORT``."""
    return hub_standin_server.endpoint


@pytest.fixture
def hub_online(hub_standin, monkeypatch, tmp_path):
    """Point this test at the stand-in: HF_ENDPOINT, online, a fresh HF_HOME (all undone afterwards)."""
    from hub_standin import use_standin

    use_standin(monkeypatch, hub_standin, tmp_path / "hf-home")
    return hub_standin
