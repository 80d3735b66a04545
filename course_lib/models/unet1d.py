"""A readable 1-D U-Net that denoises raw waveforms (lesson 05).

``UNet1D(config)(x, sigma, class_labels)`` takes a batch of noisy waveforms ``x`` of shape
(batch, channels, samples), the noise level ``sigma`` in [0, 1] of each item (batch,) and,
optionally, a class per item (batch,), and returns a tensor shaped like ``x``. With
:mod:`course_lib.diffusion.vdiffusion` that output is the predicted *velocity* ``v``.

The network, level by level (``i = 0`` is the full-resolution level)::

    input of level i   (C[i-1] channels, T samples)   ──────────────────────────────┐ skip
      Downsample       strided conv, kernel = stride = factors[i] -> C[i] channels, T / factors[i]
      blocks[i] x      ResBlock -> Modulation -> SelfAttention (only where attention[i])
        level i + 1    (the same again, one level deeper)
      blocks[i] x      ResBlock -> Modulation -> SelfAttention (only where attention[i])
      Upsample         repeat every sample factors[i] times, conv k=3 -> C[i-1] channels, T
    output of level i = skip + gain(features) * upsampled                    <────────┘

- ``ResBlock``: two (GroupNorm -> SiLU -> conv k=3) with a residual connection: local waveform
  shapes. ``SelfAttention``: every time step looks at every other one; it is quadratic in length,
  so it is only used at the low-resolution levels.
- Conditioning: the noise level (and the class) become one feature vector per item; every
  ``Modulation`` scales and shifts each time step by amounts computed from it, and every skip
  connection is weighted by a gain computed from it. One extra "null" class (index
  ``num_classes``) means "no class", which makes classifier-free guidance possible.
- Positional encoding (fixed sine/cosine patterns inside attention) tells the network *where* in
  the clip a step is: a drum hit starts at the beginning and decays.
- Every level halves the length (factor 2), so a clip's length must be a multiple of the product
  of the factors (``length_multiple``).

``CONFIGS["reference"]`` is the architecture of the peer project tiny-audio-diffusion (31.6 M
parameters, sized for a GPU); ``CONFIGS["laptop"]`` (4.77 M) is sized to train on a laptop CPU. The
trials behind these choices, the parameter breakdown of the reference and the speed measurements
are in ``bench/RESULTS.md`` (lesson 05) and the drum model's card, ``checkpoints/drum-diffusion/README.md``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.models.base import PretrainedModel
from course_lib.validate import CourseInputError, check_positive_int, check_sample_rate

__all__ = [
    "CONFIGS",
    "UNet1D",
    "UNet1DConfig",
    "count_parameters",
    "parameter_breakdown",
    "plot_unet",
    "sinusoidal_positions",
]

# The four classes of lesson 05's drums, in the order of ``course_lib.synth.DRUM_CLASSES`` (the drum data
# defines them; tests/test_unet1d.py checks the two agree). Written out here so that the model does not
# import the synthesiser (scipy) for four names. A checkpoint stores its own class names in config.json.
DRUM_CLASS_NAMES: tuple[str, ...] = ("kick", "snare", "hihat", "percussion")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class UNet1DConfig:
    """Everything that defines a ``UNet1D``; saved as ``config.json`` next to the weights.

    Per-level lists (``channels``, ``factors``, ``blocks``, ``attention``) all have one entry per
    level, from full resolution down. ``sample_rate`` and ``sample_length`` describe the clips the
    model was made for (the forward pass accepts any length that ``length_multiple`` divides).
    ``num_classes=0`` makes an unconditional model; otherwise ``class_names`` names the classes.
    ``sigma_data`` (default 1) is the scale the diffusion works at: ``vdiffusion`` trains on ``x0 / sigma_data``
    and multiplies its samples back, so data of standard deviation ``sigma_data`` is diffused at unit variance
    (the preconditioning of Karras et al. 2022, in v form).
    The defaults are those of ``CONFIGS["laptop"]``.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """

    in_channels: int = 1
    sample_rate: int = 22050
    sample_length: int = 8192
    channels: tuple[int, ...] = (16, 16, 32, 64, 64, 128, 128, 256)
    factors: tuple[int, ...] = (1, 2, 2, 2, 2, 2, 2, 2)
    blocks: tuple[int, ...] = (1, 1, 1, 1, 1, 1, 2, 2)
    attention: tuple[bool, ...] = (False, False, False, False, False, False, True, True)
    attention_heads: int = 4
    attention_head_features: int = 32
    positional_encoding: bool = True
    modulation_features: int = 256
    resnet_groups: int = 8
    num_classes: int = 4
    class_names: tuple[str, ...] = DRUM_CLASS_NAMES
    sigma_data: float = 1.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> UNet1DConfig:
        """Check every field; raise ``CourseInputError`` naming the field and the fix."""
        check_positive_int(self.in_channels, "in_channels (1 = mono, 2 = stereo)")
        self.sample_rate = check_sample_rate(self.sample_rate)
        check_positive_int(self.sample_length, "sample_length")
        for name in ("channels", "factors", "blocks", "attention", "class_names"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise CourseInputError(f"{name}: expected a list with one entry per level, got {value!r}.")
            setattr(self, name, tuple(value))
        n = len(self.channels)
        if n == 0:
            raise CourseInputError("channels: give at least one level, e.g. channels=(32, 64).")
        for name in ("factors", "blocks", "attention"):
            if len(getattr(self, name)) != n:
                raise CourseInputError(
                    f"{name}: has {len(getattr(self, name))} entries but channels has {n}; "
                    "give one entry per level."
                )
        check_positive_int(self.resnet_groups, "resnet_groups")
        for i, c in enumerate(self.channels):
            check_positive_int(c, f"channels[{i}]")
            if c % self.resnet_groups:
                raise CourseInputError(
                    f"channels[{i}]: {c} is not a multiple of resnet_groups={self.resnet_groups} "
                    "(GroupNorm splits the channels into equal groups); use e.g. "
                    f"{max(self.resnet_groups, c // self.resnet_groups * self.resnet_groups)}."
                )
        for i, f in enumerate(self.factors):
            check_positive_int(f, f"factors[{i}] (1 keeps the length, 2 halves it)")
        for i, b in enumerate(self.blocks):
            check_positive_int(b, f"blocks[{i}]")
        for i, a in enumerate(self.attention):
            if not isinstance(a, bool):
                raise CourseInputError(f"attention[{i}]: expected True or False, got {a!r}.")
        self.attention = tuple(bool(a) for a in self.attention)
        check_positive_int(self.attention_heads, "attention_heads")
        check_positive_int(self.attention_head_features, "attention_head_features")
        if not isinstance(self.positional_encoding, bool):
            raise CourseInputError(f"positional_encoding: expected True or False, got {self.positional_encoding!r}.")
        check_positive_int(self.modulation_features, "modulation_features")
        check_positive_int(self.num_classes, "num_classes (0 = unconditional)", minimum=0)
        if self.num_classes and len(self.class_names) not in (0, self.num_classes):
            raise CourseInputError(
                f"class_names: {len(self.class_names)} names for num_classes={self.num_classes}; "
                "give one name per class (or none)."
            )
        if not self.num_classes and self.class_names:
            self.class_names = ()
        if any(not isinstance(c, str) or not c for c in self.class_names) or len(set(self.class_names)) != len(
            self.class_names
        ):
            raise CourseInputError(f"class_names: expected distinct non-empty strings, got {self.class_names!r}.")
        if isinstance(self.sigma_data, bool) or not isinstance(self.sigma_data, (int, float)) or not (
                0 < self.sigma_data < math.inf):
            raise CourseInputError(f"sigma_data: expected a positive number (the training clips' standard deviation, "
                                   f"or 1.0 to diffuse them as they are), got {self.sigma_data!r}.")
        self.sigma_data = float(self.sigma_data)
        if self.sample_length % self.length_multiple:
            raise CourseInputError(
                f"sample_length: {self.sample_length} is not a multiple of {self.length_multiple} "
                f"(the product of factors {self.factors}); use e.g. "
                f"{max(1, round(self.sample_length / self.length_multiple)) * self.length_multiple}."
            )
        return self

    @property
    def length_multiple(self) -> int:
        """Every input length must be a multiple of this (the product of the factors)."""
        return math.prod(self.factors)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-friendly dict (lists instead of tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNet1DConfig:
        """Rebuild a config from ``to_dict`` output; unknown keys are rejected, keys starting with _ ignored."""
        if not isinstance(d, dict):
            raise CourseInputError(f"config: expected a dict, got {type(d).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if not k.startswith("_")}
        unknown = set(d) - names
        if unknown:
            raise CourseInputError(f"config: unknown field(s) {sorted(unknown)}; known: {sorted(names)}.")
        return cls(**d)

    def replace(self, **changes: Any) -> UNet1DConfig:
        """A copy with some fields changed (validated again), e.g. ``CONFIGS["laptop"].replace(in_channels=2)``."""
        return dataclasses.replace(self, **changes)


CONFIGS: dict[str, UNet1DConfig] = {
    # tiny-audio-diffusion's UNetV0 (see the module docstring): 0.74 s of 44.1 kHz stereo, for a GPU.
    "reference": UNet1DConfig(
        in_channels=2,
        sample_rate=44100,
        sample_length=32768,
        channels=(32, 32, 64, 64, 128, 128, 256, 256),
        factors=(1, 2, 2, 2, 2, 2, 2, 2),
        blocks=(2, 2, 2, 2, 2, 2, 4, 4),
        attention=(False, False, False, False, False, True, True, True),
        attention_heads=8,
        attention_head_features=64,
        positional_encoding=False,
        modulation_features=1024,
        resnet_groups=8,
        num_classes=4,
        class_names=DRUM_CLASS_NAMES,
    ),
    # 0.37 s of 22.05 kHz mono (an eighth of the reference's samples), as deep (8 levels, 128x
    # down) but narrower (16 channels at full resolution), one block per level except the two
    # lowest, where attention (with positional encoding) runs over 128 and 64 steps; 256
    # conditioning features.
    "laptop": UNet1DConfig(
        in_channels=1,
        sample_rate=22050,
        sample_length=8192,
        channels=(16, 16, 32, 64, 64, 128, 128, 256),
        factors=(1, 2, 2, 2, 2, 2, 2, 2),
        blocks=(1, 1, 1, 1, 1, 1, 2, 2),
        attention=(False, False, False, False, False, False, True, True),
        attention_heads=4,
        attention_head_features=32,
        positional_encoding=True,
        modulation_features=256,
        resnet_groups=8,
        num_classes=4,
        class_names=DRUM_CLASS_NAMES,
    ),
}


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------


class NoiseLevelEmbedding(nn.Module):
    """sigma (B,) -> features (B, F): Fourier features with learned frequencies, then a small MLP.

    A single number is a poor input for a network; ``sin`` and ``cos`` of it at many frequencies
    give every noise level a distinct, smooth pattern that the MLP turns into features.
    """

    def __init__(self, features: int, n_frequencies: int = 128) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_frequencies))
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_frequencies + 1, features),
            nn.GELU(),
            nn.Linear(features, features),
            nn.GELU(),
        )

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.float()[:, None]  # (B, 1)
        angles = 2 * math.pi * sigma * self.frequencies[None, :]  # (B, n_frequencies)
        return self.mlp(torch.cat([sigma, angles.sin(), angles.cos()], dim=1))


class ResBlock(nn.Module):
    """Two (GroupNorm -> SiLU -> conv k=3) layers added to their input."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv1d(channels, channels, kernel_size=3, padding=1)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class Modulation(nn.Module):
    """Normalise every time step over the channels, then scale and shift it using the features.

    ``x * (1 + scale) + shift`` with ``scale`` and ``shift`` (one per channel) computed from the
    item's noise-level/class features: the conditioning enters the network here.
    """

    def __init__(self, channels: int, features: int) -> None:
        super().__init__()
        self.to_scale_shift = nn.Linear(features, 2 * channels)

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        scale, shift = self.to_scale_shift(F.silu(features)).chunk(2, dim=1)  # (B, C) each
        # LayerNorm over the channels of each time step, done on the (B, T, C) view where the
        # channels are the last dimension. Its statistics are float32 also for bfloat16 inputs.
        x = F.layer_norm(x.transpose(1, 2), (x.shape[1],), eps=1e-6)
        return (x * (1 + scale[:, None, :]) + shift[:, None, :]).transpose(1, 2)


def sinusoidal_positions(length: int, channels: int, device: torch.device | None = None) -> torch.Tensor:
    """(length, channels): sines and cosines of each step's index at geometrically spaced frequencies.

    Attention alone cannot tell where a time step is (it treats the steps as a set). A drum hit
    starts at the beginning of the clip and decays, so *where* matters; these fixed patterns (the
    Transformer's positional encoding, no parameters) give every step a distinct signature.
    """
    half = channels // 2
    frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half, device=device) / max(half, 1))
    angles = torch.arange(length, device=device)[:, None] * frequencies[None, :]
    return F.pad(torch.cat([angles.sin(), angles.cos()], dim=1), (0, channels - 2 * half))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q @ k^T / sqrt(D)) @ v`` for every head: (B, H, T, D) inputs, (B, H, T, D) output.

    Mostly PyTorch's fused ``scaled_dot_product_attention``, which never stores the T x T attention
    weights. In bfloat16 on the CPU the fused kernel measured slower for short sequences (up to 512
    steps), so there the formula is written out (bench/RESULTS.md, lesson 05).
    """
    if q.dtype != torch.float32 and q.device.type == "cpu" and q.shape[-2] <= 512:
        weights = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2), dim=-1)  # (B, H, T, T)
        return weights @ v
    return F.scaled_dot_product_attention(q, k, v)


class SelfAttention(nn.Module):
    """Multi-head self-attention over time steps, added to its input.

    Queries and keys/values have their own LayerNorm (as in the peer project). The attention
    itself is ``torch.nn.functional.scaled_dot_product_attention`` (memory-efficient kernels).
    ``positional=True`` adds ``sinusoidal_positions`` to both normalised inputs.
    """

    def __init__(self, channels: int, heads: int, head_features: int, positional: bool = False) -> None:
        super().__init__()
        self.heads, self.head_features, self.positional = heads, head_features, positional
        inner = heads * head_features
        self.norm_q = nn.LayerNorm(channels)
        self.norm_kv = nn.LayerNorm(channels)
        self.to_q = nn.Linear(channels, inner, bias=False)
        self.to_kv = nn.Linear(channels, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.transpose(1, 2)  # (B, T, C): one token per time step
        q_in, kv_in = self.norm_q(tokens), self.norm_kv(tokens)
        if self.positional:  # tell every token where in the clip it is
            where = sinusoidal_positions(tokens.shape[1], tokens.shape[2], tokens.device)
            q_in, kv_in = q_in + where, kv_in + where
        q = self.to_q(q_in)
        k, v = self.to_kv(kv_in).chunk(2, dim=-1)

        def split_heads(t: torch.Tensor) -> torch.Tensor:  # (B, T, H*D) -> (B, H, T, D)
            return t.unflatten(-1, (self.heads, self.head_features)).transpose(1, 2)

        out = attend(split_heads(q), split_heads(k), split_heads(v))
        out = self.to_out(out.transpose(1, 2).flatten(2))  # (B, T, C)
        return x + out.transpose(1, 2)


class Block(nn.Module):
    """One step of a level: ResBlock -> Modulation -> (SelfAttention)."""

    def __init__(self, channels: int, config: UNet1DConfig, attention: bool) -> None:
        super().__init__()
        self.resnet = ResBlock(channels, config.resnet_groups)
        self.modulation = Modulation(channels, config.modulation_features)
        self.attention = (
            SelfAttention(channels, config.attention_heads, config.attention_head_features, config.positional_encoding)
            if attention
            else None
        )

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        x = self.modulation(self.resnet(x), features)
        if self.attention is not None:
            x = self.attention(x)
        return x


class Level(nn.Module):
    """One resolution of the U-Net: its way down, its way up, and its skip connection."""

    def __init__(self, in_channels: int, channels: int, factor: int, n_blocks: int, attention: bool,
                 config: UNet1DConfig) -> None:
        super().__init__()
        self.factor = factor
        self.down = nn.Conv1d(in_channels, channels, kernel_size=factor, stride=factor)
        self.down_blocks = nn.ModuleList(Block(channels, config, attention) for _ in range(n_blocks))
        self.up_blocks = nn.ModuleList(Block(channels, config, attention) for _ in range(n_blocks))
        self.up = nn.Conv1d(channels, in_channels, kernel_size=3, padding=1)
        self.skip_gain = nn.Linear(config.modulation_features, in_channels)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest-neighbour upsampling (every sample repeated ``factor`` times), then a conv."""
        if self.factor > 1:
            x = x.repeat_interleave(self.factor, dim=-1)
        return self.up(x)


# --------------------------------------------------------------------------------------------
# The U-Net
# --------------------------------------------------------------------------------------------


class UNet1D(PretrainedModel):
    """The waveform U-Net: ``model(x (B, C, T), sigma (B,), class_labels (B,) | None) -> (B, C, T)``.

    ``seed`` (optional) makes the initial weights reproducible without touching the global RNG.
    ``class_labels`` are class indices; ``None`` (or the index ``null_class``) means "no class".
    ``save_pretrained(folder, dtype="float16")`` / ``UNet1D.from_pretrained(folder)`` store
    ``config.json`` and ``model.safetensors`` (no pickle), like a diffusers model.

    The inputs of ``forward`` are checked on every call, without waiting for the device: their
    shapes and dtypes always (metadata, free), their *values* (``sigma`` in [0, 1], class indices in
    range) where reading them costs nothing: Python numbers and CPU tensors. Reading a GPU tensor's
    values makes the CPU wait for the GPU, which every sampler step would pay; the samplers build
    valid values themselves (``vdiffusion.class_indices`` checks labels once, at ``sample``'s entry).
    Set ``model.check_device_values = True`` to check tensors on an accelerator too (e.g. to debug).

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """

    check_device_values: bool = False

    def __init__(self, config: UNet1DConfig | None = None, seed: int | None = None) -> None:
        super().__init__()
        if config is None:
            config = UNet1DConfig()
        if not isinstance(config, UNet1DConfig):
            raise CourseInputError(
                f"config: expected a UNet1DConfig (e.g. CONFIGS['laptop']), got {type(config).__name__}."
            )
        self.config = dataclasses.replace(config)  # an own, validated copy
        if seed is not None:
            check_positive_int(seed, "seed", minimum=0)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self._build()
        else:
            self._build()

    def _build(self) -> None:
        c = self.config
        self.noise_level_embedding = NoiseLevelEmbedding(c.modulation_features)
        # One learned vector per class plus the "null" class (index num_classes).
        self.class_embedding = nn.Embedding(c.num_classes + 1, c.modulation_features) if c.num_classes else None
        inputs = (c.in_channels, *c.channels[:-1])  # each level's input width
        self.levels = nn.ModuleList(
            Level(inputs[i], c.channels[i], c.factors[i], c.blocks[i], c.attention[i], c) for i in range(len(c.channels))
        )

    @property
    def null_class(self) -> int | None:
        """The class index that means "no class" (None for an unconditional model)."""
        return self.config.num_classes if self.config.num_classes else None

    @property
    def length_multiple(self) -> int:
        """Input lengths must be multiples of this."""
        return self.config.length_multiple

    def num_parameters(self) -> int:
        """The number of parameters (see ``parameter_breakdown`` for where they are)."""
        return count_parameters(self)

    # ---------------------------------------------------------------------------- checks

    # Under torch.compile (``training.compile_model``) the checks run eagerly, outside the graph: reading a
    # value (``bool(...)``, ``int(...)``) would otherwise split the network into several graphs.
    @torch.compiler.disable
    def _check_inputs(self, x: Any, sigma: Any, class_labels: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        c = self.config
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 3:
            raise CourseInputError(
                f"x: expected a float tensor (batch, {c.in_channels}, samples), got "
                f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
                f"{' of dtype ' + str(x.dtype) if isinstance(x, torch.Tensor) else ''}."
            )
        if x.shape[1] != c.in_channels:
            fix = "x.mean(dim=1, keepdim=True) makes stereo mono" if c.in_channels == 1 else "x.expand(-1, 2, -1) makes mono stereo"
            raise CourseInputError(
                f"x: has {x.shape[1]} channel(s) but this model takes {c.in_channels} "
                f"({'mono' if c.in_channels == 1 else 'stereo' if c.in_channels == 2 else 'channels'}); {fix}."
            )
        n, length = x.shape[0], x.shape[2]
        if length == 0 or length % c.length_multiple:
            good = max(1, round(length / c.length_multiple)) * c.length_multiple
            raise CourseInputError(
                f"x: length {length} is not a multiple of {c.length_multiple} (the product of the factors "
                f"{c.factors}); pad or crop it to e.g. {good} samples."
            )
        out_of_range = "sigma: noise levels must lie in [0, 1] (0 = clean, 1 = pure noise)."
        if isinstance(sigma, (int, float)) and not isinstance(sigma, bool):
            if not 0.0 <= sigma <= 1.0:
                raise CourseInputError(out_of_range)
            sigma = torch.full((n,), float(sigma), device=x.device)
        if not isinstance(sigma, torch.Tensor) or sigma.ndim > 1 or (sigma.ndim == 1 and sigma.shape[0] != n):
            raise CourseInputError(
                f"sigma: expected one noise level per item, a tensor of shape ({n},) (or a number), got "
                f"{tuple(sigma.shape) if isinstance(sigma, torch.Tensor) else type(sigma).__name__}."
            )
        if self._values_are_free(sigma) and not bool(((sigma >= 0) & (sigma <= 1)).all()):
            raise CourseInputError(out_of_range)
        sigma = sigma.to(x.device).float().expand(n)
        labels = None
        if class_labels is not None:
            if not c.num_classes:
                raise CourseInputError("class_labels: this model is unconditional (num_classes=0); pass None.")
            labels = class_labels
            if isinstance(labels, int) and not isinstance(labels, bool):
                labels = torch.full((n,), labels, dtype=torch.long)
            if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
                raise CourseInputError(
                    f"class_labels: expected integer class indices (batch,), got {type(labels).__name__}"
                    f"{' of dtype ' + str(labels.dtype) if isinstance(labels, torch.Tensor) else ''}; "
                    "vdiffusion.class_indices turns names into indices."
                )
            if labels.shape != (n,):
                raise CourseInputError(f"class_labels: expected shape ({n},), got {tuple(labels.shape)}.")
            if n and self._values_are_free(labels) and (int(labels.min()) < 0 or int(labels.max()) > c.num_classes):
                bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
                names = f" {dict(enumerate(c.class_names))}" if c.class_names else ""
                raise CourseInputError(
                    f"class_labels: unknown class {bad}; use 0..{c.num_classes - 1}{names}, or "
                    f"{c.num_classes} (or None) for no class."
                )
            labels = labels.to(x.device, torch.long)
        return x, sigma, labels

    def _values_are_free(self, t: torch.Tensor) -> bool:
        """Whether reading ``t``'s values costs no wait for a device (see the class docstring)."""
        return t.device.type == "cpu" or self.check_device_values

    # ---------------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Denoiser output (for v-diffusion: the predicted velocity) for noisy clips ``x`` at ``sigma``."""
        x, sigma, class_labels = self._check_inputs(x, sigma, class_labels)

        # One feature vector per item: the noise level, plus the class (or the "null" class).
        features = self.noise_level_embedding(sigma)
        if self.class_embedding is not None:
            if class_labels is None:
                class_labels = torch.full((x.shape[0],), self.config.num_classes, device=x.device)
            features = features + self.class_embedding(class_labels)

        # Down: remember each level's input for its skip connection, then halve the length.
        skips = []
        h = x
        for level in self.levels:
            skips.append(h)
            h = level.down(h)
            for block in level.down_blocks:
                h = block(h, features)

        # Up: deepest level first; each level ends by restoring its input's length and width.
        for level in reversed(self.levels):
            for block in level.up_blocks:
                h = block(h, features)
            h = level.upsample(h)
            gain = level.skip_gain(F.silu(features))[:, :, None]  # (B, C, 1)
            h = skips.pop() + gain * h
        return h

    # ---------------------------------------------------------------------------- saving

    def config_to_dict(self) -> dict[str, Any]:
        """The config as saved in ``config.json`` (save_pretrained adds ``"_class_name": "UNet1D"``)."""
        return self.config.to_dict()

    @classmethod
    def config_from_dict(cls, config: dict[str, Any]) -> UNet1DConfig:
        """The :class:`UNet1DConfig` in a saved config."""
        return UNet1DConfig.from_dict(config)


# --------------------------------------------------------------------------------------------
# Counting parameters
# --------------------------------------------------------------------------------------------


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``model`` (only those with ``requires_grad`` if asked)."""
    if not isinstance(model, nn.Module):
        raise CourseInputError(f"model: expected a torch.nn.Module, got {type(model).__name__}.")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_breakdown(model: nn.Module) -> dict[str, int]:
    """Parameters by kind of layer: ``linear``, ``conv``, ``norm``, ``embedding``, ``other``, ``total``.

    Shows where a model's size goes: in the reference U-Net, three quarters sit in the linear
    layers that turn the 1024 conditioning features into per-channel scales and shifts.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    if not isinstance(model, nn.Module):
        raise CourseInputError(f"model: expected a torch.nn.Module, got {type(model).__name__}.")
    kinds = {"linear": 0, "conv": 0, "norm": 0, "embedding": 0, "other": 0}
    norms = (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm1d)
    for module in model.modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if isinstance(module, nn.Linear):
            kinds["linear"] += own
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d)):
            kinds["conv"] += own
        elif isinstance(module, norms):
            kinds["norm"] += own
        elif isinstance(module, nn.Embedding):
            kinds["embedding"] += own
        else:
            kinds["other"] += own
    kinds["total"] = sum(kinds.values())
    return kinds


def plot_unet(config: UNet1DConfig, ax: Any = None, title: str | None = None) -> Any:
    """Draw a configuration as a U: one box per level (channels x samples), down on the left, up on
    the right, skip connections across, attention levels highlighted. Returns the matplotlib axes.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if not isinstance(config, UNet1DConfig):
        raise CourseInputError(f"config: expected a UNet1DConfig (e.g. CONFIGS['laptop']), got {type(config).__name__}.")
    levels = len(config.channels)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(14, 1.6 * levels + 2), 0.55 * levels + 1.6))
    length = config.sample_length
    lengths = []
    for f in config.factors:
        length //= f
        lengths.append(length)
    for i in range(levels):
        for side, x in (("down", i), ("up", 2 * levels - 1 - i)):
            colour = "#f4a261" if config.attention[i] else "#a8dadc"
            ax.add_patch(FancyBboxPatch((x - 0.42, -i - 0.32), 0.84, 0.64, boxstyle="round,pad=0.02",
                                        facecolor=colour, edgecolor="#333"))
            text = f"{config.channels[i]}ch\n{lengths[i]}" + (f"\n×{config.blocks[i]}" if side == "down" else "")
            ax.text(x, -i, text, ha="center", va="center", fontsize=7)
        ax.annotate("", xy=(2 * levels - 1 - i - 0.45, -i), xytext=(i + 0.45, -i),
                    arrowprops=dict(arrowstyle="->", color="#888", linestyle="--", lw=0.8))
        if i + 1 < levels:
            ax.annotate("", xy=(i + 1, -i - 0.68), xytext=(i + 0.2, -i - 0.34),
                        arrowprops=dict(arrowstyle="->", color="#333", lw=1))
            ax.annotate("", xy=(2 * levels - 1 - i - 0.2, -i - 0.34), xytext=(2 * levels - 2 - i, -i - 0.68),
                        arrowprops=dict(arrowstyle="->", color="#333", lw=1))
    ax.set_xlim(-0.7, 2 * levels - 0.3)
    ax.set_ylim(-levels + 0.3, 1.0)
    ax.axis("off")
    stereo = "stereo" if config.in_channels == 2 else ("mono" if config.in_channels == 1 else f"{config.in_channels} ch")
    ax.text(-0.6, 0.65, f"input: {stereo}, {config.sample_length} samples at {config.sample_rate} Hz "
                        "(boxes: channels, samples, blocks; orange = attention; dashed = skip)", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
