"""Lesson 05's checks: right answers pass; the usual wrong answers fail with the matching hint."""

import math

import numpy as np
import pytest
import torch

from course_lib.checks import (
    ExerciseFailed,
    check_denoise,
    check_guidance_guess,
    check_rms_of_v,
    check_sampler_step,
    check_to_24bit,
    check_v_target,
    guidance_mystery,
)
from course_lib.checks.lesson05 import _guided_is_a
from course_lib.drums import generate_drums
from course_lib.models.unet1d import UNet1D, UNet1DConfig


def _angles(sigma):
    a = (torch.as_tensor(sigma) * math.pi / 2).reshape(-1, 1, 1)
    return torch.cos(a), torch.sin(a)


def v_target(x0, noise, sigma):
    a, b = _angles(sigma)
    return a * noise - b * x0


def denoise(x, v, sigma):
    a, b = _angles(sigma)
    return a * x - b * v, b * x + a * v


def sampler_step(x, v, s, s_next):
    a, b = math.cos(s * math.pi / 2), math.sin(s * math.pi / 2)
    an, bn = math.cos(s_next * math.pi / 2), math.sin(s_next * math.pi / 2)
    return an * (a * x - b * v) + bn * (b * x + a * v)


def rms_of_v(clip_rms, sigma):
    a, b = math.cos(sigma * math.pi / 2), math.sin(sigma * math.pi / 2)
    return math.sqrt(a**2 + b**2 * clip_rms**2)


def broken_sampler_step(x, v, s, s_next):
    """The exercise's broken step: alpha and beta swapped in both estimates."""
    a, b = math.cos(s * math.pi / 2), math.sin(s * math.pi / 2)
    an, bn = math.cos(s_next * math.pi / 2), math.sin(s_next * math.pi / 2)
    return an * (b * x - a * v) + bn * (a * x + b * v)


def to_24bit(audio):
    return np.clip(np.round(np.asarray(audio, np.float64) * 2**23), -(2**23), 2**23 - 1).astype(np.int32)


def test_right_answers_pass(capsys):
    check_v_target(v_target)
    check_denoise(denoise)
    check_sampler_step(sampler_step)
    check_rms_of_v(rms_of_v)
    check_rms_of_v(lambda r, s: torch.tensor(rms_of_v(r, s)))     # a 0-d tensor is a number too
    check_guidance_guess("A" if _guided_is_a(0) else "B", seed=0)
    check_guidance_guess(" b " if not _guided_is_a(3) else "a", seed=3)
    check_to_24bit(to_24bit)
    assert capsys.readouterr().out.count("✅") == 8


@pytest.mark.parametrize("wrong, hint", [
    (lambda x0, n, s: -v_target(x0, n, s), "sign is flipped"),
    (lambda x0, n, s: _angles(s)[1] * n - _angles(s)[0] * x0, "alpha and beta are swapped"),
    (lambda x0, n, s: _angles(s)[0] * x0 + _angles(s)[1] * n, "that is the noisy clip"),
    (lambda x0, n, s: torch.cos(s.reshape(-1, 1, 1)) * n - torch.sin(s.reshape(-1, 1, 1)) * x0, "quarter turn"),
    (lambda x0, n, s: torch.cos(s * math.pi / 2) * n - torch.sin(s * math.pi / 2) * x0, "reshape"),
])
def test_v_target_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_v_target(wrong)


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, v, s: (denoise(x, v, s)[1], denoise(x, v, s)[0]), "that is the noise estimate"),
    (lambda x, v, s: (_angles(s)[0] * x + _angles(s)[1] * v, denoise(x, v, s)[1]), "minus, not plus"),
    (lambda x, v, s: denoise(x, v, s)[0], "expected a pair"),
])
def test_denoise_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_denoise(wrong)


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, v, s, sn: math.cos(s * math.pi / 2) * x - math.sin(s * math.pi / 2) * v, "that is the clean estimate"),
    (lambda x, v, s, sn: sampler_step(x, v, s, s), "NEW level"),
])
def test_sampler_step_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_sampler_step(wrong)


def test_sampler_step_names_the_exercises_broken_step():
    with pytest.raises(ExerciseFailed, match="still the broken step") as failure:
        check_sampler_step(broken_sampler_step)
    assert "x0_hat = a*x" not in str(failure.value)          # the hint points the way; it does not hand over the fix


def test_sampler_step_must_not_modify_its_inputs():
    def in_place(x, v, s, sn):
        out = sampler_step(x, v, s, sn)
        x.zero_()
        return out

    with pytest.raises(ExerciseFailed, match="changed|modif"):
        check_sampler_step(in_place)


@pytest.mark.parametrize("wrong, hint", [
    (lambda a: np.clip(np.asarray(a, np.float64) * 2**23, -(2**23), 2**23 - 1).astype(np.int32), "do not truncate"),
    (lambda a: np.round(np.asarray(a, np.float64) * 2**23).astype(np.int32), "clip to"),
    (lambda a: np.clip(np.round(np.asarray(a, np.float64) * (2**23 - 1)), -(2**23), 2**23 - 1).astype(np.int32),
     "not 2\\*\\*23 - 1"),
    (lambda a: np.clip(np.round(np.asarray(a, np.float64) * 2**23), -(2**23), 2**23 - 1), "expected integers"),
    (lambda a: to_24bit(a).ravel(), "expected shape"),
])
def test_to_24bit_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_to_24bit(wrong)


def test_to_24bit_must_not_modify_its_input():
    def in_place(a):
        out = to_24bit(a)
        a *= 0
        return out

    with pytest.raises(ExerciseFailed, match="changed its input"):
        check_to_24bit(in_place)


@pytest.mark.parametrize("wrong, problem, hint", [
    (lambda r, s: 1.0, "sigma = 1", "only for clips of RMS 1"),                       # "v always has size 1"
    (lambda r, s: rms_of_v(r, 1 - s), "sigma = 0", "What is the RMS of standard Gaussian noise"),   # ends swapped
    (lambda r, s: math.cos(s * math.pi / 2) + math.sin(s * math.pi / 2) * r, "sigma = 0.25", "powers"),
    (lambda r, s: rms_of_v(r, s) ** 2, "sigma = 1", "square root"),
    (lambda r, s: (1 - s) + s * r, "sigma = 0.25", "cross term averages to 0"),
])
def test_rms_of_v_wrong_predictions(wrong, problem, hint):
    with pytest.raises(ExerciseFailed, match=hint) as failure:
        check_rms_of_v(wrong)
    assert problem in str(failure.value)


@pytest.mark.parametrize("answer, message", [
    (lambda r, s: None, "one finite number"),
    (lambda r, s: [1.0, 2.0], "one finite number"),
    (lambda r, s: float("nan"), "one finite number"),
])
def test_rms_of_v_bad_returns(answer, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_rms_of_v(answer)


def test_rms_of_v_stub_is_not_answered_yet():
    def stub(clip_rms, sigma):
        raise NotImplementedError("Exercise: write your answer here")

    with pytest.raises(ExerciseFailed, match="not answered yet"):
        check_rms_of_v(stub)


@pytest.mark.parametrize("guess, message", [
    (None, "not answered yet"),
    ("C", "expected the letter"),
    (1, "expected the letter"),
])
def test_guidance_guess_bad_answers(guess, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_guidance_guess(guess)


def test_guidance_guess_wrong_letter_points_the_way():
    wrong = "B" if _guided_is_a(0) else "A"
    with pytest.raises(ExerciseFailed, match="guidance 1") as failure:
        check_guidance_guess(wrong, seed=0)
    assert "listen" in str(failure.value).lower()


def test_guidance_mystery_batches_are_guidance_1_and_4():
    config = UNet1DConfig(in_channels=1, sample_rate=22050, sample_length=256, channels=(8, 8), factors=(1, 4),
                          blocks=(1, 1), attention=(False, False), attention_heads=1, attention_head_features=8,
                          modulation_features=16, resnet_groups=4)
    model = UNet1D(config, seed=0).eval()
    for seed in (0, 1):
        a, b, labels = guidance_mystery(model, steps=3, seed=seed)
        guided = generate_drums(model, 1, steps=3, guidance_scale=4.0, seed=seed, progress=False)[0]
        plain = generate_drums(model, 1, steps=3, guidance_scale=1.0, seed=seed, progress=False)[0]
        want = (guided, plain) if _guided_is_a(seed) else (plain, guided)
        assert torch.equal(a, want[0]) and torch.equal(b, want[1])
        assert labels.tolist() == [0, 1, 2, 3]
    assert _guided_is_a(0) != _guided_is_a(1)            # both orders occur


def test_rms_of_v_refuses_a_non_callable():
    from course_lib.validate import CourseInputError

    with pytest.raises(CourseInputError, match="without calling it"):
        check_rms_of_v(0.5)
