"""Tests for course_lib.spectrogram and course_lib.mel: values checked against librosa / diffusers and the maths."""

from __future__ import annotations

import json
import warnings

import librosa
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from course_lib import spectrogram as S
from course_lib.mel import Mel
from course_lib.metrics import spectral_convergence, spectral_convergence_best_gain
from course_lib.validate import CourseInputError

SR = 22050


def music_like(n_samples: int, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A short music-like test signal: harmonic notes with envelopes, a kick and noise hats."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sr
    out = np.zeros(n_samples)
    scale = 220.0 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12]) / 12)
    pos = 0
    while pos < n_samples:
        length = min(n_samples - pos, int(rng.choice([0.25, 0.5]) * sr))
        f0 = rng.choice(scale) * rng.choice([0.5, 1.0, 2.0])
        tt = t[:length]
        env = np.minimum(1.0, tt / 0.01) * np.exp(-3.0 * tt)
        note = sum(np.sin(2 * np.pi * f0 * k * tt + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 7))
        out[pos:pos + length] += 0.2 * env * note
        pos += length
    beat = int(0.25 * sr)
    for k, start in enumerate(range(0, n_samples, beat)):
        length = min(n_samples - start, int(0.12 * sr))
        tt = t[:length]
        if k % 2 == 0:
            hit = 0.5 * np.sin(2 * np.pi * (50 + 100 * np.exp(-30 * tt)) * tt) * np.exp(-20 * tt)
        else:
            hit = 0.15 * rng.standard_normal(length) * np.exp(-40 * tt)
        out[start:start + length] += hit
    return (0.8 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    return music_like(3 * (256 * 512 - 1) + 100)


# ----------------------------------------------------------------------------- STFT


@pytest.mark.parametrize(
    "n_fft,hop,win,center,pad_mode",
    [(2048, 512, None, True, "constant"), (1024, 256, 800, True, "reflect"), (511, 100, None, False, "constant"),
     (400, 160, 300, True, "constant")],
)
def test_stft_matches_librosa_and_istft_inverts(n_fft, hop, win, center, pad_mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 3000)).astype(np.float32)
    ours = S.stft(x, n_fft, hop, win, center, pad_mode)
    ref = librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, center=center, pad_mode=pad_mode)
    assert ours.dtype == torch.complex64 and tuple(ours.shape) == ref.shape
    np.testing.assert_allclose(ours.numpy(), ref, atol=2e-6 * np.abs(ref).max())
    if center:
        back = S.istft(ours, n_fft, hop, win, center, length=3000)
        np.testing.assert_allclose(back.numpy(), x, atol=2e-5)
        ref_back = librosa.istft(ref, n_fft=n_fft, hop_length=hop, win_length=win, length=3000)
        np.testing.assert_allclose(back.numpy(), ref_back, atol=2e-5)


def test_stft_of_a_tone_peaks_at_its_bin_and_magnitude_power_agree():
    n_fft, freq = 1024, 40 * SR / 1024  # exactly bin 40
    t = np.arange(SR // 2) / SR
    spec = S.stft(np.sin(2 * np.pi * freq * t).astype(np.float32), n_fft=n_fft, hop_length=256)
    mag = S.magnitude(spec)
    assert int(mag[:, 10].argmax()) == 40
    assert abs(float(mag[40, 10]) - n_fft / 4) < 1.0  # periodic Hann: peak = amplitude * N / 4
    torch.testing.assert_close(S.power(spec), mag**2, rtol=1e-5, atol=1e-3)


def test_stft_keeps_torch_input_device_and_accepts_float64():
    x = torch.randn(2, 4000, dtype=torch.float64)
    spec = S.stft(x, 512, 128)
    assert spec.device == x.device and spec.shape == (2, 257, 32)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: S.stft(np.zeros(1000, dtype=np.int16)), "integer"),
        (lambda: S.stft(np.array([0.0, np.nan, 1.0] * 100)), "NaN"),
        (lambda: S.stft(np.zeros(0, dtype=np.float32)), "empty"),
        (lambda: S.stft(np.zeros(100, dtype=np.float32), n_fft=512, center=False), "shorter than one frame"),
        (lambda: S.stft(np.zeros(100, dtype=np.float32), n_fft=512, pad_mode="reflect"), "too short"),
        (lambda: S.stft(np.zeros(1000, dtype=np.float32), n_fft=512, hop_length=600), "hop_length"),
        (lambda: S.stft(np.zeros(1000, dtype=np.float32), n_fft=512, win_length=1024), "win_length"),
        (lambda: S.stft(np.zeros(1000, dtype=np.float32), pad_mode="edge"), "pad_mode"),
        (lambda: S.stft("audio.wav"), "NumPy array"),
        (lambda: S.istft(np.zeros((1025, 4), dtype=np.float32)), "complex"),
        (lambda: S.istft(torch.zeros(513, 4, dtype=torch.complex64), n_fft=2048), "513 frequency rows"),
        (lambda: S.istft(torch.zeros(513, 4, dtype=torch.complex64), length=0), "length"),
        (lambda: S.magnitude(np.zeros(10, dtype=np.int16)), "integer"),
        (lambda: S.power(np.array([np.inf])), "NaN"),
    ],
)
def test_stft_family_bad_inputs(call, match):
    with pytest.raises(CourseInputError, match=match):
        call()


# ----------------------------------------------------------------------------- dB


def test_power_to_db_matches_librosa_and_works_per_item():
    rng = np.random.default_rng(2)
    s = rng.random((3, 40, 30)).astype(np.float32) ** 8
    s[1] *= 1e-2  # a quiet item: its own max must be its 0 dB
    ours = S.power_to_db(s, ref="max", top_db=60.0).numpy()
    for i in range(3):
        ref = librosa.power_to_db(s[i], ref=np.max, top_db=60.0)
        np.testing.assert_allclose(ours[i], ref, atol=1e-3)
        assert ours[i].max() == pytest.approx(0.0, abs=1e-5)
        assert ours[i].min() == pytest.approx(-60.0, abs=1e-4)
    np.testing.assert_allclose(S.power_to_db(s[0], ref=1.0, top_db=None).numpy(),
                               librosa.power_to_db(s[0], ref=1.0, top_db=None), atol=1e-3)
    assert S.power_to_db(s, ref=np.max).shape == s.shape  # librosa-style callable accepted


def test_amplitude_db_round_trips():
    mag = torch.tensor([[1.0, 0.1, 0.01], [2.0, 0.2, 0.02]])
    db = S.amplitude_to_db(mag, ref=1.0, top_db=None)
    torch.testing.assert_close(db, 20 * torch.log10(mag))
    torch.testing.assert_close(S.db_to_amplitude(db), mag)
    torch.testing.assert_close(S.db_to_power(S.power_to_db(mag**2, top_db=None)), mag**2)
    per_item = S.amplitude_to_db(mag, ref="max", top_db=None)  # one 2-D item: global max of 2.0
    assert float(per_item.max()) == pytest.approx(0.0) and float(per_item[0, 0]) == pytest.approx(-6.0206, abs=1e-3)
    spec = S.stft(np.random.default_rng(0).standard_normal(2048).astype(np.float32), 256, 64)
    torch.testing.assert_close(S.amplitude_to_db(spec), S.power_to_db(S.power(spec), amin=1e-10), atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: S.power_to_db(np.array([-1.0, 1.0])), "negative"),
        (lambda: S.power_to_db(np.ones(3), ref="min"), "ref"),
        (lambda: S.power_to_db(np.ones(3), ref=0.0), "ref"),
        (lambda: S.power_to_db(np.ones(3), top_db=-5), "top_db"),
        (lambda: S.power_to_db(np.ones(3), amin=0), "amin"),
        (lambda: S.amplitude_to_db(np.array([np.nan])), "NaN"),
        (lambda: S.db_to_power(np.ones(3, dtype=np.int16)), "integer"),
        (lambda: S.db_to_amplitude(np.ones(3), ref=-1), "ref"),
    ],
)
def test_db_bad_inputs(call, match):
    with pytest.raises(CourseInputError, match=match):
        call()


# ----------------------------------------------------------------------------- mel


@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax,norm,htk",
    [(22050, 2048, 256, 0.0, None, "slaney", False), (16000, 512, 80, 50.0, 7000.0, "slaney", True),
     (22050, 1024, 80, 0.0, 8000.0, None, False), (44100, 4096, 128, 0.0, None, 2, False)],
)
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax, norm, htk):
    ours = S.mel_filterbank(sr, n_fft, n_mels, fmin, fmax, norm=norm, htk=htk)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm=norm, htk=htk)
    assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1) and ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6 * max(1.0, ref.max()), rtol=1e-5)


def test_slaney_filters_have_unit_area_and_peak_at_their_centres():
    sr, n_fft, n_mels = 16000, 16384, 40  # fine bins so the sum approximates the integral
    fb = S.mel_filterbank(sr, n_fft, n_mels).numpy().astype(np.float64)
    areas = fb.sum(axis=1) * sr / n_fft
    np.testing.assert_allclose(areas, 1.0, rtol=0.01)
    edges = S.mel_to_hz(np.linspace(0.0, S.hz_to_mel(sr / 2), n_mels + 2))
    peaks_hz = fb.argmax(axis=1) * sr / n_fft
    assert np.all(np.abs(peaks_hz - edges[1:-1]) <= sr / n_fft)
    unnormalised = S.mel_filterbank(sr, n_fft, n_mels, norm=None).numpy()
    np.testing.assert_allclose(unnormalised.max(axis=1), 1.0, atol=0.01)


def test_hz_mel_conversions_match_librosa_and_keep_types():
    freqs = np.array([0.0, 100.0, 999.0, 1000.0, 4000.0, 11025.0])
    for htk in (False, True):
        np.testing.assert_allclose(S.hz_to_mel(freqs, htk=htk), librosa.hz_to_mel(freqs, htk=htk), rtol=1e-12)
        np.testing.assert_allclose(S.mel_to_hz(S.hz_to_mel(freqs, htk=htk), htk=htk), freqs, atol=1e-9)
    assert S.hz_to_mel(1000.0) == pytest.approx(15.0) and isinstance(S.hz_to_mel(1000.0), float)
    assert S.hz_to_mel(1000.0, htk=True) == pytest.approx(2595 * np.log10(1 + 1000 / 700))
    as_tensor = S.mel_to_hz(torch.tensor([15.0]))
    assert isinstance(as_tensor, torch.Tensor) and float(as_tensor[0]) == pytest.approx(1000.0)


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=0.0, max_value=96000.0, allow_nan=False), st.booleans())
def test_hz_mel_round_trip_property(freq, htk):
    mel = S.hz_to_mel(freq, htk=htk)
    assert S.mel_to_hz(mel, htk=htk) == pytest.approx(freq, rel=1e-9, abs=1e-6)
    assert S.hz_to_mel(freq + 10.0, htk=htk) > mel  # strictly increasing


@pytest.mark.parametrize("power", [2.0, 1.0])
def test_mel_spectrogram_matches_librosa_batched(power):
    x = music_like(12000)
    batch = np.stack([x, 0.5 * x[::-1].copy()])
    ours = S.mel_spectrogram(batch, SR, n_fft=1024, hop_length=256, n_mels=64, power=power, f_max=9000.0)
    for i in range(2):
        ref = librosa.feature.melspectrogram(y=batch[i], sr=SR, n_fft=1024, hop_length=256, n_mels=64, power=power,
                                             fmax=9000.0)
        np.testing.assert_allclose(ours[i].numpy(), ref, rtol=1e-4, atol=1e-5 * ref.max())


def test_hifigan_log_mel_matches_its_definition():
    x = music_like(256 * 40, seed=3)
    ours = S.hifigan_log_mel(np.stack([x, x]))
    assert ours.shape == (2, 80, 40)
    padded = np.pad(x, (384, 384), mode="reflect")
    spec = librosa.stft(padded, n_fft=1024, hop_length=256, win_length=1024, center=False)
    mag = np.sqrt(np.abs(spec) ** 2 + 1e-9)
    fb = librosa.filters.mel(sr=SR, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0)
    ref = np.log(np.clip(fb @ mag, 1e-5, None))
    np.testing.assert_allclose(ours[1].numpy(), ref, atol=3e-3)  # float32 vs float64 in quiet bands


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: S.mel_filterbank(22050, 2048, 0), "n_mels"),
        (lambda: S.mel_filterbank(22050, 2048, 64, f_max=20000.0), "Nyquist"),
        (lambda: S.mel_filterbank(22050, 2048, 64, f_min=5000.0, f_max=4000.0), "f_min"),
        (lambda: S.mel_filterbank(22050, 2048, 64, norm="area"), "norm"),
        (lambda: S.mel_filterbank(22050.5, 2048, 64), "sample_rate"),
        (lambda: S.mel_filterbank(22050, 2048, 64, htk="yes"), "htk"),
        (lambda: S.hz_to_mel(-5.0), "≥ 0"),
        (lambda: S.hz_to_mel([1.0, float("nan")]), "NaN"),
        (lambda: S.mel_to_hz("15"), "number"),
        (lambda: S.mel_spectrogram(np.zeros((2, 100), dtype=np.int16)), "integer"),
        (lambda: S.mel_spectrogram(np.ones(1000, dtype=np.float32), power=0), "power"),
        (lambda: S.hifigan_log_mel(np.ones(100, dtype=np.float32)), "too short"),
    ],
)
def test_mel_filterbank_and_feature_bad_inputs(call, match):
    with pytest.raises(CourseInputError, match=match):
        call()


def test_empty_mel_filters_warn():
    with pytest.warns(UserWarning, match="empty"):
        S.mel_filterbank(8000, 64, 60)


# ----------------------------------------------------------------------------- inversions


def test_mel_to_linear_nnls_beats_lstsq_and_reproduces_the_mel(music):
    x = torch.from_numpy(music[: 2 * 32768]).reshape(2, -1)
    true_power = S.power(S.stft(x, 1024, 256))
    mel = S.mel_spectrogram(x, SR, 1024, 256, n_mels=96)
    lstsq = S.mel_to_linear(mel, SR, 1024, method="lstsq")
    nnls = S.mel_to_linear(mel, SR, 1024, method="nnls", n_iter=30)
    euclid = S.mel_to_linear(mel, SR, 1024, method="nnls", n_iter=30, divergence="euclidean")
    assert lstsq.shape == nnls.shape == true_power.shape
    assert float(lstsq.min()) >= 0 and float(nnls.min()) >= 0
    sc_lstsq = spectral_convergence(true_power.sqrt(), lstsq.sqrt())
    sc_nnls = spectral_convergence(true_power.sqrt(), nnls.sqrt())
    sc_euclid = spectral_convergence(true_power.sqrt(), euclid.sqrt())
    assert torch.all(sc_nnls < 0.8 * sc_lstsq), (sc_nnls, sc_lstsq)
    assert torch.all(sc_euclid < sc_lstsq)
    fb = S.mel_filterbank(SR, 1024, 96)
    rebuilt = fb @ nnls
    assert float((rebuilt - mel).norm() / mel.norm()) < 0.02


def test_griffin_lim_recovers_a_consistent_magnitude_far_better_than_random_phase():
    t = np.arange(SR) / SR
    chirp = np.sin(2 * np.pi * (200 * t + 1500 * t**2)) + 0.5 * np.sin(2 * np.pi * 660 * t)
    x = torch.from_numpy((0.4 * chirp).astype(np.float32))
    mag = S.magnitude(S.stft(x, 1024, 256))
    g = torch.Generator().manual_seed(0)
    baseline = S.griffin_lim(mag, hop_length=256, n_iter=0, generator=g, length=SR)
    g = torch.Generator().manual_seed(0)
    rebuilt = S.griffin_lim(mag, hop_length=256, n_iter=48, generator=g, length=SR)
    assert rebuilt.shape == (SR,)
    sc_base = spectral_convergence(mag, S.magnitude(S.stft(baseline, 1024, 256)))
    sc_gl = spectral_convergence(mag, S.magnitude(S.stft(rebuilt, 1024, 256)))
    assert sc_base > 0.4 and sc_gl < 0.08, (sc_base, sc_gl)
    plain = S.griffin_lim(mag, hop_length=256, n_iter=48, momentum=0.0, generator=torch.Generator().manual_seed(0))
    sc_plain = spectral_convergence(mag, S.magnitude(S.stft(plain, 1024, 256))[..., : mag.shape[-1]])
    assert sc_gl < sc_plain  # the momentum helps


def test_griffin_lim_is_deterministic_batched_and_exact_from_true_phase():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((2, 4096)).astype(np.float32))
    spec = S.stft(x, 512, 128)
    a = S.griffin_lim(spec.abs(), n_fft=512, hop_length=128, n_iter=5, generator=torch.Generator().manual_seed(3))
    b = S.griffin_lim(spec.abs(), n_fft=512, hop_length=128, n_iter=5, generator=torch.Generator().manual_seed(3))
    c = S.griffin_lim(spec.abs(), n_fft=512, hop_length=128, n_iter=5, generator=torch.Generator().manual_seed(4))
    assert a.shape == (2, 4096) and torch.equal(a, b) and not torch.equal(a, c)
    exact = S.griffin_lim(spec.abs(), hop_length=128, n_iter=0, init=spec, length=4096)
    torch.testing.assert_close(exact, x, atol=1e-4, rtol=0)
    zeros = S.griffin_lim(spec.abs(), hop_length=128, n_iter=2, init="zeros")
    assert torch.isfinite(zeros).all()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: S.griffin_lim(-np.ones((513, 4), dtype=np.float32)), "negative"),
        (lambda: S.griffin_lim(np.ones(513, dtype=np.float32)), "dimensions"),
        (lambda: S.griffin_lim(np.ones((513, 4), dtype=np.float32), n_fft=2048), "513 frequency rows"),
        (lambda: S.griffin_lim(np.ones((513, 4), dtype=np.float32), momentum=1.5), "momentum"),
        (lambda: S.griffin_lim(np.ones((513, 4), dtype=np.float32), init="noise"), "init"),
        (lambda: S.griffin_lim(np.ones((513, 4), dtype=np.float32), init=torch.ones(3, dtype=torch.complex64)),
         "phase tensor"),
        (lambda: S.griffin_lim(np.ones((513, 4), dtype=np.float32), generator=0), "Generator"),
        (lambda: S.mel_to_linear(np.ones((64, 4), dtype=np.float32), method="pinv"), "method"),
        (lambda: S.mel_to_linear(-np.ones((64, 4), dtype=np.float32)), "negative"),
        (lambda: S.mel_to_linear(np.ones(64, dtype=np.float32)), "dimensions"),
        (lambda: S.mel_to_linear(np.ones((64, 4), dtype=np.float32), divergence="is"), "divergence"),
    ],
)
def test_inversion_bad_inputs(call, match):
    with pytest.raises(CourseInputError, match=match):
        call()


# ----------------------------------------------------------------------------- Mel


def test_mel_images_equal_diffusers_within_one_grey_level(music):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers.pipelines.deprecated.audio_diffusion.mel import Mel as DiffusersMel

    theirs, ours = DiffusersMel(), Mel()
    theirs.load_audio(raw_audio=music)
    ours.load_audio(raw_audio=music)
    assert ours.get_number_of_slices() == theirs.get_number_of_slices() == 3
    assert ours.slice_size == theirs.slice_size and ours.n_mels == theirs.n_mels
    batch = ours.audio_to_images(music).numpy().astype(int)
    for i in range(2):
        ref = np.asarray(theirs.audio_slice_to_image(i)).astype(int)
        image = ours.audio_slice_to_image(i)
        assert image.mode == "L" and image.size == (256, 256)
        diff = np.abs(np.asarray(image).astype(int) - ref)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
        assert np.array_equal(batch[i], np.asarray(image))
    # row 0 is the lowest mel band: the kick's energy sits in the first rows
    assert batch[0][:20].mean() > batch[0][-20:].mean()


def test_mel_image_to_audio_quality_and_determinism(music):
    mel = Mel()
    mel.load_audio(raw_audio=music)
    image = mel.audio_slice_to_image(0)
    audio = mel.image_to_audio(image)
    assert isinstance(audio, np.ndarray) and audio.dtype == np.float32 and audio.shape == ((256 - 1) * 512,)
    assert np.array_equal(audio, mel.image_to_audio(image))
    ref = S.magnitude(S.stft(mel.get_audio_slice(0)))
    sc = spectral_convergence_best_gain(ref, S.magnitude(S.stft(audio)))
    lstsq = Mel(inversion="lstsq").image_to_audio(image)
    sc_lstsq = spectral_convergence_best_gain(ref, S.magnitude(S.stft(lstsq)))
    assert sc < 0.25 and sc < sc_lstsq, (sc, sc_lstsq)


@settings(max_examples=8, deadline=None)
@given(st.integers(min_value=2, max_value=24), st.sampled_from([16, 32, 64]), st.integers(min_value=8, max_value=24),
       st.integers(min_value=1, max_value=3), st.integers(min_value=0, max_value=50))
def test_mel_image_and_audio_lengths_property(x_res, hop, y_res, n_slices, extra):
    mel = Mel(x_res=x_res, y_res=y_res, hop_length=hop, n_fft=4 * hop if 4 * hop >= 64 else 64, n_iter=1,
                nnls_iter=1, sample_rate=8000)
    assert mel.slice_size == x_res * hop - 1
    audio = np.random.default_rng(0).standard_normal(n_slices * mel.slice_size + extra).astype(np.float32) * 0.1
    images = mel.audio_to_images(np.stack([audio, audio]))
    assert images.dtype == torch.uint8 and images.shape == (2 * n_slices, y_res, x_res)
    mel.load_audio(raw_audio=audio)
    assert mel.get_number_of_slices() == n_slices and len(mel.get_audio_slice(n_slices - 1)) == mel.slice_size
    assert mel.audio_slice_to_image(0).size == (x_res, y_res)
    sound = mel.images_to_audio(images[:3])
    assert sound.shape == (min(3, 2 * n_slices), (x_res - 1) * hop) and torch.isfinite(sound).all()


def test_mel_load_audio_pads_short_clips_and_reads_files(tmp_path):
    import soundfile as sf

    mel = Mel(x_res=16, y_res=16, hop_length=64, n_fft=256)
    mel.load_audio(raw_audio=np.ones(100, dtype=np.float32))
    assert len(mel.audio) == 16 * 64 and mel.get_number_of_slices() == 1
    stereo = np.stack([np.full(44100, 0.5), np.full(44100, -0.1)], axis=1).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 44100)
    mel.load_audio(audio_file=path)
    assert len(mel.audio) == pytest.approx(SR, abs=2)  # resampled to 22050 Hz
    assert float(np.median(mel.audio)) == pytest.approx(0.2, abs=1e-3)  # channels averaged
    with pytest.raises(CourseInputError, match="could not be read as audio"):
        bad = tmp_path / "notes.wav"
        bad.write_text("not audio at all")
        mel.load_audio(audio_file=bad)
    with pytest.raises(CourseInputError, match="does not exist"):
        mel.load_audio(audio_file=tmp_path / "missing.wav")


def test_mel_config_round_trip_and_diffusers_config(tmp_path):
    mel = Mel(x_res=64, y_res=32, hop_length=256, n_iter=10, inversion="lstsq", seed=7)
    path = mel.save_config(tmp_path / "cfg")
    assert path.name == "mel_config.json"
    loaded = json.loads(path.read_text())
    # diffusers' settings at the top level, the course's own under "_course_lib" (which diffusers ignores)
    assert loaded["x_res"] == 64 and loaded["_course_lib"]["inversion"] == "lstsq"
    assert loaded["_course_lib"] == {"inversion": "lstsq", "nnls_iter": 8, "momentum": 0.99, "seed": 7}
    assert not {"inversion", "nnls_iter", "momentum", "seed"} & set(loaded)
    for source in (tmp_path / "cfg", path, mel.to_dict()):
        assert Mel.from_config(source).to_dict() == mel.to_dict()
    # the old flat layout (course files saved before the split) still loads
    flat = {"_class_name": "Mel", **mel.to_dict()}
    assert Mel.from_config(flat).to_dict() == mel.to_dict()
    with pytest.raises(CourseInputError, match="given twice"):
        Mel.from_config({**loaded, "seed": 8})
    with pytest.raises(CourseInputError, match="_course_lib"):
        Mel.from_config({**loaded, "_course_lib": {"hop": 3}})
    diffusers_style = {"_class_name": "Mel", "_diffusers_version": "0.20.0", "x_res": 256, "y_res": 256,
                       "sample_rate": 22050, "n_fft": 2048, "hop_length": 512, "top_db": 80, "n_iter": 32}
    assert Mel.from_config(diffusers_style).to_dict() == Mel().to_dict()
    with pytest.raises(CourseInputError, match="unknown key"):
        Mel.from_config({"x_res": 64, "hop": 3})
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(CourseInputError, match="not valid JSON"):
        Mel.from_config(tmp_path / "broken.json")
    # a corrupt mel_config.json in a folder: the error names the file
    (tmp_path / "cfg" / "mel_config.json").write_text('{"x_res": 64, "y_r')
    with pytest.raises(CourseInputError, match=r"mel_config\.json.*not valid JSON"):
        Mel.from_config(tmp_path / "cfg")
    (tmp_path / "cfg" / "mel_config.json").write_text("[64, 32]")
    with pytest.raises(CourseInputError, match=r"mel_config\.json.*holds a JSON list"):
        Mel.from_config(tmp_path / "cfg")
    # save_config writes atomically: no temporary file is left beside the config
    mel.save_config(tmp_path / "cfg")
    assert sorted(p.name for p in (tmp_path / "cfg").iterdir()) == ["mel_config.json"]


def test_diffusers_reads_a_saved_mel_config_without_a_warning(tmp_path):
    # diffusers' Mel (a ConfigMixin) warns about keys it does not know; the course's own keys sit under
    # "_course_lib", which it skips, so loading the shipped checkpoints through diffusers is quiet.
    import logging

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers.pipelines.deprecated.audio_diffusion.mel import Mel as DiffusersMel
    from course_lib.hub import checkpoint_dir

    class Collect(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    collect = Collect()
    logger = logging.getLogger("diffusers")  # diffusers' loggers do not propagate to the root: listen on it
    logger.addHandler(collect)
    try:
        flat = tmp_path / "flat"  # the old layout: the warning this layout avoids, so the listener is live
        flat.mkdir()
        (flat / "mel_config.json").write_text(json.dumps({"_class_name": "Mel", **Mel(seed=3).to_dict()}))
        DiffusersMel.from_config(DiffusersMel.load_config(flat))
        assert any("not expected" in m for m in collect.messages)
        folders = [Mel(x_res=64, y_res=32, seed=3).save_config(tmp_path / "cfg").parent]
        folders += [checkpoint_dir(name) / "mel" for name in ("mel-diffusion-64", "digit-diffusion")]
        for folder in folders:
            collect.messages.clear()
            theirs = DiffusersMel.from_config(DiffusersMel.load_config(folder))
            assert not [m for m in collect.messages if "not expected" in m], (folder, collect.messages)
            ours = Mel.from_config(folder)
            assert (theirs.x_res, theirs.hop_length, theirs.n_iter) == (ours.x_res, ours.hop_length, ours.n_iter)
    finally:
        logger.removeHandler(collect)


def test_mel_swaps_into_a_diffusers_audio_pipeline():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import AudioDiffusionPipeline, DDIMScheduler, UNet2DModel
        from diffusers.pipelines.deprecated.audio_diffusion.mel import Mel as DiffusersMel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=(32, 32), in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(8, 16), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    pipe = AudioDiffusionPipeline(vqvae=None, unet=unet, scheduler=DDIMScheduler(num_train_timesteps=50),
                                  mel=DiffusersMel(x_res=32, y_res=32, hop_length=64, n_fft=256))
    pipe.set_progress_bar_config(disable=True)
    pipe.mel = Mel(x_res=32, y_res=32, hop_length=64, n_fft=256, n_iter=4)
    assert isinstance(pipe.mel, Mel)
    out = pipe(generator=torch.Generator().manual_seed(0), steps=2)
    again = pipe(generator=torch.Generator().manual_seed(0), steps=2)
    assert out.audios.shape == (1, 1, 31 * 64) and np.isfinite(out.audios).all()
    assert out.images[0].size == (32, 32) and out.images[0].mode == "L"
    np.testing.assert_array_equal(out.audios, again.audios)
    clip = music_like(3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        varied = pipe(raw_audio=clip, start_step=1, steps=2, generator=torch.Generator().manual_seed(0))
    assert varied.audios.shape == (1, 1, 31 * 64)


def test_mel_images_to_audio_accepts_arrays_tensors_and_pil_and_is_seeded():
    mel = Mel(x_res=16, y_res=16, hop_length=64, n_fft=256, n_iter=3, seed=1)
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (2, 16, 16), dtype=np.uint8)
    from_array = mel.images_to_audio(arr)
    from_tensor = mel.images_to_audio(torch.from_numpy(arr))
    from_pil = mel.images_to_audio([Image.fromarray(a) for a in arr])
    assert from_array.shape == (2, 15 * 64)
    assert torch.equal(from_array, from_tensor) and torch.equal(from_array, from_pil)
    other_seed = Mel(x_res=16, y_res=16, hop_length=64, n_fft=256, n_iter=3, seed=2).images_to_audio(arr)
    assert not torch.equal(from_array, other_seed)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(mel.images_to_audio(arr, generator=g1), mel.images_to_audio(arr, generator=g2))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: m.audio_to_images(np.zeros(100, dtype=np.float32)), "shorter than one slice"),
        (lambda m: m.audio_to_images(np.zeros((2, 2, 5000), dtype=np.float32)), "dimensions"),
        (lambda m: m.load_audio(raw_audio=np.zeros((2, 5000), dtype=np.float32)), "average the channels"),
        (lambda m: m.load_audio(raw_audio=np.full(5000, np.nan)), "NaN"),
        (lambda m: m.load_audio(), "give audio_file"),
        (lambda m: m.get_number_of_slices(), "no audio loaded"),
        (lambda m: m.images_to_audio(np.zeros((2, 16, 17), dtype=np.uint8)), "shape"),
        (lambda m: m.images_to_audio(np.zeros((16, 16), dtype=np.float32)), "uint8"),
        (lambda m: m.images_to_audio([Image.new("RGB", (16, 16))]), "convert"),
        (lambda m: m.images_to_audio([Image.new("L", (32, 16))]), "32x16"),
        (lambda m: m.images_to_audio([]), "empty"),
        (lambda m: m.image_to_audio("image.png"), "PIL image"),
        (lambda m: m.images_to_audio(np.zeros((16, 16), dtype=np.uint8), generator=1), "Generator"),
        (lambda m: m.audio_slice_to_image(0), "no audio loaded"),
        (lambda m: m.set_resolution(16, 0), "y_res"),
        (lambda m: m.save_config(42), "folder path"),
        (lambda m: Mel.from_config(["x_res", 16]), "dict"),
        (lambda m: Mel(x_res=1), "x_res"),
        (lambda m: Mel(inversion="magic"), "inversion"),
        (lambda m: Mel(hop_length=4096), "hop_length"),
        (lambda m: Mel(top_db=0), "top_db"),
    ],
)
def test_mel_bad_inputs(call, match):
    mel = Mel(x_res=16, y_res=16, hop_length=64, n_fft=256)
    with pytest.raises(CourseInputError, match=match):
        call(mel)


def test_mel_get_audio_slice_checks_the_index():
    mel = Mel(x_res=16, y_res=16, hop_length=64, n_fft=256)
    mel.load_audio(raw_audio=np.zeros(3000, dtype=np.float32))
    assert mel.get_number_of_slices() == 2
    with pytest.raises(CourseInputError, match="0 to 1"):
        mel.get_audio_slice(2)
    assert mel.get_sample_rate() == 22050 and "x_res=16" in repr(mel)
    assert mel.audio_to_images(np.zeros(100, dtype=np.float32), pad=True).shape == (1, 16, 16)
