"""Tests for course_lib.checks: right answers pass, the usual wrong ones fail with the right hint."""

from __future__ import annotations

import ast
import math
import pickle
import subprocess
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import checks
from course_lib.checks import lesson01
from course_lib.checks import (
    ExerciseFailed,
    check_batched_log_spectrogram,
    check_close,
    check_denormalise,
    check_griffin_lim,
    check_hz_to_mel,
    check_more_iterations,
    check_playback,
    check_shape,
    check_stft_shape,
    griffin_lim_pair,
)
from course_lib.validate import CourseInputError


def fails_with(check, *args, match: str) -> ExerciseFailed:
    with pytest.raises(ExerciseFailed) as info:
        check(*args)
    message = str(info.value)
    assert match.lower() in message.lower(), message
    assert message.startswith("❌ ")
    return info.value


def not_answered(*args, **kwargs):
    raise NotImplementedError("Exercise: write your answer here")


def test_exercise_failed_is_an_assertion_error():
    err = ExerciseFailed("Title", "what is wrong", "how to fix")
    assert isinstance(err, AssertionError)
    assert str(err) == "❌ Title: what is wrong\nHint: how to fix"
    assert err.exercise == "Title" and err.hint == "how to fix"
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err) and copy.problem == "what is wrong"


# ----------------------------------------------------------------------------- 1. playback


def playback(n_samples, true_rate, playback_rate):
    return n_samples / playback_rate, 12 * math.log2(playback_rate / true_rate)


def test_playback_right_answer_passes(capsys):
    check_playback(playback)
    assert capsys.readouterr().out.startswith("✅ Playback speed and pitch: passed (")


def test_playback_numpy_answer_passes():
    check_playback(lambda n, t, p: (np.float32(n) / p, 12 * np.log2(p / t)))


def test_playback_wrong_sign():
    err = fails_with(check_playback, lambda n, t, p: (n / p, 12 * math.log2(t / p)), match="sign is flipped")
    assert "expected -12 semitones, got +12" in err.problem


def test_playback_duration_at_recording_rate():
    fails_with(check_playback, lambda n, t, p: (n / t, 12 * math.log2(p / t)), match="rate it is played at")


def test_playback_natural_log():
    fails_with(check_playback, lambda n, t, p: (n / p, 12 * math.log(p / t)), match="log base 2")


def test_playback_not_a_pair():
    fails_with(check_playback, lambda n, t, p: n / p, match="expected a pair")


def test_playback_not_answered():
    err = fails_with(check_playback, not_answered, match="not answered yet")
    assert err.__cause__ is None  # the stub's traceback is not chained in


def test_learner_exception_is_reported_with_the_case():
    def broken(n, t, p):
        raise ZeroDivisionError("division by zero")

    fails_with(check_playback, broken, match="raised ZeroDivisionError: division by zero")


def test_not_callable_is_an_input_error():
    with pytest.raises(CourseInputError, match="fn: expected your function"):
        check_playback((1.0, 0.0))
    with pytest.raises(CourseInputError, match="fn_to_hz"):
        check_hz_to_mel(np.log10, 42)


# ----------------------------------------------------------------------------- 2. mel


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def test_mel_right_answer_passes(capsys):
    check_hz_to_mel(hz_to_mel, mel_to_hz)
    assert "✅ Hz ↔ mel (HTK): passed" in capsys.readouterr().out


def test_mel_equivalent_natural_log_form_passes():
    # 2595 * log10(x) == (2595 / ln 10) * ln(x): the 1127 form is the same scale.
    check_hz_to_mel(lambda f: 1127.0 * np.log1p(f / 700.0), lambda m: 700.0 * np.expm1(m / 1127.0))


def test_mel_reference_values():
    assert lesson01._mel_ref(np.array([700.0]))[0] == pytest.approx(2595 * math.log10(2))
    assert lesson01._hz_ref(lesson01._mel_ref(np.array([1234.5])))[0] == pytest.approx(1234.5)


def test_mel_natural_log_instead_of_log10():
    fails_with(check_hz_to_mel, lambda f: 2595.0 * np.log(1.0 + f / 700.0), mel_to_hz, match="natural log")


def test_mel_math_log10_is_not_vectorised():
    fails_with(check_hz_to_mel, lambda f: 2595.0 * math.log10(1.0 + f / 700.0), mel_to_hz, match="np.log10")


def test_mel_inverse_with_exp():
    fails_with(check_hz_to_mel, hz_to_mel, lambda m: 700.0 * (np.exp(m / 2595.0) - 1.0), match="10 ** x")


def test_mel_inverse_without_minus_one():
    fails_with(check_hz_to_mel, hz_to_mel, lambda m: 700.0 * 10.0 ** (m / 2595.0), match="- 1")


def test_mel_flattening_output_fails():
    fails_with(check_hz_to_mel, lambda f: hz_to_mel(np.ravel(f)), mel_to_hz, match="expected shape (2, 3)")


def test_mel_not_answered():
    fails_with(check_hz_to_mel, hz_to_mel, not_answered, match="not answered yet")


# ----------------------------------------------------------------------------- 3. denormalise


def denormalise(norm, original_min, original_max, min_val=0.0, max_val=1.0):
    unit = (norm - min_val) / (max_val - min_val)
    return unit * (original_max - original_min) + original_min


def test_denormalise_right_answer_passes(capsys):
    check_denormalise(denormalise)
    assert capsys.readouterr().out.startswith("✅ Denormalise")


def test_denormalise_works_with_torch_answer():
    def torch_version(norm, original_min, original_max, min_val=0.0, max_val=1.0):
        t = torch.as_tensor(norm)
        return (t - min_val) / (max_val - min_val) * (original_max - original_min) + original_min

    check_denormalise(torch_version)


def test_denormalise_multiply_by_min_bug():
    def classic_bug(norm, original_min, original_max, min_val=0.0, max_val=1.0):
        unit = (norm - min_val) / (max_val - min_val)
        return unit * (original_max - original_min) * original_min

    err = fails_with(check_denormalise, classic_bug, match="multiplied by original_min instead of adding it")
    assert "-80" in err.problem  # the dB case is the one that shows it


def test_denormalise_ignores_min_val_max_val():
    fails_with(
        check_denormalise,
        lambda norm, omin, omax, min_val=0.0, max_val=1.0: norm * (omax - omin) + omin,
        match="min_val and max_val were ignored",
    )


def test_denormalise_forgets_offset():
    fails_with(
        check_denormalise,
        lambda norm, omin, omax, min_val=0.0, max_val=1.0: (norm - min_val) / (max_val - min_val) * (omax - omin),
        match="forgot to add original_min",
    )


def test_denormalise_in_place_is_caught():
    def in_place(norm, original_min, original_max, min_val=0.0, max_val=1.0):
        norm -= min_val
        norm /= max_val - min_val
        norm *= original_max - original_min
        norm += original_min
        return norm

    fails_with(check_denormalise, in_place, match="in place")


def test_denormalise_renamed_keywords():
    fails_with(check_denormalise, lambda norm, a, b, lo=0.0, hi=1.0: denormalise(norm, a, b, lo, hi), match="keep the signature")


def test_denormalise_not_answered():
    fails_with(check_denormalise, not_answered, match="not answered yet")


# ----------------------------------------------------------------------------- 4. batched log-spectrogram


def _finish(spec: torch.Tensor) -> torch.Tensor:
    db = 20 * torch.log10(torch.clamp(spec.abs(), min=1e-5))
    return torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - 80.0)


def log_spec(batch: torch.Tensor) -> torch.Tensor:
    window = torch.hann_window(512)
    spec = torch.stft(batch, 512, 256, window=window, center=True, pad_mode="constant", return_complex=True)
    return _finish(spec[:, :-1])


def test_log_spectrogram_right_answer_passes(capsys):
    check_batched_log_spectrogram(log_spec)
    assert capsys.readouterr().out.startswith("✅ Batched log-spectrogram: passed (3 batches, one STFT call each")


def test_log_spectrogram_rfft_of_frames_passes():
    def framed(batch):
        padded = torch.nn.functional.pad(batch, (256, 256))
        frames = padded.unfold(-1, 512, 256) * torch.hann_window(512)
        return _finish(torch.fft.rfft(frames, dim=-1).transpose(1, 2)[:, :-1])

    check_batched_log_spectrogram(framed)


def test_log_spectrogram_reference_matches_librosa():
    # The check's own reference against librosa's STFT + amplitude_to_db (librosa >= 0.10 pads with zeros).
    for _, batch in lesson01._log_spec_batches():
        ref = lesson01._log_spec_ref(batch)
        for i, clip in enumerate(batch.astype(np.float64)):
            mag = np.abs(librosa.stft(clip, n_fft=512, hop_length=256, center=True, pad_mode="constant"))[:-1]
            want = librosa.amplitude_to_db(mag, ref=1.0, amin=1e-5, top_db=80.0)
            np.testing.assert_allclose(ref[i], want, atol=1e-9)


def test_log_spectrogram_known_frequency():
    # A 1 kHz tone at 16 kHz peaks in bin 1000 / (16000 / 512) = 32.
    t = np.arange(4096) / 16000
    ref = lesson01._log_spec_ref(np.sin(2 * np.pi * 1000 * t)[None, :])
    assert ref.shape == (1, 256, 17)
    assert int(np.argmax(ref[0, :, 8])) == 32
    assert ref.max() - ref.min() == pytest.approx(80.0)


def test_log_spectrogram_per_clip_loop_fails():
    def loop(batch):
        return torch.stack([log_spec(clip[None])[0] for clip in batch])

    err = fails_with(check_batched_log_spectrogram, loop, match="3 STFT/FFT calls")
    assert "once" in err.hint


def test_log_spectrogram_librosa_loop_fails():
    def with_librosa(batch):
        out = []
        for clip in batch.numpy():
            mag = np.abs(librosa.stft(clip, n_fft=512, hop_length=256, pad_mode="constant"))[:-1]
            out.append(librosa.amplitude_to_db(mag, ref=1.0, amin=1e-5, top_db=80.0))
        return torch.from_numpy(np.stack(out))

    fails_with(check_batched_log_spectrogram, with_librosa, match="librosa.stft")


def test_log_spectrogram_counter_is_removed_afterwards():
    original = librosa.stft
    check_batched_log_spectrogram(log_spec)
    assert librosa.stft is original
    assert torch._C._len_torch_function_stack() == 0  # no counting mode left active
    assert torch.stft(torch.zeros(600), 512, 256, window=torch.hann_window(512), return_complex=True).shape == (257, 3)


def test_log_spectrogram_batch_wide_floor_fails():
    def batch_floor(batch):
        spec = torch.stft(batch, 512, 256, window=torch.hann_window(512), pad_mode="constant", return_complex=True)
        db = 20 * torch.log10(torch.clamp(spec[:, :-1].abs(), min=1e-5))
        return torch.maximum(db, db.max() - 80.0)

    err = fails_with(check_batched_log_spectrogram, batch_floor, match="over the whole batch")
    assert "clip 1" in err.problem  # the quiet clip


def test_log_spectrogram_reflect_padding_fails():
    def reflect(batch):
        spec = torch.stft(batch, 512, 256, window=torch.hann_window(512), return_complex=True)
        return _finish(spec[:, :-1])

    fails_with(check_batched_log_spectrogram, reflect, match="pad_mode='constant'")


def test_log_spectrogram_symmetric_window_fails():
    def symmetric(batch):
        spec = torch.stft(batch, 512, 256, window=torch.hann_window(512, periodic=False), pad_mode="constant", return_complex=True)
        return _finish(spec[:, :-1])

    fails_with(check_batched_log_spectrogram, symmetric, match="periodic Hann")


def test_log_spectrogram_shape_mistakes():
    def keep_last_bin(batch):
        return _finish(torch.stft(batch, 512, 256, window=torch.hann_window(512), pad_mode="constant", return_complex=True))

    def not_centred(batch):
        spec = torch.stft(batch, 512, 256, window=torch.hann_window(512), center=False, return_complex=True)
        return _finish(spec[:, :-1])

    fails_with(check_batched_log_spectrogram, keep_last_bin, match="drop the last frequency bin")
    fails_with(check_batched_log_spectrogram, not_centred, match="center=True")


def test_log_spectrogram_numpy_result_fails():
    fails_with(check_batched_log_spectrogram, lambda b: log_spec(b).numpy(), match="expected a torch.Tensor")


def test_log_spectrogram_not_answered():
    fails_with(check_batched_log_spectrogram, not_answered, match="not answered yet")


# ----------------------------------------------------------------------------- 5. Griffin-Lim


def griffin_lim(magnitude, n_fft, hop_length, n_iter):
    window = torch.hann_window(n_fft)
    spec = magnitude * torch.exp(2j * math.pi * torch.rand(magnitude.shape))
    for _ in range(n_iter):
        wave = torch.istft(spec, n_fft, hop_length, window=window)
        rebuilt = torch.stft(wave, n_fft, hop_length, window=window, return_complex=True)
        spec = magnitude * torch.exp(1j * rebuilt.angle())
    return torch.istft(spec, n_fft, hop_length, window=window)


def test_griffin_lim_right_answer_passes_and_is_deterministic(capsys):
    check_griffin_lim(griffin_lim)
    first = capsys.readouterr().out
    check_griffin_lim(griffin_lim)
    assert capsys.readouterr().out == first
    assert first.startswith("✅ Griffin-Lim: passed (spectral convergence 0.")


def test_griffin_lim_bound_is_met_with_margin():
    y, n_fft, hop = lesson01._griffin_lim_signal()
    target = np.abs(lesson01._stft_np(y, n_fft, hop))
    torch.manual_seed(0)
    wave = griffin_lim(torch.from_numpy(target.astype(np.float32)), n_fft, hop, 32).numpy()
    sc = lesson01._spectral_convergence(target, wave, n_fft, hop, y.size)
    assert 0.05 < sc < checks.GRIFFIN_LIM_BOUND - 0.03
    # The true signal itself is (numerically) perfectly consistent.
    assert lesson01._spectral_convergence(target, y, n_fft, hop, y.size) < 1e-10


def test_griffin_lim_without_iterations_fails():
    err = fails_with(
        check_griffin_lim, lambda m, n, h, k: griffin_lim(m, n, h, 0), match="after 32 iterations the spectral convergence"
    )
    assert "random phase alone gives" in err.problem


def test_griffin_lim_forgetting_the_magnitude_fails():
    def no_projection(magnitude, n_fft, hop_length, n_iter):
        window = torch.hann_window(n_fft)
        spec = magnitude * torch.exp(2j * math.pi * torch.rand(magnitude.shape))
        for _ in range(n_iter):
            spec = torch.stft(torch.istft(spec, n_fft, hop_length, window=window), n_fft, hop_length, window=window, return_complex=True)
        return torch.istft(spec, n_fft, hop_length, window=window)

    fails_with(check_griffin_lim, no_projection, match="Keep the given magnitude")


def test_griffin_lim_ignoring_n_iter_fails():
    fails_with(check_griffin_lim, lambda m, n, h, k: griffin_lim(m, n, h, 40), match="iterations barely help")


def test_griffin_lim_wrong_length_fails():
    fails_with(check_griffin_lim, lambda m, n, h, k: griffin_lim(m, n, h, k)[::2], match="samples")


def test_griffin_lim_not_answered():
    fails_with(check_griffin_lim, not_answered, match="not answered yet")


# ----------------------------------------------------------------------------- 6. predict the STFT's shape


def stft_shape(n_samples, n_fft, hop_length, center):
    if center:
        n_samples += 2 * (n_fft // 2)
    return n_fft // 2 + 1, 1 + (n_samples - n_fft) // hop_length


def test_stft_shape_right_prediction_passes(capsys):
    check_stft_shape(stft_shape)
    out = capsys.readouterr().out
    assert out.startswith("✅ Predict the STFT's shape") and "513 x 83 without centring, 513 x 87 with" in out


def test_stft_shape_truth_is_measured():
    for case in lesson01.STFT_SHAPE_CASES:
        assert lesson01._measured_stft_shape(*case) == stft_shape(*case), case


def test_stft_shape_ignoring_centre_fails():
    err = fails_with(check_stft_shape, lambda n, f, h, c: stft_shape(n, f, h, False), match="torch.stft gives 87 frames")
    assert "pads n_fft // 2" in err.hint


def test_stft_shape_full_spectrum_fails():
    err = fails_with(check_stft_shape, lambda n, f, h, c: (f, stft_shape(n, f, h, c)[1]), match="513 frequency bins")
    assert "non-negative frequencies" in err.hint


def test_stft_shape_off_by_one_fails():
    fails_with(check_stft_shape, lambda n, f, h, c: (f // 2 + 1, stft_shape(n, f, h, c)[1] - 1), match="off by one")


def test_stft_shape_measuring_instead_of_predicting_fails():
    def measured(n, f, h, c):
        return tuple(torch.stft(torch.zeros(n), f, h, window=torch.hann_window(f), center=c, return_complex=True).shape)

    fails_with(check_stft_shape, measured, match="measures the shape instead of predicting it")


def test_stft_shape_not_a_pair_and_floats():
    fails_with(check_stft_shape, lambda n, f, h, c: 513, match="pair of whole numbers")
    fails_with(check_stft_shape, lambda n, f, h, c: (f / 2 + 1, 1 + (n - f) / h), match="frequency bins")


# ----------------------------------------------------------------------------- 7. 4 or 64 Griffin-Lim iterations


def more_iterations(magnitude, clip_a, clip_b, n_fft, hop_length):
    window = torch.hann_window(n_fft)

    def distance(clip):
        got = torch.stft(torch.as_tensor(clip), n_fft, hop_length, window=window, return_complex=True).abs().numpy()
        frames = min(got.shape[-1], magnitude.shape[-1])
        return np.linalg.norm(magnitude[:, :frames] - got[:, :frames])

    return "a" if distance(clip_a) < distance(clip_b) else "b"


def test_more_iterations_measuring_passes_and_reveals_the_pair(capsys):
    check_more_iterations(more_iterations)
    out = capsys.readouterr().out
    magnitude, clip_a, clip_b, rate = griffin_lim_pair(0)
    truth = more_iterations(magnitude, clip_a, clip_b, 512, 128)
    assert out.startswith("✅ Which clip") and f"clip_{truth} had 64 iterations" in out
    assert rate == 8000 and clip_a.shape == clip_b.shape and magnitude.shape == (257, 63)


def test_more_iterations_pair_is_deterministic_and_level_matched():
    first, second = griffin_lim_pair(3), griffin_lim_pair(3)
    for x, y in zip(first[:3], second[:3]):
        np.testing.assert_array_equal(x, y)
    _, clip_a, clip_b, _ = first
    assert abs(np.sqrt(np.mean(clip_a**2)) / np.sqrt(np.mean(clip_b**2)) - 1) < 1e-4
    with pytest.raises(CourseInputError, match="seed"):
        griffin_lim_pair(-1)


@pytest.mark.parametrize(
    "guess",
    [
        lambda m, a, b, n, h: "a",
        lambda m, a, b, n, h: "b",
        lambda m, a, b, n, h: "a" if np.abs(a).max() > np.abs(b).max() else "b",
        lambda m, a, b, n, h: "b" if more_iterations(m, a, b, n, h) == "a" else "a",
    ],
    ids=["always-a", "always-b", "louder-peak", "inverted"],
)
def test_more_iterations_guesses_fail(guess):
    err = fails_with(check_more_iterations, guess, match="iterations and clip_")
    assert "measure" in err.hint


def test_more_iterations_bad_answer_type():
    fails_with(check_more_iterations, lambda *args: 1, match="expected 'a' or 'b'")


# ----------------------------------------------------------------------------- generic helpers


def test_check_close_passes_and_fails(capsys):
    check_close("sum", torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-7])
    assert capsys.readouterr().out.startswith("✅ sum: passed (shape (2,)")
    err = fails_with(check_close, "sum", np.array([1.0, 2.5]), [1.0, 2.0], match="largest difference 0.5 at index (1,)")
    assert "expected 2, got 2.5" in err.problem
    fails_with(check_close, "sum", np.ones((2, 3)), np.ones(3), match="expected shape (3,), got (2, 3)")
    fails_with(check_close, "sum", np.array([np.nan, 1.0]), [1.0, 1.0], match="NaN")
    fails_with(check_close, "sum", "abc", [1.0], match="not numeric")


def test_check_close_bad_arguments():
    with pytest.raises(CourseInputError, match="name"):
        check_close("", 1.0, 1.0)
    with pytest.raises(CourseInputError, match="atol"):
        check_close("x", 1.0, 1.0, atol=-1.0)
    with pytest.raises(CourseInputError, match="expected: contains NaN"):
        check_close("x", 1.0, float("nan"))


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=20),
    st.floats(0.01, 10.0),
)
def test_check_close_property(values, offset):
    x = np.array(values)
    check_close("same", x, x.copy())
    check_close("within atol", x + offset / 2, x, atol=offset, rtol=0.0)
    with pytest.raises(ExerciseFailed):
        check_close("outside", x + 2 * offset, x, atol=offset, rtol=0.0)


def test_check_shape(capsys):
    check_shape("mels", torch.zeros(8, 128, 33), (8, 128, None))
    assert capsys.readouterr().out == "✅ mels: passed (shape (8, 128, 33))\n"
    fails_with(check_shape, "mels", torch.zeros(1, 8, 128), (8, 128), match="squeeze(0)")
    fails_with(check_shape, "mels", np.zeros(128), (1, 128), match="unsqueeze(0)")
    fails_with(check_shape, "mels", np.zeros((128, 8)), (8, 128), match="transpose")
    fails_with(check_shape, "mels", [1, 2], (2,), match="expected an array or tensor")
    with pytest.raises(CourseInputError, match="expected_shape"):
        check_shape("mels", np.zeros(3), "3")
    with pytest.raises(CourseInputError, match="expected_shape"):
        check_shape("mels", np.zeros(3), (-1,))


@settings(max_examples=15, deadline=None)
@given(
    st.floats(-120.0, 50.0),
    st.floats(0.5, 100.0),
    st.tuples(st.floats(-2.0, 0.0), st.floats(0.5, 2.0)),
)
def test_denormalise_reference_inverts_normalisation(omin, span, target):
    # The formula the check holds learners to really is the inverse of min-max normalisation.
    lo, hi = target
    x = np.linspace(omin, omin + span, 11)
    norm = (x - omin) / span * (hi - lo) + lo
    np.testing.assert_allclose(lesson01._denorm_ref(norm, omin, omin + span, lo, hi), x, rtol=1e-9, atol=1e-9)


# Every check that takes one answer function: a stub that still raises NotImplementedError gets the friendly
# "not answered yet", and passing something that is not a function (a common slip: the result of calling it)
# gets a clear input error. (Checks taking two functions are covered in their own tests.)
SINGLE_ANSWER_CHECKS = [
    "check_playback", "check_denormalise", "check_batched_log_spectrogram", "check_griffin_lim",  # lesson 01
    "check_stft_shape", "check_more_iterations",  # lesson 01
    "check_add_noise", "check_ddim_step", "check_slerp", "check_keep_known",  # lesson 02
    "check_training_loss", "check_save_atomically", "check_epoch_starts", "check_ema_memory",  # lesson 03
    "check_audio_seconds", "check_delay_pattern", "check_guidance", "check_remove_padding",  # lesson 04
    "check_v_target", "check_denoise", "check_sampler_step", "check_to_24bit", "check_rms_of_v",  # lesson 05
    "check_reparameterise", "check_kl_per_clip", "check_vae_objective", "check_interpolate",  # lesson 06
    "check_elbo_kl_weight", "check_fixed_ddim_step",
    "check_noise_guidance", "check_cross_attention", "check_latent_scale", "check_ddim_inversion_step",  # lesson 07
]


@pytest.mark.parametrize("name", SINGLE_ANSWER_CHECKS)
def test_every_check_handles_a_stub_and_a_non_callable(name):
    check = getattr(checks, name)

    def stub(*args):
        raise NotImplementedError("your answer here")

    with pytest.raises(checks.ExerciseFailed, match="not answered yet"):
        check(stub)
    with pytest.raises(CourseInputError, match="without calling it"):
        check(3)


# ----------------------------------------------------------------------------- the package's shape

CHECKS_DIR = Path(checks.__file__).parent
LESSON_MODULES = ["lesson01", "lesson02", "lesson03", "lesson04", "lesson05", "lesson06", "lesson07"]


def _course_imports(path: Path) -> set[str]:
    """The course_lib modules a file imports, inside functions too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("course_lib"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("course_lib")}
    return found


def test_lesson_modules_import_only_the_harness():
    assert not {m for m in _course_imports(CHECKS_DIR / "harness.py") if m.startswith("course_lib.checks")}
    for name in LESSON_MODULES:
        inside = {m for m in _course_imports(CHECKS_DIR / f"{name}.py") if m.startswith("course_lib.checks")}
        assert inside <= {"course_lib.checks.harness"}, (name, inside)


def test_package_re_exports_every_check():
    import importlib

    expected = {"ExerciseFailed", "check_close", "check_shape"}
    for name in LESSON_MODULES:
        module = importlib.import_module(f"course_lib.checks.{name}")
        expected |= set(module.__all__)
        for public in module.__all__:
            assert getattr(checks, public) is getattr(module, public), public
    assert set(checks.__all__) == expected
    assert len(checks.__all__) == len(expected)


def test_importing_the_checks_does_not_import_torch():
    code = "import sys, course_lib.checks; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_reloading_the_package_restores_patched_checks():
    # The grader reloads course_lib.checks before each check cell: patches of the lesson modules and
    # of the harness must not survive it (run in a fresh interpreter: a reload makes a new ExerciseFailed).
    code = """
import importlib
import course_lib.checks as checks
from course_lib.checks import harness, lesson01, lesson05
lesson01.check_playback = lambda fn: None
lesson05.check_v_target = lambda fn: None
harness.all_close = lambda *args: True
importlib.reload(checks)
from course_lib.checks import *
for check in (check_playback, check_v_target):
    try:
        check(lambda *args: 0.0)
    except ExerciseFailed:
        pass
    else:
        raise SystemExit(check.__name__ + " was not restored")
assert harness.all_close is not None and not harness.all_close(harness.np.zeros(1), harness.np.ones(1), 0, 0)
print("restored")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "restored" in result.stdout, result.stdout + result.stderr
