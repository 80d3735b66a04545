"""Feedback for the course's exercises: each ``check_*`` tests a learner's answer and explains.

How an exercise works (see :mod:`course_lib.tools.exercises` for the notebook conventions):

- the learner writes a function (or computes a value) in an answer cell;
- the check cell right after it calls one of the functions below, passing the learner's object:
  ``check_denormalise(denormalise)``.

A check runs the learner's function on several cases and compares with a reference computed
here from the maths, with NumPy, independently of the rest of ``course_lib``. On success it
prints one line, ``✅ <exercise title>: passed (<short detail>)``. On failure it raises
:class:`ExerciseFailed` (an ``AssertionError``) whose message says which case failed, what was
expected, what came back, and a hint at the usual cause. A function that still raises
``NotImplementedError`` (the stub of an exercise notebook) fails with a friendly "not
answered yet" message. The grader (:mod:`course_lib.tools.grade`) counts an exercise as passed when
its check cell runs without an error.

Lesson 01 exercises:

1. :func:`check_playback`: duration and pitch shift when a clip is played at the wrong rate.
2. :func:`check_hz_to_mel`: the HTK mel scale and its inverse, vectorised.
3. :func:`check_denormalise`: undo min-max normalisation (the classic multiply-by-min bug).
4. :func:`check_batched_log_spectrogram`: the classic log-spectrogram, batched (one STFT call).
5. :func:`check_griffin_lim`: plain Griffin-Lim phase reconstruction.

Lesson 02: :func:`check_add_noise`, :func:`check_ddim_step`, :func:`check_slerp`, :func:`check_keep_known`.

Lesson 03: :func:`check_model_range`, :func:`check_training_loss`, :func:`check_save_atomically`,
:func:`check_epoch_starts`.

Lesson 04: :func:`check_audio_seconds`, :func:`check_delay_pattern`, :func:`check_guidance`,
:func:`check_remove_padding`.

Lesson 05 (in :mod:`course_lib.checks.lesson05`, re-exported here): ``check_v_target``,
``check_denoise``, ``check_sampler_step``, ``check_to_24bit``.

Lesson 06 (in :mod:`course_lib.checks.lesson06`, re-exported here): ``check_reparameterise``,
``check_kl_per_clip``, ``check_vae_objective``, ``check_interpolate``.

Generic helpers: :func:`check_close` and :func:`check_shape`.

This module imports only NumPy at import time (torch is imported by the checks that need it),
so a notebook's check cells start quickly.
"""

from __future__ import annotations

import contextlib
import math
import sys
from typing import Any, Callable, Iterator, Sequence

import numpy as np

__all__ = [
    "ExerciseFailed",
    "check_playback",
    "check_hz_to_mel",
    "check_denormalise",
    "check_batched_log_spectrogram",
    "check_griffin_lim",
    "check_close",
    "check_shape",
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


class ExerciseFailed(AssertionError):
    """An exercise's answer is not right yet; the message says what is wrong and hints at the fix."""

    def __init__(self, exercise: str, problem: str, hint: str | None = None) -> None:
        self.exercise = exercise
        self.problem = problem
        self.hint = hint
        message = f"❌ {exercise}: {problem}"
        if hint:
            message += f"\nHint: {hint}"
        super().__init__(message)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.exercise, self.problem, self.hint))


# ----------------------------------------------------------------------------- helpers


def _input_error(message: str) -> Exception:
    from course_lib.validate import CourseInputError  # imports torch: only on this error path

    return CourseInputError(message)


def _need_callable(fn: Any, name: str, example: str) -> None:
    if not callable(fn):
        raise _input_error(
            f"{name}: expected your function, got {type(fn).__name__}. Pass the function itself, "
            f"without calling it: {example}."
        )


def _passed(title: str, detail: str) -> None:
    print(f"✅ {title}: passed ({detail})")


def _call(title: str, fn: Callable[..., Any], case: str, *args: Any, signature: str, **kwargs: Any) -> Any:
    """Call the learner's function, turning its exceptions into friendly failures."""
    __tracebackhide__ = True
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseFailed(
            title,
            "not answered yet: your function still raises NotImplementedError.",
            "replace the line `raise NotImplementedError(...)` with your code, run that cell, then run this check again.",
        ) from None
    except ExerciseFailed:
        raise
    except TypeError as err:
        raise ExerciseFailed(
            title,
            f"on case {case}, your function raised TypeError: {err}",
            f"keep the signature {signature}; if the message mentions arrays, use NumPy/torch functions "
            "(np.log10, not math.log10) so that it works on whole arrays.",
        ) from err
    except Exception as err:
        raise ExerciseFailed(
            title, f"on case {case}, your function raised {type(err).__name__}: {err}"
        ) from err


def _to_numpy(title: str, value: Any, what: str) -> np.ndarray:
    """The learner's result as a float64 (or complex) NumPy array, or a clear failure."""
    __tracebackhide__ = True
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise ExerciseFailed(title, f"{what} could not be read as an array ({err}).") from err
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ExerciseFailed(title, f"{what} is not numeric (got {type(value).__name__} of dtype {array.dtype}).")
    if not np.iscomplexobj(array):
        array = array.astype(np.float64)
    return array


def _short(array: np.ndarray, limit: int = 6) -> str:
    flat = np.asarray(array).ravel()
    shown = ", ".join(f"{v:.4g}" for v in flat[:limit])
    return f"[{shown}{', ...' if flat.size > limit else ''}]"


def _close(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> bool:
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def _worst(got: np.ndarray, expected: np.ndarray) -> str:
    diff = np.abs(got - expected)
    where = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
    return (
        f"largest difference {float(diff.max()):.4g} at index {tuple(int(i) for i in where)}: "
        f"expected {complex(expected[where]) if np.iscomplexobj(expected) else float(expected[where]):.6g}, "
        f"got {complex(got[where]) if np.iscomplexobj(got) else float(got[where]):.6g}"
    )


# ----------------------------------------------------------------------------- exercise 1


def check_playback(fn: Callable[[int, int, int], tuple[float, float]]) -> None:
    """Check ``fn(n_samples, true_rate, playback_rate) -> (seconds, semitones)``.

    A clip of ``n_samples`` recorded at ``true_rate`` and played at ``playback_rate`` lasts
    ``n_samples / playback_rate`` seconds and is shifted by ``12 * log2(playback_rate / true_rate)``
    semitones (negative: lower). Getting this wrong is the usual cause of "chipmunk" audio.
    """
    __tracebackhide__ = True
    title = "Playback speed and pitch"
    _need_callable(fn, "fn", "check_playback(playback)")
    signature = "fn(n_samples, true_rate, playback_rate) -> (seconds, semitones)"
    cases = [(44100, 44100, 22050), (66150, 22050, 44100), (16000, 16000, 16000), (48000, 48000, 44100), (40000, 8000, 12000)]
    for n, true_rate, play_rate in cases:
        case = f"n_samples={n}, true_rate={true_rate}, playback_rate={play_rate}"
        result = _call(title, fn, case, n, true_rate, play_rate, signature=signature)
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
            hint = "an octave (rate × 2) is 12 semitones: semitones = 12 * log2(playback_rate / true_rate)."
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
    _passed(title, f"{len(cases)} cases, e.g. 44100 samples at 44100 Hz played at 22050 Hz: 2 s, -12 semitones")


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
    _need_callable(fn_to_mel, "fn_to_mel", "check_hz_to_mel(hz_to_mel, mel_to_hz)")
    _need_callable(fn_to_hz, "fn_to_hz", "check_hz_to_mel(hz_to_mel, mel_to_hz)")
    rng = np.random.default_rng(1)
    cases = [
        ("landmark frequencies [0, 700, 1000, 4000, 8000, 11025] Hz", np.array([0.0, 700.0, 1000.0, 4000.0, 8000.0, 11025.0])),
        ("a 2-D array of shape (2, 3)", np.array([[50.0, 440.0, 2000.0], [3000.0, 16000.0, 22050.0]])),
        ("64 random frequencies up to 22050 Hz", rng.uniform(0.0, 22050.0, size=64)),
    ]
    for label, f in cases:
        original = f.copy()
        got = _to_numpy(title, _call(title, fn_to_mel, label, f, signature="hz_to_mel(f)"), f"hz_to_mel on {label}")
        if not np.array_equal(f, original):
            raise ExerciseFailed(title, f"hz_to_mel changed its input array ({label}).", "compute a new array; don't modify f in place.")
        want = _mel_ref(f)
        if got.shape != want.shape:
            raise ExerciseFailed(
                title,
                f"hz_to_mel on {label}: expected shape {want.shape}, got {got.shape}.",
                "apply the formula element-wise with NumPy so the output has the input's shape.",
            )
        if not _close(got, want, atol=1e-3, rtol=1e-4):
            hint = "mel = 2595 * log10(1 + f / 700)."
            if _close(got, 2595.0 * np.log(1.0 + f / 700.0), 1e-3, 1e-4):
                hint = "you used the natural log (np.log); the HTK formula uses log base 10: np.log10."
            elif _close(got, 2595.0 * np.log10(f / 700.0 + 1e-300), 1e-3, 1e-4) or _close(got, 2595.0 * np.log10(1.0 + f), 1e-3, 1e-4):
                hint = "inside the log it is (1 + f / 700)."
            raise ExerciseFailed(title, f"hz_to_mel on {label}: {_worst(got, want)}.", hint)

        mel = want
        got_hz = _to_numpy(title, _call(title, fn_to_hz, label, mel.copy(), signature="mel_to_hz(m)"), f"mel_to_hz on {label}")
        if got_hz.shape != f.shape:
            raise ExerciseFailed(title, f"mel_to_hz on {label}: expected shape {f.shape}, got {got_hz.shape}.")
        if not _close(got_hz, f, atol=1e-2, rtol=1e-4):
            hint = "solve mel = 2595 * log10(1 + f / 700) for f: f = 700 * (10 ** (mel / 2595) - 1)."
            if _close(got_hz, 700.0 * (np.exp(mel / 2595.0) - 1.0), 1e-2, 1e-4):
                hint = "the inverse of log10 is 10 ** x, not np.exp(x): f = 700 * (10 ** (mel / 2595) - 1)."
            elif _close(got_hz, 700.0 * 10.0 ** (mel / 2595.0), 1e-2, 1e-4):
                hint = "don't forget the `- 1`: f = 700 * (10 ** (mel / 2595) - 1)."
            raise ExerciseFailed(title, f"mel_to_hz on {label} (the mel values of those frequencies): {_worst(got_hz, f)}.", hint)

        back = _to_numpy(title, _call(title, fn_to_hz, label, got.copy(), signature="mel_to_hz(m)"), f"mel_to_hz(hz_to_mel(f)) on {label}")
        if back.shape != f.shape or not _close(back, f, atol=1e-6, rtol=1e-6):
            raise ExerciseFailed(
                title,
                f"the round trip mel_to_hz(hz_to_mel(f)) on {label} does not give f back"
                + (f": {_worst(back, f)}." if back.shape == f.shape else f" (shape {back.shape})."),
                "use exactly the same constants (2595 and 700) in both functions.",
            )
    _passed(title, "mel(700 Hz) = 781.2, arrays of any shape, round trip within 1e-6")


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
    _need_callable(fn, "fn", "check_denormalise(denormalise)")
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
        got = _to_numpy(title, _call(title, fn, label, given, omin, omax, signature=signature, **kwargs), f"the result on {label}")
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
        if _close(got, want, atol=1e-4 * scale, rtol=1e-5):
            continue
        tol = (1e-4 * scale, 1e-5)
        hint = "first map norm back to [0, 1]: (norm - min_val) / (max_val - min_val), then scale by (original_max - original_min) and add original_min."
        unit = (norm - lo) / (hi - lo)
        if _close(got, unit * (omax - omin) * omin, *tol) or _close(got, norm * (omax - omin) * omin, *tol):
            hint = (
                "you multiplied by original_min instead of adding it (the classic bug: `* original_min`). The last "
                "step is `+ original_min`: it shifts the values back, e.g. from [0, 80] to [-80, 0] for dB."
            )
        elif _close(got, unit * (omax - omin), *tol):
            hint = "you forgot to add original_min at the end: the result should start at original_min, not 0."
        elif _close(got, norm * (omax - omin) + omin, *tol):
            hint = "min_val and max_val were ignored: first undo them with (norm - min_val) / (max_val - min_val)."
        elif _close(got, unit * (omin - omax) + omax, *tol) or _close(got, unit * (omax + omin) + omin, *tol):
            hint = "the span is (original_max - original_min)."
        raise ExerciseFailed(title, f"on {label} ({call}): {_worst(got, want)}.", hint)
    _passed(title, f"{len(cases)} cases incl. dB from -80 to 0, a (3, 4, 6) batch and min_val=-1, max_val=1")


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
    _need_callable(fn, "fn", "check_batched_log_spectrogram(log_spectrogram)")
    import torch

    signature = "log_spectrogram(batch) -> tensor [B, 256, frames]"
    worst_seen = 0.0
    for label, batch in _log_spec_batches():
        clips, length = batch.shape
        given = torch.from_numpy(batch.copy())
        with _count_stft_calls() as calls:
            result = _call(title, fn, label, given, signature=signature)
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
    _passed(title, f"3 batches, one STFT call each, largest error within 40 dB of the peaks {worst_seen:.1e} dB")


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
    _need_callable(fn, "fn", "check_griffin_lim(griffin_lim)")
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
        wave = _to_numpy(title, _call(title, fn, case, magnitude.clone(), n_fft, hop, n_iter, signature=signature), f"the waveform for {case}")
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
    _passed(title, f"spectral convergence {sc32:.3f} after 32 iterations (bound {GRIFFIN_LIM_BOUND}; random phase {baseline:.3f})")


# ----------------------------------------------------------------------------- generic helpers


def check_close(name: str, got: Any, expected: Any, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Check that the learner's value ``got`` matches ``expected`` element-wise (shape too).

    Passes when ``|got - expected| <= atol + rtol * |expected|`` everywhere; the failure names
    the worst element. Works with numbers, lists, NumPy arrays and tensors.
    """
    __tracebackhide__ = True
    if not isinstance(name, str) or not name.strip():
        raise _input_error("name: give the exercise a short title, e.g. check_close('mel of 1 kHz', got, 1000.0).")
    for label, tol in (("atol", atol), ("rtol", rtol)):
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
            raise _input_error(f"{label}: expected a non-negative number, got {tol!r}.")
    try:
        want = _to_numpy(name, expected, "expected")
    except ExerciseFailed as err:
        raise _input_error(f"expected: {err.problem} Pass numbers, an array or a tensor.") from err
    if not np.all(np.isfinite(want)):
        raise _input_error("expected: contains NaN or inf; give finite reference values.")
    value = _to_numpy(name, got, "your value")
    if value.shape != want.shape:
        raise ExerciseFailed(
            name,
            f"expected shape {want.shape}, got {value.shape}.",
            "check which axes you kept, reduced or transposed.",
        )
    if not np.all(np.isfinite(value)):
        raise ExerciseFailed(name, f"your value has {int((~np.isfinite(value)).sum())} NaN or inf entries.")
    if not _close(value, want, atol, rtol):
        raise ExerciseFailed(name, f"{_worst(value, want)} (tolerance atol={atol:g}, rtol={rtol:g}).")
    biggest = float(np.abs(value - want).max()) if value.size else 0.0
    _passed(name, f"shape {value.shape}, largest difference {biggest:.2g}")


def check_shape(name: str, got: Any, expected_shape: Sequence[int | None]) -> None:
    """Check that ``got`` (array or tensor) has ``expected_shape``; ``None`` matches any size.

    Shapes are the first thing to go wrong in batched code, so later lessons check them alone.
    """
    __tracebackhide__ = True
    if not isinstance(name, str) or not name.strip():
        raise _input_error("name: give the exercise a short title, e.g. check_shape('mel batch', mels, (8, 128, None)).")
    if isinstance(expected_shape, (str, bytes)) or not isinstance(expected_shape, Sequence):
        raise _input_error(f"expected_shape: give a tuple such as (8, 128, None), got {expected_shape!r}.")
    for size in expected_shape:
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0):
            raise _input_error(f"expected_shape: each entry must be a whole number ≥ 0 or None, got {size!r}.")
    shape = getattr(got, "shape", None)
    if shape is None:
        raise ExerciseFailed(
            name, f"expected an array or tensor of shape {tuple(expected_shape)}, got {type(got).__name__}.",
            "return the NumPy array or torch tensor itself.",
        )
    shape = tuple(int(s) for s in shape)
    want = tuple(expected_shape)
    pretty = "(" + ", ".join("any" if s is None else str(s) for s in want) + ("," if len(want) == 1 else "") + ")"
    if len(shape) != len(want) or any(w is not None and w != s for s, w in zip(shape, want)):
        hint = None
        if len(shape) == len(want) + 1 and shape[0] == 1:
            hint = "there is an extra leading axis of size 1; drop it with .squeeze(0)."
        elif len(shape) + 1 == len(want):
            hint = "an axis is missing; a batch axis can be added with .unsqueeze(0) (or x[None])."
        elif sorted(shape) == sorted(s for s in want if s is not None) and None not in want:
            hint = "the sizes are right but in another order; check your transpose/permute."
        raise ExerciseFailed(name, f"expected shape {pretty}, got {shape}.", hint)
    _passed(name, f"shape {shape}")


# ============================================================================= lesson 04: MusicGen
#
# 1. check_audio_seconds: how many seconds of audio max_new_tokens give (the delay frames).
# 2. check_delay_pattern: lay codes (codebooks, frames) out in MusicGen's delay pattern.
# 3. check_guidance: classifier-free guidance on logits.
# 4. check_remove_padding: what processor.batch_decode(..., padding_mask=...) does.

__all__ += ["check_audio_seconds", "check_delay_pattern", "check_guidance", "check_remove_padding"]


def check_audio_seconds(fn: Callable[[int, int, int], float]) -> None:
    """Check ``fn(max_new_tokens, frame_rate, num_codebooks) -> seconds`` of audio MusicGen returns.

    Each step makes one token per codebook, codebook ``k`` runs ``k`` steps late, so only
    ``max_new_tokens - (num_codebooks - 1)`` complete frames come out:
    ``(max_new_tokens - num_codebooks + 1) / frame_rate`` seconds (256 steps at 50 Hz: 5.06 s).
    """
    __tracebackhide__ = True
    title = "Seconds of audio from max_new_tokens"
    _need_callable(fn, "fn", "check_audio_seconds(audio_seconds)")
    signature = "fn(max_new_tokens, frame_rate, num_codebooks) -> seconds"
    for steps, rate, books in [(256, 50, 4), (1500, 50, 4), (100, 50, 8), (75, 75, 1), (10, 25, 4)]:
        case = f"max_new_tokens={steps}, frame_rate={rate}, num_codebooks={books}"
        got = _call(title, fn, case, steps, rate, books, signature=signature)
        try:
            seconds = float(got)
        except (TypeError, ValueError) as err:
            raise ExerciseFailed(title, f"on case {case}, expected a number of seconds, got {got!r}.") from err
        want = (steps - books + 1) / rate
        if not math.isclose(seconds, want, rel_tol=1e-9, abs_tol=1e-9):
            hint = "each codebook k starts k steps late, so the last num_codebooks - 1 steps do not finish a frame."
            if math.isclose(seconds, steps / rate, rel_tol=1e-9):
                hint = "that is the nominal length max_new_tokens / frame_rate; subtract the delay frames first."
            elif math.isclose(seconds, (steps - books) / rate, rel_tol=1e-9):
                hint = "off by one frame: codebook 0 has no delay, so only num_codebooks - 1 frames are lost."
            raise ExerciseFailed(title, f"on case {case}, expected {want:.6g} s, got {seconds:.6g} s.", hint)
    _passed(title, "5 cases, e.g. 256 tokens at 50 Hz with 4 codebooks = 5.06 s")


def _reference_delay(codes: np.ndarray, pad: int) -> np.ndarray:
    k, t = codes.shape
    out = np.full((k, t + k - 1), pad, dtype=np.int64)
    for book in range(k):
        out[book, book : book + t] = codes[book]
    return out


def check_delay_pattern(fn: Callable[[np.ndarray, int], Any]) -> None:
    """Check ``fn(codes, pad) -> delayed``: codes ``(K, T)`` → ``(K, T + K - 1)``, ``out[k, t + k] = codes[k, t]``."""
    __tracebackhide__ = True
    title = "The codebook delay pattern"
    _need_callable(fn, "fn", "check_delay_pattern(delay)")
    signature = "fn(codes, pad) -> delayed"
    rng = np.random.default_rng(4)
    cases = [
        (np.array([[1, 2, 3], [4, 5, 6]]), -1),
        (np.arange(8).reshape(4, 2), 99),
        (rng.integers(0, 2048, size=(4, 7)), 2048),
        (np.array([[5, 6, 7, 8]]), -1),
        (rng.integers(0, 256, size=(8, 3)), -1),
    ]
    for codes, pad in cases:
        case = f"codes of shape {codes.shape}, pad={pad}"
        got = _to_numpy(title, _call(title, fn, case, codes.copy(), pad, signature=signature), "your result")
        want = _reference_delay(codes, pad)
        if got.shape != want.shape:
            hint = "there are frames + num_codebooks - 1 steps: the last codebook finishes num_codebooks - 1 steps late."
            raise ExerciseFailed(title, f"on case {case}, expected shape {want.shape}, got {got.shape}.", hint)
        if not np.array_equal(got, want):
            hint = "codebook k is shifted right by k steps; everything else is pad."
            if codes.shape[0] > 1 and np.array_equal(got[::-1], _reference_delay(codes[::-1], pad)):
                hint = "the delays run the wrong way: codebook 0 has no delay, the last codebook the largest."
            raise ExerciseFailed(
                title, f"on case {case}, expected\n{want}\ngot\n{got.astype(np.int64)}", hint
            )
    _passed(title, "5 cases, 1 to 8 codebooks")


def check_guidance(fn: Callable[[Any, Any, float], Any]) -> None:
    """Check ``fn(cond_logits, uncond_logits, scale) -> logits`` of classifier-free guidance.

    The guided logits are ``uncond + scale * (cond - uncond)``: scale 1 gives the conditional
    logits back, 0 the unconditional ones, and larger scales push away from "no prompt".
    """
    __tracebackhide__ = True
    import torch

    title = "Classifier-free guidance"
    _need_callable(fn, "fn", "check_guidance(guide)")
    signature = "fn(cond_logits, uncond_logits, scale) -> logits"
    gen = torch.Generator().manual_seed(0)
    cond = torch.randn(4, 2048, generator=gen)
    uncond = torch.randn(4, 2048, generator=gen)
    for scale in (3.0, 1.0, 0.0, 7.5):
        case = f"scale={scale} on logits of shape {tuple(cond.shape)}"
        got = _to_numpy(title, _call(title, fn, case, cond.clone(), uncond.clone(), scale, signature=signature), "your result")
        want = (uncond + scale * (cond - uncond)).numpy().astype(np.float64)
        if not _close(got, want, atol=1e-4, rtol=1e-5):
            hint = "start from the unconditional logits and move scale times the difference towards the conditional ones."
            if got.shape == want.shape and _close(got, (cond + scale * (cond - uncond)).numpy(), 1e-4, 1e-5):
                hint = "you started from the conditional logits; start from the unconditional ones."
            elif got.shape == want.shape and _close(got, (scale * cond).numpy(), 1e-4, 1e-5):
                hint = "scaling the conditional logits alone only sharpens them; guidance needs the unconditional logits too."
            detail = _worst(got, want) if got.shape == want.shape else f"shape {got.shape} instead of {want.shape}"
            raise ExerciseFailed(title, f"on case {case}: {detail}.", hint)
    _passed(title, "scales 0, 1, 3 and 7.5")


def check_remove_padding(fn: Callable[[np.ndarray, np.ndarray], Any]) -> None:
    """Check ``fn(audio_values, padding_mask) -> list of (channels, n) arrays`` without the padded samples.

    ``audio_values`` is ``(batch, channels, samples)``; ``padding_mask`` is ``(batch, prompt_samples)``
    with 1 for real prompt samples and 0 for padding. The generated part after the prompt is
    always kept; inside the prompt, samples where the mask is 0 are dropped.
    """
    __tracebackhide__ = True
    title = "Removing the padding of audio prompts"
    _need_callable(fn, "fn", "check_remove_padding(remove_padding)")
    signature = "fn(audio_values, padding_mask) -> list of arrays"
    rng = np.random.default_rng(7)
    cases = []
    for lengths, total, channels in [((5, 8), 12, 1), ((8, 8), 10, 1), ((3, 6, 4), 9, 2)]:
        longest = max(lengths)
        mask = np.zeros((len(lengths), longest), dtype=np.int64)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        audio = rng.standard_normal((len(lengths), channels, total)).astype(np.float32)
        cases.append((audio, mask, lengths))
    for audio, mask, lengths in cases:
        case = f"audio of shape {audio.shape}, prompts of {list(lengths)} samples"
        got = _call(title, fn, case, audio.copy(), mask.copy(), signature=signature)
        if not isinstance(got, (list, tuple)) or len(got) != audio.shape[0]:
            raise ExerciseFailed(
                title, f"on case {case}, expected a list of {audio.shape[0]} arrays, got {type(got).__name__}"
                + (f" of length {len(got)}" if isinstance(got, (list, tuple)) else "") + ".",
                "items have different lengths after the padding is gone, so return a list, one array per item.",
            )
        full = np.concatenate([mask, np.ones((mask.shape[0], audio.shape[-1] - mask.shape[1]), dtype=mask.dtype)], axis=1)
        for i, item in enumerate(got):
            arr = _to_numpy(title, item, f"item {i}")
            want = audio[i][:, full[i] != 0].astype(np.float64)
            if arr.shape != want.shape:
                hint = "keep the channel axis: each item is (channels, samples)."
                if arr.size == want.size - (audio.shape[-1] - mask.shape[1]) * audio.shape[1]:
                    hint = "the mask only covers the prompt; the generated samples after it are real audio, keep them."
                elif arr.size == audio.shape[1] * audio.shape[2]:
                    hint = "nothing was removed: drop the samples where the mask is 0."
                raise ExerciseFailed(title, f"on case {case}, item {i}: expected shape {want.shape}, got {arr.shape}.", hint)
            if not np.allclose(arr, want, atol=1e-6):
                raise ExerciseFailed(
                    title, f"on case {case}, item {i}: the right length but the wrong samples.",
                    "remove the samples where the mask is 0 (the padding sits after each short prompt), not the last ones.",
                )
    _passed(title, "3 batches, mono and stereo")


# ============================================================================= lesson 02: the audio diffusion pipeline
#
# 1. check_add_noise: the forward process q(x_t | x_0), against diffusers' DDPMScheduler.add_noise.
# 2. check_ddim_step: one deterministic DDIM update, against diffusers' DDIMScheduler.step (eta 0).
# 3. check_slerp: spherical interpolation between two noises (NumPy reference, same rule as
#    course_lib.diffusion.slerp) and its properties: endpoints, norm kept, lerp fallback.
# 4. check_keep_known: inpainting's copy of the known (re-noised) columns into the current image.
#
# The references of 1 and 2 are diffusers' own schedulers (the library the lesson's pipeline
# steps with), so an answer that passes steps exactly as the pipeline does.

__all__ += ["check_add_noise", "check_ddim_step", "check_slerp", "check_keep_known"]

_DIFFUSION_ATOL = 1e-4  # float32 answers against float32 (diffusers) or float64 (NumPy) references
_DIFFUSION_RTOL = 1e-4


def _call_with_hint(title: str, fn: Callable[..., Any], case: str, *args: Any, signature: str, hint: str) -> Any:
    """:func:`_call`, but an exception raised by the learner's code gets ``hint`` (not a stub's message)."""
    __tracebackhide__ = True
    try:
        return _call(title, fn, case, *args, signature=signature)
    except ExerciseFailed as err:
        if err.__cause__ is None:  # "not answered yet" and the like keep their own hint
            raise
        raise ExerciseFailed(title, err.problem, hint) from err.__cause__


def _tensor_result(title: str, got: Any, case: str, want: np.ndarray, hint: str = "") -> np.ndarray:
    """The learner's tensor as float64 NumPy, with the shape checked against ``want``."""
    __tracebackhide__ = True
    array = _to_numpy(title, got, f"your result on case {case}")
    if array.shape != want.shape:
        raise ExerciseFailed(
            title, f"on case {case}, expected shape {want.shape}, got {array.shape}.",
            "return a tensor of the input's shape (N, 1, H, W)" + (f"; {hint}" if hint else "."),
        )
    return array


def _check_unchanged(title: str, case: str, before: Sequence[Any], after: Sequence[Any], names: Sequence[str]) -> None:
    __tracebackhide__ = True
    import torch

    for name, old, new in zip(names, before, after):
        if isinstance(old, torch.Tensor) and not torch.equal(old, new):
            raise ExerciseFailed(
                title, f"on case {case}, your function changed its input {name}.",
                f"compute a new tensor (e.g. start from {name}.clone()) and leave the caller's {name} as it was: "
                "the pipeline still needs it.",
            )


def _diagnose(got: np.ndarray, candidates: Sequence[tuple[np.ndarray, str]], default: str) -> str:
    """The hint of the first known wrong answer that ``got`` matches, else ``default``."""
    for wrong, hint in candidates:
        if wrong.shape == got.shape and _close(got, wrong, _DIFFUSION_ATOL, _DIFFUSION_RTOL):
            return hint
    return default


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float64) if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)


def check_add_noise(fn: Callable[[Any, Any, Any], Any]) -> None:
    """Check ``fn(x0, noise, alpha_bar) -> x_t`` of the forward process q(x_t | x_0).

    ``x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * noise``: the clean image shrinks and the
    noise grows so that the variance stays 1. ``alpha_bar`` is a float, or a tensor ``(N,)`` with
    one value per image of a batch ``(N, 1, H, W)``. The reference is diffusers'
    ``DDPMScheduler.add_noise`` on real timesteps, plus the end points alpha_bar = 1 (the clean
    image) and 0 (pure noise).
    """
    __tracebackhide__ = True
    import torch
    from diffusers import DDPMScheduler

    title = "The forward process q(x_t | x_0)"
    _need_callable(fn, "fn", "check_add_noise(add_noise)")
    signature = "fn(x0, noise, alpha_bar) -> x_t"
    scheduler = DDPMScheduler(num_train_timesteps=1000)  # the course model's schedule (linear betas)
    alphas = scheduler.alphas_cumprod
    gen = torch.Generator().manual_seed(2)

    def images(*shape: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.rand(shape, generator=gen) * 2 - 1, torch.randn(shape, generator=gen)

    cases = []
    x0, noise = images(2, 1, 8, 8)
    cases.append(("a float alpha_bar (timestep 500) on 2 images", x0, noise, float(alphas[500]),
                  scheduler.add_noise(x0, noise, torch.tensor([500]))))
    x0, noise = images(4, 1, 8, 16)
    steps = torch.tensor([0, 250, 600, 999])
    cases.append(("a batch of 4 with one alpha_bar each (timesteps 0, 250, 600, 999)", x0, noise, alphas[steps].clone(),
                  scheduler.add_noise(x0, noise, steps)))
    x0, noise = images(2, 1, 8, 8)
    cases.append(("alpha_bar = [1.0, 0.0] (the clean image, then pure noise)", x0, noise, torch.tensor([1.0, 0.0]),
                  torch.stack([x0[0], noise[1]])))
    broadcast_hint = (
        "alpha_bar is either a number or a tensor (N,) with one value per image: reshape a tensor to (N, 1, 1, 1), "
        "e.g. torch.as_tensor(alpha_bar).reshape(-1, 1, 1, 1), so it broadcasts over each image. "
        "`alpha_bar ** 0.5` works on floats and tensors alike (torch.sqrt needs a tensor)."
    )
    for case, x0, noise, alpha_bar, expected in cases:
        inputs = (x0, noise, alpha_bar)
        copies = tuple(v.clone() if isinstance(v, torch.Tensor) else v for v in inputs)
        got = _call_with_hint(title, fn, case, *copies, signature=signature, hint=broadcast_hint)
        _check_unchanged(title, case, inputs, copies, ("x0", "noise", "alpha_bar"))
        want = _np(expected)
        array = _tensor_result(title, got, case, want, "reshape alpha_bar to broadcast, not the images.")
        if not _close(array, want, _DIFFUSION_ATOL, _DIFFUSION_RTOL):
            a = _np(alpha_bar).reshape(-1, 1, 1, 1)
            c, n = _np(x0), _np(noise)
            hint = _diagnose(array, [
                (a * c + (1 - a) * n, ("the scales are square roots: sqrt(alpha_bar) for x0 and sqrt(1 - alpha_bar) "
                                       "for the noise (variances add, so the standard deviations are square roots).")),
                (np.sqrt(a) * c + (1 - a) * n, "the noise is scaled by sqrt(1 - alpha_bar), not by 1 - alpha_bar."),
                (np.sqrt(a) * c + (1 - np.sqrt(a)) * n, ("the noise is scaled by sqrt(1 - alpha_bar), "
                                                         "not by 1 - sqrt(alpha_bar).")),
                (np.sqrt(1 - a) * c + np.sqrt(a) * n, ("x0 and the noise are swapped: alpha_bar near 1 (early "
                                                       "timesteps) must leave the clean image almost untouched.")),
            ], "x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * noise, with alpha_bar broadcast per image.")
            raise ExerciseFailed(title, f"on case {case}: {_worst(array, want)}.", hint)
    _passed(title, ("3 cases: a float alpha_bar, one per image of a batch, and alpha_bar 1 and 0; "
                    "agrees with DDPMScheduler.add_noise"))


def check_ddim_step(fn: Callable[[Any, Any, Any, Any], Any]) -> None:
    """Check ``fn(x_t, eps, alpha_bar_t, alpha_bar_prev) -> x_prev``: one deterministic DDIM step.

    First predict the clean image, ``x0 = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t)``,
    then put it back at the previous (lower) noise level with the same noise:
    ``x_prev = sqrt(alpha_bar_prev) * x0 + sqrt(1 - alpha_bar_prev) * eps``. The reference is
    ``DDIMScheduler(clip_sample=False, set_alpha_to_one=...).step(eps, t, x_t, eta=0)`` on real
    timesteps of 10- and 50-step schedules, the last step included (where alpha_bar_prev is 1 or
    ``alphas_cumprod[0]``). The alphas are 0-d tensors, as the scheduler stores them.
    """
    __tracebackhide__ = True
    import torch
    from diffusers import DDIMScheduler

    title = "One DDIM step"
    _need_callable(fn, "fn", "check_ddim_step(ddim_step)")
    signature = "fn(x_t, eps, alpha_bar_t, alpha_bar_prev) -> x_prev"
    gen = torch.Generator().manual_seed(3)
    plan = [  # (steps, set_alpha_to_one, timestep, shape)
        (10, True, 900, (1, 1, 8, 8)),
        (10, True, 500, (3, 1, 8, 16)),
        (50, False, 980, (2, 1, 8, 8)),
        (10, True, 0, (2, 1, 8, 8)),
        (10, False, 0, (1, 1, 8, 8)),
    ]
    for steps, to_one, t, shape in plan:
        scheduler = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=to_one)
        scheduler.set_timesteps(steps)
        if t not in scheduler.timesteps.tolist():  # pragma: no cover - guards the plan against diffusers changes
            raise RuntimeError(f"timestep {t} is not in diffusers' {steps}-step DDIM schedule")
        prev = t - 1000 // steps
        alpha_t = scheduler.alphas_cumprod[t].clone()
        alpha_prev = (scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod).clone()
        clean = torch.rand(shape, generator=gen) * 2 - 1
        noise = torch.randn(shape, generator=gen)
        x_t = alpha_t.sqrt() * clean + (1 - alpha_t).sqrt() * noise
        eps = noise + 0.1 * torch.randn(shape, generator=gen)  # a good but imperfect prediction, as from a UNet
        expected = scheduler.step(eps, t, x_t, eta=0.0).prev_sample
        last = " (the last step" + (", alpha_bar_prev = 1)" if to_one else ", alpha_bar_prev = alphas_cumprod[0])")
        case = (f"timestep {t} of {steps} steps, alpha_bar_t={float(alpha_t):.4g}, alpha_bar_prev={float(alpha_prev):.4g}"
                f", x_t of shape {tuple(shape)}" + (last if prev < 0 else ""))
        inputs = (x_t, eps, alpha_t, alpha_prev)
        copies = tuple(v.clone() for v in inputs)
        got = _call_with_hint(title, fn, case, *copies, signature=signature,
                              hint="the alphas are 0-d tensors; `** 0.5` or torch.sqrt work on them.")
        _check_unchanged(title, case, inputs, copies, ("x_t", "eps", "alpha_bar_t", "alpha_bar_prev"))
        want = _np(expected)
        array = _tensor_result(title, got, case, want)
        if not _close(array, want, _DIFFUSION_ATOL, _DIFFUSION_RTOL):
            x, e, a, p = _np(x_t), _np(eps), float(alpha_t), float(alpha_prev)

            def step(a: float, p: float, root: Callable[[float], float] = math.sqrt,
                     x: np.ndarray = x, e: np.ndarray = e) -> np.ndarray:
                x0 = (x - root(1 - a) * e) / root(a)
                return root(p) * x0 + root(1 - p) * e

            x0_pred = (x - math.sqrt(1 - a) * e) / math.sqrt(a)
            hint = _diagnose(array, [
                (step(p, a), ("alpha_bar_t and alpha_bar_prev are swapped: predict x0 with alpha_bar_t (the level x_t is "
                              "at), then re-noise it with alpha_bar_prev.")),
                (x0_pred, ("that is the predicted clean image x0; the step then moves it to the previous noise level: "
                           "sqrt(alpha_bar_prev) * x0 + sqrt(1 - alpha_bar_prev) * eps.")),
                (math.sqrt(p) * x + math.sqrt(1 - p) * e, ("re-noise the predicted clean image, not x_t: first "
                                                           "x0 = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t).")),
                (math.sqrt(p) * x0_pred + math.sqrt(1 - a) * e, ("the noise term belongs to the new level: "
                                                                 "sqrt(1 - alpha_bar_prev) * eps.")),
                (step(a, p, root=lambda v: v), "the scales are square roots of the alphas (and of 1 - the alphas)."),
            ], "x0 = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t); "
               "x_prev = sqrt(alpha_bar_prev) * x0 + sqrt(1 - alpha_bar_prev) * eps.")
            raise ExerciseFailed(title, f"on case {case}: {_worst(array, want)}.", hint)
    _passed(title, "5 steps of 10- and 50-step schedules, last steps included; agrees with DDIMScheduler.step(eta=0)")


def _slerp_ref(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation in float64, one angle for the whole tensors, lerp when (nearly) parallel."""
    fa, fb = a.ravel(), b.ravel()
    cos = float(np.clip(fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb)), -1.0, 1.0))
    theta = math.acos(cos)
    if math.sin(theta) < 1e-6:
        return (1.0 - t) * a + t * b
    return (math.sin((1.0 - t) * theta) * a + math.sin(t * theta) * b) / math.sin(theta)


def check_slerp(fn: Callable[[Any, Any, float], Any]) -> None:
    """Check ``fn(a, b, t) -> tensor``: spherical interpolation between two noise tensors.

    With ``theta`` the angle between the whole (flattened) tensors,
    ``slerp = (sin((1 - t) * theta) * a + sin(t * theta) * b) / sin(theta)``; when ``a`` and ``b``
    are (nearly) parallel, ``sin(theta)`` is about 0 and the answer is the straight line
    ``(1 - t) * a + t * b``. Checked on Gaussian noise (t = 0 gives ``a``, t = 1 gives ``b``, and the
    norm stays that of the endpoints, where lerp's dips to about 71 % halfway), a batch, and
    parallel inputs (no NaN).
    """
    __tracebackhide__ = True
    import torch

    title = "Spherical interpolation (slerp)"
    _need_callable(fn, "fn", "check_slerp(slerp)")
    signature = "fn(a, b, t) -> tensor"
    gen = torch.Generator().manual_seed(5)
    a1, b1 = torch.randn(1, 1, 32, 32, generator=gen), torch.randn(1, 1, 32, 32, generator=gen)
    a2, b2 = torch.randn(3, 1, 16, 16, generator=gen), torch.randn(3, 1, 16, 16, generator=gen)
    signs = torch.randint(0, 2, (1, 1, 8, 8), generator=gen).float() * 2 - 1
    same = torch.randn(1, 1, 16, 16, generator=gen)
    cases = [(f"two Gaussian noises (1, 1, 32, 32), t={t}", a1, b1, t) for t in (0.0, 0.25, 0.5, 1.0)]
    cases += [
        ("a batch of noises (3, 1, 16, 16), t=0.6", a2, b2, 0.6),
        ("parallel inputs b = 2 * a, t=0.25", signs, 2 * signs, 0.25),
        ("identical inputs b = a, t=0.5", same, same.clone(), 0.5),
    ]
    halfway = None
    for case, a, b, t in cases:
        copies = (a.clone(), b.clone())
        got = _call(title, fn, case, *copies, t, signature=signature)
        _check_unchanged(title, case, (a, b), copies, ("a", "b"))
        na, nb = _np(a), _np(b)
        want = _slerp_ref(na, nb, t)
        array = _tensor_result(title, got, case, want, ("measure the angle on flattened copies, but combine the "
                                                         "original tensors a and b."))
        if not np.all(np.isfinite(array)):
            raise ExerciseFailed(
                title, f"on case {case}, your result has {int((~np.isfinite(array)).sum())} NaN or inf entries.",
                "parallel tensors have theta = 0, so sin(theta) = 0 and the formula divides 0 by 0: when sin(theta) is "
                "tiny (say < 1e-6) return the straight line (1 - t) * a + t * b. Clamp cos(theta) to [-1, 1] before "
                "acos too: rounding can make it 1.0000001.",
            )
        if not _close(array, want, _DIFFUSION_ATOL, _DIFFUSION_RTOL):
            per_item = np.stack([_slerp_ref(na[i], nb[i], t) for i in range(na.shape[0])])
            hint = _diagnose(array, [
                (_slerp_ref(nb, na, t), "a and b are swapped: t = 0 must give a and t = 1 must give b."),
                ((1 - t) * na + t * nb, ("that is the straight line (lerp); walk along the arc: "
                                         "(sin((1 - t) * theta) * a + sin(t * theta) * b) / sin(theta).")),
                (per_item, ("use one angle between the whole tensors (flatten them), not one per image: the batch is "
                            "one point on the sphere, as in course_lib.diffusion.slerp.")),
            ], "cos(theta) = (a · b) / (|a| |b|) over the flattened tensors; then "
               "(sin((1 - t) * theta) * a + sin(t * theta) * b) / sin(theta).")
            if t == 0.0 or t == 1.0:
                hint = f"at t = {t:g} slerp must return {'a' if t == 0 else 'b'} itself. " + hint
            raise ExerciseFailed(title, f"on case {case}: {_worst(array, want)}.", hint)
        if t == 0.5 and "Gaussian" in case:
            halfway = float(np.linalg.norm(array) / np.linalg.norm(na))
    _passed(title, f"7 cases; halfway between two noises the norm is {halfway:.2f}× the endpoint's (lerp: about 0.71×), "
                   "parallel inputs give no NaN")


def _keep_known_ref(x: np.ndarray, known: np.ndarray, left: int, right: int) -> np.ndarray:
    out = x.copy()
    width = x.shape[-1]
    out[..., :left] = known[..., :left]
    out[..., width - right:] = known[..., width - right:]
    return out


def check_keep_known(fn: Callable[[Any, Any, int, int], Any]) -> None:
    """Check ``fn(x, x0_noisy, left, right) -> tensor``: inpainting's "keep the known part" step.

    The result is ``x`` with its first ``left`` and last ``right`` columns (the last axis) taken
    from ``x0_noisy``, the known clip re-noised to the current level; either count may be 0.
    ``x`` itself must not change. Checked on batches (N, 1, H, W), with 0 on either side, both,
    and every column known.
    """
    __tracebackhide__ = True
    import torch

    title = "Keeping the known columns (inpainting)"
    _need_callable(fn, "fn", "check_keep_known(keep_known)")
    signature = "fn(x, x0_noisy, left, right) -> tensor"
    gen = torch.Generator().manual_seed(6)
    plan = [((2, 1, 8, 16), 4, 3), ((2, 1, 8, 16), 0, 5), ((1, 1, 8, 12), 6, 0), ((3, 1, 4, 8), 0, 0),
            ((2, 1, 8, 16), 10, 6)]
    for shape, left, right in plan:
        x = torch.randn(shape, generator=gen)
        known = torch.randn(shape, generator=gen)
        case = f"x of shape {shape}, left={left}, right={right}"
        copies = (x.clone(), known.clone())
        got = _call(title, fn, case, *copies, left, right, signature=signature)
        _check_unchanged(title, case, (x, known), copies, ("x", "x0_noisy"))
        if got is copies[0] or got is copies[1]:
            raise ExerciseFailed(
                title, f"on case {case}, your function returned its input tensor itself.",
                "return a new tensor (start from x.clone()), so the caller can keep using x.",
            )
        nx, nk = _np(x), _np(known)
        want = _keep_known_ref(nx, nk, left, right)
        array = _tensor_result(title, got, case, want)
        if not np.array_equal(array, want):
            width = shape[-1]
            wrong = [
                (_keep_known_ref(nx, nk, right, left), ("left and right are swapped: the first `left` columns and the "
                                                        "last `right` columns come from x0_noisy.")),
                (_keep_known_ref(nk, nx, left, right), ("x and x0_noisy are swapped: the known columns come from "
                                                        "x0_noisy, every other column from x.")),
                (_keep_known_ref(nx, nk, left, width - right), ("the right part is the last `right` columns, "
                                                                "[width - right, width), not columns [right, width).")),
            ]
            if right == 0:
                wrong.insert(0, (nk.copy(), ("with right = 0, x[..., -right:] is x[..., -0:], which is every column: "
                                             "use x[..., width - right:] or skip the copy when right is 0.")))
            hint = _diagnose(array, wrong, ("columns [0, left) and [width - right, width) of the last axis come from "
                                            "x0_noisy, all the others from x."))
            changed = int((array != want).any(axis=tuple(range(array.ndim - 1))).sum())
            raise ExerciseFailed(title, f"on case {case}: {changed} of {width} columns are wrong; "
                                        f"{_worst(array, want)}.", hint)
    _passed(title, "5 batches: both sides, left or right only (0 on the other), none, and every column known")


# ============================================================================= lesson 03: fine-tuning
#
# 1. check_model_range: uint8 pixels (B, H, W) -> float32 (B, 1, H, W) in [-1, 1], and the way back.
# 2. check_training_loss: the DDPM fine-tuning loss, against course_lib.training.diffusion_loss drawing
#    from a generator with the same seed, and the gradients it gives a tiny UNet2DModel.
# 3. check_save_atomically: a safetensors save that never leaves a broken file (a temporary file in the
#    same folder, then os.replace), under a simulated failure half-way through the write.
# 4. check_epoch_starts: the random start frame of each clip in an epoch, seeded by (seed, epoch).

__all__ += ["check_model_range", "check_training_loss", "check_save_atomically", "check_epoch_starts"]


def _dtype_name(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    return str(dtype).replace("torch.", "") if dtype is not None else type(value).__name__


def _model_range_ref(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float64) / 255.0 * 2.0 - 1.0)[:, None]


def _pixels_ref(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round((x[:, 0].astype(np.float64) + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)


def _check_to_model_range(title: str, fn: Callable[[Any], Any], case: str, pixels: Any) -> np.ndarray:
    """Run ``to_model_range`` on one case; return its result as float64 NumPy."""
    __tracebackhide__ = True
    import torch

    given = pixels.clone()
    got = _call(title, fn, case, given, signature="to_model_range(pixels) -> tensor")
    _check_unchanged(title, case, (pixels,), (given,), ("pixels",))
    if not isinstance(got, torch.Tensor):
        raise ExerciseFailed(
            title, f"to_model_range on case {case} returned {type(got).__name__}, not a torch tensor.",
            "the UNet takes torch tensors: work on the tensor you are given (pixels.float() / 255 ...).",
        )
    p = pixels.numpy()
    want = _model_range_ref(p)
    if tuple(got.shape) != want.shape:
        hint = "the result is (B, 1, H, W): a batch of one-channel images."
        if tuple(got.shape) == p.shape:
            hint = "the channel axis is missing: the UNet wants (B, 1, H, W); add it with x[:, None] or x.unsqueeze(1)."
        raise ExerciseFailed(title, f"to_model_range on case {case}: expected shape {want.shape}, "
                                    f"got {tuple(got.shape)}.", hint)
    if got.dtype != torch.float32:
        hint = "the UNet's weights are float32: convert with .float() (or .to(torch.float32))."
        if not got.is_floating_point():
            hint = ("integer grey levels cannot hold -1 ... 1: convert to float first, pixels.float(), then scale "
                    "(uint8 arithmetic also wraps around at 256).")
        raise ExerciseFailed(title, f"to_model_range on case {case}: expected dtype float32, got {_dtype_name(got)}.",
                             hint)
    array = _np(got)
    if not _close(array, want, 1e-6, 1e-6):
        pf = p.astype(np.float64)[:, None]
        hint = _diagnose(array, [
            (pf / 255.0, "that is [0, 1]; the model works in [-1, 1]: x = pixels / 255 * 2 - 1."),
            (pf / 127.5, "0 must give -1: subtract 1 after dividing by 127.5."),
            ((pf - 128.0) / 128.0, "0 must give -1 and 255 must give +1 exactly: the middle is 127.5, not 128."),
            ((pf * 2.0 % 256.0) / 255.0 - 1.0, ("pixels * 2 overflowed: uint8 arithmetic wraps around at 256. "
                                                 "Convert to float first: pixels.float() / 255 * 2 - 1.")),
            (1.0 - pf / 255.0 * 2.0, "the sign is flipped: 0 (silence, black) gives -1 and 255 gives +1."),
        ], "map grey level 0 to -1 and 255 to +1 linearly: pixels / 255 * 2 - 1.")
        raise ExerciseFailed(title, f"to_model_range on case {case}: {_worst(array, want)}.", hint)
    return array


def _check_to_pixels(title: str, fn: Callable[[Any], Any], case: str, x: Any) -> np.ndarray:
    """Run ``to_pixels`` on one case; return its result as a uint8 NumPy array."""
    __tracebackhide__ = True
    given = x.clone()
    got = _call(title, fn, case, given, signature="to_pixels(x) -> uint8 images")
    _check_unchanged(title, case, (x,), (given,), ("x",))
    want = _pixels_ref(_np(x))
    shape = tuple(int(s) for s in getattr(got, "shape", ()))
    if shape != want.shape:
        hint = "the result is (B, H, W) grey levels, one image per item."
        if shape == tuple(x.shape):
            hint = "drop the channel axis: x[:, 0] (or .squeeze(1)) turns (B, 1, H, W) into (B, H, W)."
        raise ExerciseFailed(title, f"to_pixels on case {case}: expected shape {want.shape}, got {shape}.", hint)
    if _dtype_name(got) != "uint8":
        raise ExerciseFailed(
            title, f"to_pixels on case {case}: expected dtype uint8, got {_dtype_name(got)}.",
            "images are grey levels 0..255 stored as uint8: finish with .round().to(torch.uint8).",
        )
    array = _to_numpy(title, got, f"to_pixels' result on case {case}")
    if not np.array_equal(array, want):
        xs = _np(x)[:, 0]
        level = (xs + 1.0) / 2.0 * 255.0
        inside = (level >= 0) & (level <= 255)
        wrong = array != want
        hint = "grey level = (x + 1) / 2 * 255, clamped to [0, 255], rounded to the nearest whole number."
        if not wrong[inside].any():
            hint = ("the values outside [-1, 1] are wrong: the model's outputs overshoot, and converting a negative "
                    "or > 255 value to uint8 wraps around. Clamp first: x.clamp(-1, 1) (or the levels to [0, 255]).")
        elif set(np.unique(want[inside].astype(np.int64) - array[inside])) == {0, 1}:
            hint = ("the levels are cut off, not rounded: .to(torch.uint8) drops the fraction, so 254.99998 becomes "
                    "254. Call .round() before converting.")
        n_wrong = int(wrong.sum())
        k = np.unravel_index(int(np.argmax(wrong)), wrong.shape)
        raise ExerciseFailed(
            title, f"to_pixels on case {case}: {n_wrong} of {wrong.size} pixels are wrong; at index "
                   f"{tuple(int(i) for i in k)}, x = {float(xs[k]):.6g} should give {int(want[k])}, got "
                   f"{int(array[k])}.", hint)
    return array


def check_model_range(to_model_range: Callable[[Any], Any], to_pixels: Callable[[Any], Any]) -> None:
    """Check ``to_model_range(pixels)`` and its inverse ``to_pixels(x)``.

    ``to_model_range``: uint8 images ``(B, H, W)`` -> float32 ``(B, 1, H, W)`` in [-1, 1] (0 -> -1,
    255 -> +1, ``pixels / 255 * 2 - 1``). ``to_pixels``: float ``(B, 1, H, W)`` -> uint8 ``(B, H, W)``,
    ``(x + 1) / 2 * 255`` clamped to [0, 255] and rounded. Checked on every grey level, a random
    batch, all-black and all-white images, values off the grid and outside [-1, 1]; and the round
    trip ``to_pixels(to_model_range(p)) == p`` must be exact.
    """
    __tracebackhide__ = True
    import torch

    title = "Pixels to the model's range and back"
    _need_callable(to_model_range, "to_model_range", "check_model_range(to_model_range, to_pixels)")
    _need_callable(to_pixels, "to_pixels", "check_model_range(to_model_range, to_pixels)")
    gen = torch.Generator().manual_seed(30)
    every = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    batch = torch.randint(0, 256, (3, 8, 12), generator=gen, dtype=torch.uint8)
    extremes = torch.stack([torch.zeros(4, 4, dtype=torch.uint8), torch.full((4, 4), 255, dtype=torch.uint8)])
    for case, pixels in [("every grey level 0..255, shape (1, 16, 16)", every),
                         ("a random batch of shape (3, 8, 12)", batch),
                         ("an all-black and an all-white image, shape (2, 4, 4)", extremes)]:
        _check_to_model_range(title, to_model_range, case, pixels)

    grid = torch.from_numpy(_model_range_ref(every.numpy())).float()
    levels = torch.randint(0, 256, (2, 1, 8, 8), generator=gen).double()
    jitter = (torch.rand(levels.shape, generator=gen, dtype=torch.float64) - 0.5) * 0.8  # within 0.4 of a level
    near = ((levels + jitter) / 255.0 * 2.0 - 1.0).float()
    outside = torch.tensor([[[[-3.0, -1.5, -1.0001, -1.0], [1.0, 1.0001, 1.5, 40.0]]]])
    for case, x in [("every level of the model range, shape (1, 1, 16, 16)", grid),
                    ("values up to 0.4 grey levels off the grid, shape (2, 1, 8, 8)", near),
                    ("values outside [-1, 1] (the model overshoots), shape (1, 1, 2, 4)", outside)]:
        _check_to_pixels(title, to_pixels, case, x)

    for case, pixels in [("every grey level", every), ("the random batch", batch)]:
        there = _call(title, to_model_range, case, pixels.clone(), signature="to_model_range(pixels) -> tensor")
        back = _to_numpy(title, _call(title, to_pixels, case, there, signature="to_pixels(x) -> uint8 images"),
                         "the round trip's result")
        if back.shape != tuple(pixels.shape) or not np.array_equal(back, pixels.numpy()):
            raise ExerciseFailed(title, f"to_pixels(to_model_range(p)) is not p on {case}.",
                                 "round (do not truncate) on the way back, and use the same 255 in both directions.")
    _passed(title, "every grey level, a batch, black and white, off-grid and out-of-range values; "
                   "the round trip is exact")


def _tiny_unet(seed: int) -> Any:
    """A small UNet2DModel (about 40k parameters) with weights from ``seed``; the global RNG is left alone."""
    import torch
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                           block_out_channels=(8, 16), norm_num_groups=4,
                           down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))


def _loss_variants(unet: Any, x0: Any, scheduler: Any, seed: int) -> list[tuple[float, str]]:
    """Losses of the usual wrong answers, each with its hint (for the failure message)."""
    import torch
    import torch.nn.functional as F

    n = int(scheduler.config.num_train_timesteps)
    b = x0.shape[0]

    def draw(noise_first: bool = False, high: int = n) -> tuple[Any, Any]:
        g = torch.Generator().manual_seed(seed)
        if noise_first:
            noise = torch.randn(x0.shape, generator=g)
            return torch.randint(0, high, (b,), generator=g), noise
        t = torch.randint(0, high, (b,), generator=g)
        return t, torch.randn(x0.shape, generator=g)

    out = []
    with torch.no_grad():
        t, noise = draw()
        pred = unet(scheduler.add_noise(x0, noise, t), t).sample
        right = float(F.mse_loss(pred, noise))
        out += [
            (right ** 2, ("your loss is the MSE times itself. That is what loss.backward(loss) does to the gradients: "
                          "it scales them by the loss. Return the plain MSE; the loop calls loss.backward().")),
            (right * x0.numel(), "that is the sum of the squared errors; take the mean (F.mse_loss's default)."),
            (float(F.mse_loss(pred, x0)), "the UNet predicts the noise that was added: compare its output with noise, not x0."),
        ]
        t2, noise2 = draw(noise_first=True)
        out.append((float(F.mse_loss(unet(scheduler.add_noise(x0, noise2, t2), t2).sample, noise2)),
                    "the draws are in the wrong order: first t = torch.randint(...), then noise = torch.randn(...)."))
        if n > 1:
            t3, noise3 = draw(high=n - 1)
            out.append((float(F.mse_loss(unet(scheduler.add_noise(x0, noise3, t3), t3).sample, noise3)),
                        ("t runs from 0 to num_train_timesteps - 1: torch.randint's high is exclusive, so pass "
                         "num_train_timesteps itself.")))
        out.append((float(F.mse_loss(unet(x0, t).sample, noise)),
                    "the UNet must see the noisy images: noisy = scheduler.add_noise(x0, noise, t)."))
    return out


def check_training_loss(fn: Callable[[Any, Any, Any, Any], Any]) -> None:
    """Check ``fn(unet, x0, scheduler, generator) -> loss``: the DDPM fine-tuning loss.

    From ``generator``, in this order: ``t = torch.randint(0, T, (B,))`` and ``noise = torch.randn(x0.shape)``
    (T = ``scheduler.config.num_train_timesteps``); then ``noisy = scheduler.add_noise(x0, noise, t)`` and
    the MSE between ``unet(noisy, t).sample`` and ``noise``. The reference is
    :func:`course_lib.training.diffusion_loss` with a generator of the same seed, on a tiny
    ``UNet2DModel`` and three batches (1000- and 100-step schedules, a batch of one); the loss must
    agree to float32 rounding, consume the generator exactly as the reference does, not call
    ``backward`` itself, and give the reference's gradients.
    """
    __tracebackhide__ = True
    import torch
    from diffusers import DDPMScheduler

    from course_lib.training import diffusion_loss

    title = "The fine-tuning loss"
    _need_callable(fn, "fn", "check_training_loss(training_loss)")
    signature = "fn(unet, x0, scheduler, generator) -> loss"
    unet = _tiny_unet(31)
    data_gen = torch.Generator().manual_seed(32)
    plan = [
        ("a batch of 4 images (4, 1, 16, 16), a 1000-step linear schedule", (4, 1, 16, 16),
         DDPMScheduler(num_train_timesteps=1000), 0),
        ("a batch of 2 (2, 1, 16, 16), a 100-step cosine schedule", (2, 1, 16, 16),
         DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2"), 11),
        ("a batch of one (1, 1, 16, 32), a 1000-step schedule", (1, 1, 16, 32),
         DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear"), 5),
    ]
    for k, (case, shape, scheduler, seed) in enumerate(plan):
        x0 = torch.rand(shape, generator=data_gen) * 2 - 1
        n = int(scheduler.config.num_train_timesteps)
        unet.zero_grad(set_to_none=True)
        unet.train()
        given, g = x0.clone(), torch.Generator().manual_seed(seed)
        got = _call_with_hint(
            title, fn, case, unet, given, scheduler, g, signature=signature,
            hint=(f"draw t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator) "
                  f"(this schedule has {n} steps), noise = torch.randn(x0.shape, generator=generator); the UNet "
                  "returns an output object whose prediction is .sample."),
        )
        _check_unchanged(title, case, (x0,), (given,), ("x0",))
        if any(p.grad is not None for p in unet.parameters()):
            raise ExerciseFailed(
                title, f"on case {case}, your function already called backward: the UNet has gradients.",
                "return the loss and let the training loop call loss.backward() (once, with no argument).",
            )
        if not isinstance(got, torch.Tensor):
            hint = "return the loss tensor that F.mse_loss gives you."
            if isinstance(got, (float, int)):
                hint = "return the tensor, not loss.item(): a Python number is cut off from the graph, so no gradient."
            raise ExerciseFailed(title, f"on case {case}, expected a scalar tensor, got {type(got).__name__}.", hint)
        if got.numel() != 1:
            raise ExerciseFailed(title, f"on case {case}, expected one number, got a tensor of shape {tuple(got.shape)}.",
                                 "average over every pixel of every image: F.mse_loss(prediction, noise).")
        ref_g = torch.Generator().manual_seed(seed)
        want = diffusion_loss(unet, x0, scheduler, ref_g)
        if not torch.equal(g.get_state(), ref_g.get_state()):
            fresh = torch.Generator().manual_seed(seed).get_state()
            hint = ("draw exactly two things from generator: t with torch.randint(0, T, (batch,)), then noise with "
                    "torch.randn(x0.shape), both with generator=generator.")
            if torch.equal(g.get_state(), fresh):
                hint = ("your function did not draw from `generator`: pass generator=generator to torch.randint and "
                        "torch.randn. The global RNG (torch.randn_like) makes a resumed run differ from an "
                        "uninterrupted one.")
            raise ExerciseFailed(title, f"on case {case}, the generator was not used as the reference uses it.", hint)
        value, ref = float(got.detach()), float(want.detach())
        if not math.isclose(value, ref, rel_tol=1e-5, abs_tol=1e-7):
            hint = "t, then noise, from generator; noisy = scheduler.add_noise(x0, noise, t); MSE(unet(noisy, t).sample, noise)."
            for wrong, why in _loss_variants(unet, x0, scheduler, seed):
                if math.isclose(value, wrong, rel_tol=1e-5, abs_tol=1e-7):
                    hint = why
                    break
            raise ExerciseFailed(title, f"on case {case}, expected the loss {ref:.6f}, got {value:.6f}.", hint)
        if k == 0:
            if not got.requires_grad:
                raise ExerciseFailed(
                    title, f"on case {case}, your loss carries no gradient (requires_grad is False).",
                    "do not compute it under torch.no_grad(), and do not .detach() the UNet's output.",
                )
            got.backward()
            mine = [None if p.grad is None else p.grad.clone() for p in unet.parameters()]
            unet.zero_grad(set_to_none=True)
            diffusion_loss(unet, x0, scheduler, torch.Generator().manual_seed(seed)).backward()
            for (name, p), grad in zip(unet.named_parameters(), mine):
                if grad is None or not torch.allclose(grad, p.grad, rtol=1e-4, atol=1e-7):
                    raise ExerciseFailed(
                        title, f"on case {case}, the gradient of {name} differs from the reference's.",
                        "return the MSE itself, not a rescaled or partly detached version of it.",
                    )
            unet.zero_grad(set_to_none=True)
    _passed(title, "3 batches, 1000- and 100-step schedules and a batch of one; equals training.diffusion_loss "
                   "and gives its gradients")


class _SimulatedFailure(OSError):
    """The error the save check raises half-way through a write (a full disk, as far as the learner knows)."""


@contextlib.contextmanager
def _patched_save_file(fn: Callable[..., Any], replacement: Callable[..., Any]) -> Iterator[None]:
    """Make ``safetensors.torch.save_file`` be ``replacement``, also where ``fn``'s module imported it by name."""
    import safetensors.torch as st

    real = st.save_file
    namespace = getattr(fn, "__globals__", {})
    names = [k for k, v in list(namespace.items()) if v is real]
    st.save_file = replacement
    for k in names:
        namespace[k] = replacement
    try:
        yield
    finally:
        st.save_file = real
        for k in names:
            namespace[k] = real


def _files(folder: Any) -> set[str]:
    return {p.name for p in folder.iterdir()}


def check_save_atomically(fn: Callable[[dict, Any], Any]) -> None:
    """Check ``fn(tensors, path)``: save a dict of tensors as safetensors without ever leaving a broken file.

    The file must load back equal; ``safetensors.torch.save_file`` must write a temporary file in the
    same folder as ``path``, never ``path`` itself (``os.replace`` then moves it into place, which is
    atomic); no temporary file may be left. Then the check makes ``save_file`` write half a file and
    raise, as a full disk would: the previous file at ``path`` must be there unchanged (or, for a
    first save, no file at all), the half-written temporary file must be gone, and the error must
    reach the caller. ``path`` is given as a ``pathlib.Path`` and as a ``str``.
    """
    __tracebackhide__ = True
    import tempfile
    from pathlib import Path

    import safetensors.torch as st
    import torch

    title = "Saving atomically"
    _need_callable(fn, "fn", "check_save_atomically(save_atomically)")
    signature = "fn(tensors, path) -> None"
    real_save = st.save_file
    gen = torch.Generator().manual_seed(33)
    first = {"weight": torch.randn(4, 3, generator=gen), "bias": torch.zeros(3), "step": torch.tensor(7)}
    second = {"weight": torch.randn(4, 3, generator=gen), "codes": torch.arange(10, dtype=torch.int16)}
    third = {"weight": torch.randn(64, 64, generator=gen)}
    writes: list[Path] = []

    def spy(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
        writes.append(Path(filename))
        return real_save(tensors, filename, *args, **kwargs)

    def failing(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
        writes.append(Path(filename))
        whole = st.save(tensors)
        with open(filename, "wb") as f:
            f.write(whole[: len(whole) // 2])
        raise _SimulatedFailure(28, "No space left on device (simulated by the check, half-way through the write)")

    with tempfile.TemporaryDirectory(prefix="course-check-") as tmp:
        folder = Path(tmp) / "run"
        folder.mkdir()
        bystander = folder / "notes.txt"
        bystander.write_text("another file in the folder: leave it alone")
        path = folder / "weights.safetensors"
        for case, tensors, where in [("a first save (path is a pathlib.Path)", first, path),
                                     ("saving over an existing file (path is a str)", second, str(path))]:
            writes.clear()
            with _patched_save_file(fn, spy):
                _call(title, fn, case, {k: v.clone() for k, v in tensors.items()}, where, signature=signature)
            if not writes:
                raise ExerciseFailed(title, f"on case {case}, safetensors.torch.save_file was not called.",
                                     "write the temporary file with safetensors.torch.save_file(tensors, tmp_path).")
            if any(w.resolve() == path.resolve() for w in writes):
                raise ExerciseFailed(
                    title, f"on case {case}, save_file wrote straight to path.",
                    "a crash half-way through would leave a broken file there: write to a temporary file in the same "
                    "folder, then os.replace(tmp_path, path).",
                )
            elsewhere = [w for w in writes if w.resolve().parent != folder.resolve()]
            if elsewhere:
                raise ExerciseFailed(
                    title, f"on case {case}, the temporary file {elsewhere[0]} is not in path's folder.",
                    "create it next to path (tempfile.mkstemp(dir=folder) or path + '.tmp'): os.replace is only "
                    "atomic within one file system, and /tmp is often another one.",
                )
            if not path.is_file():
                raise ExerciseFailed(title, f"on case {case}, there is no file at path afterwards.",
                                     "after writing the temporary file, move it into place: os.replace(tmp_path, path).")
            try:
                loaded = st.load_file(str(path))
            except Exception as err:
                raise ExerciseFailed(title, f"on case {case}, path does not hold a readable safetensors file ({err}).",
                                     "write it with safetensors.torch.save_file, then os.replace it onto path.") from err
            same = loaded.keys() == tensors.keys() and all(
                loaded[k].dtype == v.dtype and torch.equal(loaded[k], v) for k, v in tensors.items())
            if not same:
                raise ExerciseFailed(title, f"on case {case}, the file at path does not hold the tensors given.",
                                     "save the dict you are given, unchanged.")
            left = sorted(_files(folder) - {path.name, bystander.name})
            if left:
                raise ExerciseFailed(title, f"on case {case}, left behind in the folder: {left}.",
                                     "os.replace moves the temporary file onto path (do not copy it), and nothing "
                                     "else should be created.")

        for case, existed in [("a save over an existing file that fails half-way", True),
                              ("a first save that fails half-way", False)]:
            if not existed:
                path.unlink()
            before = path.read_bytes() if existed else None
            writes.clear()
            raised: BaseException | None = None
            with _patched_save_file(fn, failing):
                try:
                    fn({k: v.clone() for k, v in third.items()}, path)
                except Exception as err:  # noqa: BLE001 - the learner may wrap the save's error in any other
                    raised = err
            if not writes:
                raise ExerciseFailed(title, f"on case {case}, safetensors.torch.save_file was not called.",
                                     "write the temporary file with safetensors.torch.save_file(tensors, tmp_path).")
            if existed and (not path.is_file() or path.read_bytes() != before):
                raise ExerciseFailed(
                    title, f"on case {case}: the previous file at path was " +
                    ("deleted." if not path.is_file() else "replaced by a broken one."),
                    "path may only change through os.replace(tmp_path, path), after the temporary file is complete.",
                )
            if not existed and path.exists():
                raise ExerciseFailed(title, f"on case {case}: a broken file was left at path.",
                                     "only os.replace a temporary file onto path once save_file has returned.")
            left = sorted(_files(folder) - {path.name, bystander.name})
            if left:
                raise ExerciseFailed(
                    title, f"on case {case}, the half-written temporary file is still there: {left}.",
                    "when saving fails, remove it (try: ... except BaseException: os.remove(tmp_path); raise), "
                    "then let the error go on.",
                )
            chain, err = [], raised
            while err is not None and len(chain) < 10:
                chain.append(err)
                err = err.__cause__ or err.__context__
            if raised is None:
                raise ExerciseFailed(
                    title, f"on case {case}, your function returned normally although the save failed.",
                    "after cleaning up, re-raise the error (a bare `raise` in the except block): the caller must know "
                    "that nothing was saved.",
                )
            if not any(isinstance(e, _SimulatedFailure) for e in chain):
                raise ExerciseFailed(
                    title, f"on case {case}, the caller got {type(raised).__name__}: {raised}, not the save's error.",
                    "clean up, then re-raise the original error with a bare `raise`.",
                )
        if bystander.read_text() != "another file in the folder: leave it alone":
            raise ExerciseFailed(title, "another file in path's folder was changed.", "touch only path and your temp file.")
    _passed(title, "a first save and an overwrite load back equal, no temporary file left; a save that fails half-way "
                   "leaves the old file (or none) and no temporary file, and raises")


def _epoch_starts_result(title: str, fn: Callable[..., Any], n_frames: Any, x_res: int, seed: int,
                         epoch: int) -> np.ndarray:
    """The learner's starts for one call, checked for shape, whole numbers and range."""
    __tracebackhide__ = True
    case = f"n_frames={_short(n_frames.numpy(), 8)} ({n_frames.numel()} clips), x_res={x_res}, seed={seed}, epoch={epoch}"
    given = n_frames.clone()
    got = _call_with_hint(
        title, fn, case, given, x_res, seed, epoch, signature="fn(n_frames, x_res, seed, epoch) -> starts",
        hint=("a clip of exactly x_res frames has one start, 0; torch.randint(low, high) needs high > low and its "
              "high is exclusive, so clip i's starts are torch.randint(0, n_frames[i] - x_res + 1, ...)."),
    )
    _check_unchanged(title, case, (n_frames,), (given,), ("n_frames",))
    starts = _to_numpy(title, got, f"your result on case {case}")
    if starts.shape != (n_frames.numel(),):
        raise ExerciseFailed(title, f"on case {case}, expected {n_frames.numel()} starts (one per clip) of shape "
                                    f"({n_frames.numel()},), got shape {starts.shape}.", "return one start per clip.")
    if not np.array_equal(starts, np.round(starts)):
        raise ExerciseFailed(title, f"on case {case}, the starts are not whole numbers: {_short(starts)}.",
                             "starts are frame numbers: draw integers (torch.randint) or convert with .long().")
    last = n_frames.numpy() - x_res
    bad = np.nonzero((starts < 0) | (starts > last))[0]
    if bad.size:
        i = int(bad[0])
        raise ExerciseFailed(
            title, f"on case {case}, clip {i} has {int(n_frames[i])} frames, so its start must be in 0..{int(last[i])}, "
                   f"got {int(starts[i])}.",
            "a slice of x_res frames starting at s ends at s + x_res, so s can be at most n_frames - x_res.",
        )
    return starts.astype(np.int64)


def check_epoch_starts(fn: Callable[[Any, int, int, int], Any]) -> None:
    """Check ``fn(n_frames, x_res, seed, epoch) -> starts``: one random start frame per clip per epoch.

    ``n_frames`` is an int64 tensor of clip lengths in frames (each ≥ ``x_res``). Start ``i`` must lie in
    ``0 .. n_frames[i] - x_res`` (a clip exactly ``x_res`` long -> 0), and come from a generator seeded by
    ``(seed, epoch)``: the same arguments give the same starts whatever the global RNG does, another
    epoch or seed gives other starts, clips get their own draws, and over many epochs every start
    occurs, each about equally often.
    """
    __tracebackhide__ = True
    import torch

    title = "A random slice per clip per epoch"
    _need_callable(fn, "fn", "check_epoch_starts(epoch_starts)")
    gen = torch.Generator().manual_seed(34)
    mixed = torch.tensor([100, 64, 65, 300, 80, 64])
    many = torch.randint(64, 2000, (50,), generator=gen)
    wide = torch.randint(256, 1300, (8,), generator=gen)
    for n_frames, x_res, seed, epoch in [(mixed, 64, 0, 0), (many, 64, 3, 7), (wide, 256, 1, 2),
                                         (torch.tensor([64]), 64, 0, 5)]:
        _epoch_starts_result(title, fn, n_frames, x_res, seed, epoch)

    reference = _epoch_starts_result(title, fn, many, 64, 3, 7)
    with torch.random.fork_rng(devices=[]):
        state = np.random.get_state()
        try:
            torch.manual_seed(12345)
            np.random.seed(12345)
            _epoch_starts_result(title, fn, many, 64, 3, 8)
            global_state = torch.random.get_rng_state()
            again = _epoch_starts_result(title, fn, many, 64, 3, 7)
            touched_global = not torch.equal(global_state, torch.random.get_rng_state())
        finally:
            np.random.set_state(state)
    if not np.array_equal(again, reference):
        raise ExerciseFailed(
            title, "two calls with the same (seed=3, epoch=7) gave different starts.",
            "make a generator from (seed, epoch) inside the function, e.g. torch.Generator().manual_seed(...), and draw "
            "only from it: the global RNG changes between calls, and a resumed run must see the same slices.",
        )
    if touched_global:
        raise ExerciseFailed(
            title, "your function changed torch's global random state.",
            "draw from your own torch.Generator().manual_seed(...): torch.manual_seed would reset the global RNG that "
            "the rest of training (dropout, initialisation) draws from.",
        )
    epochs = [_epoch_starts_result(title, fn, many, 64, 3, e) for e in range(6)]
    if any(np.array_equal(epochs[e], epochs[e + 1]) for e in range(len(epochs) - 1)):
        raise ExerciseFailed(title, "two epochs in a row gave the same starts for 50 clips.",
                             "the epoch must enter the generator's seed, or every epoch shows the same slices.")
    if np.array_equal(_epoch_starts_result(title, fn, many, 64, 4, 7), reference):
        raise ExerciseFailed(title, "seed=3 and seed=4 gave the same starts for epoch 7.",
                             "the seed must enter the generator's seed too.")
    equal = _epoch_starts_result(title, fn, torch.full((20,), 500), 64, 0, 0)
    if np.all(equal == equal[0]):
        raise ExerciseFailed(title, "20 clips of the same length all got the same start.",
                             "draw one start per clip, not one for the whole epoch.")

    short = torch.tensor([68, 65, 64])
    n_epochs = 1000
    seen = np.stack([_epoch_starts_result(title, fn, short, 64, 0, e) for e in range(n_epochs)])
    for i, frames in enumerate(short.tolist()):
        counts = np.bincount(seen[:, i], minlength=frames - 64 + 1)
        expected = n_epochs / counts.size
        never = [s for s, c in enumerate(counts) if c == 0]
        if never:
            hint = "every start from 0 to n_frames - x_res must be possible."
            if never == [counts.size - 1]:
                hint = ("the last start, n_frames - x_res, never occurs: torch.randint's high is exclusive (use "
                        "n_frames - x_res + 1), and int(rand * (n_frames - x_res)) never reaches it either.")
            raise ExerciseFailed(title, f"over {n_epochs} epochs, a clip of {frames} frames (x_res=64) never started "
                                        f"at frame(s) {never}.", hint)
        if counts.min() < 0.75 * expected:
            raise ExerciseFailed(
                title, f"over {n_epochs} epochs, a clip of {frames} frames started at 0..{counts.size - 1} this often: "
                       f"{counts.tolist()}; each should be about {expected:.0f}.",
                "every start should be equally likely: torch.randint(0, n - x_res + 1), or floor(rand * (n - x_res + "
                "1)); rounding makes the two ends half as likely.",
            )
    _passed(title, f"4 cases in range (a clip exactly x_res long starts at 0); repeatable; epochs and seeds differ; "
                   f"every start occurs over {n_epochs} epochs")


# Lesson 05's checks live in their own module (imported last: it uses the helpers above).
from course_lib.checks.lesson05 import (  # noqa: E402
    check_denoise,
    check_sampler_step,
    check_to_24bit,
    check_v_target,
)

__all__ += ["check_v_target", "check_denoise", "check_sampler_step", "check_to_24bit"]

# Lesson 06's checks, likewise.
from course_lib.checks.lesson06 import (  # noqa: E402
    check_interpolate,
    check_kl_per_clip,
    check_reparameterise,
    check_vae_objective,
)

__all__ += ["check_reparameterise", "check_kl_per_clip", "check_vae_objective", "check_interpolate"]
