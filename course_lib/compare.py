"""Put generative models side by side on the same data: Fréchet distance, speed, size, and what they make.

Lesson 06 compares its spectrogram VAE with a spectrogram diffusion model trained on the same digit
clips. A comparison is fair when both sides are measured the same way, so the measuring lives here:

- every model is wrapped as a *generator*: a function ``(n, generator) -> audio (n, T)`` that goes all
  the way to sound (Griffin-Lim included, with the same number of iterations on both sides);
- :func:`measure_generator` times it (clips per second, after one untimed warm-up batch), asks a judge
  classifier which class each clip sounds like, and takes the Fréchet distance of the clips to a set
  of held-out real clips on the judge's embedding.

``vae_generator`` and ``diffusion_generator`` build the generators for the course's two model kinds;
:func:`comparison_table` prints the result as a Markdown table.

A generator can only be as good as the representation it draws in. :func:`spectrogram_round_trip`
and :func:`mel_round_trip` send *real* clips through each representation and back (no model at all),
which gives every model its own floor: what a perfect model of those pictures would score.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from course_lib.settings import make_generator
from course_lib.validate import CourseInputError, as_float_tensor, check_positive_int

__all__ = [
    "GeneratorReport",
    "measure_generator",
    "vae_generator",
    "diffusion_generator",
    "spectrogram_round_trip",
    "mel_round_trip",
    "comparison_table",
]

Generator = Callable[[int, torch.Generator], torch.Tensor]


@dataclass
class GeneratorReport:
    """One model's numbers. ``fd``: Fréchet distance to the held-out clips (lower is closer)."""

    name: str
    parameters: int
    clips: int
    seconds: float
    clips_per_second: float
    fd: float
    class_counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def vae_generator(vae: Any, mins: Any, maxs: Any, n_iter: int = 64, temperature: float = 1.0) -> Generator:
    """Prior samples of a :class:`~course_lib.models.vae.SpectrogramVAE`, turned into sound.

    A prior sample has no clip of its own, so its dB range is ``mins``/``maxs`` (numbers, or arrays
    whose median is used: pass the training clips' table). Griffin-Lim runs ``n_iter`` iterations.

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    lo = float(np.median(np.asarray(mins, dtype=np.float64)))
    hi = float(np.median(np.asarray(maxs, dtype=np.float64)))
    if not np.isfinite([lo, hi]).all() or hi <= lo:
        raise CourseInputError(f"mins/maxs: expected finite dB values with max > min, got {lo} and {hi}; "
                               "pass the training clips' table from course_lib.models.vae.load_min_max.")
    n_iter = check_positive_int(n_iter, "n_iter")

    def generate(n: int, gen: torch.Generator) -> torch.Tensor:
        spec = vae.sample(n, generator=gen, temperature=temperature)
        return vae.to_audio(spec, torch.full((n,), lo), torch.full((n,), hi), n_iter=n_iter, generator=gen)

    generate.parameters = _num_parameters(vae)  # type: ignore[attr-defined]
    return generate


def diffusion_generator(pipe: Any, steps: int = 50, eta: float = 1.0, length: int | None = None) -> Generator:
    """DDIM samples of a :class:`~course_lib.diffusion.SpectrogramDiffusionPipeline`, cut to ``length`` samples.

    A pipeline saved with its training scheduler (DDPM) samples with a ``DDIMScheduler`` of the same
    configuration here (``pipe`` itself is left as it is); ``eta`` is DDIM's noise (1 = stochastic).
    Griffin-Lim iterations come from the pipeline's ``mel.n_iter``.

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    from diffusers import DDIMScheduler

    from course_lib.diffusion import SpectrogramDiffusionPipeline

    steps = check_positive_int(steps, "steps")
    if not isinstance(pipe, SpectrogramDiffusionPipeline):
        raise CourseInputError(f"pipe: expected a SpectrogramDiffusionPipeline, got {type(pipe).__name__}; load one "
                               "with SpectrogramDiffusionPipeline.from_pretrained(folder).")
    if not isinstance(pipe.scheduler, DDIMScheduler):
        pipe = SpectrogramDiffusionPipeline(pipe.unet, DDIMScheduler.from_config(pipe.scheduler.config), pipe.mel)

    def generate(n: int, gen: torch.Generator) -> torch.Tensor:
        audio = torch.as_tensor(pipe(n, steps=steps, eta=eta, generator=gen, progress=False).audios)
        return audio if length is None else audio[:, :length]

    generate.parameters = _num_parameters(pipe.unet)  # type: ignore[attr-defined]
    return generate


def spectrogram_round_trip(audio: Any, n_iter: int = 64, generator: torch.Generator | None = None,
                           sample_rate: int = 22050, duration: float = 0.74, frame_size: int = 512,
                           hop_length: int = 256) -> torch.Tensor:
    """Real clips (N, T) through the VAE's representation and back: lesson 01's log-spectrogram, then Griffin-Lim.

    Each clip keeps its own dB range, so only the lost phase (and the 80 dB floor) separates the
    result from the original: the best a perfect spectrogram model could sound.
    """
    from course_lib.models.vae import features_to_audio, preprocess_clips

    features, mins, maxs = preprocess_clips(audio, sample_rate, duration, frame_size, hop_length)
    length = round(sample_rate * duration)
    return features_to_audio(features, mins, maxs, n_iter=n_iter, generator=generator, frame_size=frame_size,
                             hop_length=hop_length, length=length)


def mel_round_trip(mel: Any, audio: Any, length: int | None = None, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """Real clips (N, T) through a diffusion pipeline's representation and back: a ``Mel`` image, then audio.

    Clips shorter than one image are padded with silence; each must fit in one image. The image
    has 8-bit pixels, ``mel.y_res`` mel bands and a fixed dB range, and the way back is
    Griffin-Lim: the best a perfect model of those images could sound. ``length`` cuts the result.
    """
    x = as_float_tensor(audio, "audio", min_ndim=2, max_ndim=2)
    if x.shape[1] > mel.slice_size:
        raise CourseInputError(f"audio: clips of {x.shape[1]} samples do not fit one image ({mel.slice_size} samples); "
                               "cut them first, or use a Mel with a larger x_res or hop_length.")
    images = mel.audio_to_images(x, pad=True)
    out = mel.images_to_audio(images, generator=generator)
    return out if length is None else out[:, :length]


def measure_generator(name: str, generate: Generator, n: int, real_audio: Any, judge: Any, batch_size: int = 50,
                      seed: int = 0, progress: bool = True) -> tuple[GeneratorReport, torch.Tensor]:
    """Make ``n`` clips with ``generate`` in batches, timed; judge them against ``real_audio``.

    Returns the report and the clips (n, T). One small batch runs first, untimed, so one-off costs
    (allocations, kernel choice) do not count. ``judge``: a classifier with ``predict``, ``embed`` and
    ``classes`` (e.g. :func:`course_lib.models.classifier.load_digit_classifier`).

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    from course_lib.settings import progress as progress_bar

    from course_lib.metrics import frechet_audio_distance

    n = check_positive_int(n, "n", minimum=2)
    batch_size = check_positive_int(batch_size, "batch_size")
    if not callable(generate):
        raise CourseInputError(f"generate: expected a function (n, generator) -> audio, got {type(generate).__name__}; "
                               "build one with vae_generator or diffusion_generator.")
    real = as_float_tensor(real_audio, "real_audio", min_ndim=2, max_ndim=2)
    if real.shape[0] < 2:
        raise CourseInputError(f"real_audio: need at least 2 real clips for a Fréchet distance, got {real.shape[0]}.")
    with torch.no_grad():
        generate(min(2, n), make_generator(seed + 10_000))  # warm-up, untimed
        gen = make_generator(seed)
        clips = []
        started = time.perf_counter()
        for start in progress_bar(range(0, n, batch_size), desc=name, disable=not progress):
            clips.append(torch.as_tensor(generate(min(batch_size, n - start), gen)).float().cpu())
        seconds = time.perf_counter() - started
    audio = torch.cat(clips)
    if audio.ndim != 2 or audio.shape[0] != n:
        raise CourseInputError(f"generate: expected audio (n, T) with n={n}, got {tuple(audio.shape)}.")
    if not torch.isfinite(audio).all():
        raise CourseInputError(f"{name}: the generated audio contains NaN or inf; check the model's weights.")
    pred = judge.predict(audio).numpy()
    counts = {c: int((pred == i).sum()) for i, c in enumerate(judge.classes)}
    fd = frechet_audio_distance(audio, real, judge)
    params = int(getattr(generate, "parameters", 0))
    return GeneratorReport(name, params, n, round(seconds, 6), round(n / seconds, 3), round(fd, 3), counts), audio


def comparison_table(reports: list[GeneratorReport], floor: float | None = None,
                     references: dict[str, float] | None = None) -> str:
    """The reports as a Markdown table; ``floor``: the FD of other real clips, shown as the best reachable.

    ``references``: more FD-only rows, such as real clips through each model's representation.

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    lines = ["| model | parameters | FD to held-out (lower is better) | clips per second | classes heard |",
             "|---|---:|---:|---:|---:|"]
    for r in reports:
        heard = sum(1 for v in r.class_counts.values() if v > 0)
        lines.append(f"| {r.name} | {r.parameters:,} | {r.fd:.2f} | {r.clips_per_second:.2f} | {heard} of {len(r.class_counts)} |")
    for name, value in (references or {}).items():
        lines.append(f"| {name} | | {value:.2f} | | |")
    if floor is not None:
        lines.append(f"| other real clips (the floor) | | {floor:.2f} | | |")
    return "\n".join(lines)
