"""Hugging Face ``datasets`` with audio: load one whose audio reads on any machine, and read a row's audio.

- :func:`audio_array` reads the audio out of a ``datasets`` row, whichever way the installed
  version hands it over (a dict with ``array`` before datasets 4, a torchcodec ``AudioDecoder``
  since, or the undecoded ``bytes`` / ``path`` of the file).
- :func:`load_audio_dataset` is ``datasets.load_dataset`` whose audio still reads where torchcodec
  cannot load (it falls back to undecoded bytes that :func:`audio_array` decodes with soundfile).
- :func:`torchcodec_problem` says why ``datasets`` cannot decode audio on this machine.

The course's offline stand-ins for Hub datasets, with the same columns, are made by
:func:`course_lib.data.make_music_dataset` and :func:`course_lib.data.make_drum_dataset`.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import torch

from course_lib.validate import CourseInputError, as_float_tensor, check_sample_rate

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = [
    "audio_array",
    "torchcodec_problem",
    "load_audio_dataset",
]

_MAX_CHANNELS = 16


# ----------------------------------------------------------------------------------------------
# Reading audio out of dataset rows
# ----------------------------------------------------------------------------------------------


def _is_row(value: Mapping, column: str) -> bool:
    """A whole dataset row (audio under ``column``) rather than an audio value itself."""
    if column in value and "array" not in value and "bytes" not in value:
        return True
    return not any(k in value for k in ("array", "bytes", "path", "sampling_rate"))


def _channels_first(data: np.ndarray, name: str) -> np.ndarray:
    """Return a (channels, time) array from (time,), (channels, time) or (time, channels)."""
    if data.ndim == 1:
        return data[None, :]
    rows, cols = data.shape
    if rows <= _MAX_CHANNELS and rows <= cols:
        return data
    if cols <= _MAX_CHANNELS and cols < rows:
        return data.T
    raise CourseInputError(
        f"{name}: shape {data.shape} does not look like (channels, samples) or (samples, channels); "
        f"audio has at most {_MAX_CHANNELS} channels."
    )


def _decode_bytes(value: Mapping, name: str) -> tuple[np.ndarray, int]:
    """Decode an undecoded ``{"bytes", "path"}`` value (``Audio(decode=False)``) with soundfile."""
    source: Any = io.BytesIO(value["bytes"]) if value.get("bytes") else value.get("path")
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
        raise CourseInputError(f"{name}: the audio file {str(source)!r} does not exist; the dataset may be moved.")
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types for corrupt or non-audio data
        raise CourseInputError(
            f"{name}: could not decode the audio ({err}); the file may be corrupt or not audio."
        ) from err
    return data.T, int(sr)


def audio_array(example: Any, mono: bool = True, column: str = "audio") -> tuple[np.ndarray, int]:
    """``(samples, sampling_rate)`` from a dataset row or its audio value, as float32 NumPy.

    Accepts a whole row (the ``column`` entry is used), the old dict ``{"array",
    "sampling_rate", "path"}``, an undecoded ``{"bytes", "path"}`` dict, or the torchcodec
    ``AudioDecoder`` that datasets >= 4 returns. With ``mono=True`` (default) channels are
    averaged into shape (T,); with ``mono=False`` the result is (channels, T), even for mono.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    if not isinstance(mono, (bool, np.bool_)):
        raise CourseInputError(f"mono: expected True or False, got {mono!r}.")
    if not isinstance(column, str):
        raise CourseInputError(f"column: expected a column name such as 'audio', got {column!r}.")
    value = example
    name = "example"
    if isinstance(value, Mapping) and _is_row(value, column):
        if column not in value:
            raise CourseInputError(
                f"example: this row has no {column!r} column (its columns are {sorted(map(str, value))}); "
                "pass a row of an audio dataset, or name the audio column with column=..."
            )
        value = value[column]
        name = f"example[{column!r}]"
    if isinstance(value, Mapping):
        if value.get("array") is not None:
            if value.get("sampling_rate") is None:
                raise CourseInputError(
                    f"{name}: has an 'array' but no 'sampling_rate'; pass the whole audio dict from the dataset."
                )
            tensor = as_float_tensor(value["array"], f"{name}['array']", min_ndim=1, max_ndim=2)
            data = _channels_first(tensor.detach().cpu().numpy(), f"{name}['array']")
            sr = check_sample_rate(value["sampling_rate"], f"{name}['sampling_rate']")
        elif value.get("bytes") or value.get("path"):
            data, sr = _decode_bytes(value, name)
        else:
            raise CourseInputError(
                f"{name}: this dict holds no audio (keys {sorted(map(str, value))}); expected 'array' and "
                "'sampling_rate', or 'bytes'/'path'."
            )
    elif hasattr(value, "get_all_samples"):
        try:
            samples = value.get_all_samples()
        except Exception as err:
            raise CourseInputError(f"{name}: the AudioDecoder could not decode this audio ({err}).") from err
        tensor = as_float_tensor(samples.data, f"{name} samples", min_ndim=1, max_ndim=2)
        data = _channels_first(tensor.detach().cpu().numpy(), f"{name} samples")
        sr = check_sample_rate(samples.sample_rate, f"{name} sample_rate")
    elif isinstance(value, (np.ndarray, torch.Tensor, list, tuple)):
        raise CourseInputError(
            f"{name}: got a bare array without its sampling rate; pass the dataset row (or row['audio']), "
            "whose audio carries 'sampling_rate'."
        )
    else:
        raise CourseInputError(
            f"{name}: cannot read audio from a {type(value).__name__}; expected a dataset row, a dict with "
            "'array' and 'sampling_rate', or an AudioDecoder from datasets >= 4."
        )
    if not np.all(np.isfinite(data)):
        raise CourseInputError(f"{name}: the decoded audio contains NaN or infinite values.")
    if data.shape[-1] == 0:
        raise CourseInputError(f"{name}: the audio is empty (0 samples).")
    out = data.mean(axis=0) if mono else data
    return np.array(out, dtype=np.float32, copy=True), sr


# ----------------------------------------------------------------------------------------------
# Loading a dataset whose audio decodes everywhere
# ----------------------------------------------------------------------------------------------


def torchcodec_problem() -> str | None:
    """Why ``datasets`` cannot decode audio on this machine, or ``None`` when it can.

    ``datasets`` >= 4 decodes its ``Audio`` feature with torchcodec, which needs the FFmpeg shared
    libraries and a build that matches the installed torch. Importing ``torchcodec.decoders`` loads
    both, so it fails for a missing package and for an unloadable one alike.
    """
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception as err:  # ImportError when missing, RuntimeError/OSError when FFmpeg or torch mismatch
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{type(err).__name__}: {first}".rstrip(": ")
    return None


def load_audio_dataset(path: str | os.PathLike, split: str = "train", column: str = "audio",
                       **kwargs: Any) -> "datasets.Dataset":
    """``datasets.load_dataset(path, split=split)`` whose audio column can be read on any machine.

    ``path`` is a Hub dataset id (``"lewtun/music_genres"``) or a local folder of data files. If
    torchcodec works (see :func:`torchcodec_problem`) the dataset comes back as ``load_dataset``
    gives it. If not (no torchcodec, or no FFmpeg, as on some Colab images), the audio column is
    cast to ``Audio(decode=False)``: each row then holds the encoded file, and :func:`audio_array`
    decodes it with soundfile. Either way ``audio_array(row)`` returns the same samples. Extra
    keyword arguments go to ``load_dataset``.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    import datasets

    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise CourseInputError(f"path: expected a dataset id such as 'lewtun/music_genres' or a folder, got {path!r}.")
    if not isinstance(split, str) or not split:
        raise CourseInputError(f"split: expected a split name such as 'train', got {split!r}.")
    source = str(path).strip()
    local = Path(source).expanduser().exists()
    if not local and not _looks_like_hub_id(source):
        raise CourseInputError(
            f"path: {source!r} is neither an existing folder nor a Hub dataset id ('owner/name'); check the spelling."
        )
    if not local and _env_true("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        raise CourseInputError(
            f"path: {source!r} is a Hub dataset but this machine is offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE "
            "is set). Go online and unset it, or use the course-made stand-in, e.g. "
            "course_lib.data.make_music_dataset()."
        )
    try:
        dataset = datasets.load_dataset(source, split=split, **kwargs)
    except (ConnectionError, OSError, ValueError, FileNotFoundError) as err:
        raise CourseInputError(
            f"path: could not load {source!r} split {split!r} ({type(err).__name__}: {str(err)[:300]}). "
            "Check the id, the split name and the network, or use the course-made stand-in "
            "course_lib.data.make_music_dataset()."
        ) from err
    feature = dataset.features.get(column)
    if feature is None:
        raise CourseInputError(
            f"column: {source!r} has no {column!r} column (its columns are {list(dataset.features)}); "
            "name the audio column with column=..."
        )
    if not isinstance(feature, datasets.Audio):
        raise CourseInputError(f"column: {column!r} of {source!r} is {type(feature).__name__}, not an Audio column.")
    problem = torchcodec_problem()
    if problem is not None and feature.decode:
        warnings.warn(
            f"torchcodec cannot decode audio here ({problem}); the {column!r} column is left undecoded and "
            "course_lib.hub_datasets.audio_array decodes it with soundfile instead.", stacklevel=2,
        )
        dataset = dataset.cast_column(column, datasets.Audio(decode=False))
    return dataset


def _looks_like_hub_id(text: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?", text) is not None


def _env_true(*names: str) -> bool:
    return any(os.environ.get(n, "").strip().lower() in {"1", "true", "yes", "on"} for n in names)
