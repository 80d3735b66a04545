"""hub_datasets.load_audio_dataset: the real load_dataset path on a local folder, with and without torchcodec."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from course_lib import data, hub_datasets
from course_lib.validate import CourseInputError


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("genres")
    ds = data.make_music_dataset(styles=["rock", "jazz"], n_per_style=2, duration=0.3, sample_rate=8000, seed=5)
    ds.to_parquet(str(folder / "train.parquet"))
    return folder


def _samples(ds):
    return [hub_datasets.audio_array(row) for row in ds]


def test_loads_a_local_folder_with_the_audio_column(parquet_folder):
    ds = hub_datasets.load_audio_dataset(parquet_folder, split="train")
    assert len(ds) == 4
    assert sorted(set(ds["genre"])) == ["jazz", "rock"]
    if hub_datasets.torchcodec_problem() is None:
        assert ds.features["audio"].decode  # nothing changed where torchcodec works
    for audio, sr in _samples(ds):
        assert sr == 8000 and audio.shape == (2400,) and 0 < np.abs(audio).max() <= 1


def test_without_torchcodec_the_audio_is_left_undecoded_and_reads_the_same(parquet_folder, monkeypatch):
    if hub_datasets.torchcodec_problem() is not None:
        pytest.skip("torchcodec does not load here, so there is no decoded reference to compare with")
    reference = _samples(hub_datasets.load_audio_dataset(parquet_folder))
    monkeypatch.setattr(hub_datasets, "torchcodec_problem", lambda: "RuntimeError: Could not load libtorchcodec")
    with pytest.warns(UserWarning, match="soundfile"):
        ds = hub_datasets.load_audio_dataset(parquet_folder)
    assert ds.features["audio"].decode is False
    row = ds[0]["audio"]
    assert isinstance(row, dict) and row["bytes"]  # the encoded file, not a decoder
    fallback = _samples(ds)
    for (a, sa), (b, sb) in zip(reference, fallback):
        assert sa == sb
        np.testing.assert_allclose(a, b, atol=1e-6)  # 16-bit WAV decodes identically either way


def test_torchcodec_problem_is_none_or_a_reason():
    problem = hub_datasets.torchcodec_problem()
    assert problem is None or (isinstance(problem, str) and problem)


@pytest.mark.parametrize(("path", "kwargs", "match"), [
    ("", {}, "dataset id"),
    (None, {}, "dataset id"),
    ("not a/valid id!", {}, "neither an existing folder"),
    ("lewtun/music_genres", {"split": ""}, "split"),
])
def test_bad_arguments(path, kwargs, match):
    with pytest.raises(CourseInputError, match=match):
        hub_datasets.load_audio_dataset(path, **kwargs)


def test_a_hub_id_offline_names_the_switch_and_the_stand_in(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CourseInputError, match="offline.*make_music_dataset"):
        hub_datasets.load_audio_dataset("lewtun/music_genres")


def test_wrong_split_and_column(parquet_folder):
    with pytest.raises(CourseInputError, match="split 'validation'"):
        hub_datasets.load_audio_dataset(parquet_folder, split="validation")
    with pytest.raises(CourseInputError, match="no 'sound' column"):
        hub_datasets.load_audio_dataset(parquet_folder, column="sound")
    with pytest.raises(CourseInputError, match="not an Audio column"):
        hub_datasets.load_audio_dataset(parquet_folder, column="genre")


def test_no_warning_when_torchcodec_works(parquet_folder):
    if hub_datasets.torchcodec_problem() is not None:
        pytest.skip("torchcodec does not load here")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        hub_datasets.load_audio_dataset(parquet_folder)
