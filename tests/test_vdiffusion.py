"""Tests of course_lib.diffusion.vdiffusion: schedule algebra, the v-loss, the samplers (against exact answers), training."""

from __future__ import annotations

import functools
import itertools
import math
import types

import numpy as np
import pytest
import torch

from course_lib.diffusion import vdiffusion as vd
from course_lib.synth import drum_dataset
from course_lib.training import TrainConfig, train
from course_lib.models.unet1d import UNet1D, UNet1DConfig
from course_lib.validate import CourseInputError

torch.set_num_threads(min(2, torch.get_num_threads()))
R = math.sqrt(0.5)  # cos(pi/4) = sin(pi/4)


def tiny_config(**changes) -> UNet1DConfig:
    base = {"in_channels": 1, "sample_rate": 8000, "sample_length": 1024, "channels": (8, 16, 16, 32),
            "factors": (1, 2, 2, 2), "blocks": (1, 1, 1, 1), "attention": (False, False, True, True),
            "attention_heads": 2, "attention_head_features": 8, "modulation_features": 32, "resnet_groups": 4}
    base.update(changes)
    return UNet1DConfig(**base)


class FixedOutput(torch.nn.Module):
    """A stand-in "model" that returns zeros or its input and records what it was given."""

    def __init__(self, mode: str = "zeros", num_classes: int = 0, in_channels: int = 1) -> None:
        super().__init__()
        self.mode, self.calls = mode, []
        self.config = types.SimpleNamespace(num_classes=num_classes, in_channels=in_channels, sample_length=8,
                                            class_names=("a", "b", "c")[:num_classes])

    def forward(self, x, sigma, class_labels=None):
        self.calls.append((x.clone(), sigma.clone(), None if class_labels is None else class_labels.clone()))
        return torch.zeros_like(x) if self.mode == "zeros" else x.clone()


class GaussianOracle(torch.nn.Module):
    """The exact v-predictor for data x0 ~ N(0, s²) per sample: E[v | x_sigma] = alpha*beta*(1 - s²)/V * x_sigma."""

    def __init__(self, s: float) -> None:
        super().__init__()
        self.s2 = s * s
        self.config = types.SimpleNamespace(num_classes=0, in_channels=1, sample_length=4096)

    def forward(self, x, sigma, class_labels=None):
        alpha, beta = (t.double()[:, None, None] for t in vd.alpha_beta(sigma.double()))
        return (alpha * beta * (1 - self.s2) / (alpha**2 * self.s2 + beta**2) * x.double()).float()


# ------------------------------------------------------------------------------ the schedule


def test_alpha_beta_on_the_unit_circle():
    alpha, beta = vd.alpha_beta(torch.tensor([0.0, 0.5, 1.0 / 3.0, 1.0]))
    torch.testing.assert_close(alpha, torch.tensor([1.0, R, math.sqrt(3) / 2, 0.0]), atol=1e-7, rtol=0)
    torch.testing.assert_close(beta, torch.tensor([0.0, R, 0.5, 1.0]), atol=1e-7, rtol=0)
    sigma = torch.rand(100, generator=torch.Generator().manual_seed(0))
    a, b = vd.alpha_beta(sigma)
    torch.testing.assert_close(a**2 + b**2, torch.ones(100))
    assert torch.equal(vd.sigma_schedule(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))


def test_noise_v_target_and_denoise_by_hand():
    x0 = torch.tensor([[[1.0, -1.0]]])
    noise = torch.tensor([[[0.0, 2.0]]])
    sigma = torch.tensor([0.5])
    x_sigma = vd.add_noise(x0, noise, sigma)
    v = vd.v_target(x0, noise, sigma)
    torch.testing.assert_close(x_sigma, torch.tensor([[[R, R]]]))  # R*(1 + 0), R*(-1 + 2)
    torch.testing.assert_close(v, torch.tensor([[[-R, 3 * R]]]))  # R*(0 - 1), R*(2 + 1)
    x0_back, noise_back = vd.denoise(x_sigma, v, sigma)
    torch.testing.assert_close(x0_back, x0)
    torch.testing.assert_close(noise_back, noise)
    # sigma = 0: the clean clip, and v is the noise; sigma = 1: pure noise, and v = -x0.
    torch.testing.assert_close(vd.add_noise(x0, noise, torch.tensor([0.0])), x0)
    torch.testing.assert_close(vd.v_target(x0, noise, torch.tensor([0.0])), noise)
    torch.testing.assert_close(vd.v_target(x0, noise, torch.tensor([1.0])), -x0, atol=1e-6, rtol=0)
    # One number for the whole batch works as well as one level per item.
    torch.testing.assert_close(vd.v_target(x0, noise, 0.5), v)
    torch.testing.assert_close(vd.add_noise(x0, noise, 0.5), x_sigma)
    torch.testing.assert_close(vd.denoise(x_sigma, v, 0.5)[0], x0)


def test_the_library_passes_the_lessons_checks(capsys):
    from course_lib.checks import check_denoise, check_sampler_step, check_v_target

    check_v_target(vd.v_target)
    check_denoise(vd.denoise)
    check_sampler_step(vd.sampler_step)
    assert capsys.readouterr().out.count("✅") == 3


def test_sampler_step_by_hand_and_its_noise():
    x = torch.tensor([[[1.0, -1.0]]])
    v = torch.tensor([[[0.0, 2.0]]])
    # sigma = 1 -> 0 (alpha = 0, beta = 1 -> alpha' = 1, beta' = 0): the clean estimate -v.
    torch.testing.assert_close(vd.sampler_step(x, v, 1.0, 0.0), math.cos(math.pi / 2) * x - v)
    # sigma = 0.5 -> 0.5: no step at all.
    torch.testing.assert_close(vd.sampler_step(x, v, 0.5, 0.5), x)
    # eta > 0 adds c z with z drawn from the generator after the deterministic part.
    a, b, an, bn = R, R, math.cos(math.pi / 8), math.sin(math.pi / 8)
    c = (bn / b) * math.sqrt(1 - a * a / (an * an))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    want = an * (a * x - b * v) + math.sqrt(bn * bn - c * c) * (b * x + a * v) + c * z
    got = vd.sampler_step(x, v, 0.5, 0.25, eta=1.0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, want)
    # The last step draws nothing, whatever eta.
    g = torch.Generator().manual_seed(3)
    torch.testing.assert_close(vd.sampler_step(x, v, 0.25, 0.0, eta=1.0, generator=g), vd.denoise(x, v, 0.25)[0])
    assert torch.equal(torch.randn(2, generator=g), torch.randn(2, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(CourseInputError, match="sigma_next"):
        vd.sampler_step(x, v, 0.25, 0.5)
    with pytest.raises(CourseInputError, match="sigma"):
        vd.sampler_step(x, v, 1.5, 0.5)
    with pytest.raises(CourseInputError, match="eta"):
        vd.sampler_step(x, v, 0.5, 0.25, eta=2.0)
    with pytest.raises(CourseInputError, match="v: expected a tensor shaped like x"):
        vd.sampler_step(x, v[..., :1], 0.5, 0.25)


# ------------------------------------------------------------------------------ the loss


def test_v_loss_at_hand_computed():
    x0 = torch.tensor([[[1.0, -1.0]]])
    noise = torch.tensor([[[0.0, 2.0]]])
    # Predicting 0: mean(v²) = (1/2 + 9/2) / 2 = 2.5.
    assert vd.v_loss_at(FixedOutput("zeros"), x0, torch.tensor([0.5]), noise).item() == pytest.approx(2.5)
    # Predicting x_sigma: mean((x_sigma - v)²) = ((R + R)² + (R - 3R)²) / 2 = (2 + 2) / 2 = 2.
    assert vd.v_loss_at(FixedOutput("input"), x0, torch.tensor([0.5]), noise).item() == pytest.approx(2.0)
    # At sigma = 0 the target is the noise itself: mean(noise²) = 2.
    assert vd.v_loss_at(FixedOutput("zeros"), x0, torch.tensor([0.0]), noise).item() == pytest.approx(2.0)


def test_v_loss_draws_sigma_then_noise_then_the_dropout():
    x0 = torch.randn(4, 1, 8, generator=torch.Generator().manual_seed(1))
    model = FixedOutput("input", num_classes=3)
    loss = vd.v_loss(model, (x0, torch.tensor([0, 1, 2, 1])), torch.Generator().manual_seed(42), p_uncond=0.5)
    twin = torch.Generator().manual_seed(42)
    sigma = torch.rand(4, generator=twin)
    noise = torch.randn(x0.shape, generator=twin)
    drop = torch.rand(4, generator=twin) < 0.5
    labels = torch.where(drop, torch.tensor(3), torch.tensor([0, 1, 2, 1]))
    x_seen, sigma_seen, labels_seen = model.calls[0]
    assert torch.equal(sigma_seen, sigma) and torch.equal(labels_seen, labels)
    assert 0 < int(drop.sum()) < 4  # this seed drops some items and keeps others
    torch.testing.assert_close(x_seen, vd.add_noise(x0, noise, sigma))
    torch.testing.assert_close(loss, vd.v_loss_at(FixedOutput("input"), x0, sigma, noise))


def test_v_loss_lognormal_noise_levels():
    """ln tan(sigma pi / 2) is N(ln 2 - 1.2, 1.2²): Karras et al.'s levels for unit-variance data."""
    model = FixedOutput("zeros")
    vd.v_loss(model, torch.zeros(20000, 1, 2), 7, noise_levels="lognormal")
    sigma = model.calls[0][1].double()
    log_t = torch.log(torch.tan(sigma * math.pi / 2))
    assert log_t.mean().item() == pytest.approx(math.log(2) - 1.2, abs=0.03)
    assert log_t.std().item() == pytest.approx(1.2, abs=0.03)
    assert 0 < sigma.min() and sigma.max() < 1
    uniform = FixedOutput("zeros")
    vd.v_loss(uniform, torch.zeros(20000, 1, 2), 7)
    assert uniform.calls[0][1].mean().item() == pytest.approx(0.5, abs=0.01)
    with pytest.raises(CourseInputError, match="noise_levels: expected 'uniform' or 'lognormal'"):
        vd.v_loss(model, torch.zeros(2, 1, 2), 7, noise_levels="edm")


def test_quiet_weights_count_the_tail_more():
    t = torch.arange(4096, dtype=torch.float32)
    hit = (torch.exp(-t / 400) * torch.sin(t))[None, None]  # a decaying tone: loud start, quiet tail
    w = vd.quiet_weights(hit, 1.0)
    assert w.shape == hit.shape and w.mean().item() == pytest.approx(1.0, rel=1e-5)
    assert w[..., -500:].mean() > 20 * w[..., :500].mean()  # envelope ~1 vs ~1e-4 (+ the 0.01 floor)
    torch.testing.assert_close(vd.quiet_weights(hit, 0.0), torch.ones_like(hit))
    x0, noise, sigma = hit.repeat(2, 1, 1), torch.randn(2, 1, 4096, generator=torch.Generator().manual_seed(0)), \
        torch.tensor([0.3, 0.7])
    plain = vd.v_loss_at(FixedOutput("zeros"), x0, sigma, noise)
    torch.testing.assert_close(vd.v_loss_at(FixedOutput("zeros"), x0, sigma, noise, weights=torch.ones_like(x0)), plain)
    v = vd.v_target(x0, noise, sigma)
    weighted = vd.v_loss_at(FixedOutput("zeros"), x0, sigma, noise, weights=vd.quiet_weights(x0, 1.0))
    torch.testing.assert_close(weighted, (vd.quiet_weights(x0, 1.0) * v.pow(2)).mean())
    # v_loss draws as before and only adds the weights.
    drawn = vd.v_loss(FixedOutput("zeros"), x0, 3, quiet_weighting=1.0)
    twin = torch.Generator().manual_seed(3)
    s, n = torch.rand(2, generator=twin), torch.randn(x0.shape, generator=twin)
    torch.testing.assert_close(drawn, vd.v_loss_at(FixedOutput("zeros"), x0, s, n, weights=vd.quiet_weights(x0, 1.0)))


def test_sigma_data_scales_what_is_diffused_and_what_comes_out():
    x0 = torch.tensor([[[1.0, -1.0]]])
    noise = torch.tensor([[[0.0, 2.0]]])
    scaled = FixedOutput("zeros")
    scaled.config.sigma_data = 2.0
    # The model sees and learns x0 / 2: the same as an ordinary model on x0 / 2.
    assert vd.v_loss_at(scaled, x0, torch.tensor([0.5]), noise).item() == pytest.approx(
        vd.v_loss_at(FixedOutput("zeros"), x0 / 2, torch.tensor([0.5]), noise).item())
    torch.testing.assert_close(scaled.calls[0][0], vd.add_noise(x0 / 2, noise, torch.tensor([0.5])))
    plain, twice = UNet1D(tiny_config(num_classes=0), seed=0), UNet1D(tiny_config(num_classes=0, sigma_data=0.5), seed=0)
    a = vd.sample(plain, 2, 1024, 3, 5, progress=False, clip=False)
    b = vd.sample(twice, 2, 1024, 3, 5, progress=False, clip=False)
    torch.testing.assert_close(b, 0.5 * a)
    with pytest.raises(CourseInputError, match="sigma_data: expected a positive number"):
        tiny_config(sigma_data=0)


def test_v_loss_class_dropout_extremes_and_names():
    x0 = torch.zeros(3, 1, 8)
    model = FixedOutput(num_classes=3)
    vd.v_loss(model, x0, 0, class_labels=["a", "c", "b"], p_uncond=0.0)
    vd.v_loss(model, x0, 0, class_labels=2, p_uncond=1.0)
    vd.v_loss(model, x0, 0)  # no labels: unconditional, nothing drawn for dropout
    assert model.calls[0][2].tolist() == [0, 2, 1]
    assert model.calls[1][2].tolist() == [3, 3, 3]  # all replaced by the null class
    assert model.calls[2][2] is None
    # NumPy labels (as synth.drum_dataset returns them) and NumPy names work too.
    assert vd.class_indices(model, np.array([2, 0], dtype=np.int64), 2).tolist() == [2, 0]
    assert vd.class_indices(model, np.array(["c", "a"]), 2).tolist() == [2, 0]
    assert vd.class_indices(model, np.int64(1), 3).tolist() == [1, 1, 1]
    assert vd.class_indices(model, None, 3) is None
    # An int seed is the same as a generator seeded with it.
    a = vd.v_loss(FixedOutput(), torch.ones(2, 1, 8), 7)
    b = vd.v_loss(FixedOutput(), torch.ones(2, 1, 8), torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_v_loss_bad_input():
    model = FixedOutput(num_classes=3)
    with pytest.raises(CourseInputError, match=r"\(batch, channels, samples\).*x0\[:, None\]"):
        vd.v_loss(model, torch.zeros(2, 8), 0)
    with pytest.raises(CourseInputError, match="unknown class 'tuba'"):
        vd.v_loss(model, torch.zeros(2, 1, 8), 0, class_labels=["a", "tuba"])
    with pytest.raises(CourseInputError, match="unknown class 3"):
        vd.v_loss(model, (torch.zeros(2, 1, 8), torch.tensor([0, 3])), 0)
    with pytest.raises(CourseInputError, match="p_uncond"):
        vd.v_loss(model, torch.zeros(2, 1, 8), 0, class_labels=0, p_uncond=1.5)
    with pytest.raises(CourseInputError, match="generator"):
        vd.v_loss(model, torch.zeros(2, 1, 8), "seed")
    with pytest.raises(CourseInputError, match="unconditional"):
        vd.v_loss(FixedOutput(num_classes=0), torch.zeros(2, 1, 8), 0, class_labels=0)
    with pytest.raises(CourseInputError, match=r"\(audio, labels\)"):
        vd.v_loss(model, (torch.zeros(2, 1, 8), torch.tensor([0, 1])), 0, class_labels=[0, 1])
    with pytest.raises(CourseInputError, match="waveform U-Net"):
        vd.v_loss(lambda x, s, c=None: x, torch.zeros(2, 1, 8), 0)
    with pytest.raises(CourseInputError, match="integer indices"):
        vd.v_loss(model, torch.zeros(2, 1, 8), 0, class_labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(CourseInputError, match="unknown class True"):
        vd.v_loss(model, torch.zeros(2, 1, 8), 0, class_labels=True)
    with pytest.raises(CourseInputError, match="noise: expected a tensor shaped like x0"):
        vd.v_loss_at(model, torch.zeros(2, 1, 8), torch.rand(2), torch.zeros(2, 1, 4))
    with pytest.raises(CourseInputError, match=r"sigma: .*shape \(2,\)"):
        vd.v_loss_at(model, torch.zeros(2, 1, 8), torch.rand(3), torch.zeros(2, 1, 8))


# ------------------------------------------------------------------------------ the samplers, against exact answers


def _expected_variance(s: float, steps: int, eta: float) -> tuple[float, float]:
    """Gain of the deterministic part and output variance of the sampler for N(0, s²) data, by hand."""
    s2, var, gain = s * s, 1.0, 1.0
    sig = np.linspace(1.0, 0.0, steps + 1)
    for t, t_next in itertools.pairwise(sig):
        a, b = math.cos(t * math.pi / 2), math.sin(t * math.pi / 2)
        a2, b2 = math.cos(t_next * math.pi / 2), math.sin(t_next * math.pi / 2)
        V = a * a * s2 + b * b
        c = eta * (b2 / b) * math.sqrt(max(0.0, 1 - a * a / (a2 * a2))) if t_next > 0 else 0.0
        k = a2 * a * s2 / V + math.sqrt(max(0.0, b2 * b2 - c * c)) * b / V  # x' = k x + c z
        var, gain = k * k * var + c * c, gain * k
    return gain, var


@pytest.mark.parametrize("steps", [1, 4, 100])
def test_ddim_sampler_is_the_exact_linear_map_for_gaussian_data(steps):
    model = GaussianOracle(0.5)
    out = vd.sample(model, 2, 512, steps, 3, progress=False, clip=False)
    start = torch.randn((2, 1, 512), generator=torch.Generator().manual_seed(3))
    gain, _ = _expected_variance(0.5, steps, eta=0.0)
    torch.testing.assert_close(out, gain * start, rtol=1e-4, atol=1e-6)
    if steps == 100:
        assert gain == pytest.approx(0.5, rel=0.02)  # with enough steps: std 1 -> the data's std 0.5


def test_heun_is_second_order_on_gaussian_data():
    """The exact ODE maps noise of std 1 to std s: Heun's error falls 4x per doubling of steps, DDIM's 2x."""
    model = GaussianOracle(0.5)
    start = torch.randn((2, 1, 512), generator=torch.Generator().manual_seed(3))
    err = {}
    for sampler, steps in itertools.product(("ddim", "heun"), (4, 8, 16)):
        out = vd.sample(model, 2, 512, steps, 3, progress=False, clip=False, sampler=sampler)
        err[sampler, steps] = abs(float((out / start).mean()) - 0.5)
    assert 3.5 < err["heun", 8] / err["heun", 16] < 4.5
    assert 1.7 < err["ddim", 8] / err["ddim", 16] < 2.2
    assert err["heun", 8] < err["ddim", 16] / 2  # 14 model calls beat 16
    calls = FixedOutput("zeros")
    vd.sample(calls, 1, 8, 5, 0, progress=False, sampler="heun")
    assert len(calls.calls) == 2 * 5 - 2  # no correction at the first (sigma 1) and last (sigma 0) steps


def test_heun_bad_input():
    x = torch.zeros(1, 1, 8)
    with pytest.raises(CourseInputError, match="0 < sigma_next < sigma < 1"):
        vd.heun_step(x, x, x, x, 1.0, 0.5)
    with pytest.raises(CourseInputError, match="v_next: expected a tensor shaped like x"):
        vd.heun_step(x, x, x, torch.zeros(1, 1, 4), 0.6, 0.5)
    with pytest.raises(CourseInputError, match="'heun' \\(eta=0 only\\)"):
        vd.sample(FixedOutput("zeros"), 1, 8, 4, 0, eta=0.5, sampler="heun", progress=False)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_stochastic_sampler_has_the_exact_variance_for_gaussian_data(eta):
    model = GaussianOracle(0.5)
    out = vd.sample(model, 8, 4096, 10, 4, eta=eta, progress=False, clip=False)
    _, var = _expected_variance(0.5, 10, eta)
    assert out.var().item() == pytest.approx(var, rel=0.04)  # 32 768 values: sampling error ~0.8 %
    start = torch.randn((8, 1, 4096), generator=torch.Generator().manual_seed(4))
    gain, _ = _expected_variance(0.5, 10, 0.0)
    assert (out - gain * start).abs().mean() > 0.05  # fresh noise was added: not the DDIM result
    assert _expected_variance(0.5, 1000, eta)[1] == pytest.approx(0.25, rel=0.01)  # many steps: the data's variance


def test_one_step_with_guidance_by_hand():
    model = UNet1D(tiny_config(sample_length=64), seed=0).eval()
    out = vd.sample(model, 2, 64, 1, 9, class_labels=[1, 3], guidance_scale=3.0, progress=False, clip=False)
    x = torch.randn((2, 1, 64), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        v_class = model(x, torch.ones(2), torch.tensor([1, 3]))
        v_null = model(x, torch.ones(2))
    v = v_null + 3.0 * (v_class - v_null)
    # One step from sigma=1 (alpha=cos(pi/2), beta=1) to sigma=0 returns x0_hat = alpha*x - beta*v.
    torch.testing.assert_close(out, math.cos(math.pi / 2) * x - v, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ sampling a U-Net


@pytest.fixture(scope="module")
def unet():
    return UNet1D(tiny_config(sample_length=128), seed=0).eval()


def test_sampling_is_seeded_and_deterministic(unet):
    a = vd.sample(unet, 2, None, 4, torch.Generator().manual_seed(0), class_labels="kick", progress=False)
    b = vd.sample(unet, 2, 128, 4, 0, class_labels=0, progress=False)
    c = vd.sample(unet, 2, 128, 4, 1, class_labels=0, progress=False)
    assert a.shape == (2, 1, 128) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1.0  # clipped
    s1 = vd.sample(unet, 2, 128, 4, 0, class_labels=0, eta=1.0, progress=False)
    s2 = vd.sample(unet, 2, 128, 4, 0, class_labels=0, eta=1.0, progress=False)
    assert torch.equal(s1, s2) and (s1 - a).abs().mean() > 1e-3


def test_sample_without_a_seed_follows_the_global_generator(unet):
    torch.manual_seed(5)
    a = vd.sample(unet, 1, 128, 2, None, class_labels=0, eta=1.0, progress=False)
    torch.manual_seed(5)
    b = vd.sample(unet, 1, 128, 2, class_labels=0, eta=1.0, progress=False)
    assert torch.equal(a, b)
    torch.manual_seed(5)
    seed = int(torch.randint(0, 2**31 - 1, (1,)))  # the seed settings.make_generator draws
    assert torch.equal(a, vd.sample(unet, 1, 128, 2, seed, class_labels=0, eta=1.0, progress=False))


def test_class_and_guidance_change_the_samples(unet):
    kick = vd.sample(unet, 2, 128, 3, 0, class_labels="kick", progress=False, clip=False)
    hihat = vd.sample(unet, 2, 128, 3, 0, class_labels="hihat", progress=False, clip=False)
    none = vd.sample(unet, 2, 128, 3, 0, progress=False, clip=False)
    guided = vd.sample(unet, 2, 128, 3, 0, class_labels="kick", guidance_scale=4.0, progress=False, clip=False)
    unguided = vd.sample(unet, 2, 128, 3, 0, class_labels="kick", guidance_scale=0.0, progress=False, clip=False)
    for other in (hihat, none, guided):
        assert (kick - other).abs().mean() > 1e-3
    torch.testing.assert_close(unguided, none, rtol=1e-4, atol=1e-5)  # scale 0 = the unconditional model
    mixed = vd.sample(unet, 2, 128, 3, 0, class_labels=["kick", "hihat"], progress=False, clip=False)
    torch.testing.assert_close(mixed[0], kick[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mixed[1], hihat[1], rtol=1e-4, atol=1e-5)


def test_sample_bad_input(unet):
    with pytest.raises(CourseInputError, match=r"length: 100 is not a multiple of 8.*e\.g\. 96"):
        vd.sample(unet, 1, 100, 2, 0, progress=False)
    with pytest.raises(CourseInputError, match="unknown class 'tuba'.*'kick'"):
        vd.sample(unet, 1, 64, 2, 0, class_labels="tuba", progress=False)
    with pytest.raises(CourseInputError, match="unknown class 4"):
        vd.sample(unet, 2, 64, 2, 0, class_labels=[0, 4], progress=False)
    with pytest.raises(CourseInputError, match="one label for all items or 2 labels"):
        vd.sample(unet, 2, 64, 2, 0, class_labels=[0, 1, 2], progress=False)
    with pytest.raises(CourseInputError, match="guidance needs class_labels"):
        vd.sample(unet, 1, 64, 2, 0, guidance_scale=3.0, progress=False)
    with pytest.raises(CourseInputError, match="eta"):
        vd.sample(unet, 1, 64, 2, 0, eta=1.5, progress=False)
    with pytest.raises(CourseInputError, match="steps"):
        vd.sample(unet, 1, 64, 0, 0, progress=False)
    with pytest.raises(CourseInputError, match="n: must be at least 1"):
        vd.sample(unet, 0, 64, 2, 0, progress=False)
    with pytest.raises(CourseInputError, match="generator"):
        vd.sample(unet, 1, 64, 2, -1, progress=False)


# ------------------------------------------------------------------------------ training


def test_a_short_training_run_lowers_the_loss(tmp_path):
    """60 AdamW steps through course_lib.training on (audio, label) batches of drum hits."""
    audio, labels = drum_dataset(8, seed=0, sample_rate=8000, length=1024)
    x, y = torch.from_numpy(audio)[:, None], torch.from_numpy(labels)
    data = torch.utils.data.TensorDataset(x, y)
    # A fixed evaluation: 32 noise levels spread over (0, 1), fixed noise, the true classes.
    sigma = torch.linspace(0.05, 0.95, 32)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(123))

    def held_out_loss(m) -> float:
        with torch.no_grad():
            return vd.v_loss_at(m.eval(), x, sigma, noise, y).item()

    model = UNet1D(tiny_config(), seed=0)
    before = held_out_loss(model)
    zero = vd.v_loss_at(FixedOutput(), x, sigma, noise).item()  # what predicting v = 0 scores
    config = TrainConfig(output_dir=str(tmp_path / "run"), max_steps=60, batch_size=8, lr=2e-3, seed=0,
                         checkpoint_every=1000)
    result = train(model, data, functools.partial(vd.v_loss, p_uncond=0.1), config, progress=False)
    after = held_out_loss(model)
    assert result.steps == 60 and len(result.losses) == 60 and all(np.isfinite(result.losses))
    assert after < 0.5 * before and after < 0.5 * zero, (before, after, zero)


def test_training_resumes_exactly_after_an_interruption(tmp_path):
    """3 steps, a "crash", then 3 more from the checkpoint: the same losses and weights as 6 in one go."""
    audio, labels = drum_dataset(4, seed=1, sample_rate=8000, length=1024)
    data = torch.utils.data.TensorDataset(torch.from_numpy(audio)[:, None], torch.from_numpy(labels))
    common = dict(batch_size=4, lr=1e-3, seed=3, checkpoint_every=1, ema_decay=0.9)
    whole = UNet1D(tiny_config(), seed=0)
    one_go = train(whole, data, vd.v_loss, TrainConfig(output_dir=str(tmp_path / "a"), max_steps=6, **common),
                   progress=False)
    train(UNet1D(tiny_config(), seed=0), data, vd.v_loss,
          TrainConfig(output_dir=str(tmp_path / "b"), max_steps=3, **common), progress=False)
    restarted = UNet1D(tiny_config(), seed=7)  # different initial weights: everything must come from the checkpoint
    resumed = train(restarted, data, vd.v_loss, TrainConfig(output_dir=str(tmp_path / "b"), max_steps=6, **common),
                    progress=False)
    assert resumed.resumed_from == 3 and resumed.steps == 6
    assert resumed.losses == one_go.losses
    for (name, a), (_, b) in zip(whole.state_dict().items(), restarted.state_dict().items()):
        assert torch.equal(a, b), name
    for a, b in zip(one_go.ema_model.parameters(), resumed.ema_model.parameters()):
        assert torch.equal(a, b)
