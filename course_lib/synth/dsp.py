"""Small DSP helpers shared by the drum, music and digit modules: filters, soft clipping, fades, loops."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import signal


# ----------------------------------------------------------------------------------------------
# Small DSP helpers
# ----------------------------------------------------------------------------------------------


def _filt(x: np.ndarray, sr: int, btype: str, cutoff: Any, order: int = 2) -> np.ndarray:
    """Butterworth filter with cutoffs clamped to a valid range for this sample rate."""
    lo, hi = 10.0, 0.45 * sr
    if np.ndim(cutoff) == 0:
        wn: Any = float(np.clip(cutoff, lo, hi))
    else:
        a, b = (float(np.clip(c, lo, hi)) for c in cutoff)
        if b <= a * 1.05:
            a = b / 1.5
        wn = (a, b)
    sos = signal.butter(order, wn, btype=btype, fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _filt_loop(x: np.ndarray, sr: int, btype: str, cutoff: Any, order: int = 2) -> np.ndarray:
    """:func:`_filt` for a looping clip: the filter first runs over the clip's own end, so it
    enters sample 0 already settled and the loop point stays seamless."""
    warm = min(len(x), sr // 2)
    return _filt(np.concatenate([x[len(x) - warm:], x]), sr, btype, cutoff, order)[warm:]


def _drive(x: np.ndarray, gain: float) -> np.ndarray:
    """Soft clipping (tanh) that keeps a full-scale input at full scale."""
    return np.tanh(gain * x) / np.tanh(gain)


def _normalise(x: np.ndarray, peak: float = 1.0) -> np.ndarray:
    m = np.abs(x).max()
    return x * (peak / m) if m > 0 else x


def _fade_out(x: np.ndarray, sr: int, seconds: float = 0.01) -> np.ndarray:
    """Linear fade over the last ``seconds`` so a cut-off tail does not click."""
    m = min(len(x) // 4, int(seconds * sr))
    if m > 1:
        x = x.copy()
        x[-m:] *= np.linspace(1.0, 0.0, m)
    return x


def _fold(y: np.ndarray, n: int) -> np.ndarray:
    """Wrap everything past sample n back onto the start: a seamless loop of length n."""
    out = np.zeros(n)
    for start in range(0, len(y), n):
        chunk = y[start:start + n]
        out[:len(chunk)] += chunk
    return out


def _held_noise(n: int, rng: np.random.Generator, hold: int) -> np.ndarray:
    """Sample-and-hold noise: a new random value every ``hold`` samples (8-bit console style)."""
    values = rng.uniform(-1.0, 1.0, n // hold + 1)
    return np.repeat(values, hold)[:n]
