"""The classic spectrogram preprocessing pipeline, written correctly, plus a batched version.

The pipeline many "sound generation with a VAE" tutorials use turns a folder of short clips
into normalised log-magnitude spectrograms:

    Loader -> Padder -> LogSpectrogramExtractor -> MinMaxNormaliser -> Saver

1. load each file at a fixed rate, mono, at most ``duration`` seconds;
2. right-pad short clips with zeros to exactly ``round(sample_rate * duration)`` samples;
3. STFT (Hann window, ``frame_size`` = 512, hop 256, centred frames), drop the top frequency
   bin so there are 256 rows, take the magnitude and convert it to dB re 1.0
   (``20 log10(max(|X|, 1e-5))``, then floor each clip at 80 dB below its own maximum);
4. min-max normalise each clip to [0, 1], remembering its original min and max;
5. save the features and the min/max table.

The versions usually copied around have three problems, fixed here: denormalising must *add*
the original minimum back (not multiply by it), the min/max table belongs in a safe format
(JSON / safetensors, never pickle), and a Python loop that handles one file at a time leaves
most of the speed on the table. :class:`PreprocessingPipeline` is the readable per-file
version; :func:`preprocess_folder` does the same maths in batches and writes one safetensors
file. Both give the same numbers (to about 1e-6).
"""

from __future__ import annotations

import functools
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from course_lib.io import atomic_write, save_tensors, write_json
from course_lib.validate import (
    CourseInputError,
    as_float_tensor,
    check_choice,
    check_dir,
    check_file,
    check_positive_int,
    check_sample_rate,
)

__all__ = [
    "Loader",
    "Padder",
    "LogSpectrogramExtractor",
    "MinMaxNormaliser",
    "Saver",
    "PreprocessingPipeline",
    "log_spectrogram",
    "batched_log_spectrogram",
    "list_audio_files",
    "preprocess_folder",
    "load_features",
    "denormalise_batch",
    "num_expected_samples",
]

ArrayLike = np.ndarray | torch.Tensor

AMIN = 1e-5  # smallest magnitude before the log: -100 dB
TOP_DB = 80.0  # each clip is floored this far below its own loudest bin
FORMAT_TAG = "course_lib.preprocess/1"
STATS_FILE = "min_max_values.json"


# ----------------------------------------------------------------------------------------------
# argument checks shared by the classes and the batched path
# ----------------------------------------------------------------------------------------------


def _check_duration(duration: Any) -> float:
    if isinstance(duration, bool) or not isinstance(duration, (int, float, np.integer, np.floating)):
        raise CourseInputError(f"duration: expected seconds as a number such as 0.74, got {duration!r}.")
    value = float(duration)
    if not math.isfinite(value) or value <= 0:
        raise CourseInputError(f"duration: must be a positive number of seconds, got {duration!r}.")
    return value


def _check_range(min_val: Any, max_val: Any) -> tuple[float, float]:
    for name, value in (("min_val", min_val), ("max_val", max_val)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise CourseInputError(f"{name}: expected a number, got {value!r}.")
        if not math.isfinite(float(value)):
            raise CourseInputError(f"{name}: {value!r} is not finite.")
    if float(max_val) <= float(min_val):
        raise CourseInputError(f"min_val/max_val: need min_val < max_val, got {min_val!r} and {max_val!r}.")
    return float(min_val), float(max_val)


def _check_frames(frame_size: Any, hop_length: Any) -> tuple[int, int]:
    size = check_positive_int(frame_size, "frame_size", minimum=4)
    if size % 2:
        raise CourseInputError(f"frame_size: use an even FFT size such as 512, got {size}.")
    hop = check_positive_int(hop_length, "hop_length")
    if hop > size:
        raise CourseInputError(f"hop_length: {hop} is larger than frame_size={size}; samples would be skipped.")
    return size, hop


def _check_mono(mono: Any) -> None:
    if mono is not True:
        raise CourseInputError(
            f"mono: got {mono!r}, but these features are one spectrogram per clip, so the pipeline needs "
            "mono=True (stereo files are averaged to mono). Split channels into separate files to keep them."
        )


def num_expected_samples(sample_rate: int, duration: float) -> int:
    """Length every clip is padded or trimmed to: ``round(sample_rate * duration)`` samples.

    Rounding (not truncating) matters: ``22050 * 0.74`` is 16316.999... in floating point.
    """
    return int(round(check_sample_rate(sample_rate) * _check_duration(duration)))


# ----------------------------------------------------------------------------------------------
# the maths, per clip and batched
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _hann(size: int) -> torch.Tensor:
    """The periodic Hann window (cached: the same few sizes are used over and over)."""
    return torch.hann_window(size, dtype=torch.float32)


def _window_for(x: torch.Tensor, size: int) -> torch.Tensor:
    window = _hann(size)
    return window if x.device == window.device and x.dtype == window.dtype else window.to(x.device, x.dtype)


def _magnitude_to_db(magnitude: torch.Tensor, top_db: float, amin: float) -> torch.Tensor:
    """dB re 1.0 with an ``amin`` floor, then each item floored ``top_db`` below its own maximum.

    Works on ``(F, frames)`` or ``(B, F, frames)``: the maximum is taken over the last two axes.
    """
    db = magnitude.clamp_min(amin).log10_().mul_(20.0)  # one new tensor, then in place
    floor = db.amax(dim=(-2, -1), keepdim=True).sub_(top_db)
    return torch.maximum(db, floor, out=db)


def _stft_db(x: torch.Tensor, size: int, hop: int, top_db: float, amin: float) -> torch.Tensor:
    """The shared maths for a checked ``(T,)`` or ``(B, T)`` float tensor; see log_spectrogram."""
    window = _window_for(x, size)
    stft = torch.stft(x, size, hop_length=hop, window=window, center=True, pad_mode="constant",
                      return_complex=True)  # (..., size // 2 + 1, frames)
    magnitude = stft.narrow(-2, 0, size // 2).abs()  # drop the Nyquist bin: size // 2 rows
    return _magnitude_to_db(magnitude, top_db, amin)


def _check_db_args(top_db: Any, amin: Any) -> tuple[float, float]:
    for name, value in (("top_db", top_db), ("amin", amin)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise CourseInputError(f"{name}: expected a number, got {value!r}.")
        if not math.isfinite(float(value)) or float(value) <= 0:
            raise CourseInputError(f"{name}: must be a positive finite number, got {value!r}.")
    return float(top_db), float(amin)


def log_spectrogram(
    audio: ArrayLike,
    frame_size: int = 512,
    hop_length: int = 256,
    top_db: float = TOP_DB,
    amin: float = AMIN,
) -> ArrayLike:
    """Log-magnitude spectrogram of ONE mono clip ``(T,)``: shape ``(frame_size // 2, frames)``.

    Steps: centred Hann-window STFT (zero padding at the edges), drop the top (Nyquist) bin so
    the row count is a power of two, magnitude, dB re 1.0, floor at ``top_db`` below the
    clip's maximum. ``frames = 1 + T // hop_length``. NumPy in gives NumPy out.
    """
    size, hop = _check_frames(frame_size, hop_length)
    top, floor = _check_db_args(top_db, amin)
    x = as_float_tensor(audio, "audio", min_ndim=1, max_ndim=1)
    out = _stft_db(x, size, hop, top, floor)
    return out if isinstance(audio, torch.Tensor) else out.cpu().numpy()


def batched_log_spectrogram(
    batch: ArrayLike,
    frame_size: int = 512,
    hop_length: int = 256,
    top_db: float = TOP_DB,
    amin: float = AMIN,
) -> ArrayLike:
    """:func:`log_spectrogram` for a batch ``(B, T)`` of equal-length clips in one STFT call.

    Returns ``(B, frame_size // 2, frames)``; the ``top_db`` floor is still per clip, so
    each row equals ``log_spectrogram(batch[i])``.
    """
    size, hop = _check_frames(frame_size, hop_length)
    top, floor = _check_db_args(top_db, amin)
    x = as_float_tensor(batch, "batch", min_ndim=2, max_ndim=2)
    out = _stft_db(x, size, hop, top, floor)  # torch.stft treats the first axis as the batch
    return out if isinstance(batch, torch.Tensor) else out.cpu().numpy()


# ----------------------------------------------------------------------------------------------
# reading files
# ----------------------------------------------------------------------------------------------


def _read_clip(path: Path, sample_rate: int, duration: float) -> tuple[np.ndarray, int]:
    """Read the first ``duration`` seconds of a file as mono float32 at the file's own rate.

    When the file will be resampled, a few extra samples are read so the resampling filter
    sees real signal (not an artificial end) at the cut; the result is trimmed after resampling.
    """
    from course_lib.audio import read_frames

    def wanted(native: int) -> int:
        extra = 16 * (math.ceil(native / sample_rate) + 1) if native != sample_rate else 0
        return math.ceil(duration * native) + extra

    data, native = read_frames(check_file(path, "file"), "file", wanted)
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32), native


def list_audio_files(audio_dir: str | os.PathLike, exclude: Path | None = None) -> list[Path]:
    """Every non-hidden file under ``audio_dir`` (recursively), sorted by relative path.

    Sorting makes the order (and so the output) the same on every machine, which ``os.walk``
    alone does not promise. ``exclude`` is skipped (the pipeline's own output, if it lives
    inside the folder). Non-audio files are not filtered here: the pipelines report them.
    """
    root = check_dir(audio_dir, "audio_dir")
    skip = None if exclude is None else Path(exclude).resolve()
    real_root = root.resolve()
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_folder = Path(folder).relative_to(root)
        if skip is not None and (real_root / rel_folder == skip or skip in (real_root / rel_folder).parents):
            continue
        for name in files:
            if name.startswith(".") or (skip is not None and real_root / rel_folder / name == skip):
                continue
            found.append(((rel_folder / name).as_posix(), Path(folder) / name))
    found.sort(key=lambda item: item[0])
    if not found:
        raise CourseInputError(f"audio_dir: {str(root)!r} contains no files; put the audio clips there first.")
    return [path for _, path in found]


def _fail_or_skip(on_error: str, exc: CourseInputError, skipped: list[str], name: str) -> None:
    if on_error == "raise":
        raise CourseInputError(f"{exc} Remove or fix the file, or pass on_error='skip'.") from exc
    warnings.warn(f"skipping {name!r}: {exc}", stacklevel=3)
    skipped.append(name)


# ----------------------------------------------------------------------------------------------
# the readable per-file pipeline
# ----------------------------------------------------------------------------------------------


class Loader:
    """Loads one file as mono float32 at ``sample_rate``, keeping at most ``duration`` seconds.

    Uses soundfile to read and torchaudio to resample; stereo is averaged to mono.
    """

    def __init__(self, sample_rate: int = 22050, duration: float = 0.74, mono: bool = True) -> None:
        self.sample_rate = check_sample_rate(sample_rate)
        self.duration = _check_duration(duration)
        _check_mono(mono)
        self.mono = True

    @property
    def num_expected_samples(self) -> int:
        """How many samples a full-length clip has after loading."""
        return num_expected_samples(self.sample_rate, self.duration)

    def load(self, file_path: str | os.PathLike) -> np.ndarray:
        """Return the clip as a ``(T,)`` float32 array, ``T <= num_expected_samples``."""
        from course_lib.audio import resample

        signal, native = _read_clip(check_file(file_path, "file_path"), self.sample_rate, self.duration)
        if native != self.sample_rate:
            signal = resample(signal, native, self.sample_rate)
        return np.ascontiguousarray(signal[: self.num_expected_samples])


class Padder:
    """Pads a 1-D signal on the left or right (zeros by default) and removes padding again."""

    MODES = ("constant", "edge", "reflect", "symmetric", "wrap")

    def __init__(self, mode: str = "constant") -> None:
        self.mode = check_choice(mode, "mode", self.MODES)

    @staticmethod
    def _signal(array: Any) -> np.ndarray:
        return as_float_tensor(array, "array", min_ndim=1, max_ndim=1).cpu().numpy()

    def left_pad(self, array: ArrayLike, num_missing_items: int) -> np.ndarray:
        """Add ``num_missing_items`` values before the signal."""
        n = check_positive_int(num_missing_items, "num_missing_items", minimum=0)
        return np.pad(self._signal(array), (n, 0), mode=self.mode)

    def right_pad(self, array: ArrayLike, num_missing_items: int) -> np.ndarray:
        """Add ``num_missing_items`` values after the signal."""
        n = check_positive_int(num_missing_items, "num_missing_items", minimum=0)
        return np.pad(self._signal(array), (0, n), mode=self.mode)

    def pad_to(self, array: ArrayLike, length: int, side: str = "right") -> np.ndarray:
        """Pad to exactly ``length`` samples (a longer signal is an error: trim it first)."""
        length = check_positive_int(length, "length")
        check_choice(side, "side", ("left", "right"))
        x = self._signal(array)
        if x.shape[0] > length:
            raise CourseInputError(f"array: {x.shape[0]} samples is already longer than length={length}; trim it.")
        missing = length - x.shape[0]
        return self.left_pad(x, missing) if side == "left" else self.right_pad(x, missing)

    def remove_padding(self, array: ArrayLike, left: int = 0, right: int = 0) -> np.ndarray:
        """Undo padding: drop ``left`` values at the start and ``right`` at the end."""
        left = check_positive_int(left, "left", minimum=0)
        right = check_positive_int(right, "right", minimum=0)
        x = self._signal(array)
        if left + right >= x.shape[0]:
            raise CourseInputError(
                f"left/right: removing {left} + {right} values from {x.shape[0]} would leave nothing."
            )
        return x[left: x.shape[0] - right].copy()


class LogSpectrogramExtractor:
    """Turns a padded clip into its ``(frame_size // 2, frames)`` log-magnitude spectrogram."""

    def __init__(self, frame_size: int = 512, hop_length: int = 256) -> None:
        self.frame_size, self.hop_length = _check_frames(frame_size, hop_length)

    def extract(self, signal: ArrayLike) -> np.ndarray:
        """dB spectrogram of one mono clip; see :func:`log_spectrogram`."""
        out = log_spectrogram(signal, self.frame_size, self.hop_length)
        return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out


def _as_float64(x: Any, name: str, min_ndim: int = 1) -> np.ndarray | torch.Tensor:
    """Validate with as_float_tensor, but compute in float64 so round trips stay exact."""
    as_float_tensor(x, name, min_ndim=min_ndim)
    if isinstance(x, torch.Tensor):
        return x.to(torch.float64)
    return np.asarray(x, dtype=np.float64)


def _restore_dtype(result: Any, original: Any) -> Any:
    if isinstance(original, torch.Tensor):
        return result.to(original.dtype if original.is_floating_point() else torch.float32)
    dtype = original.dtype if isinstance(original, np.ndarray) and original.dtype.kind == "f" else np.float32
    return np.asarray(result, dtype=dtype)


class MinMaxNormaliser:
    """Scales each array linearly into ``[min_val, max_val]`` and back.

    ``normalise`` returns the scaled array and remembers the original extremes in
    ``last_min`` / ``last_max`` (or use ``normalise_with_stats``); ``denormalise`` needs them
    to undo the scaling: ``x = (y - min_val) / (max_val - min_val) * (orig_max - orig_min) + orig_min``.
    A constant array (a silent clip) maps to ``min_val`` and comes back as its constant.
    """

    def __init__(self, min_val: float = 0.0, max_val: float = 1.0) -> None:
        self.min, self.max = _check_range(min_val, max_val)
        self.last_min: float | None = None
        self.last_max: float | None = None

    def normalise_with_stats(self, array: ArrayLike) -> tuple[ArrayLike, float, float]:
        """Return ``(normalised, original_min, original_max)``."""
        x = _as_float64(array, "array")
        lo, hi = float(x.min()), float(x.max())
        span = hi - lo
        if span == 0.0:
            warnings.warn("MinMaxNormaliser: the array is constant (a silent clip?); it maps to min_val.",
                          stacklevel=2)
            unit = x * 0.0
        else:
            unit = (x - lo) / span
        out = unit * (self.max - self.min) + self.min
        self.last_min, self.last_max = lo, hi
        return _restore_dtype(out, array), lo, hi

    def normalise(self, array: ArrayLike) -> ArrayLike:
        """Scale ``array`` into ``[min_val, max_val]``; its original min/max go to ``last_min``/``last_max``."""
        out, _, _ = self.normalise_with_stats(array)
        return out

    def denormalise(self, norm_array: ArrayLike, original_min: float, original_max: float) -> ArrayLike:
        """Undo :meth:`normalise`: back to the original range ``[original_min, original_max]``."""
        y = _as_float64(norm_array, "norm_array")
        for name, value in (("original_min", original_min), ("original_max", original_max)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(value)):
                raise CourseInputError(f"{name}: expected a finite number (from normalise), got {value!r}.")
        if float(original_max) < float(original_min):
            raise CourseInputError(
                f"original_min/original_max: {original_min} > {original_max}; did you swap them?"
            )
        unit = (y - self.min) / (self.max - self.min)
        out = unit * (float(original_max) - float(original_min)) + float(original_min)  # ADD the minimum
        return _restore_dtype(out, norm_array)


class Saver:
    """Writes one ``.npy`` per clip (mirroring the input folders) and a JSON min/max table.

    ``min_max_values_save_dir`` defaults to the feature folder. Nothing is pickled: the arrays
    are saved with ``allow_pickle=False`` and the table is plain JSON. Every file is written
    atomically (:mod:`course_lib.io`), so an interrupted run leaves no half-written feature.
    """

    def __init__(self, feature_save_dir: str | os.PathLike,
                 min_max_values_save_dir: str | os.PathLike | None = None) -> None:
        for name, value in (("feature_save_dir", feature_save_dir),
                            ("min_max_values_save_dir", min_max_values_save_dir)):
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise CourseInputError(f"{name}: expected a folder path, got {type(value).__name__}.")
        self.feature_save_dir = Path(feature_save_dir)
        self.min_max_values_save_dir = Path(min_max_values_save_dir or feature_save_dir)
        for folder in (self.feature_save_dir, self.min_max_values_save_dir):
            if folder.exists() and not folder.is_dir():
                raise CourseInputError(f"{str(folder)!r} exists and is a file; give a folder for the features.")

    def feature_path(self, name: str) -> Path:
        """Where the feature of the clip ``name`` (its path relative to the audio folder) goes."""
        rel = Path(str(name) + ".npy")
        if rel.is_absolute() or ".." in rel.parts:
            raise CourseInputError(f"name: {name!r} must be a relative path inside the audio folder.")
        return self.feature_save_dir / rel

    def save_feature(self, feature: ArrayLike, name: str) -> Path:
        """Save one feature array as ``<feature_save_dir>/<name>.npy`` and return the path."""
        x = as_float_tensor(feature, "feature", min_ndim=1).cpu().numpy()
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to a temporary name
                np.save(f, x, allow_pickle=False)

        return atomic_write(self.feature_path(name), write)

    def save_min_max_values(self, min_max_values: dict, params: dict | None = None) -> Path:
        """Write ``{"params": ..., "files": {name: {"feature", "min", "max"}}}`` as JSON."""
        if not isinstance(min_max_values, dict):
            raise CourseInputError(f"min_max_values: expected a dict, got {type(min_max_values).__name__}.")
        payload = {"format": FORMAT_TAG, "params": params or {}, "files": min_max_values}
        return write_json(self.min_max_values_save_dir / STATS_FILE, payload, indent=1)


class PreprocessingPipeline:
    """The per-file pipeline, one clear step at a time: load, pad, spectrogram, normalise, save.

    The parts are public attributes (``loader``, ``padder``, ``extractor``, ``normaliser``,
    ``saver``) so you can swap one out. :func:`preprocess_folder` computes the same features
    in batches.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        sample_rate: int = 22050,
        duration: float = 0.74,
        mono: bool = True,
        frame_size: int = 512,
        hop_length: int = 256,
        min_val: float = 0.0,
        max_val: float = 1.0,
        on_error: str = "raise",
    ) -> None:
        self.loader = Loader(sample_rate, duration, mono)
        self.padder = Padder("constant")
        self.extractor = LogSpectrogramExtractor(frame_size, hop_length)
        self.normaliser = MinMaxNormaliser(min_val, max_val)
        self.saver = Saver(output_dir)
        self.on_error = check_choice(on_error, "on_error", ("raise", "skip"))
        self.min_max_values: dict[str, dict] = {}
        self.skipped: list[str] = []

    @property
    def params(self) -> dict:
        """The settings that produced the features (stored next to them)."""
        return {
            "sample_rate": self.loader.sample_rate,
            "duration": self.loader.duration,
            "num_samples": self.loader.num_expected_samples,
            "mono": True,
            "frame_size": self.extractor.frame_size,
            "hop_length": self.extractor.hop_length,
            "min_val": self.normaliser.min,
            "max_val": self.normaliser.max,
            "top_db": TOP_DB,
            "amin": AMIN,
        }

    def process(self, audio_dir: str | os.PathLike) -> dict:
        """Preprocess every file in ``audio_dir``; returns ``{name: {"feature", "min", "max"}}``.

        A file that is not readable audio raises (naming it) or, with ``on_error="skip"``,
        is skipped with a warning and listed in ``self.skipped``.
        """
        root = check_dir(audio_dir, "audio_dir")
        self.min_max_values, self.skipped = {}, []
        for path in list_audio_files(root, exclude=self.saver.feature_save_dir):
            name = path.relative_to(root).as_posix()
            try:
                self._process_file(path, name)
            except CourseInputError as exc:
                _fail_or_skip(self.on_error, exc, self.skipped, name)
        if not self.min_max_values:
            raise CourseInputError(f"audio_dir: none of the files in {str(root)!r} could be read as audio.")
        self.saver.save_min_max_values(self.min_max_values, self.params)
        return self.min_max_values

    def _process_file(self, path: Path, name: str) -> None:
        signal = self.loader.load(path)
        missing = self.loader.num_expected_samples - signal.shape[0]
        if missing > 0:
            signal = self.padder.right_pad(signal, missing)
        feature = self.extractor.extract(signal)
        norm_feature, lo, hi = self.normaliser.normalise_with_stats(feature)
        saved = self.saver.save_feature(norm_feature, name)
        self.min_max_values[name] = {
            "feature": saved.relative_to(self.saver.feature_save_dir).as_posix(),
            "min": lo,
            "max": hi,
        }


# ----------------------------------------------------------------------------------------------
# the batched path
# ----------------------------------------------------------------------------------------------


def _fill_group(signals: torch.Tensor, rows: list[int], clips: list[np.ndarray], native: int, target: int) -> None:
    """Put clips that share a native rate into ``signals[rows]``, resampled in one call.

    ``signals`` is zeros, so copying each clip into the start of its row trims long clips and
    zero-pads short ones. To resample as a batch the clips are zero-padded to a common length
    first; each is then cut back to its own resampled length, so the filter's ring-out past a
    short clip's end (which the per-file path never sees) does not leak into the padding.
    """
    length = signals.shape[1]
    if native == target:
        for row, clip in zip(rows, clips):
            keep = min(clip.shape[0], length)
            signals[row, :keep] = torch.from_numpy(clip[:keep])
        return
    from course_lib.audio import resample

    stacked = torch.zeros(len(clips), max(c.shape[0] for c in clips), dtype=torch.float32)
    for i, clip in enumerate(clips):
        stacked[i, : clip.shape[0]] = torch.from_numpy(clip)
    resampled = resample(stacked, native, target)
    g = math.gcd(native, target)
    for i, (row, clip) in enumerate(zip(rows, clips)):
        own = -(-clip.shape[0] * (target // g) // (native // g))  # ceil: torchaudio's output length
        keep = min(own, length, resampled.shape[1])
        signals[row, :keep] = resampled[i, :keep]


def preprocess_folder(
    audio_dir: str | os.PathLike,
    output_path: str | os.PathLike,
    sample_rate: int = 22050,
    duration: float = 0.74,
    mono: bool = True,
    frame_size: int = 512,
    hop_length: int = 256,
    min_val: float = 0.0,
    max_val: float = 1.0,
    *,
    on_error: str = "raise",
    batch_size: int = 64,
) -> dict:
    """Batched :class:`PreprocessingPipeline`: same features, one safetensors file.

    Reads every file with soundfile, resamples each group of equal native rates in one call,
    pads, runs the STFT ``batch_size`` clips at a time (small chunks stay in the CPU cache),
    converts to dB and min-max normalises per clip. Writes ``output_path`` (a ``.safetensors``
    file, or a folder to put ``features.safetensors`` in) holding ``features``
    ``[N, frame_size // 2, frames]``, ``mins`` and ``maxs`` ``[N]`` (float32), with file names
    and parameters as JSON metadata.
    Returns a summary dict (``path``, ``files``, ``skipped``, ``shape``, ``params``).

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    root = check_dir(audio_dir, "audio_dir")
    if not isinstance(output_path, (str, os.PathLike)):
        raise CourseInputError(f"output_path: expected a path such as 'features.safetensors', got {output_path!r}.")
    out_path = Path(output_path)
    if out_path.is_dir():
        out_path = out_path / "features.safetensors"
    if out_path.suffix != ".safetensors":
        raise CourseInputError(
            f"output_path: {str(out_path)!r} should end in .safetensors (e.g. 'features.safetensors')."
        )
    rate = check_sample_rate(sample_rate)
    seconds = _check_duration(duration)
    _check_mono(mono)
    size, hop = _check_frames(frame_size, hop_length)
    lo_val, hi_val = _check_range(min_val, max_val)
    check_choice(on_error, "on_error", ("raise", "skip"))
    chunk = check_positive_int(batch_size, "batch_size")
    length = num_expected_samples(rate, seconds)

    # 1. read everything (the only per-file step left: file I/O)
    names: list[str] = []
    clips: list[np.ndarray] = []
    rates: list[int] = []
    skipped: list[str] = []
    for path in list_audio_files(root, exclude=out_path):
        name = path.relative_to(root).as_posix()
        try:
            clip, native = _read_clip(path, rate, seconds)
        except CourseInputError as exc:
            _fail_or_skip(on_error, exc, skipped, name)
            continue
        names.append(name)
        clips.append(clip)
        rates.append(native)
    if not names:
        raise CourseInputError(f"audio_dir: none of the files in {str(root)!r} could be read as audio.")

    # 2. resample per group of equal rates, then trim/pad to the fixed length
    signals = torch.zeros(len(names), length, dtype=torch.float32)
    for native in sorted(set(rates)):
        rows = [i for i, r in enumerate(rates) if r == native]
        _fill_group(signals, rows, [clips[i] for i in rows], native, rate)

    # 3. batched STFT -> dB -> per-clip min-max, a chunk at a time, straight into the output
    features = torch.empty(len(names), size // 2, 1 + length // hop, dtype=torch.float32)
    mins_t = torch.empty(len(names), dtype=torch.float32)
    maxs_t = torch.empty(len(names), dtype=torch.float32)
    for start in range(0, len(names), chunk):
        stop = min(start + chunk, len(names))
        db = _stft_db(signals[start:stop], size, hop, TOP_DB, AMIN)
        lo, hi = db.amin(dim=(1, 2)), db.amax(dim=(1, 2))
        span = hi - lo
        safe_span = torch.where(span > 0, span, torch.ones_like(span))[:, None, None]
        out = features[start:stop]
        torch.sub(db, lo[:, None, None], out=out).div_(safe_span)  # [0, 1]; 0 for silent clips
        if (lo_val, hi_val) != (0.0, 1.0):
            out.mul_(hi_val - lo_val).add_(lo_val)
        mins_t[start:stop], maxs_t[start:stop] = lo, hi
    silent = [names[i] for i in torch.nonzero(maxs_t == mins_t).flatten().tolist()]
    if silent:
        warnings.warn(f"preprocess_folder: constant (silent?) clips map to min_val: {silent[:5]}"
                      + (" ..." if len(silent) > 5 else ""), stacklevel=2)

    params = {
        "sample_rate": rate, "duration": seconds, "num_samples": length, "mono": True,
        "frame_size": size, "hop_length": hop, "min_val": lo_val, "max_val": hi_val,
        "top_db": TOP_DB, "amin": AMIN,
    }
    metadata = {"format": FORMAT_TAG, "files": json.dumps(names), "params": json.dumps(params),
                "skipped": json.dumps(skipped)}
    save_tensors(out_path, {"features": features, "mins": mins_t, "maxs": maxs_t}, metadata=metadata)
    return {"path": str(out_path), "files": names, "skipped": skipped, "shape": list(features.shape),
            "params": params}


def load_features(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read a file written by :func:`preprocess_folder`.

    Returns ``(features, stats)``: ``features`` is float32 ``[N, F, frames]`` and ``stats`` has
    ``files`` (names, in row order), ``mins``, ``maxs`` (float32 ``[N]``), ``params`` and
    ``skipped``. Only safetensors is read, so loading cannot run code.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    from safetensors import SafetensorError, safe_open

    p = check_file(path, "path")
    try:
        with safe_open(str(p), framework="np") as handle:
            meta = handle.metadata() or {}
            keys = set(handle.keys())
            if not {"features", "mins", "maxs"} <= keys or meta.get("format") != FORMAT_TAG:
                raise CourseInputError(
                    f"path: {str(p)!r} is a safetensors file but not one written by preprocess_folder "
                    f"(tensors {sorted(keys)}); make it with course_lib.preprocess.preprocess_folder."
                )
            features = handle.get_tensor("features")
            mins = handle.get_tensor("mins")
            maxs = handle.get_tensor("maxs")
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, CourseInputError):
            raise
        raise CourseInputError(f"path: {str(p)!r} is not a readable safetensors file ({exc}).") from exc
    stats = {
        "files": json.loads(meta["files"]),
        "mins": mins,
        "maxs": maxs,
        "params": json.loads(meta["params"]),
        "skipped": json.loads(meta.get("skipped", "[]")),
    }
    return features, stats


def denormalise_batch(
    features: ArrayLike,
    mins: ArrayLike,
    maxs: ArrayLike,
    min_val: float = 0.0,
    max_val: float = 1.0,
) -> ArrayLike:
    """Undo the per-clip min-max scaling of a batch ``[N, ...]`` with its ``mins``/``maxs`` ``[N]``.

    Returns dB values: ``(y - min_val) / (max_val - min_val) * (max - min) + min`` per clip.
    """
    lo_val, hi_val = _check_range(min_val, max_val)
    y = _as_float64(features, "features", min_ndim=1)
    lo = _as_float64(mins, "mins")
    hi = _as_float64(maxs, "maxs")
    if lo.ndim != 1 or hi.ndim != 1 or lo.shape[0] != y.shape[0] or hi.shape[0] != y.shape[0]:
        raise CourseInputError(
            f"mins/maxs: need one value per clip, shape ({y.shape[0]},), got {tuple(lo.shape)} and "
            f"{tuple(hi.shape)}; pass stats['mins'] and stats['maxs'] from load_features."
        )
    if (hi < lo).any():
        raise CourseInputError("mins/maxs: some maxs are smaller than mins; did you swap them?")
    if isinstance(y, torch.Tensor):
        lo, hi = torch.as_tensor(lo, dtype=torch.float64), torch.as_tensor(hi, dtype=torch.float64)
    else:
        lo, hi = np.asarray(lo), np.asarray(hi)
    shape = (-1,) + (1,) * (y.ndim - 1)
    unit = (y - lo_val) / (hi_val - lo_val)
    out = unit * (hi - lo).reshape(shape) + lo.reshape(shape)
    return _restore_dtype(out, features)
