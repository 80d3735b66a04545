"""Checks for lesson 02's exercises (the audio diffusion pipeline); re-exported by :mod:`course_lib.checks`.

1. :func:`check_add_noise`: the forward process q(x_t | x_0), against diffusers' ``DDPMScheduler.add_noise``.
2. :func:`check_ddim_step`: one deterministic DDIM update, against diffusers' ``DDIMScheduler.step`` (eta 0).
3. :func:`check_fixed_ddim_step`: find the bug in a broken DDIM step with eta; the fixed step against
   ``DDIMScheduler.step`` with eta and the same fresh noise.
4. :func:`check_unet_calls`: predict how many times the UNet runs in five pipeline calls; the truth is
   counted on a tiny pipeline of the course's ``SpectrogramDiffusionPipeline``.
5. :func:`check_slerp`: spherical interpolation between two noises (a NumPy reference, the same rule as
   ``course_lib.diffusion.slerp``) and its properties: endpoints, norm kept, lerp fallback.
6. :func:`check_keep_known`: inpainting's copy of the known (re-noised) columns into the current image.

The references of 1 to 3 are diffusers' own schedulers (the library the lesson's pipeline
steps with), so an answer that passes steps exactly as the pipeline does.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from course_lib.checks.harness import (
    require_predictions,
    DIFFUSION_ATOL,
    DIFFUSION_RTOL,
    ExerciseFailed,
    all_close,
    as_numpy,
    call_answer,
    call_answer_with_hint,
    diagnose,
    need_callable,
    print_passed,
    require_unchanged,
    tensor_result,
    worst_difference,
)

__all__ = ["check_add_noise", "check_ddim_step", "check_fixed_ddim_step", "check_unet_calls", "check_slerp",
           "check_keep_known", "UNET_CALL_RUNS"]


def check_add_noise(fn: Callable[[Any, Any, Any], Any]) -> None:
    """Check ``fn(x0, noise, alpha_bar) -> x_t`` of the forward process q(x_t | x_0).

    ``x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * noise``: the clean image shrinks and the
    noise grows so that the variance stays 1. ``alpha_bar`` is a float, or a tensor ``(N,)`` with
    one value per image of a batch ``(N, 1, H, W)``. The reference is diffusers'
    ``DDPMScheduler.add_noise`` on real timesteps, plus the end points alpha_bar = 1 (the clean
    image) and 0 (pure noise).
    """
    __tracebackhide__ = True
    import torch
    from diffusers import DDPMScheduler

    title = "The forward process q(x_t | x_0)"
    need_callable(fn, "fn", "check_add_noise(add_noise)")
    signature = "fn(x0, noise, alpha_bar) -> x_t"
    scheduler = DDPMScheduler(num_train_timesteps=1000)  # the course model's schedule (linear betas)
    alphas = scheduler.alphas_cumprod
    gen = torch.Generator().manual_seed(2)

    def images(*shape: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.rand(shape, generator=gen) * 2 - 1, torch.randn(shape, generator=gen)

    cases = []
    x0, noise = images(2, 1, 8, 8)
    cases.append(("a float alpha_bar (timestep 500) on 2 images", x0, noise, float(alphas[500]),
                  scheduler.add_noise(x0, noise, torch.tensor([500]))))
    x0, noise = images(4, 1, 8, 16)
    steps = torch.tensor([0, 250, 600, 999])
    cases.append(("a batch of 4 with one alpha_bar each (timesteps 0, 250, 600, 999)", x0, noise, alphas[steps].clone(),
                  scheduler.add_noise(x0, noise, steps)))
    x0, noise = images(2, 1, 8, 8)
    cases.append(("alpha_bar = [1.0, 0.0] (the clean image, then pure noise)", x0, noise, torch.tensor([1.0, 0.0]),
                  torch.stack([x0[0], noise[1]])))
    broadcast_hint = (
        "alpha_bar is either a number or a tensor (N,) with one value per image: reshape a tensor to (N, 1, 1, 1), "
        "e.g. torch.as_tensor(alpha_bar).reshape(-1, 1, 1, 1), so it broadcasts over each image. "
        "`alpha_bar ** 0.5` works on floats and tensors alike (torch.sqrt needs a tensor)."
    )
    for case, x0, noise, alpha_bar, expected in cases:
        inputs = (x0, noise, alpha_bar)
        copies = tuple(v.clone() if isinstance(v, torch.Tensor) else v for v in inputs)
        got = call_answer_with_hint(title, fn, case, *copies, signature=signature, hint=broadcast_hint)
        require_unchanged(title, case, inputs, copies, ("x0", "noise", "alpha_bar"))
        want = as_numpy(expected)
        array = tensor_result(title, got, case, want, "reshape alpha_bar to broadcast, not the images.")
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            a = as_numpy(alpha_bar).reshape(-1, 1, 1, 1)
            c, n = as_numpy(x0), as_numpy(noise)
            hint = diagnose(array, [
                (a * c + (1 - a) * n, ("the scales are square roots: sqrt(alpha_bar) for x0 and sqrt(1 - alpha_bar) "
                                       "for the noise (variances add, so the standard deviations are square roots).")),
                (np.sqrt(a) * c + (1 - a) * n, "the noise is scaled by sqrt(1 - alpha_bar), not by 1 - alpha_bar."),
                (np.sqrt(a) * c + (1 - np.sqrt(a)) * n, ("the noise is scaled by sqrt(1 - alpha_bar), "
                                                         "not by 1 - sqrt(alpha_bar).")),
                (np.sqrt(1 - a) * c + np.sqrt(a) * n, ("x0 and the noise are swapped: alpha_bar near 1 (early "
                                                       "timesteps) must leave the clean image almost untouched.")),
            ], ("compare with the lesson's forward process q(x_t | x_0): which scale goes on x0 and which on the noise, and "
                 "are they variances or standard deviations? alpha_bar = 1 must give x0 back, 0 the noise."))
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
    print_passed(title, ("3 cases: a float alpha_bar, one per image of a batch, and alpha_bar 1 and 0; "
                    "agrees with DDPMScheduler.add_noise"))


def check_ddim_step(fn: Callable[[Any, Any, Any, Any], Any]) -> None:
    """Check ``fn(x_t, eps, alpha_bar_t, alpha_bar_prev) -> x_prev``: one deterministic DDIM step.

    First predict the clean image, ``x0 = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t)``,
    then put it back at the previous (lower) noise level with the same noise:
    ``x_prev = sqrt(alpha_bar_prev) * x0 + sqrt(1 - alpha_bar_prev) * eps``. The reference is
    ``DDIMScheduler(clip_sample=False, set_alpha_to_one=...).step(eps, t, x_t, eta=0)`` on real
    timesteps of 10- and 50-step schedules, the last step included (where alpha_bar_prev is 1 or
    ``alphas_cumprod[0]``). The alphas are 0-d tensors, as the scheduler stores them.
    """
    __tracebackhide__ = True
    import torch
    from diffusers import DDIMScheduler

    title = "One DDIM step"
    need_callable(fn, "fn", "check_ddim_step(ddim_step)")
    signature = "fn(x_t, eps, alpha_bar_t, alpha_bar_prev) -> x_prev"
    gen = torch.Generator().manual_seed(3)
    plan = [  # (steps, set_alpha_to_one, timestep, shape)
        (10, True, 900, (1, 1, 8, 8)),
        (10, True, 500, (3, 1, 8, 16)),
        (50, False, 980, (2, 1, 8, 8)),
        (10, True, 0, (2, 1, 8, 8)),
        (10, False, 0, (1, 1, 8, 8)),
    ]
    for steps, to_one, t, shape in plan:
        scheduler = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=to_one)
        scheduler.set_timesteps(steps)
        if t not in scheduler.timesteps.tolist():  # pragma: no cover - guards the plan against diffusers changes
            raise RuntimeError(f"timestep {t} is not in diffusers' {steps}-step DDIM schedule")
        prev = t - 1000 // steps
        alpha_t = scheduler.alphas_cumprod[t].clone()
        alpha_prev = (scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod).clone()
        clean = torch.rand(shape, generator=gen) * 2 - 1
        noise = torch.randn(shape, generator=gen)
        x_t = alpha_t.sqrt() * clean + (1 - alpha_t).sqrt() * noise
        eps = noise + 0.1 * torch.randn(shape, generator=gen)  # a good but imperfect prediction, as from a UNet
        expected = scheduler.step(eps, t, x_t, eta=0.0).prev_sample
        last = " (the last step" + (", alpha_bar_prev = 1)" if to_one else ", alpha_bar_prev = alphas_cumprod[0])")
        case = (f"timestep {t} of {steps} steps, alpha_bar_t={float(alpha_t):.4g}, alpha_bar_prev={float(alpha_prev):.4g}"
                f", x_t of shape {tuple(shape)}" + (last if prev < 0 else ""))
        inputs = (x_t, eps, alpha_t, alpha_prev)
        copies = tuple(v.clone() for v in inputs)
        got = call_answer_with_hint(title, fn, case, *copies, signature=signature,
                              hint="the alphas are 0-d tensors; `** 0.5` or torch.sqrt work on them.")
        require_unchanged(title, case, inputs, copies, ("x_t", "eps", "alpha_bar_t", "alpha_bar_prev"))
        want = as_numpy(expected)
        array = tensor_result(title, got, case, want)
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            x, e, a, p = as_numpy(x_t), as_numpy(eps), float(alpha_t), float(alpha_prev)

            def step(a: float, p: float, root: Callable[[float], float] = math.sqrt,
                     x: np.ndarray = x, e: np.ndarray = e) -> np.ndarray:
                x0 = (x - root(1 - a) * e) / root(a)
                return root(p) * x0 + root(1 - p) * e

            x0_pred = (x - math.sqrt(1 - a) * e) / math.sqrt(a)
            hint = diagnose(array, [
                (step(p, a), ("alpha_bar_t and alpha_bar_prev are swapped: predict x0 with alpha_bar_t (the level x_t is "
                              "at), then re-noise it with alpha_bar_prev.")),
                (x0_pred, ("that is the predicted clean image x0; the step then moves it to the previous noise level: "
                           "sqrt(alpha_bar_prev) * x0 + sqrt(1 - alpha_bar_prev) * eps.")),
                (math.sqrt(p) * x + math.sqrt(1 - p) * e, ("re-noise the predicted clean image, not x_t: first "
                                                           "x0 = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t).")),
                (math.sqrt(p) * x0_pred + math.sqrt(1 - a) * e, ("the noise term belongs to the new level: "
                                                                 "sqrt(1 - alpha_bar_prev) * eps.")),
                (step(a, p, root=lambda v: v), "the scales are square roots of the alphas (and of 1 - the alphas)."),
            ], ("take the step in the lesson's two moves and check each: first predict the clean image x0 from x_t and "
                "eps at the level alpha_bar_t, then put that x0 at the level alpha_bar_prev with the same eps."))
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
    print_passed(title, "5 steps of 10- and 50-step schedules, last steps included; agrees with DDIMScheduler.step(eta=0)")


def _ddim_eta_ref(x: np.ndarray, e: np.ndarray, a: float, p: float, eta: float, z: np.ndarray, *,
                   root: Callable[[float], float] = math.sqrt, flip: bool = False, room: bool = True,
                   fresh: bool = True) -> np.ndarray:
    """A DDIM step with eta in float64, with switches that reproduce the usual bugs."""
    x0 = (x - math.sqrt(1 - a) * e) / math.sqrt(a)
    ratio = (1 - a) / (1 - p) if flip else (1 - p) / (1 - a)
    sigma = eta * root(max(ratio * (1 - a / p), 0.0))
    direction = math.sqrt(max(1 - p - (sigma ** 2 if room else 0.0), 0.0)) * e
    return math.sqrt(p) * x0 + direction + (sigma * z if fresh else 0.0)


def check_fixed_ddim_step(fn: Callable[..., Any]) -> None:
    """Check ``fn(x_t, eps, alpha_bar_t, alpha_bar_prev, eta, z) -> x_prev``: the broken DDIM step, fixed.

    The step of DDIM with ``eta`` (no clipping): ``x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``,
    ``sigma = eta * sqrt((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev))``,
    ``x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma**2) eps + sigma z``. The reference is
    ``DDIMScheduler(clip_sample=False).step(eps, t, x_t, eta=eta, variance_noise=z)`` at eta 0, 0.5
    and 1, the last step included. The lesson's broken step computes sigma without its square root:
    right at eta 0, wrong at eta > 0; the hints name it and the other usual slips.
    """
    __tracebackhide__ = True
    import torch
    from diffusers import DDIMScheduler

    title = "The broken DDIM step, fixed"
    need_callable(fn, "fn", "check_fixed_ddim_step(fixed_ddim_step)")
    signature = "fn(x_t, eps, alpha_bar_t, alpha_bar_prev, eta, z) -> x_prev"
    gen = torch.Generator().manual_seed(4)
    plan = [  # (steps, set_alpha_to_one, timestep, eta, shape)
        (10, True, 500, 0.0, (2, 1, 8, 8)),
        (10, True, 900, 1.0, (1, 1, 8, 8)),
        (10, True, 500, 1.0, (3, 1, 8, 16)),
        (50, False, 980, 0.5, (2, 1, 8, 8)),
        (20, True, 50, 1.0, (2, 1, 8, 8)),
        (10, True, 0, 1.0, (1, 1, 8, 8)),
    ]
    for steps, to_one, t, eta, shape in plan:
        scheduler = DDIMScheduler(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=to_one)
        scheduler.set_timesteps(steps)
        prev = t - 1000 // steps
        alpha_t = scheduler.alphas_cumprod[t].clone()
        alpha_prev = (scheduler.alphas_cumprod[prev] if prev >= 0 else scheduler.final_alpha_cumprod).clone()
        clean = torch.rand(shape, generator=gen) * 2 - 1
        noise = torch.randn(shape, generator=gen)
        x_t = alpha_t.sqrt() * clean + (1 - alpha_t).sqrt() * noise
        eps = noise + 0.1 * torch.randn(shape, generator=gen)
        z = torch.randn(shape, generator=gen)
        expected = scheduler.step(eps, t, x_t, eta=eta, variance_noise=z).prev_sample
        case = (f"timestep {t} of {steps} steps, eta={eta:g}, alpha_bar_t={float(alpha_t):.4g}, "
                f"alpha_bar_prev={float(alpha_prev):.4g}, x_t of shape {tuple(shape)}")
        inputs = (x_t, eps, alpha_t, alpha_prev, eta, z)
        copies = tuple(v.clone() if isinstance(v, torch.Tensor) else v for v in inputs)
        got = call_answer_with_hint(title, fn, case, *copies, signature=signature,
                                    hint="the alphas are 0-d tensors and eta a float; `** 0.5` works on both.")
        require_unchanged(title, case, inputs, copies, ("x_t", "eps", "alpha_bar_t", "alpha_bar_prev", "eta", "z"))
        want = as_numpy(expected)
        array = tensor_result(title, got, case, want)
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            x, e, zz, a, p = as_numpy(x_t), as_numpy(eps), as_numpy(z), float(alpha_t), float(alpha_prev)
            if eta == 0.0:
                hint = ("at eta = 0 there is no sigma and no fresh noise, and the broken step was right there: "
                        "your change broke the deterministic part (x0 and the direction term). Start again from "
                        "the broken step and change only what differs at eta > 0.")
            else:
                hint = diagnose(array, [
                    (_ddim_eta_ref(x, e, a, p, eta, zz, root=lambda v: v),
                     ("that is what the broken step gives: right at eta = 0, wrong at eta > 0, so the bug sits in a "
                      "term that vanishes at eta = 0. sigma multiplies the unit noise z: is the code's sigma a "
                      "standard deviation or a variance? Compare it with sigma_t in the lesson's DDIM equation.")),
                    (_ddim_eta_ref(x, e, a, p, eta, zz, room=False),
                     ("the direction term must make room for the fresh noise: its scale is "
                      "sqrt(1 - alpha_bar_prev - sigma**2), so that the two noise variances still add up to "
                      "1 - alpha_bar_prev.")),
                    (_ddim_eta_ref(x, e, a, p, eta, zz, fresh=False),
                     "the fresh noise sigma * z is missing: with eta > 0 each step adds new noise."),
                    (_ddim_eta_ref(x, e, a, p, eta, zz, flip=True),
                     ("check the ratio inside sigma: which noise level, 1 - alpha_bar_prev or 1 - alpha_bar_t, "
                      "belongs on top? (At eta = 1, sigma is DDPM's own step noise, smaller than the noise of "
                      "x_t.)")),
                ], ("compare each term with the lesson's DDIM step with eta, one at a time: the predicted x0, "
                    "sigma, the direction term and the fresh noise."))
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
    print_passed(title, "6 steps at eta 0, 0.5 and 1, last step included; agrees with DDIMScheduler.step(eta=...)")


# The five runs of the UNet-call exercise: (label, what the learner reads). Steps are 20 throughout.
UNET_CALL_RUNS: dict[str, str] = {
    "a": "pipe(1, steps=20): one clip from pure noise",
    "b": "pipe(8, steps=20): a batch of 8 clips",
    "c": "pipe(1, steps=20, raw_audio=clip, sample_rate=sr, start_step=15): a variation",
    "d": "pipe(1, steps=20, raw_audio=clip, sample_rate=sr, mask_start_secs=half): inpainting",
    "e": "noise = pipe.encode(image, steps=20), then pipe(1, steps=20, noise=noise): inversion and back",
}

_UNET_CALL_HINTS = {
    "a": "the sampler runs the UNet once per step of the schedule.",
    "b": "the UNet takes the whole batch (N, 1, H, W) in one forward pass; does the number of passes depend on N?",
    "c": ("a variation does not start from pure noise: the clip is noised straight to the level of "
          "timesteps[start_step] with add_noise (no network), and the sampler carries on from that step."),
    "d": ("inpainting puts the known columns back with add_noise after every step: arithmetic, no network. "
          "Which steps still run?"),
    "e": ("inversion walks the same 20 noise levels upwards and needs the UNet's noise prediction at each; "
          "then the sampler walks them down again."),
}


def _measure_unet_calls() -> dict[str, int]:
    """Run the five runs on a tiny random pipeline and count the UNet's forward passes."""
    import torch
    from diffusers import DDIMScheduler, UNet2DModel

    from course_lib.diffusion import SpectrogramDiffusionPipeline
    from course_lib.mel import Mel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    mel = Mel(x_res=16, y_res=16, hop_length=64, n_fft=256)
    pipe = SpectrogramDiffusionPipeline(unet.eval(), DDIMScheduler(clip_sample=False), mel)
    calls = [0]
    handle = unet.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    clip = (np.random.default_rng(0).standard_normal(16 * 64) * 0.1).astype(np.float32)
    half = 8 * mel.hop_length / mel.sr
    runs = {
        "a": lambda: pipe(1, steps=20, generator=0, progress=False, return_audio=False),
        "b": lambda: pipe(8, steps=20, generator=0, progress=False, return_audio=False),
        "c": lambda: pipe(1, steps=20, raw_audio=clip, sample_rate=mel.sr, start_step=15, generator=0,
                          progress=False, return_audio=False),
        "d": lambda: pipe(1, steps=20, raw_audio=clip, sample_rate=mel.sr, mask_start_secs=half, generator=0,
                          progress=False, return_audio=False),
        "e": lambda: pipe(1, steps=20, noise=pipe.encode(np.zeros((1, 16, 16), np.uint8), steps=20, progress=False),
                          progress=False, return_audio=False),
    }
    counted = {}
    try:
        for label, run in runs.items():
            calls[0] = 0
            run()
            counted[label] = calls[0]
    finally:
        handle.remove()
    return counted


def check_unet_calls(predicted: Any) -> None:
    """Check ``predicted``, a dict ``{"a": n, ..., "e": n}``: how many UNet forward passes each run makes.

    The runs are :data:`UNET_CALL_RUNS` (DDIM, 20 steps: one clip, a batch of 8, a variation from
    ``start_step=15``, inpainting, inversion and back). The truth is measured, not computed: the
    check runs them on a tiny random ``SpectrogramDiffusionPipeline`` and counts the UNet's forward
    passes with a hook. Every wrong prediction is listed with a hint at the reason.
    """
    __tracebackhide__ = True
    title = "How many UNet calls?"
    labels = list(UNET_CALL_RUNS)
    if isinstance(predicted, dict) and (unknown := sorted(set(map(str, predicted)) - set(labels))):
        raise ExerciseFailed(title, f"unknown run label(s) {unknown}; the runs are {labels}.")
    require_predictions(title, predicted, labels, "calls", dict_name="predicted_calls", label="run ({})",
                        expected="a dict of predictions like {'a': ..., 'e': ...}",
                        answer_hint="write a whole number for each run (a) to (e), e.g. predicted_calls['a'] = ..., "
                                    "then run this check again.")
    measured = _measure_unet_calls()
    wrong = [k for k in labels if int(predicted[k]) != measured[k]]
    if wrong:
        lines = "; ".join(f"({k}) {UNET_CALL_RUNS[k].split(':')[0]}: you predicted {int(predicted[k])}"
                          for k in wrong)
        hints = " ".join(f"({k}) {_UNET_CALL_HINTS[k]}" for k in wrong)
        right = len(labels) - len(wrong)
        raise ExerciseFailed(title, f"{right} of {len(labels)} predictions match the counted calls; not yet: {lines}.",
                             hints)
    print_passed(title, "counted on a tiny pipeline: " + ", ".join(f"({k}) {measured[k]}" for k in labels))


def _slerp_ref(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation in float64, one angle for the whole tensors, lerp when (nearly) parallel."""
    fa, fb = a.ravel(), b.ravel()
    cos = float(np.clip(fa @ fb / (np.linalg.norm(fa) * np.linalg.norm(fb)), -1.0, 1.0))
    theta = math.acos(cos)
    if math.sin(theta) < 1e-6:
        return (1.0 - t) * a + t * b
    return (math.sin((1.0 - t) * theta) * a + math.sin(t * theta) * b) / math.sin(theta)


def check_slerp(fn: Callable[[Any, Any, float], Any]) -> None:
    """Check ``fn(a, b, t) -> tensor``: spherical interpolation between two noise tensors.

    With ``theta`` the angle between the whole (flattened) tensors,
    ``slerp = (sin((1 - t) * theta) * a + sin(t * theta) * b) / sin(theta)``; when ``a`` and ``b``
    are (nearly) parallel, ``sin(theta)`` is about 0 and the answer is the straight line
    ``(1 - t) * a + t * b``. Checked on Gaussian noise (t = 0 gives ``a``, t = 1 gives ``b``, and the
    norm stays that of the endpoints, where lerp's dips to about 71 % halfway), a batch, and
    parallel inputs (no NaN).
    """
    __tracebackhide__ = True
    import torch

    title = "Spherical interpolation (slerp)"
    need_callable(fn, "fn", "check_slerp(slerp)")
    signature = "fn(a, b, t) -> tensor"
    gen = torch.Generator().manual_seed(5)
    a1, b1 = torch.randn(1, 1, 32, 32, generator=gen), torch.randn(1, 1, 32, 32, generator=gen)
    a2, b2 = torch.randn(3, 1, 16, 16, generator=gen), torch.randn(3, 1, 16, 16, generator=gen)
    signs = torch.randint(0, 2, (1, 1, 8, 8), generator=gen).float() * 2 - 1
    same = torch.randn(1, 1, 16, 16, generator=gen)
    cases = [(f"two Gaussian noises (1, 1, 32, 32), t={t}", a1, b1, t) for t in (0.0, 0.25, 0.5, 1.0)]
    cases += [
        ("a batch of noises (3, 1, 16, 16), t=0.6", a2, b2, 0.6),
        ("parallel inputs b = 2 * a, t=0.25", signs, 2 * signs, 0.25),
        ("identical inputs b = a, t=0.5", same, same.clone(), 0.5),
    ]
    halfway = None
    for case, a, b, t in cases:
        copies = (a.clone(), b.clone())
        got = call_answer(title, fn, case, *copies, t, signature=signature)
        require_unchanged(title, case, (a, b), copies, ("a", "b"))
        na, nb = as_numpy(a), as_numpy(b)
        want = _slerp_ref(na, nb, t)
        array = tensor_result(title, got, case, want, ("measure the angle on flattened copies, but combine the "
                                                         "original tensors a and b."))
        if not np.all(np.isfinite(array)):
            raise ExerciseFailed(
                title, f"on case {case}, your result has {int((~np.isfinite(array)).sum())} NaN or inf entries.",
                "parallel tensors have theta = 0, so sin(theta) = 0 and the formula divides 0 by 0: when sin(theta) is "
                "tiny (say < 1e-6) return the straight line (1 - t) * a + t * b. Clamp cos(theta) to [-1, 1] before "
                "acos too: rounding can make it 1.0000001.",
            )
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            per_item = np.stack([_slerp_ref(na[i], nb[i], t) for i in range(na.shape[0])])
            hint = diagnose(array, [
                (_slerp_ref(nb, na, t), "a and b are swapped: t = 0 must give a and t = 1 must give b."),
                ((1 - t) * na + t * nb, ("that is the straight line (lerp); walk along the arc: "
                                         "(sin((1 - t) * theta) * a + sin(t * theta) * b) / sin(theta).")),
                (per_item, ("use one angle between the whole tensors (flatten them), not one per image: the batch is "
                            "one point on the sphere, as in course_lib.diffusion.slerp.")),
            ], ("two steps, as in the lesson: the angle theta between the flattened tensors (from their normalised dot "
                "product), then the weights of a and b along the arc, so that t = 0 gives a and t = 1 gives b."))
            if t == 0.0 or t == 1.0:
                hint = f"at t = {t:g} slerp must return {'a' if t == 0 else 'b'} itself. " + hint
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
        if t == 0.5 and "Gaussian" in case:
            halfway = float(np.linalg.norm(array) / np.linalg.norm(na))
    print_passed(title, f"7 cases; halfway between two noises the norm is {halfway:.2f}× the endpoint's (lerp: about 0.71×), "
                   "parallel inputs give no NaN")


def _keep_known_ref(x: np.ndarray, known: np.ndarray, left: int, right: int) -> np.ndarray:
    out = x.copy()
    width = x.shape[-1]
    out[..., :left] = known[..., :left]
    out[..., width - right:] = known[..., width - right:]
    return out


def check_keep_known(fn: Callable[[Any, Any, int, int], Any]) -> None:
    """Check ``fn(x, x0_noisy, left, right) -> tensor``: inpainting's "keep the known part" step.

    The result is ``x`` with its first ``left`` and last ``right`` columns (the last axis) taken
    from ``x0_noisy``, the known clip re-noised to the current level; either count may be 0.
    ``x`` itself must not change. Checked on batches (N, 1, H, W), with 0 on either side, both,
    and every column known.
    """
    __tracebackhide__ = True
    import torch

    title = "Keeping the known columns (inpainting)"
    need_callable(fn, "fn", "check_keep_known(keep_known)")
    signature = "fn(x, x0_noisy, left, right) -> tensor"
    gen = torch.Generator().manual_seed(6)
    plan = [((2, 1, 8, 16), 4, 3), ((2, 1, 8, 16), 0, 5), ((1, 1, 8, 12), 6, 0), ((3, 1, 4, 8), 0, 0),
            ((2, 1, 8, 16), 10, 6)]
    for shape, left, right in plan:
        x = torch.randn(shape, generator=gen)
        known = torch.randn(shape, generator=gen)
        case = f"x of shape {shape}, left={left}, right={right}"
        copies = (x.clone(), known.clone())
        got = call_answer(title, fn, case, *copies, left, right, signature=signature)
        require_unchanged(title, case, (x, known), copies, ("x", "x0_noisy"))
        if got is copies[0] or got is copies[1]:
            raise ExerciseFailed(
                title, f"on case {case}, your function returned its input tensor itself.",
                "return a new tensor (start from x.clone()), so the caller can keep using x.",
            )
        nx, nk = as_numpy(x), as_numpy(known)
        want = _keep_known_ref(nx, nk, left, right)
        array = tensor_result(title, got, case, want)
        if not np.array_equal(array, want):
            width = shape[-1]
            wrong = [
                (_keep_known_ref(nx, nk, right, left), ("left and right are swapped: the first `left` columns and the "
                                                        "last `right` columns come from x0_noisy.")),
                (_keep_known_ref(nk, nx, left, right), ("x and x0_noisy are swapped: the known columns come from "
                                                        "x0_noisy, every other column from x.")),
                (_keep_known_ref(nx, nk, left, width - right), ("the right part is the last `right` columns, "
                                                                "[width - right, width), not columns [right, width).")),
            ]
            if right == 0:
                wrong.insert(0, (nk.copy(), ("with right = 0, x[..., -right:] is x[..., -0:], which is every column: "
                                             "use x[..., width - right:] or skip the copy when right is 0.")))
            hint = diagnose(array, wrong, ("columns [0, left) and [width - right, width) of the last axis come from "
                                            "x0_noisy, all the others from x."))
            changed = int((array != want).any(axis=tuple(range(array.ndim - 1))).sum())
            raise ExerciseFailed(title, f"on case {case}: {changed} of {width} columns are wrong; "
                                        f"{worst_difference(array, want)}.", hint)
    print_passed(title, "5 batches: both sides, left or right only (0 on the other), none, and every column known")
