"""Course-made sound: tones, chirps, chords, noise, drum one-shots, short music clips and
spoken-digit-like words.

Everything here is procedural and deterministic: the same ``seed`` gives the same array, bit
for bit, on any CPU. The course uses it wherever it would otherwise need a download, so every
lesson runs offline. All functions return float32 NumPy arrays with samples in [-1, 1].

Two ideas carry the whole module:

- **Band-limited oscillators.** A square, sawtooth or triangle wave has harmonics all the way
  up; sampled naively, those above the Nyquist frequency fold back as aliases (inharmonic
  whistles). We build them from their Fourier series and stop before Nyquist.
- **Randomised parameters.** A kick is a sine sweeping down in pitch plus a click; drawing the
  pitch, decay, click level... from ranges gives thousands of different but recognisable kicks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
from scipy import signal

from course_lib.validate import CourseInputError, check_choice, check_number, check_positive_int, check_sample_rate

__all__ = [
    "WAVEFORMS",
    "NOISE_KINDS",
    "DRUM_CLASSES",
    "PERCUSSION_VARIANTS",
    "MUSIC_STYLES",
    "DIGIT_CLASSES",
    "midi_to_hz",
    "note_to_midi",
    "note_to_hz",
    "tone",
    "chirp",
    "chord",
    "adsr",
    "noise",
    "kick",
    "snare",
    "hihat",
    "percussion",
    "drum_one_shot",
    "drum_dataset",
    "music_params",
    "music_clip",
    "digit_like_clip",
    "digit_dataset",
]

WAVEFORMS = ("sine", "square", "sawtooth", "triangle")
NOISE_KINDS = ("white", "pink", "brown")
DRUM_CLASSES = ("kick", "snare", "hihat", "percussion")
PERCUSSION_VARIANTS = ("tom", "conga", "clap", "rim", "cowbell")
MUSIC_STYLES = ("hiphop", "techno", "ambient", "chiptune", "rock", "jazz")

_TABLE_SIZE = 8192  # samples in one cycle of a wavetable
_MAX_TABLE_HARMONICS = 256  # above this, linear interpolation of the table is no longer clean


# ----------------------------------------------------------------------------------------------
# Input checks
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


# ----------------------------------------------------------------------------------------------
# Drum one-shots: parameters are drawn from ranges, then rendered
# ----------------------------------------------------------------------------------------------


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _kick_params(rng: np.random.Generator) -> dict[str, float]:
    return {
        "f_end": _u(rng, 40, 65), "f_start": _u(rng, 90, 160), "pitch_tau": _u(rng, 0.012, 0.05),
        "hold": _u(rng, 0.0, 0.03), "decay": _u(rng, 0.08, 0.35), "click": _u(rng, 0.05, 0.3),
        "click_tau": _u(rng, 0.0006, 0.003), "click_hp": _u(rng, 1500, 4000), "drive": _u(rng, 1.0, 3.0),
    }


def _render_kick(p: dict[str, float], rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A sine whose pitch falls from f_start to f_end, decaying, plus a short noise click."""
    t = np.arange(n) / sr
    f = p["f_end"] + (p["f_start"] - p["f_end"]) * np.exp(-t / p["pitch_tau"])
    body = _osc(f, n, sr, "sine") * np.exp(-np.maximum(t - p["hold"], 0.0) / p["decay"])
    click = _filt(rng.standard_normal(n), sr, "highpass", p["click_hp"]) * np.exp(-t / p["click_tau"])
    return _drive(body + p["click"] * _normalise(click), p["drive"])


def _snare_params(rng: np.random.Generator) -> dict[str, float]:
    return {
        "f0": _u(rng, 180, 250), "ratio": _u(rng, 1.45, 1.75), "mode2": _u(rng, 0.3, 0.6),
        "bend": _u(rng, 0.1, 0.4), "body_tau": _u(rng, 0.04, 0.12), "noise_hp": _u(rng, 1200, 2500),
        "noise_lp": _u(rng, 7000, 12000), "noise_tau": _u(rng, 0.07, 0.2), "noise_mix": _u(rng, 0.45, 0.8),
        "drive": _u(rng, 1.0, 2.5),
    }


def _render_snare(p: dict[str, float], rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Two drum-head modes (~180-250 Hz and a higher one) plus bright snare-wire noise."""
    t = np.arange(n) / sr
    bend = 1.0 + p["bend"] * np.exp(-t / 0.008)
    body = _osc(p["f0"] * bend, n, sr) + p["mode2"] * _osc(p["f0"] * p["ratio"] * bend, n, sr, phase=1.0)
    body *= np.exp(-t / p["body_tau"])
    wires = _filt(rng.standard_normal(n), sr, "bandpass", (p["noise_hp"], p["noise_lp"]))
    wires *= np.exp(-t / p["noise_tau"])
    mix = p["noise_mix"]
    return _drive((1 - mix) * _normalise(body) + mix * _normalise(wires), p["drive"])


_METAL_RATIOS = np.array([1.0, 1.483, 1.800, 2.546, 2.630, 3.897])  # six detuned squares, 808-style


def _hihat_params(rng: np.random.Generator) -> dict[str, float]:
    is_open = rng.random() < 0.3
    return {
        "f0": _u(rng, 180, 320), "noise_mix": _u(rng, 0.2, 0.6), "hp": _u(rng, 6000, 9000),
        "decay": _u(rng, 0.12, 0.35) if is_open else _u(rng, 0.015, 0.06), "attack": 0.0005,
    }


def _render_metal(p: dict[str, float], rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Metallic noise: inharmonic square waves plus noise, high-passed, with a fast decay."""
    t = np.arange(n) / sr
    tone_part = np.zeros(n)
    for r in _METAL_RATIOS:
        f = min(p["f0"] * r, 0.4 * sr)
        tone_part += _osc(f, n, sr, "square", phase=_u(rng, 0, 2 * np.pi))
    mix = p["noise_mix"]
    x = (1 - mix) * _normalise(tone_part) + mix * _normalise(rng.standard_normal(n))
    x = _filt(x, sr, "highpass", p["hp"], order=4)
    env = np.exp(-t / p["decay"]) * np.minimum(t / p["attack"], 1.0)
    return x * env


def _render_tom(p: dict[str, float], rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    t = np.arange(n) / sr
    f = p["f"] * (1.0 + (p["start_ratio"] - 1.0) * np.exp(-t / p["pitch_tau"]))
    body = _osc(f, n, sr) * np.exp(-t / p["decay"])
    hit = _filt(rng.standard_normal(n), sr, "bandpass", (300, 3000)) * np.exp(-t / 0.02)
    return _normalise(body) + p["noise"] * _normalise(hit)


def _render_conga(p: dict[str, float], rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    t = np.arange(n) / sr
    f = p["f"] * (1.0 + 0.08 * np.exp(-t / 0.01))
    body = (_osc(f, n, sr) + 0.25 * _osc(1.59 * f, n, sr)) * np.exp(-t / p["decay"])
    slap = _filt(rng.standard_normal(n), sr, "bandpass", (1200, 4000)) * np.exp(-t / 0.005)
    return _normalise(body) + p["slap"] * _normalise(slap)


def _render_clap(p: dict[str, float], rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Several hands a few ms apart: short noise bursts, then a diffuse tail."""
    t = np.arange(n) / sr
    source = _filt(rng.standard_normal(n), sr, "bandpass", (p["centre"] / 1.6, p["centre"] * 1.6))
    env = np.zeros(n)
    bursts = int(p["bursts"])
    for b in range(bursts):
        onset = b * p["spacing"]
        env += np.where(t >= onset, np.exp(-(t - onset) / p["burst_tau"]), 0.0)
    last = (bursts - 1) * p["spacing"]
    env += 0.6 * np.where(t >= last, np.exp(-(t - last) / p["tail_tau"]), 0.0)
    return source * env


def _render_rim(p: dict[str, float], rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    t = np.arange(n) / sr
    body = _osc(p["f"], n, sr, "triangle") * np.exp(-t / p["decay"])
    click = _filt(rng.standard_normal(n), sr, "bandpass", (1500, 4000)) * np.exp(-t / 0.003)
    return _normalise(body) + 0.5 * _normalise(click)


def _render_cowbell(p: dict[str, float], rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    t = np.arange(n) / sr
    x = _osc(p["f"], n, sr, "square") + _osc(p["f"] * p["ratio"], n, sr, "square", phase=1.0)
    x = _filt(x, sr, "bandpass", (p["bp_low"], p["bp_high"]))
    return x * (0.6 * np.exp(-t / 0.015) + 0.4 * np.exp(-t / p["decay"]))


def _percussion_params(rng: np.random.Generator, variant: str) -> dict[str, float]:
    if variant == "tom":
        return {"f": _u(rng, 90, 280), "start_ratio": _u(rng, 1.2, 1.6), "pitch_tau": _u(rng, 0.03, 0.08),
                "decay": _u(rng, 0.12, 0.4), "noise": _u(rng, 0.05, 0.15)}
    if variant == "conga":
        return {"f": _u(rng, 220, 480), "decay": _u(rng, 0.06, 0.15), "slap": _u(rng, 0.1, 0.3)}
    if variant == "clap":
        return {"centre": _u(rng, 900, 1800), "bursts": float(rng.integers(3, 5)),
                "spacing": _u(rng, 0.006, 0.013), "burst_tau": _u(rng, 0.002, 0.005),
                "tail_tau": _u(rng, 0.05, 0.15)}
    if variant == "rim":
        return {"f": _u(rng, 380, 520), "decay": _u(rng, 0.008, 0.025)}
    return {"f": _u(rng, 520, 600), "ratio": _u(rng, 1.45, 1.52), "bp_low": _u(rng, 500, 700),
            "bp_high": _u(rng, 2500, 4000), "decay": _u(rng, 0.08, 0.3)}


_PERCUSSION_RENDER: dict[str, Callable[..., np.ndarray]] = {
    "tom": _render_tom, "conga": _render_conga, "clap": _render_clap, "rim": _render_rim,
    "cowbell": _render_cowbell,
}


def _check_one_shot(seed: Any, sample_rate: Any, length: Any) -> tuple[np.random.Generator, int, int]:
    rng = _rng(seed)
    sr = check_sample_rate(sample_rate)
    n = check_positive_int(length, "length", minimum=16)
    if n > 10 * sr:
        raise CourseInputError(f"length: {n} samples is over 10 s at {sr} Hz; one-shots are short, use e.g. 32768.")
    return rng, sr, n


def _one_shot(x: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Fade the tail, and scale to a random peak level in [0.6, 0.95]."""
    return _finish(_normalise(_fade_out(x, sr), _u(rng, 0.6, 0.95)))


def kick(seed: Any = 0, sample_rate: int = 44100, length: int = 32768) -> np.ndarray:
    """A kick drum: a sine falling from ~90-160 Hz to ~40-65 Hz, with a click and soft saturation.

    ``seed`` (an int or a NumPy Generator) draws the pitches, decay, click level and drive.
    """
    rng, sr, n = _check_one_shot(seed, sample_rate, length)
    return _one_shot(_render_kick(_kick_params(rng), rng, sr, n), rng, sr)


def snare(seed: Any = 0, sample_rate: int = 44100, length: int = 32768) -> np.ndarray:
    """A snare drum: a ~180-250 Hz head tone plus band-passed noise for the wires."""
    rng, sr, n = _check_one_shot(seed, sample_rate, length)
    return _one_shot(_render_snare(_snare_params(rng), rng, sr, n), rng, sr)


def hihat(seed: Any = 0, sample_rate: int = 44100, length: int = 32768) -> np.ndarray:
    """A hi-hat: six inharmonic square waves and noise, high-passed above ~6-9 kHz; mostly closed
    (15-60 ms decay), sometimes open (0.12-0.35 s)."""
    rng, sr, n = _check_one_shot(seed, sample_rate, length)
    return _one_shot(_render_metal(_hihat_params(rng), rng, sr, n), rng, sr)


def percussion(seed: Any = 0, sample_rate: int = 44100, length: int = 32768,
               variant: str | None = None) -> np.ndarray:
    """A pitched or hand percussion hit: one of ``PERCUSSION_VARIANTS`` (tom, conga, clap, rim,
    cowbell), drawn at random unless ``variant`` is given."""
    rng, sr, n = _check_one_shot(seed, sample_rate, length)
    if variant is None:
        variant = PERCUSSION_VARIANTS[int(rng.integers(len(PERCUSSION_VARIANTS)))]
    else:
        check_choice(variant, "variant", PERCUSSION_VARIANTS)
    x = _PERCUSSION_RENDER[variant](_percussion_params(rng, variant), rng, sr, n)
    return _one_shot(x, rng, sr)


_DRUM_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "kick": kick, "snare": snare, "hihat": hihat, "percussion": percussion,
}
_PAN_WIDTH = {"kick": 0.1, "snare": 0.25, "hihat": 0.6, "percussion": 0.7}


def drum_one_shot(kind: str, seed: Any = 0, sample_rate: int = 44100, length: int = 32768,
                  stereo: bool = False) -> np.ndarray:
    """One drum hit of class ``kind`` (one of ``DRUM_CLASSES``): shape (length,) or (2, length).

    In stereo the hit is panned at random (kicks near the centre, hats and percussion wider)
    with a constant-power law, and one side is delayed by up to 0.3 ms for width.
    """
    check_choice(kind, "kind", DRUM_CLASSES)
    if not isinstance(stereo, (bool, np.bool_)):
        raise CourseInputError(f"stereo: expected True or False, got {stereo!r}.")
    rng = _rng(seed)
    mono = _DRUM_FUNCTIONS[kind](rng, sample_rate, length)
    if not stereo:
        return mono
    sr = int(sample_rate)
    pan = _u(rng, -_PAN_WIDTH[kind], _PAN_WIDTH[kind])  # -1 left .. 1 right
    angle = (pan + 1) * np.pi / 4
    delay = int(round(_u(rng, 0.0, 0.0003) * sr)) if kind != "kick" else 0
    delayed = np.concatenate([np.zeros(delay, np.float32), mono[: len(mono) - delay]])
    left, right = (mono, delayed) if pan >= 0 else (delayed, mono)
    return _finish(np.stack([np.cos(angle) * left, np.sin(angle) * right]))


def drum_dataset(n_per_class: int, seed: int = 0, sample_rate: int = 44100, length: int = 32768,
                 stereo: bool = False, classes: Sequence[str] = DRUM_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` hits of each class: (audio [N, T] or [N, 2, T] float32, labels [N] int64).

    Rows are interleaved (kick, snare, hihat, percussion, kick, ...); a label is the index into
    ``DRUM_CLASSES``. Hit i of a class depends only on (seed, class, i), so a bigger dataset
    starts with the same hits as a smaller one.
    """
    n_per = check_positive_int(n_per_class, "n_per_class")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CourseInputError(f"seed: expected a non-negative integer, got {seed!r}.")
    if isinstance(classes, str) or not isinstance(classes, (list, tuple)) or len(classes) == 0:
        raise CourseInputError(f"classes: expected a non-empty list drawn from {DRUM_CLASSES}, got {classes!r}.")
    for c in classes:
        check_choice(c, "classes", DRUM_CLASSES)
    sr = check_sample_rate(sample_rate)
    n = check_positive_int(length, "length", minimum=16)
    shape = (n_per * len(classes), 2, n) if stereo else (n_per * len(classes), n)
    audio = np.zeros(shape, np.float32)
    labels = np.zeros(shape[0], np.int64)
    row = 0
    for i in range(n_per):
        for c in classes:
            cls = DRUM_CLASSES.index(c)
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), cls, i]))
            audio[row] = drum_one_shot(c, rng, sr, n, stereo=stereo)
            labels[row] = cls
            row += 1
    return audio, labels


# ----------------------------------------------------------------------------------------------
# Music clips
# ----------------------------------------------------------------------------------------------

_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Scale degrees (0-based) that belong to the pentatonic scale of each mode.
_PENTATONIC = {"major": {0, 1, 2, 4, 5}, "minor": {0, 2, 3, 4, 6}}
# Chord names of the triads built on each degree (lower case: minor; °: diminished).
_ROMAN = {"major": ("I", "ii", "iii", "IV", "V", "vi", "vii°"), "minor": ("i", "ii°", "III", "iv", "v", "VI", "VII")}


@dataclass(frozen=True)
class _StyleSpec:
    bpm: tuple[float, float]
    swing: tuple[float, float]  # where the off-beat note of a pair falls (0.5 = straight)
    swing_steps: int  # 1: swing 16th notes; 2: swing 8th notes
    modes: tuple[str, ...]
    progressions: tuple[tuple[int, ...], ...]
    humanise_ms: float
    drums: bool


_STYLES: dict[str, _StyleSpec] = {
    "hiphop": _StyleSpec((85, 95), (0.54, 0.62), 1, ("minor",),
                         ((0, 3), (0, 5, 3, 4), (0, 6, 5, 6), (0, 2, 3, 4)), 6.0, True),
    "techno": _StyleSpec((125, 135), (0.5, 0.5), 1, ("minor",), ((0,), (0, 5), (0, 3)), 0.0, True),
    "ambient": _StyleSpec((60, 76), (0.5, 0.5), 1, ("major",), ((0, 3), (0, 5, 3, 4), (0, 2, 3, 0), (3, 0)),
                          0.0, False),
    "chiptune": _StyleSpec((140, 170), (0.5, 0.5), 1, ("major",),
                           ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 0)), 0.0, True),
    "rock": _StyleSpec((100, 122), (0.5, 0.5), 1, ("major", "minor"),
                       ((0, 4, 5, 3), (0, 3, 4, 3), (0, 5, 2, 6), (0, 6, 5, 6)), 4.0, True),
    "jazz": _StyleSpec((140, 180), (0.6, 0.67), 2, ("major",), ((1, 4, 0, 5), (1, 4, 0, 0), (0, 5, 1, 4)),
                       8.0, True),
}

STEPS_PER_BAR = 16  # sixteenth notes in a 4/4 bar
PHRASE_BARS = 4
_PHRASE = STEPS_PER_BAR * PHRASE_BARS


def _check_style(style: Any) -> str:
    return check_choice(style, "style", MUSIC_STYLES)


def _plan(style: str, rng: np.random.Generator) -> dict[str, Any]:
    """The clip's global choices: tempo, swing, key, mode and chord progression."""
    spec = _STYLES[style]
    bpm = round(_u(rng, *spec.bpm), 1)
    swing = round(_u(rng, *spec.swing), 3) if spec.swing[1] > spec.swing[0] else spec.swing[0]
    root = int(rng.integers(12))
    mode = spec.modes[int(rng.integers(len(spec.modes)))]
    progression = spec.progressions[int(rng.integers(len(spec.progressions)))]
    roman = [_ROMAN[mode][d % 7] for d in progression]
    return {
        "style": style, "bpm": bpm, "swing": swing, "swing_steps": spec.swing_steps,
        "key": f"{_PC_NAMES[root]} {mode}", "root": root, "mode": mode, "progression": list(progression),
        "chords": roman, "beat_seconds": 60.0 / bpm, "drums": spec.drums,
    }


def music_params(style: str, seed: int = 0) -> dict[str, Any]:
    """The tempo (``bpm``), swing, key and chord progression that ``music_clip(style, seed=seed)``
    uses, without rendering any audio. Handy to label clips or to check a tempo estimate."""
    style = _check_style(style)
    return _plan(style, _clip_rng(style, seed))


def _clip_rng(style: str, seed: Any) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CourseInputError(f"seed: expected a non-negative integer, got {seed!r}.")
    return np.random.default_rng(np.random.SeedSequence([int(seed), MUSIC_STYLES.index(style), 7]))


class _Song:
    """Helpers shared by the style writers: pitches from scale degrees, chords per step."""

    def __init__(self, plan: dict[str, Any]):
        self.root = plan["root"]
        self.scale = _SCALES[plan["mode"]]
        self.mode = plan["mode"]
        prog = plan["progression"]
        per = _PHRASE // len(prog)
        self.chord_at = [prog[min(s // per, len(prog) - 1)] for s in range(_PHRASE)]

    def pitch(self, degree: int, octave: int = 4) -> int:
        """MIDI pitch of a scale degree (0 = tonic) counted from the tonic in ``octave``."""
        return 12 * (octave + 1) + self.root + 12 * (degree // 7) + self.scale[degree % 7]

    def chord_pcs(self, degree: int, size: int = 3, skip_root: bool = False) -> list[int]:
        """Pitch classes of the chord built in thirds on a scale degree."""
        start = 1 if skip_root else 0
        return [self.pitch(degree + 2 * i) % 12 for i in range(start, start + size)]

    @staticmethod
    def voicing(pcs: Sequence[int], low: int) -> list[int]:
        """Place pitch classes in the octave starting at ``low``: close voicing, smooth motion."""
        return sorted(low + (pc - low) % 12 for pc in pcs)

    @staticmethod
    def in_range(pc: int, low: int) -> int:
        return low + (pc - low) % 12

    def chord_tone_degree(self, degree: int, chord: int) -> int:
        """Nearest scale degree to ``degree`` that is the root, third or fifth of ``chord``."""
        for offset in (0, -1, 1, -2, 2, -3, 3):
            if (degree + offset - chord) % 7 in (0, 2, 4):
                return degree + offset
        return degree  # pragma: no cover


@dataclass
class _Voice:
    """How a part sounds: oscillator or partials, envelope, level, effects."""

    waveform: str = "sawtooth"
    duty: float = 0.5
    detune: tuple[float, ...] = (0.0,)  # cents, one oscillator each
    partials: tuple[tuple[float, float, float], ...] = ()  # (ratio, level, decay factor): struck sounds
    attack: float = 0.005
    decay: float = 0.3
    sustain: float = 0.7
    release: float = 0.1
    cutoff: float | None = None  # highest harmonic kept, in Hz
    gain: float = 0.3
    send: float = 0.0  # reverb send
    drive: float = 0.0
    lowpass: float | None = None
    highpass: float | None = None


@dataclass
class _Part:
    voice: _Voice
    notes: list[tuple[float, float, int, float]] = field(default_factory=list)  # step, steps, midi, velocity
    cutoffs: list[float | None] = field(default_factory=list)  # per-note harmonic cutoff (optional)

    def add(self, step: float, steps: float, midi: int, velocity: float = 1.0, cutoff: float | None = None) -> None:
        self.notes.append((float(step), float(steps), int(midi), float(velocity)))
        self.cutoffs.append(cutoff)


@dataclass
class _DrumPart:
    sample: np.ndarray
    hits: list[tuple[float, float]] = field(default_factory=list)  # step, velocity
    gain: float = 0.5
    send: float = 0.0

    def add(self, step: float, velocity: float = 1.0) -> None:
        self.hits.append((float(step), float(velocity)))


@dataclass
class _Arrangement:
    parts: list[_Part] = field(default_factory=list)
    drums: list[_DrumPart] = field(default_factory=list)
    reverb: float = 1.0  # RT60 in seconds
    master_lowpass: float | None = None
    master_drive: float = 0.0
    crackle: float = 0.0
    air: float = 0.0  # soft filtered noise bed


def _drum_sample(sr: int, seconds: float, render: Callable[..., np.ndarray], params: dict[str, float],
                 rng: np.random.Generator) -> np.ndarray:
    n = max(16, int(seconds * sr))
    return _normalise(_fade_out(render(params, rng, sr, n), sr))


def _melody(song: _Song, rng: np.random.Generator, part: _Part, low_degree: int, high_degree: int,
            grid: int, density: float, lengths: Sequence[int], octave: int, pentatonic: bool = True,
            velocity: float = 0.8, steps: int = _PHRASE) -> None:
    """A random walk over the scale: small steps, chord tones on strong beats, some rests."""
    degree = (low_degree + high_degree) // 2
    allowed = _PENTATONIC[song.mode] if pentatonic else set(range(7))
    events: list[tuple[int, int]] = []
    for step in range(0, steps, grid):
        if rng.random() > density:
            continue
        move = int(rng.choice([-2, -1, -1, 0, 1, 1, 2]))
        degree = int(np.clip(degree + move, low_degree, high_degree))
        if step % 8 == 0:
            degree = song.chord_tone_degree(degree, song.chord_at[step % _PHRASE])
        else:
            direction = 1 if move >= 0 else -1
            while degree % 7 not in allowed:
                degree += direction
        degree = int(np.clip(degree, low_degree - 2, high_degree + 2))
        events.append((step, degree))
    for i, (step, degree) in enumerate(events):
        nxt = events[i + 1][0] if i + 1 < len(events) else steps
        length = min(grid * int(rng.choice(lengths)), nxt - step)
        part.add(step, length, song.pitch(degree, octave), velocity * _u(rng, 0.8, 1.0))


def _arrange_hiphop(song: _Song, plan: dict[str, Any], rng: np.random.Generator, sr: int) -> _Arrangement:
    arr = _Arrangement(reverb=1.2, master_lowpass=_u(rng, 6500, 9000), crackle=0.008 if rng.random() < 0.6 else 0.0)
    kp = _kick_params(rng)
    kp.update(decay=_u(rng, 0.2, 0.35), f_end=_u(rng, 45, 58), click=_u(rng, 0.05, 0.12))
    kick_part = _DrumPart(_drum_sample(sr, 0.6, _render_kick, kp, rng), gain=0.85)
    sp = _snare_params(rng)
    sp.update(noise_lp=_u(rng, 5000, 7000), body_tau=_u(rng, 0.08, 0.12))
    snare_part = _DrumPart(_drum_sample(sr, 0.5, _render_snare, sp, rng), gain=0.6, send=0.15)
    hp = _hihat_params(rng)
    hp.update(decay=_u(rng, 0.02, 0.045), hp=_u(rng, 5000, 7000))
    hat_part = _DrumPart(_drum_sample(sr, 0.3, _render_metal, hp, rng), gain=0.22)
    patterns = ([0, 10], [0, 7, 10], [0, 3, 10], [0, 8, 10], [0, 10, 13], [0, 2, 10], [0, 10, 11])
    a, b = rng.choice(len(patterns), 2, replace=False)
    sixteenths = rng.random() < 0.4
    bass = _Part(_Voice("sine", attack=0.005, decay=0.4, sustain=0.7, release=0.08, gain=0.42, drive=1.5))
    for bar in range(PHRASE_BARS):
        kicks = patterns[a if bar % 2 == 0 else b]
        base = bar * STEPS_PER_BAR
        for i, k in enumerate(kicks):
            kick_part.add(base + k, 1.0 if k == 0 else 0.85)
            nxt = kicks[i + 1] if i + 1 < len(kicks) else STEPS_PER_BAR
            chord = song.chord_at[base + k]
            bass.add(base + k, min(nxt - k, 8), song.in_range(song.pitch(chord) % 12, 28))
        snare_part.add(base + 4)
        snare_part.add(base + 12)
        if rng.random() < 0.4:
            snare_part.add(base + int(rng.choice([7, 15])), 0.25)
        for s in range(0, STEPS_PER_BAR, 1 if sixteenths else 2):
            hat_part.add(base + s, (0.8 if s % 4 == 0 else 0.55 if s % 2 == 0 else 0.4) * _u(rng, 0.85, 1.0))
    keys_voice = (_Voice("sawtooth", detune=(-8.0, 8.0), attack=0.25, decay=1.0, sustain=0.8, release=0.6,
                         cutoff=_u(rng, 1200, 2000), gain=0.16, send=0.35)
                  if rng.random() < 0.5 else
                  _Voice(partials=((1, 1, 1), (2, 0.35, 0.5), (3, 0.12, 0.33), (4, 0.05, 0.25)),
                         decay=1.2, release=0.3, gain=0.22, send=0.3))
    keys = _Part(keys_voice)
    per = _PHRASE // len(plan["progression"])
    for start in range(0, _PHRASE, per):
        for m in song.voicing(song.chord_pcs(song.chord_at[start], 4), 55):
            keys.add(start, per, m, 0.8)
    arr.parts += [bass, keys]
    if rng.random() < 0.75:
        lead = _Part(_Voice(partials=((1, 1, 1), (2, 0.3, 0.5), (3, 0.1, 0.3)), decay=0.6, release=0.2,
                            gain=0.2, send=0.35))
        _melody(song, rng, lead, 0, 9, grid=2, density=0.35, lengths=(1, 2, 3), octave=5)
        arr.parts.append(lead)
    arr.drums += [kick_part, snare_part, hat_part]
    return arr


def _arrange_techno(song: _Song, plan: dict[str, Any], rng: np.random.Generator, sr: int) -> _Arrangement:
    arr = _Arrangement(reverb=1.0, master_drive=1.5)
    kp = _kick_params(rng)
    kp.update(decay=_u(rng, 0.25, 0.45), f_end=_u(rng, 45, 55), hold=0.02, drive=_u(rng, 2.0, 3.0))
    kick_part = _DrumPart(_drum_sample(sr, 0.6, _render_kick, kp, rng), gain=0.9)
    op = _hihat_params(rng)
    op.update(decay=_u(rng, 0.06, 0.1))
    open_hat = _DrumPart(_drum_sample(sr, 0.4, _render_metal, op, rng), gain=0.35, send=0.1)
    cp = _hihat_params(rng)
    cp.update(decay=_u(rng, 0.015, 0.03))
    closed_hat = _DrumPart(_drum_sample(sr, 0.2, _render_metal, cp, rng), gain=0.2)
    clap = _DrumPart(_drum_sample(sr, 0.4, _render_clap, _percussion_params(rng, "clap"), rng), gain=0.45, send=0.3)
    use_clap, use_closed = rng.random() < 0.7, rng.random() < 0.5
    for bar in range(PHRASE_BARS):
        base = bar * STEPS_PER_BAR
        for s in range(STEPS_PER_BAR):
            if s % 4 == 0:
                kick_part.add(base + s)
            elif s % 4 == 2:
                open_hat.add(base + s, 0.8)
            elif use_closed:
                closed_hat.add(base + s, _u(rng, 0.4, 0.7))
        if use_clap:
            clap.add(base + 4)
            clap.add(base + 12)
    bass = _Part(_Voice("sawtooth", attack=0.002, decay=0.12, sustain=0.5, release=0.03, gain=0.35))
    candidates = [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15]
    hits = [s for s in candidates if rng.random() < (0.65 if s % 4 == 2 else 0.3)]
    if len(hits) < 3:
        hits = [2, 6, 10, 14]
    offsets = [int(rng.choice([0, 0, 0, 12, 7, 10])) for _ in hits]
    lengths = [float(rng.choice([0.5, 0.75, 1.0])) for _ in hits]
    cutoffs = [_u(rng, 300, 2500) for _ in hits]
    for bar in range(PHRASE_BARS):
        base = bar * STEPS_PER_BAR
        root = song.in_range(song.pitch(song.chord_at[base]) % 12, 33)
        for s, off, ln, co in zip(hits, offsets, lengths, cutoffs):
            bass.add(base + s, ln, root + off, 0.9, cutoff=co)
    arr.parts.append(bass)
    if rng.random() < 0.5:
        stab = _Part(_Voice("sawtooth", detune=(-10.0, 10.0), attack=0.002, decay=0.15, sustain=0.3,
                            release=0.15, cutoff=3000, gain=0.15, send=0.5))
        stab_steps = [6] if rng.random() < 0.5 else [3, 11]
        for bar in range(PHRASE_BARS):
            base = bar * STEPS_PER_BAR
            for s in stab_steps:
                for m in song.voicing(song.chord_pcs(song.chord_at[base]), 60):
                    stab.add(base + s, 1.5, m, 0.8)
        arr.parts.append(stab)
    if rng.random() < 0.6:
        arp = _Part(_Voice("pulse", duty=0.25, attack=0.002, decay=0.08, sustain=0.4, release=0.05,
                           cutoff=5000, gain=0.12, send=0.4))
        motif = [(s, int(rng.integers(4))) for s in range(STEPS_PER_BAR) if rng.random() < 0.5]
        for bar in range(PHRASE_BARS):
            base = bar * STEPS_PER_BAR
            tones = song.voicing(song.chord_pcs(song.chord_at[base], 4), 72)
            for s, i in motif:
                arp.add(base + s, 1.0, tones[i], 0.8)
        arr.parts.append(arp)
    arr.drums += [kick_part, open_hat, closed_hat, clap]
    return arr


def _arrange_ambient(song: _Song, plan: dict[str, Any], rng: np.random.Generator, sr: int) -> _Arrangement:
    arr = _Arrangement(reverb=_u(rng, 3.5, 5.0), master_lowpass=_u(rng, 4500, 6500), air=0.02)
    pad = _Part(_Voice(str(rng.choice(["sawtooth", "triangle"])), detune=(-7.0, 7.0), attack=_u(rng, 1.5, 3.0),
                       decay=2.0, sustain=0.9, release=2.5, cutoff=_u(rng, 700, 1300), gain=0.2, send=0.6))
    drone = _Part(_Voice("sine", attack=1.0, decay=2.0, sustain=0.9, release=2.0, gain=0.25, send=0.3))
    per = _PHRASE // len(plan["progression"])
    for start in range(0, _PHRASE, per):
        chord = song.chord_at[start]
        for m in song.voicing(song.chord_pcs(chord, 4), 52):
            pad.add(start, per, m, 0.7)
        drone.add(start, per, song.in_range(song.pitch(chord) % 12, 36), 0.8)
    arr.parts += [pad, drone]
    if rng.random() < 0.9:
        bell = _Part(_Voice(partials=((1, 1, 1), (2.0, 0.3, 0.6), (2.76, 0.25, 0.4), (5.4, 0.1, 0.25),
                                      (8.93, 0.05, 0.15)),
                            decay=_u(rng, 1.5, 2.5), release=1.0, gain=0.18, send=0.8))
        _melody(song, rng, bell, 0, 10, grid=2, density=0.12, lengths=(4, 6, 8), octave=5)
        arr.parts.append(bell)
    return arr


def _arrange_chiptune(song: _Song, plan: dict[str, Any], rng: np.random.Generator, sr: int) -> _Arrangement:
    arr = _Arrangement(reverb=0.3)

    def chip_kick(p: dict[str, float], r: np.random.Generator, rate: int, n: int) -> np.ndarray:
        t = np.arange(n) / rate
        f = 45 + 150 * np.exp(-t / 0.02)
        return _osc(f, n, rate, "triangle") * np.exp(-t / 0.1)

    def chip_noise(p: dict[str, float], r: np.random.Generator, rate: int, n: int) -> np.ndarray:
        t = np.arange(n) / rate
        hold = max(1, int(rate / p["clock"]))
        return _held_noise(n, r, hold) * np.exp(-t / p["decay"])

    kick_part = _DrumPart(_drum_sample(sr, 0.3, chip_kick, {}, rng), gain=0.6)
    snare_part = _DrumPart(_drum_sample(sr, 0.3, chip_noise, {"clock": _u(rng, 6000, 11000),
                                                              "decay": _u(rng, 0.06, 0.1)}, rng), gain=0.4)
    hat_part = _DrumPart(_drum_sample(sr, 0.1, chip_noise, {"clock": sr, "decay": _u(rng, 0.012, 0.025)}, rng),
                         gain=0.2)
    extra_kick = int(rng.choice([6, 10, 14]))
    for bar in range(PHRASE_BARS):
        base = bar * STEPS_PER_BAR
        for s in (0, 8, extra_kick):
            kick_part.add(base + s)
        snare_part.add(base + 4)
        snare_part.add(base + 12)
        for s in range(0, STEPS_PER_BAR, 2):
            hat_part.add(base + s, 0.7 if s % 4 == 0 else 0.5)
    bass = _Part(_Voice("triangle", attack=0.002, decay=0.1, sustain=0.8, release=0.02, gain=0.4))
    arp = _Part(_Voice("pulse", duty=float(rng.choice([0.125, 0.25])), attack=0.001, decay=0.05, sustain=0.7,
                       release=0.01, gain=0.14))
    rate = float(rng.choice([0.5, 1.0]))  # 32nd or 16th notes
    shape = [0, 1, 2, 3] if rng.random() < 0.5 else [0, 1, 2, 3, 2, 1]
    for bar in range(PHRASE_BARS):
        base = bar * STEPS_PER_BAR
        chord = song.chord_at[base]
        root = song.in_range(song.pitch(chord) % 12, 36)
        for s in range(0, STEPS_PER_BAR, 2):
            bass.add(base + s, 1.6, root + (12 if s % 4 == 2 else 0), 0.9)
        tones = song.voicing(song.chord_pcs(chord), 60)
        tones = tones + [tones[0] + 12]
        for j, s in enumerate(np.arange(0, STEPS_PER_BAR, rate)):
            arp.add(base + s, rate * 0.9, tones[shape[j % len(shape)]], 0.8)
    lead = _Part(_Voice("pulse", duty=float(rng.choice([0.5, 0.25])), attack=0.002, decay=0.1, sustain=0.8,
                        release=0.02, gain=0.25))
    _melody(song, rng, lead, 0, 11, grid=int(rng.choice([1, 2])), density=0.55, lengths=(1, 2, 4), octave=5,
            pentatonic=False)
    arr.parts += [bass, arp, lead]
    arr.drums += [kick_part, snare_part, hat_part]
    return arr


def _arrange_rock(song: _Song, plan: dict[str, Any], rng: np.random.Generator, sr: int) -> _Arrangement:
    arr = _Arrangement(reverb=1.0, master_drive=1.3)
    kp = _kick_params(rng)
    kp.update(decay=_u(rng, 0.12, 0.2), click=_u(rng, 0.2, 0.3), f_end=_u(rng, 55, 65))
    kick_part = _DrumPart(_drum_sample(sr, 0.5, _render_kick, kp, rng), gain=0.8)
    sp = _snare_params(rng)
    sp.update(noise_mix=_u(rng, 0.55, 0.7), noise_tau=_u(rng, 0.12, 0.2))
    snare_part = _DrumPart(_drum_sample(sr, 0.5, _render_snare, sp, rng), gain=0.7, send=0.25)
    hp = _hihat_params(rng)
    hp.update(decay=_u(rng, 0.03, 0.06))
    hat_part = _DrumPart(_drum_sample(sr, 0.3, _render_metal, hp, rng), gain=0.25)
    crash_p = {"f0": _u(rng, 250, 350), "noise_mix": 0.8, "hp": 3000.0, "decay": _u(rng, 0.8, 1.3),
               "attack": 0.002}
    crash = _DrumPart(_drum_sample(sr, 2.0, _render_metal, crash_p, rng), gain=0.3, send=0.2)
    patterns = ([0, 8], [0, 8, 10], [0, 6, 8], [0, 2, 8], [0, 8, 11])
    a, b = rng.choice(len(patterns), 2, replace=False)
    crash.add(0, 0.9)
    for bar in range(PHRASE_BARS):
        base = bar * STEPS_PER_BAR
        for s in patterns[a if bar % 2 == 0 else b]:
            kick_part.add(base + s)
        snare_part.add(base + 4)
        snare_part.add(base + 12)
        for s in range(0, STEPS_PER_BAR, 2):
            hat_part.add(base + s, 0.75 if s % 4 == 0 else 0.5)
    guitar = _Part(_Voice("sawtooth", detune=(-6.0, 6.0), attack=0.003, decay=0.4, sustain=0.7, release=0.05,
                          gain=0.22, drive=_u(rng, 6, 12), lowpass=_u(rng, 3500, 5000), highpass=90, send=0.15))
    bass = _Part(_Voice("sawtooth", attack=0.003, decay=0.3, sustain=0.7, release=0.04, cutoff=700, gain=0.35))
    chug = rng.random() < 0.5
    for bar in range(PHRASE_BARS):
        base = bar * STEPS_PER_BAR
        chord = song.chord_at[base]
        root = song.in_range(song.pitch(chord) % 12, 40)
        rhythm = [(s, 1.7) for s in range(0, STEPS_PER_BAR, 2)] if chug else [(0, 6), (6, 2), (8, 6), (14, 2)]
        for s, ln in rhythm:
            for m in (root, root + 7, root + 12):
                guitar.add(base + s, ln, m, 0.9)
        for s in range(0, STEPS_PER_BAR, 2):
            bass.add(base + s, 1.8, root - 12, 0.9)
    arr.parts += [guitar, bass]
    if rng.random() < 0.6:
        lead = _Part(_Voice("sawtooth", attack=0.005, decay=0.3, sustain=0.8, release=0.05, gain=0.12,
                            drive=4.0, lowpass=4000, send=0.3))
        _melody(song, rng, lead, 0, 9, grid=2, density=0.4, lengths=(1, 2, 4), octave=4)
        arr.parts.append(lead)
    arr.drums += [kick_part, snare_part, hat_part, crash]
    return arr


def _arrange_jazz(song: _Song, plan: dict[str, Any], rng: np.random.Generator, sr: int) -> _Arrangement:
    arr = _Arrangement(reverb=1.2)
    ride_p = {"f0": _u(rng, 300, 420), "noise_mix": 0.35, "hp": _u(rng, 4000, 5500), "decay": _u(rng, 0.4, 0.7),
              "attack": 0.001}
    ride = _DrumPart(_drum_sample(sr, 1.2, _render_metal, ride_p, rng), gain=0.17, send=0.2)
    pedal_p = _hihat_params(rng)
    pedal_p.update(decay=0.02)
    pedal = _DrumPart(_drum_sample(sr, 0.2, _render_metal, pedal_p, rng), gain=0.15)
    kp = _kick_params(rng)
    kp.update(decay=0.15, click=0.05, drive=1.0)
    kick_part = _DrumPart(_drum_sample(sr, 0.4, _render_kick, kp, rng), gain=0.5)

    def brush(p: dict[str, float], r: np.random.Generator, rate: int, n: int) -> np.ndarray:
        t = np.arange(n) / rate
        x = _filt(r.standard_normal(n), rate, "bandpass", (2000, 8000))
        return x * np.minimum(t / 0.01, 1.0) * np.exp(-t / p["decay"])

    brush_part = _DrumPart(_drum_sample(sr, 0.5, brush, {"decay": _u(rng, 0.12, 0.2)}, rng), gain=0.3, send=0.2)
    ride_vel = {0: 0.7, 4: 0.85, 6: 0.55, 8: 0.7, 12: 0.85, 14: 0.55}
    for bar in range(PHRASE_BARS):
        base = bar * STEPS_PER_BAR
        for s, v in ride_vel.items():
            ride.add(base + s, v * _u(rng, 0.85, 1.0))
        pedal.add(base + 4, 0.6)
        pedal.add(base + 12, 0.6)
        for s in (0, 4, 8, 12):
            kick_part.add(base + s, 0.25 if rng.random() > 0.1 else 0.7)
        for s in (2, 6, 10, 14):
            if rng.random() < 0.25:
                brush_part.add(base + s, _u(rng, 0.3, 0.7))
    upright = _Voice(partials=((1, 1, 1), (2, 0.5, 0.6), (3, 0.2, 0.4)), decay=0.5, release=0.08, gain=0.5)
    bass = _Part(upright)
    for bar in range(PHRASE_BARS):
        base = bar * STEPS_PER_BAR
        chord = song.chord_at[base]
        next_chord = song.chord_at[(base + STEPS_PER_BAR) % _PHRASE]
        root = song.in_range(song.pitch(chord) % 12, 38)
        target = song.in_range(song.pitch(next_chord) % 12, 38)
        tones = song.chord_pcs(chord, 4)
        line = [root, song.in_range(tones[int(rng.integers(1, 4))], 38 + int(rng.choice([0, 5])))]
        line.append(song.in_range(tones[int(rng.integers(1, 4))], 38))
        line.append(target + int(rng.choice([-1, 1])))
        for beat, m in enumerate(line):
            bass.add(base + 4 * beat, 3.6, m, 0.9 if beat == 0 else 0.8)
    comp = _Part(_Voice(partials=((1, 1, 1), (2, 0.35, 0.5), (3, 0.12, 0.33), (4, 0.05, 0.25)), decay=1.0,
                        release=0.15, gain=0.16, send=0.25))
    for bar in range(PHRASE_BARS):
        base = bar * STEPS_PER_BAR
        chord = song.chord_at[base]
        voicing = song.voicing(song.chord_pcs(chord, 4, skip_root=True), 55)
        hits = sorted(rng.choice([0, 2, 6, 10, 12, 14], size=int(rng.integers(2, 4)), replace=False))
        for i, s in enumerate(hits):
            nxt = hits[i + 1] if i + 1 < len(hits) else STEPS_PER_BAR
            for m in voicing:
                comp.add(base + s, min(nxt - s, 6), m, _u(rng, 0.6, 0.9))
    vibes = _Part(_Voice(partials=((1, 1, 1), (3.98, 0.35, 0.3), (9.8, 0.08, 0.12)), decay=0.8, release=0.2,
                         gain=0.2, send=0.3))
    _melody(song, rng, vibes, 0, 11, grid=2, density=0.5, lengths=(1, 1, 2, 3), octave=5, pentatonic=False)
    arr.parts += [bass, comp, vibes]
    arr.drums += [ride, pedal, kick_part, brush_part]
    return arr


_ARRANGERS = {
    "hiphop": _arrange_hiphop, "techno": _arrange_techno, "ambient": _arrange_ambient,
    "chiptune": _arrange_chiptune, "rock": _arrange_rock, "jazz": _arrange_jazz,
}


def _step_times(steps: np.ndarray, plan: dict[str, Any]) -> np.ndarray:
    """Seconds at which (possibly fractional) 16th-note steps fall, with swing.

    Notes come in pairs (two 16ths, or two 8ths when swinging 8ths); the second note of a
    pair moves from halfway to ``swing`` of the way through the pair.
    """
    pair = 2 * plan["swing_steps"]
    sw = plan["swing"]
    q = np.mod(steps, pair)
    base = steps - q
    half = pair / 2
    swung = np.where(q < half, q * (sw * pair) / half, sw * pair + (q - half) * (pair - sw * pair) / half)
    return (base + swung) * plan["beat_seconds"] / 4


def _note_env(n_gate: int, n_total: int, sr: int, v: _Voice) -> np.ndarray:
    """Linear attack, exponential decay to sustain while the key is held, then a release."""
    t = np.arange(n_total) / sr
    env = v.sustain + (1 - v.sustain) * np.exp(-np.maximum(t - v.attack, 0.0) / max(v.decay, 1e-4))
    if v.attack > 0:
        env *= np.minimum(t / v.attack, 1.0)
    if n_total > n_gate:
        level = env[max(n_gate - 1, 0)]
        rel = np.arange(n_total - n_gate) / sr
        env[n_gate:] = level * np.exp(-rel / max(v.release / 5, 1e-4)) * (1 - rel / max(v.release, 1e-4))
    return env


def _damped_sines(partials: Sequence[tuple[float, float, float]], n: int, sr: int) -> np.ndarray:
    """Sum of level * sin(2 pi f t) * exp(-t / tau) over (f, tau, level), for a struck sound.

    Each partial is the imaginary part of z**j with z = exp((2 pi i f - 1/tau) / sr). We compute
    one block of powers exactly and reach the later blocks by multiplying by z**block: one
    complex product per sample instead of a sin() and an exp().
    """
    block = 1024
    blocks = -(-n // block)
    j = np.arange(block)
    out = np.zeros(blocks * block)
    for f, tau, level in partials:
        rate = (2j * np.pi * f - 1.0 / tau) / sr
        first = np.exp(rate * j)
        steps = np.exp(rate * block * np.arange(blocks))
        out += level * np.outer(steps, first).imag.ravel()
    return out[:n]


def _render_part(part: _Part, plan: dict[str, Any], n: int, sr: int, reps: int, rng: np.random.Generator,
                 jitter: float) -> np.ndarray:
    v = part.voice
    tail = int((v.release + 0.05) * sr)
    if v.partials:
        tail = int((v.decay * 5 + v.release) * sr)
    buf = np.zeros(n + int(_PHRASE * plan["beat_seconds"] / 4 * sr) + tail + 1)
    phrase_seconds = _PHRASE * plan["beat_seconds"] / 4
    for rep in range(reps):
        for (step, steps, midi, vel), cutoff in zip(part.notes, part.cutoffs):
            start = float(_step_times(np.array([step]), plan)[0]) + rep * phrase_seconds
            end = float(_step_times(np.array([step + steps]), plan)[0]) + rep * phrase_seconds
            if jitter:
                start += rng.normal(0.0, jitter)
            s0 = max(0, int(round(start * sr)))
            if s0 >= n:
                continue
            gate = max(1, int(round((end - start) * sr)))
            if v.partials:  # struck: rings for at most ~5 decay times, damped on release
                gate = min(gate, int(v.decay * 5 * sr))
            total = max(1, min(gate + int(v.release * sr), tail + gate))
            f = float(midi_to_hz(midi))
            if f >= sr / 2:
                continue
            if v.partials:
                t = np.arange(total) / sr
                wave = _damped_sines([(f * ratio, v.decay * factor, level) for ratio, level, factor in v.partials
                                      if f * ratio < 0.45 * sr], total, sr)
                wave *= np.minimum(t / 0.002, 1.0)
                if total > gate:  # damped when released
                    rel = np.arange(total - gate) / sr
                    wave[gate:] *= np.exp(-rel / max(v.release / 5, 1e-4)) * (1 - rel / max(v.release, 1e-4))
            else:
                wave = np.zeros(total)
                for cents in v.detune:
                    wave += _osc(f * 2 ** (cents / 1200), total, sr, v.waveform, v.duty,
                                 phase=_u(rng, 0, 2 * np.pi), cutoff=cutoff or v.cutoff)
                wave *= _note_env(gate, total, sr, v) / len(v.detune)
            end_idx = min(s0 + total, len(buf))
            buf[s0:end_idx] += vel * wave[: end_idx - s0]
    y = _fold(buf, n)
    if v.drive:
        y = _drive(y / max(np.abs(y).max(), 1e-9), v.drive)
    if v.highpass:
        y = _filt_loop(y, sr, "highpass", v.highpass)
    if v.lowpass:
        y = _filt_loop(y, sr, "lowpass", v.lowpass, order=4)
    return y


def _render_drums(d: _DrumPart, plan: dict[str, Any], n: int, sr: int, reps: int, rng: np.random.Generator,
                  jitter: float) -> np.ndarray:
    """Place the sample at every hit: an impulse train convolved with the sample."""
    if not d.hits:
        return np.zeros(n)
    steps = np.array([h[0] for h in d.hits])
    vels = np.array([h[1] for h in d.hits])
    phrase_seconds = _PHRASE * plan["beat_seconds"] / 4
    times = (_step_times(steps, plan)[None, :] + phrase_seconds * np.arange(reps)[:, None]).ravel()
    vels = np.tile(vels, reps)
    if jitter:
        times = times + rng.normal(0.0, jitter, times.shape)
    idx = np.round(times * sr).astype(np.int64)
    keep = (idx >= 0) & (idx < n)
    m = len(d.sample)
    buf = np.zeros(n + m)
    for i, v in zip(idx[keep], vels[keep]):  # a few hundred hits: adding slices beats an FFT
        buf[i:i + m] += v * d.sample
    return _fold(buf, n)


def _circular_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Convolution that wraps round the end of ``x``: the linear one, folded to len(x)."""
    n = len(x)
    h = _fold(h, n) if len(h) > n else h
    return np.fft.irfft(np.fft.rfft(x) * np.fft.rfft(h, n), n)


def _reverb(x: np.ndarray, sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A simple algorithmic room: convolution with exponentially decaying, darkened noise."""
    m = max(16, int(min(rt60 * 1.2, 6.0) * sr))
    t = np.arange(m) / sr
    ir = rng.standard_normal(m) * np.exp(-6.91 * t / rt60)
    ir = _filt(ir, sr, "lowpass", 5000)
    ir *= np.minimum(t / 0.01, 1.0)  # a short pre-delay-like fade in
    ir /= np.sqrt(np.sum(ir ** 2))
    return _circular_convolve(x, ir)


def music_clip(style: str, duration: float = 10.0, sample_rate: int = 22050, seed: int = 0) -> np.ndarray:
    """A short piece of music in one of ``MUSIC_STYLES``: drums, bass, chords and a melody.

    Each style has its own tempo range, groove, sounds and harmony (see :func:`music_params`
    for the choices a seed makes): hip-hop is a swung ~90 BPM beat with sub bass and minor
    pads; techno a four-on-the-floor kick at 125-135 BPM with off-beat hats and a saw bass;
    ambient slow pads and bells with no drums; chiptune pulse-wave leads, fast arpeggios and
    noise drums; rock distorted power chords over a backbeat; jazz a swung ride pattern,
    walking bass and seventh chords. A 4-bar phrase repeats, and tails that run past the end
    wrap round to the start, so the clip loops without a click. Peak level is 0.89.
    """
    style = _check_style(style)
    sr = check_sample_rate(sample_rate)
    if sr < 8000:
        raise CourseInputError(f"sample_rate: {sr} Hz is too low for music; use at least 8000 (e.g. 22050).")
    n = _n_samples(duration, sr)
    if n > 600 * sr:
        raise CourseInputError(f"duration: {duration!r} s is longer than 10 minutes; make shorter clips.")
    rng = _clip_rng(style, seed)
    plan = _plan(style, rng)
    arrangement = _ARRANGERS[style](_Song(plan), plan, rng, sr)
    phrase_seconds = _PHRASE * plan["beat_seconds"] / 4
    reps = int(np.ceil(n / sr / phrase_seconds))
    jitter = _STYLES[style].humanise_ms / 1000.0
    mix = np.zeros(n)
    bus = np.zeros(n)
    for part in arrangement.parts:
        y = part.voice.gain * _render_part(part, plan, n, sr, reps, rng, jitter)
        mix += y
        bus += part.voice.send * y
    for d in arrangement.drums:
        y = d.gain * _render_drums(d, plan, n, sr, reps, rng, jitter)
        mix += y
        bus += d.send * y
    if arrangement.air:
        air = _filt_loop(_coloured(n, rng, 1.0), sr, "lowpass", 1200)
        lfo = 0.6 + 0.4 * np.sin(2 * np.pi * np.arange(n) / n * max(1, round(n / sr / 8)))
        mix += arrangement.air * _normalise(air) * lfo
    if arrangement.crackle:
        pops = (rng.random(n) < 30.0 / sr) * rng.standard_normal(n)
        mix += arrangement.crackle * _normalise(_filt_loop(pops, sr, "highpass", 1000) + 0.05 * rng.standard_normal(n))
    if np.any(bus):
        mix += 0.5 * _reverb(bus, sr, arrangement.reverb, rng)
    mix = _filt_loop(mix, sr, "highpass", 25)
    if arrangement.master_lowpass:
        mix = _filt_loop(mix, sr, "lowpass", arrangement.master_lowpass)
    if arrangement.master_drive:
        mix = _drive(_normalise(mix), arrangement.master_drive)
    return _finish(_normalise(mix, 0.89))


# ----------------------------------------------------------------------------------------------
# Spoken-digit-like syllables (lesson 06): ten words made by a tiny formant synthesiser
# ----------------------------------------------------------------------------------------------
#
# A voice is a buzz (the vocal folds: harmonics of a pitch f0, falling as 1/k) shaped by a few
# resonances of the vocal tract, the *formants*: their frequencies F1, F2, F3 decide which vowel
# we hear ("ee" has F1 low and F2 high, "oo" both low). Consonants are noise: a hiss band for
# "s" / "f" / "th", a short burst after a silence for "t" / "k", a quiet low hum for "n".
# Each class below is a sequence of such segments loosely following the English number word;
# a seed draws the speaker (pitch, vocal-tract size), the speed, the pitch contour and the level.

DIGIT_CLASSES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Formant frequencies (Hz) F1, F2, F3 of an adult male voice (textbook averages, rounded).
_FORMANTS: dict[str, tuple[float, float, float]] = {
    "i": (270, 2290, 3010),    # "ee" in three
    "I": (390, 1990, 2550),    # "i" in six
    "e": (480, 2050, 2650),    # start of "ei" in eight
    "E": (530, 1840, 2480),    # "e" in seven
    "a": (730, 1090, 2440),    # start of "ai" in five, nine
    "O": (570, 840, 2410),     # "o" in four
    "^": (640, 1190, 2390),    # "u" in one
    "@": (500, 1500, 2500),    # the weak vowel in seven
    "o": (450, 900, 2300),     # start of "ou" in zero
    "u": (300, 870, 2240),     # "oo" in two
    "y": (340, 1500, 2300),    # a fronted "oo": the t in two pulls F2 up
    "w": (300, 610, 2200),     # the w in one
    "r": (490, 1350, 1690),    # r: F3 dips low
    "n": (250, 1400, 2500),    # the nasal murmur of n
    "z": (260, 1600, 2500),    # the voicing under z and v
}
_BANDWIDTHS = (60.0, 90.0, 130.0)
_NASAL_BANDWIDTHS = (80.0, 350.0, 450.0)  # damped upper formants: a dull hum

# Segments: ("vowel", seconds, from, to) | ("nasal", seconds) | ("fric", seconds, low Hz, high Hz,
# noise level, voicing level) | ("stop", closure seconds, burst seconds, low Hz, high Hz, level).
_WORDS: dict[str, tuple[tuple[Any, ...], ...]] = {
    "zero": (("fric", 0.11, 3500, 8000, 0.22, 0.35), ("vowel", 0.10, "I", "i"), ("vowel", 0.08, "r", "r"),
             ("vowel", 0.20, "o", "u")),
    "one": (("vowel", 0.28, "w", "^"), ("nasal", 0.14)),
    "two": (("stop", 0.03, 0.025, 2500, 7000, 0.6), ("fric", 0.04, 1000, 5000, 0.12, 0.0),
            ("vowel", 0.30, "y", "u")),
    "three": (("fric", 0.12, 1500, 8000, 0.10, 0.0), ("vowel", 0.06, "r", "r"), ("vowel", 0.30, "i", "i")),
    "four": (("fric", 0.12, 1200, 7000, 0.12, 0.0), ("vowel", 0.22, "O", "O"), ("vowel", 0.12, "O", "r")),
    "five": (("fric", 0.11, 1200, 7000, 0.12, 0.0), ("vowel", 0.30, "a", "I"), ("fric", 0.07, 1000, 6000, 0.06, 0.4)),
    "six": (("fric", 0.13, 4000, 9000, 0.40, 0.0), ("vowel", 0.12, "I", "I"), ("stop", 0.06, 0.02, 1500, 3500, 0.5),
            ("fric", 0.14, 4000, 9000, 0.35, 0.0)),
    "seven": (("fric", 0.12, 4000, 9000, 0.40, 0.0), ("vowel", 0.13, "E", "E"), ("fric", 0.05, 1000, 6000, 0.06, 0.4),
              ("vowel", 0.08, "@", "@"), ("nasal", 0.12)),
    "eight": (("vowel", 0.28, "e", "i"), ("stop", 0.05, 0.03, 2500, 7000, 0.5)),
    "nine": (("nasal", 0.09), ("vowel", 0.30, "a", "I"), ("nasal", 0.14)),
}
_MIN_DIGIT_SECONDS = 0.5  # the longest word at its fastest still needs about this much


def _check_digit_label(label: Any) -> int:
    """A class index 0-9 from an int or a name in DIGIT_CLASSES."""
    if isinstance(label, str):
        return DIGIT_CLASSES.index(check_choice(label, "label", DIGIT_CLASSES))
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= int(label) < 10:
        raise CourseInputError(f"label: expected a class index 0-9 or a name in {DIGIT_CLASSES}, got {label!r}.")
    return int(label)


def _digit_speaker(rng: np.random.Generator) -> dict[str, float]:
    """The random choices of one clip: voice, speed, intonation, level."""
    f0 = float(np.exp(rng.uniform(np.log(85.0), np.log(250.0))))  # low male to child voices
    size = float(np.clip((1.0 + 0.3 * (f0 - 85.0) / 165.0) * rng.uniform(0.94, 1.06), 0.88, 1.35))
    return {
        "f0": f0,
        "formant_scale": size,  # a smaller vocal tract (higher voice) has higher formants
        "speed": _u(rng, 0.8, 1.2),  # multiplies every segment's length
        "rise": _u(rng, 0.0, 2.0),  # semitones above f0 at the start
        "fall": _u(rng, 1.0, 5.0),  # semitones below f0 at the end
        "start": _u(rng, 0.015, 0.06),  # seconds of silence before the word
        "peak": _u(rng, 0.35, 0.9),
    }


def _digit_segments(word: str, p: dict[str, float], rng: np.random.Generator, sr: int, n: int
                    ) -> tuple[list[dict[str, Any]], int]:
    """Lay the word's segments out in samples; returns them and the sample where the word ends."""
    spec = _WORDS[word]
    lengths = np.array([s[1] + (s[2] if s[0] == "stop" else 0.0) for s in spec])
    lengths = lengths * p["speed"] * rng.uniform(0.9, 1.1, len(spec))
    start = p["start"]
    room = n / sr - start - 0.02  # keep 20 ms of silence at the end
    if lengths.sum() > room:
        lengths *= room / lengths.sum()
    segments = []
    pos = int(round(start * sr))
    for s, seconds in zip(spec, lengths):
        m = max(1, int(round(seconds * sr)))
        segments.append({"spec": s, "begin": pos, "end": pos + m})
        pos += m
    return segments, pos


def _formant_tracks(segments: list[dict[str, Any]], scale: float, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample formants (3, n) and bandwidths (3, n): vowels glide from their start to their end
    targets; a consonant holds the targets of the voiced sound next to it."""
    targets = []
    for seg in segments:
        kind = seg["spec"][0]
        if kind == "vowel":
            targets.append((_FORMANTS[seg["spec"][2]], _FORMANTS[seg["spec"][3]], _BANDWIDTHS))
        elif kind == "nasal":
            targets.append((_FORMANTS["n"], _FORMANTS["n"], _NASAL_BANDWIDTHS))
        elif kind == "fric" and seg["spec"][5] > 0:
            targets.append((_FORMANTS["z"], _FORMANTS["z"], _BANDWIDTHS))
        else:
            targets.append(None)
    for i, t in enumerate(targets):  # voiceless segments borrow from the next voiced one (or the last)
        if t is None:
            after = next((u for u in targets[i + 1:] if u is not None), None)
            before = next((u for u in reversed(targets[:i]) if u is not None), None)
            ref = after[0] if after is not None else before[1]
            targets[i] = (ref, ref, _BANDWIDTHS)
    freqs = np.zeros((3, n))
    bands = np.zeros((3, n))
    first, last = segments[0], segments[-1]
    for seg, (a, b, bw) in zip(segments, targets):
        lo, hi = seg["begin"], min(seg["end"], n)
        frac = np.linspace(0.0, 1.0, hi - lo)
        freqs[:, lo:hi] = np.asarray(a)[:, None] + (np.asarray(b) - np.asarray(a))[:, None] * frac
        bands[:, lo:hi] = np.asarray(bw)[:, None]
    freqs[:, :first["begin"]] = freqs[:, first["begin"]:first["begin"] + 1]
    bands[:, :first["begin"]] = bands[:, first["begin"]:first["begin"] + 1]
    end = min(last["end"], n)
    freqs[:, end:] = freqs[:, end - 1:end]
    bands[:, end:] = bands[:, end - 1:end]
    smooth = np.hanning(2 * int(0.02 * sr) + 1)  # ~20 ms glides between segments
    smooth /= smooth.sum()
    pad = len(smooth) // 2
    for track in (freqs, bands):
        for row in range(3):
            padded = np.pad(track[row], pad, mode="edge")
            track[row] = signal.fftconvolve(padded, smooth, mode="valid")
    return freqs * scale, bands * np.sqrt(scale)


def _smoothed(x: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """A moving Hann-window average: soft edges for piecewise-constant envelopes."""
    m = max(3, int(seconds * sr) | 1)
    w = np.hanning(m)
    return signal.fftconvolve(x, w / w.sum(), mode="same")


def _ramps(m: int, r: int) -> np.ndarray:
    """An envelope of ``m`` ones with raised-cosine fades of ``r`` samples at both ends (no clicks)."""
    env = np.ones(m)
    r = min(r, m // 2)
    if r > 0:
        fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
        env[:r] *= fade
        env[m - r:] *= fade[::-1]
    return env


def _voice(f0: np.ndarray, freqs: np.ndarray, bands: np.ndarray, amp: np.ndarray, sr: int) -> np.ndarray:
    """Harmonics of ``f0`` weighted 1/k and by the cascade formant response at their frequency.

    Amplitudes are computed every 32 samples and interpolated; the sines of k * phase come from
    the recurrence sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x), one cos and one sin per sample.
    """
    n = len(f0)
    top = min(0.45 * sr, 6000.0)
    k_max = max(1, int(top / f0.max()))
    ctrl = np.arange(0, n, 32)
    fk = np.arange(1, k_max + 1)[:, None] * f0[ctrl][None, :]  # (K, C) harmonic frequencies
    gain = np.ones_like(fk)
    for row in range(3):
        F = freqs[row, ctrl][None, :]
        B = bands[row, ctrl][None, :]
        gain *= F ** 2 / np.sqrt((F ** 2 - fk ** 2) ** 2 + (B * fk) ** 2)
    gain /= np.arange(1, k_max + 1)[:, None]
    gain *= amp[ctrl][None, :]
    phase = 2 * np.pi * np.concatenate(([0.0], np.cumsum(f0[:-1]))) / sr
    t = np.arange(n)
    c2 = 2.0 * np.cos(phase)
    s_prev, s_cur = np.zeros(n), np.sin(phase)
    out = np.zeros(n)
    for k in range(k_max):
        out += np.interp(t, ctrl, gain[k]) * s_cur
        s_prev, s_cur = s_cur, c2 * s_cur - s_prev
    return out


def _render_digit(word: str, rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    p = _digit_speaker(rng)
    segments, word_end = _digit_segments(word, p, rng, sr, n)
    word_begin = segments[0]["begin"]
    freqs, bands = _formant_tracks(segments, p["formant_scale"], n, sr)
    # Intonation: from `rise` semitones above f0 down to `fall` below over the word, plus a slow wobble.
    t = np.arange(n)
    frac = np.clip((t - word_begin) / max(1, word_end - word_begin), 0.0, 1.0)
    wobble = _smoothed(rng.standard_normal(n), sr, 0.08)
    wobble *= 0.25 / max(np.abs(wobble).max(), 1e-9)
    semitones = p["rise"] + (-p["fall"] - p["rise"]) * frac + wobble
    f0 = p["f0"] * 2.0 ** (semitones / 12.0)
    voicing = np.zeros(n)
    noise = np.zeros(n)
    for seg in segments:
        kind, lo, hi = seg["spec"][0], seg["begin"], min(seg["end"], n)
        if kind == "vowel":
            voicing[lo:hi] = 1.0
        elif kind == "nasal":
            voicing[lo:hi] = 0.35
        elif kind == "fric":
            _, _, f_lo, f_hi, level, voiced = seg["spec"]
            voicing[lo:hi] = voiced
            m = hi - lo
            env = np.minimum(1.0, np.linspace(0.4, 1.4, m)) * _ramps(m, int(0.012 * sr))  # a hiss swells
            band = _filt(rng.standard_normal(m + 256), sr, "bandpass", (f_lo, f_hi), order=3)[256:]
            noise[lo:hi] += level * _normalise(band) * env
        else:  # stop: silence, then a burst that dies away in ~10 ms
            _, closure, burst_s, f_lo, f_hi, level = seg["spec"]
            b = lo + int(round((hi - lo) * closure / (closure + burst_s)))
            m = hi - b
            if m > 1:
                burst = _filt(rng.standard_normal(m + 256), sr, "bandpass", (f_lo, f_hi), order=3)[256:]
                env = np.exp(-np.arange(m) / (0.01 * sr)) * _ramps(m, int(0.001 * sr))
                noise[b:hi] += level * _normalise(burst) * env
    voicing = _smoothed(voicing, sr, 0.025)
    voice = _voice(f0, freqs, bands, voicing, sr)
    x = _normalise(voice) + noise
    return _fade_out(_normalise(x, p["peak"]), sr, 0.01)


def digit_like_clip(label: int | str, seed: Any = 0, sample_rate: int = 22050, duration: float = 0.74
                    ) -> np.ndarray:
    """One spoken-digit-like word (class ``label``: 0-9 or a name in ``DIGIT_CLASSES``), shape (T,).

    A formant-synthesised syllable loosely following the English number word ("s" + "i" + "k" + "s"
    for six, "n" + "ai" + "n" for nine, ...), not real speech: the classes differ in their vowels
    (formant glides), hisses, bursts and hums, which a listener (and a spectrogram) tells apart.
    ``seed`` (an int or a NumPy Generator) draws the speaker's pitch (85-250 Hz) and vocal-tract
    size, the speed (+-20 %), the pitch contour, the onset time and the peak level (0.35-0.9).
    ``T = round(sample_rate * duration)``: 0.74 s at 22 050 Hz gives the lesson-01 pipeline's
    256 x 64 spectrogram (frame 512, hop 256).
    """
    cls = _check_digit_label(label)
    rng = _rng(seed)
    sr = check_sample_rate(sample_rate)
    if sr < 8000:
        raise CourseInputError(f"sample_rate: {sr} Hz is too low for speech-like sound; use at least 8000 (22050).")
    n = _n_samples(duration, sr)
    if n < _MIN_DIGIT_SECONDS * sr or n > 10 * sr:
        raise CourseInputError(
            f"duration: {duration!r} s does not fit a word; use {_MIN_DIGIT_SECONDS} to 10 seconds (e.g. 0.74)."
        )
    return _finish(_render_digit(DIGIT_CLASSES[cls], rng, sr, n))


def digit_dataset(n_per_class: int, seed: int = 0, sample_rate: int = 22050, duration: float = 0.74,
                  classes: Sequence[str] = DIGIT_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` clips of every class: (audio [N, T] float32, labels [N] int64).

    Rows are interleaved (zero, one, ..., nine, zero, ...); a label is the index into
    ``DIGIT_CLASSES``. Clip i of a class depends only on (seed, class, i), so a bigger dataset
    starts with the same clips as a smaller one, and two seeds give disjoint train/test sets.
    """
    n_per = check_positive_int(n_per_class, "n_per_class")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CourseInputError(f"seed: expected a non-negative integer, got {seed!r}.")
    if isinstance(classes, str) or not isinstance(classes, (list, tuple)) or len(classes) == 0:
        raise CourseInputError(f"classes: expected a non-empty list drawn from {DIGIT_CLASSES}, got {classes!r}.")
    for c in classes:
        check_choice(c, "classes", DIGIT_CLASSES)
    sr = check_sample_rate(sample_rate)
    first = digit_like_clip(classes[0], np.random.default_rng(0), sr, duration)  # checks the duration
    audio = np.zeros((n_per * len(classes), first.shape[0]), np.float32)
    labels = np.zeros(audio.shape[0], np.int64)
    row = 0
    for i in range(n_per):
        for c in classes:
            cls = DIGIT_CLASSES.index(c)
            rng = np.random.default_rng(np.random.SeedSequence([int(seed), cls, i]))
            audio[row] = digit_like_clip(cls, rng, sr, duration)
            labels[row] = cls
            row += 1
    return audio, labels
