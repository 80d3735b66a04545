"""Spoken-digit-like words: ten classes ("zero" ... "nine") made by a tiny formant synthesiser.

Lesson 06's data. Not real speech, but each class has its own vowels, hisses, bursts and hums,
and each seed its own speaker (pitch, vocal-tract size, speed, intonation).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import signal

from course_lib.synth.dsp import _fade_out, _filt, _normalise
from course_lib.synth.signals import _check_dataset_request, _finish, _n_samples, _rng, _u
from course_lib.validate import CourseInputError, check_choice, check_sample_rate

__all__ = ["DIGIT_CLASSES", "digit_like_clip", "digit_dataset"]


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

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    n_per = _check_dataset_request(n_per_class, seed, classes, DIGIT_CLASSES)
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
