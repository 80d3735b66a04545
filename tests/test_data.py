"""Tests for course_lib.hub_datasets.audio_array (reading audio from dataset rows: old dicts and
torchcodec decoders) and course_lib.data: course-made clip folders and datasets, the safetensors cache."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from course_lib import data, hub_datasets, synth
from course_lib.validate import CourseInputError

PCM16 = 1.0 / 32768 + 1e-6  # largest error of a round trip through 16-bit WAV


def _stereo(n: int = 800, sr: int = 8000) -> np.ndarray:
    t = np.arange(n) / sr
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# audio_array
# ---------------------------------------------------------------------------------------------


def test_audio_array_old_dict_rows() -> None:
    x = _stereo()
    mono, sr = hub_datasets.audio_array({"array": x[0], "sampling_rate": 8000, "path": None})
    assert sr == 8000 and mono.dtype == np.float32
    np.testing.assert_array_equal(mono, x[0])
    row = {"audio": {"array": x.T, "sampling_rate": 8000}, "label": 3}  # (time, channels) as soundfile gives
    avg, _ = hub_datasets.audio_array(row)
    np.testing.assert_allclose(avg, x.mean(0), atol=1e-7)
    both, _ = hub_datasets.audio_array(row, mono=False)
    np.testing.assert_array_equal(both, x)  # always (channels, time)
    single, _ = hub_datasets.audio_array({"array": x[0].astype(np.float64), "sampling_rate": 8000}, mono=False)
    assert single.shape == (1, 800) and single.dtype == np.float32
    custom, _ = hub_datasets.audio_array({"speech": {"array": x[1], "sampling_rate": 8000}}, column="speech")
    np.testing.assert_array_equal(custom, x[1])
    listed, _ = hub_datasets.audio_array({"array": [0.1, -0.2, 0.3], "sampling_rate": 16000})
    np.testing.assert_allclose(listed, [0.1, -0.2, 0.3], rtol=1e-6)


def test_audio_array_result_is_a_copy() -> None:
    x = np.zeros(100, np.float32)
    out, _ = hub_datasets.audio_array({"array": x, "sampling_rate": 8000})
    out[0] = 1.0
    assert x[0] == 0.0


@pytest.fixture()
def wav_dataset(tmp_path: Path) -> tuple[datasets.Dataset, np.ndarray]:
    x = _stereo()
    path = tmp_path / "tiny.wav"
    sf.write(path, x.T, 8000, subtype="PCM_16")
    ds = datasets.Dataset.from_dict({"audio": [str(path)], "label": [1]}).cast_column("audio", datasets.Audio())
    return ds, x


def test_audio_array_torchcodec_decoder(wav_dataset: tuple[datasets.Dataset, np.ndarray]) -> None:
    ds, x = wav_dataset
    value = ds[0]["audio"]
    assert hasattr(value, "get_all_samples")  # datasets >= 4 hands out a decoder, not a dict
    mono, sr = hub_datasets.audio_array(value)
    assert sr == 8000 and mono.shape == (800,)
    np.testing.assert_allclose(mono, x.mean(0), atol=PCM16)
    both, _ = hub_datasets.audio_array(ds[0], mono=False)  # the whole row works too
    assert both.shape == (2, 800)
    np.testing.assert_allclose(both, x, atol=PCM16)


def test_audio_array_undecoded_bytes(wav_dataset: tuple[datasets.Dataset, np.ndarray]) -> None:
    ds, x = wav_dataset
    raw = ds.cast_column("audio", datasets.Audio(decode=False))[0]["audio"]
    by_path, sr = hub_datasets.audio_array({"path": raw["path"], "bytes": None})
    assert sr == 8000
    np.testing.assert_allclose(by_path, x.mean(0), atol=PCM16)
    buf = io.BytesIO()
    sf.write(buf, x[0], 8000, format="WAV", subtype="PCM_16")
    by_bytes, _ = hub_datasets.audio_array({"bytes": buf.getvalue(), "path": "x.wav"})
    np.testing.assert_allclose(by_bytes, x[0], atol=PCM16)


def test_audio_array_errors(tmp_path: Path) -> None:
    good = {"array": np.zeros(10, np.float32), "sampling_rate": 8000}
    cases = [
        ({"text": "hello", "label": 1}, "no 'audio' column"),
        (42, "int"),
        ("clip.wav", "str"),
        (np.zeros(10, np.float32), "without its sampling rate"),
        ({"array": np.array([0.0, np.nan], np.float32), "sampling_rate": 8000}, "NaN"),
        ({"array": np.zeros(0, np.float32), "sampling_rate": 8000}, "empty"),
        ({"array": np.zeros(10, np.int16), "sampling_rate": 8000}, "32768"),
        ({"array": np.zeros(10, np.float32)}, "sampling_rate"),
        ({"array": np.zeros(10, np.float32), "sampling_rate": 0}, "sampling_rate"),
        ({"array": np.zeros((3, 4, 5), np.float32), "sampling_rate": 8000}, "dimensions"),
        ({"array": np.zeros((100, 100), np.float32), "sampling_rate": 8000}, "channels"),
        ({"bytes": b"not audio at all", "path": None}, "could not decode"),
        ({"path": str(tmp_path / "missing.wav"), "bytes": None}, "does not exist"),
        ({"audio": {"label": 3}}, "holds no audio"),
    ]
    for value, message in cases:
        with pytest.raises(CourseInputError, match=message):
            hub_datasets.audio_array(value)
    with pytest.raises(CourseInputError, match="mono"):
        hub_datasets.audio_array(good, mono="yes")  # type: ignore[arg-type]
    with pytest.raises(CourseInputError, match="column"):
        hub_datasets.audio_array(good, column=3)  # type: ignore[arg-type]


class _FakeSamples:
    def __init__(self, data: torch.Tensor, sample_rate: int):
        self.data, self.sample_rate = data, sample_rate


class _FakeDecoder:
    """Quacks like torchcodec's AudioDecoder, to reach the error paths a real file rarely hits."""

    def __init__(self, data: torch.Tensor | None, sample_rate: int = 8000):
        self._data, self._rate = data, sample_rate

    def get_all_samples(self) -> _FakeSamples:
        if self._data is None:
            raise RuntimeError("Invalid data found when processing input")
        return _FakeSamples(self._data, self._rate)


def test_audio_array_decoder_errors() -> None:
    mono, sr = hub_datasets.audio_array(_FakeDecoder(torch.ones(2, 5)))
    assert sr == 8000 and mono.shape == (5,)
    with pytest.raises(CourseInputError, match="could not decode"):
        hub_datasets.audio_array({"audio": _FakeDecoder(None)})
    with pytest.raises(CourseInputError, match="NaN"):
        hub_datasets.audio_array(_FakeDecoder(torch.tensor([[0.0, float("nan")]])))
    with pytest.raises(CourseInputError, match="empty"):
        hub_datasets.audio_array(_FakeDecoder(torch.zeros(1, 0)))
    with pytest.raises(CourseInputError, match="sample_rate"):
        hub_datasets.audio_array(_FakeDecoder(torch.zeros(1, 4), sample_rate=0))


# ---------------------------------------------------------------------------------------------
# Course-made data
# ---------------------------------------------------------------------------------------------


def test_make_clip_folder(tmp_path: Path) -> None:
    paths = data.make_clip_folder(tmp_path / "clips", n=8, seed=3, sample_rates=(8000, 16000), duration=0.5,
                                  short_fraction=0.25, stereo_fraction=0.25)
    assert [p.name for p in paths] == [f"clip_{i:03d}_{k}.wav" for i, k in
                                       enumerate(["tone", "chord", "drum", "music"] * 2)]
    infos = [sf.info(p) for p in paths]
    assert {i.samplerate for i in infos} == {8000, 16000}
    assert all(i.subtype == "PCM_16" for i in infos)
    frames = [i.frames / i.samplerate for i in infos]
    assert sum(f < 0.5 * 0.75 for f in frames) == 2  # a quarter are 30-70 % long
    assert sum(f == pytest.approx(0.5, abs=1e-3) for f in frames) == 6
    assert sum(i.channels == 2 for i in infos) == 2
    for p in paths:
        x, _ = sf.read(p)
        assert np.all(np.isfinite(x)) and 0.25 < np.abs(x).max() <= 0.91
    again = data.make_clip_folder(tmp_path / "again", n=8, seed=3, sample_rates=(8000, 16000), duration=0.5,
                                  short_fraction=0.25, stereo_fraction=0.25)
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(paths, again))
    other = data.make_clip_folder(tmp_path / "other", n=8, seed=4, sample_rates=(8000, 16000), duration=0.5)
    assert any(a.read_bytes() != b.read_bytes() for a, b in zip(paths, other))


def test_make_clip_folder_errors(tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    bad_calls = [
        (dict(folder=a_file), "folder"),
        (dict(folder=3), "folder"),
        (dict(n=0), "n"),
        (dict(seed=-1), "seed"),
        (dict(sample_rates=()), "sample_rates"),
        (dict(sample_rates=(4000,)), "sample_rates"),
        (dict(sample_rates=(8000, 22050.5)), "sample_rates"),
        (dict(duration=0.0), "duration"),
        (dict(duration=float("nan")), "duration"),
        (dict(short_fraction=1.5), "short_fraction"),
        (dict(stereo_fraction=-0.1), "stereo_fraction"),
        (dict(kinds=("tone", "speech")), "kinds"),
        (dict(kinds="tone"), "kinds"),
    ]
    for kwargs, message in bad_calls:
        kwargs.setdefault("folder", tmp_path / "out")
        with pytest.raises(CourseInputError, match=message):
            data.make_clip_folder(**kwargs)


def test_make_music_dataset_schema_and_round_trip() -> None:
    ds = data.make_music_dataset(styles=["techno", "ambient"], n_per_style=2, duration=1.0, sample_rate=8000,
                                 seed=5)
    assert ds.column_names == ["audio", "song_id", "genre_id", "genre"]
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].sampling_rate == 8000
    assert ds.features["song_id"] == datasets.Value("int64")
    assert ds.features["genre_id"] == datasets.Value("int64")
    assert ds.features["genre"] == datasets.Value("string")
    assert ds.num_rows == 4
    assert ds["genre"] == ["techno", "ambient", "techno", "ambient"]
    assert ds["genre_id"] == [synth.MUSIC_STYLES.index(g) for g in ds["genre"]]
    assert len(set(ds["song_id"])) == 2
    row = ds[1]
    audio, sr = hub_datasets.audio_array(row["audio"])
    assert sr == 8000 and audio.shape == (8000,)
    expected = synth.music_clip(row["genre"], 1.0, 8000, seed=row["song_id"])
    np.testing.assert_allclose(audio, expected, atol=PCM16)
    same = data.make_music_dataset(styles=["techno", "ambient"], n_per_style=2, duration=1.0, sample_rate=8000,
                                   seed=5)
    assert same["song_id"] == ds["song_id"]
    np.testing.assert_array_equal(hub_datasets.audio_array(same[3])[0], hub_datasets.audio_array(ds[3])[0])
    assert data.make_music_dataset(["rock"], 1, 0.5, 8000, seed=6)["song_id"] != ds["song_id"][:1]


def test_make_music_dataset_errors() -> None:
    for kwargs, message in [
        (dict(styles=["polka"]), "styles"),
        (dict(styles="rock"), "styles"),
        (dict(styles=["rock", "rock"]), "twice"),
        (dict(n_per_style=0), "n_per_style"),
        (dict(duration=-1.0), "duration"),
        (dict(sample_rate=4000), "sample_rate"),
        (dict(seed=1.5), "seed"),
    ]:
        with pytest.raises(CourseInputError, match=message):
            data.make_music_dataset(**kwargs)


def test_make_drum_dataset() -> None:
    ds = data.make_drum_dataset(n_per_class=2, seed=1, sample_rate=8000, length=2048)
    assert ds.column_names == ["audio", "label", "label_name"]
    assert ds.features["label"].names == list(synth.DRUM_CLASSES)
    assert ds["label_name"] == [synth.DRUM_CLASSES[i] for i in ds["label"]]
    audio, labels = synth.drum_dataset(2, seed=1, sample_rate=8000, length=2048)
    assert ds["label"] == labels.tolist()
    decoded, sr = hub_datasets.audio_array(ds[5])
    assert sr == 8000
    np.testing.assert_allclose(decoded, audio[5], atol=PCM16)
    with pytest.raises(CourseInputError, match="sample_rate"):
        data.make_drum_dataset(sample_rate=-1)
    with pytest.raises(CourseInputError, match="classes"):
        data.make_drum_dataset(classes=("kick", "bell"))


# ---------------------------------------------------------------------------------------------
# Caching
# ---------------------------------------------------------------------------------------------


def test_cache_dir_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    assert data.cache_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "afile"))
    with pytest.raises(CourseInputError, match="COURSE_CACHE"):
        data.cache_dir()
    key = data.cache_key(n_fft=1024, hop=256, name="mel", sizes=[1, 2])
    assert key == data.cache_key(sizes=[1, 2], name="mel", hop=256, n_fft=1024)  # order does not matter
    assert len(key) == 16 and all(c in "0123456789abcdef" for c in key)
    assert key != data.cache_key(n_fft=1024, hop=128, name="mel", sizes=[1, 2])
    assert data.cache_key(n=np.int64(3), path=Path("a")) == data.cache_key(n=3, path="a")
    with pytest.raises(CourseInputError, match="params"):
        data.cache_key(fn=print)
    with pytest.raises(CourseInputError, match="params"):
        data.cache_key(x=float("nan"))


def test_cached_tensors_hit_and_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    calls = []

    def compute() -> dict[str, torch.Tensor]:
        calls.append(1)
        g = torch.Generator().manual_seed(0)
        return {"mean": torch.randn(4, generator=g), "counts": torch.arange(3), "view": torch.ones(6)[::2]}

    first = data.cached_tensors("stats", {"n": 4}, compute)
    second = data.cached_tensors("stats", {"n": 4}, compute)
    assert len(calls) == 1  # the second call read the file
    assert set(second) == {"mean", "counts", "view"}
    for k in first:
        torch.testing.assert_close(first[k], second[k])
    assert second["counts"].dtype == torch.int64
    data.cached_tensors("stats", {"n": 5}, compute)
    assert len(calls) == 2  # new parameters, new entry
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(f"stats-{data.cache_key(n=n)}.safetensors" for n in (4, 5))  # no temp files left
    from_numpy = data.cached_tensors("np", {}, lambda: {"x": np.arange(4.0)}, folder=tmp_path / "sub")
    assert torch.equal(from_numpy["x"], torch.arange(4.0, dtype=torch.float64))
    assert (tmp_path / "sub").is_dir()


def test_cached_tensors_recovers_from_a_corrupt_file(tmp_path: Path) -> None:
    calls = []

    def compute() -> dict[str, torch.Tensor]:
        calls.append(1)
        return {"x": torch.full((3,), 2.0)}

    path = tmp_path / f"thing-{data.cache_key(a=1)}.safetensors"
    path.write_bytes(b"\x00garbage, not a safetensors file")
    with pytest.warns(UserWarning, match="computing it again"):
        out = data.cached_tensors("thing", {"a": 1}, compute, folder=tmp_path)
    assert torch.equal(out["x"], torch.full((3,), 2.0)) and len(calls) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten file loads cleanly
        again = data.cached_tensors("thing", {"a": 1}, compute, folder=tmp_path)
    assert torch.equal(again["x"], out["x"]) and len(calls) == 1
    # a readable file written for other parameters (same name) is not trusted either
    save_file({"x": torch.zeros(3)}, str(path), metadata={"params": "{}"})
    with pytest.warns(UserWarning, match="other parameters"):
        fixed = data.cached_tensors("thing", {"a": 1}, compute, folder=tmp_path)
    assert torch.equal(fixed["x"], torch.full((3,), 2.0)) and len(calls) == 2


def test_cached_tensors_errors(tmp_path: Path) -> None:
    ok = lambda: {"x": torch.zeros(1)}  # noqa: E731
    for args, message in [
        (("../escape", {}, ok), "name"),
        (("", {}, ok), "name"),
        (("a", [1, 2], ok), "params"),
        (("a", {}, 3), "compute_fn"),
        (("a", {}, lambda: [1, 2]), "compute_fn"),
        (("a", {}, lambda: {}), "compute_fn"),
        (("a", {}, lambda: {"x": "text"}), "compute_fn"),
        (("a", {}, lambda: {1: torch.zeros(1)}), "compute_fn"),
        (("a", {"f": print}, ok), "params"),
    ]:
        with pytest.raises(CourseInputError, match=message):
            data.cached_tensors(*args, folder=tmp_path)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(CourseInputError, match="folder"):
        data.cached_tensors("a", {}, ok, folder=tmp_path / "plain")
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".a-*"))


def test_make_music_dataset_uneven_genre_sizes() -> None:
    counts = {"rock": 3, "jazz": 1, "ambient": 0, "techno": 2}
    ds = data.make_music_dataset(n_per_style=counts, duration=0.3, sample_rate=8000, seed=2)
    assert len(ds) == 6
    got = {g: ds["genre"].count(g) for g in set(ds["genre"])}
    assert got == {"rock": 3, "jazz": 1, "techno": 2}
    assert [r[:3] for r in data.genre_table(ds)] == [("rock", 4, 3), ("techno", 1, 2), ("jazz", 5, 1)]
    # the same song ids as the even version for the rows both have
    even = data.make_music_dataset(styles=["rock"], n_per_style=3, duration=0.3, sample_rate=8000, seed=2)
    assert [r for r, g in zip(ds["song_id"], ds["genre"]) if g == "rock"] == even["song_id"]
    for bad, match in (({"polka": 2}, "polka.* is not one of"), ({"rock": 0}, "every count is 0"),
                       ({"rock": -1}, "n_per_style")):
        with pytest.raises(CourseInputError, match=match):
            data.make_music_dataset(n_per_style=bad, duration=0.3, sample_rate=8000)
