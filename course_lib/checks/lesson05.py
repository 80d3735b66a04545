"""Checks for lesson 05's exercises (tiny waveform diffusion); re-exported by :mod:`course_lib.checks`.

1. :func:`check_v_target`: the v-objective's target ``v = alpha * noise - beta * x0``.
2. :func:`check_denoise`: from a noisy clip and a predicted ``v`` back to the clean clip and the noise.
3. :func:`check_sampler_step`: one deterministic (DDIM-style) step of the v-sampler (the exercise hands
   the learner a broken step to repair).
4. :func:`check_rms_of_v`: predict how loud the target ``v`` is at a noise level, for a clip of a given RMS;
   the check measures it on real drum hits and fresh noise.
5. :func:`check_guidance_guess`: which of two batches (made by :func:`guidance_mystery`) was sampled with
   classifier-free guidance 4 rather than 1, told apart by listening or measuring.
6. :func:`check_to_24bit`: float samples to 24-bit PCM integers, as a WAV file for a DAW stores them.

The references are the formulas, in NumPy float64, written here independently of
:mod:`course_lib.diffusion.vdiffusion`, or measurements. Noise levels ``sigma`` run from 0 (clean) to 1
(pure noise), with ``alpha = cos(sigma * pi / 2)`` and ``beta = sin(sigma * pi / 2)``.
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

__all__ = [
    "check_v_target",
    "check_denoise",
    "check_sampler_step",
    "check_rms_of_v",
    "guidance_mystery",
    "check_guidance_guess",
    "check_to_24bit",
]

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
            ], "try your function at the ends first: at sigma = 0 v must be the noise, at sigma = 1 it must be "
               "-x0. In between: v = cos(sigma * pi / 2) * noise - sin(sigma * pi / 2) * x0, per clip.")
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
                hint = diagnose(array, wrong, "put x_sigma = alpha * x0 + beta * noise and v = alpha * noise - beta * x0 "
                                              "into your formula: it must give x0 (and the noise) back exactly. v is a "
                                              "rotation of (x0, noise) by the angle sigma * pi / 2: rotate back.")
                raise ExerciseFailed(title, f"on case {case}, {what}: {worst_difference(array, want)}.", hint)
    print_passed(title, "3 cases; the true v gives back the true clip and noise, an imperfect v follows the same formulas")


def check_sampler_step(fn: Callable[[Any, Any, float, float], Any]) -> None:
    """Check ``fn(x, v, sigma, sigma_next) -> x_next``: one deterministic step of the v-sampler.

    ``sigma`` and ``sigma_next`` are floats (one level for the whole batch, as in sampling), with
    ``sigma_next < sigma``. Estimate the clean clip and the noise from ``v`` (exercise 2), then
    mix them at the new level: ``x_next = alpha_next * x0_hat + beta_next * noise_hat``. The last
    step (``sigma_next = 0``) must return ``x0_hat``. The exercise starts from a broken step whose
    estimates swap alpha and beta; the check recognises it (and the other usual slips).
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
                (an * (b * xx - a * vv) + bn * (a * xx + b * vv),
                 "that is still the broken step. Feed it the true v of a known clip at sigma = 0.2 and at 0.5: "
                 "where does its x0_hat give the clip back, and where not? When the clip is almost clean "
                 "(sigma near 0), which of alpha and beta is near 1, and which term of x0_hat should dominate?"),
                (x0_hat, "that is the clean estimate; the step puts it back at the lower level sigma_next."),
                (a * x0_hat + b * noise_hat, "mix at the NEW level: alpha_next = cos(sigma_next * pi / 2), and beta_next."),
                (an * x0_hat + bn * (b * xx - a * vv), "noise_hat = beta * x + alpha * v (check the sign)."),
                (an * (a * xx + b * vv) + bn * noise_hat, "x0_hat = alpha * x - beta * v (check the sign)."),
            ], "fed the true v of a clip x0 and noise, a right step lands exactly on alpha_next * x0 + beta_next * noise; "
               "test yours that way: first the estimates of x0 and the noise at sigma, then mix them at sigma_next.")
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
    print_passed(title, "4 steps from pure noise to the last step; the last returns the clean estimate")


# ----------------------------------------------------------------------------- predict: how loud is v?

def _measured_rms_of_v(x0: np.ndarray, sigma: float, seed: int) -> float:
    """RMS of ``v = alpha * noise - beta * x0`` for one clip, averaged over 4 fresh noise draws."""
    rng = np.random.default_rng(seed)
    a, b = math.cos(sigma * math.pi / 2), math.sin(sigma * math.pi / 2)
    noise = rng.standard_normal((4, x0.size))
    return float(np.sqrt(np.mean((a * noise - b * x0[None, :]) ** 2)))


def check_rms_of_v(fn: Callable[[float, float], Any]) -> None:
    """Check ``fn(clip_rms, sigma) -> float``: the learner's prediction of the RMS of the target ``v``.

    The truth is measured: real course-made drum hits (a kick, a snare, a hi-hat, a percussion hit)
    and a unit-variance clip, at noise levels from 0 to 1, with fresh Gaussian noise; ``v`` is
    ``alpha * noise - beta * x0``. A prediction passes within 3 % of every measurement. The
    answer ``sqrt(alpha² + beta² * clip_rms²)`` follows from the noise being independent of the
    clip, so their powers add; the hints lead there from the two ends.
    """
    __tracebackhide__ = True
    import torch

    from course_lib.drums import real_drums

    title = "Predict the size of v"
    need_callable(fn, "fn", "check_rms_of_v(rms_of_v)")
    signature = "fn(clip_rms, sigma) -> float"
    hits, _ = real_drums(1, seed=5)
    names = ["kick", "snare", "hi-hat", "percussion"]
    clips = [(name, hit.numpy().astype(np.float64)) for name, hit in zip(names, hits)]
    clips.append(("unit-variance noise", np.random.default_rng(55).standard_normal(hits.shape[1])))
    sigmas = [0.0, 1.0, 0.25, 0.5, 0.75, 0.9]            # the two ends are judged first
    misses: dict[str, list[str]] = {"clean": [], "noise": [], "between": []}
    rows: list[tuple[float, float, float, float]] = []    # (clip_rms, sigma, predicted, measured)
    for k, (name, x0) in enumerate(clips):
        clip_rms = float(np.sqrt(np.mean(x0 ** 2)))
        for j, sigma in enumerate(sigmas):
            case = f"a {name} of RMS {clip_rms:.3f} at sigma = {sigma:g}"
            got = call_answer_with_hint(title, fn, case, clip_rms, sigma, signature=signature,
                                        hint="clip_rms and sigma are Python floats: math.cos, math.sin and "
                                             "math.sqrt work on them.")
            if isinstance(got, torch.Tensor):
                got = got.detach().cpu().numpy()
            value = np.asarray(got, dtype=np.float64) if isinstance(got, (int, float, np.ndarray, np.generic)) else None
            if value is None or value.size != 1 or not np.isfinite(value).all():
                raise ExerciseFailed(title, f"on case {case}, expected one finite number, got {got!r}.",
                                     "return a float, e.g. math.sqrt(...).")
            measured = _measured_rms_of_v(x0, sigma, seed=560 + 10 * k + j)
            predicted = float(value.ravel()[0])
            rows.append((clip_rms, sigma, predicted, measured))
            if abs(predicted - measured) > 0.03 * measured:
                where = "clean" if sigma == 0 else "noise" if sigma == 1 else "between"
                misses[where].append(f"{case}: you predicted {predicted:.4g}, measured {measured:.4g}")
    if not any(misses.values()):
        print_passed(title, f"{len(rows)} measurements on 4 drum hits and a unit-variance clip, all within 3 %")
        return
    r, s = np.array([row[0] for row in rows]), np.array([row[1] for row in rows])
    a, b = np.cos(s * math.pi / 2), np.sin(s * math.pi / 2)
    pred = np.array([row[2] for row in rows])
    first = (misses["clean"] or misses["noise"] or misses["between"])[0] + "."
    for wrong, hint in [
        (a ** 2 + b ** 2 * r ** 2, "you have the mean square of v (its power); the RMS is its square root."),
        (a + b * r, "the ends are right, but amplitudes of independent signals do not add. Their powers (mean "
                    "squares) do: expand mean((alpha * noise - beta * x0)²); the cross term averages to 0."),
    ]:
        if np.allclose(pred, wrong, rtol=0.02, atol=1e-9):
            raise ExerciseFailed(title, first, hint)
    if misses["clean"]:
        raise ExerciseFailed(title, first, "at sigma = 0, alpha = 1 and beta = 0: which of the noise and the clip "
                                           "is left in v? What is the RMS of standard Gaussian noise?")
    if misses["noise"]:
        raise ExerciseFailed(title, first, "at sigma = 1, alpha = 0 and beta = 1, so v = -x0: the noise is gone from "
                                           "the target. Its RMS is then the clip's own, clip_rms: a constant size "
                                           "holds only for clips of RMS 1.")
    raise ExerciseFailed(title, first, "the ends are right; for the middle expand mean(v²) = mean((alpha * noise - "
                                       "beta * x0)²). The noise is independent of the clip, so the cross term "
                                       "averages to 0, and mean(noise²) = 1.")


# ----------------------------------------------------------------------------- listen: which batch was guided?

_GUIDANCE_SCALES = (1.0, 4.0)


def _guided_is_a(seed: int) -> bool:
    """Whether batch A of :func:`guidance_mystery` is the guided one (fixed by the seed)."""
    return (int(seed) * 7919 + 3) % 2 == 1


def guidance_mystery(model: Any, steps: int, n_per_class: int = 1, seed: int = 0) -> tuple[Any, Any, Any]:
    """Two batches of drum hits from ``model``, one sampled with guidance 1 and one with guidance 4.

    Returns ``(batch_a, batch_b, labels)``: two (N, T) tensors and their class labels (one hit of
    each class per ``n_per_class``). Hit ``i`` of both batches starts from the same noise, so a
    pair differs only by the guidance. Which batch is which follows from ``seed``; the exercise
    asks the learner to tell, and :func:`check_guidance_guess` (same ``seed``) knows.
    """
    from course_lib.drums import generate_drums
    from course_lib.validate import check_positive_int

    seed = check_positive_int(seed, "seed", minimum=0)
    guided_first = _guided_is_a(seed)
    scales = _GUIDANCE_SCALES[::-1] if guided_first else _GUIDANCE_SCALES
    batches = [generate_drums(model, n_per_class, steps=steps, guidance_scale=w, seed=seed, progress=False)
               for w in scales]
    return batches[0][0], batches[1][0], batches[0][1]


def check_guidance_guess(guess: Any, seed: int = 0) -> None:
    """Check ``guess``, ``"A"`` or ``"B"``: the batch of :func:`guidance_mystery` (with the same ``seed``)
    that was sampled with guidance 4."""
    __tracebackhide__ = True
    title = "Which batch was guided?"
    if guess is None:
        raise ExerciseFailed(title, "not answered yet: guided_batch is still None.",
                             "listen to the two batches, then set guided_batch = \"A\" or \"B\" and run this check again.")
    if not isinstance(guess, str) or guess.strip().upper() not in ("A", "B"):
        raise ExerciseFailed(title, f"expected the letter \"A\" or \"B\", got {guess!r}.",
                             "name the batch you think was sampled with guidance 4.")
    truth = "A" if _guided_is_a(seed) else "B"
    if guess.strip().upper() != truth:
        raise ExerciseFailed(
            title, f"batch {guess.strip().upper()} was sampled with guidance 1 (plain conditional sampling).",
            "guidance pushes every prediction away from the classless one, by 4 times the difference. Listen to "
            "pair i of both batches (same starting noise): which one is pushed harder? Then measure it: the RMS "
            "of each batch, or the share of samples at ±1.")
    print_passed(title, f"batch {truth} had guidance 4")


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
            hint = "24-bit PCM has the levels -2**23 … 2**23 - 1: scale the audio to them, round, and keep the extremes inside."
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
