"""Lesson 02 exercise checks: right answers pass, the usual wrong ones fail with the right hint."""

import math

import pytest
import torch

from course_lib import checks
from course_lib.checks import ExerciseFailed


def _per_image(alpha_bar, x):
    return torch.as_tensor(alpha_bar, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def right_add_noise(x0, noise, alpha_bar):
    a = _per_image(alpha_bar, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def test_add_noise(capsys):
    checks.check_add_noise(right_add_noise)
    assert "✅" in capsys.readouterr().out


def test_add_noise_agrees_with_the_scheduler_it_is_checked_against():
    # The check's edge cases (alpha_bar 1 and 0) use the formula; the others diffusers. Both agree.
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=1000)
    x0, noise = torch.rand(3, 1, 4, 4) * 2 - 1, torch.randn(3, 1, 4, 4)
    steps = torch.tensor([10, 400, 990])
    torch.testing.assert_close(right_add_noise(x0, noise, scheduler.alphas_cumprod[steps]),
                               scheduler.add_noise(x0, noise, steps))


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (lambda x0, n, a: _per_image(a, x0) * x0 + (1 - _per_image(a, x0)) * n, "scales are square roots"),
        (lambda x0, n, a: _per_image(a, x0).sqrt() * x0 + (1 - _per_image(a, x0)) * n, "not by 1 - alpha_bar"),
        (lambda x0, n, a: _per_image(a, x0).sqrt() * x0 + (1 - _per_image(a, x0).sqrt()) * n, "not by 1 - sqrt"),
        (lambda x0, n, a: right_add_noise(n, x0, a), "swapped"),
        # Broadcasting a per-image alpha_bar (N,) against the last axis fails on the batch case.
        (lambda x0, n, a: torch.as_tensor(a) ** 0.5 * x0 + (1 - torch.as_tensor(a)) ** 0.5 * n, "reshape a tensor to"),
        # torch.sqrt on a float raises TypeError: the hint says ** 0.5 works on both.
        (lambda x0, n, a: torch.sqrt(a) * x0 + torch.sqrt(1 - a) * n, r"\*\* 0.5"),
    ],
)
def test_add_noise_wrong_answers(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_add_noise(wrong)


def test_add_noise_in_place_fails():
    def in_place(x0, noise, alpha_bar):
        a = _per_image(alpha_bar, x0)
        x0.mul_(a.sqrt())
        return x0.add_((1 - a).sqrt() * noise)

    with pytest.raises(ExerciseFailed, match="changed its input x0"):
        checks.check_add_noise(in_place)


def right_ddim_step(x_t, eps, alpha_bar_t, alpha_bar_prev):
    x0 = (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t ** 0.5
    return alpha_bar_prev ** 0.5 * x0 + (1 - alpha_bar_prev) ** 0.5 * eps


def test_ddim_step(capsys):
    checks.check_ddim_step(right_ddim_step)
    assert "✅" in capsys.readouterr().out


def test_ddim_step_in_float64_passes_too():
    checks.check_ddim_step(lambda x, e, a, p: right_ddim_step(x.double(), e.double(), float(a), float(p)))


def test_ddim_step_matches_the_pipelines_inversion_formula():
    # The pipeline's encode() runs the same update with the alphas exchanged; one step back and forth
    # with the same eps returns the start exactly.
    x = torch.randn(2, 1, 8, 8)
    eps = torch.randn(2, 1, 8, 8)
    a_t, a_prev = torch.tensor(0.3), torch.tensor(0.7)
    there = right_ddim_step(x, eps, a_t, a_prev)
    back = right_ddim_step(there, eps, a_prev, a_t)
    torch.testing.assert_close(back, x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (lambda x, e, a, p: right_ddim_step(x, e, p, a), "swapped"),
        (lambda x, e, a, p: (x - (1 - a) ** 0.5 * e) / a ** 0.5, "predicted clean image"),
        (lambda x, e, a, p: p ** 0.5 * x + (1 - p) ** 0.5 * e, "re-noise the predicted clean image, not x_t"),
        (lambda x, e, a, p: p ** 0.5 * (x - (1 - a) ** 0.5 * e) / a ** 0.5 + (1 - a) ** 0.5 * e, "new level"),
        (lambda x, e, a, p: p * (x - (1 - a) * e) / a + (1 - p) * e, "square roots"),
    ],
)
def test_ddim_step_wrong_answers(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_ddim_step(wrong)


def test_ddim_step_in_place_fails():
    def in_place(x_t, eps, a, p):
        x_t -= (1 - a) ** 0.5 * eps
        x_t /= a ** 0.5
        return p ** 0.5 * x_t + (1 - p) ** 0.5 * eps

    with pytest.raises(ExerciseFailed, match="changed its input x_t"):
        checks.check_ddim_step(in_place)


def right_ddim_eta_step(x, e, a, p, eta, z):
    x0 = (x - (1 - a) ** 0.5 * e) / a ** 0.5
    sigma = eta * ((1 - p) / (1 - a) * (1 - a / p)) ** 0.5
    return p ** 0.5 * x0 + (1 - p - sigma ** 2) ** 0.5 * e + sigma * z


def broken_ddim_eta_step(x, e, a, p, eta, z):
    # the lesson's broken step: sigma is a variance, not a standard deviation
    x0 = (x - (1 - a) ** 0.5 * e) / a ** 0.5
    sigma = eta * ((1 - p) / (1 - a) * (1 - a / p))
    return p ** 0.5 * x0 + (1 - p - sigma ** 2) ** 0.5 * e + sigma * z


def test_fixed_ddim_step(capsys):
    checks.check_fixed_ddim_step(right_ddim_eta_step)
    assert "✅" in capsys.readouterr().out


def test_fixed_ddim_step_agrees_with_the_scheduler_and_the_broken_one_does_not():
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(clip_sample=False)
    scheduler.set_timesteps(10)
    x, e, z = torch.randn(3, 2, 1, 4, 4)
    a, p = scheduler.alphas_cumprod[500], scheduler.alphas_cumprod[400]
    want = scheduler.step(e, 500, x, eta=1.0, variance_noise=z).prev_sample
    torch.testing.assert_close(right_ddim_eta_step(x, e, a, p, 1.0, z), want)
    assert not torch.allclose(broken_ddim_eta_step(x, e, a, p, 1.0, z), want, atol=1e-3)
    # at eta = 0 the broken step is right: the bug only shows once the sampler adds noise
    torch.testing.assert_close(broken_ddim_eta_step(x, e, a, p, 0.0, z),
                               scheduler.step(e, 500, x, eta=0.0).prev_sample)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (broken_ddim_eta_step, "standard deviation or a variance"),
        (lambda x, e, a, p, eta, z: right_ddim_eta_step(x, e, a, p, eta, 0 * z), r"fresh noise sigma \* z is missing"),
        (lambda x, e, a, p, eta, z: right_ddim_eta_step(x, e, a, p, eta, z) - right_ddim_eta_step(x, e, a, p, eta, 0 * z)
         + right_ddim_eta_step(x, e, a, p, 0.0, z), "fresh noise"),
        (lambda x, e, a, p, eta, z: right_ddim_eta_step(x, e, a, p, eta, z) + 0.1, "broke the deterministic part"),
        (lambda x, e, a, p, eta, z: "an image", "not numeric"),
    ],
)
def test_fixed_ddim_step_wrong_answers(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_fixed_ddim_step(wrong)


def test_fixed_ddim_step_without_room_for_the_noise_fails():
    def no_room(x, e, a, p, eta, z):
        x0 = (x - (1 - a) ** 0.5 * e) / a ** 0.5
        sigma = eta * ((1 - p) / (1 - a) * (1 - a / p)) ** 0.5
        return p ** 0.5 * x0 + (1 - p) ** 0.5 * e + sigma * z

    with pytest.raises(ExerciseFailed, match="make room for the fresh noise"):
        checks.check_fixed_ddim_step(no_room)


def test_fixed_ddim_step_stub_is_not_answered_yet():
    def stub(*args):
        raise NotImplementedError("Exercise: write your answer here")

    with pytest.raises(ExerciseFailed, match="not answered yet"):
        checks.check_fixed_ddim_step(stub)


RIGHT_CALLS = {"a": 20, "b": 20, "c": 5, "d": 20, "e": 40}


def test_unet_calls(capsys):
    checks.check_unet_calls(dict(RIGHT_CALLS))
    out = capsys.readouterr().out
    assert "✅" in out and "(e) 40" in out


@pytest.mark.parametrize(
    ("predicted", "match"),
    [
        ({k: None for k in RIGHT_CALLS}, r"not answered yet: no prediction for run \(a\), run \(b\), run \(c\), run \(d\), run \(e\)"),
        ({**RIGHT_CALLS, "b": 160}, r"(?s)4 of 5 predictions.*\(b\).*you predicted 160.*whole batch"),
        ({**RIGHT_CALLS, "c": 20}, r"(?s)\(c\).*add_noise"),
        ({**RIGHT_CALLS, "d": 10}, r"(?s)\(d\).*no network"),
        ({**RIGHT_CALLS, "e": 20}, r"(?s)\(e\).*walks them down again"),
        ({**RIGHT_CALLS, "a": 2.5}, "whole number"),
        ({**RIGHT_CALLS, "f": 3}, "unknown run label"),
        ([20, 20, 5, 20, 40], "expected a dict"),
    ],
)
def test_unet_calls_wrong_predictions(predicted, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_unet_calls(predicted)


def test_unet_calls_accepts_whole_floats():
    checks.check_unet_calls({**RIGHT_CALLS, "a": 20.0})


def right_slerp(a, b, t):
    cos = torch.clamp(torch.dot(a.flatten(), b.flatten()) / (a.norm() * b.norm()), -1.0, 1.0)
    theta = torch.acos(cos)
    if torch.sin(theta) < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)


def test_slerp(capsys):
    checks.check_slerp(right_slerp)
    out = capsys.readouterr().out
    assert "✅" in out
    halfway = float(out.split("norm is ")[1].split("×")[0])
    assert 0.95 < halfway < 1.05  # lerp would give about 0.71


def test_slerp_agrees_with_course_lib():
    from course_lib.diffusion import slerp

    checks.check_slerp(slerp)


def _no_fallback(a, b, t):
    cos = torch.dot(a.flatten(), b.flatten()) / (a.norm() * b.norm())
    theta = torch.acos(cos)
    return (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)


def _per_item(a, b, t):
    return torch.stack([right_slerp(a[i], b[i], t) for i in range(a.shape[0])])


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (lambda a, b, t: (1 - t) * a + t * b, "straight line"),
        (lambda a, b, t: right_slerp(b, a, t), "t = 0 must give a"),
        (_no_fallback, "NaN"),
        (_per_item, "one angle between the whole tensors"),
        (lambda a, b, t: right_slerp(a, b, t).flatten(), "combine the original tensors"),
    ],
)
def test_slerp_wrong_answers(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_slerp(wrong)


def test_slerp_unnormalised_cosine_fails():
    # Forgetting to divide by the norms makes cos > 1 for noise: clamped to 1, it degenerates to lerp.
    def unnormalised(a, b, t):
        theta = torch.acos(torch.clamp(torch.dot(a.flatten(), b.flatten()), -1.0, 1.0))
        if torch.sin(theta) < 1e-6:
            return (1 - t) * a + t * b
        return (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)

    with pytest.raises(ExerciseFailed):
        checks.check_slerp(unnormalised)


def right_keep_known(x, x0_noisy, left, right):
    out = x.clone()
    width = x.shape[-1]
    out[..., :left] = x0_noisy[..., :left]
    out[..., width - right:] = x0_noisy[..., width - right:]
    return out


def test_keep_known(capsys):
    checks.check_keep_known(right_keep_known)
    assert "✅" in capsys.readouterr().out


def test_keep_known_matches_the_pipelines_masking():
    # The pipeline keeps columns [0, left) and [width - right, width) of the re-noised clip; so does the answer.
    x, known = torch.zeros(1, 1, 2, 6), torch.ones(1, 1, 2, 6)
    out = right_keep_known(x, known, 2, 1)
    assert out[0, 0, 0].tolist() == [1, 1, 0, 0, 0, 1]
    assert x.sum() == 0


def _minus_zero(x, x0_noisy, left, right):
    out = x.clone()
    out[..., :left] = x0_noisy[..., :left]
    out[..., -right:] = x0_noisy[..., -right:]
    return out


def _in_place(x, x0_noisy, left, right):
    width = x.shape[-1]
    x[..., :left] = x0_noisy[..., :left]
    x[..., width - right:] = x0_noisy[..., width - right:]
    return x


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (_minus_zero, r"x\[\.\.\., -0:\]"),
        (_in_place, "changed its input x"),
        (lambda x, k, left, right: right_keep_known(x, k, right, left), "left and right are swapped"),
        (lambda x, k, left, right: right_keep_known(x, k, left, x.shape[-1] - right), r"not columns \[right, width\)"),
        (lambda x, k, left, right: right_keep_known(k, x, left, right), "x and x0_noisy are swapped"),
        (lambda x, k, left, right: x if left == right == 0 else right_keep_known(x, k, left, right),
         "returned its input tensor itself"),
        (lambda x, k, left, right: right_keep_known(x, k, left, right)[0], "expected shape"),
    ],
)
def test_keep_known_wrong_answers(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_keep_known(wrong)


@pytest.mark.parametrize(
    "check", [checks.check_add_noise, checks.check_ddim_step, checks.check_slerp, checks.check_keep_known]
)
def test_non_numeric_result_fails_clearly(check):
    with pytest.raises(ExerciseFailed, match="not numeric|could not be read"):
        check(lambda *args: "an image")


def test_failure_names_the_case_and_worst_element():
    with pytest.raises(ExerciseFailed) as info:
        checks.check_add_noise(lambda x0, n, a: right_add_noise(x0, n, a) + 0.5)
    message = str(info.value)
    assert "timestep 500" in message
    assert math.isclose(float(message.split("largest difference ")[1].split(" ")[0]), 0.5, rel_tol=1e-4)
