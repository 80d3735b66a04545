"""What scripts/train_text_audio_embedding.py and scripts/train_latent_diffusion.py share: data, captions, mel.

Not a script of its own; both scripts run from the repository root, which puts this folder on ``sys.path``.

- Course-made music (``course_lib.synth.music_clip``, the six styles of ``MUSIC_STYLES``) at 22 050 Hz,
  4.5 s per clip, cut into three 64 x 64 mel images (``course_lib.Mel``: n_fft 1024, hop 512, 64 bands,
  1.49 s each, the images of lesson 02's ``mel-diffusion-64``). Seeds apart from every other course
  model's: training clips ``TRAIN_SEED0 + i``, held-out clips ``HELD_OUT_SEED0 + i``.
- Captions from ``scripts/_course_music.py`` (style word in one of a few spellings, tempo, instruments,
  mood), drawn afresh every time an image is used, so the text encoder meets many wordings.
"""

from __future__ import annotations

import numpy as np
import torch

from course_lib.data import cached_tensors
from course_lib.mel import Mel
from course_lib.synth import MUSIC_STYLES, music_clip

from _course_music import caption, caption_words, style_prompt

__all__ = ["MEL", "SAMPLE_RATE", "TRAIN_SEED0", "HELD_OUT_SEED0", "STYLES", "mel_dataset", "captions_for",
           "prompts_for", "images_to_unit", "unit_to_audio", "vocabulary"]

MEL = dict(x_res=64, y_res=64, sample_rate=22050, n_fft=1024, hop_length=512, top_db=80, n_iter=32)
SAMPLE_RATE = 22050
CLIP_SECONDS = 4.5  # three whole 64-frame images
TRAIN_SEED0 = 50_000
HELD_OUT_SEED0 = 60_000
STYLES = list(MUSIC_STYLES)


def mel_dataset(n_per_style: int, seed0: int) -> dict[str, torch.Tensor]:
    """Mel images of ``n_per_style`` clips of every style (seeds ``seed0 + i``), cached.

    ``images`` (N, 64, 64) uint8, ``labels`` (N,) style ids, ``seeds`` (N,) clip seeds,
    ``audio`` (N, 32767) float32: the slice each image was made from (the reference for Fréchet distances).
    """
    def make() -> dict[str, torch.Tensor]:
        mel = Mel(**MEL)
        images, labels, seeds, audio = [], [], [], []
        for k, style in enumerate(STYLES):
            for i in range(n_per_style):
                clip = torch.from_numpy(music_clip(style, CLIP_SECONDS, SAMPLE_RATE, seed=seed0 + i).astype(np.float32))
                imgs = mel.audio_to_images(clip)
                images.append(imgs)
                audio.append(clip[: imgs.shape[0] * mel.slice_size].reshape(imgs.shape[0], mel.slice_size))
                labels += [k] * imgs.shape[0]
                seeds += [seed0 + i] * imgs.shape[0]
        return {"images": torch.cat(images), "labels": torch.tensor(labels), "seeds": torch.tensor(seeds),
                "audio": torch.cat(audio)}

    params = {"styles": STYLES, "n": n_per_style, "seed0": seed0, "seconds": CLIP_SECONDS, **MEL}
    return cached_tensors("text-audio-mels", params, make)


def captions_for(labels: torch.Tensor, seeds: torch.Tensor, rng: np.random.Generator) -> list[str]:
    """A fresh caption for each image (style ``labels[i]``, clip seed ``seeds[i]``)."""
    return [caption(STYLES[int(k)], int(s), rng, legacy_articles=True) for k, s in zip(labels, seeds)]


def prompts_for(labels: torch.Tensor) -> list[str]:
    """Short evaluation prompts that name each style, cycling through four wordings."""
    return [style_prompt(STYLES[int(k)], i, legacy_articles=True) for i, k in enumerate(labels)]


def images_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 mel images (N, 64, 64) -> float (N, 1, 64, 64) in [-1, 1]."""
    return images.to(torch.float32)[:, None] / 127.5 - 1.0


def unit_to_audio(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Float mel images (N, 1, 64, 64) in [-1, 1] -> audio (N, 32256) by course_lib.Mel's Griffin-Lim."""
    pixels = ((x[:, 0].clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return Mel(**MEL, seed=seed).images_to_audio(pixels, chunk=16)


def vocabulary() -> list[str]:
    """The words of every caption and prompt (plus common music words), split as the tokenizer splits them."""
    words: list[str] = []
    for w in caption_words() + [",", "-", "a", "with", "and", "at", "feel", "track"]:
        for piece in w.replace("-", " - ").replace(",", " , ").split():
            if piece.lower() not in words:
                words.append(piece.lower())
    return words
