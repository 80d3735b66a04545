"""Basic sounds: pitch maths, band-limited tones, chirps, chords, ADSR envelopes and coloured noise.

A square, sawtooth or triangle wave has harmonics all the way up; sampled naively, those above
the Nyquist frequency fold back as aliases (inharmonic whistles). The oscillators here build
them from their Fourier series and stop before Nyquist. Also home to the checks and the small
random helpers that the drum, music and digit modules share. NumPy only (no SciPy).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from course_lib.validate import CourseInputError, check_choice, check_number, check_positive_int, check_sample_rate

__all__ = ["WAVEFORMS", "NOISE_KINDS", "midi_to_hz", "note_to_midi", "note_to_hz", "tone", "chirp", "chord",
           "adsr", "noise"]

WAVEFORMS = ("sine", "square", "sawtooth", "triangle")
NOISE_KINDS = ("white", "pink", "brown")

_TABLE_SIZE = 8192  # samples in one cycle of a wavetable
_MAX_TABLE_HARMONICS = 256  # above this, linear interpolation of the table is no longer clean


# ----------------------------------------------------------------------------------------------
# Input checks and random draws
# ----------------------------------------------------------------------------------------------


def _rng(seed: Any, name: str = "seed") -> np.random.Generator:
    """A NumPy Generator from an int seed (or the Generator itself, used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        raise CourseInputError(
            f"{name}: expected a non-negative integer or a numpy.random.Generator, got {seed!r} "
            "(e.g. seed=0)."
        )
    return np.random.default_rng(int(seed))


def _check_dataset_request(n_per_class: Any, seed: Any, classes: Any, known: Sequence[str]) -> int:
    """The arguments every course-made dataset takes, checked once: returns ``n_per_class``."""
    n_per = check_positive_int(n_per_class, "n_per_class")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CourseInputError(f"seed: expected a non-negative integer, got {seed!r}.")
    if isinstance(classes, str) or not isinstance(classes, (list, tuple)) or len(classes) == 0:
        raise CourseInputError(f"classes: expected a non-empty list drawn from {tuple(known)}, got {classes!r}.")
    for c in classes:
        check_choice(c, "classes", tuple(known))
    return n_per


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    """One uniform draw in [low, high), as a Python float."""
    return float(rng.uniform(low, high))


_number = check_number  # shared with the rest of course_lib


def _n_samples(duration: Any, sample_rate: int, name: str = "duration") -> int:
    """Number of samples in ``duration`` seconds (at least one)."""
    d = _number(duration, name, 0.0, 3600.0, low_open=True)
    n = int(round(d * sample_rate))
    if n < 1:
        raise CourseInputError(
            f"{name}: {d:g} s is shorter than one sample at {sample_rate} Hz; give a longer duration."
        )
    return n


def _frequency(freq: Any, sample_rate: int, name: str = "freq") -> float:
    """A frequency strictly between 0 and the Nyquist frequency."""
    f = _number(freq, name, 0.0, low_open=True)
    if f >= sample_rate / 2:
        raise CourseInputError(
            f"{name}: {f:g} Hz is at or above the Nyquist frequency ({sample_rate / 2:g} Hz at "
            f"sample_rate={sample_rate}); it would alias. Use a lower frequency or a higher sample_rate."
        )
    return f


def _amplitude(amplitude: Any) -> float:
    return _number(amplitude, "amplitude", 0.0, 1.0)


def _finish(x: np.ndarray) -> np.ndarray:
    """Float32, clipped to [-1, 1] (guards against rounding just past full scale)."""
    return np.clip(x, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Pitch
# ----------------------------------------------------------------------------------------------

_NOTE_RE = re.compile(r"^\s*([A-Ga-g])([#♯b♭]{0,2})(-?\d{1,2})\s*$")
_LETTER_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_PC_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def midi_to_hz(midi: Any) -> Any:
    """Frequency in Hz of a MIDI note number (69 = A4 = 440 Hz; fractions are microtones).

    Equal temperament: each semitone multiplies the frequency by 2**(1/12). Accepts a number
    (returns a float) or an array (returns an array).
    """
    if isinstance(midi, (list, tuple, np.ndarray)):
        arr = np.asarray(midi)
        if arr.size == 0 or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
            raise CourseInputError(f"midi: expected MIDI note numbers, got an array of dtype {arr.dtype}.")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)) or arr.min() < -60 or arr.max() > 200:
            raise CourseInputError("midi: note numbers must be finite and between -60 and 200.")
        return 440.0 * 2.0 ** ((arr - 69.0) / 12.0)
    m = _number(midi, "midi", -60.0, 200.0)
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def note_to_midi(note: str) -> int:
    """MIDI number of a note name such as ``"A4"``, ``"C#3"``, ``"Bb2"`` or ``"C-1"`` (C4 = 60)."""
    if not isinstance(note, str):
        raise CourseInputError(f"note: expected a note name such as 'A4', got {type(note).__name__} {note!r}.")
    m = _NOTE_RE.match(note)
    if m is None:
        raise CourseInputError(
            f"note: {note!r} is not a note name; write a letter A-G, an optional # or b, and an "
            "octave number, e.g. 'A4', 'C#3', 'Eb5'."
        )
    letter, accidentals, octave = m.groups()
    semitone = _LETTER_SEMITONES[letter.upper()]
    semitone += sum(1 if a in "#♯" else -1 for a in accidentals)
    return 12 * (int(octave) + 1) + semitone


def note_to_hz(note: str) -> float:
    """Frequency in Hz of a note name: ``note_to_hz("A4") == 440.0``."""
    return float(midi_to_hz(note_to_midi(note)))


# ----------------------------------------------------------------------------------------------
# Band-limited oscillators
# ----------------------------------------------------------------------------------------------


def _series(waveform: str, n_harmonics: int, duty: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fourier series of a waveform: harmonic numbers k, amplitudes a_k and phases p_k.

    The wave is sum_k a_k * sin(k*x + p_k) for x the phase in radians. Sawtooth: rises from -1
    to 1, a_k = 2/(pi k) (-1)^(k+1). Square: odd k, a_k = 4/(pi k). Triangle: odd k,
    a_k = 8/(pi k)^2 (-1)^((k-1)/2). Pulse of duty d = saw(x) - saw(x - 2 pi d), which gives
    a_k = 2 c_k sin(pi k d) with the saw coefficient c_k and a phase pi/2 - pi k d.
    """
    k = np.arange(1, max(1, n_harmonics) + 1, dtype=np.float64)
    phase = np.zeros_like(k)
    if waveform == "sine":
        k, amp, phase = k[:1], np.ones(1), phase[:1]
    elif waveform == "sawtooth":
        amp = 2.0 / (np.pi * k) * np.where(k % 2 == 1, 1.0, -1.0)
    elif waveform == "square":
        amp = np.where(k % 2 == 1, 4.0 / (np.pi * k), 0.0)
    elif waveform == "triangle":
        sign = np.where(((k - 1) / 2) % 2 == 0, 1.0, -1.0)
        amp = np.where(k % 2 == 1, 8.0 / (np.pi * k) ** 2 * sign, 0.0)
    elif waveform == "pulse":
        saw = 2.0 / (np.pi * k) * np.where(k % 2 == 1, 1.0, -1.0)
        amp = 2.0 * saw * np.sin(np.pi * k * duty)
        phase = np.pi / 2 - np.pi * k * duty
    else:  # pragma: no cover - callers check
        raise CourseInputError(f"waveform: {waveform!r} is not one of {WAVEFORMS}.")
    keep = amp != 0
    return k[keep], amp[keep], phase[keep]


def _one_cycle(waveform: str, n_harmonics: int, duty: float, size: int) -> np.ndarray:
    """``size`` samples of one cycle of the truncated series, by an inverse real FFT.

    Bin k of the spectrum holds (size/2) a_k exp(i (p_k - pi/2)), so that the inverse FFT is
    sum_k a_k sin(2 pi k j / size + p_k): exactly the series, in O(size log size).
    """
    k, a, p = _series(waveform, n_harmonics, duty)
    spectrum = np.zeros(size // 2 + 1, dtype=np.complex128)
    spectrum[k.astype(int)] = (size / 2) * a * np.exp(1j * (p - np.pi / 2))
    return np.fft.irfft(spectrum, size)


@lru_cache(maxsize=512)
def _series_peak(waveform: str, n_harmonics: int, duty: float = 0.5) -> float:
    """Peak of the truncated series over one period (it overshoots 1 a little: Gibbs).

    A fine FFT grid finds the highest ripple, then direct evaluation around it pins it down.
    """
    k, a, p = _series(waveform, n_harmonics, duty)
    size = 1 << max(14, int(np.ceil(np.log2(64 * k.max()))))
    cycle = np.abs(_one_cycle(waveform, n_harmonics, duty, size))
    step = 2 * np.pi / size
    centre = float(np.argmax(cycle)) * step
    x = np.linspace(centre - step, centre + step, 201)
    fine = np.abs(np.sin(np.outer(x, k) + p) @ a).max()
    peak = max(float(cycle.max()), float(fine))
    return peak if peak > 0 else 1.0


@lru_cache(maxsize=512)
def _table(waveform: str, n_harmonics: int, duty: float = 0.5) -> np.ndarray:
    """One cycle of a band-limited waveform, peak 1, with the first sample repeated at the end."""
    wave = _one_cycle(waveform, n_harmonics, duty, _TABLE_SIZE)
    wave /= np.abs(wave).max()
    table = np.append(wave, wave[0])
    table.setflags(write=False)
    return table


# Harmonic counts the wavetables are built for: a geometric ladder, so that a few dozen tables
# serve every pitch. A note uses the largest count not above what Nyquist allows.
_LADDER = np.unique(np.round(1.15 ** np.arange(0, 40)).astype(int))
_LADDER = _LADDER[_LADDER <= _MAX_TABLE_HARMONICS]


def _harmonic_count(max_freq: float, sample_rate: int, cutoff: float | None = None) -> int:
    """How many harmonics of ``max_freq`` stay below Nyquist (and below ``cutoff`` if given)."""
    limit = sample_rate / 2 if cutoff is None else min(sample_rate / 2, cutoff)
    k = int(np.ceil(limit / max_freq)) - 1  # strictly below the limit
    return max(1, k)


def _additive(phase: np.ndarray, waveform: str, n_harmonics: int) -> np.ndarray:
    """Exact additive synthesis: sum_k a_k sin(k*phase) over the waveform's harmonics.

    Uses the recurrence sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x), so one cos() and one
    sin() per sample serve every harmonic; the rounding error grows only slowly with k (about
    1e-12 after hundreds of harmonics). Only zero-phase series (not ``pulse``) come here.
    """
    k, a, p = _series(waveform, n_harmonics)
    if np.any(p):  # pragma: no cover - pulse waves go through _table
        raise ValueError("_additive handles zero-phase series only")
    amp = np.zeros(int(k.max()) + 1)
    amp[k.astype(int)] = a
    c2 = 2.0 * np.cos(phase)
    s_prev = np.zeros_like(phase)  # sin(0 x)
    s_cur = np.sin(phase)  # sin(1 x)
    out = np.zeros_like(phase)
    tmp = np.empty_like(phase)
    for kk in range(1, len(amp)):
        if amp[kk]:
            np.multiply(s_cur, amp[kk], out=tmp)
            out += tmp
        if kk + 1 < len(amp):
            np.multiply(c2, s_cur, out=tmp)
            np.subtract(tmp, s_prev, out=s_prev)  # s_prev now holds sin((k+1) x)
            s_prev, s_cur = s_cur, s_prev
    return out


def _osc(freq: Any, n: int, sr: int, waveform: str = "sine", duty: float = 0.5,
         phase: float = 0.0, cutoff: float | None = None) -> np.ndarray:
    """Fast band-limited oscillator (float64, peak about 1) from a wavetable.

    ``freq`` is a number or an array of ``n`` instantaneous frequencies (for pitch sweeps);
    the phase is their running sum. The table holds only harmonics below Nyquist for the
    highest frequency reached (and below ``cutoff``, a cheap low-pass).
    """
    f = np.asarray(freq, dtype=np.float64)
    phase = phase % (2 * np.pi)
    if f.ndim == 0:
        cycles = phase / (2 * np.pi) + float(f) * np.arange(n) / sr
        fmax = float(f)
    else:
        cycles = phase / (2 * np.pi) + np.concatenate(([0.0], np.cumsum(f[:-1]))) / sr
        fmax = float(f.max())
    if waveform == "sine":
        return np.sin(2 * np.pi * cycles)
    allowed = _harmonic_count(max(fmax, 1.0), sr, cutoff)
    harmonics = int(_LADDER[np.searchsorted(_LADDER, allowed, side="right") - 1])
    table = _table(waveform, harmonics, round(float(duty), 4))
    pos = cycles * _TABLE_SIZE  # cycles are never negative here, so truncation is floor
    idx = pos.astype(np.int64)
    frac = pos - idx
    idx &= _TABLE_SIZE - 1  # the table size is a power of two: this is "mod one cycle"
    left = table[idx]
    return left + frac * (table[idx + 1] - left)


def _check_waveform(waveform: Any) -> str:
    return check_choice(waveform, "waveform", WAVEFORMS)


def tone(freq: float, duration: float, sample_rate: int = 22050, waveform: str = "sine",
         amplitude: float = 0.5, phase: float = 0.0) -> np.ndarray:
    """A steady tone of ``freq`` Hz lasting ``duration`` seconds, peak ``amplitude``.

    Square, sawtooth and triangle waves are band-limited: built from their harmonics below the
    Nyquist frequency only, so nothing aliases. ``phase`` is the starting phase in radians.

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
    """
    sr = check_sample_rate(sample_rate)
    f = _frequency(freq, sr)
    n = _n_samples(duration, sr)
    waveform = _check_waveform(waveform)
    amp = _amplitude(amplitude)
    ph = _number(phase, "phase")
    x = 2 * np.pi * f * np.arange(n) / sr + ph
    harmonics = _harmonic_count(f, sr)
    wave = _additive(x, waveform, harmonics)
    return _finish(amp * wave / _series_peak(waveform, harmonics))


def chirp(f0: float, f1: float, duration: float, sample_rate: int = 22050, method: str = "linear",
          amplitude: float = 0.5, waveform: str = "sine") -> np.ndarray:
    """A sweep from ``f0`` to ``f1`` Hz over ``duration`` seconds.

    ``method="linear"``: the frequency moves by the same number of Hz each second,
    f(t) = f0 + (f1 - f0) t / T. ``method="log"`` (exponential): by the same ratio each second,
    f(t) = f0 (f1/f0)^(t/T), which sounds like an even glide in pitch. The phase is the exact
    integral of f(t), so the instantaneous frequency is f(t) at every sample.
    """
    sr = check_sample_rate(sample_rate)
    a = _frequency(f0, sr, "f0")
    b = _frequency(f1, sr, "f1")
    n = _n_samples(duration, sr)
    method = check_choice(method, "method", ("linear", "log"))
    waveform = _check_waveform(waveform)
    amp = _amplitude(amplitude)
    t = np.arange(n) / sr
    T = n / sr
    if method == "linear" or a == b:
        phase = 2 * np.pi * (a * t + (b - a) * t * t / (2 * T))
    else:
        ratio = b / a
        phase = 2 * np.pi * a * T / np.log(ratio) * (ratio ** (t / T) - 1.0)
    harmonics = _harmonic_count(max(a, b), sr)
    wave = _additive(phase, waveform, harmonics)
    return _finish(amp * wave / _series_peak(waveform, harmonics))


def chord(notes: Sequence[str | float], duration: float, sample_rate: int = 22050,
          waveform: str = "sine", amplitude: float = 0.5) -> np.ndarray:
    """Several tones at once: ``notes`` are names (``"C4"``) or frequencies in Hz.

    The sum is scaled so its peak is ``amplitude``. Multiply by :func:`adsr` for a shaped note.
    """
    if isinstance(notes, (str, bytes)) or not isinstance(notes, (list, tuple, np.ndarray)):
        raise CourseInputError(
            f"notes: expected a list of note names or frequencies, e.g. ['C4', 'E4', 'G4'], got {notes!r}."
        )
    if len(notes) == 0:
        raise CourseInputError("notes: the list is empty; give at least one note, e.g. ['A4'].")
    sr = check_sample_rate(sample_rate)
    amp = _amplitude(amplitude)
    total = None
    for i, note in enumerate(notes):
        freq = note_to_hz(note) if isinstance(note, str) else note
        if not isinstance(note, str):
            _number(note, f"notes[{i}]")
        if freq >= sr / 2:
            raise CourseInputError(
                f"notes[{i}]: {note!r} ({freq:g} Hz) is above Nyquist at sample_rate={sr}; use a lower note."
            )
        part = tone(freq, duration, sr, waveform, amplitude=1.0).astype(np.float64)
        total = part if total is None else total + part
    peak = np.abs(total).max()
    return _finish(total * (amp / peak) if peak > 0 else total)


def _envelope(n: int, sr: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Piecewise-linear ADSR over n samples (times already checked and fitted)."""
    t = np.arange(n) / sr
    total = n / sr
    env = np.full(n, sustain)
    if decay > 0:
        in_decay = (t >= attack) & (t < attack + decay)
        env[in_decay] = 1.0 - (1.0 - sustain) * (t[in_decay] - attack) / decay
    if attack > 0:
        env = np.where(t < attack, t / attack, env)
    if release > 0:
        start = total - release
        if start <= 0:
            level = 0.0
        elif start < attack:
            level = start / attack
        elif start < attack + decay:
            level = 1.0 - (1.0 - sustain) * (start - attack) / decay
        else:
            level = sustain
        in_release = t >= start
        env[in_release] = level * np.clip((total - t[in_release]) / release, 0.0, 1.0)
    return env


def adsr(duration: float, sample_rate: int = 22050, attack: float = 0.01, decay: float = 0.1,
         sustain: float = 0.7, release: float = 0.2) -> np.ndarray:
    """An attack-decay-sustain-release envelope in [0, 1], ``duration`` seconds long.

    Rises linearly to 1 in ``attack`` s, falls to ``sustain`` in ``decay`` s, holds, and falls to 0
    over the last ``release`` s. If attack + decay + release is longer than the note, the three
    are shortened in proportion so the shape still fits. Multiply a tone by it to shape a note.
    """
    sr = check_sample_rate(sample_rate)
    n = _n_samples(duration, sr)
    a = _number(attack, "attack", 0.0, 60.0)
    d = _number(decay, "decay", 0.0, 60.0)
    s = _number(sustain, "sustain", 0.0, 1.0)
    r = _number(release, "release", 0.0, 60.0)
    total = n / sr
    if a + d + r > total:
        scale = total / (a + d + r)
        a, d, r = a * scale, d * scale, r * scale
    return _envelope(n, sr, a, d, s, r).astype(np.float32)


def _coloured(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent, by shaping white noise in the frequency domain."""
    white = rng.standard_normal(n)
    if exponent == 0 or n < 4:
        return white
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n)
    gain = np.zeros_like(f)
    gain[1:] = f[1:] ** (-exponent / 2)  # amplitude goes as the square root of power
    return np.fft.irfft(spec * gain, n)


def noise(duration: float, sample_rate: int = 22050, kind: str = "white", amplitude: float = 0.5,
          seed: Any = 0) -> np.ndarray:
    """Random noise scaled to peak ``amplitude``: white (flat spectrum), pink (1/f) or brown (1/f^2).

    Pink noise has equal energy per octave, which sounds balanced; brown is a low rumble.
    """
    sr = check_sample_rate(sample_rate)
    n = _n_samples(duration, sr)
    kind = check_choice(kind, "kind", NOISE_KINDS)
    amp = _amplitude(amplitude)
    rng = _rng(seed)
    x = _coloured(n, rng, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
    x = x - x.mean()
    peak = np.abs(x).max()
    return _finish(x * (amp / peak) if peak > 0 else x)
