"""A variational autoencoder (VAE) for log-spectrograms: lesson 06's non-diffusion baseline.

The classic "sound generation with a VAE" project compresses each 256 x 64 log-spectrogram (0.74 s
of 22 050 Hz audio, frame 512, hop 256: lesson 01's preprocessing) into a latent vector of 128
numbers and learns to rebuild it. The parts, in the order the data flows::

    features (B, 1, 256, 64) in [0, 1]
      encoder   conv 3x3 blocks, each halving the size (the last one halves the height only):
                256x64 -> 128x32 -> 64x16 -> 32x8 -> 16x4 -> 8x4, then flatten
      mu, logvar  two linear layers: the mean and log-variance of a Gaussian per latent number
      z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)        the *reparameterisation*
      decoder   linear -> 8x4 -> transposed-conv blocks back up to 256x64 -> sigmoid

Training minimises ``MSE(reconstruction, x) + kl_weight * KL(q(z|x) || N(0, I))``: the first term
makes the code informative, the second pulls every code distribution towards the standard normal,
so that decoding a random ``z ~ N(0, I)`` (:meth:`SpectrogramVAE.sample`) gives something that
looks like the data. The classic project writes the loss as ``1_000_000 * MSE + KL``, i.e. a
``kl_weight`` of 1e-6 (up to a constant factor). The weight trades the two against each other: in a
CPU trial of the laptop configuration (1000 training clips of ``synth.digit_dataset``, 1200 steps,
the same seed), ``kl_weight`` 1e-5 / 3e-5 / 1e-4 gave a held-out KL of 56 / 28 / 14 nats per clip, a
reconstruction error of 0.142 / 0.149 / 0.179 times that of the mean spectrogram, and a Fréchet
distance of prior samples to real clips of 44.7 / 37.6 / 26.1 (style-classifier embeddings); at 400
steps, 1e-6 gave 256 nats and 64.4. The default, 1e-4, favours samples that sound like the data.

Going back to sound: the decoder gives a normalised spectrogram; the per-clip minimum and maximum
(in dB) stored by the preprocessing turn it back into dB (:func:`course_lib.preprocess.denormalise_batch`
*adds* the minimum back), then magnitudes, then audio by Griffin-Lim (:func:`features_to_audio`).

Two configurations: :data:`CLASSIC` (filters 512, 256, 128, 64, 32; latent 128: the classic project's
encoder, sized for a GPU) and the default ``VAEConfig()`` (:data:`LAPTOP`: 16, 32, 64, 128, 128, narrow
where the maps are large), sized to train on a laptop CPU (its time: the model card,
``checkpoints/spectrogram-vae/README.md``). The decoder mirrors the
encoder (the same channel counts in reverse). Sizes: CLASSIC 3 543 009 parameters and about 6.5 G
multiply-adds per clip in its convolutions (a transposed convolution works at its larger output size);
LAPTOP 2 067 777 parameters (most of them in the three linear layers around the latent) and 88 M
multiply-adds, 74 times fewer.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.io import read_json, write_json
from course_lib.models.base import PretrainedModel
from course_lib.validate import (
    CourseInputError,
    as_float_tensor,
    check_choice,
    check_number,
    check_positive_int,
    check_sample_rate,
    prepare_output_dir,
)

__all__ = [
    "VAEConfig",
    "CLASSIC",
    "LAPTOP",
    "VAEOutput",
    "SpectrogramVAE",
    "kl_divergence",
    "vae_loss",
    "vae_loss_terms",
    "reconstruction_error",
    "preprocess_clips",
    "features_to_audio",
    "save_min_max",
    "load_min_max",
    "load_vae",
    "layer_shapes",
    "CHECKPOINT_NAME",
    "MIN_MAX_NAME",
]

MIN_MAX_NAME = "min_max_values.json"
CHECKPOINT_NAME = "spectrogram-vae"
_MODEL_TYPE = "course-spectrogram-vae"


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class VAEConfig:
    """Everything that defines a :class:`SpectrogramVAE`; saved as ``config.json`` next to the weights.

    ``channels[i]`` and ``strides[i]`` (height, width) describe encoder block ``i``; the decoder
    mirrors them. ``height`` x ``width`` is the spectrogram size (frequency rows x frames); the
    audio fields say which clips it was made for (lesson 01's pipeline: 0.74 s at 22 050 Hz, frame
    512, hop 256 -> 256 x 64). ``kl_weight`` is the default weight of the KL term in :func:`vae_loss`.
    The defaults are :data:`LAPTOP`.

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """

    height: int = 256
    width: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 128, 128)
    strides: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 2), (2, 2), (2, 1))
    kernel_size: int = 3
    latent_dim: int = 128
    kl_weight: float = 1e-4
    sample_rate: int = 22050
    duration: float = 0.74
    frame_size: int = 512
    hop_length: int = 256

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> VAEConfig:
        """Check every field; raise ``CourseInputError`` naming the field and the fix."""
        check_positive_int(self.height, "height")
        check_positive_int(self.width, "width")
        for name in ("channels", "strides"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
                raise CourseInputError(f"{name}: expected a non-empty list with one entry per block, got {value!r}.")
        self.channels = tuple(check_positive_int(c, f"channels[{i}]") for i, c in enumerate(self.channels))
        strides = []
        for i, s in enumerate(self.strides):
            if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
                s = (s, s)
            if not isinstance(s, (list, tuple)) or len(s) != 2:
                raise CourseInputError(
                    f"strides[{i}]: expected a number or a (height, width) pair such as (2, 1), got {s!r}."
                )
            strides.append((check_positive_int(s[0], f"strides[{i}][0]"), check_positive_int(s[1], f"strides[{i}][1]")))
        self.strides = tuple(strides)
        if len(self.strides) != len(self.channels):
            raise CourseInputError(
                f"strides: {len(self.strides)} entries but channels has {len(self.channels)}; give one per block."
            )
        k = check_positive_int(self.kernel_size, "kernel_size")
        if k % 2 == 0:
            raise CourseInputError(f"kernel_size: use an odd size such as 3 (so 'same' padding is symmetric), got {k}.")
        sh = math.prod(s[0] for s in self.strides)
        sw = math.prod(s[1] for s in self.strides)
        if self.height % sh or self.width % sw:
            raise CourseInputError(
                f"height/width: {self.height} x {self.width} is not divisible by the total stride {sh} x {sw}; "
                "the decoder could not rebuild the exact size. Change strides or the spectrogram size."
            )
        check_positive_int(self.latent_dim, "latent_dim")
        self.kl_weight = check_number(self.kl_weight, "kl_weight", low=0.0)
        self.sample_rate = check_sample_rate(self.sample_rate)
        self.duration = check_number(self.duration, "duration", low=0.0, low_open=True)
        check_positive_int(self.frame_size, "frame_size", minimum=4)
        check_positive_int(self.hop_length, "hop_length")
        if self.frame_size // 2 != self.height:
            raise CourseInputError(
                f"frame_size: {self.frame_size} gives {self.frame_size // 2} frequency rows but height is "
                f"{self.height}; the preprocessing drops the top bin, so use frame_size = 2 * height."
            )
        frames = 1 + self.num_samples // self.hop_length
        if frames != self.width:
            raise CourseInputError(
                f"duration: {self.duration:g} s at {self.sample_rate} Hz with hop {self.hop_length} gives {frames} "
                f"frames, but width is {self.width}; use e.g. duration=0.74 for 64 frames at 22050 Hz."
            )
        return self

    @property
    def num_samples(self) -> int:
        """Samples per clip: ``round(sample_rate * duration)`` (the preprocessing's padded length)."""
        return int(round(self.sample_rate * self.duration))

    @property
    def bottleneck_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the last encoder block's output, before flattening."""
        sh = math.prod(s[0] for s in self.strides)
        sw = math.prod(s[1] for s in self.strides)
        return self.channels[-1], self.height // sh, self.width // sw

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-friendly dict (lists instead of tuples)."""
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        d["strides"] = [list(s) for s in self.strides]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAEConfig:
        """Rebuild a config from ``to_dict`` output; unknown keys are rejected, keys starting with _ ignored."""
        if not isinstance(d, dict):
            raise CourseInputError(f"config: expected a dict, got {type(d).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if not str(k).startswith("_")}
        unknown = set(d) - names
        if unknown:
            raise CourseInputError(f"config: unknown field(s) {sorted(unknown)}; known: {sorted(names)}.")
        return cls(**d)

    def replace(self, **changes: Any) -> VAEConfig:
        """A copy with some fields changed (validated again), e.g. ``CLASSIC.replace(latent_dim=64)``."""
        return dataclasses.replace(self, **changes)


# The classic project's encoder: 256 x 64 x 1 input, filters 512, 256, 128, 64, 32, 3x3 kernels,
# strides 2, 2, 2, 2, (2, 1), latent 128 (its loss weighting corresponds to kl_weight 1e-6).
CLASSIC = VAEConfig(channels=(512, 256, 128, 64, 32), latent_dim=128, kl_weight=1e-6)
# Narrow near the input (where the maps are large) and wider deeper down: far fewer operations.
LAPTOP = VAEConfig()


def layer_shapes(config: VAEConfig) -> list[tuple[str, tuple[int, int, int]]]:
    """(name, (channels, height, width)) after every encoder block, from the config alone (no model).

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    if not isinstance(config, VAEConfig):
        raise CourseInputError(f"config: expected a VAEConfig, got {type(config).__name__}.")
    shapes = [("input", (1, config.height, config.width))]
    h, w = config.height, config.width
    for i, (c, (sh, sw)) in enumerate(zip(config.channels, config.strides)):
        h, w = h // sh, w // sw
        shapes.append((f"encoder block {i}", (c, h, w)))
    return shapes


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


class VAEOutput(NamedTuple):
    """What :meth:`SpectrogramVAE.forward` returns."""

    reconstruction: torch.Tensor  # (B, 1, H, W) in (0, 1)
    mu: torch.Tensor  # (B, latent_dim)
    logvar: torch.Tensor  # (B, latent_dim)
    z: torch.Tensor  # (B, latent_dim), the sampled code that was decoded


def _conv_block(c_in: int, c_out: int, kernel: int, stride: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def _up_block(c_in: int, c_out: int, kernel: int, stride: tuple[int, int], last: bool) -> nn.Sequential:
    # output_padding = stride - 1 makes the size exactly stride x the input (undoing the encoder block).
    conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2,
                              output_padding=(stride[0] - 1, stride[1] - 1))
    if last:
        return nn.Sequential(conv, nn.Sigmoid())
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU())


class SpectrogramVAE(PretrainedModel):
    """Convolutional VAE on normalised log-spectrograms (B, 1, height, width) in [0, 1].

    :meth:`encode` -> (mu, logvar); :meth:`reparameterise` -> z; :meth:`decode` -> spectrogram;
    :meth:`forward` does all three; :meth:`reconstruct` decodes the mean code (no randomness);
    :meth:`sample` decodes codes drawn from the prior N(0, I). Blocks are conv -> batch norm -> ReLU.

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        if config is None:
            config = VAEConfig()
        if not isinstance(config, VAEConfig):
            raise CourseInputError(
                f"config: expected a VAEConfig (e.g. VAEConfig() or CLASSIC), got {type(config).__name__}."
            )
        self.config = config.replace()  # a private, validated copy
        c, k = self.config.channels, self.config.kernel_size
        ins = (1,) + c[:-1]
        self.encoder = nn.Sequential(*[_conv_block(ci, co, k, s) for ci, co, s in zip(ins, c, self.config.strides)])
        flat = math.prod(self.config.bottleneck_shape)
        self.to_mu = nn.Linear(flat, self.config.latent_dim)
        self.to_logvar = nn.Linear(flat, self.config.latent_dim)
        self.from_latent = nn.Linear(self.config.latent_dim, flat)
        n = len(c)
        self.decoder = nn.Sequential(*[
            _up_block(c[i], ins[i], k, self.config.strides[i], last=i == 0) for i in reversed(range(n))
        ])

    # -- checks ---------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """The device of the model's weights."""
        return next(self.parameters()).device

    def _features(self, x: Any, name: str = "x") -> torch.Tensor:
        """Check a batch of normalised spectrograms; return (B, 1, H, W) float32 on the model's device."""
        h, w = self.config.height, self.config.width
        t = as_float_tensor(x, name, min_ndim=3, max_ndim=4)
        if t.ndim == 3:
            t = t[:, None]
        if t.shape[1:] != (1, h, w):
            raise CourseInputError(
                f"{name}: expected normalised spectrograms of shape (batch, 1, {h}, {w}) or (batch, {h}, {w}), got "
                f"{tuple(t.shape)}. Make them with course_lib.models.vae.preprocess_clips (clips of "
                f"{self.config.duration:g} s at {self.config.sample_rate} Hz)."
            )
        lo, hi = float(t.min()), float(t.max())
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise CourseInputError(
                f"{name}: values run from {lo:.3g} to {hi:.3g}, but the model works on min-max normalised "
                "spectrograms in [0, 1] (dB values? normalise them with preprocess_clips first)."
            )
        return t.to(self.device)

    def _latent(self, z: Any, name: str = "z") -> torch.Tensor:
        t = as_float_tensor(z, name, min_ndim=2, max_ndim=2)
        if t.shape[1] != self.config.latent_dim:
            raise CourseInputError(
                f"{name}: expected codes of shape (batch, latent_dim={self.config.latent_dim}), got {tuple(t.shape)}."
            )
        return t.to(self.device)

    # -- the three steps ---------------------------------------------------------------------

    def encode(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Spectrograms (B, 1, H, W) -> (mu, logvar), each (B, latent_dim)."""
        h = self.encoder(self._features(x)).flatten(1)
        return self.to_mu(h), self.to_logvar(h)

    @staticmethod
    def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` drawn on the CPU from ``generator``.

        Writing the sample this way keeps it differentiable with respect to ``mu`` and ``logvar``
        (the randomness sits in ``eps``, which needs no gradient).
        """
        if not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor) or mu.shape != logvar.shape:
            raise CourseInputError(
                "mu/logvar: expected two tensors of the same shape (batch, latent_dim), as returned by encode."
            )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise CourseInputError(f"generator: expected a torch.Generator, got {type(generator).__name__}.")
        eps = torch.randn(mu.shape, generator=generator, dtype=torch.float32).to(mu.device, mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: Any) -> torch.Tensor:
        """Codes (B, latent_dim) -> spectrograms (B, 1, H, W) in (0, 1)."""
        h = self.from_latent(self._latent(z))
        return self.decoder(h.view(h.shape[0], *self.config.bottleneck_shape))

    def forward(self, x: Any, generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, draw a code with the reparameterisation, decode: the training path."""
        mu, logvar = self.encode(x)
        z = self.reparameterise(mu, logvar, generator)
        return VAEOutput(self.decode(z), mu, logvar, z)

    # -- inference helpers (eval mode, no gradients) -----------------------------------------

    def _inference(self, fn: Any) -> torch.Tensor:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return fn()
        finally:
            self.train(was_training)

    def reconstruct(self, x: Any) -> torch.Tensor:
        """Decode the mean code of each spectrogram (deterministic), in eval mode: (B, 1, H, W)."""
        return self._inference(lambda: self.decode(self.encode(x)[0]))

    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Decode ``n`` codes drawn from the prior ``N(0, temperature² I)``: (n, 1, H, W) in (0, 1).

        ``temperature`` below 1 stays nearer the centre of the latent space (safer, less varied).
        """
        n = check_positive_int(n, "n")
        temperature = check_number(temperature, "temperature", low=0.0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise CourseInputError(f"generator: expected a torch.Generator, got {type(generator).__name__}.")
        z = torch.randn(n, self.config.latent_dim, generator=generator) * temperature
        return self._inference(lambda: self.decode(z))

    def to_audio(self, features: Any, mins: Any, maxs: Any, n_iter: int = 64,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """:func:`features_to_audio` with this model's frame size, hop and clip length: audio (N, num_samples)."""
        c = self.config
        return features_to_audio(features, mins, maxs, n_iter=n_iter, generator=generator, frame_size=c.frame_size,
                                 hop_length=c.hop_length, length=c.num_samples)

    def num_parameters(self) -> int:
        """The number of parameters (weights and biases; batch-norm running statistics excluded)."""
        return sum(p.numel() for p in self.parameters())

    # -- saving and loading -------------------------------------------------------------------

    def config_to_dict(self) -> dict[str, Any]:
        """The config as saved in ``config.json``, tagged with the model type."""
        return {"model_type": _MODEL_TYPE, **self.config.to_dict()}

    @classmethod
    def config_from_dict(cls, config: dict[str, Any]) -> VAEConfig:
        """The :class:`VAEConfig` in a saved config (``CourseInputError`` if it is not a spectrogram VAE's)."""
        if config.get("model_type") != _MODEL_TYPE:
            raise CourseInputError(f"config: it is not a {_MODEL_TYPE!r} config (model_type "
                                   f"{config.get('model_type')!r}).")
        return VAEConfig.from_dict({k: v for k, v in config.items() if k != "model_type"})


def load_vae(folder: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> SpectrogramVAE:
    """The course-trained spectrogram VAE that ships in ``checkpoints/spectrogram-vae`` (or the one in ``folder``).

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    return SpectrogramVAE.load_shipped(CHECKPOINT_NAME, folder, device)


# --------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------


def kl_divergence(mu: Any, logvar: Any, reduction: str = "mean") -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in nats, in closed form, summed over the latent numbers.

    Per item: ``0.5 * sum_j (mu_j² + exp(logvar_j) - 1 - logvar_j)``, which is 0 exactly when the
    code distribution is the standard normal. ``reduction``: ``"mean"`` (over the batch, the
    default), ``"sum"`` (over the batch) or ``"none"`` (one value per item, shape (B,)).

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    m = mu if isinstance(mu, torch.Tensor) else as_float_tensor(mu, "mu", min_ndim=2, max_ndim=2)
    lv = logvar if isinstance(logvar, torch.Tensor) else as_float_tensor(logvar, "logvar", min_ndim=2, max_ndim=2)
    if m.ndim != 2 or m.shape != lv.shape:
        raise CourseInputError(
            f"mu/logvar: expected two (batch, latent_dim) tensors of the same shape, got "
            f"{tuple(m.shape)} and {tuple(lv.shape)}."
        )
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    per_item = 0.5 * (m.square() + lv.exp() - 1.0 - lv).sum(dim=1)
    if reduction == "none":
        return per_item
    return per_item.mean() if reduction == "mean" else per_item.sum()


def _batch_tensor(batch: Any) -> Any:
    """A batch from training.train: a tensor, or a (features, labels, ...) tuple/list."""
    if isinstance(batch, (list, tuple)) and batch:
        return batch[0]
    return batch


def vae_loss_terms(model: SpectrogramVAE, batch: Any, generator: torch.Generator | None = None,
                   kl_weight: float | None = None) -> dict[str, torch.Tensor]:
    """``{"loss", "reconstruction", "kl"}``: the terms of :func:`vae_loss` (for logging and plots).

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    if not isinstance(model, SpectrogramVAE):
        raise CourseInputError(f"model: expected a SpectrogramVAE, got {type(model).__name__}.")
    weight = model.config.kl_weight if kl_weight is None else check_number(kl_weight, "kl_weight", low=0.0)
    x = model._features(_batch_tensor(batch), "batch")
    out = model(x, generator)
    recon = F.mse_loss(out.reconstruction, x)
    kl = kl_divergence(out.mu, out.logvar)
    return {"loss": recon + weight * kl, "reconstruction": recon, "kl": kl}


def vae_loss(model: SpectrogramVAE, batch: Any, generator: torch.Generator | None = None,
             kl_weight: float | None = None) -> torch.Tensor:
    """``MSE(reconstruction, x) + kl_weight * KL``: the loss to train on (a ``training.train`` loss_fn).

    The MSE is the mean over every pixel and item; the KL is :func:`kl_divergence` (summed over
    the latent numbers, mean over the batch). ``eps`` for the reparameterisation comes from
    ``generator``, so a run is reproducible and resumes exactly. ``kl_weight=None`` uses the
    model's ``config.kl_weight``.

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    return vae_loss_terms(model, batch, generator, kl_weight)["loss"]


def reconstruction_error(model: SpectrogramVAE, features: Any, batch_size: int = 64) -> torch.Tensor:
    """Per-item mean squared error (B,) of :meth:`~SpectrogramVAE.reconstruct` (the mean code) on ``features``."""
    if not isinstance(model, SpectrogramVAE):
        raise CourseInputError(f"model: expected a SpectrogramVAE, got {type(model).__name__}.")
    batch_size = check_positive_int(batch_size, "batch_size")
    x = model._features(features, "features")
    errors = [
        (model.reconstruct(x[i:i + batch_size]) - x[i:i + batch_size]).square().mean(dim=(1, 2, 3))
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(errors).cpu()


# --------------------------------------------------------------------------------------------
# From audio to features and back (lesson 01's pipeline)
# --------------------------------------------------------------------------------------------


def preprocess_clips(audio: Any, sample_rate: int = 22050, duration: float = 0.74, frame_size: int = 512,
                     hop_length: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clips (N, T) -> (features (N, 1, frame_size/2, frames) in [0, 1], mins (N,), maxs (N,)).

    Lesson 01's pipeline on arrays instead of files: pad with zeros (or trim) to
    ``round(sample_rate * duration)`` samples (:class:`~course_lib.preprocess.Padder`), log-magnitude
    spectrogram in dB (:func:`~course_lib.preprocess.batched_log_spectrogram`: Hann window, top bin
    dropped, floor 80 dB below each clip's peak), then min-max normalisation per clip
    (:class:`~course_lib.preprocess.MinMaxNormaliser`), keeping each clip's dB minimum and maximum
    so that :func:`features_to_audio` can undo it. The numbers equal ``preprocess_folder``'s.

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    from course_lib.preprocess import MinMaxNormaliser, Padder, batched_log_spectrogram, num_expected_samples

    x = as_float_tensor(audio, "audio", min_ndim=2, max_ndim=2).cpu()
    length = num_expected_samples(sample_rate, duration)
    if x.shape[1] >= length:
        x = x[:, :length]
    else:
        padder = Padder("constant")
        x = torch.from_numpy(np.stack([padder.right_pad(row, length - x.shape[1]) for row in x.numpy()]))
    db = batched_log_spectrogram(x.contiguous(), frame_size, hop_length)
    normaliser = MinMaxNormaliser(0.0, 1.0)
    features = torch.empty_like(db)
    mins = torch.empty(db.shape[0], dtype=torch.float64)
    maxs = torch.empty(db.shape[0], dtype=torch.float64)
    for i in range(db.shape[0]):
        features[i], mins[i], maxs[i] = normaliser.normalise_with_stats(db[i])
    return features[:, None].contiguous(), mins, maxs


def features_to_audio(features: Any, mins: Any, maxs: Any, n_iter: int = 64, generator: torch.Generator | None = None,
                      frame_size: int = 512, hop_length: int = 256, length: int | None = None) -> torch.Tensor:
    """Normalised spectrograms (N, 1, F, frames) or (N, F, frames) -> audio (N, length) by Griffin-Lim.

    Each spectrogram is denormalised with its clip's dB ``mins`` / ``maxs`` (N,)
    (:func:`course_lib.preprocess.denormalise_batch`), turned into magnitudes (``10 ** (dB / 20)``),
    given back the top frequency row that the preprocessing dropped (as zeros), and inverted with
    ``n_iter`` iterations of fast Griffin-Lim (random initial phase from ``generator``). ``length``
    (samples) defaults to ``hop_length * (frames - 1)``; :meth:`SpectrogramVAE.to_audio` passes the
    clip length of the model's config. For prior samples, which have no clip of their own, pass
    typical values such as the training set's median minimum and maximum.
    """
    from course_lib.preprocess import denormalise_batch
    from course_lib.spectrogram import griffin_lim

    y = as_float_tensor(features, "features", min_ndim=3, max_ndim=4)
    if y.ndim == 4:
        if y.shape[1] != 1:
            raise CourseInputError(f"features: expected one channel (N, 1, F, frames), got {tuple(y.shape)}.")
        y = y[:, 0]
    if y.shape[1] != frame_size // 2:
        raise CourseInputError(
            f"features: {y.shape[1]} frequency rows, but frame_size={frame_size} gives {frame_size // 2}; "
            "pass the frame_size the features were made with."
        )
    lo = as_float_tensor(mins, "mins", min_ndim=1, max_ndim=1)
    hi = as_float_tensor(maxs, "maxs", min_ndim=1, max_ndim=1)
    db = denormalise_batch(y.detach().cpu().to(torch.float64), lo.to(torch.float64), hi.to(torch.float64))
    magnitude = torch.pow(10.0, db / 20.0).to(torch.float32)
    magnitude = F.pad(magnitude, (0, 0, 0, 1))  # the dropped top (Nyquist) row, as zeros
    return griffin_lim(magnitude, n_fft=frame_size, hop_length=hop_length, n_iter=n_iter, length=length,
                       generator=generator)


def save_min_max(path: str | os.PathLike, mins: Any, maxs: Any, names: list[str] | None = None,
                 params: dict[str, Any] | None = None) -> Path:
    """Write per-clip dB minima and maxima as JSON in lesson 01's ``min_max_values.json`` layout.

    ``{"format": ..., "params": {...}, "files": {name: {"feature": name, "min": ..., "max": ...}}}``;
    ``names`` default to "clip-00000", ... (row order). The file is replaced atomically. JSON, not
    pickle: loading it can never run code.
    """
    from course_lib.preprocess import FORMAT_TAG

    if not isinstance(path, (str, os.PathLike)):
        raise CourseInputError(f"path: expected a file path such as 'min_max_values.json', got {type(path).__name__}.")
    lo = as_float_tensor(mins, "mins", min_ndim=1, max_ndim=1).tolist()
    hi = as_float_tensor(maxs, "maxs", min_ndim=1, max_ndim=1).tolist()
    if len(lo) != len(hi):
        raise CourseInputError(f"mins/maxs: {len(lo)} minima but {len(hi)} maxima; give one of each per clip.")
    if any(b < a for a, b in zip(lo, hi)):
        raise CourseInputError("mins/maxs: some maxima are below their minima; did you swap them?")
    if names is None:
        names = [f"clip-{i:05d}" for i in range(len(lo))]
    if not isinstance(names, (list, tuple)) or len(names) != len(lo) or len(set(names)) != len(names):
        raise CourseInputError(f"names: expected {len(lo)} distinct names (one per clip), got {len(names)} entries.")
    p = Path(path)
    prepare_output_dir(p.parent if str(p.parent) else ".", "path's folder")
    files = {str(n): {"feature": str(n), "min": float(a), "max": float(b)} for n, a, b in zip(names, lo, hi)}
    payload = {"format": FORMAT_TAG, "params": params or {}, "files": files}
    return write_json(p, payload)


def load_min_max(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read a ``min_max_values.json`` (from :func:`save_min_max` or lesson 01's pipeline): (mins, maxs, names).

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    payload = read_json(path, "path", hint="Write one with save_min_max or lesson 01's preprocess_folder.")
    p = Path(path)
    try:
        files = payload["files"]
        names = list(files)
        mins = torch.tensor([float(files[n]["min"]) for n in names], dtype=torch.float64)
        maxs = torch.tensor([float(files[n]["max"]) for n in names], dtype=torch.float64)
    except (ValueError, KeyError, TypeError) as e:
        raise CourseInputError(
            f"path: {str(p)!r} is not a min/max table ({type(e).__name__}: {e}); write one with save_min_max."
        ) from e
    return mins, maxs, names
