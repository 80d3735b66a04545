"""Spectrogram diffusion: a UNet denoises a mel-spectrogram image, ``Mel`` turns it into sound.

:class:`SpectrogramDiffusionPipeline` does what diffusers' (deprecated) ``AudioDiffusionPipeline``
does, without needing it: it works with any diffusers ``UNet2DModel``, a ``DDPMScheduler`` or
``DDIMScheduler`` and a :class:`course_lib.mel.Mel`, and adds what lesson 02 needs:

- batches, a step count, DDIM's ``eta``, a seed (``settings.make_generator``'s rule: a CPU
  ``torch.Generator``, an int, or None for a seed drawn from torch's global generator);
- variations: start part-way through the schedule (``start_step``) from an existing clip;
- inpainting / continuation: ``mask_start_secs`` / ``mask_end_secs`` keep part of the image fixed
  by re-noising the known region to the current noise level after every step;
- longer audio from wider noise (``width``, a multiple of what the UNet accepts);
- :meth:`~SpectrogramDiffusionPipeline.encode` (DDIM inversion: image -> noise), :func:`slerp`;
- :meth:`~SpectrogramDiffusionPipeline.continue_audio` and :meth:`~SpectrogramDiffusionPipeline.loop`;
- ``save_pretrained`` / ``from_pretrained`` in diffusers' folder layout (``unet/``, ``scheduler/``,
  ``mel/mel_config.json``, ``model_index.json``), safetensors weights.

Images are ``y_res`` mel bands by ``width`` frames; inside the loop pixels live in [-1, 1]
(``x = byte / 255 * 2 - 1``), as in diffusers. Every public way to sample checks its arguments once
and then runs the one denoising loop, ``_denoise``: predict the noise, let the scheduler step, put
back what inpainting keeps, tie the edges of a loop.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from course_lib.io import read_json, write_json
from course_lib.mel import Mel
from course_lib.settings import make_generator
from course_lib.validate import (
    CourseInputError,
    as_float_tensor,
    check_number,
    check_positive_int,
    check_sample_rate,
    prepare_output_dir,
)

__all__ = ["SpectrogramOutput", "SpectrogramDiffusionPipeline", "slerp", "images_to_tensor", "tensor_to_images"]

MODEL_INDEX = "model_index.json"


# ----------------------------------------------------------------------------- small helpers


def images_to_tensor(images: Any, name: str = "images") -> torch.Tensor:
    """uint8 images (H, W), (N, H, W), (N, 1, H, W) or a list of PIL "L" images -> float (N, 1, H, W) in [-1, 1]."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise CourseInputError(f"{name}: the list is empty; give at least one image.")
        images = np.stack([np.asarray(im) for im in images])
    elif hasattr(images, "mode") and hasattr(images, "size"):  # one PIL image
        images = np.asarray(images)
    if isinstance(images, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(images))
    elif isinstance(images, torch.Tensor):
        tensor = images.detach()
    else:
        raise CourseInputError(f"{name}: expected uint8 image(s) (array, tensor or PIL), got {type(images).__name__}.")
    if tensor.dtype != torch.uint8:
        raise CourseInputError(
            f"{name}: has dtype {tensor.dtype}; spectrogram images are uint8 grey levels 0..255 "
            "(as returned in output.images)."
        )
    if tensor.ndim == 2:
        tensor = tensor[None, None]
    elif tensor.ndim == 3:
        tensor = tensor[:, None]
    elif tensor.ndim != 4 or tensor.shape[1] != 1:
        raise CourseInputError(f"{name}: expected shape (H, W), (N, H, W) or (N, 1, H, W), got {tuple(tensor.shape)}.")
    return tensor.to(torch.float32) / 255.0 * 2.0 - 1.0


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """Float images (N, 1, H, W) in [-1, 1] -> uint8 NumPy (N, H, W) (clipped, rounded)."""
    x = (x.detach().to("cpu", torch.float32) / 2.0 + 0.5).clamp(0.0, 1.0)
    return (x[:, 0] * 255.0).round().to(torch.uint8).numpy()


def slerp(x0: Any, x1: Any, alpha: float) -> torch.Tensor:
    """Spherical interpolation between two noise tensors of the same shape (``alpha`` 0 -> x0, 1 -> x1).

    Gaussian noise lives near a sphere, so walking along the great circle keeps the norm near that
    of the endpoints, where a straight line (lerp) would pass through lower-norm, blurrier noise.

    Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
    """
    a = as_float_tensor(x0, "x0")
    b = as_float_tensor(x1, "x1")
    if a.shape != b.shape:
        raise CourseInputError(f"x1: shape {tuple(b.shape)} differs from x0's {tuple(a.shape)}; "
                               "give noises of one shape.")
    t = check_number(alpha, "alpha", 0.0, 1.0)
    na, nb = a.flatten().norm(), b.flatten().norm()
    if float(na) == 0.0 or float(nb) == 0.0:
        raise CourseInputError("x0/x1: an all-zero tensor has no direction to interpolate along; give noise.")
    cos = torch.clamp(torch.dot(a.flatten(), b.flatten()) / (na * nb), -1.0, 1.0)
    theta = torch.acos(cos)
    if float(torch.sin(theta)) < 1e-6:  # (nearly) parallel: the straight line is the arc
        return (1.0 - t) * a + t * b
    return (torch.sin((1.0 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)


@dataclass
class SpectrogramOutput:
    """What the pipeline returns.

    ``images``: uint8 (N, H, W) spectrograms; ``audios``: float32 (N, samples); ``sample_rate`` in Hz;
    ``noise``: the starting noise (N, 1, H, W), handy for slerp and re-generation.
    """

    images: np.ndarray
    audios: np.ndarray
    sample_rate: int
    noise: torch.Tensor | None = None

    @property
    def pil_images(self) -> list:
        """The images as PIL greyscale images (what diffusers' pipeline returns in ``.images``)."""
        from PIL import Image

        return [Image.fromarray(im) for im in self.images]


# ----------------------------------------------------------------------------- the pipeline


class SpectrogramDiffusionPipeline:
    """UNet2DModel + DDPM/DDIM scheduler + ``Mel``: sample spectrogram images and turn them into audio.

    ``pipe(batch_size=2, steps=50, generator=0)`` returns a :class:`SpectrogramOutput`. The image
    height and default width come from ``unet.config.sample_size`` (an int or an (H, W) pair, as
    old and new diffusers configs store it); the ``Mel``'s ``y_res`` must equal that height.

    Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
    """

    def __init__(self, unet: Any, scheduler: Any, mel: Any) -> None:
        from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

        if not isinstance(unet, UNet2DModel):
            raise CourseInputError(f"unet: expected a diffusers UNet2DModel, got {type(unet).__name__}.")
        if not isinstance(scheduler, (DDPMScheduler, DDIMScheduler)):
            raise CourseInputError(
                f"scheduler: expected a DDPMScheduler or DDIMScheduler, got {type(scheduler).__name__}; "
                "make one with DDIMScheduler.from_config(other.config)."
            )
        if not all(hasattr(mel, a) for a in ("x_res", "y_res", "hop_length", "get_sample_rate")):
            raise CourseInputError(f"mel: expected a course_lib.Mel (or diffusers' Mel), got {type(mel).__name__}.")
        self.unet = unet
        self.scheduler = scheduler
        self.mel = mel
        self._check_sizes()

    def __repr__(self) -> str:
        return (f"SpectrogramDiffusionPipeline(sample_size={self.sample_size}, "
                f"scheduler={type(self.scheduler).__name__}, "
                f"sample_rate={self.sample_rate}, hop_length={self.mel.hop_length})")

    # -- sizes ---------------------------------------------------------------------------

    @property
    def sample_size(self) -> tuple[int, int]:
        """(height, width) of the images the UNet was trained on, read from ``unet.config``."""
        size = self.unet.config.sample_size
        if isinstance(size, (int, np.integer)):
            return int(size), int(size)
        size = tuple(int(s) for s in size)
        if len(size) != 2:
            raise CourseInputError(f"unet.config.sample_size: expected an int or (H, W), got {size}.")
        return size  # type: ignore[return-value]

    @property
    def width_multiple(self) -> int:
        """Widths the UNet accepts are multiples of this (2 for each down-sampling block)."""
        return 2 ** max(len(self.unet.config.down_block_types) - 1, 0)

    @property
    def sample_rate(self) -> int:
        """Sample rate of the audio, in Hz."""
        return int(self.mel.get_sample_rate())

    @property
    def device(self) -> torch.device:
        """The UNet's device."""
        return next(self.unet.parameters()).device

    def _check_sizes(self) -> None:
        height, width = self.sample_size
        if int(self.mel.y_res) != height:
            raise CourseInputError(
                f"mel: y_res={self.mel.y_res} but the UNet makes images {height} high "
                f"(unet.config.sample_size={self.unet.config.sample_size}); use Mel(y_res={height}, ...)."
            )
        if int(self.mel.x_res) != width:
            raise CourseInputError(
                f"mel: x_res={self.mel.x_res} but the UNet was trained on images {width} wide "
                f"(unet.config.sample_size={self.unet.config.sample_size}); use Mel(x_res={width}, ...) "
                "and ask for wider images with width=."
            )

    def _check_width(self, width: Any) -> int:
        if width is None:
            return self.sample_size[1]
        width = check_positive_int(width, "width")
        multiple = self.width_multiple
        if width % multiple:
            raise CourseInputError(
                f"width: {width} is not a multiple of {multiple}, which this UNet needs (it halves the image "
                f"{len(self.unet.config.down_block_types) - 1} time(s)); "
                f"try width={max(multiple, width // multiple * multiple)}."
            )
        return width

    def seconds_to_pixels(self, seconds: float) -> int:
        """How many image columns (frames) cover ``seconds`` of audio (``sample_rate / hop_length`` per second).

        Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
        """
        return int(round(float(seconds) * self.sample_rate / self.mel.hop_length))

    def _mel_for(self, width: int) -> Any:
        """A Mel making images ``width`` frames wide (the pipeline's own one when the width matches)."""
        if width == int(self.mel.x_res):
            return self.mel
        if isinstance(self.mel, Mel):
            return Mel.from_config(self.mel.to_dict(), x_res=width, device=self.mel.device)
        raise CourseInputError(
            f"width: {width} differs from mel.x_res={self.mel.x_res} and the mel is not a course_lib.Mel; "
            "set pipe.mel = course_lib.Mel.from_config(dict(pipe.mel.config)) to make wider images."
        )

    def to(self, device: str | torch.device) -> "SpectrogramDiffusionPipeline":
        """Move the UNet (and a course ``Mel``) to ``device``; returns ``self``."""
        self.unet.to(device)
        if isinstance(self.mel, Mel):
            self.mel.to(device)
        return self

    # -- audio <-> images ------------------------------------------------------------------

    def audio_to_image(self, audio: Any, sample_rate: int | None = None, slice: int = 0,
                       width: int | None = None) -> np.ndarray:
        """uint8 image (H, width) of slice ``slice`` of a mono clip; shorter clips are padded with silence.

        ``sample_rate`` (if given) must be the pipeline's: resample first otherwise.

        Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
        """
        if sample_rate is not None:
            check_sample_rate(sample_rate, "sample_rate", expected=self.sample_rate)
        width = self._check_width(width)
        x = as_float_tensor(audio, "raw_audio")
        if x.ndim != 1:
            raise CourseInputError(f"raw_audio: expected mono audio (T,), got shape {tuple(x.shape)}; "
                                   "average the channels.")
        mel = self._mel_for(width)
        if isinstance(mel, Mel):
            images = mel.audio_to_images(x, pad=True)
        else:
            mel.load_audio(raw_audio=x.cpu().numpy())
            images = torch.stack([torch.from_numpy(np.asarray(mel.audio_slice_to_image(i)))
                                  for i in range(mel.get_number_of_slices())])
        slice = check_positive_int(slice, "slice", minimum=0)
        if slice >= images.shape[0]:
            raise CourseInputError(f"slice: the clip has {images.shape[0]} slice(s) of {width} frames; "
                                   f"slice={slice} is past its end.")
        return images[slice].cpu().numpy()

    def images_to_audio(self, images: Any) -> np.ndarray:
        """uint8 images (N, H, W) (an array, or a list of PIL "L" images / arrays) -> float32 audio
        (N, (W - 1) * hop_length) with the pipeline's Mel."""
        if isinstance(images, (list, tuple)):
            images = np.stack([np.asarray(im) for im in images]) if len(images) else np.zeros((0,))
        images = np.asarray(images)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[0] == 0 or images.dtype != np.uint8:
            raise CourseInputError(
                f"images: expected uint8 spectrogram images (N, H, W), a list of them or of PIL 'L' images, got "
                f"{images.dtype} of shape {tuple(images.shape)}; e.g. pipe(...).images."
            )
        width = int(images.shape[-1])
        mel = self._mel_for(width)
        if isinstance(mel, Mel):
            return mel.images_to_audio(torch.from_numpy(np.ascontiguousarray(images))).cpu().numpy()
        from PIL import Image

        return np.stack([np.asarray(mel.image_to_audio(Image.fromarray(im)), dtype=np.float32) for im in images])

    # -- sampling --------------------------------------------------------------------------

    def _is_ddim(self) -> bool:
        from diffusers import DDIMScheduler

        return isinstance(self.scheduler, DDIMScheduler)

    def _check_steps(self, steps: Any) -> int:
        steps = check_positive_int(steps, "steps")
        most = int(self.scheduler.config.num_train_timesteps)
        if steps > most:
            raise CourseInputError(f"steps: {steps} is more than the {most} noise levels the model was trained on; "
                                   f"use at most {most}.")
        return steps

    def _check_sampler(self, steps: Any, eta: Any) -> tuple[int, float]:
        """``steps`` (None: :meth:`default_steps`) and DDIM's ``eta``, checked."""
        steps = self.default_steps() if steps is None else self._check_steps(steps)
        eta = check_number(eta, "eta", 0.0)
        if eta and not self._is_ddim():
            raise CourseInputError("eta: only the DDIM scheduler uses eta; leave it at 0 with DDPM.")
        return steps, eta

    def default_steps(self) -> int:
        """50 for DDIM, 1000 for DDPM (what diffusers' audio pipeline uses)."""
        return 50 if self._is_ddim() else 1000

    def _init_tensor(self, init_image: Any, height: int, width: int, batch_size: int) -> torch.Tensor:
        x0 = images_to_tensor(init_image, "init_image")
        if tuple(x0.shape[-2:]) != (height, width):
            raise CourseInputError(
                f"init_image: is {x0.shape[-2]}x{x0.shape[-1]} (H x W) but this run makes {height}x{width} images; "
                "pass width= to match, or make the image with pipe.audio_to_image(audio, width=...)."
            )
        if x0.shape[0] not in (1, batch_size):
            raise CourseInputError(f"init_image: holds {x0.shape[0]} images for batch_size={batch_size}; "
                                   f"give 1 or {batch_size}.")
        return x0.expand(batch_size, -1, -1, -1).clone().to(self.device)

    def _known_image(self, raw_audio: Any, sample_rate: Any, audio_file: Any, slice: Any, init_image: Any,
                     width: int, batch_size: int) -> torch.Tensor | None:
        """The clip to start from or keep, as images (N, 1, H, width) in [-1, 1], or None."""
        if sum(s is not None for s in (raw_audio, audio_file, init_image)) > 1:
            raise CourseInputError("raw_audio / audio_file / init_image: give at most one of them.")
        if audio_file is not None:
            from course_lib.audio import load_audio

            loaded = load_audio(audio_file, sample_rate=self.sample_rate)
            raw_audio = loaded[0] if isinstance(loaded, tuple) else loaded
        elif raw_audio is not None and sample_rate is None:
            raise CourseInputError(
                f"sample_rate: give the rate of raw_audio (it must be {self.sample_rate} Hz, "
                "e.g. sample_rate=pipe.sample_rate), so a clip at another rate is not silently misread."
            )
        if raw_audio is not None:
            init_image = self.audio_to_image(raw_audio, sample_rate, slice, width)
        if init_image is None:
            return None
        return self._init_tensor(init_image, self.sample_size[0], width, batch_size)

    def _mask_columns(self, mask_start_secs: Any, mask_end_secs: Any, width: int) -> tuple[int, int]:
        """Seconds to keep at the start / end -> image columns ``(left, right)``."""
        m0 = check_number(mask_start_secs, "mask_start_secs", 0.0)
        m1 = check_number(mask_end_secs, "mask_end_secs", 0.0)
        duration = width * self.mel.hop_length / self.sample_rate
        if m0 + m1 > duration:
            raise CourseInputError(
                f"mask_start_secs + mask_end_secs: {m0 + m1:.3f} s is more than the clip, which lasts "
                f"{duration:.3f} s ({width} frames); keep less of it fixed."
            )
        left, right = self.seconds_to_pixels(m0), self.seconds_to_pixels(m1)
        return min(left, width - right), right  # rounding both up can pass one column too many

    def _noise(self, noise: Any, batch_size: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """The starting noise x_T (N, C, H, width): drawn on the CPU from ``generator``, or the caller's own."""
        shape = (batch_size, int(self.unet.config.in_channels), self.sample_size[0], width)
        if noise is None:
            noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        else:
            noise = as_float_tensor(noise, "noise", min_ndim=4, max_ndim=4)
            if tuple(noise.shape) != shape:
                raise CourseInputError(f"noise: has shape {tuple(noise.shape)} but this run needs {shape} "
                                       "(batch_size, channels, height, width).")
        return noise.to(self.device)

    @torch.no_grad()
    def __call__(self, batch_size: int = 1, *, steps: int | None = None, generator: Any = None, eta: float = 0.0,
                 width: int | None = None, noise: Any = None, raw_audio: Any = None, sample_rate: int | None = None,
                 audio_file: str | os.PathLike | None = None, slice: int = 0, init_image: Any = None,
                 start_step: int = 0, mask_start_secs: float = 0.0, mask_end_secs: float = 0.0,
                 progress: bool = True, return_audio: bool = True) -> SpectrogramOutput:
        """Generate ``batch_size`` spectrograms (and their audio).

        - ``steps``: denoising steps (default 50 for DDIM, 1000 for DDPM); ``eta``: DDIM's noise (0 = deterministic).
        - ``generator``: a ``torch.Generator``, an int seed or None (a seed from torch's global generator);
          the same seed gives the same output.
        - ``width``: image width in frames (default the UNet's); wider noise gives longer audio.
        - ``noise``: your own starting noise (N, 1, H, width) instead of drawing it (e.g. from :meth:`encode`).
        - ``raw_audio`` (+ ``sample_rate``) / ``audio_file`` / ``init_image``: an existing clip; with
          ``start_step`` > 0 the run starts part-way through the schedule from it (a variation).
        - ``mask_start_secs`` / ``mask_end_secs``: keep the first / last seconds of that clip fixed
          (inpainting, continuation); the rest is generated to fit around it.

        Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
        """
        # Validate every argument once.
        self._check_sizes()  # pipe.mel may have been swapped since construction
        batch_size = check_positive_int(batch_size, "batch_size")
        steps, eta = self._check_sampler(steps, eta)
        width = self._check_width(width)
        gen = make_generator(generator)
        start_step = check_positive_int(start_step, "start_step", minimum=0)
        if start_step >= steps:
            raise CourseInputError(f"start_step: must be below steps={steps} (0 starts from pure noise), "
                                   f"got {start_step}.")
        known = self._known_image(raw_audio, sample_rate, audio_file, slice, init_image, width, batch_size)
        if start_step > 0 and known is None:
            raise CourseInputError("start_step: starting part-way needs a clip to start from; pass raw_audio=, "
                                   "audio_file= or init_image=.")
        mask = self._mask_columns(mask_start_secs, mask_end_secs, width)
        if any(mask) and known is None:
            raise CourseInputError("mask_start_secs / mask_end_secs: a mask keeps part of a clip; pass raw_audio=, "
                                   "audio_file= or init_image= too.")
        # Prepare the starting noise, then denoise.
        noise = self._noise(noise, batch_size, width, gen)
        images = self._denoise(noise, steps=steps, generator=gen, eta=eta, known=known, start_step=start_step,
                               mask=mask, progress=progress)
        return self._output(images, noise, return_audio)

    def _denoise(self, noise: torch.Tensor, *, steps: int, generator: torch.Generator, eta: float = 0.0,
                 known: torch.Tensor | None = None, start_step: int = 0, mask: tuple[int, int] = (0, 0),
                 tie: int = 0, progress: bool = True) -> torch.Tensor:
        """The denoising loop, on checked arguments: x_T -> x_0, images (N, C, H, W) in [-1, 1].

        ``known``: a clip (images in [-1, 1]) to start from at ``timesteps[start_step]`` and/or keep in the
        ``mask = (left, right)`` columns; ``tie``: copy the first ``tie`` columns onto the last ones
        after every step (a loop). Every public way to sample (``__call__``, :meth:`continue_audio`,
        :meth:`loop`) checks its arguments and then calls this.
        """
        from course_lib.settings import progress as progress_bar

        self.scheduler.set_timesteps(steps)
        timesteps = self.scheduler.timesteps
        step_options = {"eta": eta} if self._is_ddim() else {}
        # Start from pure noise x_T, or from the clip noised to the level of timesteps[start_step]:
        #   x_t = sqrt(abar_t) * x_0 + sqrt(1 - abar_t) * noise
        if known is not None and start_step > 0:
            x = self.scheduler.add_noise(known, noise, timesteps[start_step:start_step + 1])
        else:
            x = noise.clone()
        x = self._keep_known(x, known, noise, timesteps, start_step, mask)
        for i, t in enumerate(progress_bar(timesteps[start_step:], desc="denoising", disable=not progress, leave=False)):
            # 1. The UNet predicts the noise in x_t: eps = unet(x_t, t).
            eps = self.unet(self.scheduler.scale_model_input(x, t), t).sample
            # 2. The scheduler steps x_t -> x_{t-1} (DDIM with eta, or DDPM's ancestral step).
            x = self.scheduler.step(eps, t, x, generator=generator, **step_options).prev_sample
            # 3. Inpainting: the kept columns are the clip, noised to the next level.
            x = self._keep_known(x, known, noise, timesteps, start_step + i + 1, mask)
            # 4. A loop: the image ends as it begins.
            if tie:
                x[..., x.shape[-1] - tie:] = x[..., :tie]
        return x

    def _keep_known(self, x: torch.Tensor, known: torch.Tensor | None, noise: torch.Tensor,
                    timesteps: torch.Tensor, index: int, mask: tuple[int, int]) -> torch.Tensor:
        """Put the masked columns of ``known`` into ``x``, noised to the level of ``timesteps[index]``.

        After the last step (``index == len(timesteps)``) they are the clip itself.
        """
        left, right = mask
        if known is None or not (left or right):
            return x
        if index >= len(timesteps):
            level = known
        else:
            level = self.scheduler.add_noise(known, noise, timesteps[index:index + 1])
        width = x.shape[-1]
        if left:
            x[..., :left] = level[..., :left]
        if right:
            x[..., width - right:] = level[..., width - right:]
        return x

    def _output(self, images: torch.Tensor, noise: torch.Tensor, return_audio: bool = True) -> SpectrogramOutput:
        """Images in [-1, 1] -> uint8 pixels, their audio (if asked) and the starting noise, on the CPU."""
        pixels = tensor_to_images(images)
        audios = self.images_to_audio(pixels) if return_audio else np.zeros((len(pixels), 0), np.float32)
        return SpectrogramOutput(images=pixels, audios=audios, sample_rate=self.sample_rate, noise=noise.cpu())

    # -- inversion -------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, images: Any, steps: int = 50, progress: bool = True) -> torch.Tensor:
        """DDIM inversion: run the deterministic sampler backwards, image(s) -> the noise (N, 1, H, W) that makes them.

        Sampling that noise with the same ``steps`` and ``eta=0`` gives the images back (up to the
        small error of evaluating the UNet one step early). Needs a DDIM scheduler predicting epsilon;
        use one with ``clip_sample=False`` for the way back, since clipping the predicted image is a
        step the inversion cannot undo.

        Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
        """
        if not self._is_ddim():
            raise CourseInputError("scheduler: encode (DDIM inversion) needs a DDIMScheduler; set "
                                   "pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config).")
        if self.scheduler.config.prediction_type != "epsilon":
            raise CourseInputError(f"scheduler: encode needs prediction_type='epsilon', "
                                   f"not {self.scheduler.config.prediction_type!r}.")
        steps = self._check_steps(steps)
        x = images_to_tensor(images, "images").to(self.device)
        height = self.sample_size[0]
        if x.shape[-2] != height:
            raise CourseInputError(f"images: are {x.shape[-2]} high but this UNet makes images {height} high.")
        self._check_width(int(x.shape[-1]))
        self.scheduler.set_timesteps(steps)
        alphas = self.scheduler.alphas_cumprod.to(self.device)
        final = torch.as_tensor(self.scheduler.final_alpha_cumprod, device=self.device)
        jump = self.scheduler.config.num_train_timesteps // steps  # as DDIMScheduler.step computes it
        from course_lib.settings import progress as progress_bar

        for t in progress_bar(torch.flip(self.scheduler.timesteps, (0,)), desc="inverting", disable=not progress, leave=False):
            prev = int(t) - jump
            a_prev = alphas[prev] if prev >= 0 else final
            a_t = alphas[int(t)]
            eps = self.unet(x, t).sample
            x0_pred = (x - (1.0 - a_prev).sqrt() * eps) / a_prev.sqrt()
            x = a_t.sqrt() * x0_pred + (1.0 - a_t).sqrt() * eps
        return x.cpu()

    # -- longer audio ----------------------------------------------------------------------

    @torch.no_grad()
    def continue_audio(self, audio: Any, seconds: float, sample_rate: int | None = None, *, steps: int | None = None,
                       generator: Any = None, eta: float = 0.0, width: int | None = None, keep: float = 0.5,
                       crossfade_secs: float = 0.0, progress: bool = True) -> np.ndarray:
        """Continue a mono clip for ``seconds`` more: out-painting, one image at a time.

        Each round puts the last ``keep`` fraction of an image's width of audio on the left of a new
        image, keeps it fixed (a start mask) and generates the rest; the new columns' audio is
        appended, scaled so the kept part's loudness matches the clip's. The result starts with
        ``audio`` unchanged (with ``crossfade_secs`` > 0, all but its last ``crossfade_secs``, which are
        blended into the new audio) and is ``round(seconds * sample_rate)`` samples longer.

        Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
        """
        # Validate every argument once.
        if sample_rate is None:
            raise CourseInputError(f"sample_rate: give the clip's rate (it must be {self.sample_rate} Hz).")
        check_sample_rate(sample_rate, "sample_rate", expected=self.sample_rate)
        x = as_float_tensor(audio, "audio", max_ndim=1).cpu().numpy()
        extra = int(round(check_number(seconds, "seconds", 0.0) * self.sample_rate))
        if extra < 1:
            raise CourseInputError(f"seconds: {seconds} adds no samples; "
                                   f"ask for more than {1 / self.sample_rate:.2g} s.")
        self._check_sizes()
        width = self._check_width(width)
        kept, fade = self._check_continuation(x.shape[0], width, keep, crossfade_secs)
        steps, eta = self._check_sampler(steps, eta)
        gen = make_generator(generator)
        # Out-paint one image at a time: the last `kept` columns of audio on the left, kept fixed.
        context_len, image_len = kept * self.mel.hop_length, width * self.mel.hop_length - 1
        out, target = x.copy(), x.shape[0] + extra
        while out.shape[0] < target:
            context = out[-context_len:]
            padded = np.concatenate([context, np.zeros(image_len - context_len, np.float32)])
            known = self._init_tensor(self.audio_to_image(padded, self.sample_rate, 0, width),
                                      self.sample_size[0], width, 1)
            images = self._denoise(self._noise(None, 1, width, gen), steps=steps, generator=gen, eta=eta,
                                   known=known, mask=(kept, 0), progress=progress)
            made = self.images_to_audio(tensor_to_images(images))[0]
            # Match the loudness of the kept part, then append the new columns (crossfading the first time).
            ref_rms = float(np.sqrt(np.mean(context.astype(np.float64) ** 2)))
            got_rms = float(np.sqrt(np.mean(made[:context_len].astype(np.float64) ** 2)))
            gain = ref_rms / got_rms if got_rms > 1e-8 else 1.0
            if fade and out.shape[0] == x.shape[0]:
                ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
                out[-fade:] = out[-fade:] * (1.0 - ramp) + made[context_len - fade:context_len] * gain * ramp
            out = np.concatenate([out, (made[context_len:] * gain).astype(np.float32)])
        return out[:target]

    def _check_continuation(self, length: int, width: int, keep: Any, crossfade_secs: Any) -> tuple[int, int]:
        """``keep`` as kept image columns and ``crossfade_secs`` as samples, checked against a clip of ``length``."""
        keep = check_number(keep, "keep", 0.0, 1.0)
        kept = int(round(keep * width))
        if not 1 <= kept <= width - 2:
            raise CourseInputError(f"keep: {keep} keeps {kept} of {width} columns; choose a fraction leaving at least "
                                   "one kept and two new columns (e.g. 0.5).")
        context_len = kept * self.mel.hop_length
        if length < context_len:
            raise CourseInputError(f"audio: {length} samples is shorter than the {context_len} samples "
                                   f"({context_len / self.sample_rate:.2f} s) a round keeps; "
                                   "give a longer clip or lower keep.")
        fade = int(round(check_number(crossfade_secs, "crossfade_secs", 0.0) * self.sample_rate))
        if fade > context_len:
            raise CourseInputError(f"crossfade_secs: longer than the kept context "
                                   f"({context_len / self.sample_rate:.2f} s).")
        return kept, fade

    @torch.no_grad()
    def loop(self, batch_size: int = 1, *, overlap: float = 0.25, steps: int | None = None, generator: Any = None,
             eta: float = 0.0, width: int | None = None, crossfade_secs: float = 0.02,
             progress: bool = True) -> tuple[SpectrogramOutput, np.ndarray]:
        """A seamless loop: generate an image whose last ``overlap`` columns are tied to its first ones.

        After every denoising step the right edge is set to the left edge, so the finished image
        ends as it begins; one period of the loop is the audio of the first ``width - overlap``
        columns, and its start is crossfaded with what follows the period, so repeating it
        (``np.tile``) has no click. Returns the output and the loop audio (N, period samples).

        Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
        """
        # Validate every argument once.
        self._check_sizes()
        batch_size = check_positive_int(batch_size, "batch_size")
        width = self._check_width(width)
        overlap = check_number(overlap, "overlap", 0.0, 0.5)
        tied = int(round(overlap * width))
        if tied < 1:
            raise CourseInputError(f"overlap: {overlap} ties no columns of a {width}-wide image; use e.g. 0.25.")
        crossfade = check_number(crossfade_secs, "crossfade_secs", 0.0)
        steps, eta = self._check_sampler(steps, eta)
        gen = make_generator(generator)
        # Generate with the right edge tied to the left one.
        noise = self._noise(None, batch_size, width, gen)
        result = self._output(self._denoise(noise, steps=steps, generator=gen, eta=eta, tie=tied, progress=progress),
                              noise)
        # One period, its start crossfaded with what follows it.
        period = (width - tied) * self.mel.hop_length
        fade = min(int(round(crossfade * self.sample_rate)), result.audios.shape[1] - period)
        loops = result.audios[:, :period].copy()
        if fade > 0:
            ramp = np.linspace(0.0, 1.0, fade, endpoint=False, dtype=np.float32)
            loops[:, :fade] = result.audios[:, :fade] * ramp + result.audios[:, period:period + fade] * (1.0 - ramp)
        return result, loops

    # -- saving and loading ----------------------------------------------------------------

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write the pipeline in diffusers' layout: ``unet/`` (safetensors), ``scheduler/``, ``mel/``,
        ``model_index.json``.

        ``model_index.json`` names diffusers' ``AudioDiffusionPipeline``, so ``DiffusionPipeline.from_pretrained``
        also loads the folder (while diffusers still ships that class).

        Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
        """
        import diffusers

        folder = prepare_output_dir(save_directory, "save_directory")
        self.unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(folder / "scheduler")
        mel = self.mel if isinstance(self.mel, Mel) else Mel.from_config(dict(self.mel.config))
        mel.save_config(folder / "mel")
        index = {
            "_class_name": "AudioDiffusionPipeline",
            "_diffusers_version": diffusers.__version__,
            "mel": ["diffusers", "Mel"],
            "scheduler": ["diffusers", type(self.scheduler).__name__],
            "unet": ["diffusers", "UNet2DModel"],
            "vqvae": [None, None],
        }
        write_json(folder / MODEL_INDEX, index, indent=2)
        return folder

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, use_safetensors: bool | None = None,
                        device: str | torch.device | None = None, mel_overrides: dict[str, Any] | None = None,
                        **hub_kwargs: Any) -> "SpectrogramDiffusionPipeline":
        """Load a pipeline folder (ours or a teticio-style audio-diffusion checkpoint), or a Hub id.

        A local folder is read directly (offline): ``unet/`` with ``UNet2DModel.from_pretrained``
        (pass ``use_safetensors=False`` for ``.bin`` weights), the scheduler class named in
        ``scheduler/scheduler_config.json`` and ``mel/mel_config.json`` as a ``course_lib.Mel``
        (diffusers' Mel configs load too; ``mel_overrides`` such as ``{"n_iter": 64}`` win).
        Anything else goes through diffusers' ``DiffusionPipeline.from_pretrained`` (needs the Hub).
        A missing or corrupt file is a ``CourseInputError`` that names it.

        Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
        """
        if not isinstance(path, (str, os.PathLike)):
            raise CourseInputError(f"path: expected a folder or a Hub id, got {type(path).__name__}.")
        folder, text = Path(path), str(path)
        looks_local = (folder.exists() or isinstance(path, Path) or text.startswith((".", "/", "~"))
                       or text.count("/") != 1 or "\\" in text)
        if looks_local and not folder.is_dir():
            raise CourseInputError(
                f"path: {text!r} is not an existing folder (cwd is {os.getcwd()!r}); give a pipeline folder "
                "(unet/, scheduler/, mel/) or a Hub id such as 'teticio/audio-diffusion-instrumental-hiphop-256'."
            )
        overrides = dict(mel_overrides or {})
        if folder.is_dir():
            unet, scheduler, mel = _load_folder(folder, use_safetensors, overrides)
        else:
            unet, scheduler, mel = _load_from_hub(text, use_safetensors, overrides, hub_kwargs)
        pipeline = cls(unet.eval(), scheduler, mel)
        return pipeline.to(device) if device is not None else pipeline


_RESTORE = "Restore the folder: download it again, or write it with pipe.save_pretrained(folder)."


def _read_config(path: Path) -> dict[str, Any]:
    """A JSON object from a file of a pipeline folder; a missing or corrupt file is a CourseInputError naming it."""
    if not path.is_file():
        raise CourseInputError(f"path: {str(path.parent)!r} has no {path.name}. {_RESTORE}")
    config = read_json(path, "path", _RESTORE)
    if not isinstance(config, dict):
        raise CourseInputError(f"path: {str(path)!r} holds a JSON {type(config).__name__}, not an object. {_RESTORE}")
    return config


def _load_folder(folder: Path, use_safetensors: bool | None, overrides: dict[str, Any]) -> tuple[Any, Any, Mel]:
    """(unet, scheduler, mel) from a local pipeline folder, every file checked."""
    import diffusers

    index = _read_config(folder / MODEL_INDEX) if (folder / MODEL_INDEX).exists() else {}
    vqvae = index.get("vqvae")
    if vqvae and vqvae[0] is not None:
        raise CourseInputError(f"path: {str(folder)!r} is a latent audio-diffusion model (it has a vqvae); "
                               "this pipeline handles pixel-space models only.")
    for part in ("unet", "scheduler", "mel"):
        if not (folder / part).is_dir():
            raise CourseInputError(f"path: {str(folder)!r} has no {part}/ folder; a pipeline folder holds "
                                   "unet/, scheduler/, mel/ and model_index.json (see save_pretrained).")
    weights = [name for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
               if (folder / "unet" / name).is_file()]
    if not weights:  # checked here so diffusers does not go looking for pickle files first
        raise CourseInputError(f"path: {str(folder / 'unet')!r} has no weights (diffusion_pytorch_model.safetensors "
                               f"or .bin). {_RESTORE}")
    try:
        unet = diffusers.UNet2DModel.from_pretrained(folder / "unet", use_safetensors=use_safetensors)
    except (OSError, ValueError, RuntimeError) as error:
        raise CourseInputError(
            f"path: could not load the UNet from {str(folder / 'unet')!r} ({str(error).strip()}); its weights or "
            f"config.json are missing or corrupt. {_RESTORE} A folder with .bin weights needs use_safetensors=False."
        ) from error
    name = _read_config(folder / "scheduler" / "scheduler_config.json").get("_class_name", "DDIMScheduler")
    if name not in ("DDIMScheduler", "DDPMScheduler"):
        raise CourseInputError(f"path: the scheduler is a {name}; this pipeline uses "
                               "DDIMScheduler or DDPMScheduler.")
    scheduler = getattr(diffusers, name).from_pretrained(folder / "scheduler")
    mel = Mel.from_config(_mel_config_dict(_read_config(folder / "mel" / Mel.config_name)), **overrides)
    return unet, scheduler, mel


def _load_from_hub(repo_id: str, use_safetensors: bool | None, overrides: dict[str, Any],
                   hub_kwargs: dict[str, Any]) -> tuple[Any, Any, Mel]:
    """(unet, scheduler, mel) of a Hub pipeline, through diffusers' ``DiffusionPipeline``."""
    import diffusers

    try:
        pipe = diffusers.DiffusionPipeline.from_pretrained(repo_id, use_safetensors=use_safetensors, **hub_kwargs)
    except (OSError, ValueError) as error:
        raise CourseInputError(
            f"path: {repo_id!r} is not a local folder and diffusers could not load it as a Hub id ({error}). "
            "Offline, give the folder of a saved pipeline; .bin checkpoints need use_safetensors=False."
        ) from error
    return pipe.unet, pipe.scheduler, Mel.from_config(_mel_config_dict(dict(pipe.mel.config)), **overrides)


def _mel_config_dict(config: dict[str, Any]) -> dict[str, Any]:
    """Keep the keys ``course_lib.Mel`` knows (diffusers' Mel configs may carry extra bookkeeping keys)."""
    return {k: v for k, v in config.items() if k in Mel._CONFIG_KEYS or k == Mel._EXTRAS_KEY}
