"""The small mel-spectrogram UNet of lesson 02's offline model (``checkpoints/mel-diffusion-64``).

Lesson 02 samples music with teticio's ``audio-diffusion-instrumental-hiphop-256`` (a 256 x 256
diffusers ``UNet2DModel``); offline, the course ships a model of the same kind at 64 x 64, trained on
a laptop CPU. This module is its architecture and noise schedule, written down once:
``scripts/train_mel_diffusion.py`` trains it on course-made music, and
``scripts/train_digit_diffusion.py`` trains the same network on lesson 06's digit words.

- :data:`MEL_UNET_CONFIG`: the ``UNet2DModel`` arguments: 4 levels of 16/32/64/64 channels, one
  ResNet block per level, no attention, one input and one output channel (a grey mel image).
- :data:`NOISE_SCHEDULE`: the ``DDPMScheduler`` arguments: 1000 steps, linear betas, epsilon prediction.
- :func:`mel_unet` / :func:`noise_scheduler` build them (diffusers is imported only when called).
"""

from __future__ import annotations

from typing import Any

import torch

from course_lib.validate import CourseInputError, check_positive_int

__all__ = ["MEL_UNET_CONFIG", "NOISE_SCHEDULE", "mel_unet_config", "mel_unet", "noise_scheduler"]

MEL_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 1,
    "out_channels": 1,
    "layers_per_block": 1,
    "block_out_channels": (16, 32, 64, 64),
    "norm_num_groups": 8,
    "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
}

NOISE_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "prediction_type": "epsilon",
    "clip_sample": True,
}


def mel_unet_config(sample_size: int = 64) -> dict[str, Any]:
    """The ``UNet2DModel`` arguments of the small mel UNet for ``sample_size`` x ``sample_size`` images.

    The size must be a multiple of 8 (three of the four levels halve it).
    """
    size = check_positive_int(sample_size, "sample_size", minimum=8)
    if size % 8:
        raise CourseInputError(
            f"sample_size: {size} is not a multiple of 8 (three of the levels halve it); use e.g. {size // 8 * 8 + 8}."
        )
    return {**MEL_UNET_CONFIG, "sample_size": size}


def mel_unet(sample_size: int = 64, seed: int | None = None) -> Any:
    """A fresh (untrained) diffusers ``UNet2DModel`` with the small mel UNet's architecture.

    ``seed`` draws the initial weights from ``torch.manual_seed(seed)`` without touching the global
    random state; ``None`` draws them from the global state (as ``UNet2DModel(...)`` does).
    """
    from diffusers import UNet2DModel

    config = mel_unet_config(sample_size)
    if seed is None:
        return UNet2DModel(**config)
    check_positive_int(seed, "seed", minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(**config)


def noise_scheduler() -> Any:
    """The DDPM noise schedule the small mel UNet is trained with (a fresh diffusers ``DDPMScheduler``)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**NOISE_SCHEDULE)
