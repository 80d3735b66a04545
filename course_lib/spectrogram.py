"""Batched spectrograms in torch and their inverses: STFT, mel filters, dB, Griffin-Lim.

Everything here takes NumPy arrays or torch tensors shaped ``(T,)`` or ``(..., T)`` and returns
float32 (or complex64) torch tensors on the input's device, so a whole batch of clips goes
through one call. The conventions follow librosa (periodic Hann window, zero padding of
``n_fft // 2`` on each side when ``center=True``, Slaney mel scale and area-normalised filters)
so numbers can be checked against it, but the code is written from the maths.

The layout inside the fast paths is ``(batch, frames, freq)``: that is the order the FFT
produces, so no transposes are needed between iterations of Griffin-Lim.

``Mel`` (audio <-> spectrogram images, built on these tools) lives in :mod:`course_lib.mel`.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.validate import (
    CourseInputError,
    as_float_tensor,
    check_choice,
    check_number,
    check_positive_int,
    check_sample_rate,
)

__all__ = [
    "stft",
    "istft",
    "magnitude",
    "power",
    "power_to_db",
    "amplitude_to_db",
    "db_to_power",
    "db_to_amplitude",
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "mel_spectrogram",
    "mel_to_linear",
    "griffin_lim",
    "hifigan_log_mel",
]


# ----------------------------------------------------------------------------- small helpers


_check_number = check_number  # shared with the rest of course_lib


def _check_win_length(win_length: Any, n_fft: int) -> int:
    if win_length is None:
        return n_fft
    win = check_positive_int(win_length, "win_length")
    if win > n_fft:
        raise CourseInputError(f"win_length: {win} is longer than n_fft={n_fft}; use win_length ≤ n_fft.")
    return win


def _check_hop(hop_length: Any, win_length: int) -> int:
    hop = check_positive_int(hop_length, "hop_length")
    if hop > win_length:
        raise CourseInputError(
            f"hop_length: {hop} is longer than the window ({win_length} samples), so some samples would "
            "never be analysed and the STFT could not be inverted; use hop_length ≤ win_length "
            "(a quarter of it is usual)."
        )
    return hop


@functools.lru_cache(maxsize=64)
def _window_cached(win_length: int, n_fft: int, device: str) -> torch.Tensor:
    # Periodic Hann: w[n] = 0.5 - 0.5 cos(2 pi n / N), n = 0..N-1; centred inside n_fft.
    n = torch.arange(win_length, dtype=torch.float64)
    w = 0.5 - 0.5 * torch.cos(2.0 * math.pi * n / win_length)
    left = (n_fft - win_length) // 2
    w = F.pad(w, (left, n_fft - win_length - left))
    return w.to(torch.float32).to(device)


def _window(win_length: int, n_fft: int, device: torch.device) -> torch.Tensor:
    return _window_cached(win_length, n_fft, str(device))


def _batched(x: torch.Tensor, core: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Reshape ``(..., *core_dims)`` to ``(B, *core_dims)``; return it and the leading shape."""
    lead = tuple(x.shape[: x.ndim - core])
    return x.reshape((-1,) + tuple(x.shape[x.ndim - core:])), lead


def _frame_spectrum(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, center: bool,
                    pad_mode: str = "constant") -> torch.Tensor:
    """STFT of ``x`` (B, L) in ``(B, frames, freq)`` layout: pad, cut frames, window, rfft."""
    if center:
        pad = n_fft // 2
        if pad_mode == "constant":
            x = F.pad(x, (pad, pad))
        else:
            x = F.pad(x.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    frames = x.unfold(-1, n_fft, hop) * window
    return torch.fft.rfft(frames, n=n_fft, dim=-1)


def _overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Sum frames (B, T, N) placed every ``hop`` samples into a signal (B, N + hop*(T-1))."""
    b, t, n = frames.shape
    if n % hop == 0:
        r = n // hop
        out = frames.new_zeros((b, t + r - 1, hop))
        parts = frames.reshape(b, t, r, hop)
        for k in range(r):
            out[:, k:k + t] += parts[:, :, k]
        return out.reshape(b, -1)
    length = n + hop * (t - 1)
    out = F.fold(frames.transpose(1, 2), output_size=(1, length), kernel_size=(1, n), stride=(1, hop))
    return out.reshape(b, length)


@functools.lru_cache(maxsize=64)
def _synthesis_gain_cached(n_fft: int, hop: int, win_length: int, n_frames: int, keep: tuple[int, int] | None,
                           device: str) -> torch.Tensor:
    """1 / (sum of squared windows) on the padded time axis, 0 where it vanishes.

    With ``keep=(start, stop)`` it is also 0 outside that range: Griffin-Lim uses this to keep
    its signal at the output's length, with the zero padding that ``stft`` adds around it.
    """
    w = _window_cached(win_length, n_fft, "cpu").to(torch.float64)
    env = _overlap_add((w * w).expand(1, n_frames, n_fft).contiguous(), hop)[0]
    gain = torch.where(env > 1e-10, 1.0 / env.clamp_min(1e-10), torch.zeros_like(env))
    if keep is not None:
        gain[: keep[0]] = 0.0
        gain[keep[1]:] = 0.0
    return gain.to(torch.float32).to(device)


def _synthesise(spec_tf: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, gain: torch.Tensor
                ) -> torch.Tensor:
    """Least-squares inverse STFT of (B, T, F) onto the padded time axis (B, N + hop*(T-1))."""
    frames = torch.fft.irfft(spec_tf, n=n_fft, dim=-1)
    frames *= window
    signal = _overlap_add(frames, hop)
    signal *= gain
    return signal


def _trim(signal: torch.Tensor, n_fft: int, hop: int, n_frames: int, center: bool,
          length: int | None) -> torch.Tensor:
    """Cut the padded-axis signal to the output length (zero-padding at the end if needed)."""
    start = n_fft // 2 if center else 0
    natural = hop * (n_frames - 1) if center else signal.shape[-1]
    want = natural if length is None else length
    out = signal[:, start:start + want]
    if out.shape[-1] < want:
        out = F.pad(out, (0, want - out.shape[-1]))
    return out


def _check_length(length: Any) -> int | None:
    return None if length is None else check_positive_int(length, "length")


# ----------------------------------------------------------------------------- STFT


def stft(audio: Any, n_fft: int = 2048, hop_length: int = 512, win_length: int | None = None,
         center: bool = True, pad_mode: str = "constant") -> torch.Tensor:
    """Short-time Fourier transform of ``audio`` (T,) or (..., T) -> complex (..., n_fft//2+1, frames).

    A periodic Hann window of ``win_length`` (default ``n_fft``) samples; with ``center=True``
    the signal is padded by ``n_fft // 2`` on each side (zeros by default, as librosa ≥ 0.10
    does), so frame ``t`` is centred on sample ``t * hop_length``. No normalisation: a full-scale
    sine of amplitude 1 peaks near ``win_length / 4``.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    n_fft = check_positive_int(n_fft, "n_fft", minimum=2)
    win = _check_win_length(win_length, n_fft)
    hop = _check_hop(hop_length, win)
    check_choice(pad_mode, "pad_mode", ("constant", "reflect"))
    x = as_float_tensor(audio, "audio")
    n = x.shape[-1]
    if not center and n < n_fft:
        raise CourseInputError(
            f"audio: {n} samples is shorter than one frame (n_fft={n_fft}) with center=False; "
            "use center=True, a smaller n_fft, or pad the audio."
        )
    if center and pad_mode == "reflect" and n <= n_fft // 2:
        raise CourseInputError(
            f"audio: {n} samples is too short for pad_mode='reflect' (needs more than n_fft//2 = {n_fft // 2}); "
            "use pad_mode='constant' or a smaller n_fft."
        )
    flat, lead = _batched(x, 1)
    spec = _frame_spectrum(flat, n_fft, hop, _window(win, n_fft, x.device), center, pad_mode)
    return spec.transpose(1, 2).reshape(lead + spec.shape[-1:] + spec.shape[-2:-1])


def _as_spectrum(spec: Any, name: str = "spec", min_ndim: int = 2) -> torch.Tensor:
    if isinstance(spec, torch.Tensor) and spec.is_complex():
        tensor = spec
    elif isinstance(spec, np.ndarray) and np.iscomplexobj(spec):
        tensor = torch.from_numpy(np.ascontiguousarray(spec))
    else:
        raise CourseInputError(
            f"{name}: istft needs a complex STFT (as returned by stft); got "
            f"{type(spec).__name__}{' of dtype ' + str(spec.dtype) if hasattr(spec, 'dtype') else ''}. "
            "For a magnitude without phase use griffin_lim."
        )
    tensor = as_float_tensor(tensor, name, min_ndim=min_ndim, allow_complex=True)
    if tensor.dtype != torch.complex64:
        tensor = tensor.to(torch.complex64)
    return tensor


def _infer_n_fft(n_freq: int, n_fft: Any, name: str) -> int:
    if n_fft is None:
        return 2 * (n_freq - 1)
    n_fft = check_positive_int(n_fft, "n_fft", minimum=2)
    if n_fft // 2 + 1 != n_freq:
        raise CourseInputError(
            f"{name}: has {n_freq} frequency rows but n_fft={n_fft} needs {n_fft // 2 + 1}; "
            f"pass the n_fft the spectrogram was made with (e.g. n_fft={2 * (n_freq - 1)})."
        )
    return n_fft


def istft(spec: Any, n_fft: int | None = None, hop_length: int = 512, win_length: int | None = None,
          center: bool = True, length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft`: complex (..., n_fft//2+1, frames) -> audio (..., length).

    Overlap-add of windowed inverse FFTs divided by the summed squared window (the
    least-squares inverse), so ``istft(stft(x), length=len(x))`` gives ``x`` back.
    ``n_fft`` defaults to ``2 * (freq_rows - 1)``; ``length`` defaults to ``hop * (frames - 1)``
    with ``center=True``.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    z = _as_spectrum(spec)
    n_fft = _infer_n_fft(z.shape[-2], n_fft, "spec")
    win = _check_win_length(win_length, n_fft)
    hop = _check_hop(hop_length, win)
    length = _check_length(length)
    flat, lead = _batched(z, 2)
    n_frames = flat.shape[-1]
    gain = _synthesis_gain_cached(n_fft, hop, win, n_frames, None, str(z.device))
    signal = _synthesise(flat.transpose(1, 2), n_fft, hop, _window(win, n_fft, z.device), gain)
    out = _trim(signal, n_fft, hop, n_frames, bool(center), length)
    return out.reshape(lead + out.shape[-1:])


def _is_complex(x: Any) -> bool:
    return (isinstance(x, torch.Tensor) and x.is_complex()) or (isinstance(x, np.ndarray) and np.iscomplexobj(x))


def magnitude(spec: Any) -> torch.Tensor:
    """|STFT|: the magnitude of a complex spectrogram (a real input is taken as is, in absolute value).

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    if _is_complex(spec):
        return _as_spectrum(spec, min_ndim=1).abs()
    return as_float_tensor(spec, "spec").abs()


def power(spec: Any) -> torch.Tensor:
    """|STFT|²: the power of a complex spectrogram (re² + im², without a square root).

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    if _is_complex(spec):
        z = _as_spectrum(spec, min_ndim=1)
        return torch.view_as_real(z).square().sum(-1)
    return as_float_tensor(spec, "spec").square()


# ----------------------------------------------------------------------------- decibels


def _is_max_ref(ref: Any) -> bool:
    return (isinstance(ref, str) and ref == "max") or ref in (np.max, np.amax, torch.max, torch.amax)


def _check_ref(ref: Any) -> float | None:
    """None for a per-item maximum reference, else the positive reference value."""
    if _is_max_ref(ref):
        return None
    if isinstance(ref, str) or callable(ref):
        raise CourseInputError(f"ref: {ref!r} is not supported; use a positive number (e.g. 1.0) or 'max'.")
    return _check_number(ref, "ref", low=0.0, low_open=True)


def _item_max(x: torch.Tensor) -> torch.Tensor:
    """The maximum of each item: over the last two axes (one spectrogram), or the whole of a 1-D input."""
    dims = (-2, -1) if x.ndim >= 2 else (-1,)
    return x.amax(dim=dims, keepdim=True)


def _to_db(values: torch.Tensor, ref: Any, amin: float, top_db: float | None, factor: float) -> torch.Tensor:
    ref_value = _check_ref(ref)
    log_spec = factor * torch.log10(values.clamp_min(amin))
    if ref_value is None:
        log_spec = log_spec - factor * torch.log10(_item_max(values).clamp_min(amin))
    else:
        log_spec = log_spec - factor * math.log10(max(amin, ref_value))
    if top_db is not None:
        log_spec = torch.maximum(log_spec, _item_max(log_spec) - top_db)
    return log_spec


def power_to_db(S: Any, ref: float | str = 1.0, amin: float = 1e-10, top_db: float | None = 80.0) -> torch.Tensor:
    """Power spectrogram -> decibels: ``10 log10(max(S, amin) / ref)``, floored at ``max - top_db``.

    ``ref="max"`` uses the loudest value of each spectrogram (the last two axes of a batch), so
    every item of a batch peaks at 0 dB; the ``top_db`` floor is also taken per item.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    x = as_float_tensor(S, "S")
    amin = _check_number(amin, "amin", low=0.0, low_open=True)
    if top_db is not None:
        top_db = _check_number(top_db, "top_db", low=0.0, low_open=True)
    if bool((x < 0).any()):
        raise CourseInputError(
            "S: has negative values, so it is not a power spectrogram; pass power(stft(audio)) "
            "(or use amplitude_to_db for magnitudes)."
        )
    return _to_db(x, ref, amin, top_db, 10.0)


def amplitude_to_db(S: Any, ref: float | str = 1.0, amin: float = 1e-5, top_db: float | None = 80.0) -> torch.Tensor:
    """Magnitude spectrogram -> decibels: ``20 log10(max(|S|, amin) / ref)``, floored at ``max - top_db``.

    A complex input is turned into its magnitude first. ``ref="max"`` and the floor work per item,
    as in :func:`power_to_db`.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    if _is_complex(S):
        x = _as_spectrum(S, "S", min_ndim=1).abs()
    else:
        x = as_float_tensor(S, "S").abs()
    amin = _check_number(amin, "amin", low=0.0, low_open=True)
    if top_db is not None:
        top_db = _check_number(top_db, "top_db", low=0.0, low_open=True)
    return _to_db(x, ref, amin, top_db, 20.0)


def db_to_power(S_db: Any, ref: float = 1.0) -> torch.Tensor:
    """Decibels -> power: ``ref * 10**(S_db / 10)`` (the inverse of :func:`power_to_db` without its floor)."""
    x = as_float_tensor(S_db, "S_db")
    ref = _check_number(ref, "ref", low=0.0, low_open=True)
    return ref * torch.pow(10.0, 0.1 * x)


def db_to_amplitude(S_db: Any, ref: float = 1.0) -> torch.Tensor:
    """Decibels -> amplitude: ``ref * 10**(S_db / 20)`` (the inverse of :func:`amplitude_to_db`)."""
    x = as_float_tensor(S_db, "S_db")
    ref = _check_number(ref, "ref", low=0.0, low_open=True)
    return ref * torch.pow(10.0, 0.05 * x)


# ----------------------------------------------------------------------------- mel scale

# Slaney's mel scale (Auditory Toolbox): linear below 1 kHz (3 mels per 200 Hz), logarithmic
# above, with 27 mels per factor of 6.4 in frequency.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def _freqs_in(values: Any, name: str) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """Frequencies as float64 NumPy plus a function that returns a result in the input's type."""
    back: Callable[[np.ndarray], Any]
    if isinstance(values, bool) or isinstance(values, str):
        raise CourseInputError(f"{name}: expected a number or an array of numbers, got {values!r}.")
    if isinstance(values, (int, float, np.integer, np.floating)):
        arr = np.asarray(float(values))
        back = lambda a: float(a)
    elif isinstance(values, torch.Tensor):
        if values.is_complex() or values.dtype == torch.bool:
            raise CourseInputError(f"{name}: expected real numbers, got a tensor of dtype {values.dtype}.")
        arr = values.detach().cpu().to(torch.float64).numpy()
        device = values.device
        back = lambda a: torch.from_numpy(np.asarray(a)).to(torch.float32).to(device)
    else:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise CourseInputError(f"{name}: expected a number or an array of numbers, got {type(values).__name__}.") from None
        back = lambda a: np.asarray(a)
    if arr.size == 0:
        raise CourseInputError(f"{name}: is empty.")
    if not np.all(np.isfinite(arr)):
        raise CourseInputError(f"{name}: contains NaN or infinite values.")
    if np.any(arr < 0):
        raise CourseInputError(f"{name}: frequencies must be ≥ 0, got a minimum of {arr.min()}.")
    return arr, back


def hz_to_mel(frequencies: Any, htk: bool = False) -> Any:
    """Hz -> mel, on Slaney's scale (default, as librosa) or HTK's ``2595 log10(1 + f/700)``.

    Returns a float for a number, an array for an array and a tensor for a tensor.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    f, back = _freqs_in(frequencies, "frequencies")
    if htk:
        return back(2595.0 * np.log10(1.0 + f / 700.0))
    linear = f / _SLANEY_HZ_PER_MEL
    with np.errstate(divide="ignore"):
        logpart = _SLANEY_BREAK_MEL + np.log(np.maximum(f, 1e-300) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return back(np.where(f >= _SLANEY_BREAK_HZ, logpart, linear))


def mel_to_hz(mels: Any, htk: bool = False) -> Any:
    """Mel -> Hz, the inverse of :func:`hz_to_mel` (same ``htk`` switch, same return types)."""
    m, back = _freqs_in(mels, "mels")
    if htk:
        return back(700.0 * (10.0 ** (m / 2595.0) - 1.0))
    linear = m * _SLANEY_HZ_PER_MEL
    logpart = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (m - _SLANEY_BREAK_MEL))
    return back(np.where(m >= _SLANEY_BREAK_MEL, logpart, linear))


def _check_mel_args(sample_rate: Any, n_fft: Any, n_mels: Any, f_min: Any, f_max: Any, norm: Any,
                    htk: Any) -> tuple:
    sr = check_sample_rate(sample_rate)
    n_fft = check_positive_int(n_fft, "n_fft", minimum=2)
    n_mels = check_positive_int(n_mels, "n_mels")
    nyquist = sr / 2.0
    f_min = _check_number(f_min, "f_min", low=0.0)
    f_max = nyquist if f_max is None else _check_number(f_max, "f_max", low=0.0, low_open=True)
    if f_max > nyquist:
        raise CourseInputError(f"f_max: {f_max} Hz is above the Nyquist frequency {nyquist} Hz of sample_rate={sr}.")
    if f_min >= f_max:
        raise CourseInputError(f"f_min: {f_min} Hz must be below f_max = {f_max} Hz.")
    if norm is not None and norm != "slaney":
        if isinstance(norm, str) or isinstance(norm, bool) or not isinstance(norm, (int, float)) or not norm > 0:
            raise CourseInputError(f"norm: {norm!r} is not supported; use 'slaney', None, or a p-norm order > 0 (e.g. 1).")
        norm = float(norm)
    if not isinstance(htk, (bool, np.bool_)):
        raise CourseInputError(f"htk: expected True or False, got {htk!r}.")
    return sr, n_fft, n_mels, f_min, f_max, norm, bool(htk)


@functools.lru_cache(maxsize=32)
def _mel_filterbank_np(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float, norm: Any,
                       htk: bool) -> np.ndarray:
    """Triangular mel filters in float64, shape (n_mels, n_fft//2+1)."""
    bin_hz = np.arange(n_fft // 2 + 1, dtype=np.float64) * sr / n_fft
    mel_edges = np.linspace(hz_to_mel(f_min, htk=htk), hz_to_mel(f_max, htk=htk), n_mels + 2)
    edges = np.asarray(mel_to_hz(mel_edges, htk=htk), dtype=np.float64)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bin_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bin_hz[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        # Each triangle has height 2 / width, so all filters have unit area in Hz:
        # a flat spectrum gives the same energy in every band.
        weights *= (2.0 / (upper - lower))
    elif norm is not None:
        if math.isinf(norm):
            sizes = np.abs(weights).max(axis=1, keepdims=True)
        else:
            sizes = (np.abs(weights) ** norm).sum(axis=1, keepdims=True) ** (1.0 / norm)
        weights = np.divide(weights, sizes, out=np.zeros_like(weights), where=sizes > 0)
    empty = np.flatnonzero(weights.max(axis=1) <= 0)
    if empty.size:
        warnings.warn(
            f"mel_filterbank: {empty.size} of {n_mels} mel filters are empty (no FFT bin falls inside them, "
            f"e.g. filter {int(empty[0])}); use fewer mels or a larger n_fft.",
            stacklevel=3,
        )
    weights.setflags(write=False)
    return weights


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = 128, f_min: float = 0.0, f_max: float | None = None,
                   norm: str | float | None = "slaney", htk: bool = False,
                   device: str | torch.device | None = None) -> torch.Tensor:
    """The (n_mels, n_fft//2+1) matrix of triangular mel filters (equal to librosa.filters.mel).

    Band edges are ``n_mels + 2`` points evenly spaced in mel between ``f_min`` and ``f_max``
    (default Nyquist); filter ``i`` rises from edge ``i`` to edge ``i+1`` and falls to edge
    ``i+2``. ``norm="slaney"`` scales each triangle to unit area (height 2 / width in Hz);
    ``None`` leaves peaks at 1; a number p scales each row to unit p-norm.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    args = _check_mel_args(sample_rate, n_fft, n_mels, f_min, f_max, norm, htk)
    return _mel_ops(*args, torch.device(device) if device is not None else torch.device("cpu")).fb.clone()


class _MelOps:
    """A mel filterbank on one device, with fast products in the ``(..., frames, freq)`` layout.

    Each triangular filter touches a short run of FFT bins, so the matrix is split into blocks
    of consecutive bands and only the bins each block touches are multiplied: about 5x less
    work than the dense product at 256 mels, with the same result to float32 rounding.
    """

    def __init__(self, fb: np.ndarray, device: torch.device) -> None:
        n_mels, n_freq = fb.shape
        self.n_mels, self.n_freq = n_mels, n_freq
        self.fb = torch.from_numpy(np.ascontiguousarray(fb, dtype=np.float32)).to(device)
        nonzero = fb > 0
        first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), n_freq)
        last = np.where(nonzero.any(axis=1), n_freq - 1 - nonzero[:, ::-1].argmax(axis=1), -1)
        size = max(8, min(32, n_mels // 8))
        self.blocks: list[tuple[int, int, int, int, torch.Tensor, torch.Tensor]] = []
        for m0 in range(0, n_mels, size):
            m1 = min(n_mels, m0 + size)
            f0, f1 = int(first[m0:m1].min()), int(last[m0:m1].max()) + 1
            if f1 <= f0:  # only empty filters here: their rows stay zero
                continue
            block = np.ascontiguousarray(fb[m0:m1, f0:f1], dtype=np.float32)
            self.blocks.append((m0, m1, f0, f1, torch.from_numpy(block).to(device),
                                torch.from_numpy(np.ascontiguousarray(block.T)).to(device)))
        self.covers_all = [(b[0], b[1]) for b in self.blocks] == [
            (m0, min(n_mels, m0 + size)) for m0 in range(0, n_mels, size)]
        # pinv(M) = Mᵀ pinv(M Mᵀ): a small dense (n_mels, n_mels) matrix, then a banded product.
        self.gram_pinv = torch.from_numpy(np.linalg.pinv(fb @ fb.T).astype(np.float32)).to(device)

    def to_mel(self, x: torch.Tensor) -> torch.Tensor:
        """(..., n_freq) -> (..., n_mels): ``x @ fb.T``."""
        if self.covers_all:
            return torch.cat([torch.matmul(x[..., f0:f1], block_t) for _, _, f0, f1, _, block_t in self.blocks], dim=-1)
        out = x.new_zeros(x.shape[:-1] + (self.n_mels,))
        for m0, m1, f0, f1, _, block_t in self.blocks:
            out[..., m0:m1] = torch.matmul(x[..., f0:f1], block_t)
        return out

    def to_linear(self, y: torch.Tensor) -> torch.Tensor:
        """(..., n_mels) -> (..., n_freq): ``y @ fb`` (the transpose of :meth:`to_mel`)."""
        out = y.new_zeros(y.shape[:-1] + (self.n_freq,))
        for m0, m1, f0, f1, block, _ in self.blocks:
            out[..., f0:f1] += torch.matmul(y[..., m0:m1], block)
        return out

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """(..., n_mels) -> (..., n_freq): the minimum-norm least-squares solution of ``fb x = y``."""
        return self.to_linear(torch.matmul(y, self.gram_pinv))


_OPS_CACHE: dict[tuple, _MelOps] = {}


def _mel_ops(sr: int, n_fft: int, n_mels: int, f_min: float, f_max: float, norm: Any, htk: bool,
             device: torch.device) -> _MelOps:
    """The cached :class:`_MelOps` for these filterbank settings on ``device``."""
    key = (sr, n_fft, n_mels, f_min, f_max, norm, htk, str(device))
    ops = _OPS_CACHE.get(key)
    if ops is None:
        if len(_OPS_CACHE) >= 32:
            _OPS_CACHE.clear()
        ops = _OPS_CACHE[key] = _MelOps(_mel_filterbank_np(sr, n_fft, n_mels, f_min, f_max, norm, htk), device)
    return ops


def _power_tf(spec: torch.Tensor, exponent: float) -> torch.Tensor:
    """|X|**exponent of a complex tensor: re² + im² (no square root when exponent is 2)."""
    parts = torch.view_as_real(spec)
    real, imag = parts[..., 0], parts[..., 1]
    p = torch.addcmul(real * real, imag, imag)
    if exponent == 2.0:
        return p
    if exponent == 1.0:
        return p.sqrt_()
    return p.pow_(exponent / 2.0)


def mel_spectrogram(audio: Any, sample_rate: int = 22050, n_fft: int = 2048, hop_length: int = 512,
                    n_mels: int = 128, power: float = 2.0, f_min: float = 0.0, f_max: float | None = None,
                    center: bool = True, win_length: int | None = None, pad_mode: str = "constant",
                    norm: str | float | None = "slaney", htk: bool = False) -> torch.Tensor:
    """Mel spectrogram of ``audio`` (T,) or (..., T) -> (..., n_mels, frames).

    ``|stft|**power`` (power 2: energy, 1: magnitude) summed through :func:`mel_filterbank`;
    equal to ``librosa.feature.melspectrogram`` with the same arguments.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    exponent = _check_number(power, "power", low=0.0, low_open=True)
    args = _check_mel_args(sample_rate, n_fft, n_mels, f_min, f_max, norm, htk)
    spec = stft(audio, n_fft=n_fft, hop_length=hop_length, win_length=win_length, center=center, pad_mode=pad_mode)
    flat, lead = _batched(spec, 2)
    p = _power_tf(flat.transpose(1, 2), exponent)  # (B, T, F)
    mel = _mel_ops(*args, p.device).to_mel(p)  # (B, T, n_mels)
    return mel.transpose(1, 2).reshape(lead + (args[2], flat.shape[-1]))


# ----------------------------------------------------------------------------- inversions


def _mel_to_linear_tf(mel_tf: torch.Tensor, ops: _MelOps, method: str, n_iter: int,
                      divergence: str = "kl") -> torch.Tensor:
    """(B, T, n_mels) -> (B, T, F) non-negative solution of ``fb @ x = mel`` for every frame."""
    x = ops.pseudo_inverse(mel_tf).clamp_min_(0.0)
    if method == "lstsq" or n_iter == 0:
        return x
    # Lee & Seung (2001) multiplicative updates keep x ≥ 0 without any step size. A zero never
    # moves under them, so start from the clamped pseudo-inverse plus a floor of 1% of each
    # frame's peak; bins that no filter sees (fbᵀ 1 = 0) are set to 0.
    coverage = ops.to_linear(torch.ones_like(mel_tf[..., :1, :]))  # fbᵀ 1, shape (1, 1, F) per batch
    x.add_(1e-2 * x.amax(dim=-1, keepdim=True) + 1e-30)
    x.mul_(coverage > 0)
    if divergence == "kl":
        # Generalised Kullback-Leibler divergence D(y || fb x):
        #     x <- x * fbᵀ(y / fb x) / fbᵀ 1.
        # It weighs relative errors, so quiet bands count as much as loud ones: in practice far
        # fewer updates reach a given spectral convergence than with the Euclidean loss.
        inv_coverage = torch.where(coverage > 0, 1.0 / coverage.clamp_min(1e-30), torch.zeros_like(coverage))
        for _ in range(n_iter):
            ratio = mel_tf / ops.to_mel(x).clamp_min_(1e-30)
            x.mul_(ops.to_linear(ratio)).mul_(inv_coverage)
    else:
        # Euclidean loss ||y - fb x||²:  x <- x * (fbᵀ y) / (fbᵀ fb x).
        numerator = ops.to_linear(mel_tf)
        for _ in range(n_iter):
            denominator = ops.to_linear(ops.to_mel(x)).clamp_min_(1e-30)
            x.mul_(numerator).div_(denominator)
    return x


def mel_to_linear(mel: Any, sample_rate: int = 22050, n_fft: int = 2048, method: str = "nnls", n_iter: int = 30,
                  f_min: float = 0.0, f_max: float | None = None, norm: str | float | None = "slaney",
                  htk: bool = False, divergence: str = "kl") -> torch.Tensor:
    """Invert a mel spectrogram (..., n_mels, frames) to a linear one (..., n_fft//2+1, frames).

    Many linear spectra give the same mel spectrum, so this picks a non-negative one that
    reproduces it: ``"lstsq"`` takes the pseudo-inverse and clamps it at 0 (fast, smeared);
    ``"nnls"`` then runs ``n_iter`` multiplicative updates (Lee & Seung) that keep the
    solution non-negative and concentrate energy in fewer bins, as real (harmonic) spectra do.
    ``divergence="kl"`` (default) fits the mel bands in relative terms, ``"euclidean"`` is the
    plain least-squares fit (it needs many more updates for the same quality). The result is
    in the input's units: a power mel gives a power spectrogram.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    y = as_float_tensor(mel, "mel", min_ndim=2)
    check_choice(method, "method", ("nnls", "lstsq"))
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    check_choice(divergence, "divergence", ("kl", "euclidean"))
    args = _check_mel_args(sample_rate, n_fft, y.shape[-2], f_min, f_max, norm, htk)
    if bool((y < 0).any()):
        raise CourseInputError("mel: has negative values; a mel spectrogram is non-negative (undo any dB scaling "
                               "first with db_to_power).")
    flat, lead = _batched(y, 2)
    x = _mel_to_linear_tf(flat.transpose(1, 2), _mel_ops(*args, y.device), method, n_iter, divergence)
    return x.transpose(1, 2).reshape(lead + (args[1] // 2 + 1, flat.shape[-1]))


def _griffin_lim_tf(mag_tf: torch.Tensor, n_fft: int, hop: int, win: int, n_iter: int, momentum: float,
                    center: bool, length: int | None, init: Any, generator: torch.Generator | None) -> torch.Tensor:
    """Fast Griffin-Lim on (B, T, F) magnitudes; returns audio (B, length)."""
    n_frames = mag_tf.shape[1]
    device = mag_tf.device
    window = _window(win, n_fft, device)
    start = n_fft // 2 if center else 0
    padded_length = n_fft + hop * (n_frames - 1)
    natural = hop * (n_frames - 1) if center else padded_length
    keep = (start, min(padded_length, start + (natural if length is None else length)))
    gain = _synthesis_gain_cached(n_fft, hop, win, n_frames, keep, str(device))
    if isinstance(init, torch.Tensor):
        spec = torch.sgn(init).mul_(mag_tf)
    elif init == "random":
        u = torch.rand(mag_tf.shape, generator=generator, device=device, dtype=torch.float32)
        spec = torch.polar(mag_tf, (2.0 * math.pi) * u)
    else:  # zeros
        spec = mag_tf.to(torch.complex64)
    # Perraudin et al. (2013): extrapolate from the last two projections,
    # c_n = t_n + momentum * (t_n - t_{n-1}), and keep only the phase of c_n. Since only the
    # phase is used, c_n / (1 + momentum) = t_n - momentum / (1 + momentum) * t_{n-1} will do.
    step = -momentum / (1.0 + momentum)
    previous: torch.Tensor | None = None
    for _ in range(n_iter):
        signal = _synthesise(spec, n_fft, hop, window, gain)
        rebuilt = torch.fft.rfft(signal.unfold(-1, n_fft, hop) * window, n=n_fft, dim=-1)
        accelerated = rebuilt if previous is None else torch.add(rebuilt, previous, alpha=step)
        previous = rebuilt
        spec = torch.sgn(accelerated).mul_(mag_tf)  # sgn(z) = z / |z| (0 at 0): the phase
    signal = _synthesise(spec, n_fft, hop, window, gain)
    return _trim(signal, n_fft, hop, n_frames, center, length)


def griffin_lim(magnitude: Any, n_fft: int | None = None, hop_length: int = 512, n_iter: int = 32,
                momentum: float = 0.99, length: int | None = None, generator: torch.Generator | None = None,
                init: str | torch.Tensor = "random", win_length: int | None = None,
                center: bool = True) -> torch.Tensor:
    """Audio whose STFT magnitude is close to ``magnitude`` (..., n_fft//2+1, frames), batched.

    Fast Griffin-Lim (Perraudin, Balazs & Søndergaard, 2013): alternate between imposing the
    magnitude and making the spectrogram consistent (istft then stft), extrapolating the phase
    with ``momentum`` (0 gives the classic Griffin-Lim). ``init="random"`` draws the starting
    phase from ``generator`` (same generator state, same audio), ``"zeros"`` starts from zero
    phase, and a complex tensor starts from its phase.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    mag = as_float_tensor(magnitude, "magnitude", min_ndim=2)
    if bool((mag < 0).any()):
        raise CourseInputError("magnitude: has negative values; pass |STFT| (e.g. magnitude(stft(x))), not dB.")
    n_fft = _infer_n_fft(mag.shape[-2], n_fft, "magnitude")
    win = _check_win_length(win_length, n_fft)
    hop = _check_hop(hop_length, win)
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    momentum = _check_number(momentum, "momentum", low=0.0, high=1.0)
    length = _check_length(length)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise CourseInputError(f"generator: expected a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
                               f"got {type(generator).__name__}.")
    flat, lead = _batched(mag, 2)
    if isinstance(init, torch.Tensor):
        if not init.is_complex() or init.shape != mag.shape:
            raise CourseInputError(
                f"init: a phase tensor must be complex with the magnitude's shape {tuple(mag.shape)}, got "
                f"{init.dtype} of shape {tuple(init.shape)}."
            )
        init_tf = _batched(init.to(torch.complex64).to(mag.device), 2)[0].transpose(1, 2)
    else:
        check_choice(init, "init", ("random", "zeros"))
        init_tf = init
    out = _griffin_lim_tf(flat.transpose(1, 2).contiguous(), n_fft, hop, win, n_iter, momentum, bool(center), length,
                          init_tf, generator)
    return out.reshape(lead + out.shape[-1:])


# ----------------------------------------------------------------------------- HiFi-GAN features


def hifigan_log_mel(audio: Any, sample_rate: int = 22050, n_fft: int = 1024, hop_length: int = 256,
                    win_length: int = 1024, n_mels: int = 80, f_min: float = 0.0,
                    f_max: float | None = 8000.0) -> torch.Tensor:
    """The log-mel features HiFi-GAN-style vocoders expect: (..., T) -> (..., n_mels, T // hop_length).

    Reflect-pad ``(n_fft - hop_length) // 2`` samples on each side, STFT without centring,
    magnitude ``sqrt(re² + im² + 1e-9)`` (as the HiFi-GAN code does), Slaney mel filters,
    then ``log(max(x, 1e-5))`` (natural log). A clip of ``k * hop_length`` samples gives
    ``k`` frames.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    n_fft = check_positive_int(n_fft, "n_fft", minimum=2)
    win = _check_win_length(win_length, n_fft)
    hop = _check_hop(hop_length, win)
    args = _check_mel_args(sample_rate, n_fft, n_mels, f_min, f_max, "slaney", False)
    pad = (n_fft - hop) // 2
    x = as_float_tensor(audio, "audio")
    if x.shape[-1] <= pad or x.shape[-1] + 2 * pad < n_fft:
        raise CourseInputError(
            f"audio: {x.shape[-1]} samples is too short for n_fft={n_fft}, hop_length={hop}; "
            f"give at least {max(pad + 1, n_fft - 2 * pad)} samples."
        )
    flat, lead = _batched(x, 1)
    padded = F.pad(flat.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = _frame_spectrum(padded, n_fft, hop, _window(win, n_fft, x.device), center=False)
    mag = (torch.view_as_real(spec).square().sum(-1) + 1e-9).sqrt_()
    mel = _mel_ops(*args, x.device).to_mel(mag)
    out = torch.log(mel.clamp_min(1e-5)).transpose(1, 2)
    return out.reshape(lead + out.shape[-2:])
