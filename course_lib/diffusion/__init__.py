"""Diffusion, as the lessons teach it.

- :mod:`course_lib.diffusion.pipeline`: the spectrogram (mel-image) diffusion pipeline of lessons 02-03
  and 06: sampling, inpainting, continuation, loops, inversion, slerp.
- :mod:`course_lib.diffusion.vdiffusion`: lesson 05's v-diffusion on waveforms: cosine schedule,
  ``v_target``, ``denoise``, ``sampler_step``, the v-loss, ``sample`` with classifier-free guidance.
- :mod:`course_lib.diffusion.losses`: ``diffusion_loss``, the denoising loss of lessons 02-03's image models.

The pipeline's public names and ``diffusion_loss`` are re-exported here:
``from course_lib.diffusion import SpectrogramDiffusionPipeline, diffusion_loss``.
"""

from course_lib.diffusion.losses import diffusion_loss  # noqa: F401
from course_lib.diffusion.pipeline import (  # noqa: F401
    SpectrogramDiffusionPipeline,
    SpectrogramOutput,
    images_to_tensor,
    slerp,
    tensor_to_images,
)

__all__ = [
    "SpectrogramDiffusionPipeline",
    "SpectrogramOutput",
    "diffusion_loss",
    "images_to_tensor",
    "slerp",
    "tensor_to_images",
]
