"""Course-made sound: tones, chirps, chords, noise, drum one-shots, short music clips and
spoken-digit-like words.

Everything here is procedural and deterministic: the same ``seed`` gives the same array, bit
for bit, on any CPU. The course uses it wherever it would otherwise need a download, so every
lesson runs offline. All functions return float32 NumPy arrays with samples in [-1, 1].

Two ideas carry the whole package:

- **Band-limited oscillators.** A square, sawtooth or triangle wave has harmonics all the way
  up; sampled naively, those above the Nyquist frequency fold back as aliases (inharmonic
  whistles). We build them from their Fourier series and stop before Nyquist.
- **Randomised parameters.** A kick is a sine sweeping down in pitch plus a click; drawing the
  pitch, decay, click level... from ranges gives thousands of different but recognisable kicks.

Modules (every name below is also here, ``from course_lib import synth; synth.tone(...)``):

- :mod:`course_lib.synth.signals`  pitch maths, tones, chirps, chords, ADSR envelopes, noise
- :mod:`course_lib.synth.drums`    kick, snare, hi-hat and percussion one-shots, ``drum_dataset``
- :mod:`course_lib.synth.music`    music clips in six styles, ``music_clip`` and ``music_params``
- :mod:`course_lib.synth.digits`   spoken-digit-like words, ``digit_like_clip`` and ``digit_dataset``
- :mod:`course_lib.synth.dsp`      small filters and effects the three above share
"""

from __future__ import annotations

from course_lib.synth.digits import DIGIT_CLASSES, digit_dataset, digit_like_clip
from course_lib.synth.drums import (
    DRUM_CLASSES,
    PERCUSSION_VARIANTS,
    drum_dataset,
    drum_one_shot,
    hihat,
    kick,
    percussion,
    snare,
)
from course_lib.synth.music import MUSIC_STYLES, PHRASE_BARS, STEPS_PER_BAR, music_clip, music_params
from course_lib.synth.signals import (
    NOISE_KINDS,
    WAVEFORMS,
    adsr,
    chirp,
    chord,
    midi_to_hz,
    noise,
    note_to_hz,
    note_to_midi,
    tone,
)

__all__ = [
    "WAVEFORMS",
    "NOISE_KINDS",
    "DRUM_CLASSES",
    "PERCUSSION_VARIANTS",
    "MUSIC_STYLES",
    "DIGIT_CLASSES",
    "STEPS_PER_BAR",
    "PHRASE_BARS",
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
