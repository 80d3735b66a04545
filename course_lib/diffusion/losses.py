"""The denoising losses the lessons teach, beside the samplers that use what they train.

- :func:`diffusion_loss`: DDPM's "simple" loss for a diffusers-style image model (lessons 02-03, 06):
  noise a clean batch to a random timestep with the scheduler, ask the model for the noise (or the
  velocity), take the mean squared error.
- The waveform model's v-objective is :func:`course_lib.diffusion.vdiffusion.v_loss` (lesson 05),
  next to the cosine schedule it belongs to.

Both fit ``course_lib.training.train`` as ``loss_fn(model, batch, generator)`` (wrap
:func:`diffusion_loss` to pass its scheduler), and draw their randomness on the CPU from one
generator (``settings.make_generator``'s rule), so a seed gives the same loss on every device.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from course_lib.settings import make_generator
from course_lib.validate import CourseInputError, check_choice

__all__ = ["PREDICTIONS", "diffusion_loss"]

PREDICTIONS = ("epsilon", "v_prediction")


def diffusion_loss(
    model: torch.nn.Module,
    x0: torch.Tensor,
    scheduler: Any,
    generator: torch.Generator | int | None = None,
    prediction: str | None = None,
    **model_kwargs: Any,
) -> torch.Tensor:
    """The denoising loss of a diffusers-style model ``model(noisy, t).sample`` on clean images ``x0``.

    1. one timestep ``t ~ U{0, ..., T-1}`` per item, then noise ``eps ~ N(0, I)`` shaped like ``x0``,
       both drawn on the CPU from ``generator`` (a ``torch.Generator``, an int seed, or None for a
       seed from torch's global generator);
    2. ``x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps`` (``scheduler.add_noise``);
    3. the mean squared error of the model's output against ``eps`` (``prediction="epsilon"``) or
       against the velocity ``v = sqrt(abar_t) * eps - sqrt(1 - abar_t) * x0`` from
       ``scheduler.get_velocity`` (``"v_prediction"``). ``prediction=None`` uses
       ``scheduler.config.prediction_type``.

    Call ``loss.backward()`` on the result. The classic tutorial's ``loss.backward(loss)`` is wrong:
    the argument of ``backward`` is the upstream gradient, so it scales every gradient by the loss
    value itself (large early, tiny late), i.e. an accidental loss-dependent learning rate.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or x0.shape[0] == 0:
        raise CourseInputError(f"x0: expected a batch tensor (batch, ...), got {getattr(x0, 'shape', type(x0))}.")
    if prediction is None:
        prediction = getattr(getattr(scheduler, "config", None), "prediction_type", "epsilon")
    check_choice(prediction, "prediction", PREDICTIONS)
    g = make_generator(generator)
    # 1. A timestep per item and the noise, drawn on the CPU.
    t = torch.randint(0, int(scheduler.config.num_train_timesteps), (x0.shape[0],), generator=g).to(x0.device)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float32).to(x0.device, x0.dtype)
    # 2. The noisy input x_t.
    noisy = scheduler.add_noise(x0, noise, t)
    # 3. The model's prediction against its target.
    out = model(noisy, t, **model_kwargs)
    pred = out.sample if hasattr(out, "sample") else (out[0] if isinstance(out, (tuple, list)) else out)
    target = noise if prediction == "epsilon" else scheduler.get_velocity(x0, noise, t)
    return F.mse_loss(pred.float(), target.float())
