"""V-diffusion for waveforms (lesson 05): the cosine schedule, the v-objective and its samplers.

A noise level ``sigma`` in [0, 1] mixes a clean clip ``x0`` with Gaussian noise ``eps``::

    alpha = cos(sigma * pi / 2),  beta = sin(sigma * pi / 2)      (alpha² + beta² = 1)
    x_sigma = alpha * x0 + beta * eps                              sigma = 0: clean, 1: pure noise
    v       = alpha * eps - beta * x0                              the "velocity" the model predicts

Because (alpha, beta) is a point on the unit circle, ``x0`` and ``eps`` come back from ``x_sigma``
and ``v`` by a rotation the other way: ``x0 = alpha * x_sigma - beta * v`` and
``eps = beta * x_sigma + alpha * v``. Predicting ``v`` instead of ``eps`` keeps the target's size
about the same at every noise level, which trains well at both ends.

- :func:`v_loss` is the training loss, ready for ``course_lib.training.train`` as ``loss_fn``;
  with class labels it replaces a random ``p_uncond`` share of them by the "null" class, so that
  one model learns both the conditional and the unconditional task (classifier-free guidance).
- :func:`sample` goes from noise to clips in ``steps`` steps on a linear sigma grid 1 -> 0:
  ``eta=0`` is the deterministic DDIM-style v-sampler of the reference project, ``eta=1`` adds
  fresh noise at every step like the DDPM sampler (anything between is allowed), and
  ``guidance_scale`` mixes conditional and unconditional predictions,
  ``v = v_null + guidance_scale * (v_class - v_null)``.

All randomness comes from a CPU ``torch.Generator`` (or an int seed), in a documented order, so a
seed gives the same numbers on every run and every device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.validate import CourseInputError, check_number, check_positive_int

__all__ = [
    "add_noise",
    "alpha_beta",
    "class_indices",
    "predict_x0_and_noise",
    "sample",
    "sigma_schedule",
    "v_loss",
    "v_loss_at",
    "velocity",
]


# --------------------------------------------------------------------------------------------
# The schedule and its algebra
# --------------------------------------------------------------------------------------------


def alpha_beta(sigma: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos(sigma * pi / 2), sin(sigma * pi / 2))``: how much signal and how much noise at ``sigma``."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32) if not isinstance(sigma, torch.Tensor) else sigma
    angle = sigma * (math.pi / 2)
    return torch.cos(angle), torch.sin(angle)


def _per_item(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Shape (B,) -> (B, 1, 1, ...) so that it broadcasts over one item of ``like``."""
    return t.reshape(t.shape[0], *([1] * (like.ndim - 1))) if t.ndim == 1 else t


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``x_sigma = alpha * x0 + beta * noise`` (``sigma`` one value per item, shape (B,))."""
    alpha, beta = alpha_beta(sigma)
    return _per_item(alpha, x0) * x0 + _per_item(beta, x0) * noise


def velocity(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The training target ``v = alpha * noise - beta * x0``."""
    alpha, beta = alpha_beta(sigma)
    return _per_item(alpha, x0) * noise - _per_item(beta, x0) * x0


def predict_x0_and_noise(x_sigma: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Undo the rotation: ``x0 = alpha * x_sigma - beta * v``, ``noise = beta * x_sigma + alpha * v``."""
    alpha, beta = alpha_beta(sigma)
    alpha, beta = _per_item(alpha, x_sigma), _per_item(beta, x_sigma)
    return alpha * x_sigma - beta * v, beta * x_sigma + alpha * v


def sigma_schedule(steps: int) -> torch.Tensor:
    """The sampler's ``steps + 1`` noise levels, evenly spaced from 1 (pure noise) down to 0."""
    steps = check_positive_int(steps, "steps")
    return torch.linspace(1.0, 0.0, steps + 1)


# --------------------------------------------------------------------------------------------
# Input helpers
# --------------------------------------------------------------------------------------------


def _generator(generator: Any) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        if generator.device.type != "cpu":
            raise CourseInputError("generator: give a CPU torch.Generator (noise is drawn on the CPU, then moved).")
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool) and generator >= 0:
        return torch.Generator().manual_seed(generator)
    raise CourseInputError(
        f"generator: expected a torch.Generator or a seed (int >= 0), got {generator!r}; "
        "e.g. torch.Generator().manual_seed(0)."
    )


def _config(model: Any) -> Any:
    config = getattr(model, "config", None)
    if not isinstance(model, torch.nn.Module) or config is None or not hasattr(config, "num_classes"):
        raise CourseInputError(
            f"model: expected a waveform U-Net such as course_lib.models.unet1d.UNet1D, got {type(model).__name__}."
        )
    return config


def class_indices(model: Any, class_labels: Any, n: int) -> torch.Tensor | None:
    """Class labels as a (n,) long tensor of indices; names (``"kick"``) are looked up in the config.

    Accepts ``None`` (no class), one index or name for all ``n`` items, or a sequence / tensor of
    ``n`` of them. Raises ``CourseInputError`` for unknown classes or an unconditional model.
    """
    config = _config(model)
    if class_labels is None:
        return None
    num, names = int(config.num_classes), tuple(getattr(config, "class_names", ()))
    known = f"0..{num - 1}" + (f" or a name in {names}" if names else "")
    if not num:
        raise CourseInputError("class_labels: this model is unconditional (num_classes=0); pass None.")

    def one(label: Any) -> int:
        if isinstance(label, str):
            if label not in names:
                raise CourseInputError(f"class_labels: unknown class {label!r}; use {known}.")
            return names.index(label)
        if isinstance(label, np.integer):
            label = int(label)
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num:
            raise CourseInputError(f"class_labels: unknown class {label!r}; use {known}.")
        return int(label)

    if isinstance(class_labels, np.ndarray):  # names stay a list, numbers become a tensor
        class_labels = class_labels.tolist() if class_labels.dtype.kind in "UO" else torch.as_tensor(class_labels)
    if isinstance(class_labels, torch.Tensor):
        if class_labels.is_floating_point() or class_labels.dtype == torch.bool or class_labels.ndim > 1:
            raise CourseInputError(
                f"class_labels: expected integer indices of shape ({n},), got shape "
                f"{tuple(class_labels.shape)} and dtype {class_labels.dtype}."
            )
        class_labels = class_labels.tolist()
    if isinstance(class_labels, np.integer):
        class_labels = int(class_labels)
    if isinstance(class_labels, (str, int)):
        return torch.full((n,), one(class_labels), dtype=torch.long)
    if not isinstance(class_labels, Sequence) or len(class_labels) != n:
        raise CourseInputError(
            f"class_labels: expected one label for all items or {n} labels, got {class_labels!r}."
        )
    return torch.tensor([one(label) for label in class_labels], dtype=torch.long)


# --------------------------------------------------------------------------------------------
# Training loss
# --------------------------------------------------------------------------------------------


def v_loss_at(
    model: torch.nn.Module,
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    class_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """The v-objective at given noise levels and noise: ``mean((model(x_sigma, sigma, c) - v)²)``.

    ``x0`` and ``noise`` are (B, C, T), ``sigma`` is (B,). :func:`v_loss` draws them at random.
    """
    if not isinstance(x0, torch.Tensor) or x0.ndim != 3 or not x0.is_floating_point():
        raise CourseInputError(f"x0: expected a float tensor (batch, channels, samples), got {type(x0).__name__}"
                               f"{' of shape ' + str(tuple(x0.shape)) if isinstance(x0, torch.Tensor) else ''}.")
    if not isinstance(noise, torch.Tensor) or noise.shape != x0.shape:
        raise CourseInputError(f"noise: expected a tensor shaped like x0 {tuple(x0.shape)}, e.g. torch.randn_like(x0).")
    if not isinstance(sigma, torch.Tensor) or sigma.shape != (x0.shape[0],):
        raise CourseInputError(f"sigma: expected one noise level per item, a tensor of shape ({x0.shape[0]},).")
    x_sigma = add_noise(x0, noise, sigma)
    pred = model(x_sigma, sigma, class_labels)
    return F.mse_loss(pred.float(), velocity(x0, noise, sigma).float())


def v_loss(
    model: torch.nn.Module,
    x0: Any,
    generator: torch.Generator | int,
    class_labels: Any = None,
    p_uncond: float = 0.1,
) -> torch.Tensor:
    """The v-diffusion training loss for a batch of clean clips ``x0`` (B, C, T).

    Works as ``loss_fn`` of ``course_lib.training.train``: ``x0`` may also be a batch
    ``(audio, labels)`` (e.g. from a ``TensorDataset``). Draws from ``generator`` (on the CPU), in
    this order: (1) ``sigma ~ U[0, 1)``, one per item; (2) ``noise ~ N(0, 1)`` shaped like ``x0``;
    (3) only with class labels: ``u ~ U[0, 1)`` per item, and items with ``u < p_uncond`` get the
    "null" class (classifier-free guidance training). Without labels every item is trained
    unconditionally.
    """
    if isinstance(x0, (list, tuple)):
        if len(x0) != 2 or class_labels is not None:
            raise CourseInputError(
                "x0: a batch given as a sequence must be (audio, labels); pass labels once, not also as class_labels."
            )
        x0, class_labels = x0
    if not isinstance(x0, torch.Tensor) or x0.ndim != 3 or x0.shape[0] == 0 or not x0.is_floating_point():
        raise CourseInputError(
            f"x0: expected a float batch (batch, channels, samples), got "
            f"{tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}; "
            "mono clips (batch, samples) need x0[:, None]."
        )
    p = check_number(p_uncond, "p_uncond", 0, 1)
    g = _generator(generator)
    n = x0.shape[0]
    labels = class_indices(model, class_labels, n)

    sigma = torch.rand(n, generator=g)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float32)
    if labels is not None:
        drop = torch.rand(n, generator=g) < p
        labels = torch.where(drop, torch.full_like(labels, int(_config(model).num_classes)), labels)
        labels = labels.to(x0.device)
    return v_loss_at(model, x0, sigma.to(x0.device), noise.to(x0.device, x0.dtype), labels)


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def _guided_v(
    model: torch.nn.Module, x: torch.Tensor, sigma: float, labels: torch.Tensor | None, null: int | None,
    guidance_scale: float,
) -> torch.Tensor:
    """The model's v at one noise level, with classifier-free guidance when asked."""
    sig = torch.full((x.shape[0],), sigma, device=x.device)
    if labels is None or guidance_scale == 1.0:
        return model(x, sig, labels).float()
    # One forward pass over [conditional; unconditional] copies of the batch.
    both = model(torch.cat([x, x]), torch.cat([sig, sig]), torch.cat([labels, torch.full_like(labels, null)])).float()
    v_class, v_null = both.chunk(2)
    return v_null + guidance_scale * (v_class - v_null)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    n: int,
    length: int | None,
    steps: int,
    generator: torch.Generator | int,
    class_labels: Any = None,
    guidance_scale: float = 1.0,
    eta: float = 0.0,
    progress: bool = True,
    clip: bool = True,
) -> torch.Tensor:
    """Generate ``n`` clips of ``length`` samples (None: the model's ``sample_length``) in ``steps`` steps.

    Starting from ``x = noise`` at sigma = 1, every step from ``s`` to the next, lower level ``s'``
    predicts ``v``, turns it into estimates of the clean clip and of the noise, and mixes them at
    the new level: ``x = alpha' * x0_hat + sqrt(beta'² - c²) * eps_hat + c * z`` with
    ``c = eta * (beta' / beta) * sqrt(1 - alpha² / alpha'²)`` and fresh noise ``z``. With ``eta=0``
    (``c = 0``) every step is deterministic (DDIM); ``eta=1`` is the DDPM (ancestral) sampler.

    ``class_labels``: None (unconditional), one class (index or name, e.g. ``"kick"``) for all, or
    one per clip. ``guidance_scale`` > 1 strengthens the class (two passes per step). Randomness,
    all from ``generator`` on the CPU: first the starting noise (n, C, length), then, if
    ``eta > 0``, one ``z`` per step except the last. Returns a float32 tensor (n, C, length) on the
    model's device, clipped to [-1, 1] unless ``clip=False``. The model is put in eval mode.
    """
    config = _config(model)
    n = check_positive_int(n, "n")
    if length is None:
        length = int(config.sample_length)
    length = check_positive_int(length, "length")
    multiple = int(getattr(model, "length_multiple", 1))
    if length % multiple:
        raise CourseInputError(
            f"length: {length} is not a multiple of {multiple} (the product of the model's factors); "
            f"use e.g. {max(1, round(length / multiple)) * multiple}."
        )
    sigmas = sigma_schedule(steps)
    guidance_scale = check_number(guidance_scale, "guidance_scale", low=0)
    eta = check_number(eta, "eta (0 = deterministic, 1 = DDPM-like)", 0, 1)
    labels = class_indices(model, class_labels, n)
    if labels is None and guidance_scale != 1.0:
        raise CourseInputError(
            "guidance_scale: guidance needs class_labels (e.g. class_labels='kick'); without a class "
            "leave guidance_scale=1.0."
        )
    g = _generator(generator)
    device = next(iter([*model.parameters(), *model.buffers()]), torch.empty(0)).device
    model.eval()

    x = torch.randn((n, int(config.in_channels), length), generator=g, dtype=torch.float32).to(device)
    if labels is not None:
        labels = labels.to(device)
    null = int(config.num_classes) if config.num_classes else None

    from tqdm.auto import tqdm

    for i in tqdm(range(steps), desc="sampling", disable=not progress, leave=False):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        alpha, beta = math.cos(s * math.pi / 2), math.sin(s * math.pi / 2)
        alpha_next, beta_next = math.cos(s_next * math.pi / 2), math.sin(s_next * math.pi / 2)
        v = _guided_v(model, x, s, labels, null, guidance_scale)
        x0_hat = alpha * x - beta * v  # the clean clip, as the model sees it now
        eps_hat = beta * x + alpha * v  # the noise in x, as the model sees it now
        c = 0.0
        if eta > 0 and s_next > 0:
            c = eta * (beta_next / beta) * math.sqrt(max(0.0, 1.0 - alpha**2 / alpha_next**2))
        x = alpha_next * x0_hat + math.sqrt(max(0.0, beta_next**2 - c**2)) * eps_hat
        if c > 0:
            x = x + c * torch.randn(x.shape, generator=g, dtype=torch.float32).to(device)
    return x.clamp(-1.0, 1.0) if clip else x
