"""Lesson 07's text-to-audio plumbing: the shipped latent diffusion model, guided DDIM, inversion, costs.

The model (``checkpoints/text-audio-ldm``, made by ``scripts/train_latent_diffusion.py``) is AudioLDM in
miniature: a 64 x 64 mel image is coded by a small VAE as a 4 x 16 x 16 latent, a text-conditioned UNet
denoises latents, and the text states come from the course's CLAP-style encoder
(``checkpoints/text-audio-embedding``).

- :func:`load_text_to_audio`: everything in one :class:`TextToAudio` (``.vae .unet .text .scheduler .mel``).
- :meth:`TextToAudio.generate`: DDIM (eta 0) with classifier-free guidance and an optional negative prompt;
  :meth:`~TextToAudio.generate_from` runs the same from given noise, :meth:`~TextToAudio.invert` runs it
  backwards (DDIM inversion: latents -> the noise that regenerates them).
- :func:`slerp`: spherical interpolation of two noises. :func:`cost_table`: one guided step in pixel space
  against latent space, measured.

Taught in lesson 07 (notebooks/07_text_to_audio.ipynb).
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from course_lib.errors import CourseInputError
from course_lib.hub import checkpoint_dir, missing_checkpoint_error
from course_lib.io import read_json
from course_lib.mel import Mel
from course_lib.settings import make_generator, progress as progress_bar
from course_lib.validate import as_float_tensor, check_number, check_positive_int

__all__ = ["TextToAudio", "load_text_to_audio", "ddim_step", "slerp", "cost_table"]

_PARTS = ("vae", "unet", "scheduler")


def _prompts(prompts: Any, name: str = "prompts", allow_empty_text: bool = True) -> list[str]:
    """A prompt or a list of prompts -> a non-empty list of strings (``None`` counts as ``""``)."""
    if prompts is None or isinstance(prompts, str):
        prompts = [prompts or ""]
    if not isinstance(prompts, (list, tuple)) or not all(p is None or isinstance(p, str) for p in prompts):
        raise CourseInputError(f"{name}: expected a prompt or a list of prompts (strings), got "
                               f"{type(prompts).__name__}.")
    if not prompts:
        raise CourseInputError(f"{name}: got an empty list; give at least one prompt, e.g. ['calm ambient'].")
    out = [p or "" for p in prompts]
    if not allow_empty_text and any(not p.strip() for p in out):
        raise CourseInputError(f"{name}: an empty prompt has no words to condition on; write what you want to hear.")
    return out


def _guidance(value: Any) -> float:
    return check_number(value, "guidance_scale", low=0.0)


def ddim_step(x: torch.Tensor, eps: torch.Tensor, alpha_from: float, alpha_to: float) -> torch.Tensor:
    """The deterministic DDIM move (eta 0) of ``x`` from noise level ``alpha_from`` to ``alpha_to``.

    ``alpha`` is the cumulative product of (1 - beta) at a timestep (1 = clean). The predicted clean
    latent ``x0 = (x - sqrt(1 - a_from) eps) / sqrt(a_from)`` is re-noised with the same ``eps`` to level
    ``a_to``. Sampling moves to less noise; inversion runs the same formula towards more noise.
    """
    alpha_from = check_number(alpha_from, "alpha_from", low=0.0, high=1.0, low_open=True)
    alpha_to = check_number(alpha_to, "alpha_to", low=0.0, high=1.0, low_open=True)
    x0 = (x - (1.0 - alpha_from) ** 0.5 * eps) / alpha_from ** 0.5
    return alpha_to ** 0.5 * x0 + (1.0 - alpha_to) ** 0.5 * eps


class TextToAudio:
    """The shipped text-to-audio latent diffusion model: VAE, UNet, text encoder, DDIM scheduler and Mel.

    Latents are *scaled* (``vae latent * scaling_factor``, about unit variance), shape (B, 4, 16, 16);
    mel images are (B, 1, 64, 64) in [-1, 1]. Everything runs without gradients.
    """

    def __init__(self, vae: Any, unet: Any, text: Any, scheduler: Any, mel: Mel, config: dict[str, Any],
                 device: str | torch.device = "cpu") -> None:
        self.vae, self.unet, self.text, self.scheduler, self.mel = vae, unet, text, scheduler, mel
        self.config = config
        self.device = torch.device(device)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.sample_rate = int(mel.sr)
        self.latent_shape = tuple(int(v) for v in config.get("latent_shape", (4, 16, 16)))
        self.image_shape = (1, int(mel.y_res), int(mel.x_res))

    # -- text ---------------------------------------------------------------------------

    @torch.no_grad()
    def encode_prompt(self, prompts: str | Sequence[str] | None) -> torch.Tensor:
        """Text states (B, L, D) that the UNet attends to; ``""`` or ``None`` gives the null (all zeros)."""
        states, _ = self.text.text_states(_prompts(prompts))
        return states.to(self.device)

    def _conditions(self, prompts: Any, negative_prompt: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(cond, uncond) text states for ``n`` latents; ``prompts`` may be states (B, L, D) from encode_prompt."""
        if isinstance(prompts, torch.Tensor):
            cond = as_float_tensor(prompts, "prompts", min_ndim=3, max_ndim=3).to(self.device)
            want = (self.text.config["max_tokens"], self.text.config["text_width"])
            if tuple(cond.shape[1:]) != want:
                raise CourseInputError(f"prompts: text states must have shape (B, {want[0]}, {want[1]}), got "
                                       f"{tuple(cond.shape)}; make them with encode_prompt(prompts).")
        else:
            cond = self.encode_prompt(_prompts(prompts))
        if len(cond) == 1 and n > 1:
            cond = cond.expand(n, -1, -1)
        if len(cond) != n:
            raise CourseInputError(f"prompts: {len(cond)} prompts for {n} latents; give one prompt, or one per latent.")
        if negative_prompt is None:
            return cond, torch.zeros_like(cond)  # the null condition, as trained (10 % captions dropped)
        negs = _prompts(negative_prompt, "negative_prompt", allow_empty_text=False)
        if len(negs) == 1:
            negs = negs * n
        if len(negs) != n:
            raise CourseInputError(f"negative_prompt: {len(negs)} for {n} prompts; give one, or one per prompt.")
        return cond, self.encode_prompt(negs)

    # -- the denoiser --------------------------------------------------------------------

    @torch.no_grad()
    def guided_noise(self, z: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
                     guidance_scale: float) -> torch.Tensor:
        """Classifier-free guidance: ``eps_u + w (eps_c - eps_u)``, both predictions in one batch.

        At ``w = 1`` it is the conditional prediction alone (one UNet pass, no unconditional branch).
        ``cond`` and ``uncond`` are text states (B, L, D), e.g. ``encode_prompt(p)`` and its zeros.
        """
        z = self.check_latents(z)
        cond, uncond = (as_float_tensor(s, name, min_ndim=3, max_ndim=3).to(self.device)
                        for s, name in ((cond, "cond"), (uncond, "uncond")))
        if cond.shape != uncond.shape or len(cond) != len(z):
            raise CourseInputError(f"cond, uncond: text states {tuple(cond.shape)} and {tuple(uncond.shape)} for "
                                   f"{len(z)} latents; give one row of each per latent (encode_prompt).")
        return self._eps(z, t, cond, uncond, _guidance(guidance_scale))

    def _eps(self, z: torch.Tensor, t: int | torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor, w: float
             ) -> torch.Tensor:
        """guided_noise without the checks (the samplers' inner loop)."""
        if w == 1.0:
            return self.unet(z, t, encoder_hidden_states=cond).sample
        eps_c, eps_u = self.unet(torch.cat([z, z]), t, encoder_hidden_states=torch.cat([cond, uncond])).sample.chunk(2)
        return eps_u + w * (eps_c - eps_u)

    def _schedule(self, steps: Any) -> tuple[list[int], Any]:
        """The DDIM timesteps (high to low) for ``steps`` steps, and a fresh scheduler holding them."""
        steps = check_positive_int(steps, "steps")
        n_train = int(self.scheduler.config.num_train_timesteps)
        if steps > n_train:
            raise CourseInputError(f"steps: {steps} is more than the {n_train} training timesteps; use at most {n_train}.")
        sched = copy.deepcopy(self.scheduler)
        sched.set_timesteps(steps)
        return [int(t) for t in sched.timesteps], sched

    def _alpha(self, sched: Any, t: int) -> float:
        return float(sched.alphas_cumprod[t]) if t >= 0 else float(sched.final_alpha_cumprod)

    def check_latents(self, z: Any, name: str = "latents") -> torch.Tensor:
        """``z`` as a float32 tensor (B, 4, 16, 16) on the model's device, or a clear error."""
        x = as_float_tensor(z, name, min_ndim=4, max_ndim=4)
        if tuple(x.shape[1:]) != self.latent_shape:
            raise CourseInputError(f"{name}: expected shape (B, {', '.join(map(str, self.latent_shape))}), got "
                                   f"{tuple(x.shape)}; make latents with encode_images(images) or generate(...).")
        return x.to(self.device)

    @torch.no_grad()
    def generate_from(self, noise: Any, prompts: str | Sequence[str] | torch.Tensor, guidance_scale: float = 3.0,
                      negative_prompt: str | Sequence[str] | None = None, steps: int = 50, progress: bool = True
                      ) -> torch.Tensor:
        """Run guided DDIM (eta 0) from ``noise`` (B, 4, 16, 16): the scaled latents it ends at.

        One prompt serves every row, or give one per row; text states (B, L, D) from :meth:`encode_prompt`
        work too (to blend two prompts). ``negative_prompt`` replaces the null condition of the
        unconditional branch, so guidance pushes away from it.
        """
        z = self.check_latents(noise, "noise")
        cond, uncond = self._conditions(prompts, negative_prompt, len(z))
        w = _guidance(guidance_scale)
        timesteps, sched = self._schedule(steps)
        ratio = int(self.scheduler.config.num_train_timesteps) // len(timesteps)
        for t in progress_bar(timesteps, desc="DDIM", unit="step", disable=not progress):
            eps = self._eps(z, t, cond, uncond, w)
            z = ddim_step(z, eps, self._alpha(sched, t), self._alpha(sched, t - ratio))
        return z

    def generate(self, prompts: str | Sequence[str], guidance_scale: float = 3.0,
                 negative_prompt: str | Sequence[str] | None = None, steps: int = 50, seed: Any = 0,
                 progress: bool = True) -> torch.Tensor:
        """Scaled latents (B, 4, 16, 16) for ``prompts``, one clip per prompt, from seeded noise.

        ``seed``: an int (the same seed gives the same latents on the CPU), a CPU ``torch.Generator`` or
        ``None`` (course_lib's seed rule). Decode with :meth:`decode_latents`, hear with :meth:`images_to_audio`.
        """
        texts = _prompts(prompts)
        _guidance(guidance_scale)
        check_positive_int(steps, "steps")
        noise = self.noise(len(texts), seed)
        return self.generate_from(noise, texts, guidance_scale, negative_prompt, steps, progress)

    def noise(self, n: int, seed: Any = 0) -> torch.Tensor:
        """Starting noise (n, 4, 16, 16), drawn on the CPU from ``seed`` and then moved to the device."""
        n = check_positive_int(n, "n")
        return torch.randn((n, *self.latent_shape), generator=make_generator(seed)).to(self.device)

    @torch.no_grad()
    def invert(self, latents: Any, prompts: str | Sequence[str], steps: int = 50, guidance_scale: float = 1.0,
               progress: bool = True) -> torch.Tensor:
        """DDIM inversion: the noise (B, 4, 16, 16) from which DDIM under ``prompts`` comes back to ``latents``.

        The sampler's deterministic update run backwards, from the clean latents (t = 0) up to the noisiest
        timestep, with the conditional noise prediction (``guidance_scale`` 1; higher values drift more).
        Regenerate under another prompt with :meth:`generate_from` to edit a clip.
        """
        z = self.check_latents(latents)
        cond, uncond = self._conditions(prompts, None, len(z))
        w = _guidance(guidance_scale)
        timesteps, sched = self._schedule(steps)
        ratio = int(self.scheduler.config.num_train_timesteps) // len(timesteps)
        for t in progress_bar(timesteps[::-1], desc="DDIM inversion", unit="step", disable=not progress):
            eps = self._eps(z, t, cond, uncond, w)  # the sampler's eps at t, taken at the level below
            z = ddim_step(z, eps, self._alpha(sched, t - ratio), self._alpha(sched, t))
        return z

    # -- images and sound ----------------------------------------------------------------

    @torch.no_grad()
    def decode_latents(self, latents: Any) -> torch.Tensor:
        """Scaled latents (B, 4, 16, 16) -> mel images (B, 1, 64, 64) in [-1, 1], on the CPU."""
        z = self.check_latents(latents)
        return self.vae.decode(z / self.scaling_factor).sample.clamp(-1, 1).cpu()

    @torch.no_grad()
    def encode_images(self, images: Any) -> torch.Tensor:
        """Mel images (B, 1, 64, 64) in [-1, 1] -> scaled latents (B, 4, 16, 16) (the posterior means)."""
        x = as_float_tensor(images, "images", min_ndim=4, max_ndim=4)
        if tuple(x.shape[1:]) != self.image_shape:
            raise CourseInputError(f"images: expected shape (B, 1, {self.mel.y_res}, {self.mel.x_res}), got "
                                   f"{tuple(x.shape)}; make them with audio_to_images(audio).")
        if float(x.min()) < -1.001 or float(x.max()) > 1.001:
            raise CourseInputError("images: values must lie in [-1, 1] (uint8 mel bytes / 127.5 - 1).")
        return self.vae.encode(x.to(self.device)).latent_dist.mean * self.scaling_factor

    def audio_to_images(self, audio: Any) -> torch.Tensor:
        """Audio (T,) or (B, T) at 22 050 Hz -> every whole 1.49 s slice as a mel image (N, 1, 64, 64) in [-1, 1]."""
        return self.mel.audio_to_images(audio).to(torch.float32)[:, None] / 127.5 - 1.0

    def images_to_audio(self, images: Any, seed: int = 0) -> torch.Tensor:
        """Mel images (B, 1, 64, 64) in [-1, 1] -> audio (B, samples) float32 by Griffin-Lim (phases from ``seed``)."""
        x = as_float_tensor(images, "images", min_ndim=4, max_ndim=4)
        if tuple(x.shape[1:]) != self.image_shape:
            raise CourseInputError(f"images: expected shape (B, 1, {self.mel.y_res}, {self.mel.x_res}), got "
                                   f"{tuple(x.shape)}; decode latents with decode_latents(z) first.")
        pixels = ((x[:, 0].clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu()
        gen = torch.Generator().manual_seed(check_positive_int(seed, "seed", minimum=0))
        return self.mel.images_to_audio(pixels, generator=gen, chunk=16).to(torch.float32)

    def __repr__(self) -> str:
        n = sum(p.numel() for m in (self.vae, self.unet) for p in m.parameters())
        return (f"TextToAudio(latents {self.latent_shape}, mel {self.image_shape}, {self.sample_rate} Hz, "
                f"{n:,} VAE+UNet parameters, device={self.device})")


def load_text_to_audio(folder: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                       text_folder: str | os.PathLike | None = None) -> TextToAudio:
    """The course-trained text-to-audio model (``checkpoints/text-audio-ldm`` + ``checkpoints/text-audio-embedding``).

    ``folder``: another folder of the same layout (``vae/``, ``unet/``, ``scheduler/``, ``config.json``);
    ``text_folder``: another text encoder. Taught in lesson 07.
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from course_lib.models.text_audio import load_text_audio_model

    root = checkpoint_dir("text-audio-ldm") if folder is None else Path(folder)
    missing = [p for p in ("config.json", *_PARTS) if not (root / p).exists()]
    if missing:
        if folder is None:
            raise missing_checkpoint_error("text-audio-ldm", root)
        raise CourseInputError(f"folder: {str(root)!r} lacks {missing}; give a folder written by "
                               "scripts/train_latent_diffusion.py (config.json, vae/, unet/, scheduler/).")
    config = read_json(root / "config.json", "folder")
    if config.get("model_type") != "course-text-audio-ldm":
        raise CourseInputError(f"folder: {str(root)!r} is not a course text-audio-ldm folder "
                               f"(model_type {config.get('model_type')!r}).")
    vae = AutoencoderKL.from_pretrained(root / "vae").to(device).eval().requires_grad_(False)
    unet = UNet2DConditionModel.from_pretrained(root / "unet").to(device).eval().requires_grad_(False)
    scheduler = DDIMScheduler.from_pretrained(root / "scheduler")
    text = load_text_audio_model(text_folder, device).requires_grad_(False)
    return TextToAudio(vae, unet, text, scheduler, Mel(**config["mel"]), config, device)


def slerp(a: Any, b: Any, t: Any) -> torch.Tensor:
    """Spherical interpolation between two noises ``a`` and ``b`` (same shape), each taken as one vector.

    Walks the great circle between the two directions, with the length interpolated linearly, so the
    in-between noise keeps the norm Gaussian noise has (a straight line through the middle shrinks it, and
    the model then makes muffled sound). ``t`` in [0, 1]: a number gives ``a``'s shape; a 1-D ``t`` gives a
    batch (len(t), ...), one row per value (a leading batch axis of size 1 in ``a`` is dropped first).
    """
    x = as_float_tensor(a, "a", min_ndim=1)
    y = as_float_tensor(b, "b", min_ndim=1).to(x.device)
    if x.shape != y.shape:
        raise CourseInputError(f"a and b: shapes differ ({tuple(x.shape)} vs {tuple(y.shape)}); give two noises "
                               "of one shape.")
    na, nb = x.norm(), y.norm()
    if float(na) == 0.0 or float(nb) == 0.0:
        raise CourseInputError("a, b: a noise of all zeros has no direction to interpolate; draw real noise.")
    tt = as_float_tensor(torch.as_tensor(t, dtype=torch.float32).reshape(-1), "t")
    if torch.as_tensor(t).ndim > 1 or float(tt.min()) < 0.0 or float(tt.max()) > 1.0:
        raise CourseInputError(f"t: expected a number or a 1-D list of numbers in [0, 1], got {t!r}.")
    ua, ub = x / na, y / nb
    omega = torch.arccos((ua * ub).sum().clamp(-1.0, 1.0))
    rows = []
    for v in tt.tolist():
        if float(torch.sin(omega)) < 1e-6:  # (anti)parallel: the circle is not defined; fall back to a line
            direction = (1 - v) * ua + v * ub
        else:
            direction = (torch.sin((1 - v) * omega) * ua + torch.sin(v * omega) * ub) / torch.sin(omega)
        rows.append(direction * ((1 - v) * na + v * nb))
    if torch.as_tensor(t).ndim == 0:
        return rows[0]
    out = torch.stack(rows)
    return out[:, 0] if x.ndim >= 2 and x.shape[0] == 1 else out


def _one_pass(unet: Any, sample: torch.Tensor, t: int, states: torch.Tensor, modules: list[Any],
              hook: Callable[[Any, Any, Any], None]) -> None:
    """One UNet pass with ``hook`` on every module of ``modules`` (removed afterwards)."""
    hooks = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            unet(sample, t, encoder_hidden_states=states)
    finally:
        for h in hooks:
            h.remove()


def _attention_tokens(unet: Any, sample: torch.Tensor, t: int, states: torch.Tensor) -> list[int]:
    """The token counts every self-attention layer (``attn1``) of ``unet`` sees on one pass, in order."""
    tokens: list[int] = []
    layers = [m for name, m in unet.named_modules() if name.endswith("attn1")]
    _one_pass(unet, sample, t, states, layers, lambda _m, args, _out: tokens.append(int(args[0].shape[1])))
    return tokens


def _activation_mb(unet: Any, sample: torch.Tensor, t: int, states: torch.Tensor) -> float:
    """MB of every leaf module's output on one pass: the activations a step writes (a device-free measure)."""
    total = [0]

    def count(_m: Any, _args: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            total[0] += out.numel() * out.element_size()

    _one_pass(unet, sample, t, states, [m for m in unet.modules() if not list(m.children())], count)
    return total[0] / 2**20


def cost_table(model: TextToAudio | None = None, batch: int = 1, repeats: int = 5, prompt: str = "calm ambient"
               ) -> list[dict[str, Any]]:
    """Measure one guided denoising step in pixel space against latent space, at the same UNet width.

    The latent row is the shipped UNet on (batch, 4, 16, 16); the pixel row an UNTRAINED UNet of the same
    block widths and layout on the mel image itself, (batch, 1, 64, 64): it is there for timing only. Each
    step runs the conditional and unconditional branches as one batch of ``2 * batch``, as generate() does.
    Per row: values per clip, the self-attention tokens of each attention layer, seconds per step (the
    median of ``repeats`` after a warm-up), activations written per step (MB), parameters, and the time
    relative to the latent row.
    """
    from diffusers import UNet2DConditionModel

    model = load_text_to_audio() if model is None else model
    if not isinstance(model, TextToAudio):
        raise CourseInputError(f"model: expected a TextToAudio (load_text_to_audio()), got {type(model).__name__}.")
    b = check_positive_int(batch, "batch")
    reps = check_positive_int(repeats, "repeats")
    config = dict(model.unet.config)
    with torch.random.fork_rng():  # the same untrained weights every call, without touching the global seed
        torch.manual_seed(0)
        pixel_unet = UNet2DConditionModel.from_config(
            config, in_channels=1, out_channels=1, sample_size=model.image_shape[-1]).to(model.device).eval()
    cond = model.encode_prompt([prompt] * b)
    states = torch.cat([cond, torch.zeros_like(cond)])
    t = int(model.scheduler.config.num_train_timesteps) // 2
    rows = []
    gen = torch.Generator().manual_seed(0)
    for name, unet, shape in [("latent space (shipped UNet)", model.unet, model.latent_shape),
                              ("pixel space (untrained, timing only)", pixel_unet, model.image_shape)]:
        sample = torch.randn((2 * b, *shape), generator=gen).to(model.device)
        times = []
        with torch.no_grad():
            for i in range(reps + 1):
                if model.device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                unet(sample, t, encoder_hidden_states=states)
                if model.device.type == "cuda":
                    torch.cuda.synchronize()
                if i:  # the first pass is a warm-up
                    times.append(time.perf_counter() - start)
        tokens = _attention_tokens(unet, sample, t, states)
        rows.append({"model": name, "input": " x ".join(map(str, shape)), "values per clip": int(np.prod(shape)),
                     "self-attention tokens": sorted(set(tokens), reverse=True), "attention layers": len(tokens),
                     "seconds per step": statistics.median(times),
                     "activations MB per step": round(_activation_mb(unet, sample, t, states), 2),
                     "parameters": sum(p.numel() for p in unet.parameters()), "batch": b})
    for row in rows:
        row["time vs latent"] = round(row["seconds per step"] / rows[0]["seconds per step"], 2)
    return rows
