"""Tests for the spoken-digit-like words of course_lib.synth (lesson 06's data): layout and seeding,
the lesson-01 spectrogram size, classes that a simple classifier tells apart on new seeds,
consonants where their names say, a seed that changes the speaker, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import synth
from course_lib.preprocess import batched_log_spectrogram, num_expected_samples
from course_lib.validate import CourseInputError

SR = 22050


def _high_share(x: np.ndarray, cut: float = 4000.0) -> float:
    """Share of the clip's power above ``cut`` Hz."""
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(power[f > cut].sum() / power.sum())


def _f0(x: np.ndarray) -> float:
    """Pitch of the loudest 100 ms, from the autocorrelation peak between 60 and 320 Hz."""
    w = int(0.1 * SR)
    start = int(np.argmax(np.convolve(x.astype(np.float64) ** 2, np.ones(w), "valid")))
    seg = x[start:start + w] * np.hanning(w)
    ac = np.correlate(seg, seg, "full")[w - 1:]
    lo, hi = int(SR / 320), int(SR / 60)
    return SR / (lo + int(np.argmax(ac[lo:hi])))


def _pooled(audio: np.ndarray) -> np.ndarray:
    """16 frequency bands x 6 time chunks of each clip's dB spectrogram, over the part that sounds."""
    out = []
    for s in batched_log_spectrogram(audio):
        s = s - s.max()
        active = np.where(s.max(axis=0) > -40)[0]
        seg = s[:, active[0]:active[-1] + 1].reshape(16, 16, -1).mean(axis=1)
        chunks = np.array_split(np.arange(seg.shape[1]), 6)
        out.append(np.stack([seg[:, c].mean(axis=1) for c in chunks], 1).ravel())
    return np.array(out)


def test_dataset_layout_and_seeding() -> None:
    audio, labels = synth.digit_dataset(2, seed=3)
    n = num_expected_samples(SR, 0.74)
    assert audio.shape == (20, n) and audio.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, list(range(10)) * 2)
    again, _ = synth.digit_dataset(2, seed=3)
    np.testing.assert_array_equal(again, audio)  # deterministic
    bigger, _ = synth.digit_dataset(3, seed=3)
    np.testing.assert_array_equal(bigger[:20], audio)  # clip i depends only on (seed, class, i)
    other, _ = synth.digit_dataset(2, seed=4)
    assert np.abs(other - audio).max() > 0.1
    some, lab = synth.digit_dataset(2, seed=3, classes=("nine", "two"))
    np.testing.assert_array_equal(lab, [9, 2, 9, 2])
    np.testing.assert_array_equal(some[1], audio[2])  # the same (seed, class, i) -> the same clip


def test_clip_level_silence_and_names() -> None:
    for seed in range(4):
        x = synth.digit_like_clip("seven", seed)
        assert np.all(np.isfinite(x)) and 0.35 - 1e-6 <= np.abs(x).max() <= 0.9 + 1e-6
        assert np.abs(x[: int(0.01 * SR)]).max() < 1e-3  # the word starts after >= 15 ms of silence
        assert np.abs(x[-int(0.015 * SR):]).max() < 1e-3  # and ends before the clip does
    np.testing.assert_array_equal(synth.digit_like_clip("three", 5), synth.digit_like_clip(3, 5))
    assert synth.DIGIT_CLASSES[3] == "three" and len(set(synth.DIGIT_CLASSES)) == 10


def test_lesson01_pipeline_gives_256_by_64() -> None:
    audio, _ = synth.digit_dataset(1, seed=0, classes=("zero", "six"))
    assert batched_log_spectrogram(audio).shape == (2, 256, 64)
    x16 = synth.digit_like_clip(0, 0, sample_rate=16000, duration=0.6)
    assert x16.shape == (9600,) and np.all(np.isfinite(x16))


def test_ten_classes_tell_apart_on_new_seeds() -> None:
    train, train_labels = synth.digit_dataset(6, seed=0)
    test, test_labels = synth.digit_dataset(4, seed=1)
    a, b = _pooled(train), _pooled(test)
    mean, std = a.mean(0), a.std(0) + 1e-6
    a, b = (a - mean) / std, (b - mean) / std
    centroids = np.stack([a[train_labels == c].mean(0) for c in range(10)])
    predicted = np.argmin(((b[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (predicted == test_labels).mean() >= 0.95  # a nearest-class-mean rule, 40 unseen clips


def test_hisses_where_the_words_have_them() -> None:
    hiss = {c: np.median([_high_share(synth.digit_like_clip(c, s)) for s in range(4)])
            for c in ("six", "seven", "one", "nine")}
    # "s" is a hiss above 4 kHz; "one" and "nine" are all voice and hum.
    assert min(hiss["six"], hiss["seven"]) > 10 * max(hiss["one"], hiss["nine"])
    assert hiss["six"] > 0.03


def test_seed_changes_the_speaker() -> None:
    pitches = np.array([_f0(synth.digit_like_clip("nine", s)) for s in range(8)])
    assert np.all((pitches > 60) & (pitches < 320))
    assert pitches.max() / pitches.min() > 1.6  # low and high voices
    onsets = [int(np.argmax(np.abs(synth.digit_like_clip("one", s)) > 0.01)) for s in range(6)]
    assert len(set(onsets)) == 6  # and where the word starts


def test_digit_errors() -> None:
    with pytest.raises(CourseInputError, match="label"):
        synth.digit_like_clip(10)
    with pytest.raises(CourseInputError, match="label"):
        synth.digit_like_clip("ten")
    with pytest.raises(CourseInputError, match="label"):
        synth.digit_like_clip(True)  # type: ignore[arg-type]
    with pytest.raises(CourseInputError, match="duration"):
        synth.digit_like_clip(0, duration=0.3)
    with pytest.raises(CourseInputError, match="sample_rate"):
        synth.digit_like_clip(0, sample_rate=4000)
    with pytest.raises(CourseInputError, match="seed"):
        synth.digit_like_clip(0, seed=-1)
    with pytest.raises(CourseInputError, match="n_per_class"):
        synth.digit_dataset(0)
    with pytest.raises(CourseInputError, match="classes"):
        synth.digit_dataset(1, classes=("one", "eleven"))
    with pytest.raises(CourseInputError, match="classes"):
        synth.digit_dataset(1, classes="one")  # type: ignore[arg-type]
    with pytest.raises(CourseInputError, match="seed"):
        synth.digit_dataset(1, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(CourseInputError, match="duration"):
        synth.digit_dataset(1, duration=0.2)


def test_fixed_seeds_give_the_pinned_words() -> None:
    """The shipped digit models trained on this data: a refactor must not change the sound of a seed."""
    audio, labels = synth.digit_dataset(1, seed=0, sample_rate=8000, duration=0.6)
    want = [(556.472152, -1.511743), (513.271628, -0.867354), (306.176626, 0.208571), (313.658604, 0.681803),
            (479.574087, -0.068629), (162.603605, 0.046688), (371.874337, -0.364701), (259.677015, -1.548966),
            (390.349444, 1.721826), (310.090887, 0.390053)]
    assert labels.tolist() == list(range(10))
    for row, w in zip(audio.astype(np.float64), want):
        got = (float(np.abs(row).sum()), float(row[::97].sum()))
        assert got == pytest.approx(w, rel=1e-4, abs=1e-4)
