"""Checks for lesson 06's exercises (the spectrogram VAE); re-exported by :mod:`course_lib.checks`.

1. :func:`check_reparameterise`: the fixed version of a broken reparameterisation,
   ``z = mu + exp(logvar / 2) * eps``, with gradients reaching mu and logvar.
2. :func:`check_kl_per_clip`: the closed-form KL of ``N(mu, exp(logvar))`` to ``N(0, I)``, one value per clip.
3. :func:`check_vae_objective`: ``MSE + kl_weight * KL``, the number a VAE is trained to lower.
4. :func:`check_interpolate`: evenly spaced codes from one latent vector to another, both ends included.
5. :func:`check_elbo_kl_weight`: the kl_weight that makes the course's loss a Gaussian decoder's negative
   ELBO (up to a positive factor and a constant): ``2 sigma² / n_pixels``.
6. :func:`check_beta_prediction`: a prediction made before the β experiment, against what it measured.

The references are the formulas in NumPy float64, written here independently of :mod:`course_lib.models.vae`;
exercise 6's reference is the learner's own measurement.
Codes are (B, D) tensors: B clips, D latent numbers.
"""

from __future__ import annotations

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
    to_numpy,
    worst_difference,
)
from course_lib.errors import CourseInputError

__all__ = [
    "check_reparameterise",
    "check_kl_per_clip",
    "check_vae_objective",
    "check_interpolate",
    "check_elbo_kl_weight",
    "check_beta_prediction",
]


def _codes(gen: Any, b: int, d: int) -> tuple[Any, Any]:
    """A batch of plausible encoder outputs: mu around 0, logvar from -4 to 1."""
    import torch

    return torch.randn((b, d), generator=gen) * 1.5, torch.rand((b, d), generator=gen) * 5 - 4


def _result(title: str, got: Any, case: str, want: np.ndarray, hint: str) -> np.ndarray:
    __tracebackhide__ = True
    array = to_numpy(title, got, f"your result on case {case}")
    if array.shape != want.shape:
        raise ExerciseFailed(title, f"on case {case}, expected shape {want.shape}, got {array.shape}.", hint)
    return array


def check_reparameterise(fn: Callable[[Any, Any, Any], Any]) -> None:
    """Check ``fn(mu, logvar, eps) -> z``: the reparameterisation ``z = mu + exp(logvar / 2) * eps``.

    ``mu``, ``logvar`` and ``eps`` are (B, D) tensors. ``exp(logvar / 2)`` is the standard deviation
    (``logvar`` is the log of the variance). The point of the trick is that z stays differentiable
    in mu and logvar, so the check also backpropagates through the answer: dz/dmu must be 1 and
    dz/dlogvar must be ``exp(logvar / 2) * eps / 2``.
    """
    __tracebackhide__ = True
    import torch

    title = "The reparameterisation trick"
    need_callable(fn, "fn", "check_reparameterise(reparameterise)")
    signature = "fn(mu, logvar, eps) -> z"
    gen = torch.Generator().manual_seed(60)
    cases = []
    mu, logvar = _codes(gen, 4, 16)
    cases.append(("4 codes of 16 numbers", mu, logvar, torch.randn((4, 16), generator=gen)))
    mu, _ = _codes(gen, 2, 8)
    cases.append(("logvar = 0 (unit variance: z = mu + eps)", mu, torch.zeros(2, 8), torch.randn((2, 8), generator=gen)))
    mu, logvar = _codes(gen, 3, 128)
    cases.append(("3 codes of 128 numbers (the lesson's latent size)", mu, logvar, torch.randn((3, 128), generator=gen)))
    for case, mu, logvar, eps in cases:
        inputs = (mu, logvar, eps)
        copies = [t.clone() for t in inputs]
        copies[0].requires_grad_(True)
        copies[1].requires_grad_(True)
        got = call_answer_with_hint(title, fn, case, *copies, signature=signature,
                              hint="use torch operations on the tensors (torch.exp), so gradients can flow.")
        require_unchanged(title, case, inputs, [c.detach() for c in copies], ("mu", "logvar", "eps"))
        m, lv, e = as_numpy(mu), as_numpy(logvar), as_numpy(eps)
        std = np.exp(lv / 2)
        want = m + std * e
        array = _result(title, got, case, want, "z has the shape of mu: one code per clip.")
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            hint = diagnose(array, [
                (m + np.exp(lv) * e, "exp(logvar) is the variance; scale eps by the standard deviation exp(logvar / 2)."),
                (m + lv * e, "logvar is a logarithm: the standard deviation is exp(logvar / 2)."),
                (m + np.sqrt(np.abs(lv)) * e, "the standard deviation is exp(logvar / 2), not a square root of logvar."),
                (m - std * e, "add the scaled noise, with eps as given: z = mu + exp(logvar / 2) * eps."),
                (std * e, "start from the mean: z = mu + exp(logvar / 2) * eps."),
                (m + np.exp(-lv / 2) * e, "exp(+logvar / 2): a larger logvar means more spread."),
            ], "z = mu + exp(logvar / 2) * eps.")
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
        if not isinstance(got, torch.Tensor) or not got.requires_grad:
            raise ExerciseFailed(title, f"on case {case}, no gradient reaches mu and logvar through your z.",
                                 "compute z outside `with torch.no_grad():` and stay in torch (no .detach(), .numpy() or "
                                 "torch.tensor(...) around the result): "
                                 "the trick exists so that the encoder can learn through the sample.")
        weights = torch.randn(got.shape, generator=gen)
        (got * weights).sum().backward()
        w = as_numpy(weights)
        for name, grad, want_grad in [("mu", copies[0].grad, w), ("logvar", copies[1].grad, w * std * e / 2)]:
            g = np.zeros_like(want_grad) if grad is None else as_numpy(grad)
            if not all_close(g, want_grad, DIFFUSION_ATOL, DIFFUSION_RTOL):
                raise ExerciseFailed(title, f"on case {case}, the gradient with respect to {name} is wrong "
                                            f"({worst_difference(g, want_grad)}).",
                                     "compute z from mu and logvar themselves, with torch operations.")
    print_passed(title, "3 cases; the values match and gradients flow to mu and logvar")


def _kl_ref(m: np.ndarray, lv: np.ndarray) -> np.ndarray:
    return 0.5 * (m ** 2 + np.exp(lv) - 1.0 - lv).sum(axis=1)


def check_kl_per_clip(fn: Callable[[Any, Any], Any]) -> None:
    """Check ``fn(mu, logvar) -> kl`` (B,): KL(N(mu, exp(logvar)) || N(0, I)) in nats, one value per clip.

    In closed form ``0.5 * sum_j (mu_j² + exp(logvar_j) - 1 - logvar_j)``, summed over the D latent
    numbers of each clip. It is 0 exactly when mu = 0 and logvar = 0, and never negative.
    """
    __tracebackhide__ = True
    import torch

    title = "The KL term, per clip"
    need_callable(fn, "fn", "check_kl_per_clip(kl_per_clip)")
    signature = "fn(mu, logvar) -> kl (B,)"
    gen = torch.Generator().manual_seed(61)
    cases = [("the standard normal itself (mu = 0, logvar = 0: KL is 0)", torch.zeros(3, 8), torch.zeros(3, 8))]
    mu, logvar = _codes(gen, 5, 16)
    cases.append(("5 codes of 16 numbers", mu, logvar))
    mu, logvar = _codes(gen, 2, 128)
    cases.append(("2 codes of 128 numbers", mu, logvar))
    cases.append(("a shifted mean with unit variance (KL = 0.5 * |mu|²)", torch.randn((3, 4), generator=gen),
                  torch.zeros(3, 4)))
    for case, mu, logvar in cases:
        inputs = (mu, logvar)
        copies = tuple(t.clone() for t in inputs)
        got = call_answer_with_hint(title, fn, case, *copies, signature=signature,
                              hint="use torch operations (torch.exp, .sum(dim=1)) on the (B, D) tensors.")
        require_unchanged(title, case, inputs, copies, ("mu", "logvar"))
        m, lv = as_numpy(mu), as_numpy(logvar)
        want = _kl_ref(m, lv)
        array = to_numpy(title, got, f"your result on case {case}")
        if array.shape != want.shape:
            hint = "one value per clip: sum over the latent numbers only, .sum(dim=1), and do not average the batch."
            if array.shape == ():
                hint = "return one value per clip (B,), not one number for the batch: sum over dim=1 only."
            elif array.shape == m.shape:
                hint = "sum the per-number terms over the latent numbers (dim=1): the KL of a clip is their sum."
            raise ExerciseFailed(title, f"on case {case}, expected shape {want.shape}, got {array.shape}.", hint)
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            d = m.shape[1]
            hint = diagnose(array, [
                (2 * want, "the KL has a factor 0.5 in front of the sum."),
                (-want, "the sign is flipped: the KL is never negative."),
                (want / d, "sum over the latent numbers, do not average them."),
                (0.5 * (m ** 2 + np.exp(lv / 2) - 1 - lv).sum(axis=1),
                 "the formula uses the variance exp(logvar), not the standard deviation exp(logvar / 2)."),
                (0.5 * (m ** 2 + np.exp(lv) - 1 + lv).sum(axis=1), "it is - logvar at the end: mu² + exp(logvar) - 1 - logvar."),
                (0.5 * (m + np.exp(lv) - 1 - lv).sum(axis=1), "the mean enters squared: mu²."),
            ], "compare with the lesson's KL of N(mu, exp(logvar)) from N(0, 1) term by term; a clip's KL sums over dim=1.")
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
    print_passed(title, "4 cases: zero at the standard normal, random codes, latent size 128, a shifted mean")


def check_vae_objective(fn: Callable[[Any, Any, Any, Any, float], Any]) -> None:
    """Check ``fn(recon, x, mu, logvar, kl_weight) -> loss``: a scalar tensor ``MSE + kl_weight * KL``.

    ``recon`` and ``x`` are (B, 1, H, W) spectrograms; the MSE is the mean over every number (as
    ``torch.nn.functional.mse_loss``); the KL is the per-clip KL of exercise 2, averaged over the
    batch. This is :func:`course_lib.models.vae.vae_loss` given the decoder's output.
    """
    __tracebackhide__ = True
    import torch

    title = "The VAE's training objective"
    need_callable(fn, "fn", "check_vae_objective(vae_objective)")
    signature = "fn(recon, x, mu, logvar, kl_weight) -> loss"
    gen = torch.Generator().manual_seed(62)
    plan = [("4 clips of 16 x 8, kl_weight 1e-4 (the lesson's)", (4, 1, 16, 8), 6, 1e-4),
            ("2 clips of 32 x 8, kl_weight 0.5", (2, 1, 32, 8), 4, 0.5),
            ("3 clips, kl_weight 0 (a plain autoencoder's loss)", (3, 1, 8, 8), 5, 0.0)]
    for case, shape, d, weight in plan:
        x = torch.rand(shape, generator=gen)
        recon = (x + 0.2 * torch.randn(shape, generator=gen)).clamp(0, 1)
        mu, logvar = _codes(gen, shape[0], d)
        inputs = (recon, x, mu, logvar)
        copies = tuple(t.clone() for t in inputs)
        got = call_answer_with_hint(title, fn, case, *copies, weight, signature=signature,
                              hint="use torch operations on the tensors (F.mse_loss, your KL), so that the loss stays a tensor.")
        require_unchanged(title, case, inputs, copies, ("recon", "x", "mu", "logvar"))
        r, xx, m, lv = (as_numpy(t) for t in inputs)
        mse = float(((r - xx) ** 2).mean())
        kl = _kl_ref(m, lv)
        want = np.asarray(mse + weight * kl.mean())
        array = to_numpy(title, got, f"your result on case {case}")
        if array.size != 1:
            raise ExerciseFailed(title, f"on case {case}, expected one number (a scalar tensor), got shape {array.shape}.",
                                 "average the KL over the batch (.mean()) so the loss is a single number.")
        array = array.reshape(())
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            sse = float(((r - xx) ** 2).sum())
            hint = diagnose(array, [
                (np.asarray(mse + kl.mean()), "multiply the KL by kl_weight."),
                (np.asarray(weight * mse + kl.mean()), "the weight goes on the KL term, not on the reconstruction."),
                (np.asarray(mse + weight * kl.sum()), "average the per-clip KL over the batch (.mean()), do not sum it."),
                (np.asarray(sse + weight * kl.mean()), "the reconstruction term is the mean squared error (mean, not sum)."),
                (np.asarray(mse + weight * kl.mean() / d), "the per-clip KL sums over the latent numbers; then average over clips."),
                (np.asarray(mse - weight * kl.mean()), "add the KL: it is a penalty."),
                (np.asarray(mse), "the objective has two terms: add kl_weight * KL."),
            ], "two terms, as in the lesson: a reconstruction error and the weighted KL. Which is a mean, over what?")
            raise ExerciseFailed(title, f"on case {case}: expected {float(want):.6g}, got {float(array):.6g}.", hint)
    print_passed(title, "3 cases: the lesson's weight, a large weight, and weight 0")


def check_interpolate(fn: Callable[[Any, Any, int], Any]) -> None:
    """Check ``fn(z0, z1, n) -> (n, D)``: ``n`` evenly spaced codes from ``z0`` (row 0) to ``z1`` (row n - 1).

    Row k is ``z0 + t_k * (z1 - z0)`` with ``t_k = k / (n - 1)``, so both ends are the given codes.
    ``z0`` and ``z1`` are (D,) tensors and ``n >= 2``.
    """
    __tracebackhide__ = True
    import torch

    title = "A straight path through latent space"
    need_callable(fn, "fn", "check_interpolate(interpolate)")
    signature = "fn(z0, z1, n) -> codes (n, D)"
    gen = torch.Generator().manual_seed(63)
    for case, d, n in [("D = 8, n = 5", 8, 5), ("D = 128, n = 7", 128, 7), ("n = 2 (just the two ends)", 16, 2)]:
        z0, z1 = torch.randn(d, generator=gen), torch.randn(d, generator=gen)
        inputs = (z0, z1)
        copies = tuple(t.clone() for t in inputs)
        got = call_answer_with_hint(title, fn, case, *copies, n, signature=signature,
                              hint="torch.linspace(0, 1, n) gives the fractions; broadcast them as a column (n, 1).")
        require_unchanged(title, case, inputs, copies, ("z0", "z1"))
        a, b = as_numpy(z0), as_numpy(z1)
        t = np.linspace(0.0, 1.0, n)[:, None]
        want = a + t * (b - a)
        array = to_numpy(title, got, f"your result on case {case}")
        if array.shape != want.shape:
            hint = "one row per step: shape (n, D)."
            if array.shape == want.T.shape:
                hint = "rows are the steps: shape (n, D), not (D, n); make the fractions a column, t[:, None]."
            raise ExerciseFailed(title, f"on case {case}, expected shape {want.shape}, got {array.shape}.", hint)
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            t_open = np.linspace(0.0, 1.0, n + 1)[:-1, None]
            hint = diagnose(array, [
                (want[::-1], "start at z0 (row 0) and end at z1 (row n - 1)."),
                (a + t_open * (b - a), "include both ends: t = k / (n - 1), e.g. torch.linspace(0, 1, n)."),
                (b + t * (a - b), "start at z0: z0 + t * (z1 - z0)."),
                (a + t * b, "move along the difference: z0 + t * (z1 - z0)."),
            ], "row 0 is z0, row n - 1 is z1, in equal steps between: what fraction of the way along is row k?")
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
    print_passed(title, "3 cases; both ends are the given codes and the steps are even")


def _elbo_weight_ref(sigma: float, n_pixels: int) -> float:
    return 2.0 * sigma ** 2 / n_pixels


def check_elbo_kl_weight(fn: Callable[[float, int], Any]) -> None:
    """Check ``fn(sigma, n_pixels) -> kl_weight``: the weight that makes the course's loss the negative ELBO.

    With a Gaussian decoder ``p(x | z) = N(x̂(z), sigma² I)`` over ``n_pixels`` numbers, the negative
    ELBO of one clip is ``sum (x - x̂)² / (2 sigma²) + KL + const``. The course trains on
    ``mean (x - x̂)² + kl_weight * KL`` (mean over the n_pixels numbers). Multiplying the negative
    ELBO by ``2 sigma² / n_pixels`` gives ``mean (x - x̂)² + (2 sigma² / n_pixels) * KL + const``, so
    the two have the same minimiser when ``kl_weight = 2 sigma² / n_pixels``.
    """
    __tracebackhide__ = True
    title = "From the ELBO to kl_weight"
    need_callable(fn, "fn", "check_elbo_kl_weight(elbo_kl_weight)")
    signature = "fn(sigma, n_pixels) -> kl_weight"
    cases = [("sigma 0.1 on the lesson's 256 x 64 spectrograms", 0.1, 256 * 64),
             ("sigma 1.0 on 100 numbers", 1.0, 100),
             ("sigma 0.5 on 64 x 64 images", 0.5, 64 * 64)]
    for case, sigma, n in cases:
        got = call_answer_with_hint(title, fn, case, sigma, n, signature=signature,
                                    hint="return a number computed from sigma and n_pixels.")
        array = to_numpy(title, got, f"your result on case {case}")
        if array.size != 1:
            raise ExerciseFailed(title, f"on case {case}, expected one number, got shape {array.shape}.",
                                 "kl_weight is a single number.")
        value = float(array.reshape(()))
        want = _elbo_weight_ref(sigma, n)
        if not abs(value - want) <= 1e-6 * abs(want):
            mistakes = [
                (sigma ** 2 / n, "nearly: the Gaussian's exponent is (x - x̂)² / (2 sigma²); a factor 2 is missing."),
                (2 * sigma / n, "sigma is a standard deviation; the likelihood divides by the variance."),
                (n / (2 * sigma ** 2), "upside down: this is the factor that turns the MSE into the likelihood "
                                       "term; kl_weight is its inverse."),
                (1 / (2 * sigma ** 2 * n), "the 2 sigma² goes in the numerator: multiply the negative ELBO by "
                                           "2 sigma² / n_pixels to get the MSE alone."),
                (2 * sigma ** 2, "the course's MSE is a mean over n_pixels numbers, the ELBO's error a sum: divide "
                                 "by n_pixels too."),
                (2 * sigma ** 2 * n, "the MSE is the sum divided by n_pixels, so divide by n_pixels."),
            ]
            hint = next((h for wrong, h in mistakes if abs(value - wrong) <= 1e-6 * abs(wrong)),
                        "write the negative ELBO as sum (x - x̂)² / (2 sigma²) + KL, then scale it until its first "
                        "term is the mean (x - x̂)²; the factor left on KL is kl_weight.")
            raise ExerciseFailed(title, f"on case {case}: expected {want:.6g}, got {value:.6g}.", hint)
    print_passed(title, "3 cases; kl_weight = the factor left on KL when the ELBO's error term becomes the MSE")


BETA_QUESTIONS = {
    "largest_kl": ("which weight gives the largest KL per clip", "kl", max),
    "worst_reconstruction": ("which weight gives the worst held-out reconstruction MSE", "mse", max),
    "most_alike_reconstructions": ("which weight rebuilds different clips as the most alike pictures",
                                   "rebuilt_spread", min),
}


def _measured_table(measured: Any) -> dict[float, dict[str, float]]:
    """The experiment's results, checked: {kl_weight: {"kl", "mse", "rebuilt_spread", ...}}, two weights or more."""
    if not isinstance(measured, dict) or len(measured) < 2:
        raise CourseInputError("measured: expected the experiment's dict {kl_weight: {'kl': ..., 'mse': ..., "
                               "'rebuilt_spread': ...}} with at least two weights; run the experiment cell first.")
    table = {}
    for weight, row in measured.items():
        if not isinstance(row, dict) or not all(k in row for k in ("kl", "mse", "rebuilt_spread")):
            raise CourseInputError(f"measured: the entry for {weight!r} needs 'kl', 'mse' and 'rebuilt_spread'; "
                                   "run the experiment cell again.")
        table[float(weight)] = {k: float(v) for k, v in row.items()}
    return table


def check_beta_prediction(prediction: Any, measured: Any) -> None:
    """Compare a prediction made BEFORE the β experiment with what the experiment measured.

    ``prediction`` is a dict naming one of the tried KL weights for each question of
    :data:`BETA_QUESTIONS` (``"largest_kl"``, ``"worst_reconstruction"``, ``"most_alike_reconstructions"``);
    ``measured`` is the experiment's ``{kl_weight: {"kl", "mse", "rebuilt_spread"}}`` (``rebuilt_spread``:
    the standard deviation across clips of their reconstructions, averaged over pixels). Each answer
    must be the weight the measurement picks. Optional keys are reported, not graded, when the
    measurement has the matching column: ``"best_fd"`` (``fd``) and ``"most_varied_samples"``
    (``sample_spread``); with few samples and steps both are too noisy to grade.
    """
    __tracebackhide__ = True
    title = "Predict what the KL weight does"
    table = _measured_table(measured)
    weights = sorted(table)
    names = ", ".join(f"{w:g}" for w in weights)
    if prediction is None:
        raise ExerciseFailed(title, "not answered yet: prediction is still None.",
                             "fill in the dict in the answer cell (before looking at the results), run it, then "
                             "run the experiment and this check again.")
    if not isinstance(prediction, dict):
        raise ExerciseFailed(title, f"prediction should be a dict, got {type(prediction).__name__}.",
                             f"use the keys {sorted(BETA_QUESTIONS)}, each naming one of the weights {names}.")
    missing = [k for k in BETA_QUESTIONS if k not in prediction]
    if missing:
        raise ExerciseFailed(title, f"prediction has no answer for {missing}.",
                             f"give each of {sorted(BETA_QUESTIONS)} one of the weights {names}.")
    wrong = []
    for key, (question, column, pick) in BETA_QUESTIONS.items():
        answer = prediction[key]
        try:
            answer = float(answer)
        except (TypeError, ValueError):
            answer = None
        if answer is None or not any(_same_weight(answer, w) for w in weights):
            raise ExerciseFailed(title, f"{key}: {prediction[key]!r} is not one of the weights tried ({names}).",
                                 "name the weight itself, e.g. 1e-4.")
        truth = pick(weights, key=lambda w: table[w][column])
        values = ", ".join(f"{w:g}: {table[w][column]:.4g}" for w in weights)
        if not _same_weight(answer, truth):
            wrong.append(f"{question}: you said {answer:g}; measured {column} ({values})")
    if wrong:
        raise ExerciseFailed(title, "the measurement disagrees with " + "; ".join(wrong) + ".",
                             "look at the loss: the weight multiplies the KL only. What does the optimiser do to "
                             "the KL when it costs a lot, and what is left for the code to carry? A decoder "
                             "whose code carries nothing can only rebuild every clip as the same picture.")
    extra = ""
    for key, column, pick, what in (("best_fd", "fd", min, "best prior-sample FD"),
                                    ("most_varied_samples", "sample_spread", max, "most varied prior samples")):
        if key in prediction and all(column in table[w] for w in weights):
            best = pick(weights, key=lambda w: table[w][column])
            said = prediction[key]
            try:
                right = _same_weight(float(said), best)
            except (TypeError, ValueError):
                right = False
            extra += f"; {what} at {best:g} ({'as you said' if right else f'you said {said}'}, not graded)"
    print_passed(title, f"{len(BETA_QUESTIONS)} predictions match the measurement{extra}")


def _same_weight(a: float, b: float) -> bool:
    """Two KL weights are the same setting (relative tolerance 1e-6)."""
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b))
