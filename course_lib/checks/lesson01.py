"""Checks for lesson 01's exercises (spectrogram basics); re-exported by :mod:`course_lib.checks`.

1. :func:`check_playback`: duration and pitch shift when a clip is played at the wrong rate.
2. :func:`check_hz_to_mel`: the HTK mel scale and its inverse, vectorised.
3. :func:`check_denormalise`: find and fix the classic multiply-by-min bug of min-max denormalising.
4. :func:`check_batched_log_spectrogram`: the classic log-spectrogram, batched (one STFT call).
5. :func:`check_griffin_lim`: plain Griffin-Lim phase reconstruction.
6. :func:`check_stft_shape`: predict ``torch.stft``'s output shape; the truth is measured.
7. :func:`check_more_iterations`: tell a 4-iteration Griffin-Lim clip from a 64-iteration one
   (:func:`griffin_lim_pair` makes the pair a learner listens to first).

The references are the formulas in NumPy float64 (an STFT, the mel scale), written here
independently of :mod:`course_lib.spectrogram`; shapes and Griffin-Lim pairs are measured by running torch.
"""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Any, Callable, Iterator

import numpy as np

from course_lib.checks.harness import (
    ExerciseFailed,
    all_close,
    call_answer,
    need_callable,
    print_passed,
    to_numpy,
    worst_difference,
)
from course_lib.errors import CourseInputError

__all__ = [
    "check_playback",
    "check_hz_to_mel",
    "check_denormalise",
    "check_batched_log_spectrogram",
    "check_griffin_lim",
    "check_stft_shape",
    "check_more_iterations",
    "griffin_lim_pair",
    "GRIFFIN_LIM_BOUND",
    "LOG_SPEC_TOL_DB",
]

# Spectral convergence a plain Griffin-Lim reaches on the check's signal after 32 iterations.
# Measured with torch 2.11 on CPU over several seeds, random and zero initial phase, and
# 'reflect' or 'constant' STFT padding: 0.13 to 0.19 (random phase, 0 iterations: 0.63 to
# 0.67; zero phase, 0 iterations: 0.87; 100 iterations: about 0.11). The bound leaves margin.
GRIFFIN_LIM_BOUND = 0.25

# Agreement asked of the batched log-spectrogram, in dB, for bins near the clip's peak. Bins
# far below the peak also get the float32 rounding allowance, see _log_spec_tolerance.
LOG_SPEC_TOL_DB = 1e-3
# Float32 STFTs (torch.stft or rfft of frames) differ from the float64 reference by at most
# about 3e-7 of the clip's peak magnitude (measured); the allowance is 2e-6 of the peak.
_FLOAT32_MAG_ERROR = 2e-6


# ----------------------------------------------------------------------------- exercise 1


def check_playback(fn: Callable[[int, int, int], tuple[float, float]]) -> None:
    """Check ``fn(n_samples, true_rate, playback_rate) -> (seconds, semitones)``.

    A clip of ``n_samples`` recorded at ``true_rate`` and played at ``playback_rate`` lasts
    ``n_samples / playback_rate`` seconds and is shifted by ``12 * log2(playback_rate / true_rate)``
    semitones (negative: lower). Getting this wrong is the usual cause of "chipmunk" audio.
    """
    __tracebackhide__ = True
    title = "Playback speed and pitch"
    need_callable(fn, "fn", "check_playback(playback)")
    signature = "fn(n_samples, true_rate, playback_rate) -> (seconds, semitones)"
    cases = [(44100, 44100, 22050), (66150, 22050, 44100), (16000, 16000, 16000), (48000, 48000, 44100), (40000, 8000, 12000)]
    for n, true_rate, play_rate in cases:
        case = f"n_samples={n}, true_rate={true_rate}, playback_rate={play_rate}"
        result = call_answer(title, fn, case, n, true_rate, play_rate, signature=signature)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise ExerciseFailed(
                title,
                f"on case {case}, expected a pair (seconds, semitones), got {result!r}.",
                "end your function with `return seconds, semitones`.",
            )
        try:
            seconds, semitones = (float(v) for v in result)
        except (TypeError, ValueError) as err:
            raise ExerciseFailed(title, f"on case {case}, the pair {result!r} does not hold two numbers.") from err
        want_s = n / play_rate
        want_st = 12.0 * math.log2(play_rate / true_rate)
        if not math.isclose(seconds, want_s, rel_tol=1e-6, abs_tol=1e-9):
            hint = "the clip has n_samples samples and the player consumes playback_rate of them per second."
            if math.isclose(seconds, n / true_rate, rel_tol=1e-6) and true_rate != play_rate:
                hint = "you divided by the rate it was recorded at; the duration depends on the rate it is played at."
            elif math.isclose(seconds, n * play_rate / true_rate**2, rel_tol=1e-6) or math.isclose(
                seconds, true_rate / play_rate, rel_tol=1e-6
            ):
                hint = "seconds = n_samples / playback_rate."
            raise ExerciseFailed(title, f"on case {case}, expected {want_s:.6g} seconds, got {seconds:.6g}.", hint)
        if not math.isclose(semitones, want_st, rel_tol=1e-6, abs_tol=1e-6):
            hint = "pitch is logarithmic: an octave (rate × 2) is 12 semitones. How many octaves is playback_rate / true_rate?"
            if want_st != 0 and math.isclose(semitones, -want_st, rel_tol=1e-6):
                hint = (
                    "the sign is flipped: playing faster (playback_rate > true_rate) raises the pitch, so the "
                    "ratio is playback_rate / true_rate."
                )
            elif want_st != 0 and (
                math.isclose(semitones, 12 * math.log(play_rate / true_rate), rel_tol=1e-6)
                or math.isclose(semitones, 12 * math.log10(play_rate / true_rate), rel_tol=1e-6)
            ):
                hint = "use log base 2 (np.log2 or math.log2): one octave is a doubling of frequency."
            raise ExerciseFailed(
                title, f"on case {case}, expected {want_st:+.6g} semitones, got {semitones:+.6g}.", hint
            )
    print_passed(title, f"{len(cases)} cases, e.g. 44100 samples at 44100 Hz played at 22050 Hz: 2 s, -12 semitones")


# ----------------------------------------------------------------------------- exercise 2


def _mel_ref(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _hz_ref(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def check_hz_to_mel(fn_to_mel: Callable[[np.ndarray], np.ndarray], fn_to_hz: Callable[[np.ndarray], np.ndarray]) -> None:
    """Check the HTK mel scale ``2595 * log10(1 + f / 700)`` and its inverse, on whole arrays.

    Both functions must accept NumPy arrays of any shape and return arrays of the same shape,
    and ``fn_to_hz(fn_to_mel(f))`` must give ``f`` back.
    """
    __tracebackhide__ = True
    title = "Hz ↔ mel (HTK)"
    need_callable(fn_to_mel, "fn_to_mel", "check_hz_to_mel(hz_to_mel, mel_to_hz)")
    need_callable(fn_to_hz, "fn_to_hz", "check_hz_to_mel(hz_to_mel, mel_to_hz)")
    rng = np.random.default_rng(1)
    cases = [
        ("landmark frequencies [0, 700, 1000, 4000, 8000, 11025] Hz", np.array([0.0, 700.0, 1000.0, 4000.0, 8000.0, 11025.0])),
        ("a 2-D array of shape (2, 3)", np.array([[50.0, 440.0, 2000.0], [3000.0, 16000.0, 22050.0]])),
        ("64 random frequencies up to 22050 Hz", rng.uniform(0.0, 22050.0, size=64)),
    ]
    for label, f in cases:
        original = f.copy()
        got = to_numpy(title, call_answer(title, fn_to_mel, label, f, signature="hz_to_mel(f)"), f"hz_to_mel on {label}")
        if not np.array_equal(f, original):
            raise ExerciseFailed(title, f"hz_to_mel changed its input array ({label}).", "compute a new array; don't modify f in place.")
        want = _mel_ref(f)
        if got.shape != want.shape:
            raise ExerciseFailed(
                title,
                f"hz_to_mel on {label}: expected shape {want.shape}, got {got.shape}.",
                "apply the formula element-wise with NumPy so the output has the input's shape.",
            )
        if not all_close(got, want, atol=1e-3, rtol=1e-4):
            hint = "compare with the HTK formula in the exercise, term by term: the factor, the base of the log, what sits inside it."
            if all_close(got, 2595.0 * np.log(1.0 + f / 700.0), 1e-3, 1e-4):
                hint = "you used the natural log (np.log); the HTK formula uses log base 10: np.log10."
            elif all_close(got, 2595.0 * np.log10(f / 700.0 + 1e-300), 1e-3, 1e-4) or all_close(got, 2595.0 * np.log10(1.0 + f), 1e-3, 1e-4):
                hint = "inside the log it is (1 + f / 700)."
            raise ExerciseFailed(title, f"hz_to_mel on {label}: {worst_difference(got, want)}.", hint)

        mel = want
        got_hz = to_numpy(title, call_answer(title, fn_to_hz, label, mel.copy(), signature="mel_to_hz(m)"), f"mel_to_hz on {label}")
        if got_hz.shape != f.shape:
            raise ExerciseFailed(title, f"mel_to_hz on {label}: expected shape {f.shape}, got {got_hz.shape}.")
        if not all_close(got_hz, f, atol=1e-2, rtol=1e-4):
            hint = "undo hz_to_mel's steps in reverse order: divide by 2595, undo the log10, then undo the 1 + f / 700."
            if all_close(got_hz, 700.0 * (np.exp(mel / 2595.0) - 1.0), 1e-2, 1e-4):
                hint = "the inverse of log10 is 10 ** x, not np.exp(x): f = 700 * (10 ** (mel / 2595) - 1)."
            elif all_close(got_hz, 700.0 * 10.0 ** (mel / 2595.0), 1e-2, 1e-4):
                hint = "don't forget the `- 1`: f = 700 * (10 ** (mel / 2595) - 1)."
            raise ExerciseFailed(title, f"mel_to_hz on {label} (the mel values of those frequencies): {worst_difference(got_hz, f)}.", hint)

        back = to_numpy(title, call_answer(title, fn_to_hz, label, got.copy(), signature="mel_to_hz(m)"), f"mel_to_hz(hz_to_mel(f)) on {label}")
        if back.shape != f.shape or not all_close(back, f, atol=1e-6, rtol=1e-6):
            raise ExerciseFailed(
                title,
                f"the round trip mel_to_hz(hz_to_mel(f)) on {label} does not give f back"
                + (f": {worst_difference(back, f)}." if back.shape == f.shape else f" (shape {back.shape})."),
                "use exactly the same constants (2595 and 700) in both functions.",
            )
    print_passed(title, "mel(700 Hz) = 781.2, arrays of any shape, round trip within 1e-6")


# ----------------------------------------------------------------------------- exercise 3


def _denorm_ref(norm: np.ndarray, omin: float, omax: float, lo: float, hi: float) -> np.ndarray:
    return (norm - lo) / (hi - lo) * (omax - omin) + omin


def check_denormalise(fn: Callable[..., Any]) -> None:
    """Check ``fn(norm, original_min, original_max, min_val=0.0, max_val=1.0)``.

    It must undo ``norm = (x - original_min) / (original_max - original_min) * (max_val - min_val) + min_val``
    on arrays of any shape, including negative ranges such as dB values from -80 to 0. The
    classic bug multiplies by ``original_min`` instead of adding it; the check recognises it.
    """
    __tracebackhide__ = True
    title = "Denormalise (undo min-max normalisation)"
    need_callable(fn, "fn", "check_denormalise(denormalise)")
    signature = "denormalise(norm, original_min, original_max, min_val=0.0, max_val=1.0)"
    rng = np.random.default_rng(3)
    db = np.linspace(-80.0, 0.0, 17).reshape(1, 17)
    batch = rng.uniform(-100.0, -20.0, size=(3, 4, 6))
    batch[0, 0, 0], batch[2, 3, 5] = -100.0, -20.0
    wave = rng.uniform(-0.5, 2.0, size=50)
    wave[3], wave[7] = -0.5, 2.0
    positive = np.linspace(2.0, 10.0, 9)
    cases = [
        # label, x, original_min, original_max, min_val, max_val, pass min/max explicitly
        ("dB values from -80 to 0, default range [0, 1]", db, -80.0, 0.0, 0.0, 1.0, False),
        ("a batch of shape (3, 4, 6) with dB values in [-100, -20]", batch, -100.0, -20.0, 0.0, 1.0, True),
        ("values in [-0.5, 2] normalised to min_val=-1, max_val=1", wave, -0.5, 2.0, -1.0, 1.0, True),
        ("values in [2, 10] normalised to min_val=0, max_val=1", positive, 2.0, 10.0, 0.0, 1.0, True),
    ]
    for label, x, omin, omax, lo, hi, explicit in cases:
        norm = ((x - omin) / (omax - omin) * (hi - lo) + lo).astype(np.float32)
        given = norm.copy()
        kwargs = {"min_val": lo, "max_val": hi} if explicit else {}
        call = f"denormalise(norm, {omin}, {omax}{', min_val=' + str(lo) + ', max_val=' + str(hi) if explicit else ''})"
        got = to_numpy(title, call_answer(title, fn, label, given, omin, omax, signature=signature, **kwargs), f"the result on {label}")
        if not np.array_equal(given, norm):
            raise ExerciseFailed(title, f"on {label}, your function changed its input array.", "compute a new array; don't modify norm in place.")
        want = _denorm_ref(norm.astype(np.float64), omin, omax, lo, hi)
        if got.shape != want.shape:
            raise ExerciseFailed(
                title,
                f"on {label} ({call}): expected shape {want.shape}, got {got.shape}.",
                "use element-wise arithmetic; don't flatten, reduce or loop.",
            )
        scale = max(abs(omin), abs(omax), 1.0)
        if all_close(got, want, atol=1e-4 * scale, rtol=1e-5):
            continue
        tol = (1e-4 * scale, 1e-5)
        hint = (
            "undo the normalisation's steps in reverse order: bring norm back to [0, 1] (undo min_val and max_val), "
            "stretch it to the original span, then shift it so that it starts at original_min."
        )
        unit = (norm - lo) / (hi - lo)
        if all_close(got, unit * (omax - omin) * omin, *tol) or all_close(got, norm * (omax - omin) * omin, *tol):
            hint = (
                "you multiplied by original_min instead of adding it (the classic bug: `* original_min`). The last "
                "step is `+ original_min`: it shifts the values back, e.g. from [0, 80] to [-80, 0] for dB."
            )
        elif all_close(got, unit * (omax - omin), *tol):
            hint = "you forgot to add original_min at the end: the result should start at original_min, not 0."
        elif all_close(got, norm * (omax - omin) + omin, *tol):
            hint = "min_val and max_val were ignored: first undo them with (norm - min_val) / (max_val - min_val)."
        elif all_close(got, unit * (omin - omax) + omax, *tol) or all_close(got, unit * (omax + omin) + omin, *tol):
            hint = "the span is (original_max - original_min)."
        raise ExerciseFailed(title, f"on {label} ({call}): {worst_difference(got, want)}.", hint)
    print_passed(title, f"{len(cases)} cases incl. dB from -80 to 0, a (3, 4, 6) batch and min_val=-1, max_val=1")


# ----------------------------------------------------------------------------- exercise 4


def _hann(n: int) -> np.ndarray:
    """The periodic Hann window (the one torch.hann_window and librosa use for STFTs)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _stft_np(
    clip: np.ndarray, n_fft: int, hop: int, *, pad_mode: str = "constant", window: np.ndarray | None = None
) -> np.ndarray:
    """Centred STFT of one clip in float64: pad n_fft//2 each side, frame, window, rfft -> [F, frames]."""
    half = n_fft // 2
    padded = np.pad(np.asarray(clip, dtype=np.float64), (half, half), mode=pad_mode)  # type: ignore[call-overload]
    n_frames = 1 + (padded.size - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    win = _hann(n_fft) if window is None else window
    return np.fft.rfft(padded[index] * win, axis=1).T


def _log_spec_ref(
    batch: np.ndarray,
    *,
    pad_mode: str = "constant",
    window: np.ndarray | None = None,
    floor: str = "clip",
    factor: float = 20.0,
    power: float = 1.0,
) -> np.ndarray:
    """The classic log-spectrogram of each clip, [B, 256, frames], and its usual mistakes (for hints)."""
    out = []
    for clip in batch:
        mag = np.abs(_stft_np(clip, 512, 256, pad_mode=pad_mode, window=window))[:-1] ** power
        out.append(factor * np.log10(np.maximum(mag, 1e-5)))
    db = np.stack(out)
    if floor == "clip":
        return np.maximum(db, db.max(axis=(1, 2), keepdims=True) - 80.0)
    if floor == "batch":
        return np.maximum(db, db.max() - 80.0)
    return db


def _log_spec_tolerance(ref_db: np.ndarray) -> np.ndarray:
    """Allowed |error| in dB per bin: LOG_SPEC_TOL_DB plus float32 rounding far below the peak.

    A float32 STFT carries an absolute magnitude error of order 1e-7 of the clip's peak, which
    in dB is large for bins 60-80 dB below the peak. Real mistakes cost whole dB.
    """
    peak = ref_db.max(axis=(1, 2), keepdims=True)
    relative = 10.0 ** ((ref_db - peak) / 20.0)  # bin magnitude / peak magnitude
    return LOG_SPEC_TOL_DB + (20.0 / math.log(10.0)) * _FLOAT32_MAG_ERROR / relative


def _log_spec_batches() -> list[tuple[str, np.ndarray]]:
    rate = 16000
    rng = np.random.default_rng(4)
    n = 256 * 24
    t = np.arange(n) / rate
    loud = 0.8 * np.sin(2 * np.pi * 440.0 * t) + 0.01 * rng.standard_normal(n)
    quiet = 0.0025 * np.sin(2 * np.pi * 1000.0 * t) + 1e-5 * rng.standard_normal(n)  # about 50 dB quieter
    chirp = 0.3 * np.sin(2 * np.pi * (200.0 * t + 3000.0 * t**2)) + 0.003 * rng.standard_normal(n)
    chirp[-1500:] = 0.0
    m = 3000  # not a multiple of the hop
    noise = 0.1 * rng.standard_normal(m)
    return [
        ("a batch of 3 clips of 6144 samples at very different levels (0 dB, -50 dB, -9 dB)", np.stack([loud, quiet, chirp]).astype(np.float32)),
        ("a batch of 2 clips of 3000 samples: silence and noise", np.stack([np.zeros(m), noise]).astype(np.float32)),
        ("a batch of 1 clip of 6144 samples", loud[None, :].astype(np.float32)),
    ]


_FFT_NAMES = {"stft", "fft_fft", "fft_rfft", "fft_fftn", "fft_rfftn", "fft_fft2", "fft_rfft2"}


@contextlib.contextmanager
def _count_stft_calls() -> Iterator[list[str]]:
    """Count calls to torch.stft / Tensor.stft / torch.fft.(r)fft and librosa.stft while active."""
    from torch.overrides import TorchFunctionMode

    calls: list[str] = []

    class _Counter(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            name = getattr(func, "__name__", "")
            if name in _FFT_NAMES:
                calls.append(f"torch.{name.replace('fft_', 'fft.')}")
            return func(*args, **(kwargs or {}))

    librosa = sys.modules.get("librosa")
    original = getattr(librosa, "stft", None) if librosa is not None else None
    if librosa is not None and original is not None:

        def counted_stft(*args: Any, **kwargs: Any) -> Any:
            calls.append("librosa.stft")
            return original(*args, **kwargs)

        librosa.stft = counted_stft
    try:
        with _Counter():
            yield calls
    finally:
        if librosa is not None and original is not None:
            librosa.stft = original


def check_batched_log_spectrogram(fn: Callable[[Any], Any]) -> None:
    """Check ``fn(batch [B, T] tensor) -> [B, 256, frames] tensor``: the classic log-spectrogram, batched.

    Per clip: ``torch.stft`` with n_fft=512, hop 256, periodic Hann window, ``center=True`` with
    zero padding (``pad_mode='constant'``, as librosa >= 0.10), drop the last frequency bin,
    ``20 * log10(max(|X|, 1e-5))``, then floor at the clip's own maximum minus 80 dB. The whole
    batch must go through one STFT call (the check counts them), and agree with a per-clip
    float64 reference within ``LOG_SPEC_TOL_DB`` dB near the peak (plus float32 rounding far
    below it).
    """
    __tracebackhide__ = True
    title = "Batched log-spectrogram"
    need_callable(fn, "fn", "check_batched_log_spectrogram(log_spectrogram)")
    import torch

    signature = "log_spectrogram(batch) -> tensor [B, 256, frames]"
    worst_seen = 0.0
    for label, batch in _log_spec_batches():
        clips, length = batch.shape
        given = torch.from_numpy(batch.copy())
        with _count_stft_calls() as calls:
            result = call_answer(title, fn, label, given, signature=signature)
        if not isinstance(result, torch.Tensor):
            raise ExerciseFailed(
                title,
                f"on {label}, expected a torch.Tensor, got {type(result).__name__}.",
                "compute it with torch (torch.stft on the whole batch) and return the tensor.",
            )
        if not torch.equal(given, torch.from_numpy(batch)):
            raise ExerciseFailed(title, f"on {label}, your function changed the input batch.", "don't modify the batch in place.")
        if len(calls) > 1:
            raise ExerciseFailed(
                title,
                f"on {label}, {len(calls)} STFT/FFT calls were made ({', '.join(sorted(set(calls)))}) for {clips} clip(s).",
                "a batched version calls torch.stft once, on the whole [B, T] tensor: torch.stft accepts a 2-D input "
                "and returns [B, F, frames]. No Python loop over clips.",
            )
        if result.is_complex():
            raise ExerciseFailed(title, f"on {label}, the result is complex.", "take the magnitude (.abs()) before the log.")
        got = result.detach().cpu().double().numpy()
        frames = 1 + length // 256
        want_shape = (clips, 256, frames)
        if got.shape != want_shape:
            hint = "the shape is [batch, 256 frequency bins, frames] with frames = 1 + T // 256."
            if got.ndim == 3 and got.shape[1] == 257:
                hint = "drop the last frequency bin: spec[:, :-1] (257 bins -> 256)."
            elif got.ndim == 3 and got.shape[2] == 1 + (length - 512) // 256:
                hint = "use center=True (pad n_fft // 2 on each side) so that frames = 1 + T // 256."
            elif got.ndim == 3 and 256 in (got.shape[0], got.shape[2]):
                hint = "keep the axes in the order [batch, frequency, frames], as torch.stft returns them."
            raise ExerciseFailed(title, f"on {label}, expected shape {want_shape}, got {tuple(got.shape)}.", hint)
        if not np.all(np.isfinite(got)):
            raise ExerciseFailed(
                title,
                f"on {label}, the result has NaN or inf values.",
                "clamp the magnitude before the log: torch.clamp(mag, min=1e-5).",
            )
        want = _log_spec_ref(batch)
        error = np.abs(got - want)
        allowed = _log_spec_tolerance(want)
        if np.all(error <= allowed):
            near_peak = want >= want.max(axis=(1, 2), keepdims=True) - 40.0
            worst_seen = max(worst_seen, float(error[near_peak].max()))
            continue
        hint = (
            "per clip: |torch.stft(batch, 512, 256, window=torch.hann_window(512), center=True, pad_mode='constant', "
            "return_complex=True)|, drop the last bin, 20 * log10(max(|X|, 1e-5)), then floor at each clip's max - 80 dB."
        )
        variants = [
            (dict(floor="batch"),
             "the -80 dB floor was taken over the whole batch; take the maximum per clip: "
             "db.amax(dim=(1, 2), keepdim=True) - 80, so a quiet clip keeps its own 80 dB of range."),
            (dict(pad_mode="reflect"),
             "the first and last frames differ: torch.stft pads with 'reflect' by default; pass pad_mode='constant' "
             "(zero padding, as librosa >= 0.10)."),
            (dict(window=_hann(512) * 0 + 1),
             "no window was applied (torch.stft's default is a rectangular window); pass window=torch.hann_window(512)."),
            (dict(window=0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 511)),
             "use the periodic Hann window, torch.hann_window(512) (periodic=True), not the symmetric one."),
            (dict(floor="none"), "floor the values at each clip's maximum minus 80 dB (top_db=80)."),
            (dict(factor=10.0), "for magnitudes the dB formula is 20 * log10(|X|), not 10 * log10."),
            (dict(power=2.0), "that is the power (|X|**2) in 20 * log10; use the magnitude |X|, or 10 * log10 of the power."),
        ]
        for changes, text in variants:
            other = _log_spec_ref(batch, **changes)  # type: ignore[arg-type]
            if np.all(np.abs(got - other) <= _log_spec_tolerance(other)):
                hint = text
                break
        bad = np.unravel_index(int(np.argmax(error - allowed)), error.shape)
        raise ExerciseFailed(
            title,
            f"on {label}, clip {bad[0]}, frequency bin {bad[1]}, frame {bad[2]}: expected {want[bad]:.4f} dB, "
            f"got {got[bad]:.4f} dB ({int((error > allowed).sum())} of {error.size} values off; largest error "
            f"{float(error.max()):.4g} dB).",
            hint,
        )
    print_passed(title, f"3 batches, one STFT call each, largest error within 40 dB of the peaks {worst_seen:.1e} dB")


# ----------------------------------------------------------------------------- exercise 5


def _spectral_convergence(target: np.ndarray, wave: np.ndarray, n_fft: int, hop: int, length: int) -> float:
    wave = np.asarray(wave, dtype=np.float64)[:length]
    wave = np.pad(wave, (0, length - wave.size))
    mag = np.abs(_stft_np(wave, n_fft, hop))
    return float(np.linalg.norm(target - mag) / np.linalg.norm(target))


def _griffin_lim_signal() -> tuple[np.ndarray, int, int]:
    """A chirp plus two tones (1 s at 8 kHz), with n_fft=512 and hop 128."""
    rate, n_fft, hop = 8000, 512, 128
    n = hop * 62
    t = np.arange(n) / rate
    sweep = (1500.0 - 150.0) / (2.0 * t[-1])
    y = 0.4 * np.sin(2 * np.pi * (150.0 * t + sweep * t**2)) + 0.2 * np.sin(2 * np.pi * 440.0 * t) + 0.15 * np.sin(2 * np.pi * 1250.0 * t)
    return y, n_fft, hop


def check_griffin_lim(fn: Callable[..., Any]) -> None:
    """Check plain Griffin-Lim ``fn(magnitude [F, frames] tensor, n_fft, hop_length, n_iter) -> waveform``.

    The magnitude is that of a chirp plus two tones (n_fft=512, hop 128, periodic Hann, centred).
    After 32 iterations the spectral convergence ``||S - |STFT(y)||| / ||S||`` must be below
    ``GRIFFIN_LIM_BOUND`` (a correct version reaches 0.13-0.19; random phase alone gives about
    0.65), and clearly better than with ``n_iter=0``. Torch and NumPy are seeded with 0 before each
    call, so a random initial phase gives the same verdict every time.
    """
    __tracebackhide__ = True
    title = "Griffin-Lim"
    need_callable(fn, "fn", "check_griffin_lim(griffin_lim)")
    import torch

    signature = "griffin_lim(magnitude, n_fft, hop_length, n_iter) -> waveform"
    y, n_fft, hop = _griffin_lim_signal()
    target = np.abs(_stft_np(y, n_fft, hop))
    magnitude = torch.from_numpy(target.astype(np.float32))
    length = y.size

    # Baseline: random phase, no iterations (inverse STFT by overlap-add, computed here).
    rng = np.random.default_rng(5)
    phase = np.exp(2j * np.pi * rng.random(target.shape))
    spec = torch.from_numpy((target * phase).astype(np.complex64))
    window = torch.hann_window(n_fft)
    baseline = _spectral_convergence(target, torch.istft(spec, n_fft, hop, window=window, length=length).numpy(), n_fft, hop, length)

    results = {}
    for n_iter in (0, 32):
        case = f"magnitude of shape {tuple(magnitude.shape)}, n_fft={n_fft}, hop_length={hop}, n_iter={n_iter}"
        torch.manual_seed(0)
        np.random.seed(0)
        wave = to_numpy(title, call_answer(title, fn, case, magnitude.clone(), n_fft, hop, n_iter, signature=signature), f"the waveform for {case}")
        if np.iscomplexobj(wave):
            raise ExerciseFailed(title, f"on {case}, the waveform is complex.", "torch.istft of a one-sided spectrogram returns a real waveform.")
        wave = np.squeeze(wave)
        if wave.ndim != 1:
            raise ExerciseFailed(title, f"on {case}, expected a 1-D waveform, got shape {wave.shape}.")
        if abs(wave.size - length) > n_fft:
            raise ExerciseFailed(
                title,
                f"on {case}, expected about {length} samples, got {wave.size}.",
                "invert with torch.istft(spec, n_fft, hop_length, window=torch.hann_window(n_fft)); check hop_length.",
            )
        if not np.all(np.isfinite(wave)):
            raise ExerciseFailed(title, f"on {case}, the waveform has NaN or inf values.", "pass the same Hann window to torch.stft and torch.istft.")
        results[n_iter] = _spectral_convergence(target, wave, n_fft, hop, length)

    sc0, sc32 = results[0], results[32]
    if sc32 > GRIFFIN_LIM_BOUND:
        raise ExerciseFailed(
            title,
            f"after 32 iterations the spectral convergence is {sc32:.3f}; a correct Griffin-Lim gets below "
            f"{GRIFFIN_LIM_BOUND} (random phase alone gives {baseline:.3f}).",
            "each iteration: y = istft(S * phase); X = stft(y); phase = X / |X| (torch.exp(1j * X.angle())). Keep the "
            "given magnitude S and use the same n_fft, hop_length and Hann window for stft and istft.",
        )
    if sc0 - sc32 < 0.1:
        raise ExerciseFailed(
            title,
            f"n_iter=0 gives spectral convergence {sc0:.3f} and n_iter=32 gives {sc32:.3f}: the iterations barely help.",
            "loop n_iter times; with n_iter=0 the result is just the initial phase guess.",
        )
    print_passed(title, f"spectral convergence {sc32:.3f} after 32 iterations (bound {GRIFFIN_LIM_BOUND}; random phase {baseline:.3f})")


# ----------------------------------------------------------------------------- exercise 6: predict the STFT's shape

# (n_samples, n_fft, hop_length, center): what the check asks about. Lengths that are not multiples of
# the hop, a clip exactly one frame long, and the lesson's own settings.
STFT_SHAPE_CASES = [
    (22050, 1024, 256, False),
    (22050, 1024, 256, True),
    (88200, 2048, 512, True),
    (1000, 512, 128, False),
    (1000, 512, 128, True),
    (512, 512, 100, False),
    (5000, 400, 160, True),
    (5000, 400, 160, False),
]


def _measured_stft_shape(n_samples: int, n_fft: int, hop: int, center: bool) -> tuple[int, int]:
    """The shape torch.stft really returns (measured on a silent clip, not computed from a formula)."""
    import torch

    out = torch.stft(torch.zeros(n_samples), n_fft, hop, window=torch.hann_window(n_fft), center=center,
                     pad_mode="constant", return_complex=True)
    return int(out.shape[0]), int(out.shape[1])


def check_stft_shape(fn: Callable[[int, int, int, bool], tuple[int, int]]) -> None:
    """Check a prediction ``fn(n_samples, n_fft, hop_length, center) -> (n_bins, n_frames)``.

    The truth is measured: ``torch.stft`` runs on a silent clip of each size in
    ``STFT_SHAPE_CASES`` and its output shape is compared with the learner's prediction.
    """
    __tracebackhide__ = True
    title = "Predict the STFT's shape"
    need_callable(fn, "fn", "check_stft_shape(stft_shape)")
    signature = "stft_shape(n_samples, n_fft, hop_length, center) -> (n_bins, n_frames)"
    for n, n_fft, hop, center in STFT_SHAPE_CASES:
        case = f"n_samples={n}, n_fft={n_fft}, hop_length={hop}, center={center}"
        with _count_stft_calls() as calls:
            result = call_answer(title, fn, case, n, n_fft, hop, center, signature=signature)
        if calls:
            raise ExerciseFailed(
                title, f"on case {case}, your function ran {calls[0]}: that measures the shape instead of predicting it.",
                "work the numbers out with arithmetic on n_samples, n_fft and hop_length (no signal needed).",
            )
        try:
            bins, frames = (int(v) for v in result)
            exact = all(float(v) == int(v) for v in result)
        except (TypeError, ValueError) as err:
            raise ExerciseFailed(
                title, f"on case {case}, expected a pair of whole numbers (n_bins, n_frames), got {result!r}.",
                "end your function with `return n_bins, n_frames`; use integer division (//) for counts.",
            ) from err
        want_bins, want_frames = _measured_stft_shape(n, n_fft, hop, center)
        if not exact or bins != want_bins:
            hint = (
                "a real signal's FFT of n_fft samples has n_fft // 2 + 1 distinct frequencies: from 0 Hz up to "
                "and including Nyquist (the other half mirrors them)."
            )
            if bins in (n_fft, n_fft // 2):
                hint = (
                    "torch.stft of a real signal keeps only the non-negative frequencies, 0 Hz up to Nyquist. "
                    "How many bins is that for n_fft = 4? Try it: torch.fft.rfft(torch.zeros(4)).shape."
                )
            raise ExerciseFailed(title, f"on case {case}, torch.stft gives {want_bins} frequency bins; you predicted "
                                 f"{result[0]!r}.", hint)
        if frames != want_frames:
            if center:
                hint = (
                    "with center=True, torch.stft first pads n_fft // 2 samples on each side, so frame k is "
                    "centred on sample k * hop_length. Predict for the padded length."
                )
            else:
                hint = (
                    "with center=False, frame k covers samples k * hop_length to k * hop_length + n_fft - 1, and "
                    "only whole frames count. What is the largest k whose frame still fits in the clip?"
                )
            if abs(frames - want_frames) == 1:
                hint = "off by one: count the frame that starts at sample 0 too. " + hint[0].upper() + hint[1:]
            raise ExerciseFailed(title, f"on case {case}, torch.stft gives {want_frames} frames; you predicted "
                                 f"{frames}.", hint)
    plain, centred = (_measured_stft_shape(22050, 1024, 256, center) for center in (False, True))
    print_passed(title, f"{len(STFT_SHAPE_CASES)} cases measured with torch.stft, e.g. 22050 samples, n_fft 1024, "
                        f"hop 256: {plain[0]} x {plain[1]} without centring, {centred[0]} x {centred[1]} with")


# ----------------------------------------------------------------------------- exercise 7: 4 or 64 iterations?

GL_FEW, GL_MANY = 4, 64
_PAIR_FFT, _PAIR_HOP, _PAIR_RATE = 512, 128, 8000


def _pair_signals() -> list[tuple[str, np.ndarray]]:
    """Three 1-second sounds at 8 kHz: the Griffin-Lim signal, a decaying noise beat, a four-note melody."""
    rate, n = _PAIR_RATE, _PAIR_HOP * 62
    t = np.arange(n) / rate
    rng = np.random.default_rng(7)
    beat = np.zeros(n)
    for start in range(0, n, n // 4):
        length = min(n - start, n // 4)
        beat[start:start + length] = 0.5 * rng.standard_normal(length) * np.exp(-np.arange(length) / (0.03 * rate))
    notes = np.repeat([262.0, 330.0, 392.0, 523.0], -(-n // 4))[:n]
    melody = 0.4 * np.sin(2 * np.pi * np.cumsum(notes) / rate) * (0.6 + 0.4 * np.cos(2 * np.pi * 4 * t))
    return [("a chirp plus two tones", _griffin_lim_signal()[0]), ("a decaying noise beat", beat),
            ("a four-note melody", melody)]


def _plain_griffin_lim(magnitude: np.ndarray, n_iter: int, seed: int) -> np.ndarray:
    import torch

    window = torch.hann_window(_PAIR_FFT, dtype=torch.float64)
    target = torch.from_numpy(magnitude)
    generator = torch.Generator().manual_seed(seed)
    spec = target * torch.exp(2j * torch.pi * torch.rand(target.shape, generator=generator, dtype=torch.float64))
    for _ in range(n_iter):
        wave = torch.istft(spec, _PAIR_FFT, _PAIR_HOP, window=window)
        rebuilt = torch.stft(wave, _PAIR_FFT, _PAIR_HOP, window=window, pad_mode="constant", return_complex=True)
        spec = target * torch.exp(1j * rebuilt.angle())
    return torch.istft(spec, _PAIR_FFT, _PAIR_HOP, window=window).numpy().astype(np.float32)


def _rebuilt_twice(signal: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(magnitude, few, many)``: ``signal``'s STFT magnitude and Griffin-Lim's rebuilds after 4 and 64 iterations.

    Both rebuilds are scaled to the signal's RMS, so that loudness gives nothing away.
    """
    magnitude = np.abs(_stft_np(signal, _PAIR_FFT, _PAIR_HOP))
    level = float(np.sqrt(np.mean(np.square(signal))))
    few, many = (_plain_griffin_lim(magnitude, n_iter, seed) for n_iter in (GL_FEW, GL_MANY))
    few, many = (y * np.float32(level / max(float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))), 1e-12))
                 for y in (few, many))
    return magnitude.astype(np.float32), few, many


def _many_is_a(seed: int) -> bool:
    """Whether ``griffin_lim_pair(seed)`` puts the 64-iteration clip first."""
    return bool(np.random.default_rng(int(seed) + 1000).integers(2))


def griffin_lim_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A listening test: ``(magnitude, clip_a, clip_b, sample_rate)``, a four-note melody rebuilt twice.

    One clip had 4 Griffin-Lim iterations and the other 64 (which is which depends on ``seed`` and
    is revealed by :func:`check_more_iterations` once it passes). n_fft 512, hop 128, 8 kHz.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CourseInputError(f"seed: expected a whole number >= 0, got {seed!r}.")
    magnitude, few, many = _rebuilt_twice(_pair_signals()[2][1], int(seed))
    clip_a, clip_b = (many, few) if _many_is_a(int(seed)) else (few, many)
    return magnitude, clip_a, clip_b, _PAIR_RATE


def check_more_iterations(fn: Callable[..., str], listened_seed: int = 0) -> None:
    """Check ``fn(magnitude, clip_a, clip_b, n_fft, hop_length) -> 'a' or 'b'``: which clip had more iterations.

    Each of three sounds is rebuilt by plain Griffin-Lim from its magnitude with 4 and with 64
    iterations, in both orders (six pairs); ``fn`` must name the 64-iteration clip every time.
    On success it says which clip of ``griffin_lim_pair(listened_seed)`` had 64 iterations.
    """
    __tracebackhide__ = True
    title = "Which clip had more Griffin-Lim iterations?"
    need_callable(fn, "fn", "check_more_iterations(more_iterations)")
    signature = "more_iterations(magnitude, clip_a, clip_b, n_fft, hop_length) -> 'a' or 'b'"
    cases = 0
    for index, (name, signal) in enumerate(_pair_signals()):
        magnitude, few, many = _rebuilt_twice(signal, seed=index)
        for many_is_a in (True, False):
            clip_a, clip_b = (many, few) if many_is_a else (few, many)
            case = f"{name}, {GL_MANY} iterations in clip_{'a' if many_is_a else 'b'}"
            given = [magnitude.copy(), clip_a.copy(), clip_b.copy()]
            answer = call_answer(title, fn, case, *given, _PAIR_FFT, _PAIR_HOP, signature=signature)
            if not isinstance(answer, str) or answer.strip().lower() not in ("a", "b"):
                raise ExerciseFailed(title, f"on case {case}, expected 'a' or 'b', got {answer!r}.",
                                     "return the letter of the clip you think had more iterations: 'a' or 'b'.")
            if answer.strip().lower() != ("a" if many_is_a else "b"):
                raise ExerciseFailed(
                    title,
                    f"on {name}, clip_{'a' if many_is_a else 'b'} had {GL_MANY} iterations and clip_"
                    f"{'b' if many_is_a else 'a'} had {GL_FEW}; you answered {answer!r}.",
                    "each Griffin-Lim iteration makes the clip's own spectrogram agree better with the magnitude it "
                    "was rebuilt from. You are given that magnitude: measure how far each clip's STFT magnitude "
                    "(same n_fft and hop_length) is from it, as the lesson did, and pick the closer one.",
                )
            cases += 1
    many_is_a = _many_is_a(listened_seed)
    print_passed(title, f"{cases} pairs; in griffin_lim_pair({listened_seed}) clip_{'a' if many_is_a else 'b'} had "
                        f"{GL_MANY} iterations and clip_{'b' if many_is_a else 'a'} {GL_FEW}")
