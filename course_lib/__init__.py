"""course_lib: the companion library of the course on generating audio with deep learning.

Import the module you need; nothing heavy is imported here. The package is built in layers, and a
module imports only from the layers below it (the contract is ``.importlinter``, checked by ``make test``)::

    checks/        exercise feedback: harness + lesson01 ... lesson07 (re-exported by checks)
      |
    drums, musicgen, compare      lesson glue: what one lesson needs on top of the models
      |
    metrics        spectral convergence; Fréchet distance on a judge's embeddings
      |
    diffusion/     pipeline (mel-image diffusion, lessons 02-03, 06), vdiffusion (lesson 05), losses
      |
    models/        unet1d, vae, classifier and clap (the judges), text_audio, mel_unet; base (save/load), release
      |
    data, training                 datasets and caching; the one training loop (budgets, exact resume)
    checkpoints                    training's checkpoints: atomic, resumable, no litter after a kill
    preprocess, mel, hub_datasets  classic preprocessing; ``Mel`` (audio <-> images); Hub datasets
    spectrogram                    batched STFT, mel filters, dB, Griffin-Lim
    audio, synth/                  load/save/resample/play/plot; course-made sound
      |
    hub, validate, settings, io, errors     foundation: where models come from, input checks,
                                            profile/online/device/seeds, atomic files, the error type

    tools/         exercises, grade, colab, lab: the teacher's and maintainer's tools, apart (no torch)
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Mel", "__version__"]


def __getattr__(name: str):
    # ``from course_lib import Mel`` without importing torch at package import time.
    if name == "Mel":
        from course_lib.mel import Mel

        return Mel
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
