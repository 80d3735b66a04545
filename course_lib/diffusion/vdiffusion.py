"""V-diffusion for waveforms (lesson 05): the cosine schedule, the v-objective and its samplers.

A noise level ``sigma`` in [0, 1] mixes a clean clip ``x0`` with Gaussian noise ``eps``::

    alpha = cos(sigma * pi / 2),  beta = sin(sigma * pi / 2)      (alpha² + beta² = 1)
    x_sigma = alpha * x0 + beta * eps                              sigma = 0: clean, 1: pure noise
    v       = alpha * eps - beta * x0                              the "velocity" the model predicts

Because (alpha, beta) is a point on the unit circle, ``x0`` and ``eps`` come back from ``x_sigma``
and ``v`` by a rotation the other way: ``x0 = alpha * x_sigma - beta * v`` and
``eps = beta * x_sigma + alpha * v``. Neither estimate divides by ``alpha`` or ``beta``, so predicting
``v`` stays well behaved at both ends (from a predicted ``eps``, ``x0 = (x_sigma - beta * eps) / alpha``
blows up as ``alpha`` goes to 0). The target's size is constant only for unit-variance data: its RMS
is ``sqrt(alpha² + beta² * RMS(x0)²)``, from 1 at sigma = 0 to the clip's RMS at sigma = 1.

- :func:`v_target` is what the model learns to predict, :func:`denoise` turns a prediction back
  into estimates of the clean clip and the noise, :func:`sampler_step` takes one step down the
  noise levels with them: the three functions lesson 05's exercises write.
- :func:`v_loss` is the training loss, ready for ``course_lib.training.train`` as ``loss_fn``;
  with class labels it replaces a random ``p_uncond`` share of them by the "null" class, so that
  one model learns both the conditional and the unconditional task (classifier-free guidance).
- :func:`sample` goes from noise to clips in ``steps`` calls of :func:`sampler_step` on a linear
  sigma grid 1 -> 0: ``eta=0`` is the deterministic DDIM-style v-sampler of the reference project,
  ``eta=1`` adds fresh noise at every step like the DDPM sampler (anything between is allowed), and
  ``guidance_scale`` mixes conditional and unconditional predictions,
  ``v = v_null + guidance_scale * (v_class - v_null)``.

All randomness comes from a CPU ``torch.Generator`` (``settings.make_generator``'s rule: a
generator, an int seed, or None for a seed drawn from torch's global generator), in a documented
order, so a seed gives the same numbers on every run and every device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.settings import make_generator
from course_lib.training import compile_model
from course_lib.validate import CourseInputError, check_number, check_positive_int

__all__ = [
    "add_noise",
    "alpha_beta",
    "class_indices",
    "denoise",
    "heun_step",
    "quiet_weights",
    "sample",
    "sampler_step",
    "sigma_schedule",
    "v_loss",
    "v_loss_at",
    "v_target",
]


# --------------------------------------------------------------------------------------------
# The schedule and its algebra
# --------------------------------------------------------------------------------------------


def alpha_beta(sigma: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos(sigma * pi / 2), sin(sigma * pi / 2))``: how much signal and how much noise at ``sigma``."""
    sigma = torch.as_tensor(sigma, dtype=torch.float32) if not isinstance(sigma, torch.Tensor) else sigma
    angle = sigma * (math.pi / 2)
    return torch.cos(angle), torch.sin(angle)


def _scales(sigma: torch.Tensor | float, like: torch.Tensor) -> tuple[Any, Any]:
    """(alpha, beta) ready to multiply ``like``: per item (B, 1, 1, ...) for a tensor (B,), plain floats
    (in float64 precision, as the sampler computes them) for one number."""
    if isinstance(sigma, torch.Tensor):
        alpha, beta = alpha_beta(sigma)
        return _per_item(alpha, like), _per_item(beta, like)
    angle = float(sigma) * math.pi / 2
    return math.cos(angle), math.sin(angle)


def _per_item(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Shape (B,) -> (B, 1, 1, ...) so that it broadcasts over one item of ``like``."""
    return t.reshape(t.shape[0], *([1] * (like.ndim - 1))) if t.ndim == 1 else t


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """``x_sigma = alpha * x0 + beta * noise`` (``sigma`` one value per item, shape (B,), or one number)."""
    alpha, beta = _scales(sigma, x0)
    return alpha * x0 + beta * noise


def v_target(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """The training target, the velocity ``v = alpha * noise - beta * x0`` (``sigma`` per item (B,) or one number).

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    alpha, beta = _scales(sigma, x0)
    return alpha * noise - beta * x0


def denoise(x_sigma: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0_hat, noise_hat)`` from a noisy clip and its predicted velocity: undo the rotation,
    ``x0 = alpha * x_sigma - beta * v`` and ``noise = beta * x_sigma + alpha * v``.

    ``sigma`` is one noise level per item (B,) or one number for the whole batch.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    alpha, beta = _scales(sigma, x_sigma)
    return alpha * x_sigma - beta * v, beta * x_sigma + alpha * v


def sigma_schedule(steps: int) -> torch.Tensor:
    """The sampler's ``steps + 1`` noise levels, evenly spaced from 1 (pure noise) down to 0.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    steps = check_positive_int(steps, "steps")
    return torch.linspace(1.0, 0.0, steps + 1)


# --------------------------------------------------------------------------------------------
# Input helpers
# --------------------------------------------------------------------------------------------


LOGNORMAL_MEAN = -1.2 + math.log(2.0)  # Karras et al.'s P_mean at sigma_data 0.5, in unit-variance units
LOGNORMAL_STD = 1.2


def _sigma_data(model: Any) -> float:
    """The scale the model diffuses at (``config.sigma_data``; 1 for configs without one)."""
    return float(getattr(getattr(model, "config", None), "sigma_data", 1.0))


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


def quiet_weights(x0: torch.Tensor, power: float, window: int = 255, floor: float = 0.01) -> torch.Tensor:
    """Per-sample loss weights that count the quiet parts of each clip more: ``(envelope + floor) ** -power``.

    The envelope is the moving maximum of ``|x0|`` over ``window`` samples; the weights of each clip are scaled to
    mean 1, so ``power=0`` gives all ones and the loss keeps its size. Used by :func:`v_loss`'s
    ``quiet_weighting`` to aim training at the tails that a drum hit decays into.
    """
    env = F.max_pool1d(x0.detach().abs().float(), window, stride=1, padding=window // 2)
    w = (env + floor).pow(-float(power))
    return w / w.mean(dim=(1, 2), keepdim=True)


def v_loss_at(
    model: torch.nn.Module,
    x0: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    class_labels: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The v-objective at given noise levels and noise: ``mean((model(x_sigma, sigma, c) - v)²)``.

    ``x0`` and ``noise`` are (B, C, T), ``sigma`` is (B,). :func:`v_loss` draws them at random. A model whose
    config has ``sigma_data`` other than 1 learns ``x0 / sigma_data`` (and :func:`sample` scales back).
    ``weights`` (shaped like ``x0``) weight the squared errors, e.g. :func:`quiet_weights`.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    if not isinstance(x0, torch.Tensor) or x0.ndim != 3 or not x0.is_floating_point():
        raise CourseInputError(f"x0: expected a float tensor (batch, channels, samples), got {type(x0).__name__}"
                               f"{' of shape ' + str(tuple(x0.shape)) if isinstance(x0, torch.Tensor) else ''}.")
    if not isinstance(noise, torch.Tensor) or noise.shape != x0.shape:
        raise CourseInputError(f"noise: expected a tensor shaped like x0 {tuple(x0.shape)}, e.g. torch.randn_like(x0).")
    if not isinstance(sigma, torch.Tensor) or sigma.shape != (x0.shape[0],):
        raise CourseInputError(f"sigma: expected one noise level per item, a tensor of shape ({x0.shape[0]},).")
    x0 = x0 / _sigma_data(model)  # diffuse at unit variance (1 unless the config says otherwise)
    x_sigma = add_noise(x0, noise, sigma)
    pred = model(x_sigma, sigma, class_labels)
    if weights is None:
        return F.mse_loss(pred.float(), v_target(x0, noise, sigma).float())
    return (weights * (pred.float() - v_target(x0, noise, sigma).float()).pow(2)).mean()


def v_loss(
    model: torch.nn.Module,
    x0: Any,
    generator: torch.Generator | int | None = None,
    class_labels: Any = None,
    p_uncond: float = 0.1,
    noise_levels: str = "uniform",
    quiet_weighting: float = 0.0,
) -> torch.Tensor:
    """The v-diffusion training loss for a batch of clean clips ``x0`` (B, C, T).

    Works as ``loss_fn`` of ``course_lib.training.train``: ``x0`` may also be a batch
    ``(audio, labels)`` (e.g. from a ``TensorDataset``). Draws from ``generator`` (on the CPU), in
    this order: (1) ``sigma ~ U[0, 1)``, one per item; (2) ``noise ~ N(0, 1)`` shaped like ``x0``;
    (3) only with class labels: ``u ~ U[0, 1)`` per item, and items with ``u < p_uncond`` get the
    "null" class (classifier-free guidance training). Without labels every item is trained
    unconditionally. ``generator`` follows ``settings.make_generator``: a generator, an int seed,
    or None (a seed drawn from torch's global generator). ``noise_levels="lognormal"`` maps the uniform
    draw ``u`` through a normal quantile instead: ``ln tan(sigma pi / 2) ~ N(-0.5, 1.2²)``, the noise levels
    of Karras et al. (2022) for unit-variance data (their ``P_mean = -1.2``, ``P_std = 1.2`` at
    ``sigma_data = 0.5``), which train the middle levels more and both ends less. ``quiet_weighting`` > 0
    weights the squared error by :func:`quiet_weights` of that power (0: the plain mean).

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    if noise_levels not in ("uniform", "lognormal"):
        raise CourseInputError(f"noise_levels: expected 'uniform' or 'lognormal', got {noise_levels!r}.")
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
    g = make_generator(generator)
    n = x0.shape[0]
    labels = class_indices(model, class_labels, n)

    sigma = torch.rand(n, generator=g)
    if noise_levels == "lognormal":  # the same draw through the normal quantile: tan(sigma pi/2) log-normal
        z = torch.special.ndtri(sigma.clamp(1e-6, 1 - 1e-6))
        sigma = torch.atan(torch.exp(LOGNORMAL_MEAN + LOGNORMAL_STD * z)) * (2 / math.pi)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float32)
    if labels is not None:
        drop = torch.rand(n, generator=g) < p
        labels = torch.where(drop, torch.full_like(labels, int(_config(model).num_classes)), labels)
        labels = labels.to(x0.device)
    weights = quiet_weights(x0, quiet_weighting) if quiet_weighting else None
    return v_loss_at(model, x0, sigma.to(x0.device), noise.to(x0.device, x0.dtype), labels, weights)


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


def sampler_step(
    x: torch.Tensor,
    v: torch.Tensor,
    sigma: float,
    sigma_next: float,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One step of the v-sampler: from ``x`` at noise level ``sigma`` down to ``sigma_next``, given the model's ``v``.

    With ``eta=0`` the step is deterministic (DDIM): rotate back to the estimates of the clean clip
    and of the noise, then mix them at the new level. With ``eta > 0`` part of the noise estimate is
    swapped for fresh noise ``z`` (``eta=1``: DDPM's ancestral step), drawn on the CPU from
    ``generator`` (None: torch's global generator) and moved to ``x``'s device. The last step
    (``sigma_next = 0``) draws nothing and returns the clean estimate.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    sigma = check_number(sigma, "sigma", 0, 1)
    sigma_next = check_number(sigma_next, "sigma_next", 0, sigma)
    eta = check_number(eta, "eta (0 = deterministic, 1 = DDPM-like)", 0, 1)
    if not isinstance(x, torch.Tensor) or not isinstance(v, torch.Tensor) or v.shape != x.shape:
        raise CourseInputError(f"v: expected a tensor shaped like x {tuple(getattr(x, 'shape', ()))}, "
                               "the model's prediction for x.")
    # 1. The noise levels as angles on the unit circle: alpha = cos(sigma pi / 2), beta = sin(sigma pi / 2).
    alpha, beta = math.cos(sigma * math.pi / 2), math.sin(sigma * math.pi / 2)
    alpha_next, beta_next = math.cos(sigma_next * math.pi / 2), math.sin(sigma_next * math.pi / 2)
    # 2. Rotate back: x0_hat = alpha x - beta v,  noise_hat = beta x + alpha v.
    x0_hat, noise_hat = denoise(x, v, sigma)
    # 3. How much fresh noise (DDIM's sigma_t, with eta): c = eta (beta' / beta) sqrt(1 - alpha² / alpha'²).
    c = 0.0
    if eta > 0 and sigma_next > 0:
        c = eta * (beta_next / beta) * math.sqrt(max(0.0, 1.0 - alpha**2 / alpha_next**2))
    # 4. Mix at the new level, the noise estimate scaled so the total noise stays beta':
    #    x' = alpha' x0_hat + sqrt(beta'² - c²) noise_hat
    x_next = alpha_next * x0_hat + math.sqrt(max(0.0, beta_next**2 - c**2)) * noise_hat
    # 5. Add the fresh noise: x' += c z,  z ~ N(0, I).
    if c > 0:
        x_next = x_next + c * torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device)
    return x_next


def heun_step(
    x: torch.Tensor, v: torch.Tensor, x_next: torch.Tensor, v_next: torch.Tensor, sigma: float, sigma_next: float
) -> torch.Tensor:
    """Heun's second-order correction of a deterministic step from ``sigma`` to ``sigma_next``.

    ``x_next`` is the DDIM step's result (:func:`sampler_step` with ``eta=0``) and ``v_next`` the model's
    velocity there. In the variables of Karras et al. (2022), ``y = x / alpha`` and ``t = beta / alpha``, the
    DDIM step is Euler's method for ``dy/dt = noise_hat``: ``y' = y + (t' - t) noise_hat``. Heun averages the
    slope at both ends, ``y' = y + (t' - t) (noise_hat + noise_hat') / 2``, which is exact to second order in
    the step. Needs ``0 < sigma_next < sigma < 1`` (``t`` is infinite at sigma = 1).
    """
    sigma = check_number(sigma, "sigma", 0, 1)
    sigma_next = check_number(sigma_next, "sigma_next", 0, sigma)
    if not 0 < sigma_next < sigma < 1:
        raise CourseInputError(f"heun_step needs 0 < sigma_next < sigma < 1, got sigma={sigma}, "
                               f"sigma_next={sigma_next}; take a plain sampler_step at the first and last steps.")
    for name, t in (("v", v), ("x_next", x_next), ("v_next", v_next)):
        if not isinstance(t, torch.Tensor) or not isinstance(x, torch.Tensor) or t.shape != x.shape:
            raise CourseInputError(f"{name}: expected a tensor shaped like x {tuple(getattr(x, 'shape', ()))}.")
    alpha, beta = math.cos(sigma * math.pi / 2), math.sin(sigma * math.pi / 2)
    alpha_next, beta_next = math.cos(sigma_next * math.pi / 2), math.sin(sigma_next * math.pi / 2)
    noise_hat = beta * x + alpha * v  # the slope dy/dt at the start ...
    noise_hat_next = beta_next * x_next + alpha_next * v_next  # ... and at the Euler (DDIM) end point
    y_next = x / alpha + (beta_next / alpha_next - beta / alpha) * 0.5 * (noise_hat + noise_hat_next)
    return alpha_next * y_next


def _check_sample_args(model: Any, n: Any, length: Any, class_labels: Any, guidance_scale: Any,
                       eta: Any) -> tuple[Any, int, int, torch.Tensor | None, float, float]:
    """``sample``'s arguments, checked: (config, n, length, labels, guidance_scale, eta)."""
    config = _config(model)
    n = check_positive_int(n, "n")
    length = check_positive_int(int(config.sample_length) if length is None else length, "length")
    multiple = int(getattr(model, "length_multiple", 1))
    if length % multiple:
        raise CourseInputError(
            f"length: {length} is not a multiple of {multiple} (the product of the model's factors); "
            f"use e.g. {max(1, round(length / multiple)) * multiple}."
        )
    guidance_scale = check_number(guidance_scale, "guidance_scale", low=0)
    eta = check_number(eta, "eta (0 = deterministic, 1 = DDPM-like)", 0, 1)
    labels = class_indices(model, class_labels, n)
    if labels is None and guidance_scale != 1.0:
        raise CourseInputError(
            "guidance_scale: guidance needs class_labels (e.g. class_labels='kick'); without a class "
            "leave guidance_scale=1.0."
        )
    return config, n, length, labels, guidance_scale, eta


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    n: int,
    length: int | None,
    steps: int,
    generator: torch.Generator | int | None = None,
    class_labels: Any = None,
    guidance_scale: float = 1.0,
    eta: float = 0.0,
    progress: bool = True,
    clip: bool = True,
    compile: bool | str = False,
    sampler: str = "ddim",
) -> torch.Tensor:
    """Generate ``n`` clips of ``length`` samples (None: the model's ``sample_length``) in ``steps`` steps.

    Starting from ``x = noise`` at sigma = 1, every step from ``s`` to the next, lower level ``s'``
    predicts ``v`` and takes one :func:`sampler_step`:
    ``x = alpha' * x0_hat + sqrt(beta'² - c²) * noise_hat + c * z`` with
    ``c = eta * (beta' / beta) * sqrt(1 - alpha² / alpha'²)`` and fresh noise ``z``. With ``eta=0``
    (``c = 0``) every step is deterministic (DDIM); ``eta=1`` is the DDPM (ancestral) sampler.

    ``class_labels``: None (unconditional), one class (index or name, e.g. ``"kick"``) for all, or
    one per clip. ``guidance_scale`` > 1 strengthens the class (two passes per step). Randomness,
    all from ``generator`` on the CPU (``settings.make_generator``: a generator, an int seed, or
    None): first the starting noise (n, C, length), then, if ``eta > 0``, one ``z`` per step except
    the last. Returns a float32 tensor (n, C, length) on the model's device, times the config's
    ``sigma_data`` (1 for most models), clipped to [-1, 1] unless ``clip=False``. The model is put in
    eval mode. ``compile=True`` runs the model compiled by
    ``course_lib.training.compile_model`` (the first call compiles: worth it for many steps or many calls;
    the same clips up to float rounding). ``sampler="heun"`` (with ``eta=0``) corrects every step but the
    first and the last with :func:`heun_step`: second order, ``2 * steps - 2`` model calls instead of ``steps``.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    from course_lib.settings import progress as progress_bar

    # Validate every argument once.
    config, n, length, labels, guidance_scale, eta = _check_sample_args(model, n, length, class_labels,
                                                                        guidance_scale, eta)
    if sampler not in ("ddim", "heun") or (sampler == "heun" and eta != 0):
        raise CourseInputError(f"sampler: expected 'ddim' (any eta) or 'heun' (eta=0 only), got {sampler!r} "
                               f"with eta={eta}.")
    sigmas = sigma_schedule(steps)
    g = make_generator(generator)
    device = next(iter([*model.parameters(), *model.buffers()]), torch.empty(0)).device
    model.eval()
    net = compile_model(model, compile)
    labels = labels.to(device) if labels is not None else None
    null = int(config.num_classes) if config.num_classes else None
    # Start from pure noise at sigma = 1, drawn on the CPU.
    x = torch.randn((n, int(config.in_channels), length), generator=g, dtype=torch.float32).to(device)
    for i in progress_bar(range(steps), desc="sampling", disable=not progress, leave=False):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        # 1. The model's velocity at sigma (with guidance: v = v_null + w (v_class - v_null)).
        v = _guided_v(net, x, s, labels, null, guidance_scale)
        # 2. One step down: sigma -> sigma_next.
        x_next = sampler_step(x, v, s, s_next, eta=eta, generator=g)
        # 3. Heun only: look again from where the step landed and average the two slopes.
        if sampler == "heun" and 0 < s_next and s < 1:
            x_next = heun_step(x, v, x_next, _guided_v(net, x_next, s_next, labels, null, guidance_scale), s, s_next)
        x = x_next
    x = x * _sigma_data(model)  # back to the data's scale (a no-op for sigma_data = 1)
    return x.clamp(-1.0, 1.0) if clip else x
