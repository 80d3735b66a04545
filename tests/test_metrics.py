"""Tests for course_lib.metrics: known values, batching, invariances and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.metrics import log_spectral_distance, spectral_convergence, spectral_convergence_best_gain
from course_lib.validate import CourseInputError


def _mag(seed: int, shape=(33, 20)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32) + 0.01


def test_spectral_convergence_known_values():
    ref = _mag(0)
    assert spectral_convergence(ref, ref) == 0.0
    assert spectral_convergence(ref, np.zeros_like(ref)) == pytest.approx(1.0)
    assert spectral_convergence(ref, 0.5 * ref) == pytest.approx(0.5, abs=1e-6)
    assert spectral_convergence(ref, 3.0 * ref) == pytest.approx(2.0, abs=1e-6)
    other = _mag(1)
    expected = np.linalg.norm(ref - other) / np.linalg.norm(ref)
    assert spectral_convergence(ref, other) == pytest.approx(expected, rel=1e-5)
    assert isinstance(spectral_convergence(torch.from_numpy(ref), torch.from_numpy(other)), float)


def test_best_gain_removes_the_level_and_only_the_level():
    ref, other = _mag(2), _mag(3)
    assert spectral_convergence_best_gain(ref, 0.01 * ref) == pytest.approx(0.0, abs=1e-6)
    assert spectral_convergence_best_gain(ref, np.zeros_like(ref)) == pytest.approx(1.0)
    # the optimum: no other gain does better
    best = spectral_convergence_best_gain(ref, other)
    for g in (0.5, 0.9, 1.0, 1.1, 2.0):
        assert best <= spectral_convergence(ref, g * other) + 1e-6
    g = float((ref * other).sum() / (other * other).sum())
    assert best == pytest.approx(np.linalg.norm(ref - g * other) / np.linalg.norm(ref), rel=1e-5)


def test_metrics_are_per_item_for_batches():
    ref = np.stack([_mag(4), _mag(5), _mag(6)])
    est = np.stack([ref[0], 0.5 * ref[1], 2.0 * ref[2]])
    sc = spectral_convergence(ref, est)
    assert isinstance(sc, torch.Tensor) and sc.shape == (3,)
    torch.testing.assert_close(sc, torch.tensor([0.0, 0.5, 1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(spectral_convergence_best_gain(ref, est), torch.zeros(3), atol=1e-6, rtol=0)
    lsd = log_spectral_distance(ref, est)
    torch.testing.assert_close(lsd, torch.tensor([0.0, 20 * np.log10(2), 20 * np.log10(2)], dtype=torch.float32),
                               atol=1e-4, rtol=0)
    deeper = np.stack([ref, ref])  # (2, 3, F, T)
    assert spectral_convergence(deeper, deeper).shape == (2, 3)


def test_log_spectral_distance_known_value_and_floor():
    ref = _mag(7)
    assert log_spectral_distance(ref, 10.0 * ref) == pytest.approx(20.0, abs=1e-4)
    assert log_spectral_distance(ref, ref) == 0.0
    silent = np.zeros_like(ref)
    assert log_spectral_distance(silent, silent) == 0.0  # both at the floor
    assert log_spectral_distance(np.full_like(ref, 1e-5), silent) == pytest.approx(0.0, abs=1e-4)


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0.01, max_value=100.0))
def test_best_gain_property_scale_invariant_and_not_above_plain(seed, gain):
    ref, est = _mag(seed, (9, 7)), _mag(seed + 1, (9, 7))
    best = spectral_convergence_best_gain(ref, est)
    assert 0.0 <= best <= 1.0 + 1e-6
    assert best <= spectral_convergence(ref, est) + 1e-6
    assert spectral_convergence_best_gain(ref, gain * est) == pytest.approx(best, abs=1e-5)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: spectral_convergence(np.ones((4, 5)), np.ones((4, 6))), r"\(4, 5\).*\(4, 6\)"),
        (lambda: spectral_convergence_best_gain(np.ones((2, 4, 5)), np.ones((4, 5))), "must match"),
        (lambda: spectral_convergence(np.zeros((4, 5)), np.ones((4, 5))), "all zeros"),
        (lambda: spectral_convergence(-np.ones((4, 5)), np.ones((4, 5))), "≥ 0"),
        (lambda: spectral_convergence(np.ones(5), np.ones(5)), "dimensions"),
        (lambda: spectral_convergence(np.ones((4, 5), dtype=np.int16), np.ones((4, 5))), "integer"),
        (lambda: spectral_convergence(np.ones((4, 5)), np.full((4, 5), np.nan)), "NaN"),
        (lambda: spectral_convergence(np.ones((4, 5)), torch.ones(4, 5, dtype=torch.complex64)), "complex"),
        (lambda: log_spectral_distance(np.ones((4, 5)), np.ones((4, 5)), amin=0), "amin"),
    ],
)
def test_metrics_bad_inputs(call, match):
    with pytest.raises(CourseInputError, match=match):
        call()
