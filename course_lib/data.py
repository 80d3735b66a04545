"""Dataset rows, course-made offline datasets, and on-disk caching.

- :func:`audio_array` reads the audio out of a Hugging Face ``datasets`` row, whichever way the
  installed version hands it over (a dict with ``array`` before datasets 4, a torchcodec
  ``AudioDecoder`` since).
- :func:`make_clip_folder`, :func:`make_music_dataset` and :func:`make_drum_dataset` build the
  course's offline stand-ins for Hub data from :mod:`course_lib.synth`.
- :func:`cached_tensors` computes a dict of tensors once and keeps it in a safetensors file
  named after a hash of the parameters, so a re-run of a notebook skips the slow part.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import soundfile as sf
import torch

from course_lib import synth
from course_lib.validate import CourseInputError, as_float_tensor, check_choice, check_positive_int, check_sample_rate, prepare_output_dir

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = [
    "CACHE_VERSION",
    "CLIP_KINDS",
    "audio_array",
    "make_clip_folder",
    "make_music_dataset",
    "make_drum_dataset",
    "cache_dir",
    "cache_key",
    "cached_tensors",
]

CACHE_VERSION = 1  # bump when the course-made data changes, so old cache entries are not reused
CLIP_KINDS = ("tone", "chord", "drum", "music")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
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
# Course-made data
# ----------------------------------------------------------------------------------------------


def _fraction(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not (0 <= x <= 1):
        raise CourseInputError(f"{name}: expected a fraction between 0 and 1, got {x!r}.")
    return float(x)


def _duration(x: Any, name: str = "duration", low: float = 0.05, high: float = 600.0) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not math.isfinite(x):
        raise CourseInputError(f"{name}: expected a number of seconds, got {x!r}.")
    if not (low <= float(x) <= high):
        raise CourseInputError(f"{name}: {x!r} s is outside {low:g} to {high:g} s.")
    return float(x)


def _seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CourseInputError(f"seed: expected a non-negative integer, got {seed!r}.")
    return int(seed)


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes of a (T,) or (T, channels) float array."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _clip(kind: str, rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """One course-made clip of the given kind, float32 mono."""
    if kind == "tone":
        midi = int(rng.integers(48, 85))
        waveform = synth.WAVEFORMS[int(rng.integers(len(synth.WAVEFORMS)))]
        x = synth.tone(synth.midi_to_hz(midi), seconds, sr, waveform, amplitude=1.0)
        return x * synth.adsr(seconds, sr, attack=0.02, decay=0.1, sustain=0.7, release=min(0.2, seconds / 3))
    if kind == "chord":
        root = int(rng.integers(48, 73))
        third = 4 if rng.random() < 0.5 else 3
        freqs = [float(synth.midi_to_hz(root + i)) for i in (0, third, 7)]
        x = synth.chord(freqs, seconds, sr, str(rng.choice(["sine", "triangle"])), amplitude=1.0)
        return x * synth.adsr(seconds, sr, attack=0.05, decay=0.2, sustain=0.8, release=min(0.3, seconds / 3))
    if kind == "drum":
        cls = synth.DRUM_CLASSES[int(rng.integers(len(synth.DRUM_CLASSES)))]
        length = max(16, int(round(seconds * sr)))
        return synth.drum_one_shot(cls, rng, sr, length)
    style = synth.MUSIC_STYLES[int(rng.integers(len(synth.MUSIC_STYLES)))]
    return synth.music_clip(style, seconds, sr, seed=int(rng.integers(2**31)))


def make_clip_folder(folder: str | os.PathLike, n: int = 12, seed: int = 0,
                     sample_rates: Sequence[int] = (8000, 22050), duration: float = 1.0,
                     short_fraction: float = 0.25, stereo_fraction: float = 0.0,
                     kinds: Sequence[str] = CLIP_KINDS) -> list[Path]:
    """Write ``n`` course-made 16-bit WAV clips into ``folder`` and return their paths.

    The clips are deliberately untidy, like real collections: sample rates vary (drawn from
    ``sample_rates``), a ``short_fraction`` of them are 30-70 % of ``duration`` long, levels
    vary, and a ``stereo_fraction`` are stereo. Kinds cycle through ``kinds`` (tones, chords,
    drum hits, music snippets). Files are named ``clip_000_tone.wav`` and so on; the same
    arguments always write the same files.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise CourseInputError(f"folder: expected a folder path, got {type(folder).__name__}.")
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise CourseInputError(f"folder: {str(out)!r} is a file; give a folder path.")
    count = check_positive_int(n, "n")
    if count > 10_000:
        raise CourseInputError(f"n: {count} clips is too many for a demo folder; use at most 10000.")
    master = np.random.default_rng(_seed(seed))
    if isinstance(sample_rates, (str, bytes)) or not isinstance(sample_rates, (list, tuple)) or not sample_rates:
        raise CourseInputError(f"sample_rates: expected a non-empty list such as (8000, 22050), got {sample_rates!r}.")
    rates = [check_sample_rate(r, "sample_rates") for r in sample_rates]
    if min(rates) < 8000:
        raise CourseInputError(f"sample_rates: {min(rates)} Hz is too low for these clips; use at least 8000 Hz.")
    seconds = _duration(duration)
    short = _fraction(short_fraction, "short_fraction")
    stereo = _fraction(stereo_fraction, "stereo_fraction")
    if isinstance(kinds, str) or not isinstance(kinds, (list, tuple)) or not kinds:
        raise CourseInputError(f"kinds: expected a non-empty list drawn from {CLIP_KINDS}, got {kinds!r}.")
    for k in kinds:
        check_choice(k, "kinds", CLIP_KINDS)
    out.mkdir(parents=True, exist_ok=True)

    rate_of = master.permutation(np.resize(np.array(rates), count))
    is_short = master.permutation(np.arange(count) < int(round(short * count)))
    is_stereo = master.permutation(np.arange(count) < int(round(stereo * count)))
    paths = []
    for i in range(count):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), i]))
        kind = kinds[i % len(kinds)]
        sr = int(rate_of[i])
        length = seconds * (rng.uniform(0.3, 0.7) if is_short[i] else 1.0)
        x = _clip(kind, rng, length, sr).astype(np.float64)
        peak = np.abs(x).max()
        x = x * (rng.uniform(0.3, 0.9) / peak) if peak > 0 else x
        if is_stereo[i]:
            pan = rng.uniform(0.3, 0.7)
            x = np.stack([np.sqrt(1 - pan) * x, np.sqrt(pan) * x], axis=1)
        path = out / f"clip_{i:03d}_{kind}.wav"
        sf.write(path, x, sr, subtype="PCM_16")
        paths.append(path)
    return paths


def _check_styles(styles: Any) -> list[str]:
    if styles is None:
        return list(synth.MUSIC_STYLES)
    if isinstance(styles, str) or not isinstance(styles, (list, tuple)) or not styles:
        raise CourseInputError(f"styles: expected a non-empty list drawn from {synth.MUSIC_STYLES}, got {styles!r}.")
    for s in styles:
        check_choice(s, "styles", synth.MUSIC_STYLES)
    if len(set(styles)) != len(styles):
        raise CourseInputError(f"styles: {list(styles)} names a style twice; list each once.")
    return list(styles)


def _song_seed(seed: int, i: int) -> int:
    """The music_clip seed of song i: depends only on (seed, i), and fits a 31-bit int."""
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0] >> 1)


def make_music_dataset(styles: Sequence[str] | None = None, n_per_style: int = 4, duration: float = 5.0,
                       sample_rate: int = 44100, seed: int = 0) -> "datasets.Dataset":
    """A ``datasets.Dataset`` of course-made music with the columns of ``lewtun/music_genres``.

    Columns: ``audio`` (an ``Audio`` feature holding 16-bit WAV bytes), ``song_id`` (int; it is
    also the seed, so ``synth.music_clip(genre, duration, sample_rate, seed=song_id)`` rebuilds
    the song), ``genre_id`` (the index in ``synth.MUSIC_STYLES``) and ``genre`` (the style name).
    Rows cycle through the styles. It is built in memory: about 2 bytes per sample.
    """
    import datasets

    chosen = _check_styles(styles)
    per = check_positive_int(n_per_style, "n_per_style")
    seconds = _duration(duration, low=0.1)
    sr = check_sample_rate(sample_rate)
    if sr < 8000:
        raise CourseInputError(f"sample_rate: {sr} Hz is too low for music; use at least 8000 Hz.")
    base = _seed(seed)
    rows: dict[str, list] = {"audio": [], "song_id": [], "genre_id": [], "genre": []}
    for i in range(per):
        song = _song_seed(base, i)
        for style in chosen:
            clip = synth.music_clip(style, seconds, sr, seed=song)
            rows["audio"].append({"bytes": _wav_bytes(clip, sr), "path": f"{style}_{song}.wav"})
            rows["song_id"].append(song)
            rows["genre_id"].append(synth.MUSIC_STYLES.index(style))
            rows["genre"].append(style)
    features = datasets.Features({
        "audio": datasets.Audio(sampling_rate=sr),
        "song_id": datasets.Value("int64"),
        "genre_id": datasets.Value("int64"),
        "genre": datasets.Value("string"),
    })
    return datasets.Dataset.from_dict(rows, features=features)


def make_drum_dataset(n_per_class: int = 8, seed: int = 0, sample_rate: int = 44100, length: int = 32768,
                      classes: Sequence[str] = synth.DRUM_CLASSES) -> "datasets.Dataset":
    """A ``datasets.Dataset`` of drum one-shots: columns ``audio`` (``Audio`` feature, 16-bit WAV),
    ``label`` (a ``ClassLabel`` over ``synth.DRUM_CLASSES``) and ``label_name``.

    The rows are those of :func:`course_lib.synth.drum_dataset` with the same arguments.
    """
    import datasets

    sr = check_sample_rate(sample_rate)
    audio, labels = synth.drum_dataset(n_per_class, _seed(seed), sr, length, stereo=False, classes=classes)
    rows = {
        "audio": [{"bytes": _wav_bytes(x, sr), "path": f"{synth.DRUM_CLASSES[y]}_{i:05d}.wav"}
                  for i, (x, y) in enumerate(zip(audio, labels))],
        "label": [int(y) for y in labels],
        "label_name": [synth.DRUM_CLASSES[int(y)] for y in labels],
    }
    features = datasets.Features({
        "audio": datasets.Audio(sampling_rate=sr),
        "label": datasets.ClassLabel(names=list(synth.DRUM_CLASSES)),
        "label_name": datasets.Value("string"),
    })
    return datasets.Dataset.from_dict(rows, features=features)


# ----------------------------------------------------------------------------------------------
# Caching
# ----------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The course's cache folder: ``$COURSE_CACHE`` if set, else ``~/.cache/course_lib``; created if needed."""
    raw = os.environ.get("COURSE_CACHE", "").strip()
    path = Path(raw).expanduser() if raw else Path.home() / ".cache" / "course_lib"
    if path.exists() and not path.is_dir():
        raise CourseInputError(f"COURSE_CACHE: {str(path)!r} is a file; point it at a folder.")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _params_json(params: Mapping[str, Any]) -> str:
    try:
        return json.dumps({"version": CACHE_VERSION, "params": dict(params)}, sort_keys=True,
                          separators=(",", ":"), default=_jsonable, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise CourseInputError(
            f"params: every value must be plain data (numbers, strings, lists, dicts, no NaN) so it can "
            f"name a cache file: {err}."
        ) from err


def cache_key(**params: Any) -> str:
    """A short, stable hash of the parameters (and the cache version), for naming cache files.

    The same parameters give the same key in every session; any change gives a new one.
    """
    return hashlib.sha256(_params_json(params).encode()).hexdigest()[:16]


def _as_tensors(result: Any) -> dict[str, torch.Tensor]:
    if not isinstance(result, Mapping) or not result:
        raise CourseInputError(
            f"compute_fn: must return a non-empty dict of name -> tensor, got {type(result).__name__}."
        )
    tensors = {}
    for key, value in result.items():
        if not isinstance(key, str):
            raise CourseInputError(f"compute_fn: dict keys must be strings, got {key!r}.")
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor):
            raise CourseInputError(
                f"compute_fn: the value for {key!r} is a {type(value).__name__}; return tensors or NumPy arrays."
            )
        tensors[key] = value.detach().cpu().contiguous().clone()
    return tensors


def cached_tensors(name: str, params: Mapping[str, Any], compute_fn: Callable[[], Mapping[str, Any]],
                   folder: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """Return ``compute_fn()``'s dict of tensors, computed once and then read from disk.

    The file is ``<folder or cache_dir()>/<name>-<cache_key(**params)>.safetensors``. A new
    result is written to a temporary file and then renamed into place, so an interrupted run
    never leaves half a file; a corrupt or mismatched file is recomputed with a warning.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open, save_file

    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise CourseInputError(
            f"name: {name!r} must be 1-100 letters, digits, '_', '-' or '.', e.g. 'mel_stats'."
        )
    if not isinstance(params, Mapping):
        raise CourseInputError(f"params: expected a dict of settings, got {type(params).__name__}.")
    if not callable(compute_fn):
        raise CourseInputError(f"compute_fn: expected a function taking no arguments, got {compute_fn!r}.")
    if folder is None:
        root = cache_dir()
    else:
        root = prepare_output_dir(folder, "folder")
    params_json = _params_json(params)
    path = root / f"{name}-{cache_key(**params)}.safetensors"

    if path.exists():
        try:
            with safe_open(str(path), framework="pt") as handle:
                stored = (handle.metadata() or {}).get("params")
            if stored != params_json:
                raise ValueError("it was written for other parameters")
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            warnings.warn(f"cache file {str(path)!r} is unreadable ({err}); computing it again.", stacklevel=2)

    tensors = _as_tensors(compute_fn())
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=root)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"name": name, "params": params_json})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return tensors

