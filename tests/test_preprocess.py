"""Tests for course_lib.preprocess: the per-file pipeline, the batched path and their agreement."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from course_lib import preprocess as P
from course_lib.audio import resample
from course_lib.validate import CourseInputError


def tone(freq: float, sr: int, seconds: float, amp: float = 0.4, noise: float = 0.01, seed: int = 0) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    rng = np.random.default_rng(seed)
    return (amp * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def audio_folder(tmp_path_factory):
    """20 WAV files at 8 kHz and 22.05 kHz; some shorter and some longer than 0.74 s, one stereo."""
    root = tmp_path_factory.mktemp("audio")
    (root / "sub").mkdir()
    for i in range(20):
        sr = 8000 if i % 2 else 22050
        seconds = [0.3, 0.74, 1.0, 0.55][i % 4]
        x = tone(150 + 60 * i, sr, seconds, seed=i)
        if i == 5:
            x = np.stack([x, 0.3 * x[::-1]], axis=1)  # stereo
        folder = root / "sub" if i >= 16 else root
        sf.write(folder / f"clip{i:02d}.wav", x, sr, subtype="FLOAT" if i % 3 else "PCM_16")
    (root / ".hidden.wav").write_text("ignored: hidden files are skipped")
    return root


@pytest.fixture(scope="module")
def both_outputs(audio_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    pipeline = P.PreprocessingPipeline(out / "perfile")
    table = pipeline.process(audio_folder)
    summary = P.preprocess_folder(audio_folder, out / "features.safetensors")
    features, stats = P.load_features(summary["path"])
    return pipeline, table, summary, features, stats


# ---------------------------------------------------------------------------------------------
# normaliser
# ---------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)),
           elements=st.floats(-120.0, 40.0, allow_nan=False)),
    st.floats(-5.0, 5.0),
    st.floats(0.01, 10.0),
)
def test_normalise_denormalise_round_trip(x, min_val, width):
    norm = P.MinMaxNormaliser(min_val, min_val + width)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant array warns; it must still round-trip
        y, lo, hi = norm.normalise_with_stats(x)
    assert lo == x.min() and hi == x.max()
    assert y.min() >= min_val - 1e-9 and y.max() <= min_val + width + 1e-9
    back = norm.denormalise(y, lo, hi)
    np.testing.assert_allclose(back, x, atol=1e-6, rtol=0)


def test_denormalise_adds_negative_minimum():
    # dB features are negative: the classic bug (multiplying by the minimum) fails loudly here
    x = np.array([[-80.0, -40.0], [-20.0, -60.0]], dtype=np.float32)
    norm = P.MinMaxNormaliser()
    y = norm.normalise(x)
    assert norm.last_min == -80.0 and norm.last_max == -20.0 and y.dtype == np.float32
    np.testing.assert_allclose(y, [[0.0, 2 / 3], [1.0, 1 / 3]], atol=1e-7)
    np.testing.assert_allclose(norm.denormalise(y, -80.0, -20.0), x, atol=1e-5)
    torch_back = norm.denormalise(torch.from_numpy(y), -80.0, -20.0)
    assert isinstance(torch_back, torch.Tensor) and torch.allclose(torch_back, torch.from_numpy(x), atol=1e-5)


def test_normaliser_constant_and_errors():
    norm = P.MinMaxNormaliser(-1.0, 1.0)
    with pytest.warns(UserWarning, match="constant"):
        y, lo, hi = norm.normalise_with_stats(np.full((3, 3), -100.0))
    assert np.all(y == -1.0) and lo == hi == -100.0
    np.testing.assert_array_equal(norm.denormalise(y, lo, hi), np.full((3, 3), -100.0))
    with pytest.raises(CourseInputError, match="min_val"):
        P.MinMaxNormaliser(1.0, 1.0)
    with pytest.raises(CourseInputError, match="NaN"):
        norm.normalise(np.array([np.nan, 1.0]))
    with pytest.raises(CourseInputError, match="swap"):
        norm.denormalise(np.zeros(3), 5.0, -5.0)
    with pytest.raises(CourseInputError, match="original_min"):
        norm.denormalise(np.zeros(3), float("inf"), 1.0)
    with pytest.raises(CourseInputError, match="empty"):
        norm.normalise(np.zeros(0))


# ---------------------------------------------------------------------------------------------
# padder
# ---------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float32, st.integers(1, 50), elements=st.floats(-1, 1, width=32)),
    st.integers(0, 30),
    st.integers(0, 30),
)
def test_pad_unpad_round_trip(x, left, right):
    padder = P.Padder()
    padded = padder.right_pad(padder.left_pad(x, left), right)
    assert padded.shape == (x.size + left + right,)
    assert np.all(padded[:left] == 0) and np.all(padded[padded.size - right:] == 0)
    np.testing.assert_array_equal(padder.remove_padding(padded, left, right), x)
    full = padder.pad_to(x, x.size + right, side="right")
    np.testing.assert_array_equal(full[: x.size], x)


def test_padder_errors():
    padder = P.Padder()
    with pytest.raises(CourseInputError, match="trim"):
        padder.pad_to(np.zeros(10, dtype=np.float32), 5)
    with pytest.raises(CourseInputError, match="num_missing_items"):
        padder.right_pad(np.zeros(3, dtype=np.float32), -1)
    with pytest.raises(CourseInputError, match="mode"):
        P.Padder("zeros")
    with pytest.raises(CourseInputError, match="dimensions"):
        padder.left_pad(np.zeros((2, 3), dtype=np.float32), 1)
    with pytest.raises(CourseInputError, match="nothing"):
        padder.remove_padding(np.zeros(3, dtype=np.float32), 2, 1)
    np.testing.assert_array_equal(P.Padder("edge").right_pad(np.array([1.0, 2.0]), 2), [1, 2, 2, 2])


# ---------------------------------------------------------------------------------------------
# spectrograms
# ---------------------------------------------------------------------------------------------


def test_log_spectrogram_shape_frequency_and_floor():
    sr, bin_index = 22050, 40
    x = tone(bin_index * sr / 512, sr, 0.74, noise=0.0)
    spec = P.log_spectrogram(x)
    assert spec.shape == (256, 1 + x.size // 256) == (256, 64)
    assert np.all(np.argmax(spec[:, 2:-2], axis=0) == bin_index)
    assert spec.max() - spec.min() <= 80.0 + 1e-4
    # a 0.4-amplitude sine peaks near 0.4 * sum(hann) / 2 = 51.2, i.e. about 34.2 dB
    assert abs(spec.max() - 20 * math.log10(0.4 * 256 / 2)) < 0.1


def test_log_spectrogram_matches_librosa():
    import librosa

    x = tone(700, 22050, 0.74, seed=3)
    ref = librosa.amplitude_to_db(np.abs(librosa.stft(x, n_fft=512, hop_length=256))[:-1])
    np.testing.assert_allclose(P.log_spectrogram(x), ref, atol=0.02)


def test_batched_equals_per_clip():
    batch = np.stack([tone(200 * (i + 1), 22050, 0.3, amp=0.1 * (i + 1), seed=i) for i in range(4)])
    batch[2] = 0.0  # silence: floored at -100 dB, no NaN
    spec = P.batched_log_spectrogram(torch.from_numpy(batch))
    assert isinstance(spec, torch.Tensor) and spec.shape == (4, 256, 1 + batch.shape[1] // 256)
    for i in range(4):
        np.testing.assert_allclose(spec[i].numpy(), P.log_spectrogram(batch[i]), atol=1e-4)
    assert torch.all(spec[2] == -100.0)


def test_spectrogram_errors():
    with pytest.raises(CourseInputError, match="dimensions"):
        P.log_spectrogram(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(CourseInputError, match="dimensions"):
        P.batched_log_spectrogram(np.zeros(100, dtype=np.float32))
    with pytest.raises(CourseInputError, match="frame_size"):
        P.log_spectrogram(np.zeros(100, dtype=np.float32), frame_size=511)
    with pytest.raises(CourseInputError, match="hop_length"):
        P.log_spectrogram(np.zeros(100, dtype=np.float32), hop_length=1024)
    with pytest.raises(CourseInputError, match="integer"):
        P.log_spectrogram(np.zeros(100, dtype=np.int16))
    with pytest.raises(CourseInputError, match="top_db"):
        P.log_spectrogram(np.zeros(100, dtype=np.float32), top_db=-1)


# ---------------------------------------------------------------------------------------------
# loader
# ---------------------------------------------------------------------------------------------


def test_loader_trims_resamples_and_downmixes(tmp_path):
    x = tone(440, 8000, 1.5, seed=9)
    sf.write(tmp_path / "long.wav", np.stack([x, x * 0.5], axis=1), 8000, subtype="FLOAT")
    loader = P.Loader(22050, 0.74)
    assert loader.num_expected_samples == 16317  # round, not int(): 22050 * 0.74 = 16316.999...
    y = loader.load(tmp_path / "long.wav")
    assert y.shape == (16317,) and y.dtype == np.float32
    # the same as resampling the whole (mono) file and cutting: the cut is not an artificial edge
    full = resample(x * 0.75, 8000, 22050)[:16317]
    np.testing.assert_allclose(y, full, atol=1e-5)


def test_loader_errors(tmp_path):
    with pytest.raises(CourseInputError, match="duration"):
        P.Loader(22050, -1.0)
    with pytest.raises(CourseInputError, match="sample_rate"):
        P.Loader(22050.5)
    with pytest.raises(CourseInputError, match="mono"):
        P.Loader(mono=False)
    with pytest.raises(CourseInputError, match="does not exist"):
        P.Loader().load(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(CourseInputError, match="bad.wav.*WAV file"):
        P.Loader().load(tmp_path / "bad.wav")


# ---------------------------------------------------------------------------------------------
# the two pipelines agree
# ---------------------------------------------------------------------------------------------


def test_batched_matches_per_file(audio_folder, both_outputs):
    pipeline, table, summary, features, stats = both_outputs
    names = [f"clip{i:02d}.wav" for i in range(16)] + [f"sub/clip{i:02d}.wav" for i in range(16, 20)]
    assert stats["files"] == summary["files"] == names == sorted(table)
    assert features.shape == (20, 256, 64) and features.dtype == np.float32
    assert stats["params"]["num_samples"] == 16317 and stats["params"]["frame_size"] == 512
    for i, name in enumerate(names):
        per_file = np.load(pipeline.saver.feature_save_dir / table[name]["feature"], allow_pickle=False)
        np.testing.assert_allclose(features[i], per_file, atol=1e-4, rtol=0)
        assert abs(stats["mins"][i] - table[name]["min"]) < 1e-4
        assert abs(stats["maxs"][i] - table[name]["max"]) < 1e-4
    assert features.min() == 0.0 and features.max() == 1.0


def test_per_file_outputs_are_safe_formats(both_outputs):
    pipeline, table, *_ = both_outputs
    saved = json.loads((pipeline.saver.min_max_values_save_dir / P.STATS_FILE).read_text())
    assert saved["files"] == table and saved["params"]["sample_rate"] == 22050
    assert table["clip01.wav"]["min"] < table["clip01.wav"]["max"] < 60
    assert len(list(pipeline.saver.feature_save_dir.rglob("*.npy"))) == 20


def test_denormalised_features_are_the_db_spectrogram(audio_folder, both_outputs):
    _, _, _, features, stats = both_outputs
    db = P.denormalise_batch(features, stats["mins"], stats["maxs"])
    loader, padder = P.Loader(), P.Padder()
    for i in (0, 3, 5):  # a short 22.05 kHz clip, an 8 kHz clip, the stereo clip
        signal = loader.load(audio_folder / stats["files"][i])
        signal = padder.pad_to(signal, loader.num_expected_samples)
        np.testing.assert_allclose(db[i], P.log_spectrogram(signal), atol=1e-3)
    torch_db = P.denormalise_batch(torch.from_numpy(features), torch.from_numpy(stats["mins"]),
                                   torch.from_numpy(stats["maxs"]))
    assert isinstance(torch_db, torch.Tensor)
    np.testing.assert_allclose(torch_db.numpy(), db, atol=1e-5)


def test_short_clips_are_zero_padded_not_ringing(both_outputs):
    # clip03 is 0.55 s at 8 kHz: 4400 samples, 12128 after resampling to 22.05 kHz. Frames whose
    # window lies past that are pure padding and must sit exactly at the floor (0 after scaling):
    # resampling an already-padded clip would leave the filter's ring-out there instead.
    _, _, _, features, stats = both_outputs
    i = stats["files"].index("clip03.wav")
    first_silent = math.ceil((12128 + 256) / 256)
    assert np.all(features[i][:, first_silent:] == 0.0)
    assert features[i][:, : first_silent - 2].max() == 1.0
    j = stats["files"].index("clip00.wav")  # 0.3 s at 22.05 kHz, no resampling
    assert np.all(features[j][:, math.ceil((6615 + 256) / 256):] == 0.0)


def test_preprocess_folder_is_deterministic_and_skips_own_output(audio_folder, tmp_path):
    first = P.preprocess_folder(audio_folder, tmp_path / "a.safetensors")
    P.preprocess_folder(audio_folder, tmp_path / "b.safetensors")
    a, _ = P.load_features(first["path"])
    b, _ = P.load_features(tmp_path / "b.safetensors")
    np.testing.assert_array_equal(a, b)
    out = audio_folder / "features.safetensors"
    try:
        P.preprocess_folder(audio_folder, audio_folder)  # a folder: features.safetensors goes inside
        assert out.exists()
        again = P.preprocess_folder(audio_folder, out)  # its own output is not read as a clip
        assert again["files"] == first["files"] and len(again["files"]) == 20
        # but written somewhere else, a stray features file is reported like any non-audio file
        with pytest.raises(CourseInputError, match="features.safetensors.*safetensors file"):
            P.preprocess_folder(audio_folder, tmp_path / "c.safetensors")
    finally:
        out.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# errors in folders and files
# ---------------------------------------------------------------------------------------------


def test_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CourseInputError, match="contains no files"):
        P.preprocess_folder(empty, tmp_path / "f.safetensors")
    with pytest.raises(CourseInputError, match="contains no files"):
        P.PreprocessingPipeline(tmp_path / "o").process(empty)
    with pytest.raises(CourseInputError, match="not an existing folder"):
        P.preprocess_folder(tmp_path / "missing", tmp_path / "f.safetensors")

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    sf.write(mixed / "good.wav", tone(300, 8000, 0.5), 8000)
    (mixed / "broken.wav").write_text("<html>404 not found</html>")
    with pytest.raises(CourseInputError, match=r"broken\.wav.*HTML.*on_error='skip'"):
        P.preprocess_folder(mixed, tmp_path / "f.safetensors")
    with pytest.raises(CourseInputError, match=r"broken\.wav"):
        P.PreprocessingPipeline(tmp_path / "o").process(mixed)
    with pytest.warns(UserWarning, match="broken.wav"):
        summary = P.preprocess_folder(mixed, tmp_path / "f.safetensors", on_error="skip")
    assert summary["files"] == ["good.wav"] and summary["skipped"] == ["broken.wav"]
    _, stats = P.load_features(summary["path"])
    assert stats["skipped"] == ["broken.wav"]
    pipeline = P.PreprocessingPipeline(tmp_path / "o2", on_error="skip")
    with pytest.warns(UserWarning, match="broken.wav"):
        table = pipeline.process(mixed)
    assert list(table) == ["good.wav"] and pipeline.skipped == ["broken.wav"]

    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "a.wav").write_bytes(b"\x00\x01\x02garbage" * 10)
    with pytest.warns(UserWarning), pytest.raises(CourseInputError, match="none of the files"):
        P.preprocess_folder(only_bad, tmp_path / "f.safetensors", on_error="skip")


def test_argument_errors(audio_folder, tmp_path):
    with pytest.raises(CourseInputError, match="safetensors"):
        P.preprocess_folder(audio_folder, tmp_path / "f.npy")
    with pytest.raises(CourseInputError, match="mono"):
        P.preprocess_folder(audio_folder, tmp_path / "f.safetensors", mono=False)
    with pytest.raises(CourseInputError, match="on_error"):
        P.preprocess_folder(audio_folder, tmp_path / "f.safetensors", on_error="ignore")
    with pytest.raises(CourseInputError, match="min_val"):
        P.preprocess_folder(audio_folder, tmp_path / "f.safetensors", min_val=1.0, max_val=0.0)
    with pytest.raises(CourseInputError, match="duration"):
        P.preprocess_folder(audio_folder, tmp_path / "f.safetensors", duration=0)
    with pytest.raises(CourseInputError, match="batch_size"):
        P.preprocess_folder(audio_folder, tmp_path / "f.safetensors", batch_size=0)
    with pytest.raises(CourseInputError, match="output_path"):
        P.preprocess_folder(audio_folder, None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CourseInputError, match="is a file"):
        P.Saver(tmp_path / "file")
    with pytest.raises(CourseInputError, match="relative"):
        P.Saver(tmp_path / "s").save_feature(np.zeros(3, dtype=np.float32), "../escape")


def test_load_features_errors(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(CourseInputError, match="does not exist"):
        P.load_features(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}")
    with pytest.raises(CourseInputError, match="not a readable safetensors"):
        P.load_features(tmp_path / "junk.safetensors")
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CourseInputError, match="not one written by preprocess_folder"):
        P.load_features(tmp_path / "model.safetensors")


def test_denormalise_batch_errors():
    with pytest.raises(CourseInputError, match="one value per clip"):
        P.denormalise_batch(np.zeros((3, 4, 5)), np.zeros(2), np.ones(2))
    with pytest.raises(CourseInputError, match="swap"):
        P.denormalise_batch(np.zeros((2, 4)), np.ones(2), np.zeros(2))
    with pytest.raises(CourseInputError, match="NaN"):
        P.denormalise_batch(np.full((2, 4), np.nan), np.zeros(2), np.ones(2))


def test_small_helpers_and_constructors(tmp_path):
    assert P.num_expected_samples(22050, 0.74) == 16317 and P.num_expected_samples(8000, 1.0) == 8000
    with pytest.raises(CourseInputError, match="duration"):
        P.num_expected_samples(22050, float("nan"))
    with pytest.raises(CourseInputError, match="frame_size"):
        P.LogSpectrogramExtractor(frame_size=0)
    with pytest.raises(CourseInputError, match="on_error"):
        P.PreprocessingPipeline(tmp_path / "o", on_error="warn")
    with pytest.raises(CourseInputError, match="mono"):
        P.PreprocessingPipeline(tmp_path / "o", mono=False)
    with pytest.raises(CourseInputError, match="not an existing folder"):
        P.list_audio_files(tmp_path / "nowhere")
    with pytest.raises(CourseInputError, match="feature"):
        P.Saver(tmp_path / "s").save_feature(np.array([np.inf]), "a.wav")
    with pytest.raises(CourseInputError, match="dict"):
        P.Saver(tmp_path / "s").save_min_max_values([1, 2])
    extractor = P.LogSpectrogramExtractor(256, 64)
    assert extractor.extract(torch.zeros(1000)).shape == (128, 1 + 1000 // 64)


def test_custom_range_and_frame_size_agree(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    for i, sr in enumerate((8000, 16000, 22050)):
        sf.write(folder / f"c{i}.wav", tone(300 * (i + 1), sr, 0.2 + 0.3 * i, seed=i), sr)
    kwargs = dict(sample_rate=16000, duration=0.5, frame_size=256, hop_length=128, min_val=-1.0, max_val=1.0)
    table = P.PreprocessingPipeline(tmp_path / "o", **kwargs).process(folder)
    summary = P.preprocess_folder(folder, tmp_path / "f.safetensors", batch_size=2, **kwargs)
    features, stats = P.load_features(summary["path"])
    assert features.shape == (3, 128, 1 + 8000 // 128)
    assert features.min() == -1.0 and features.max() == 1.0
    for i, name in enumerate(stats["files"]):
        np.testing.assert_allclose(features[i], np.load(tmp_path / "o" / f"{name}.npy"), atol=1e-5)
        assert abs(stats["mins"][i] - table[name]["min"]) < 1e-4
    db = P.denormalise_batch(features, stats["mins"], stats["maxs"], -1.0, 1.0)
    assert np.allclose(db.max(axis=(1, 2)), stats["maxs"], atol=1e-4)
