"""course_lib: the companion library of the course on generating audio with deep learning.

Modules (import the one you need; nothing heavy is imported here):

- ``course_lib.settings``    profile (quick/full), online/offline, device, seeds
- ``course_lib.validate``    input checks with errors that say how to fix them
- ``course_lib.audio``       load, save, resample, normalise, play, plot
- ``course_lib.spectrogram`` batched STFT, mel, dB, Griffin-Lim
- ``course_lib.mel``         ``Mel``: audio <-> mel-spectrogram images (diffusers' ``Mel``, batched)
- ``course_lib.preprocess``  the classic spectrogram preprocessing pipeline, done right and batched
- ``course_lib.synth``       course-made sound: tones, chirps, chords, drums, music styles, digit-like words
- ``course_lib.data``        dataset rows, offline datasets, on-disk caching
- ``course_lib.metrics``     spectral convergence, Fréchet distance on classifier embeddings
- ``course_lib.classifier``  small course-trained music-style, drum and digit-word classifiers (embeddings for metrics)
- ``course_lib.diffusion``   the spectrogram diffusion pipeline (sampling, inpainting, inversion, ...)
- ``course_lib.unet1d``      a readable 1-D U-Net for waveforms (lesson 05), ``reference`` and ``laptop`` configs
- ``course_lib.vdiffusion``  v-diffusion: cosine schedule, v-loss, DDIM-style and stochastic samplers, guidance
- ``course_lib.drums``       lesson 05's one-shots: your own folder, the shipped model, evaluation, 24-bit export
- ``course_lib.vae``         a spectrogram VAE (lesson 06's non-diffusion baseline)
- ``course_lib.compare``     generators side by side: Fréchet distance, clips per second, parameters
- ``course_lib.training``    the one training loop: budgets, progress, atomic checkpoints, exact resume
- ``course_lib.hub``         Hub models online, the course's shipped stand-ins offline
- ``course_lib.musicgen``    MusicGen loading, generation helpers, the codebook delay pattern
- ``course_lib.checks``      feedback for exercises (lesson 05's in ``checks_waveform``, lesson 06's in ``checks_vae``)
- ``course_lib.exercises``   builds exercise notebooks from solutions
- ``course_lib.grade``       the teacher's grader
- ``course_lib.colab``       the repository address, Colab badges and setup cells
- ``course_lib.lab``         ``python -m course_lib.lab``: JupyterLab on the course (``make lab``)
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
