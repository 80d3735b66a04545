"""Checks for lesson 05's exercises (tiny waveform diffusion); re-exported by :mod:`course_lib.checks`.

1. :func:`check_v_target`: the v-objective's target ``v = alpha * noise - beta * x0``.
2. :func:`check_denoise`: from a noisy clip and a predicted ``v`` back to the clean clip and the noise.
3. :func:`check_sampler_step`: one deterministic (DDIM-style) step of the v-sampler.
4. :func:`check_to_24bit`: float samples to 24-bit PCM integers, as a WAV file for a DAW stores them.

The references are the formulas, in NumPy float64, written here independently of
:mod:`course_lib.diffusion.vdiffusion`. Noise levels ``sigma`` run from 0 (clean) to 1 (pure noise), with
``alpha = cos(sigma * pi / 2)`` and ``beta = sin(sigma * pi / 2)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from course_lib.checks.harness import (
    DIFFUSION_ATOL,
    DIFFUSION_RTOL,
    ExerciseFailed,
    all_close,
    as_numpy,
    call_answer_with_hint,
    diagnose,
    need_callable,
    print_passed,
    require_unchanged,
    tensor_result,
    worst_difference,
)

__all__ = ["check_v_target", "check_denoise", "check_sampler_step", "check_to_24bit"]

_SIGMA_HINT = (
    "sigma is a tensor (B,) with one noise level per clip: reshape the angles to (B, 1, 1), e.g. "
    "(sigma * math.pi / 2).reshape(-1, 1, 1), so they broadcast over each clip (B, C, T)."
)


def _angles(sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(sigma, dtype=np.float64).reshape(-1, 1, 1)
    return np.cos(s * math.pi / 2), np.sin(s * math.pi / 2)


def _clips(gen: Any, *shape: int) -> tuple[Any, Any]:
    import torch

    return (torch.rand(shape, generator=gen) * 1.6 - 0.8), torch.randn(shape, generator=gen)


def check_v_target(fn: Callable[[Any, Any, Any], Any]) -> None:
    """Check ``fn(x0, noise, sigma) -> v``: the target of the v-objective, ``alpha * noise - beta * x0``.

    ``x0`` and ``noise`` are (B, C, T) tensors and ``sigma`` a (B,) tensor of noise levels in [0, 1].
    Cases: a batch of mixed levels, mono and stereo, and the end points sigma = 0 (v is the noise)
    and sigma = 1 (v is minus the clean clip).
    """
    __tracebackhide__ = True
    import torch

    title = "The v-objective's target"
    need_callable(fn, "fn", "check_v_target(v_target)")
    signature = "fn(x0, noise, sigma) -> v"
    gen = torch.Generator().manual_seed(50)
    cases = []
    x0, noise = _clips(gen, 4, 1, 64)
    cases.append(("4 mono clips at sigma = 0.1, 0.4, 0.7, 0.95", x0, noise, torch.tensor([0.1, 0.4, 0.7, 0.95])))
    x0, noise = _clips(gen, 2, 2, 32)
    cases.append(("2 stereo clips at sigma = 0.3, 0.5", x0, noise, torch.tensor([0.3, 0.5])))
    x0, noise = _clips(gen, 2, 1, 16)
    cases.append(("sigma = [0, 1] (clean: v is the noise; pure noise: v is -x0)", x0, noise, torch.tensor([0.0, 1.0])))
    for case, x0, noise, sigma in cases:
        inputs = (x0, noise, sigma)
        copies = tuple(v.clone() for v in inputs)
        got = call_answer_with_hint(title, fn, case, *copies, signature=signature, hint=_SIGMA_HINT)
        require_unchanged(title, case, inputs, copies, ("x0", "noise", "sigma"))
        a, b = _angles(as_numpy(sigma))
        c, n = as_numpy(x0), as_numpy(noise)
        want = a * n - b * c
        array = tensor_result(title, got, case, want, "reshape the per-clip angles to (B, 1, 1), not the clips.")
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            s = as_numpy(sigma).reshape(-1, 1, 1)
            hint = diagnose(array, [
                (b * c - a * n, "the sign is flipped: v = alpha * noise - beta * x0."),
                (b * n - a * c, "alpha and beta are swapped: alpha = cos(sigma * pi / 2) goes with the noise in v."),
                (a * c + b * n, "that is the noisy clip x_sigma = alpha * x0 + beta * noise; v = alpha * noise - beta * x0."),
                (np.cos(s) * n - np.sin(s) * c, "the angle is sigma * pi / 2 (sigma = 1 is a quarter turn), not sigma."),
                (np.sqrt(1 - s) * n - np.sqrt(s) * c, ("v-diffusion uses the angles alpha = cos(sigma * pi / 2), "
                                                       "beta = sin(sigma * pi / 2), not square roots of sigma.")),
            ], "v = cos(sigma * pi / 2) * noise - sin(sigma * pi / 2) * x0, per clip.")
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
    print_passed(title, "3 cases: mixed levels, stereo, and sigma 0 and 1")


def check_denoise(fn: Callable[[Any, Any, Any], Any]) -> None:
    """Check ``fn(x_sigma, v, sigma) -> (x0_hat, noise_hat)``.

    Since ``x_sigma = alpha * x0 + beta * noise`` and ``v = alpha * noise - beta * x0`` are a rotation
    of (x0, noise) by the angle sigma * pi / 2, rotating back gives ``x0 = alpha * x_sigma - beta * v``
    and ``noise = beta * x_sigma + alpha * v``. With the true v the answer must return the true clip
    and noise exactly; with a model's imperfect v it must follow the same formulas.
    """
    __tracebackhide__ = True
    import torch

    title = "From a predicted v back to the clip and the noise"
    need_callable(fn, "fn", "check_denoise(denoise)")
    signature = "fn(x_sigma, v, sigma) -> (x0_hat, noise_hat)"
    gen = torch.Generator().manual_seed(51)
    cases = []
    for label, shape, sigma in [("3 mono clips, the true v", (3, 1, 48), [0.2, 0.6, 0.9]),
                                ("2 stereo clips, an imperfect v (as from a model)", (2, 2, 32), [0.35, 0.8]),
                                ("sigma = [0, 1], the true v", (2, 1, 16), [0.0, 1.0])]:
        x0, noise = _clips(gen, *shape)
        s = torch.tensor(sigma)
        a, b = torch.cos(s * math.pi / 2).reshape(-1, 1, 1), torch.sin(s * math.pi / 2).reshape(-1, 1, 1)
        x_sigma = a * x0 + b * noise
        v = a * noise - b * x0
        if "imperfect" in label:
            v = v + 0.1 * torch.randn(v.shape, generator=gen)
        cases.append((label, x_sigma, v, s))
    for case, x_sigma, v, sigma in cases:
        inputs = (x_sigma, v, sigma)
        copies = tuple(t.clone() for t in inputs)
        got = call_answer_with_hint(title, fn, case, *copies, signature=signature, hint=_SIGMA_HINT)
        require_unchanged(title, case, inputs, copies, ("x_sigma", "v", "sigma"))
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise ExerciseFailed(title, f"on case {case}, expected a pair (x0_hat, noise_hat), got {type(got).__name__}.",
                                 "return both estimates: `return x0_hat, noise_hat`.")
        a, b = _angles(as_numpy(sigma))
        x, vv = as_numpy(x_sigma), as_numpy(v)
        want_x0, want_noise = a * x - b * vv, b * x + a * vv
        for what, value, want, wrong in [
            ("x0_hat", got[0], want_x0, [(a * x + b * vv, "x0_hat = alpha * x_sigma - beta * v (minus, not plus)."),
                                         (b * x + a * vv, "that is the noise estimate; x0_hat = alpha * x_sigma - beta * v.")]),
            ("noise_hat", got[1], want_noise, [(b * x - a * vv, "noise_hat = beta * x_sigma + alpha * v (plus, not minus)."),
                                               (a * x - b * vv, "that is the clip estimate; noise_hat = beta * x_sigma + alpha * v.")]),
        ]:
            array = tensor_result(title, value, f"{case} ({what})", want)
            if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
                hint = diagnose(array, wrong, "rotate back: x0 = alpha * x_sigma - beta * v, noise = beta * x_sigma + alpha * v.")
                raise ExerciseFailed(title, f"on case {case}, {what}: {worst_difference(array, want)}.", hint)
    print_passed(title, "3 cases; the true v gives back the true clip and noise, an imperfect v follows the same formulas")


def check_sampler_step(fn: Callable[[Any, Any, float, float], Any]) -> None:
    """Check ``fn(x, v, sigma, sigma_next) -> x_next``: one deterministic step of the v-sampler.

    ``sigma`` and ``sigma_next`` are floats (one level for the whole batch, as in sampling), with
    ``sigma_next < sigma``. Estimate the clean clip and the noise from ``v`` (exercise 2), then
    mix them at the new level: ``x_next = alpha_next * x0_hat + beta_next * noise_hat``. The last
    step (``sigma_next = 0``) must return ``x0_hat``.
    """
    __tracebackhide__ = True
    import torch

    title = "One step of the deterministic v-sampler"
    need_callable(fn, "fn", "check_sampler_step(sampler_step)")
    signature = "fn(x, v, sigma, sigma_next) -> x_next"
    gen = torch.Generator().manual_seed(52)
    plan = [((2, 1, 64), 1.0, 0.98), ((3, 1, 32), 0.6, 0.5), ((2, 2, 32), 0.3, 0.25), ((2, 1, 32), 0.02, 0.0)]
    for shape, s, s_next in plan:
        x = torch.randn(shape, generator=gen)
        v = torch.randn(shape, generator=gen) * 0.7
        case = f"sigma {s:g} -> {s_next:g}, x of shape {shape}" + (" (the last step)" if s_next == 0 else "")
        inputs = (x, v)
        copies = tuple(t.clone() for t in inputs)
        got = call_answer_with_hint(title, fn, case, copies[0], copies[1], s, s_next, signature=signature,
                              hint="sigma and sigma_next are Python floats here: math.cos / math.sin work on them.")
        require_unchanged(title, case, inputs, copies, ("x", "v"))
        a, b = math.cos(s * math.pi / 2), math.sin(s * math.pi / 2)
        an, bn = math.cos(s_next * math.pi / 2), math.sin(s_next * math.pi / 2)
        xx, vv = as_numpy(x), as_numpy(v)
        x0_hat, noise_hat = a * xx - b * vv, b * xx + a * vv
        want = an * x0_hat + bn * noise_hat
        array = tensor_result(title, got, case, want)
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            hint = diagnose(array, [
                (x0_hat, "that is the clean estimate; the step puts it back at the lower level sigma_next."),
                (a * x0_hat + b * noise_hat, "mix at the NEW level: alpha_next = cos(sigma_next * pi / 2), and beta_next."),
                (an * x0_hat + bn * (b * xx - a * vv), "noise_hat = beta * x + alpha * v (check the sign)."),
                (an * (a * xx + b * vv) + bn * noise_hat, "x0_hat = alpha * x - beta * v (check the sign)."),
            ], "x0_hat = a*x - b*v, noise_hat = b*x + a*v (a, b at sigma); x_next = a'*x0_hat + b'*noise_hat (at sigma_next).")
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
    print_passed(title, "4 steps from pure noise to the last step; the last returns the clean estimate")


def check_to_24bit(fn: Callable[[Any], Any]) -> None:
    """Check ``fn(audio) -> int32 array``: float samples in [-1, 1] to 24-bit PCM integers.

    24-bit PCM stores integers from -2**23 to 2**23 - 1; a float sample x maps to round(x * 2**23),
    clipped to that range (+1.0 would be 2**23, one past the top). The answer must return integers
    (int32 holds them) of the input's shape, and leave the input alone.
    """
    __tracebackhide__ = True
    title = "Float samples to 24-bit PCM"
    need_callable(fn, "fn", "check_to_24bit(to_24bit)")
    top = 2 ** 23
    rng = np.random.default_rng(53)
    cases = [
        ("a random mono clip of 1000 samples in [-0.9, 0.9]", rng.uniform(-0.9, 0.9, 1000).astype(np.float32)),
        ("the extremes -1.0, -0.5, 0.0, 0.5, 1.0 (1.0 must clip to 2**23 - 1)",
         np.array([-1.0, -0.5, 0.0, 0.5, 1.0], np.float32)),
        ("values just off the integer grid (rounding, not truncation)",
         ((np.arange(-5, 6) + 0.6) / top).astype(np.float64)),
        ("a stereo clip (2, 300) that overshoots to ±1.2", rng.uniform(-1.2, 1.2, (2, 300)).astype(np.float32)),
    ]
    for case, x in cases:
        before = x.copy()
        got = call_answer_with_hint(title, fn, case, x, signature="fn(audio) -> int32 array",
                              hint="work on a NumPy array: np.round, np.clip and .astype(np.int32) do the job.")
        if not np.array_equal(x, before):
            raise ExerciseFailed(title, f"on case {case}, your function changed its input.",
                                 "compute a new array (np.clip(...) returns one) instead of writing into audio.")
        array = np.asarray(got.detach().cpu().numpy() if hasattr(got, "detach") else got)
        if not np.issubdtype(array.dtype, np.integer):
            raise ExerciseFailed(title, f"on case {case}, expected integers, got dtype {array.dtype}.",
                                 "finish with .astype(np.int32): a WAV file stores whole numbers.")
        want = np.clip(np.round(x.astype(np.float64) * top), -top, top - 1).astype(np.int64)
        if array.shape != want.shape:
            raise ExerciseFailed(title, f"on case {case}, expected shape {want.shape}, got {array.shape}.")
        if not np.array_equal(array.astype(np.int64), want):
            got64 = array.astype(np.int64)
            xx = x.astype(np.float64)
            hint = "pcm = clip(round(audio * 2**23), -2**23, 2**23 - 1) as int32."
            for wrong, why in [
                (np.clip(np.trunc(xx * top), -top, top - 1), "round to the nearest integer (np.round), do not truncate."),
                (np.round(xx * top), "clip to [-2**23, 2**23 - 1]: +1.0 and overshoots do not fit in 24 bits."),
                (np.clip(np.round(xx * (top - 1)), -top, top - 1), "scale by 2**23, not 2**23 - 1 (then clip the top)."),
                (np.clip(np.round(xx * 2 ** 24), -(2 ** 24), 2 ** 24 - 1), "24-bit signed means ±2**23: one bit is the sign."),
                (np.clip(np.round(xx * 2 ** 31), -(2 ** 31), 2 ** 31 - 1), "that is 32-bit; for 24 bits use 2**23."),
            ]:
                if np.array_equal(got64, wrong.astype(np.int64)):
                    hint = why
                    break
            i = int(np.argmax(np.abs(got64 - want).ravel()))
            raise ExerciseFailed(title, f"on case {case}: sample {i} (value {xx.ravel()[i]:.9g}) should be "
                                        f"{int(want.ravel()[i])}, got {int(got64.ravel()[i])}.", hint)
    print_passed(title, "4 cases: random samples, the extremes (+1.0 clips), rounding, stereo with overshoot")
