"""Tests for lesson 03's data path in course_lib.data: the genre table, selecting a genre, cached
whole-clip mel spectrograms served as random crops (CachedMelSlices), and the tutorial-style
DataLoader it is compared with."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from course_lib import data, hub_datasets
from course_lib.audio import resample
from course_lib.diffusion import images_to_tensor
from course_lib.mel import Mel
from course_lib.training import TrainConfig, train
from course_lib.validate import CourseInputError

SR = 44100


def small_mel(**overrides: int) -> Mel:
    """The shipped model's Mel settings (22 050 Hz, n_fft 1024, hop 512), 32 frames wide to keep tests fast."""
    settings = {"x_res": 32, "y_res": 32, "sample_rate": 22050, "n_fft": 1024, "hop_length": 512}
    settings.update(overrides)
    return Mel(**settings)


@pytest.fixture(scope="module")
def music() -> datasets.Dataset:
    """Six course-made 2-second songs at 44.1 kHz, one per genre, with lewtun/music_genres' columns."""
    torch.set_num_threads(1)
    return data.make_music_dataset(n_per_style=1, duration=2.0, seed=3)


@pytest.fixture()
def count_clip_transforms(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts how many clips go through the (expensive) whole-clip mel transform."""
    calls: list[int] = []
    real = data._clip_db

    def counting(audio: np.ndarray, mel: Mel, n_frames: int) -> torch.Tensor:
        calls.append(n_frames)
        return real(audio, mel, n_frames)

    monkeypatch.setattr(data, "_clip_db", counting)
    return calls


def _genre_rows(genres: list[str], ids: list[int]) -> datasets.Dataset:
    """Rows whose audio is junk that cannot be decoded: any function that decodes it fails."""
    features = datasets.Features({"audio": datasets.Audio(sampling_rate=SR), "song_id": datasets.Value("int64"),
                                  "genre_id": datasets.Value("int64"), "genre": datasets.Value("string")})
    return datasets.Dataset.from_dict(
        {"audio": [{"bytes": b"not audio", "path": None}] * len(genres), "song_id": list(range(len(genres))),
         "genre_id": ids, "genre": genres}, features=features)


# ---------------------------------------------------------------------------------------------
# genre_table, format_genre_table, select_genre
# ---------------------------------------------------------------------------------------------


def test_genre_table_counts_sorted_without_decoding_audio() -> None:
    ds = _genre_rows(["Rock", "Hip-Hop", "Rock", "Punk", "Rock", "Hip-Hop", "Classical"], [1, 2, 1, 3, 1, 2, 0])
    table = data.genre_table(ds)  # the junk audio would raise if anything decoded it
    assert table == [("Rock", 1, 3), ("Hip-Hop", 2, 2), ("Classical", 0, 1), ("Punk", 3, 1)]
    text = data.format_genre_table(table)
    lines = text.splitlines()
    assert lines[0].split() == ["genre", "id", "clips", "share"]
    assert lines[1].split() == ["Rock", "1", "3", "42.9%"]
    assert lines[4].split() == ["Punk", "3", "1", "14.3%"]
    assert lines[-1].split() == ["total", "7", "100.0%"]
    rows = [{"genre": g, "genre_id": i, "audio": None} for g, i in [("b", 1), ("a", 0), ("b", 1)]]
    assert data.genre_table(rows) == [("b", 1, 2), ("a", 0, 1)]  # a list of rows works too


def test_select_genre_by_name_any_case_or_id() -> None:
    ds = _genre_rows(["Rock", "Hip-Hop", "Rock", "Punk", "Hip-Hop"], [1, 2, 1, 3, 2])
    hiphop = data.select_genre(ds, "hip hop")  # case, spaces and hyphens do not count
    assert isinstance(hiphop, datasets.Dataset)
    assert list(hiphop["song_id"]) == [1, 4] and set(hiphop["genre"]) == {"Hip-Hop"}
    assert list(data.select_genre(ds, "ROCK")["song_id"]) == [0, 2]
    assert list(data.select_genre(ds, 3)["song_id"]) == [3]
    pairs = [("hiphop", 0), ("rock", 4), ("hiphop", 0)]
    rows = [{"genre": g, "genre_id": i, "n": k} for k, (g, i) in enumerate(pairs)]
    assert [r["n"] for r in data.select_genre(rows, "Hip-Hop")] == [0, 2]  # offline names match online ones


def test_select_genre_errors() -> None:
    ds = _genre_rows(["Rock", "Hip-Hop", "Rock"], [1, 2, 1])
    unknown = r"'Jazz' is not in this dataset; its genres are: Rock \(2\), Hip-Hop \(1\)\."
    with pytest.raises(CourseInputError, match=unknown):
        data.select_genre(ds, "Jazz")
    with pytest.raises(CourseInputError, match="not in this dataset"):
        data.select_genre(ds, 7)
    with pytest.raises(CourseInputError, match="genre name"):
        data.select_genre(ds, " - ")
    with pytest.raises(CourseInputError, match="several genres"):
        data.select_genre(_genre_rows(["Hip-Hop", "hip hop"], [1, 2]), "HipHop")
    with pytest.raises(CourseInputError, match="no rows"):
        data.genre_table(ds.select([]))
    with pytest.raises(CourseInputError, match=r"no 'genre_id' column .*make_music_dataset"):
        data.genre_table(ds.remove_columns("genre_id"))
    with pytest.raises(CourseInputError, match="datasets.Dataset or a list of row dicts"):
        data.genre_table("Rock")
    with pytest.raises(CourseInputError, match="genre_table"):
        data.format_genre_table([("Rock", 1)])


# ---------------------------------------------------------------------------------------------
# CachedMelSlices
# ---------------------------------------------------------------------------------------------


def test_batches_shape_range_and_scaling(music: datasets.Dataset, tmp_path: Path) -> None:
    mel = small_mel()
    slices = data.CachedMelSlices(music, mel, batch_size=4, crops_per_clip=2, folder=tmp_path, progress=False)
    assert slices.n_clips == 6 and len(slices) == 3  # 12 crops per epoch, batches of 4
    batches = list(slices(0))
    assert len(batches) == 3
    clips, starts = slices.epoch_plan(0)
    for b, batch in enumerate(batches):
        assert batch.shape == (4, 1, 32, 32) and batch.dtype == torch.float32
        assert float(batch.min()) >= -1.0 and float(batch.max()) <= 1.0
        pixels = slices.crop_images(clips[4 * b:4 * b + 4], starts[4 * b:4 * b + 4])
        torch.testing.assert_close(batch, images_to_tensor(pixels), rtol=0, atol=0)
    # every crop is scaled to its own loudest value, as Mel does: each image reaches grey level 255
    assert all(int(slices.crop_images([c], [s]).max()) == 255 for c, s in zip(clips.tolist(), starts.tolist()))
    # each clip appears crops_per_clip times per epoch; crops start inside the clip
    assert torch.bincount(clips, minlength=6).tolist() == [2] * 6
    assert bool((starts >= 0).all()) and bool((starts < slices.n_starts[clips]).all())


def test_first_crop_equals_the_first_slice_image(music: datasets.Dataset, tmp_path: Path) -> None:
    mel = small_mel()
    slices = data.CachedMelSlices(music, mel, batch_size=1, folder=tmp_path, progress=False)
    for clip in range(slices.n_clips):
        audio, sr = hub_datasets.audio_array(music[clip])
        mel.load_audio(raw_audio=resample(audio, sr, mel.sr))
        expected = torch.from_numpy(np.asarray(mel.audio_slice_to_image(0)))
        got = slices.crop_images([clip], [0])[0]
        # both start at the clip's first sample, so both see the same zero padding on the left; on the
        # right the slice's last window reaches one sample past it, where Hann's weight is 1e-5
        assert int((got.int() - expected.int()).abs().max()) <= 1
        assert float((got != expected).float().mean()) < 0.01


def test_crops_equal_slice_images_away_from_the_edges(music: datasets.Dataset, tmp_path: Path) -> None:
    """A crop at frame c is the image of the audio slice at sample c * hop, except for the window's reach
    at its edges: there the slice's spectrogram sees zero padding and the crop the neighbouring audio."""
    for n_fft in (1024, 2048):
        mel = small_mel(n_fft=n_fft)
        edge = n_fft // 2 // mel.hop_length  # columns whose window pokes out of the slice on the left
        slices = data.CachedMelSlices(music, mel, batch_size=1, folder=tmp_path, progress=False)
        same = compared = 0
        for clip in (0, 3):
            audio, sr = hub_datasets.audio_array(music[clip])
            audio = resample(audio, sr, mel.sr)
            for c in range(1, int(slices.n_starts[clip]), 3):
                crop = slices.crop_images([clip], [c])[0]
                piece = audio[c * mel.hop_length:c * mel.hop_length + mel.slice_size]
                image = mel.audio_to_images(piece)[0]
                inner = slice(edge, mel.x_res - edge)
                crop_db = slices.db[int(slices.offsets[clip]) + c:][:mel.x_res]
                loudest_column = int(crop_db.amax(dim=1).argmax())
                if edge <= loudest_column < mel.x_res - edge:  # same reference level: the inside is identical
                    torch.testing.assert_close(crop[:, inner], image[:, inner], rtol=0, atol=0)
                    same += 1
                else:  # the crop's loudest value is in an edge column, brighter than the slice's edge
                    # there: its reference level is higher, so its inside is darker by one constant shift
                    shift = image[:, inner].int() - crop[:, inner].int()
                    lit = crop[:, inner] > 0  # pixels above the floor in both images
                    assert int(shift.min()) >= 0 and int(shift[lit].max()) - int(shift[lit].min()) <= 1
                compared += 1
                assert int((crop[:, :edge].int() - image[:, :edge].int()).abs().max()) > 0  # the edge differs
        assert compared >= 10 and same >= compared // 2


def test_epochs_are_reproducible_and_differ(music: datasets.Dataset, tmp_path: Path) -> None:
    mel = small_mel()
    a = data.CachedMelSlices(music, mel, batch_size=2, seed=5, folder=tmp_path, progress=False)
    b = data.CachedMelSlices(music, mel, batch_size=2, seed=5, folder=tmp_path, progress=False)  # from the cache
    assert not a.from_cache and b.from_cache
    for epoch in (0, 3):
        for x, y in zip(a(epoch), b(epoch), strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    plans = [a.epoch_plan(e) for e in range(4)]
    assert len({tuple(s.tolist()) for _, s in plans}) == 4  # crops move between epochs
    assert len({tuple(c.tolist()) for c, _ in plans}) > 1  # so does the order
    assert not torch.equal(next(iter(a(0))), next(iter(a(1))))
    other_seed = data.CachedMelSlices(music, mel, batch_size=2, seed=6, folder=tmp_path, progress=False)
    assert not torch.equal(other_seed.epoch_plan(0)[1], a.epoch_plan(0)[1])


def test_cache_is_reused_and_keyed_by_the_mel_settings(music: datasets.Dataset, tmp_path: Path,
                                                       count_clip_transforms: list[int]) -> None:
    mel = small_mel()
    first = data.CachedMelSlices(music, mel, folder=tmp_path, progress=False)
    assert len(count_clip_transforms) == 6 and not first.from_cache
    again = data.CachedMelSlices(music, mel, batch_size=2, seed=9, folder=tmp_path, progress=False)
    assert len(count_clip_transforms) == 6 and again.from_cache  # batch size and seed are not part of the key
    torch.testing.assert_close(again.db, first.db, rtol=0, atol=0)
    assert len(list(tmp_path.glob("mel_slices-*.safetensors"))) == 1
    # top_db only scales crops, so it reuses the cache, but it changes the images
    darker = data.CachedMelSlices(music, small_mel(top_db=40), folder=tmp_path, progress=False)
    assert len(count_clip_transforms) == 6 and darker.from_cache
    assert int(darker.crop_images([0], [2]).sum()) < int(first.crop_images([0], [2]).sum())
    for changed in (small_mel(n_fft=2048), small_mel(hop_length=256), small_mel(y_res=16), small_mel(x_res=16),
                    small_mel(sample_rate=16000)):
        before = len(count_clip_transforms)
        data.CachedMelSlices(music, changed, folder=tmp_path, progress=False)
        assert len(count_clip_transforms) == before + 6
    data.CachedMelSlices(music.select(range(5)), mel, folder=tmp_path, progress=False)  # other clips: new key
    assert len(count_clip_transforms) == 6 * 6 + 5
    assert len(list(tmp_path.glob("mel_slices-*.safetensors"))) == 7


def test_short_clips_pad_skip_or_error(music: datasets.Dataset, tmp_path: Path) -> None:
    mel = small_mel()  # one slice = 32 * 512 - 1 samples = 0.74 s at 22 050 Hz
    short = data.make_music_dataset(styles=["rock"], n_per_style=1, duration=0.5, seed=1)
    mixed = datasets.concatenate_datasets([music.select([0, 1]), short, music.select([2])])
    padded = data.CachedMelSlices(mixed, mel, batch_size=2, folder=tmp_path, progress=False)
    assert padded.status.tolist() == [0, 0, 1, 0] and padded.n_clips == 4
    assert int(padded.n_starts[2]) == 1  # padded to exactly one slice: one possible crop
    image = padded.crop_images([2], [0])[0]
    assert int(image[:, :19].max()) == 255 and int(image[:, 24:].max()) == 0  # 0.5 s of sound, then silence
    skipped = data.CachedMelSlices(mixed, mel, batch_size=2, short="skip", folder=tmp_path, progress=False)
    assert skipped.status.tolist() == [0, 0, 2, 0] and skipped.n_clips == 3
    assert padded.rows.tolist() == [0, 1, 2, 3] and skipped.rows.tolist() == [0, 1, 3]
    o = padded.offsets.tolist()
    torch.testing.assert_close(skipped.db, torch.cat([padded.db[:o[2]], padded.db[o[3]:]]), rtol=0, atol=0)
    torch.testing.assert_close(skipped.crop_images([2], [5]), padded.crop_images([3], [5]), rtol=0, atol=0)
    with pytest.raises(CourseInputError, match=r"row 2 holds 0.50 s .* short='pad'"):
        data.CachedMelSlices(mixed, mel, short="error", folder=tmp_path, progress=False)
    with pytest.raises(CourseInputError, match="all 1 clips are shorter than one slice"):
        data.CachedMelSlices(short, mel, batch_size=1, short="skip", folder=tmp_path, progress=False)
    assert "1 padded" in repr(padded) and "1 skipped" in repr(skipped)


def test_rows_stereo_and_other_rates_are_decoded_once(tmp_path: Path) -> None:
    t = np.arange(int(1.5 * SR)) / SR
    left = (0.5 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    right = (0.3 * np.sin(2 * np.pi * 1800 * t)).astype(np.float32)
    stereo = [{"audio": {"array": np.stack([left, right]), "sampling_rate": SR}}]
    mono = [{"audio": {"array": (left + right) / 2, "sampling_rate": SR}}]
    native = [{"audio": {"array": resample((left + right) / 2, SR, 22050), "sampling_rate": 22050}}]
    mel = small_mel()
    a = data.CachedMelSlices(stereo, mel, batch_size=1, folder=tmp_path, progress=False)
    b = data.CachedMelSlices(mono, mel, batch_size=1, folder=tmp_path, progress=False)
    c = data.CachedMelSlices(native, mel, batch_size=1, folder=tmp_path, progress=False)
    assert not a.from_cache and not c.from_cache  # other audio (here: another rate), another key
    torch.testing.assert_close(a.db, b.db, rtol=0, atol=1e-3)  # stereo is averaged to mono
    torch.testing.assert_close(c.db, b.db, rtol=0, atol=0)
    assert a.n_clips == 1 and int(a.n_starts[0]) == (len(native[0]["audio"]["array"]) - mel.slice_size) // 512 + 1


def test_plugs_into_training_as_an_epoch_factory(music: datasets.Dataset, tmp_path: Path) -> None:
    slices = data.CachedMelSlices(music, small_mel(), batch_size=4, folder=tmp_path, progress=False)
    seen: list[torch.Tensor] = []
    model = torch.nn.Conv2d(1, 1, 3, padding=1)

    def loss_fn(m: torch.nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        seen.append(batch.clone())
        return torch.nn.functional.mse_loss(m(batch), batch)

    config = TrainConfig(output_dir=str(tmp_path / "run"), max_steps=3, batch_size=99, checkpoint_every=100)
    result = train(model, slices, loss_fn, config, progress=False)
    assert result.steps == 3 and len(slices) == 1  # one batch per epoch: epochs 0, 1 and 2
    expected = [next(iter(slices(e))) for e in range(3)]
    for got, want in zip(seen, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_cached_mel_slices_errors(music: datasets.Dataset, tmp_path: Path) -> None:
    mel = small_mel()
    with pytest.raises(CourseInputError, match="no rows"):
        data.CachedMelSlices(music.select([]), mel, folder=tmp_path)
    with pytest.raises(CourseInputError, match=r"no 'sound' column"):
        data.CachedMelSlices(music, mel, column="sound", folder=tmp_path)
    with pytest.raises(CourseInputError, match="course_lib.mel.Mel"):
        data.CachedMelSlices(music, {"x_res": 64}, folder=tmp_path)
    with pytest.raises(CourseInputError, match="short"):
        data.CachedMelSlices(music, mel, short="trim", folder=tmp_path)
    with pytest.raises(CourseInputError, match="do not fill one batch of 7; lower batch_size"):
        data.CachedMelSlices(music, mel, batch_size=7, folder=tmp_path, progress=False)
    with pytest.raises(CourseInputError, match="datasets.Dataset or a list"):
        data.CachedMelSlices(np.zeros(100), mel, folder=tmp_path)
    slices = data.CachedMelSlices(music, mel, folder=tmp_path, progress=False)
    with pytest.raises(CourseInputError, match="epoch"):
        list(slices(-1))
    with pytest.raises(CourseInputError, match="clip numbers run from 0 to 5"):
        slices.crop_images([6], [0])
    last = int(slices.n_starts[0]) - 1
    with pytest.raises(CourseInputError, match=f"frames 0 to {last}, got {last + 1}"):
        slices.crop_images([0], [last + 1])
    with pytest.raises(CourseInputError, match="same number"):
        slices.crop_images([0, 1], [0])
    with pytest.raises(CourseInputError, match="clip number"):
        slices.clip_image(6)
    whole = slices.clip_image(1)
    assert whole.shape == (32, int(slices.offsets[2] - slices.offsets[1])) and int(whole.max()) == 255


# ---------------------------------------------------------------------------------------------
# tutorial_dataloader
# ---------------------------------------------------------------------------------------------


def test_tutorial_dataloader_makes_slice_images(music: datasets.Dataset) -> None:
    mel = small_mel()
    loader = data.tutorial_dataloader(music, mel, batch_size=4, seed=1, epoch=0)
    batches = list(loader)
    assert len(batches) == 1 and batches[0].shape == (4, 1, 32, 32)  # 6 clips: the incomplete batch is dropped
    assert mel.audio is None  # the caller's Mel is left alone
    slice_images = {}
    for clip in range(len(music)):
        audio, sr = hub_datasets.audio_array(music[clip])
        mel.load_audio(raw_audio=resample(audio, sr, mel.sr))
        slice_images[clip] = [images_to_tensor(mel.audio_slice_to_image(k))[0]
                              for k in range(mel.get_number_of_slices())]
    for image in batches[0]:  # every image is one whole slice of one clip
        assert sum(torch.equal(image, s) for slices in slice_images.values() for s in slices) >= 1
    again = list(data.tutorial_dataloader(music, mel, batch_size=4, seed=1, epoch=0))
    torch.testing.assert_close(again[0], batches[0], rtol=0, atol=0)
    other = list(data.tutorial_dataloader(music, mel, batch_size=4, seed=1, epoch=1))
    assert not torch.equal(other[0], batches[0])


def test_tutorial_dataloader_errors(music: datasets.Dataset) -> None:
    mel = small_mel()
    with pytest.raises(CourseInputError, match="only 6 clips"):
        data.tutorial_dataloader(music, mel, batch_size=8)
    with pytest.raises(CourseInputError, match="no rows"):
        data.tutorial_dataloader(music.select([]), mel)
    with pytest.raises(CourseInputError, match="epoch"):
        data.tutorial_dataloader(music, mel, epoch=-1)
    with pytest.raises(CourseInputError, match="num_workers"):
        data.tutorial_dataloader(music, mel, num_workers=-1)
    with pytest.raises(CourseInputError, match="Mel"):
        data.tutorial_dataloader(music, "mel")


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_each_clip_is_resampled_from_its_own_rate(rate: int, tmp_path: Path) -> None:
    """A 440 Hz tone stored at 16, 44.1 or 48 kHz lands in the same mel band as at the model's 22.05 kHz."""
    mel = small_mel(y_res=64)
    tone = lambda sr: (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(int(1.6 * sr)) / sr)).astype(np.float32)  # noqa: E731
    native = data.CachedMelSlices([{"audio": {"array": tone(22050), "sampling_rate": 22050}}], mel, batch_size=1,
                                  folder=tmp_path / "native", progress=False)
    other = data.CachedMelSlices([{"audio": {"array": tone(rate), "sampling_rate": rate}}], mel, batch_size=1,
                                 folder=tmp_path / str(rate), progress=False)
    band = lambda s: int(s.db.mean(dim=0).argmax())  # noqa: E731  (db is (frames, bands): the loudest band)
    assert band(other) == band(native)
    level = lambda s: float(s.db.mean(dim=0).max())  # noqa: E731  (its level in dB)
    assert abs(level(other) - level(native)) < 1.0
    # Read as if it were 44.1 kHz (the fixed resampler of the classic tutorial), a 48 kHz clip's tone moves down.
    if rate != 44100:
        wrong = data.CachedMelSlices([{"audio": {"array": tone(rate), "sampling_rate": 44100}}], mel, batch_size=1,
                                     folder=tmp_path / "wrong", progress=False)
        assert band(wrong) != band(native)
