"""Lesson 06's checks: right answers pass; the usual wrong answers fail with the matching hint."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.checks import (
    ExerciseFailed,
    check_beta_prediction,
    check_elbo_kl_weight,
    check_interpolate,
    check_kl_per_clip,
    check_reparameterise,
    check_vae_objective,
)
from course_lib.errors import CourseInputError
from course_lib.models.vae import SpectrogramVAE, kl_divergence


def reparameterise(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def kl_per_clip(mu, logvar):
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(dim=1)


def vae_objective(recon, x, mu, logvar, kl_weight):
    return F.mse_loss(recon, x) + kl_weight * kl_per_clip(mu, logvar).mean()


def interpolate(z0, z1, n):
    t = torch.linspace(0, 1, n)[:, None]
    return z0 + t * (z1 - z0)


def test_right_answers_pass(capsys):
    check_reparameterise(reparameterise)
    check_kl_per_clip(kl_per_clip)
    check_vae_objective(vae_objective)
    check_interpolate(interpolate)
    assert capsys.readouterr().out.count("✅") == 4


def test_the_checks_agree_with_course_lib():
    """The answers the checks accept are what course_lib.models.vae computes."""
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn((4, 128), generator=gen), torch.randn((4, 128), generator=gen)
    assert torch.allclose(kl_per_clip(mu, logvar), kl_divergence(mu, logvar, reduction="none"))
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(5))
    z = SpectrogramVAE.reparameterise(mu, logvar, torch.Generator().manual_seed(5))
    assert torch.allclose(z, reparameterise(mu, logvar, eps))


@pytest.mark.parametrize("wrong, hint", [
    (lambda m, lv, e: m + torch.exp(lv) * e, "exp\\(logvar\\) is the variance"),
    (lambda m, lv, e: m + lv * e, "logvar is a logarithm"),
    (lambda m, lv, e: torch.exp(lv / 2) * e, "start from the mean"),
    (lambda m, lv, e: m + torch.exp(-lv / 2) * e, "larger logvar means more spread"),
    (lambda m, lv, e: (m + torch.exp(lv / 2) * e).detach(), "no gradient reaches"),
    (lambda m, lv, e: torch.tensor((m + torch.exp(lv / 2) * e).tolist()), "no gradient reaches"),
    (lambda m, lv, e: m[:1] + torch.exp(lv[:1] / 2) * e[:1], "expected shape"),
])
def test_reparameterise_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_reparameterise(wrong)


def test_reparameterise_in_place_edit_is_caught():
    def in_place(mu, logvar, eps):
        eps.mul_(torch.exp(logvar.detach() / 2))
        return mu + eps * 1.0 + 0 * logvar

    with pytest.raises(ExerciseFailed, match="changed its input eps"):
        check_reparameterise(in_place)


@pytest.mark.parametrize("wrong, hint", [
    (lambda m, lv: 2 * kl_per_clip(m, lv), "factor 0.5"),
    (lambda m, lv: -kl_per_clip(m, lv), "sign is flipped"),
    (lambda m, lv: kl_per_clip(m, lv) / m.shape[1], "do not average them"),
    (lambda m, lv: 0.5 * (m.square() + (lv / 2).exp() - 1 - lv).sum(dim=1), "not the standard deviation"),
    (lambda m, lv: 0.5 * (m.square() + lv.exp() - 1 + lv).sum(dim=1), "- logvar at the end"),
    (lambda m, lv: 0.5 * (m + lv.exp() - 1 - lv).sum(dim=1), "enters squared"),
    (lambda m, lv: kl_per_clip(m, lv).mean(), "not one number for the batch"),
    (lambda m, lv: 0.5 * (m.square() + lv.exp() - 1 - lv), "sum the per-number terms"),
])
def test_kl_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_kl_per_clip(wrong)


@pytest.mark.parametrize("wrong, hint", [
    (lambda r, x, m, lv, w: F.mse_loss(r, x) + kl_per_clip(m, lv).mean(), "multiply the KL by kl_weight"),
    (lambda r, x, m, lv, w: w * F.mse_loss(r, x) + kl_per_clip(m, lv).mean(), "not on the reconstruction"),
    (lambda r, x, m, lv, w: F.mse_loss(r, x) + w * kl_per_clip(m, lv).sum(), "do not sum it"),
    (lambda r, x, m, lv, w: F.mse_loss(r, x, reduction="sum") + w * kl_per_clip(m, lv).mean(), "mean, not sum"),
    (lambda r, x, m, lv, w: F.mse_loss(r, x) - w * kl_per_clip(m, lv).mean(), "it is a penalty"),
    (lambda r, x, m, lv, w: F.mse_loss(r, x) + w * kl_per_clip(m, lv), "a single number"),
])
def test_vae_objective_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_vae_objective(wrong)


@pytest.mark.parametrize("wrong, hint", [
    (lambda a, b, n: interpolate(a, b, n).flip(0), "start at z0"),
    (lambda a, b, n: a + torch.linspace(0, 1, n + 1)[:-1, None] * (b - a), "include both ends"),
    (lambda a, b, n: a + torch.linspace(0, 1, n)[:, None] * b, "move along the difference"),
    (lambda a, b, n: interpolate(a, b, n).T, "not \\(D, n\\)"),
])
def test_interpolate_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_interpolate(wrong)


def test_numpy_interpolation_is_accepted():
    """The path needs no gradients: a NumPy answer of the right values passes."""
    check_interpolate(lambda a, b, n: np.linspace(a.numpy(), b.numpy(), n))


# ----------------------------------------------------------------------------- exercise 5: the ELBO's kl_weight


def elbo_kl_weight(sigma, n_pixels):
    return 2 * sigma**2 / n_pixels


def test_elbo_kl_weight_right_answer_passes(capsys):
    check_elbo_kl_weight(elbo_kl_weight)
    assert "✅" in capsys.readouterr().out


def test_elbo_kl_weight_makes_the_course_loss_a_rescaled_negative_elbo():
    """The weight the check asks for really turns vae_objective into (2 sigma² / P) * (negative ELBO - const)."""
    gen = torch.Generator().manual_seed(3)
    x = torch.rand((3, 1, 16, 8), generator=gen)
    recon = torch.rand((3, 1, 16, 8), generator=gen)
    mu, logvar = torch.randn((3, 6), generator=gen), torch.randn((3, 6), generator=gen)
    sigma, p = 0.3, 16 * 8
    neg_elbo = ((x - recon).square().sum(dim=(1, 2, 3)) / (2 * sigma**2) + kl_per_clip(mu, logvar)).mean()
    scaled = 2 * sigma**2 / p * neg_elbo
    assert torch.allclose(scaled, vae_objective(recon, x, mu, logvar, elbo_kl_weight(sigma, p)), rtol=1e-5)


@pytest.mark.parametrize("wrong, hint", [
    (lambda s, n: s**2 / n, "a factor 2 is"),
    (lambda s, n: 2 * s / n, "divides by the variance"),
    (lambda s, n: n / (2 * s**2), "upside down"),
    (lambda s, n: 1 / (2 * s**2 * n), "goes in the numerator"),
    (lambda s, n: 2 * s**2, "divide by n_pixels too"),
    (lambda s, n: 3.0, "scale it until its first term"),
    (lambda s, n: [1.0, 2.0], "one number"),
])
def test_elbo_kl_weight_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_elbo_kl_weight(wrong)


def test_elbo_kl_weight_stub_and_non_callable():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="not answered yet"):
        check_elbo_kl_weight(stub)
    with pytest.raises(CourseInputError, match="without calling it"):
        check_elbo_kl_weight(0.1)


# ----------------------------------------------------------------------------- exercise 6: predict, then measure

MEASURED = {1e-6: {"kl": 170.0, "mse": 0.013, "rebuilt_spread": 0.068, "sample_spread": 0.02, "fd": 120.0},
            1e-4: {"kl": 20.0, "mse": 0.015, "rebuilt_spread": 0.060, "sample_spread": 0.07, "fd": 48.0},
            1e-2: {"kl": 0.05, "mse": 0.023, "rebuilt_spread": 0.003, "sample_spread": 0.018, "fd": 70.0}}
RIGHT = {"largest_kl": 1e-6, "worst_reconstruction": 1e-2, "most_alike_reconstructions": 1e-2}


def test_beta_prediction_right_answer_passes(capsys):
    check_beta_prediction(dict(RIGHT, best_fd=1e-4, most_varied_samples=1e-6), MEASURED)
    out = capsys.readouterr().out
    assert "✅" in out and "best prior-sample FD at 0.0001 (as you said" in out
    assert "most varied prior samples at 0.0001 (you said 1e-06, not graded)" in out


def test_beta_prediction_follows_the_measurement_not_a_fixed_answer(capsys):
    """The truth is whatever the learner's run measured: swap the numbers and the other answers pass."""
    swapped = {1e-6: dict(MEASURED[1e-2]), 1e-4: dict(MEASURED[1e-4]), 1e-2: dict(MEASURED[1e-6])}
    check_beta_prediction({"largest_kl": 1e-2, "worst_reconstruction": 1e-6, "most_alike_reconstructions": 1e-6},
                          swapped)
    with pytest.raises(ExerciseFailed, match="measurement disagrees"):
        check_beta_prediction(RIGHT, swapped)


@pytest.mark.parametrize("prediction, problem", [
    (None, "not answered yet"),
    ([1e-6, 1e-2, 1e-2], "should be a dict"),
    ({"largest_kl": 1e-6}, "no answer for"),
    (dict(RIGHT, largest_kl=1e-3), "not one of the weights tried"),
    (dict(RIGHT, largest_kl="small"), "not one of the weights tried"),
    (dict(RIGHT, largest_kl=1e-2), "largest KL per clip: you said 0.01"),
    (dict(RIGHT, worst_reconstruction=1e-6, most_alike_reconstructions=1e-6), "worst held-out reconstruction"),
])
def test_beta_prediction_wrong_answers(prediction, problem):
    with pytest.raises(ExerciseFailed, match=problem) as err:
        check_beta_prediction(prediction, MEASURED)
    assert err.value.hint


def test_beta_prediction_hint_points_the_way_without_the_answer():
    with pytest.raises(ExerciseFailed) as err:
        check_beta_prediction(dict(RIGHT, largest_kl=1e-2), MEASURED)
    assert "1e-06" not in err.value.hint and "0.01" not in err.value.hint


@pytest.mark.parametrize("measured", [None, {}, {1e-6: {"kl": 1.0}, 1e-4: {"kl": 1.0}},
                                      {1e-6: {"kl": 1, "mse": 1, "rebuilt_spread": 1}}])
def test_beta_prediction_needs_the_experiment(measured):
    with pytest.raises(CourseInputError, match="measured"):
        check_beta_prediction(RIGHT, measured)


def test_reparameterise_under_no_grad_names_no_grad():
    """Exercise 1's colleague computes z under torch.no_grad(): fixing the value alone is not enough."""
    def half_fixed(mu, logvar, eps):
        with torch.no_grad():
            return mu + torch.exp(logvar / 2) * eps

    with pytest.raises(ExerciseFailed, match="no gradient reaches") as err:
        check_reparameterise(half_fixed)
    assert "torch.no_grad()" in err.value.hint


def test_the_colleagues_reparameterise_fails_on_its_values_first():
    def colleague(mu, logvar, eps):
        with torch.no_grad():
            return mu + logvar * eps

    with pytest.raises(ExerciseFailed, match="logvar is a logarithm"):
        check_reparameterise(colleague)
