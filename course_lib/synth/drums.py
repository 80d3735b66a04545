"""Drum one-shots: kicks, snares, hi-hats and hand percussion, and labelled datasets of them.

Each hit draws its parameters (pitch, decay, click level, drive...) from ranges and then renders
them: a kick is a sine sweeping down in pitch plus a click, so thousands of seeds give different
but recognisable kicks. The music styles reuse these renderers for their drum kits.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from course_lib.synth.dsp import _drive, _fade_out, _filt, _normalise
from course_lib.synth.signals import _check_dataset_request, _finish, _osc, _rng, _u
from course_lib.validate import CourseInputError, check_choice, check_positive_int, check_sample_rate

__all__ = ["DRUM_CLASSES", "PERCUSSION_VARIANTS", "kick", "snare", "hihat", "percussion", "drum_one_shot",
           "drum_dataset"]

DRUM_CLASSES = ("kick", "snare", "hihat", "percussion")
PERCUSSION_VARIANTS = ("tom", "conga", "clap", "rim", "cowbell")


# ----------------------------------------------------------------------------------------------
# Drum one-shots: parameters are drawn from ranges, then rendered
# ----------------------------------------------------------------------------------------------


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

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    n_per = _check_dataset_request(n_per_class, seed, classes, DRUM_CLASSES)
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
