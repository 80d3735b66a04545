"""Lesson 06's checks: right answers pass; the usual wrong answers fail with the matching hint."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.checks import (
    ExerciseFailed,
    check_interpolate,
    check_kl_per_clip,
    check_reparameterise,
    check_vae_objective,
)
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
