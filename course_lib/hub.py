"""One switch between the model Hub (online) and the course's own stand-ins (offline).

Every lesson loads its models with ``from_pretrained(resolve_pretrained(hub_id))``. Online (see
:func:`course_lib.settings.is_online`) that is the Hub id itself, so the real model is
downloaded. Offline it is a folder shipped in this repository (written by ``save_pretrained``
from a script in ``scripts/``), so the very same ``from_pretrained`` call works without a
network and without the minutes of retries the Hub libraries otherwise spend.

>>> from course_lib.hub import resolve_pretrained
>>> source = resolve_pretrained("facebook/musicgen-small")   # id online, local folder offline
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from course_lib import settings
from course_lib.errors import CourseInputError
from course_lib.io import REPO_ROOT

# Every checkpoint the course ships (``checkpoints/<name>``), with the script that makes it.
SHIPPED: dict[str, str] = {
    "mel-diffusion-64": "scripts/train_mel_diffusion.py",
    "style-classifier": "scripts/train_style_classifier.py",
    "tiny-musicgen": "scripts/make_tiny_musicgen.py",  # untrained; tokenizer of the tests' Hub stand-in, a baseline
    "course-encodec": "scripts/train_codec.py",
    "course-musicgen": "scripts/train_musicgen.py",  # needs course-encodec first
    "drum-classifier": "scripts/train_drum_classifier.py",
    "drum-diffusion": "scripts/train_drums.py",
    "spectrogram-vae": "scripts/train_vae.py",
    "digit-classifier": "scripts/train_digit_classifier.py",
    "digit-diffusion": "scripts/train_digit_diffusion.py",
    "text-audio-embedding": "scripts/train_text_audio_embedding.py",  # lesson 07's CLAP-style judge and text encoder
    "text-audio-ldm": "scripts/train_latent_diffusion.py",  # needs text-audio-embedding first
}

# Hub id → folder (relative to the repository root) holding its course-made stand-in.
STANDINS: dict[str, str] = {
    "facebook/musicgen-small": "checkpoints/course-musicgen",  # trained on course music (lesson 04)
    "teticio/audio-diffusion-instrumental-hiphop-256": "checkpoints/mel-diffusion-64",
}


def checkpoint_dir(name: str) -> Path:
    """Where the shipped checkpoint ``name`` (a key of :data:`SHIPPED`) lives: ``<repo>/checkpoints/<name>``.

    The repository is the folder above the ``course_lib`` package (a clone, ``pip install -e .``);
    failing that, the current folder and its parents are searched (a notebook run from a clone).
    """
    if name not in SHIPPED:
        raise CourseInputError(f"name: {name!r} is not a shipped checkpoint; choose one of {sorted(SHIPPED)}.")
    rel = Path("checkpoints") / name
    cwd = Path.cwd().resolve()
    candidates = [REPO_ROOT / rel] + [p / rel for p in (cwd, *cwd.parents)]
    for c in candidates:
        if (c / "config.json").is_file() or (c / "model_index.json").is_file():  # a model or a pipeline folder
            return c
    return candidates[0]


def missing_checkpoint_error(name: str, folder: Path) -> CourseInputError:
    """The error for a shipped checkpoint that is not where it should be, with the command that rebuilds it."""
    return CourseInputError(
        f"folder: the shipped checkpoint {name!r} was not found at {str(folder)!r}; run this from a clone of "
        f"the course (pip install -e .), or make it with `python {SHIPPED[name]}`."
    )


def _check_hub_id(hub_id: Any) -> str:
    if not isinstance(hub_id, str) or not hub_id.strip():
        raise CourseInputError(
            f"hub_id: expected a model id such as 'facebook/musicgen-small', got {hub_id!r}."
        )
    return hub_id.strip()


def standin_dir(hub_id: str, root: str | os.PathLike | None = None) -> Path | None:
    """The local stand-in folder registered for ``hub_id`` (or ``None`` if it has none).

    The folder is looked up under ``root`` (default: the repository that holds ``course_lib``);
    it is returned whether or not it exists yet.
    """
    hub_id = _check_hub_id(hub_id)
    rel = STANDINS.get(hub_id)
    if rel is None:
        return None
    return Path(root if root is not None else REPO_ROOT) / rel


def _check_saved_dir(path: Path, name: str, hint: str) -> Path:
    if not path.is_dir():
        raise CourseInputError(f"{name}: the folder {str(path)!r} does not exist. {hint}")
    if not ((path / "config.json").is_file() or (path / "model_index.json").is_file()):
        raise CourseInputError(
            f"{name}: {str(path)!r} holds no config.json (a model) or model_index.json (a pipeline), so it "
            f"is not a save_pretrained folder. {hint}"
        )
    return path


def resolve_pretrained(
    hub_id: str,
    local_dir: str | os.PathLike | None = None,
    *,
    online: bool | None = None,
) -> str:
    """What to pass to ``from_pretrained``: ``hub_id`` online, a local folder offline.

    Args:
        hub_id: the Hub id of the real model, e.g. ``"facebook/musicgen-small"``.
        local_dir: the stand-in folder to use offline; default: the one registered in
            :data:`STANDINS` for ``hub_id``.
        online: force the answer; default :func:`course_lib.settings.is_online` (which honours
            ``HF_HUB_OFFLINE`` and ``COURSE_OFFLINE`` and otherwise probes within a second).

    Offline, the Hub libraries are told so (:func:`course_lib.settings.go_offline`) and an id
    with no stand-in raises :class:`CourseInputError` at once instead of retrying for minutes.
    """
    hub_id = _check_hub_id(hub_id)
    if online is not None and not isinstance(online, bool):
        raise CourseInputError(f"online: expected True, False or None, got {online!r}.")
    if online is None:
        online = settings.is_online()
    if online:
        return hub_id
    settings.go_offline()
    how_online = (
        "To use the real model, connect to the internet and unset HF_HUB_OFFLINE / COURSE_OFFLINE "
        "(or set COURSE_OFFLINE=0), then run the parameters cell again."
    )
    if local_dir is not None:
        if not isinstance(local_dir, (str, os.PathLike)):
            raise CourseInputError(f"local_dir: expected a folder path, got {type(local_dir).__name__}.")
        path = Path(local_dir)
        return str(_check_saved_dir(path, "local_dir", f"Give a folder written by save_pretrained. {how_online}"))
    path = standin_dir(hub_id)
    if path is None:
        known = ", ".join(sorted(STANDINS)) or "none"
        raise CourseInputError(
            f"hub_id: {hub_id!r} cannot be loaded offline: the course ships no local stand-in for it. "
            f"Ids with stand-ins: {known}. {how_online} Or pass local_dir= a folder you saved with "
            "save_pretrained."
        )
    script = SHIPPED.get(Path(STANDINS[hub_id]).name, "its script")
    return str(_check_saved_dir(path, "hub_id", f"Rebuild the course's model with `python {script}` from the "
                                                "repository root."))


def resolve_online_only(hub_id: str, offline_hint: str) -> str:
    """:func:`resolve_pretrained` for a model the course has no stand-in for: offline, its error plus
    ``offline_hint`` (what the lesson uses instead). Returns the Hub id online."""
    online = settings.is_online()
    try:
        return resolve_pretrained(hub_id, online=online)
    except CourseInputError as error:
        if online:
            raise
        raise CourseInputError(f"{error} {offline_hint}") from error


def is_standin(source: str) -> bool:
    """True when ``source`` (an answer of :func:`resolve_pretrained`) is a local folder, not a Hub id."""
    if not isinstance(source, (str, os.PathLike)):
        raise CourseInputError(f"source: expected a Hub id or folder path, got {type(source).__name__}.")
    return Path(source).is_dir()
