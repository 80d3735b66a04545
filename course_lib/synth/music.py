"""Short music clips in six styles (hip-hop, techno, ambient, chiptune, rock, jazz).

A seed picks a plan (tempo, swing, key, chord progression: :func:`music_params`); a style's
arranger writes a 4-bar phrase of drums, bass, chords and melody; the parts are rendered with the
oscillators of :mod:`course_lib.synth.signals` and the drum sounds of :mod:`course_lib.synth.drums`,
mixed, and looped so the clip repeats without a click.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from course_lib.synth.drums import (
    _hihat_params,
    _kick_params,
    _percussion_params,
    _render_clap,
    _render_kick,
    _render_metal,
    _render_snare,
    _snare_params,
)
from course_lib.synth.dsp import _drive, _fade_out, _filt, _filt_loop, _fold, _held_noise, _normalise
from course_lib.synth.signals import _PC_NAMES, _coloured, _finish, _n_samples, _osc, _u, midi_to_hz
from course_lib.validate import CourseInputError, check_choice, check_sample_rate

__all__ = ["MUSIC_STYLES", "STEPS_PER_BAR", "PHRASE_BARS", "music_params", "music_clip"]

MUSIC_STYLES = ("hiphop", "techno", "ambient", "chiptune", "rock", "jazz")


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

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
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
