"""Tests for course_lib.audio: file I/O, resampling, levels, channels, players and plots."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import torchaudio.functional as AF  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from course_lib import audio as A  # noqa: E402
from course_lib.validate import CourseInputError  # noqa: E402


def sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * sr / x.size)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def mono_wav(tmp_path):
    path = tmp_path / "mono.wav"
    sf.write(path, sine(440, 16000, 0.5), 16000, subtype="FLOAT")
    return path


@pytest.fixture
def stereo_wav(tmp_path):
    path = tmp_path / "stereo.wav"
    left, right = sine(440, 16000, 0.5, 0.6), sine(880, 16000, 0.5, 0.2)
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    return path


# ---------------------------------------------------------------------------------------------
# load_audio
# ---------------------------------------------------------------------------------------------


def test_load_mono_keeps_samples_and_rate(mono_wav):
    x, sr = A.load_audio(mono_wav)
    assert sr == 16000 and x.dtype == np.float32 and x.shape == (8000,)
    np.testing.assert_allclose(x, sine(440, 16000, 0.5), atol=1e-7)


def test_load_stereo_layouts(stereo_wav):
    both, _ = A.load_audio(stereo_wav, mono=False)
    assert both.shape == (2, 8000)  # channels first
    np.testing.assert_allclose(both[0], sine(440, 16000, 0.5, 0.6), atol=1e-7)
    np.testing.assert_allclose(both[1], sine(880, 16000, 0.5, 0.2), atol=1e-7)
    mono, _ = A.load_audio(stereo_wav)
    np.testing.assert_allclose(mono, both.mean(axis=0), atol=1e-7)
    one, _ = A.load_audio(stereo_wav, channels=1)
    assert one.shape == (1, 8000)
    np.testing.assert_allclose(one[0], mono, atol=1e-7)


def test_load_mono_as_two_channels_duplicates(mono_wav):
    x, _ = A.load_audio(mono_wav, channels=2)
    assert x.shape == (2, 8000)
    np.testing.assert_array_equal(x[0], x[1])
    single, _ = A.load_audio(mono_wav, mono=False)
    assert single.shape == (1, 8000)


def test_load_resamples_and_keeps_pitch(mono_wav):
    x, sr = A.load_audio(mono_wav, sample_rate=22050)
    assert sr == 22050 and x.shape == (math.ceil(8000 * 22050 / 16000),)
    assert abs(peak_hz(x, sr) - 440) < 22050 / x.size * 1.01


def test_load_flac(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, sine(300, 8000, 0.25), 8000, subtype="PCM_16")
    x, sr = A.load_audio(path)
    assert sr == 8000 and np.abs(x - sine(300, 8000, 0.25)).max() < 2 / 32768


@pytest.mark.parametrize("suffix,fmt", [(".ogg", "OGG"), (".mp3", "MP3")])
def test_load_lossy_formats(tmp_path, suffix, fmt):
    path = tmp_path / f"a{suffix}"
    sf.write(path, sine(440, 16000, 1.0), 16000, format=fmt)
    x, sr = A.load_audio(path, sample_rate=8000)
    assert sr == 8000 and x.ndim == 1 and abs(x.size - 8000) < 1200
    assert abs(peak_hz(x, sr) - 440) <= 2 * sr / x.size


def test_load_errors(tmp_path, stereo_wav):
    with pytest.raises(CourseInputError, match="does not exist"):
        A.load_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(CourseInputError, match="empty file"):
        A.load_audio(tmp_path / "empty.wav")
    (tmp_path / "page.wav").write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    with pytest.raises(CourseInputError, match="HTML"):
        A.load_audio(tmp_path / "page.wav")
    (tmp_path / "notes.wav").write_text("just some notes about the recording session\n" * 5)
    with pytest.raises(CourseInputError, match="text file"):
        A.load_audio(tmp_path / "notes.wav")
    np.save(tmp_path / "arr.npy", np.zeros(10))
    with pytest.raises(CourseInputError, match="NumPy"):
        A.load_audio(tmp_path / "arr.npy")
    sf.write(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(CourseInputError, match="no samples"):
        A.load_audio(tmp_path / "zero.wav")
    with pytest.raises(CourseInputError, match="folder"):
        A.load_audio(tmp_path)
    with pytest.raises(CourseInputError, match="downmix"):
        A.load_audio(stereo_wav, channels=3)
    with pytest.raises(CourseInputError, match="sample_rate"):
        A.load_audio(stereo_wav, sample_rate=0)
    with pytest.raises(CourseInputError, match="mono"):
        A.load_audio(stereo_wav, mono="yes")
    with pytest.raises(CourseInputError, match="channels"):
        A.load_audio(stereo_wav, channels=0)


# ---------------------------------------------------------------------------------------------
# save_wav
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [16, 24, 32])
def test_save_load_round_trip_below_one_lsb(tmp_path, bits):
    rng = np.random.default_rng(bits)
    x = rng.uniform(-1, 1, size=(2, 4000)).astype(np.float32)
    x[0, :3] = [-1.0, 0.0, 0.5]
    path = A.save_wav(tmp_path / "sub" / "dir" / f"x{bits}.wav", x, 8000, bit_depth=bits)
    assert path.exists() and sf.info(path).subtype == f"PCM_{bits}"
    y, sr = A.load_audio(path, mono=False)
    assert sr == 8000 and y.shape == (2, 4000)
    lsb = 2.0 ** -(bits - 1)
    # float32 cannot resolve a 32-bit LSB, so allow its own rounding there
    tolerance = lsb if bits < 32 else 2.0 ** -24
    assert np.abs(y.astype(np.float64) - x).max() < tolerance
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_save_mono_torch_and_overwrite(tmp_path):
    x = torch.from_numpy(sine(100, 8000, 0.1))
    path = tmp_path / "m.wav"
    A.save_wav(path, x, 8000)
    A.save_wav(path, x * 0.5, 8000)  # overwrite atomically
    y, _ = A.load_audio(path)
    assert y.shape == (800,) and np.abs(y - x.numpy() * 0.5).max() <= 0.5 / 32768 + 1e-9


def test_save_clips_with_warning(tmp_path):
    x = np.array([0.0, 1.5, -2.0, 0.25], dtype=np.float32)
    with pytest.warns(UserWarning, match="clipping"):
        A.save_wav(tmp_path / "c.wav", x, 8000)
    y, _ = A.load_audio(tmp_path / "c.wav")
    np.testing.assert_allclose(y, [0.0, 32767 / 32768, -1.0, 0.25])


def test_save_errors(tmp_path):
    x = sine(100, 8000, 0.1)
    with pytest.raises(CourseInputError, match=".wav"):
        A.save_wav(tmp_path / "x.mp3", x, 8000)
    with pytest.raises(CourseInputError, match="bit_depth"):
        A.save_wav(tmp_path / "x.wav", x, 8000, bit_depth=8)
    with pytest.raises(CourseInputError, match="32768"):
        A.save_wav(tmp_path / "x.wav", (x * 32767).astype(np.int16), 8000)
    with pytest.raises(CourseInputError, match="NaN"):
        A.save_wav(tmp_path / "x.wav", np.array([0.0, np.nan], dtype=np.float32), 8000)
    with pytest.raises(CourseInputError, match="channels first"):
        A.save_wav(tmp_path / "x.wav", np.zeros((800, 2), dtype=np.float32), 8000)
    with pytest.raises(CourseInputError, match="sample_rate"):
        A.save_wav(tmp_path / "x.wav", x, -5)
    with pytest.raises(CourseInputError, match="path"):
        A.save_wav(123, x, 8000)
    (tmp_path / "d.wav").mkdir()
    with pytest.raises(CourseInputError, match="folder"):
        A.save_wav(tmp_path / "d.wav", x, 8000)
    with pytest.raises(CourseInputError, match="empty"):
        A.save_wav(tmp_path / "x.wav", np.zeros(0, dtype=np.float32), 8000)


# ---------------------------------------------------------------------------------------------
# resample
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("orig,new", [(8000, 22050), (22050, 16000), (44100, 8000)])
def test_resample_keeps_frequency(orig, new):
    x = sine(1000, orig, 0.5)
    y = A.resample(x, orig, new)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert y.shape == (math.ceil(x.size * new / orig),)
    assert abs(peak_hz(y, new) - 1000) <= new / y.size
    # amplitude is preserved away from the edges
    assert abs(np.abs(y[200:-200]).max() - 0.5) < 0.01


def test_resample_batched_torch_matches_rows():
    batch = torch.from_numpy(np.stack([sine(f, 8000, 0.2) for f in (200, 500, 900)]))
    out = A.resample(batch, 8000, 16000)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 3200)
    for i in range(3):
        torch.testing.assert_close(out[i], A.resample(batch[i], 8000, 16000), atol=1e-6, rtol=0)
    same = A.resample(batch, 8000, 8000)
    assert torch.equal(same, batch) and same is not batch


def test_resample_errors():
    with pytest.raises(CourseInputError, match="orig_sr"):
        A.resample(np.zeros(10, dtype=np.float32), 0, 8000)
    with pytest.raises(CourseInputError, match="new_sr"):
        A.resample(np.zeros(10, dtype=np.float32), 8000, 22050.5)
    with pytest.raises(CourseInputError, match="integer"):
        A.resample(np.zeros(10, dtype=np.int16), 8000, 16000)
    with pytest.raises(CourseInputError, match="NaN"):
        A.resample(np.array([np.inf, 0.0]), 8000, 16000)
    with pytest.raises(CourseInputError, match="expected a NumPy"):
        A.resample("audio.wav", 8000, 16000)


# ---------------------------------------------------------------------------------------------
# levels
# ---------------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(st.floats(-40, 0), st.floats(1e-3, 5.0))
def test_peak_normalise_exact(peak_db, amp):
    x = np.stack([sine(300, 8000, 0.05, amp), sine(500, 8000, 0.05, amp / 2)])
    y = A.peak_normalise(x, peak_db)
    assert np.abs(np.abs(y).max() - 10 ** (peak_db / 20)) < 1e-6
    # one gain for everything: the channel balance is kept
    np.testing.assert_allclose(y[1].max() / y[0].max(), x[1].max() / x[0].max(), rtol=1e-5)


def test_peak_normalise_silence_and_errors():
    silent = torch.zeros(100)
    with pytest.warns(UserWarning, match="silent"):
        out = A.peak_normalise(silent)
    assert isinstance(out, torch.Tensor) and torch.equal(out, silent)
    with pytest.raises(CourseInputError, match="peak_db"):
        A.peak_normalise(np.ones(4, dtype=np.float32), float("nan"))
    with pytest.raises(CourseInputError, match="NaN"):
        A.peak_normalise(np.array([np.nan, 1.0]))
    with pytest.warns(UserWarning, match="above 0 dBFS"):
        A.peak_normalise(np.ones(4, dtype=np.float32), 3.0)


@pytest.mark.parametrize("target", [-30.0, -20.0, -14.0])
def test_loudness_normalise_reaches_target(target):
    rng = np.random.default_rng(1)
    x = (0.05 * rng.standard_normal(16000 * 2) + sine(440, 16000, 2.0, 0.05)).astype(np.float32)
    y = A.loudness_normalise(x, 16000, target_lufs=target)
    measured = float(AF.loudness(torch.from_numpy(y)[None].double() * 0.1, 16000)) + 20.0
    assert abs(measured - target) < 0.5
    assert abs(A.measure_loudness(y, 16000) - target) < 0.5


def test_loudness_normalise_loud_stereo_input():
    # full-scale noise would be clamped by torchaudio's K-weighting filter if measured as is
    rng = np.random.default_rng(2)
    x = np.clip(rng.standard_normal((2, 16000)), -1, 1).astype(np.float32)
    y = A.loudness_normalise(torch.from_numpy(x), 16000, -23.0)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 16000)
    measured = float(AF.loudness(y.double(), 16000))
    assert abs(measured + 23.0) < 0.5


def test_loudness_silence_and_errors():
    with pytest.warns(UserWarning, match="silent"):
        out = A.loudness_normalise(np.zeros(8000, dtype=np.float32), 8000)
    assert np.all(out == 0) and np.isfinite(out).all()
    assert A.measure_loudness(np.zeros(8000, dtype=np.float32), 8000) == float("-inf")
    with pytest.raises(CourseInputError, match="0.4 s"):
        A.measure_loudness(np.ones(100, dtype=np.float32), 8000)
    with pytest.raises(CourseInputError, match="integer"):
        A.measure_loudness(np.ones(8000, dtype=np.int16), 8000)
    with pytest.raises(CourseInputError, match="0.4 s"):
        A.loudness_normalise(sine(100, 8000, 0.2), 8000)
    with pytest.raises(CourseInputError, match="up to 5"):
        A.loudness_normalise(np.zeros((6, 8000), dtype=np.float32) + 0.1, 8000)
    with pytest.raises(CourseInputError, match="target_lufs"):
        A.loudness_normalise(sine(100, 8000, 1.0), 8000, target_lufs=3.0)
    with pytest.raises(CourseInputError, match="sample_rate"):
        A.loudness_normalise(sine(100, 8000, 1.0), None)
    with pytest.warns(UserWarning, match="clip"):
        A.loudness_normalise(sine(100, 8000, 1.0, 0.9), 8000, target_lufs=-1.0)


# ---------------------------------------------------------------------------------------------
# channels
# ---------------------------------------------------------------------------------------------


def test_to_mono_and_channels():
    stereo = np.stack([np.ones(5, dtype=np.float32), -np.ones(5, dtype=np.float32) * 0.5])
    np.testing.assert_allclose(A.to_mono(stereo), np.full(5, 0.25))
    mono = np.arange(5, dtype=np.float32) / 10
    np.testing.assert_array_equal(A.to_mono(mono), mono)
    dup = A.to_channels(torch.from_numpy(mono), 3)
    assert isinstance(dup, torch.Tensor) and dup.shape == (3, 5) and torch.equal(dup[2], dup[0])
    one = A.to_channels(stereo, 1)
    assert one.shape == (1, 5)
    np.testing.assert_allclose(one[0], 0.25)
    np.testing.assert_array_equal(A.to_channels(stereo, 2), stereo)


def test_channel_errors():
    with pytest.raises(CourseInputError, match="downmix"):
        A.to_channels(np.zeros((6, 10), dtype=np.float32), 2)
    with pytest.raises(CourseInputError, match="channels first"):
        A.to_mono(np.zeros((1000, 2), dtype=np.float32))
    with pytest.raises(CourseInputError, match="dimensions"):
        A.to_mono(np.zeros((2, 2, 10), dtype=np.float32))
    with pytest.raises(CourseInputError, match="n"):
        A.to_channels(np.zeros(10, dtype=np.float32), 0)
    with pytest.raises(CourseInputError, match="integer"):
        A.to_mono(np.zeros(10, dtype=np.int16))


# ---------------------------------------------------------------------------------------------
# play
# ---------------------------------------------------------------------------------------------


def test_play_returns_audio_widget():
    from IPython.display import Audio

    player = A.play(sine(440, 8000, 0.5), 8000)
    assert isinstance(player, Audio) and player.data[:4] == b"RIFF"
    stereo = A.play(torch.from_numpy(np.stack([sine(440, 8000, 0.5), sine(220, 8000, 0.5)])), 8000)
    assert isinstance(stereo, Audio)
    quiet = A.play(np.zeros(800, dtype=np.float32), 8000)  # silence must not produce NaN
    assert isinstance(quiet, Audio)


def test_play_errors():
    with pytest.raises(CourseInputError, match="max_seconds"):
        A.play(np.zeros(8000 * 31, dtype=np.float32), 8000)
    assert A.play(np.zeros(8000 * 31, dtype=np.float32), 8000, max_seconds=None) is not None
    with pytest.raises(CourseInputError, match="normalize=False"):
        A.play(np.full(10, 2.0, dtype=np.float32), 8000, normalize=False)
    with pytest.raises(CourseInputError, match="sample_rate"):
        A.play(np.zeros(10, dtype=np.float32), 10)
    with pytest.raises(CourseInputError, match="max_seconds"):
        A.play(np.zeros(10, dtype=np.float32), 8000, max_seconds=-1)


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------


def test_plot_waveform_labels_and_lines():
    ax = A.plot_waveform(sine(5, 1000, 2.0), 1000, title="tone")
    assert ax.get_xlabel() == "Time (s)" and ax.get_ylabel() == "Amplitude" and ax.get_title() == "tone"
    line = ax.get_lines()[0]
    assert abs(line.get_xdata()[-1] - 1.999) < 1e-9
    assert ax.get_xlim() == (0.0, 2.0)
    stereo = A.plot_waveform(np.zeros((2, 100), dtype=np.float32), 1000)
    assert [t.get_text() for t in stereo.get_legend().get_texts()] == ["left", "right"]
    long_ax = A.plot_waveform(sine(5, 8000, 10.0), 8000)  # drawn as an envelope
    assert long_ax.get_xlim() == (0.0, 10.0) and not long_ax.get_lines()


def test_plot_spectrogram_axes():
    spec = np.random.default_rng(0).uniform(-80, 0, size=(257, 40)).astype(np.float32)
    ax = A.plot_spectrogram(spec, 16000, 128)
    assert ax.get_xlabel() == "Time (s)" and ax.get_ylabel() == "Frequency (Hz)"
    assert ax.get_ylim()[1] == pytest.approx(8000 + 15.625, rel=1e-6)
    assert ax.get_images()[0].get_extent()[1] == pytest.approx(40 * 128 / 16000)
    assert len(ax.figure.axes) == 2  # colorbar
    assert ax.figure.axes[1].get_ylabel() == "Level (dB)"
    log_ax = A.plot_spectrogram(spec[:-1], 16000, 128, y_axis="log", n_fft=512, colorbar=False)
    assert log_ax.get_yscale() == "log" and len(log_ax.figure.axes) == 1


def test_plot_mel_spectrogram_ticks_in_hz():
    spec = np.zeros((64, 20), dtype=np.float32)
    ax = A.plot_spectrogram(spec, 22050, 256, y_axis="mel", title="mel")
    centres = A.mel_band_centres(64, 22050)
    ticks = ax.get_yticks().astype(int)
    assert ticks[0] == 0 and ticks[-1] == 63
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == f"{centres[63] / 1000:.3g}k" and ax.get_ylabel() == "Frequency (Hz)"


def test_mel_band_centres_match_mel_scales():
    import librosa

    for htk in (False, True):
        ours = A.mel_band_centres(40, 16000, fmin=20.0, fmax=7600.0, mel_scale="htk" if htk else "slaney")
        ref = librosa.mel_frequencies(42, fmin=20.0, fmax=7600.0, htk=htk)[1:-1]
        np.testing.assert_allclose(ours, ref, rtol=1e-6)
    with pytest.raises(CourseInputError, match="fmax"):
        A.mel_band_centres(40, 16000, fmax=9000)
    with pytest.raises(CourseInputError, match="mel_scale"):
        A.mel_band_centres(40, 16000, mel_scale="bark")


def test_plot_audio_side_by_side():
    ax_wave, ax_spec = A.plot_audio(np.stack([sine(1000, 8000, 0.5), sine(1000, 8000, 0.5)]), 8000, title="x")
    assert ax_wave.get_ylabel() == "Amplitude" and ax_spec.get_ylabel() == "Frequency (Hz)"
    assert ax_wave.figure is ax_spec.figure
    image = ax_spec.get_images()[0].get_array()
    # the loudest row is the 1 kHz bin (1000 / (8000 / 1024) = 128), at about 0 dB re full scale / 2
    assert int(np.argmax(image.mean(axis=1))) == 128
    assert -7.5 < float(image.max()) < -5.5  # amplitude 0.5 -> about -6 dB


def test_plot_errors():
    with pytest.raises(CourseInputError, match="dimensions"):
        A.plot_spectrogram(np.zeros(10, dtype=np.float32), 8000, 64)
    with pytest.raises(CourseInputError, match="complex"):
        A.plot_spectrogram(torch.zeros(5, 5, dtype=torch.complex64), 8000, 64)
    with pytest.raises(CourseInputError, match="y_axis"):
        A.plot_spectrogram(np.zeros((5, 5), dtype=np.float32), 8000, 64, y_axis="bark")
    with pytest.raises(CourseInputError, match="one spectrogram"):
        A.plot_spectrogram(np.zeros((2, 5, 5), dtype=np.float32), 8000, 64)
    with pytest.raises(CourseInputError, match="n_fft"):
        A.plot_spectrogram(np.zeros((300, 5), dtype=np.float32), 8000, 64, n_fft=256)
    with pytest.raises(CourseInputError, match="hop_length"):
        A.plot_spectrogram(np.zeros((5, 5), dtype=np.float32), 8000, 0)
    with pytest.raises(CourseInputError, match="NaN"):
        A.plot_waveform(np.array([np.nan, 0.0]), 8000)
    with pytest.raises(CourseInputError, match="sample_rate"):
        A.plot_audio(np.zeros(100, dtype=np.float32), "fast")


def test_read_frames_reads_part_of_a_file_and_names_the_argument(tmp_path):
    import soundfile as sf

    from course_lib.audio import read_frames

    path = tmp_path / "ramp.wav"
    sf.write(path, np.linspace(-0.5, 0.5, 8000).astype(np.float32), 8000, subtype="FLOAT")
    data, rate = read_frames(path, "clip", lambda r: r // 4)
    assert rate == 8000 and data.shape == (2000, 1)
    assert np.allclose(data[:, 0], np.linspace(-0.5, 0.5, 8000)[:2000], atol=1e-6)
    assert read_frames(path)[0].shape == (8000, 1)
    bad = tmp_path / "bad.wav"
    bad.write_text("hello")
    with pytest.raises(CourseInputError, match="clip: .* could not be read as audio"):
        read_frames(bad, "clip")


def test_a_truncated_wav_is_an_error_not_a_short_clip(tmp_path):
    import soundfile as sf

    from course_lib.audio import load_audio

    whole = tmp_path / "whole.wav"
    sf.write(str(whole), np.full(22050, 0.1, np.float32), 22050, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:44 + 1000])       # the header still promises 22 050 samples
    with pytest.raises(CourseInputError, match=r"cut\.wav.*cut short.*promises 44,1\d\d bytes.*first 500 samples"):
        load_audio(cut)
    clip, sr = load_audio(whole)
    assert clip.shape[-1] == 22050 and sr == 22050


def test_writing_under_a_file_names_the_file(tmp_path):
    from course_lib.audio import save_wav

    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(CourseInputError, match=r"notes\.txt.*is a file"):
        save_wav(tmp_path / "notes.txt" / "clip.wav", np.zeros(100, np.float32), 22050)
