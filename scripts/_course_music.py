"""What scripts/train_codec.py and scripts/train_musicgen.py share: data, seeds, captions, saving, measuring.

Not a script of its own. Both scripts run from the repository root (``python scripts/train_codec.py``),
which puts this folder on ``sys.path``.

- Course-made music at the style classifier's rate (22 050 Hz, so the judge hears the same band it
  was trained on) from :func:`course_lib.synth.music_clip`, with seed ranges apart from the
  classifier's (10 000+, 20 000+) and from each other: training clips ``TRAIN_SEED0 + i``, held-out
  clips ``HELD_OUT_SEED0 + i``.
- Captions a learner would type, made from :func:`course_lib.synth.music_params`: the style word
  (in one of a few spellings), the tempo, the instruments and a mood, in varied wording.
- :func:`save_pretrained_atomically`: a ``save_pretrained`` folder written file by file through
  :func:`course_lib.io.atomic_write`, so a reader sees old files or new files, never half of one.
- :func:`reconstruction_metrics`: spectral convergence and mel distance of audio against a reference.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from course_lib.data import cached_tensors
from course_lib.io import atomic_write, prepare_output_dir
from course_lib.metrics import spectral_convergence
from course_lib.spectrogram import magnitude, mel_spectrogram, power_to_db, stft
from course_lib.synth import MUSIC_STYLES, music_clip, music_params

SAMPLE_RATE = 22_050  # the style classifier's rate: at 16 kHz it recognises clean clips only 77 % of the time
UPSAMPLING = [7, 7, 3, 3]  # hop 441 samples → exactly 50 frames per second, as in musicgen-small
FRAME_RATE = 50
CODEBOOK_SIZE = 512  # 9 bits per code
NUM_CODEBOOKS = 4
BITS_PER_CODE = 9
TRAIN_SEED0 = 30_000
HELD_OUT_SEED0 = 40_000
CLIP_SECONDS = 4.0

# How each style may be named in a caption (the first is the canonical word).
STYLE_WORDS: dict[str, tuple[str, ...]] = {
    "hiphop": ("hip hop", "hip-hop", "lofi hip hop", "boom bap hip hop"),
    "techno": ("techno", "minimal techno", "warehouse techno", "four on the floor techno"),
    "ambient": ("ambient", "ambient soundscape", "calm ambient", "drifting ambient"),
    "chiptune": ("chiptune", "8-bit chiptune", "retro game chiptune", "chiptune video game"),
    "rock": ("rock", "garage rock", "hard rock", "indie rock"),
    "jazz": ("jazz", "swing jazz", "cool jazz", "jazz trio"),
}
INSTRUMENTS: dict[str, tuple[str, ...]] = {
    "hiphop": ("kick", "snare", "hi-hats", "sub bass", "keys", "vinyl crackle"),
    "techno": ("kick drum", "open hats", "clap", "saw bass", "synth stabs"),
    "ambient": ("pads", "bells", "soft drones", "reverb"),
    "chiptune": ("square lead", "arpeggios", "noise drums", "pulse bass"),
    "rock": ("distorted guitar", "bass", "drums", "crash cymbal", "power chords"),
    "jazz": ("ride cymbal", "walking bass", "piano chords", "vibraphone", "brushes"),
}
MOODS: dict[str, tuple[str, ...]] = {
    "hiphop": ("chill", "laid-back", "moody", "dusty", "relaxed"),
    "techno": ("driving", "hypnotic", "dark", "energetic", "pounding"),
    "ambient": ("calm", "dreamy", "peaceful", "floating", "gentle"),
    "chiptune": ("happy", "upbeat", "playful", "bright", "bouncy"),
    "rock": ("energetic", "loud", "raw", "powerful", "gritty"),
    "jazz": ("smooth", "swinging", "relaxed", "warm", "late-night"),
}
_TEMPLATES = (
    "{mood} {style} at {bpm} bpm with {inst}",
    "{a} {mood} {style} track with {inst}",
    "{style}, {bpm} bpm, {inst}, {mood}",
    "{style} beat with {inst}",
    "{mood} {style}",
    "{style} music, {tempo}, {inst}",
    "{style}",
    "{tempo} {style} with {inst} and {a} {mood} feel",
)


def article(word: str, legacy: bool = False) -> str:
    """"an" before a vowel ("an energetic"), else "a"; ``legacy``: always "a".

    Lesson 07's shipped models (text-audio-embedding, text-audio-ldm) were trained on captions that said
    "a" before every mood ("a energetic", "a upbeat"); their scripts pass ``legacy=True`` so that they
    still make those models. Lesson 04's codec and MusicGen were retrained with the grammatical article.
    """
    return "an" if word[:1].lower() in "aeiou" and not legacy else "a"


def style_prompt(style: str, variant: int = 0, legacy_articles: bool = False) -> str:
    """A short prompt that names ``style`` (the evaluation prompts): variant ``i`` picks the wording."""
    words = STYLE_WORDS[style]
    mood = MOODS[style][variant % len(MOODS[style])]
    forms = (f"{words[0]}", f"{mood} {words[0]}", f"{words[variant % len(words)]} music",
             f"{article(mood, legacy_articles)} {mood} {words[0]} track")
    return forms[variant % len(forms)]


def _tempo_word(bpm: float) -> str:
    return "slow" if bpm < 80 else "mid-tempo" if bpm < 120 else "fast"


def caption(style: str, seed: int, rng: np.random.Generator, legacy_articles: bool = False) -> str:
    """A caption for ``music_clip(style, seed=seed)`` from its plan (tempo) and the style's sounds and moods."""
    plan = music_params(style, seed)
    insts = list(INSTRUMENTS[style])
    rng.shuffle(insts)
    inst = " and ".join(insts[: int(rng.integers(1, 3))])
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    name = STYLE_WORDS[style][int(rng.integers(len(STYLE_WORDS[style])))]
    mood = MOODS[style][int(rng.integers(len(MOODS[style])))]
    return template.format(style=name, mood=mood, a=article(mood, legacy_articles), bpm=int(round(plan["bpm"])),
                           tempo=_tempo_word(plan["bpm"]), inst=inst)


def music_set(n_per_style: int, seed0: int, seconds: float = CLIP_SECONDS) -> dict[str, torch.Tensor]:
    """``n_per_style`` clips of every style (seeds ``seed0 + i``) at 22 050 Hz: ``audio`` (N, T) float32,
    ``labels`` (N,) style ids, ``seeds`` (N,). Cached by :func:`course_lib.data.cached_tensors`."""
    def make() -> dict[str, torch.Tensor]:
        audio, labels, seeds = [], [], []
        for k, style in enumerate(MUSIC_STYLES):
            for i in range(n_per_style):
                audio.append(music_clip(style, seconds, SAMPLE_RATE, seed=seed0 + i).astype(np.float32))
                labels.append(k)
                seeds.append(seed0 + i)
        return {"audio": torch.from_numpy(np.stack(audio)), "labels": torch.tensor(labels),
                "seeds": torch.tensor(seeds)}

    params = {"styles": list(MUSIC_STYLES), "n": n_per_style, "seed0": seed0, "seconds": seconds, "sr": SAMPLE_RATE}
    return cached_tensors("course-music", params, make)


def reconstruction_metrics(reference: torch.Tensor, estimate: torch.Tensor) -> dict[str, float]:
    """Spectral convergence (|STFT|, n_fft 1024, hop 256) and mel distance of ``estimate`` against ``reference``.

    Mel distance: the mean absolute difference in dB of 64-band mel power spectrograms (n_fft 1024,
    hop 256), each floored at 80 dB below the reference clip's loudest bin. Both are averaged over clips.
    """
    n = min(reference.shape[-1], estimate.shape[-1])
    ref, est = reference[..., :n].float(), estimate[..., :n].float()
    sc = spectral_convergence(magnitude(stft(ref, 1024, 256)), magnitude(stft(est, 1024, 256)))
    mel_ref = mel_spectrogram(ref, SAMPLE_RATE, 1024, 256, 64)
    mel_est = mel_spectrogram(est, SAMPLE_RATE, 1024, 256, 64)
    peak = mel_ref.amax(dim=(-2, -1), keepdim=True)
    db_ref = power_to_db(mel_ref / peak, top_db=None).clamp_min(-80.0)
    db_est = power_to_db(mel_est / peak, top_db=None).clamp_min(-80.0)
    return {"spectral_convergence": float(torch.as_tensor(sc).mean()),
            "mel_distance_db": float((db_ref - db_est).abs().mean())}


def save_pretrained_atomically(folder: str | os.PathLike, save: Callable[[str], Any]) -> Path:
    """Call ``save(tmp_folder)`` (e.g. ``model.save_pretrained``), then move each file into ``folder`` atomically.

    Files of an earlier save that the new one does not write are left alone (the card, the curve).
    """
    out = prepare_output_dir(folder, "folder")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        save(tmp)
        for src in sorted(Path(tmp).iterdir()):
            if src.is_file():
                atomic_write(out / src.name, lambda dst, src=src: shutil.copyfile(src, dst))
    return out


def folder_megabytes(folder: str | os.PathLike) -> float:
    """The size of all files in ``folder``, in MB (10**6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file()) / 1e6


# ---------------------------------------------------------------------------------------------- text vocabulary

TEXT_VOCAB = 640  # must exceed the decoder's bos id (CODEBOOK_SIZE) so that audio-only prompts work


def caption_words() -> list[str]:
    """Every word the captions and prompts use, plus common music words a learner might type."""
    from make_tiny_musicgen import MUSIC_WORDS

    words: list[str] = []
    texts = [w for group in (STYLE_WORDS, INSTRUMENTS, MOODS) for ws in group.values() for w in ws]
    texts += [t.replace("{", " ").replace("}", " ") for t in _TEMPLATES] + ["slow fast mid-tempo bpm music"]
    for text in texts + [" ".join(MUSIC_WORDS)]:
        for word in text.replace(",", " ").split():
            if word not in words and word not in ("style", "mood", "inst", "tempo"):
                words.append(word)
    return words


def build_vocab() -> list[tuple[str, float]]:
    """The text vocabulary as (piece, score) pairs: make_tiny_musicgen's fixed recipe on the captions' words.

    Whole words (``▁``-marked, preferred by the Unigram model), then single characters so any text can be
    spelled, then unused fillers up to ``TEXT_VOCAB`` (the tokenizer appends 100 ``<extra_id_*>`` tokens).
    """
    from make_tiny_musicgen import build_vocab as fixed_vocab

    pieces = fixed_vocab(caption_words(), TEXT_VOCAB)
    if len(pieces) != TEXT_VOCAB - 100:
        raise RuntimeError(f"vocabulary: {len(pieces)} pieces do not fit in {TEXT_VOCAB - 100}")
    return pieces
