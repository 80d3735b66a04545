"""Course-made offline datasets, on-disk caching, and lesson 03's genre fine-tuning data.

- :func:`make_clip_folder`, :func:`make_music_dataset` and :func:`make_drum_dataset` build the
  course's offline stand-ins for Hub data from :mod:`course_lib.synth`. Loading Hub datasets and
  reading the audio of their rows (``load_audio_dataset``, ``audio_array``) is
  :mod:`course_lib.hub_datasets`.
- :func:`cached_tensors` computes a dict of tensors once and keeps it in a safetensors file
  named after a hash of the parameters, so a re-run of a notebook skips the slow part.
- Lesson 03's genre fine-tuning data: :func:`genre_table` / :func:`select_genre` pick a genre,
  :class:`CachedMelSlices` serves random mel slices from whole-clip spectrograms computed once
  (and cached), and :func:`tutorial_dataloader` is the tutorial's do-it-all-in-collate path.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import soundfile as sf
import torch

from course_lib import synth
from course_lib.settings import make_generator
from course_lib.hub_datasets import audio_array
from course_lib.io import load_tensors, prepare_output_dir, save_tensors
from course_lib.validate import CourseInputError, check_choice, check_positive_int, check_sample_rate

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = [
    "CACHE_VERSION",
    "CLIP_KINDS",
    "make_clip_folder",
    "make_music_dataset",
    "make_drum_dataset",
    "cache_dir",
    "cache_key",
    "cached_tensors",
    "GENRE_COLUMNS",
    "SHORT_CLIP_POLICIES",
    "genre_table",
    "format_genre_table",
    "select_genre",
    "stream_genre",
    "CachedMelSlices",
    "tutorial_dataloader",
]

CACHE_VERSION = 1  # bump when the course-made data changes, so old cache entries are not reused
CLIP_KINDS = ("tone", "chord", "drum", "music")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


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


def make_music_dataset(styles: Sequence[str] | None = None, n_per_style: int | Mapping[str, int] = 4,
                       duration: float = 5.0, sample_rate: int = 44100, seed: int = 0) -> "datasets.Dataset":
    """A ``datasets.Dataset`` of course-made music with the columns of ``lewtun/music_genres``.

    ``n_per_style`` is one count for every style, or a mapping ``{style: count}`` (its keys are then
    the styles, unless ``styles`` is given too), so the genre sizes can be as uneven as a real
    dataset's, e.g. ``{"rock": 12, "techno": 11, "hiphop": 8, "ambient": 8, "chiptune": 6, "jazz": 3}``.

    Columns: ``audio`` (an ``Audio`` feature holding 16-bit WAV bytes), ``song_id`` (int; it is
    also the seed, so ``synth.music_clip(genre, duration, sample_rate, seed=song_id)`` rebuilds
    the song), ``genre_id`` (the index in ``synth.MUSIC_STYLES``) and ``genre`` (the style name).
    Rows cycle through the styles. It is built in memory: about 2 bytes per sample.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    import datasets

    if isinstance(n_per_style, Mapping):
        chosen = _check_styles(list(n_per_style) if styles is None else styles)
        unknown = [k for k in n_per_style if k not in chosen]
        if unknown:
            raise CourseInputError(f"n_per_style: {unknown} are not among the styles {chosen}; "
                                   "name each style once, as in synth.MUSIC_STYLES.")
        counts = {s: check_positive_int(n_per_style.get(s, 0), f"n_per_style[{s!r}]", minimum=0) for s in chosen}
        if not any(counts.values()):
            raise CourseInputError("n_per_style: every count is 0; ask for at least one clip.")
    else:
        chosen = _check_styles(styles)
        per_style = check_positive_int(n_per_style, "n_per_style")
        counts = {s: per_style for s in chosen}
    per = max(counts.values())
    seconds = _duration(duration, low=0.1)
    sr = check_sample_rate(sample_rate)
    if sr < 8000:
        raise CourseInputError(f"sample_rate: {sr} Hz is too low for music; use at least 8000 Hz.")
    base = _seed(seed)
    rows: dict[str, list] = {"audio": [], "song_id": [], "genre_id": [], "genre": []}
    for i in range(per):
        song = _song_seed(base, i)
        for style in chosen:
            if i >= counts[style]:
                continue
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
    result is written atomically (:func:`course_lib.io.save_tensors`), so an interrupted run
    never leaves half a file; a corrupt or mismatched file is recomputed with a warning.
    """
    from safetensors import SafetensorError, safe_open

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
            return load_tensors(path, "cache file")
        except (SafetensorError, OSError, ValueError, RuntimeError, CourseInputError) as err:
            warnings.warn(f"cache file {str(path)!r} is unreadable ({err}); computing it again.", stacklevel=2)

    tensors = _as_tensors(compute_fn())
    save_tensors(path, tensors, metadata={"name": name, "params": params_json})
    return tensors


# ----------------------------------------------------------------------------------------------
# Genre fine-tuning data (lesson 03)
# ----------------------------------------------------------------------------------------------
#
# Lesson 03 fine-tunes a spectrogram diffusion model on the clips of one genre, showing it "a
# random slice per clip per epoch". The tutorial way does all the work in the DataLoader's
# collate function: decode, resample 44.1 kHz -> 22.05 kHz, cut a slice, run the mel transform,
# for every clip of every batch of every epoch (:func:`tutorial_dataloader`). Almost all of that
# work gives the same answer every epoch: only the slice position changes. So
# :class:`CachedMelSlices` decodes and resamples each clip once, computes the mel spectrogram of
# the *whole* clip once, keeps it on disk, and then a random slice is a random crop of it.
#
# One subtlety: a diffusers-style image is scaled relative to its own loudest pixel (dB from
# ``ref=max``, floored at ``-top_db``). A crop of an image scaled for the whole clip would be
# darker than the image of that slice whenever the slice is quieter than the loudest moment of
# the clip, and quiet detail below the clip's floor would be lost. The cache therefore keeps the
# mel power in dB (float32) and each crop is scaled to grey levels on its own, exactly as
# ``Mel.audio_slice_to_image`` scales a slice.

GENRE_COLUMNS = ("genre", "genre_id")
SHORT_CLIP_POLICIES = ("pad", "skip", "error")
_MEL_SLICES_FORMAT = 1  # bump when the layout of the cached tensors changes
_CLIP_USED, _CLIP_PADDED, _CLIP_SKIPPED = 0, 1, 2


def _column_names(dataset: Any, name: str = "dataset") -> list[str]:
    """The column names of a ``datasets.Dataset`` or of a list of row dicts; refuse other things."""
    names = getattr(dataset, "column_names", None)
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(dataset, Sequence) and not isinstance(dataset, (str, bytes)):
        if len(dataset) and isinstance(dataset[0], Mapping):
            return [str(k) for k in dataset[0]]
        if not len(dataset):
            return []
    raise CourseInputError(
        f"{name}: expected a datasets.Dataset or a list of row dicts, got {type(dataset).__name__}. "
        "For a streaming dataset take some rows first, e.g. list(ds.take(200))."
    )


def _require_columns(dataset: Any, needed: Sequence[str], name: str = "dataset") -> None:
    """Refuse an empty dataset, or one without the ``needed`` columns, naming what it has."""
    columns = _column_names(dataset, name)
    if len(dataset) == 0:
        raise CourseInputError(f"{name}: it has no rows; check the split or the genre you selected.")
    missing = [c for c in needed if c not in columns]
    if missing:
        raise CourseInputError(
            f"{name}: it has no {', '.join(map(repr, missing))} column (its columns are {columns}); "
            "use a dataset with the columns of lewtun/music_genres (audio, song_id, genre_id, genre), "
            "e.g. course_lib.data.make_music_dataset()."
        )


def _column(dataset: Any, column: str) -> list[Any]:
    """One column as a Python list, without touching the others (so no audio is decoded)."""
    if getattr(dataset, "column_names", None) is not None:
        return list(dataset[column])
    return [row[column] for row in dataset]


def genre_table(dataset: Any) -> list[tuple[str, int, int]]:
    """``(genre, genre_id, count)`` for every genre of a music-genres dataset, most clips first.

    Reads only the ``genre`` and ``genre_id`` columns (no audio is decoded), so it takes
    milliseconds even on the full ``lewtun/music_genres`` split. Ties are sorted by name.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    _require_columns(dataset, GENRE_COLUMNS)
    counts: dict[tuple[str, int], int] = {}
    for genre, genre_id in zip(_column(dataset, "genre"), _column(dataset, "genre_id")):
        key = (str(genre), int(genre_id))
        counts[key] = counts.get(key, 0) + 1
    return sorted(((g, i, n) for (g, i), n in counts.items()), key=lambda r: (-r[2], r[0].casefold(), r[1]))


def format_genre_table(table: Sequence[tuple[str, int, int]]) -> str:
    """A printable, aligned form of :func:`genre_table`'s rows, with each genre's share and a total.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    if isinstance(table, (str, bytes)) or not isinstance(table, Sequence) or not table or not all(
            isinstance(r, tuple) and len(r) == 3 for r in table):
        raise CourseInputError(
            "table: expected the list of (genre, genre_id, count) rows that genre_table(dataset) returns."
        )
    total = sum(int(r[2]) for r in table)
    width = max(5, *(len(str(r[0])) for r in table))
    lines = [f"{'genre':<{width}}  {'id':>4}  {'clips':>7}  {'share':>6}"]
    for genre, genre_id, count in table:
        lines.append(f"{genre:<{width}}  {genre_id:>4}  {count:>7}  {100.0 * count / total:>5.1f}%")
    lines.append(f"{'total':<{width}}  {'':>4}  {total:>7}  {100.0:>5.1f}%")
    return "\n".join(lines)


def _genre_key(name: str) -> str:
    """Case, spaces and punctuation do not count: 'Hip-Hop', 'hip hop' and 'hiphop' are one genre."""
    return re.sub(r"[\W_]+", "", name.casefold())


def select_genre(dataset: Any, genre: str | int) -> Any:
    """The rows of one genre, named by ``genre`` (case and punctuation ignored) or by its ``genre_id``.

    A ``datasets.Dataset`` gives a ``datasets.Dataset`` (``dataset.select``, no audio decoded);
    a list of rows gives a list. An unknown genre raises an error listing the genres there are.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    table = genre_table(dataset)
    if isinstance(genre, (int, np.integer)) and not isinstance(genre, bool):
        matches = [r for r in table if r[1] == int(genre)]
    elif isinstance(genre, str) and _genre_key(genre):
        matches = [r for r in table if _genre_key(r[0]) == _genre_key(genre)]
    else:
        raise CourseInputError(f"genre: expected a genre name such as 'Hip-Hop' or a genre_id, got {genre!r}.")
    if not matches:
        listing = ", ".join(f"{g} ({n})" for g, _, n in table)
        raise CourseInputError(f"genre: {genre!r} is not in this dataset; its genres are: {listing}.")
    if len({r[0] for r in matches}) > 1:
        raise CourseInputError(
            f"genre: {genre!r} matches several genres ({[r[0] for r in matches]}); give the exact name or the genre_id."
        )
    wanted = {(g, i) for g, i, _ in matches}
    pairs = zip(_column(dataset, "genre"), _column(dataset, "genre_id"))
    keep = [row for row, (g, i) in enumerate(pairs) if (str(g), int(i)) in wanted]
    if hasattr(dataset, "select") and getattr(dataset, "column_names", None) is not None:
        return dataset.select(keep)
    return [dataset[i] for i in keep]


def stream_genre(path: str, genre: str, n: int, split: str = "train", column: str = "audio",
                 max_rows: int | None = None) -> "datasets.Dataset":
    """The first ``n`` clips of one ``genre`` of a Hub music-genres dataset, streamed: only what is read is downloaded.

    ``lewtun/music_genres`` has about 25 000 clips of 30 s; downloading it whole to train on one genre costs
    gigabytes. Streaming reads the rows in order, keeps those whose ``genre`` matches (case and punctuation
    ignored, as in :func:`select_genre`) and stops at ``n`` (or after ``max_rows`` rows read). How far it
    reads depends on the genre's share: about ``n / share`` rows. The result is an in-memory
    ``datasets.Dataset`` with the same columns, whose audio :func:`course_lib.hub_datasets.audio_array` reads.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    import datasets

    from course_lib.hub_datasets import load_audio_dataset

    n = check_positive_int(n, "n")
    if max_rows is not None:
        max_rows = check_positive_int(max_rows, "max_rows")
    if not isinstance(genre, str) or not _genre_key(genre):
        raise CourseInputError(f"genre: expected a genre name such as 'Rock', got {genre!r}.")
    stream = load_audio_dataset(path, split=split, column=column, streaming=True)
    missing = [c for c in GENRE_COLUMNS if c not in (stream.features or {})]
    if missing:
        raise CourseInputError(f"path: {path!r} has no {missing} column(s) (it has {list(stream.features or {})}); "
                               "stream_genre needs a music-genres dataset such as 'lewtun/music_genres'.")
    stream = stream.cast_column(column, datasets.Audio(decode=False))  # keep the file's bytes: decoded on demand
    rows, read, seen = [], 0, set()
    for row in stream:
        read += 1
        seen.add(str(row["genre"]))
        if _genre_key(str(row["genre"])) == _genre_key(genre):
            rows.append(row)
            if len(rows) == n:
                break
        if max_rows is not None and read >= max_rows:
            break
    if not rows:
        raise CourseInputError(
            f"genre: no {genre!r} clip in the first {read} rows of {path!r}; genres seen: {sorted(seen)}. "
            "Check the name, or raise max_rows."
        )
    features = stream.features.copy()
    return datasets.Dataset.from_list(rows, features=features)


def _check_mel(mel: Any) -> Any:
    from course_lib.mel import Mel

    if not isinstance(mel, Mel):
        raise CourseInputError(
            f"mel: expected a course_lib.mel.Mel, got {type(mel).__name__}; e.g. "
            "Mel.from_config('checkpoints/mel-diffusion-64/mel') or pipe.mel."
        )
    return mel


def _check_epoch(epoch: Any) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise CourseInputError(f"epoch: expected a whole number ≥ 0, got {epoch!r}.")
    return int(epoch)


def _epoch_seed(seed: int, epoch: int, *more: int) -> int:
    """A 63-bit seed from (seed, epoch, ...): neighbouring epochs get unrelated random streams."""
    state = np.random.SeedSequence([seed, epoch, *more]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def _pixels_to_batch(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [-1, 1], as ``course_lib.diffusion.images_to_tensor``."""
    return pixels[:, None].to(torch.float32) / 255.0 * 2.0 - 1.0


def _dataset_identity(dataset: Any, column: str) -> str:
    """What names the clips in a cache key: a ``datasets`` fingerprint, else a hash of the audio."""
    fingerprint = getattr(dataset, "_fingerprint", None)
    if isinstance(fingerprint, str) and fingerprint:
        return f"datasets:{fingerprint}"
    digest = hashlib.sha256()
    for i, row in enumerate(dataset):
        audio, sr = audio_array(row, column=column)
        digest.update(f"{i}:{sr}:{audio.shape[0]}:".encode())
        digest.update(audio.tobytes())
    return f"sha256:{digest.hexdigest()[:24]}"


def _clip_db(audio: np.ndarray, mel: Any, n_frames: int) -> torch.Tensor:
    """The first ``n_frames`` frames of the clip's mel power in dB, as a float32 (frames, y_res) tensor.

    Same STFT (centred, zero-padded, periodic Hann), filter bank and ``10 log10(max(power, 1e-10))``
    as ``Mel.audio_slice_to_image`` uses before it scales a slice to grey levels.
    """
    from course_lib.spectrogram import mel_spectrogram

    power = mel_spectrogram(audio, sample_rate=mel.sr, n_fft=mel.n_fft, hop_length=mel.hop_length,
                            n_mels=mel.y_res, power=2.0, f_min=0.0, f_max=mel.sr / 2.0)
    return power[:, :n_frames].clamp_min(1e-10).log10_().mul_(10.0).t().contiguous()


def _crop_to_pixels(db: torch.Tensor, starts: torch.Tensor, x_res: int, top_db: float) -> torch.Tensor:
    """uint8 images (N, y_res, x_res) of the ``x_res``-frame crops of ``db`` (frames, y_res) at ``starts``.

    Each crop is scaled on its own, with the arithmetic of ``Mel.audio_slice_to_image``: dB from
    the crop's loudest value, floored at ``-top_db``, then ``floor((dB + top_db) * 255 / top_db + 0.5)``.
    """
    crops = db[starts[:, None] + torch.arange(x_res)]  # (N, x_res, y_res)
    log_s = crops - crops.amax(dim=(1, 2), keepdim=True)
    scaled = log_s.add_(top_db).mul_(255.0 / top_db).clamp_(0.0, 255.0).add_(0.5)
    return scaled.to(torch.uint8).transpose(1, 2).contiguous()


class CachedMelSlices:
    """Random mel-spectrogram slices of a set of clips, from whole-clip spectrograms computed once.

    ``CachedMelSlices(dataset, mel)`` decodes every clip of ``dataset`` (a ``datasets.Dataset``,
    e.g. one genre from :func:`select_genre`, or a list of rows) once with :func:`audio_array`
    (stereo is averaged to mono), resamples it to ``mel.sr``, and stores the mel power in dB of the
    whole clip, ``y_res`` bands by frames, with :func:`cached_tensors` (key: the dataset's
    fingerprint, or a hash of its audio, the Mel's ``sample_rate``, ``n_fft``, ``hop_length``,
    ``x_res``, ``y_res``, the audio column and ``short``). The next time the same data and
    settings are asked for, nothing is decoded: the file is read back.

    Call it with an epoch number to get that epoch's batches, float32 ``(batch_size, 1, y_res,
    x_res)`` in [-1, 1] (the scaling of ``course_lib.diffusion.images_to_tensor``)::

        slices = CachedMelSlices(select_genre(ds, "Hip-Hop"), pipe.mel, batch_size=4)
        train(unet, slices, loss_fn, config)          # data = a function epoch -> batches

    Epoch ``e`` shows every clip ``crops_per_clip`` times in a random order, each time as an
    ``x_res``-frame crop at a random frame; order and crops come from a generator seeded by
    ``(seed, e)``, so an epoch is the same every time it is asked for (resuming relies on that)
    and different epochs differ. The last incomplete batch is dropped.

    A crop starting at frame ``c`` is the image of the audio slice starting at sample
    ``c * hop_length``, with one difference at its edges: the slice's own spectrogram sees zero
    padding where its first ``n_fft // 2 // hop_length`` windows (1 column at n_fft 1024, 2 at
    2048; at 2048 also the last one) reach past the slice, while the crop sees the audio there.
    Those columns can differ by over 100 grey levels (the slice's are darker); all other pixels are
    equal, except when the crop's loudest value sits in an edge column: then its reference level is
    higher and its inside is a few grey levels darker, by one constant shift.

    Attributes: ``n_clips``; ``rows`` (the dataset row of each clip); ``status`` (per dataset row:
    0 used, 1 padded, 2 skipped); ``n_starts`` (possible crop positions per clip); ``db`` and
    ``offsets`` (all clips' mel power in dB, frames by ``y_res``, one after another: float32, 4 bytes
    per pixel: about 0.33 MB per 30 s clip at 64 bands, 1.3 MB at 256); ``from_cache``;
    ``build_seconds`` (to build the cache, or to read it back).

    Clips shorter than one slice (``mel.slice_size`` samples after resampling): ``short="pad"``
    (default, as diffusers' ``Mel.load_audio`` does) pads them with silence to one slice;
    ``"skip"`` leaves them out; ``"error"`` refuses the dataset.
    """

    def __init__(self, dataset: Any, mel: Any, batch_size: int = 4, *, seed: int = 0, crops_per_clip: int = 1,
                 short: str = "pad", column: str = "audio", folder: str | os.PathLike | None = None,
                 progress: bool = True) -> None:
        import time

        self.mel = _check_mel(mel)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.seed = _seed(seed)
        self.crops_per_clip = check_positive_int(crops_per_clip, "crops_per_clip")
        self.short = check_choice(short, "short", SHORT_CLIP_POLICIES)
        if not isinstance(column, str):
            raise CourseInputError(f"column: expected a column name such as 'audio', got {column!r}.")
        _require_columns(dataset, (column,))
        self.column = column
        start = time.perf_counter()
        params = {"format": _MEL_SLICES_FORMAT, "clips": _dataset_identity(dataset, column), "rows": len(dataset),
                  "column": column, "sample_rate": mel.sr, "n_fft": mel.n_fft, "hop_length": mel.hop_length,
                  "x_res": mel.x_res, "y_res": mel.y_res, "short": self.short}
        self.from_cache = True

        def compute() -> dict[str, torch.Tensor]:
            self.from_cache = False
            return self._build(dataset, progress)

        stored = cached_tensors("mel_slices", params, compute, folder=folder)
        self.build_seconds = time.perf_counter() - start
        self.db, self.offsets, self.status = stored["db"], stored["offsets"], stored["status"]
        self.rows = torch.nonzero(self.status != _CLIP_SKIPPED).flatten()
        self.n_starts = self.offsets[1:] - self.offsets[:-1] - self.mel.x_res + 1
        if len(self) == 0:
            raise CourseInputError(
                f"batch_size: {self.n_clips} usable clip(s) x crops_per_clip={self.crops_per_clip} do not fill one "
                f"batch of {self.batch_size}; lower batch_size or raise crops_per_clip."
            )

    def _build(self, dataset: Any, progress: bool) -> dict[str, torch.Tensor]:
        """Decode, resample and transform every clip once; the tensors that go into the cache."""
        from course_lib.audio import resample

        mel = self.mel
        parts, lengths, status = [], [0], []
        rows = dataset.select_columns([self.column]) if hasattr(dataset, "select_columns") else dataset
        iterator: Any = rows
        if progress:
            from course_lib.settings import progress as progress_bar

            iterator = progress_bar(rows, total=len(dataset), desc="mel spectrograms", unit="clip")
        for i, row in enumerate(iterator):
            audio, sr = audio_array(row, column=self.column)
            if sr != mel.sr:
                audio = resample(audio, sr, mel.sr)
            state = _CLIP_USED
            if audio.shape[0] < mel.slice_size:
                if self.short == "error":
                    raise CourseInputError(
                        f"dataset: row {i} holds {audio.shape[0] / mel.sr:.2f} s of audio at {mel.sr} Hz, shorter than "
                        f"one slice ({mel.slice_size} samples = {mel.slice_size / mel.sr:.2f} s); pass short='pad' to "
                        "pad such clips with silence or short='skip' to leave them out."
                    )
                if self.short == "skip":
                    status.append(_CLIP_SKIPPED)
                    continue
                audio = np.concatenate([audio, np.zeros(mel.x_res * mel.hop_length - audio.shape[0], np.float32)])
                state = _CLIP_PADDED
            n_frames = (audio.shape[0] - mel.slice_size) // mel.hop_length + mel.x_res
            parts.append(_clip_db(audio, mel, n_frames))
            lengths.append(n_frames)
            status.append(state)
        if not parts:
            raise CourseInputError(
                f"dataset: all {len(status)} clips are shorter than one slice ({mel.slice_size / mel.sr:.2f} s) and "
                "short='skip' left them all out; use short='pad', or a Mel with a smaller x_res or hop_length."
            )
        return {"db": torch.cat(parts), "offsets": torch.tensor(np.cumsum(lengths), dtype=torch.int64),
                "status": torch.tensor(status, dtype=torch.int8)}

    @property
    def n_clips(self) -> int:
        """How many clips the slices come from (skipped clips not counted)."""
        return int(self.offsets.numel() - 1)

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.n_clips * self.crops_per_clip // self.batch_size

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clips, starts)`` of every crop of ``epoch``, in order: clip numbers and first frames."""
        g = make_generator(_epoch_seed(self.seed, _check_epoch(epoch)))
        clips = torch.arange(self.n_clips).repeat(self.crops_per_clip)
        clips = clips[torch.randperm(clips.numel(), generator=g)]
        starts = (torch.rand(clips.numel(), generator=g, dtype=torch.float64) * self.n_starts[clips]).long()
        return clips, starts

    def crop_images(self, clips: Any, starts: Any) -> torch.Tensor:
        """uint8 images (N, y_res, x_res): clip ``clips[k]`` cropped from frame ``starts[k]``."""
        c = torch.as_tensor(clips).long().flatten()
        s = torch.as_tensor(starts).long().flatten()
        if c.numel() != s.numel() or c.numel() == 0:
            raise CourseInputError(
                f"clips, starts: give the same number (≥ 1) of each, got {c.numel()} and {s.numel()}."
            )
        if int(c.min()) < 0 or int(c.max()) >= self.n_clips:
            raise CourseInputError(f"clips: clip numbers run from 0 to {self.n_clips - 1}, got {c.tolist()}.")
        bad = (s < 0) | (s >= self.n_starts[c])
        if bool(bad.any()):
            k = int(torch.nonzero(bad)[0])
            raise CourseInputError(
                f"starts: clip {int(c[k])} has crops starting at frames 0 to {int(self.n_starts[c[k]]) - 1}, "
                f"got {int(s[k])}."
            )
        return _crop_to_pixels(self.db, self.offsets[c] + s, self.mel.x_res, float(self.mel.top_db))

    def clip_image(self, clip: int) -> torch.Tensor:
        """The whole clip as one uint8 image (y_res, frames), scaled to its own loudest value (for plots)."""
        if isinstance(clip, bool) or not isinstance(clip, (int, np.integer)) or not 0 <= clip < self.n_clips:
            raise CourseInputError(f"clip: expected a clip number from 0 to {self.n_clips - 1}, got {clip!r}.")
        length = int(self.offsets[clip + 1] - self.offsets[clip])
        db = self.db[int(self.offsets[clip]):int(self.offsets[clip + 1])]
        return _crop_to_pixels(db, torch.zeros(1, dtype=torch.long), length, float(self.mel.top_db))[0]

    def __call__(self, epoch: int) -> Iterator[torch.Tensor]:
        """The batches of ``epoch``: float32 (batch_size, 1, y_res, x_res) in [-1, 1]."""
        clips, starts = self.epoch_plan(epoch)
        for b in range(len(self)):
            part = slice(b * self.batch_size, (b + 1) * self.batch_size)
            yield _pixels_to_batch(self.crop_images(clips[part], starts[part]))

    def __repr__(self) -> str:
        padded = int((self.status == _CLIP_PADDED).sum())
        skipped = int((self.status == _CLIP_SKIPPED).sum())
        return (f"CachedMelSlices({self.n_clips} clips ({padded} padded, {skipped} skipped), "
                f"{self.mel.y_res}x{self.mel.x_res} crops, batch_size={self.batch_size}, "
                f"{len(self)} batches/epoch, {self.db.numel() * 4 / 2**20:.1f} MiB)")


class _IndexedRows(torch.utils.data.Dataset):
    """``(index, row)`` pairs, so a collate function can seed its random slice by the row."""

    def __init__(self, rows: Any) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        return i, self.rows[i]


class _TutorialCollate:
    """The tutorial's collate: per clip decode -> resample -> load into the Mel -> random slice -> image."""

    def __init__(self, mel: Any, column: str, seed: int, epoch: int) -> None:
        self.mel = copy.deepcopy(mel)  # load_audio keeps the clip inside the Mel: do not touch the caller's
        self.column, self.seed, self.epoch = column, seed, epoch
        self.resamplers: dict[int, Any] = {}

    def _resample(self, audio: np.ndarray, sr: int) -> np.ndarray:
        if sr == self.mel.sr:
            return audio
        if sr not in self.resamplers:  # one torchaudio module per rate, built once, as the tutorial does
            import torchaudio.transforms as AT

            self.resamplers[sr] = AT.Resample(sr, self.mel.sr, dtype=torch.float32)
        return self.resamplers[sr](torch.from_numpy(audio)).numpy()

    def __call__(self, examples: list[tuple[int, Any]]) -> torch.Tensor:
        images = []
        for index, row in examples:
            audio, sr = audio_array(row, column=self.column)
            self.mel.load_audio(raw_audio=self._resample(audio, sr))
            rng = np.random.default_rng(_epoch_seed(self.seed, self.epoch, index))
            k = int(rng.integers(self.mel.get_number_of_slices()))
            images.append(np.asarray(self.mel.audio_slice_to_image(k)))
        return _pixels_to_batch(torch.from_numpy(np.stack(images)))


def tutorial_dataloader(dataset: Any, mel: Any, batch_size: int = 4, *, seed: int = 0, epoch: int = 0,
                        column: str = "audio", num_workers: int = 0) -> torch.utils.data.DataLoader:
    """The well-known tutorial's data path, for comparison: all the audio work inside ``collate_fn``.

    For every clip of every batch: decode the row (:func:`audio_array`), resample to ``mel.sr``
    with a torchaudio ``Resample`` module, ``mel.load_audio(raw_audio=...)`` (short clips are padded
    with silence), pick one of the whole slices at random and ``mel.audio_slice_to_image`` it.
    Batches are float32 (batch_size, 1, y_res, x_res) in [-1, 1], like :class:`CachedMelSlices`.
    The shuffle and the slices are seeded by ``(seed, epoch)`` and the row, so for training use
    ``data=lambda e: tutorial_dataloader(ds, mel, 4, epoch=e)``; incomplete batches are dropped.
    """
    mel = _check_mel(mel)
    size = check_positive_int(batch_size, "batch_size")
    base, ep = _seed(seed), _check_epoch(epoch)
    workers = check_positive_int(num_workers, "num_workers", minimum=0)
    if not isinstance(column, str):
        raise CourseInputError(f"column: expected a column name such as 'audio', got {column!r}.")
    _require_columns(dataset, (column,))
    if len(dataset) < size:
        raise CourseInputError(
            f"batch_size: the dataset has only {len(dataset)} clips; use batch_size ≤ {len(dataset)}."
        )
    g = make_generator(_epoch_seed(base, ep, 1))
    return torch.utils.data.DataLoader(_IndexedRows(dataset), batch_size=size, shuffle=True, generator=g,
                                       drop_last=True, num_workers=workers,
                                       collate_fn=_TutorialCollate(mel, column, base, ep))
