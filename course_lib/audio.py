"""Audio in and out: load, save, resample, normalise, listen and look.

Conventions used everywhere in this module (and in the rest of the course):

- Samples are float32 in [-1, 1].
- Layout is **channels first**: a mono clip is a 1-D array of shape ``(T,)``, a multichannel
  clip is ``(C, T)``. (soundfile returns ``(T, C)``; :func:`load_audio` transposes for you.)
- Functions accept NumPy arrays or torch tensors and give back the same kind they were given.

Nothing here imports :mod:`course_lib.spectrogram`; the quick STFT used for plots is local.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from course_lib.io import atomic_write
from course_lib.validate import (
    CourseInputError,
    as_float_tensor,
    check_choice,
    check_file,
    check_number,
    check_positive_int,
    check_sample_rate,
)

__all__ = [
    "load_audio",
    "read_frames",
    "save_wav",
    "resample",
    "peak_normalise",
    "loudness_normalise",
    "measure_loudness",
    "to_mono",
    "to_channels",
    "play",
    "mel_band_centres",
    "plot_waveform",
    "plot_spectrogram",
    "plot_audio",
]

ArrayLike = np.ndarray | torch.Tensor

# More rows than this in a 2-D array means it is almost surely (time, channels), not channels first.
MAX_CHANNELS = 64
# The subtypes save_wav writes, by bit depth.
_PCM_SUBTYPES = {16: "PCM_16", 24: "PCM_24", 32: "PCM_32"}


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------


def _like(result: torch.Tensor, original: Any) -> ArrayLike:
    """Return ``result`` as the same kind of object the caller passed (tensor or NumPy array)."""
    if isinstance(original, torch.Tensor):
        return result
    return result.detach().cpu().numpy().astype(np.float32, copy=False)


def _audio_tensor(audio: Any, name: str = "audio") -> torch.Tensor:
    """Check a waveform of shape (T,) or (C, T) and return it as a float32 tensor."""
    x = as_float_tensor(audio, name, min_ndim=1, max_ndim=2)
    if x.ndim == 2 and x.shape[0] > MAX_CHANNELS:
        raise CourseInputError(
            f"{name}: shape {tuple(x.shape)} has {x.shape[0]} rows, which looks like (time, channels); "
            "course_lib uses channels first (C, T): pass audio.T."
        )
    return x


def _check_finite_number(value: Any, name: str) -> float:
    """Check that ``value`` is a real, finite number and return it as a float."""
    return check_number(value, name)


def _sniff(path: Path) -> str:
    """Guess what a file that libsndfile refused actually is, from its first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:  # pragma: no cover - unreadable files are rare after check_file
        return f"unreadable ({exc})"
    stripped = head.lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head")):
        return "an HTML/XML page (perhaps a failed download or a login page saved under an audio name)"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the audio itself (run `git lfs pull`)"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy array (load it with np.load(path))"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (unzip it first)"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if len(head) > 1 and head[0] == 0x80 and head[1] in (2, 3, 4, 5):
        return "a Python pickle (never load those from untrusted sources)"
    if len(head) > 9 and head[8:10] == b'{"' and int.from_bytes(head[:8], "little") < 100_000_000:
        return "a safetensors file (tensors such as features or weights), not audio"
    if head[4:8] == b"ftyp":
        return "an MP4/M4A/AAC container, which libsndfile cannot read (convert it: ffmpeg -i in.m4a out.wav)"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "a WAV file whose header or data is damaged, or that uses an encoding libsndfile does not support"
    if head.startswith((b"fLaC", b"OggS", b"ID3", b"FORM")) or (
        len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0
    ):
        return "an audio file (FLAC/Ogg/MP3/AIFF) that could not be decoded; it may be truncated or damaged"
    if stripped.startswith((b"{", b"[")):
        return "a JSON or other text file"
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    if head and printable / len(head) > 0.95:
        return "a text file"
    return "a file in no audio format libsndfile recognises"


# ----------------------------------------------------------------------------------------------
# channels
# ----------------------------------------------------------------------------------------------


def to_mono(audio: ArrayLike) -> ArrayLike:
    """Average the channels of a ``(C, T)`` clip into one ``(T,)`` signal; ``(T,)`` passes through.

    Averaging (rather than summing) keeps the result in [-1, 1].
    """
    x = _audio_tensor(audio)
    out = x.mean(dim=0) if x.ndim == 2 else x.clone()
    return _like(out, audio)


def to_channels(audio: ArrayLike, n: int) -> ArrayLike:
    """Return the clip with exactly ``n`` channels, shape ``(n, T)``.

    Mono becomes ``n`` identical copies; ``n=1`` averages all channels into one; a clip that
    already has ``n`` channels is returned as a copy. Other conversions (e.g. 6 → 2) need a
    downmix matrix, so they raise instead of guessing.
    """
    n = check_positive_int(n, "n")
    if n > MAX_CHANNELS:
        raise CourseInputError(f"n: {n} channels is more than course_lib supports ({MAX_CHANNELS}).")
    x = _audio_tensor(audio)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    have = x.shape[0]
    if have == n:
        out = x.clone()
    elif n == 1:
        out = x.mean(dim=0, keepdim=True)
    elif have == 1:
        out = x.expand(n, -1).clone()
    else:
        raise CourseInputError(
            f"n: cannot turn {have} channels into {n} without a downmix rule; pick channels "
            f"(audio[:{n}]) or mix to mono first with to_mono(audio)."
        )
    return _like(out, audio)


# ----------------------------------------------------------------------------------------------
# resampling
# ----------------------------------------------------------------------------------------------


def resample(audio: ArrayLike, orig_sr: int, new_sr: int) -> ArrayLike:
    """Change the sample rate along the last axis (any leading batch/channel axes are kept).

    Uses torchaudio's band-limited sinc interpolation, so frequencies below the new Nyquist
    keep their pitch. NumPy in gives NumPy out; a tensor in gives a tensor out.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    orig = check_sample_rate(orig_sr, "orig_sr")
    new = check_sample_rate(new_sr, "new_sr")
    x = as_float_tensor(audio, "audio", min_ndim=1)
    if orig == new:
        return _like(x.clone(), audio)
    if x.device.type == "cpu":
        return _like(_cpu_resampler(orig, new)(x), audio)
    import torchaudio.functional as AF

    return _like(AF.resample(x, orig, new), audio)


@functools.lru_cache(maxsize=32)
def _cpu_resampler(orig: int, new: int) -> Any:
    """A torchaudio ``Resample`` module per rate pair: building its sinc kernel costs more than
    resampling a short clip, so it is built once and reused (same kernel as the functional API)."""
    import torchaudio.transforms as AT

    return AT.Resample(orig, new, dtype=torch.float32)


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------


def _riff_promised_bytes(path: Path) -> int | None:
    """The size a WAV (RIFF) file's header promises, or None for other files and unknown sizes.

    libsndfile quietly reads what is there, so a truncated WAV would load short without a word.
    """
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[:4] != b"RIFF":
        return None
    size = int.from_bytes(head[4:8], "little")
    return None if size in (0, 0xFFFFFFFF) else size + 8  # 0 / all ones: written while streaming, size unknown


def read_frames(path: Path, name: str = "path", frames_for_rate: Any = None) -> tuple[np.ndarray, int]:
    """Read samples ``(T, C)`` float32 and the file's rate with soundfile, with the course's checks.

    ``frames_for_rate(rate) -> int`` reads only that many frames (fewer if the file is shorter);
    by default the whole file. Unreadable, empty and damaged files get a clear error naming ``name``.
    """
    try:
        with sf.SoundFile(str(path)) as handle:
            rate = int(handle.samplerate)
            frames = -1 if frames_for_rate is None else int(frames_for_rate(rate))
            data = handle.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise CourseInputError(
            f"{name}: {str(path)!r} could not be read as audio; it looks like {_sniff(path)}. (libsndfile said: {exc})"
        ) from exc
    if data.shape[0] == 0:
        raise CourseInputError(f"{name}: {str(path)!r} is a valid {path.suffix or 'audio'} file but holds no samples.")
    promised = _riff_promised_bytes(path)
    if promised is not None and promised > os.path.getsize(path):
        raise CourseInputError(
            f"{name}: {str(path)!r} is cut short: its header promises {promised:,} bytes but the file holds "
            f"{os.path.getsize(path):,}, so only the first {data.shape[0]:,} samples survive. Copy or download it again."
        )
    if not np.isfinite(data).all():
        raise CourseInputError(f"{name}: {str(path)!r} contains NaN or infinite samples; the file is damaged.")
    return data, rate


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    mono: bool = True,
    channels: int | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file (WAV, FLAC, Ogg, MP3, AIFF ... whatever libsndfile reads) as float32.

    Returns ``(audio, sample_rate)``. ``sample_rate=None`` keeps the file's rate, otherwise
    the audio is resampled. Layout:

    - ``channels=None, mono=True`` (default): shape ``(T,)``, channels averaged.
    - ``channels=None, mono=False``: shape ``(C, T)`` with the file's own channels (a mono
      file gives ``(1, T)``).
    - ``channels=n``: shape ``(n, T)`` (``mono`` is then ignored): a mono file is duplicated
      into ``n`` identical channels, ``n=1`` averages, other mismatches raise.
    """
    p = check_file(path, "path")
    target_sr = None if sample_rate is None else check_sample_rate(sample_rate, "sample_rate")
    if not isinstance(mono, (bool, np.bool_)):
        raise CourseInputError(f"mono: expected True or False, got {mono!r}.")
    if channels is not None:
        channels = check_positive_int(channels, "channels")
    data, file_sr = read_frames(p, "path")
    audio = torch.from_numpy(np.ascontiguousarray(data.T))  # (C, T)
    if channels is not None:
        audio = to_channels(audio, channels)
    elif mono:
        audio = audio.mean(dim=0)
    rate = int(file_sr)
    if target_sr is not None and target_sr != rate:
        audio = resample(audio, rate, target_sr)
        rate = target_sr
    return audio.numpy().astype(np.float32, copy=False), rate


def save_wav(path: str | os.PathLike, audio: ArrayLike, sample_rate: int, bit_depth: int = 16) -> Path:
    """Write float audio in [-1, 1] to a PCM WAV file and return its path.

    Accepts ``(T,)`` or ``(C, T)``. Samples beyond ±1 are clipped (with a warning). Quantisation
    rounds ``x * 2**(bits-1)`` to the nearest integer, which is the inverse of how
    :func:`load_audio` scales PCM back to float, so a round trip is within half a step.
    Parent folders are created, and the file appears atomically (:func:`course_lib.io.atomic_write`:
    written to a temporary name in the same folder, then renamed), so a crash never leaves half a WAV.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise CourseInputError(f"path: expected a file path such as 'out/clip.wav', got {type(path).__name__}.")
    out_path = Path(path)
    if out_path.suffix.lower() != ".wav":
        raise CourseInputError(
            f"path: {str(out_path)!r} does not end in .wav; save_wav writes WAV files only (e.g. 'clip.wav')."
        )
    if out_path.is_dir():
        raise CourseInputError(f"path: {str(out_path)!r} is a folder; give a file name inside it.")
    rate = check_sample_rate(sample_rate)
    if isinstance(bit_depth, bool) or bit_depth not in _PCM_SUBTYPES:
        raise CourseInputError(f"bit_depth: {bit_depth!r} is not supported; use 16, 24 or 32.")
    x = _audio_tensor(audio).detach().cpu().to(torch.float64)
    peak = float(x.abs().max())
    if peak > 1.0:
        warnings.warn(
            f"save_wav: audio peaks at {peak:.3f} (> 1); clipping to [-1, 1]. "
            "Use peak_normalise(audio) first to avoid distortion.",
            stacklevel=2,
        )
    frames = x.numpy().T if x.ndim == 2 else x.numpy()  # soundfile wants (T, C)
    full_scale = 2.0 ** (bit_depth - 1)
    ints = np.clip(np.round(frames * full_scale), -full_scale, full_scale - 1)
    if bit_depth == 16:
        pcm = ints.astype(np.int16)
    elif bit_depth == 24:
        # libsndfile takes the top 24 bits of an int32 sample
        pcm = (ints.astype(np.int64) * 256).astype(np.int32)
    else:
        pcm = ints.astype(np.int64).astype(np.int32)
    pcm = np.ascontiguousarray(pcm)
    return atomic_write(out_path, lambda tmp: sf.write(tmp, pcm, rate, subtype=_PCM_SUBTYPES[bit_depth], format="WAV"))


# ----------------------------------------------------------------------------------------------
# levels
# ----------------------------------------------------------------------------------------------


def peak_normalise(audio: ArrayLike, peak_db: float = -1.0) -> ArrayLike:
    """Scale the clip so its largest absolute sample is ``peak_db`` dB full scale.

    The whole array is scaled by one gain (channels keep their balance). ``-1`` dBFS leaves a
    little headroom for later processing. Silent input is returned unchanged with a warning,
    since no gain can make silence reach a peak.
    """
    target_db = _check_finite_number(peak_db, "peak_db")
    if target_db > 0:
        warnings.warn(f"peak_normalise: peak_db={target_db} is above 0 dBFS; the result will clip when saved.",
                      stacklevel=2)
    x = as_float_tensor(audio, "audio", min_ndim=1)
    peak = float(x.abs().max())
    if peak == 0.0:
        warnings.warn("peak_normalise: the audio is silent (all zeros); returning it unchanged.", stacklevel=2)
        return _like(x.clone(), audio)
    gain = 10.0 ** (target_db / 20.0) / peak
    return _like((x.to(torch.float64) * gain).to(torch.float32), audio)


def measure_loudness(audio: ArrayLike, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4, via ``torchaudio.functional.loudness``).

    Accepts ``(T,)`` or ``(C, T)`` with up to 5 channels and at least 0.4 s (one gating block).
    Returns ``-inf`` for silence. Loud clips are measured at a reduced scale and corrected,
    because torchaudio's K-weighting filter clamps its output to [-1, 1].
    """
    rate = check_sample_rate(sample_rate)
    x = _audio_tensor(audio)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.shape[0] > 5:
        raise CourseInputError(f"audio: {x.shape[0]} channels; BS.1770 loudness is defined for up to 5.")
    min_len = int(round(0.4 * rate))
    if x.shape[-1] < min_len:
        raise CourseInputError(
            f"audio: {x.shape[-1]} samples ({x.shape[-1] / rate:.3f} s) is shorter than the 0.4 s "
            f"({min_len} samples) that one loudness block needs; use a longer clip or peak_normalise."
        )
    peak = float(x.abs().max())
    if peak == 0.0:
        return float("-inf")
    import torchaudio.functional as AF

    scale = min(1.0, 0.25 / peak)  # keep the K-weighted signal far from the filter's clamp
    value = float(AF.loudness(x.to(torch.float64) * scale, rate)) - 20.0 * math.log10(scale)
    return value if math.isfinite(value) else float("-inf")


def loudness_normalise(audio: ArrayLike, sample_rate: int, target_lufs: float = -20.0) -> ArrayLike:
    """Scale the clip so its integrated loudness (ITU-R BS.1770) is ``target_lufs``.

    Loudness matches what people hear better than peak level, so clips normalised this way
    sound equally loud. Silent (or almost silent, below the -70 LUFS gate) input is returned
    unchanged with a warning; if the gain pushes peaks past ±1 you get a warning, not clipping.
    """
    target = _check_finite_number(target_lufs, "target_lufs")
    if not -70.0 < target <= 0.0:
        raise CourseInputError(f"target_lufs: {target} is outside (-70, 0]; typical targets are -23 to -14 LUFS.")
    x = as_float_tensor(audio, "audio", min_ndim=1, max_ndim=2)
    current = measure_loudness(x, sample_rate)
    if not math.isfinite(current):
        warnings.warn(
            "loudness_normalise: the audio is silent (below the -70 LUFS gate); returning it unchanged.",
            stacklevel=2,
        )
        return _like(x.clone(), audio)
    gain = 10.0 ** ((target - current) / 20.0)
    out = (x.to(torch.float64) * gain).to(torch.float32)
    peak = float(out.abs().max())
    if peak > 1.0:
        warnings.warn(
            f"loudness_normalise: reaching {target} LUFS makes the peaks {peak:.2f} (> 1), which will clip "
            "when saved; choose a lower target_lufs.",
            stacklevel=2,
        )
    return _like(out, audio)


# ----------------------------------------------------------------------------------------------
# listening
# ----------------------------------------------------------------------------------------------


def play(audio: ArrayLike, sample_rate: int, normalize: bool = True, max_seconds: float | None = 30.0) -> Any:
    """An ``IPython.display.Audio`` player for a notebook cell (mono ``(T,)`` or ``(C, T)``).

    ``max_seconds`` guards against embedding minutes of audio into the notebook file (each
    second of 16-bit stereo at 44.1 kHz adds about 230 kB); pass ``None`` to lift the limit.
    With ``normalize=False`` samples must already be within [-1, 1].

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    from IPython.display import Audio

    rate = check_sample_rate(sample_rate)
    if not isinstance(normalize, (bool, np.bool_)):
        raise CourseInputError(f"normalize: expected True or False, got {normalize!r}.")
    x = _audio_tensor(audio)
    seconds = x.shape[-1] / rate
    if max_seconds is not None:
        limit = _check_finite_number(max_seconds, "max_seconds")
        if limit <= 0:
            raise CourseInputError(f"max_seconds: must be positive (or None), got {max_seconds!r}.")
        if seconds > limit:
            channels = 1 if x.ndim == 1 else x.shape[0]
            megabytes = x.shape[-1] * channels * 2 * 4 / 3 / 1e6
            raise CourseInputError(
                f"audio: {seconds:.1f} s is longer than max_seconds={limit:g}; embedding it would add about "
                f"{megabytes:.1f} MB to the notebook. Play a slice, e.g. audio[..., :{rate} * 10], "
                "or pass max_seconds=None if you really want it all."
            )
    peak = float(x.abs().max())
    if not normalize and peak > 1.0:
        raise CourseInputError(
            f"audio: peaks at {peak:.3f} but normalize=False needs samples within [-1, 1]; "
            "use normalize=True or peak_normalise(audio) first."
        )
    data = x.detach().cpu().to(torch.float64).numpy()
    # IPython divides by the peak when normalising, which would turn silence into NaN.
    return Audio(data=data, rate=rate, normalize=bool(normalize) and peak > 0.0)


# ----------------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------------


def _hz_to_mel(f: np.ndarray, mel_scale: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if mel_scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # Slaney: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above (27 steps per factor 6.4)
    log_step = math.log(6.4) / 27.0
    linear = f * 3.0 / 200.0
    return np.where(f < 1000.0, linear, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / log_step)


def _mel_to_hz(m: np.ndarray, mel_scale: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    log_step = math.log(6.4) / 27.0
    return np.where(m < 15.0, m * 200.0 / 3.0, 1000.0 * np.exp(log_step * (m - 15.0)))


def mel_band_centres(
    n_mels: int,
    sample_rate: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    mel_scale: str = "slaney",
) -> np.ndarray:
    """Centre frequency in Hz of each of ``n_mels`` triangular mel bands between fmin and fmax.

    The band edges are ``n_mels + 2`` points equally spaced on the mel scale; band ``i`` peaks
    at point ``i + 1``. ``mel_scale`` is ``"slaney"`` (librosa's default) or ``"htk"``
    (torchaudio's default).
    """
    n_mels = check_positive_int(n_mels, "n_mels")
    rate = check_sample_rate(sample_rate)
    check_choice(mel_scale, "mel_scale", ("slaney", "htk"))
    low = _check_finite_number(fmin, "fmin")
    high = rate / 2.0 if fmax is None else _check_finite_number(fmax, "fmax")
    if not 0.0 <= low < high <= rate / 2.0:
        raise CourseInputError(
            f"fmin/fmax: need 0 <= fmin < fmax <= sample_rate/2 = {rate / 2:g}, got fmin={low:g}, fmax={high:g}."
        )
    points = np.linspace(_hz_to_mel(low, mel_scale), _hz_to_mel(high, mel_scale), n_mels + 2)
    return _mel_to_hz(points, mel_scale)[1:-1]


def _format_hz(f: float) -> str:
    if f >= 1000.0:
        return f"{f / 1000.0:.3g}k"
    return f"{f:.0f}"


def plot_waveform(audio: ArrayLike, sample_rate: int, ax: Any = None, title: str | None = None) -> Any:
    """Plot amplitude against time in seconds and return the matplotlib Axes.

    Multichannel clips get one line per channel. Long clips are drawn as a min/max envelope so
    that plotting minutes of audio stays quick.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    import matplotlib.pyplot as plt

    rate = check_sample_rate(sample_rate)
    x = _audio_tensor(audio).detach().cpu().to(torch.float64).numpy()
    rows = x[None, :] if x.ndim == 1 else x
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3))
    n = rows.shape[-1]
    names = ["left", "right"] if rows.shape[0] == 2 else [f"channel {i}" for i in range(rows.shape[0])]
    buckets = 4000
    for row, label in zip(rows, names):
        if n > 4 * buckets:
            size = n // buckets
            blocks = row[: size * buckets].reshape(buckets, size)
            t = (np.arange(buckets) * size + size / 2) / rate
            ax.fill_between(t, blocks.min(axis=1), blocks.max(axis=1), linewidth=0, alpha=0.8, label=label)
        else:
            ax.plot(np.arange(n) / rate, row, linewidth=0.8, label=label)
    if rows.shape[0] > 1:
        ax.legend(loc="upper right")
    ax.set_xlim(0.0, n / rate)
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Amplitude")
    ax.set_title("Waveform" if title is None else title)
    return ax


def plot_spectrogram(
    spec_db: ArrayLike,
    sample_rate: int,
    hop_length: int,
    ax: Any = None,
    y_axis: str = "linear",
    title: str | None = None,
    colorbar: bool = True,
    *,
    n_fft: int | None = None,
    fmin: float = 0.0,
    fmax: float | None = None,
    mel_scale: str = "slaney",
    cmap: str = "magma",
) -> Any:
    """Show a dB spectrogram ``(frequency, frames)`` with time in seconds and frequency in Hz.

    ``y_axis``: ``"linear"`` or ``"log"`` for STFT bins (bin ``k`` is ``k * sample_rate / n_fft``
    Hz; ``n_fft`` defaults to ``2 * (rows - 1)``, so pass it when the top bin was dropped), or
    ``"mel"`` for mel bands, drawn evenly spaced and labelled with their centre frequencies
    in Hz (``fmin``, ``fmax`` and ``mel_scale`` must match how the bands were made).
    Returns the Axes.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    import matplotlib.pyplot as plt

    rate = check_sample_rate(sample_rate)
    hop = check_positive_int(hop_length, "hop_length")
    check_choice(y_axis, "y_axis", ("linear", "log", "mel"))
    if not isinstance(colorbar, (bool, np.bool_)):
        raise CourseInputError(f"colorbar: expected True or False, got {colorbar!r}.")
    s = as_float_tensor(spec_db, "spec_db", min_ndim=2, max_ndim=3, min_length=1)
    if s.ndim == 3:
        if s.shape[0] != 1:
            raise CourseInputError(
                f"spec_db: got a batch of shape {tuple(s.shape)}; plot one spectrogram at a time, e.g. spec_db[0]."
            )
        s = s[0]
    data = s.detach().cpu().numpy()
    n_rows, n_frames = data.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4))
    t_end = n_frames * hop / rate

    if y_axis == "mel":
        centres = mel_band_centres(n_rows, rate, fmin=fmin, fmax=fmax, mel_scale=mel_scale)
        image = ax.imshow(data, origin="lower", aspect="auto", cmap=cmap,
                          extent=(0.0, t_end, -0.5, n_rows - 0.5), interpolation="nearest")
        ticks = np.unique(np.linspace(0, n_rows - 1, min(n_rows, 7)).round().astype(int))
        ax.set_yticks(ticks)
        ax.set_yticklabels([_format_hz(centres[i]) for i in ticks])
    else:
        size = 2 * (n_rows - 1) if n_fft is None else check_positive_int(n_fft, "n_fft", minimum=2)
        if size < 2 or size // 2 + 1 < n_rows:
            raise CourseInputError(
                f"n_fft: {size} gives only {size // 2 + 1} frequency bins but spec_db has {n_rows} rows; "
                "pass the n_fft the spectrogram was computed with."
            )
        bin_hz = rate / size
        if y_axis == "linear":
            image = ax.imshow(data, origin="lower", aspect="auto", cmap=cmap, interpolation="nearest",
                              extent=(0.0, t_end, -0.5 * bin_hz, (n_rows - 0.5) * bin_hz))
            ax.set_ylim(0.0, (n_rows - 0.5) * bin_hz)
        else:
            edges = (np.arange(n_rows + 1) - 0.5) * bin_hz
            edges[0] = edges[1] / 2.0  # a log axis cannot reach 0 Hz
            times = np.linspace(0.0, t_end, n_frames + 1)
            image = ax.pcolormesh(times, edges, data, cmap=cmap, shading="flat")
            ax.set_yscale("log")
            ax.set_ylim(edges[0], edges[-1])
    ax.set_xlabel("Time (s)")
    ax.set_ylabel("Frequency (Hz)")
    ax.set_title("Spectrogram (dB)" if title is None else title)
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax)
        bar.set_label("Level (dB)")
    return ax


def plot_audio(
    audio: ArrayLike,
    sample_rate: int,
    n_fft: int = 1024,
    hop_length: int | None = None,
    title: str | None = None,
) -> tuple[Any, Any]:
    """Waveform and dB spectrogram side by side; returns ``(waveform_axes, spectrogram_axes)``.

    The spectrogram is a Hann-window STFT of the mono mix, in dB relative to a full-scale
    sine (0 dB), floored 80 dB below its loudest bin. For a first look at any clip.
    """
    import matplotlib.pyplot as plt

    rate = check_sample_rate(sample_rate)
    size = check_positive_int(n_fft, "n_fft", minimum=16)
    hop = size // 4 if hop_length is None else check_positive_int(hop_length, "hop_length")
    x = _audio_tensor(audio).detach().cpu()
    mono = x.mean(dim=0) if x.ndim == 2 else x
    window = torch.hann_window(size, dtype=torch.float32)
    stft = torch.stft(mono, size, hop_length=hop, window=window, center=True, pad_mode="constant",
                      return_complex=True)
    magnitude = stft.abs() / (window.sum() / 2.0)  # a full-scale sine peaks at about 1
    db = 20.0 * torch.log10(magnitude.clamp_min(1e-5))
    db = torch.maximum(db, db.max() - 80.0)
    fig, (ax_wave, ax_spec) = plt.subplots(1, 2, figsize=(13, 3.6), constrained_layout=True)
    plot_waveform(x, rate, ax=ax_wave, title="Waveform")
    plot_spectrogram(db, rate, hop, ax=ax_spec, y_axis="linear", n_fft=size, title="Spectrogram (dB)")
    if title is not None:
        fig.suptitle(title)
    return ax_wave, ax_spec
