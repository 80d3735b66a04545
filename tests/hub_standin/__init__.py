"""A local stand-in for the Hugging Face Hub, so that the course's ONLINE branch runs in tests.

In Colab every lesson takes its online branch (teticio's pipeline, musicgen-small, ``lewtun/music_genres``,
``sanchit-gandhi/gtzan``, ``laion/clap-htsat-unfused``, ``cvssp/audioldm2-music``). Tests have no network,
so this package serves those repos from 127.0.0.1, in their real file layouts with small random weights,
and the libraries reach it through ``HF_ENDPOINT``.

- :mod:`.server`: :func:`serve` / :class:`HubStandin`, the HTTP server (the standard library's).
- :mod:`.repos`: :func:`build_all` and one builder per repo.
- :func:`online_environ` and :func:`use_standin`: what a process needs to use it.

In pytest (``tests/conftest.py``): the session fixture ``hub_standin`` builds the repos once and yields
the endpoint; the fixture ``hub_online`` points the current test at it (environment AND the constants that
``huggingface_hub`` and ``datasets`` read at import time) with a fresh ``HF_HOME``::

    def test_something(hub_online):
        pipe = SpectrogramDiffusionPipeline.from_pretrained("teticio/audio-diffusion-instrumental-hiphop-256",
                                                            use_safetensors=False)

In another process (a notebook under nbval, a script), start the server on its own and give the child
process the environment: the libraries read ``HF_ENDPOINT`` when they are imported, so nothing needs
patching there. From the repository root::

    python -m tests.hub_standin serve --build --root /tmp/hub --port-file /tmp/hub/endpoint &
    # wait until /tmp/hub/endpoint exists; it holds e.g. http://127.0.0.1:40123
    export HF_ENDPOINT=$(cat /tmp/hub/endpoint) HF_HOME=/tmp/hf-home COURSE_OFFLINE=0
    unset HF_HUB_OFFLINE HF_DATASETS_OFFLINE TRANSFORMERS_OFFLINE
    pytest --nbval-lax --nbval-current-env notebooks/02_audio_diffusion_pipeline.ipynb

or, from Python, ``env = {**os.environ, **online_environ(endpoint, hf_home)}`` minus :data:`OFFLINE_VARS`
(:func:`child_environ` does both) for ``subprocess.run(..., env=env)``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .repos import (
    AUDIO_DIFFUSION_ID,
    AUDIOLDM2_ID,
    CLAP_ID,
    GTZAN_ID,
    MUSIC_GENRES_ID,
    MUSICGEN_ID,
    build_all,
    build_audio_diffusion,
    build_audioldm2,
    build_clap,
    build_gtzan,
    build_music_genres,
    build_musicgen,
)
from .melody import MELODY_ID, build_musicgen_melody  # not in build_all: only tests/test_musicgen_melody.py needs it
from .server import HubStandin, commit_sha, serve

__all__ = [
    "AUDIO_DIFFUSION_ID", "MUSICGEN_ID", "MUSIC_GENRES_ID", "GTZAN_ID", "CLAP_ID", "AUDIOLDM2_ID", "OFFLINE_VARS",
    "HubStandin", "serve", "commit_sha", "build_all", "build_audio_diffusion", "build_musicgen",
    "build_music_genres", "build_gtzan", "build_clap", "build_audioldm2", "online_environ", "child_environ",
    "use_standin", "MELODY_ID", "build_musicgen_melody",
]

# The variables that would keep the Hub libraries (and course_lib.settings) offline.
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
# Cache locations that, if set, would win over HF_HOME.
_CACHE_VARS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_XET_CACHE", "HF_ASSETS_CACHE", "HF_DATASETS_CACHE",
               "HF_MODULES_CACHE", "HF_DATASETS_DOWNLOADED_DATASETS_PATH", "HF_DATASETS_EXTRACTED_DATASETS_PATH")


def online_environ(endpoint: str, hf_home: str | os.PathLike) -> dict[str, str]:
    """The variables to SET for a process that uses the stand-in (also remove :data:`OFFLINE_VARS`)."""
    return {"HF_ENDPOINT": endpoint.rstrip("/"), "HF_HOME": str(hf_home), "COURSE_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1"}


def child_environ(endpoint: str, hf_home: str | os.PathLike, base: dict[str, str] | None = None) -> dict[str, str]:
    """A whole environment for a child process (``subprocess.run(..., env=...)``) that uses the stand-in."""
    env = dict(os.environ if base is None else base)
    for name in OFFLINE_VARS + _CACHE_VARS:
        env.pop(name, None)
    env.update(online_environ(endpoint, hf_home))
    return env


def use_standin(monkeypatch: Any, endpoint: str, hf_home: str | os.PathLike) -> None:
    """Point THIS process at the stand-in for one test (``monkeypatch`` undoes it all afterwards).

    Sets the environment like :func:`child_environ`, and also the constants that ``huggingface_hub``
    and ``datasets`` compute from it when they are imported (the endpoint, the offline switch, the
    cache folders). Both libraries are imported here first, so that the values restored after the
    test are their normal (offline, in the test suite) ones.
    """
    import datasets.config as ds_config
    import huggingface_hub.constants as hub_constants
    import huggingface_hub.hf_api as hf_api

    endpoint = endpoint.rstrip("/")
    home = Path(hf_home)
    home.mkdir(parents=True, exist_ok=True)
    for name in OFFLINE_VARS + _CACHE_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in online_environ(endpoint, home).items():
        monkeypatch.setenv(name, value)

    hub_cache = str(home / "hub")
    for name, value in {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(hub_constants.HF_URL_HOSTS | {"127.0.0.1"}),
        "HF_HUB_OFFLINE": False,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": hub_cache,
        "HUGGINGFACE_HUB_CACHE": hub_cache,
        "HF_XET_CACHE": str(home / "xet"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_HUB_DISABLE_TELEMETRY": True,
    }.items():
        if hasattr(hub_constants, name):
            monkeypatch.setattr(hub_constants, name, value)
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)  # the HfApi behind huggingface_hub.model_info & co.

    datasets_cache = home / "datasets"
    for name, value in {
        "HF_ENDPOINT": endpoint,
        "HUB_DATASETS_URL": endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
        "HF_HUB_OFFLINE": False,
        "HF_DATASETS_OFFLINE": False,
        "HF_CACHE_HOME": str(home),
        "HF_DATASETS_CACHE": datasets_cache,
        "HF_MODULES_CACHE": home / "modules",
        "DOWNLOADED_DATASETS_PATH": datasets_cache / "downloads",
        "EXTRACTED_DATASETS_PATH": datasets_cache / "downloads" / "extracted",
    }.items():
        if hasattr(ds_config, name):
            monkeypatch.setattr(ds_config, name, value)

    diffusers_constants = sys.modules.get("diffusers.utils.constants")  # only used in error messages
    if diffusers_constants is not None and hasattr(diffusers_constants, "HUGGINGFACE_CO_RESOLVE_ENDPOINT"):
        monkeypatch.setattr(diffusers_constants, "HUGGINGFACE_CO_RESOLVE_ENDPOINT", endpoint)
