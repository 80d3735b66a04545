"""Lesson 05's checks: right answers pass; the usual wrong answers fail with the matching hint."""

import math

import numpy as np
import pytest
import torch

from course_lib.checks import ExerciseFailed, check_denoise, check_sampler_step, check_to_24bit, check_v_target


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


def to_24bit(audio):
    return np.clip(np.round(np.asarray(audio, np.float64) * 2**23), -(2**23), 2**23 - 1).astype(np.int32)


def test_right_answers_pass(capsys):
    check_v_target(v_target)
    check_denoise(denoise)
    check_sampler_step(sampler_step)
    check_to_24bit(to_24bit)
    assert capsys.readouterr().out.count("✅") == 4


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
