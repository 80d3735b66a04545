"""Diffusion, as the lessons teach it.

- :mod:`course_lib.diffusion.pipeline`: the spectrogram (mel-image) diffusion pipeline of lessons 02-03
  and 06: sampling, inpainting, continuation, loops, inversion, slerp.
- :mod:`course_lib.diffusion.vdiffusion`: lesson 05's v-diffusion on waveforms: cosine schedule, v-loss,
  the sampler step, classifier-free guidance.

The pipeline's public names are re-exported here: ``from course_lib.diffusion import SpectrogramDiffusionPipeline``.
"""

from course_lib.diffusion.pipeline import (  # noqa: F401
    SpectrogramDiffusionPipeline,
    SpectrogramOutput,
    images_to_tensor,
    slerp,
    tensor_to_images,
)
