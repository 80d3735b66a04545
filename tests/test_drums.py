"""Lesson 05's drum plumbing (course_lib.drums): one-shots from arrays and folders, the course-made
hits, generation and evaluation with a tiny untrained U-Net, DAW export, and loading a drum model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from course_lib import drums
from course_lib.audio import resample
from course_lib.models.classifier import load_drum_classifier, load_style_classifier
from course_lib.metrics import frechet_audio_distance
from course_lib.synth import DRUM_CLASSES, drum_dataset
from course_lib.models.unet1d import UNet1D, UNet1DConfig
from course_lib.validate import CourseInputError
from course_lib.diffusion.vdiffusion import sample

torch.set_num_threads(min(2, torch.get_num_threads()))

SR = drums.SAMPLE_RATE  # 22050
SHORT = 2048  # the shortest clip the drum classifier takes: 16 frames of hop 128
FADE = int(0.01 * SR)  # the 10 ms fade after a cut, in samples


def tiny_config(**changes) -> UNet1DConfig:
    """Two levels (4x down), no attention, the four drum classes, 2048 samples at 22 050 Hz."""
    base = {"in_channels": 1, "sample_rate": SR, "sample_length": SHORT, "channels": (8, 8), "factors": (1, 4),
            "blocks": (1, 1), "attention": (False, False), "attention_heads": 1, "attention_head_features": 8,
            "modulation_features": 16, "resnet_groups": 4}
    base.update(changes)
    return UNet1DConfig(**base)


@pytest.fixture(scope="module")
def model() -> UNet1D:
    return UNet1D(tiny_config(), seed=0).eval()


@pytest.fixture(scope="module")
def clf():
    return load_drum_classifier()


def decaying_cos(freq: float, rate: int, seconds: float, tau: float = 0.08, amp: float = 0.6) -> np.ndarray:
    """A hit that peaks on its first sample (a cosine) and decays; it ends abruptly after ``seconds``."""
    t = np.arange(int(round(rate * seconds))) / rate
    return (amp * np.cos(2 * np.pi * freq * t) * np.exp(-t / tau)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.argmax(spectrum) * rate / x.size)


def extent(x: np.ndarray) -> int:
    """1 + the index of the last non-zero sample."""
    return int(np.flatnonzero(np.abs(x) > 1e-6)[-1]) + 1


# ------------------------------------------------------------------------------ prepare_one_shot


def test_a_hit_after_silence_starts_at_its_onset_and_is_padded():
    hit = decaying_cos(200, SR, 0.1)  # 2205 samples, peak 0.6 on the first one
    quiet = 1e-4 * np.random.default_rng(0).standard_normal(3000)  # -75 dB: below the -40 dB onset threshold
    x = np.concatenate([quiet, hit]).astype(np.float32)
    out = drums.prepare_one_shot(x, length=4096)
    assert out.shape == (4096,) and out.dtype == np.float32
    np.testing.assert_allclose(out[: hit.size], hit * (0.8 / 0.6), atol=1e-6)
    assert not out[hit.size:].any()  # zero padding after the hit
    assert float(np.abs(out).max()) == pytest.approx(0.8, abs=1e-6)


def test_the_onset_is_the_first_sample_within_40_db_of_the_peak():
    x = np.zeros(1200, np.float32)  # 205 samples from the onset on: padded, not cut
    x[990] = 0.005  # -46 dB below the peak of 1: still before the onset
    x[995] = 0.02  # -34 dB: the onset
    x[1000:1100] = 1.0
    out = drums.prepare_one_shot(x, length=256, peak=0.5)
    assert out[0] == pytest.approx(0.02 * 0.5, rel=1e-6)
    assert not out[1:5].any() and np.all(out[5:105] == np.float32(0.5)) and not out[105:].any()


def test_a_long_hit_is_cut_to_length_with_a_10_ms_fade():
    n = 4096
    x = decaying_cos(300, SR, 2.0, tau=100.0, amp=0.5)  # nearly constant level for 2 s
    out = drums.prepare_one_shot(x, length=n)
    envelope = np.ones(n)
    envelope[-FADE:] = np.linspace(1.0, 0.0, FADE)
    expected = x[:n].astype(np.float64) * envelope * (0.8 / 0.5)
    assert out.shape == (n,)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert abs(out[-1]) < 1e-9  # ends in silence, not a click
    # A hit exactly as long as the clip is not cut, so it is not faded either.
    whole = drums.prepare_one_shot(x[:n], length=n)
    np.testing.assert_allclose(whole, x[:n] * (0.8 / 0.5), atol=1e-6)
    assert abs(whole[-1]) > 0.1  # not faded to 0


def test_one_gain_scales_the_hit_to_the_peak_whatever_its_level():
    x = np.random.default_rng(1).uniform(-0.8, 0.8, 500).astype(np.float32)
    x[0] = 0.9  # the peak is the first sample, so nothing is trimmed
    for level in (0.01, 1.0):
        out = drums.prepare_one_shot(level * x, length=512, peak=0.25)
        assert float(np.abs(out).max()) == pytest.approx(0.25, rel=1e-6)
        np.testing.assert_allclose(out[:500], x * (0.25 / 0.9), atol=1e-6)
    torch_out = drums.prepare_one_shot(torch.from_numpy(x), length=512, peak=0.25)
    np.testing.assert_array_equal(torch_out, drums.prepare_one_shot(x, length=512, peak=0.25))


@pytest.mark.parametrize(
    "audio, kwargs, match",
    [
        (np.zeros(1000, np.float32), {"name": "kick_07.wav"}, r"kick_07.wav: the clip is silent"),
        (np.full(1000, 1e-8, np.float32), {}, "silent"),
        (np.array([0.5, np.nan, 0.1] * 100, np.float32), {}, "NaN"),
        (np.ones((2, 1000), np.float32), {}, "expected 1 dimensions"),
        (np.ones(1000, np.int16), {}, "integer samples"),
        (np.ones(1000, np.float32), {"length": 8}, "length"),
        (np.ones(1000, np.float32), {"peak": 0.0}, "peak"),
        (np.ones(1000, np.float32), {"peak": 1.5}, "peak"),
        (np.ones(1000, np.float32), {"sample_rate": 0}, "sample_rate"),
    ],
)
def test_prepare_one_shot_rejects_bad_input(audio, kwargs, match):
    with pytest.raises(CourseInputError, match=match):
        drums.prepare_one_shot(audio, **kwargs)


# ------------------------------------------------------------------------------ load_one_shot_folder


def write_hit(path, hit: np.ndarray, rate: int, delay: int = 0, **kwargs) -> None:
    """Write ``hit`` (T,) or (T, C) after ``delay`` samples of silence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pad = np.zeros((delay,) + hit.shape[1:], hit.dtype)
    sf.write(path, np.concatenate([pad, hit]), rate, **kwargs)


@pytest.fixture
def class_folder(tmp_path):
    """snare/ (16 kHz mono WAV + FLAC), kick/ (44.1 kHz stereo WAV), tom/ and clap/ (22.05 kHz mono WAV),
    created in that (unsorted) order."""
    root = tmp_path / "my_hits"
    write_hit(root / "snare" / "s1.wav", decaying_cos(700, 16000, 0.2), 16000, delay=800, subtype="PCM_16")
    write_hit(root / "snare" / "s2.flac", decaying_cos(900, 16000, 0.2), 16000, delay=50)
    for i, freq in enumerate((300, 400)):
        left = decaying_cos(freq, 44100, 0.2)
        write_hit(root / "kick" / f"k{i}.wav", np.stack([left, 0.5 * left], axis=1), 44100, delay=2000)
    for name, freqs in (("tom", (150, 180)), ("clap", (1100, 1300))):
        for i, freq in enumerate(freqs):
            write_hit(root / name / f"{name}{i}.wav", decaying_cos(freq, SR, 0.2), SR, delay=100, subtype="FLOAT")
    (root / "kick" / "notes.txt").write_text("not audio, ignored")
    (root / "kick" / "._k0.wav").write_bytes(b"\x00\x05\x16\x07 macOS resource fork, ignored")
    return root


def test_class_sub_folders_become_sorted_labelled_classes(class_folder):
    shots = drums.load_one_shot_folder(class_folder)
    assert shots.classes == ["clap", "kick", "snare", "tom"]
    assert shots.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and shots.labels.dtype == np.int64
    assert [p.rsplit("/", 2)[-2:] for p in shots.files] == [
        ["clap", "clap0.wav"], ["clap", "clap1.wav"], ["kick", "k0.wav"], ["kick", "k1.wav"],
        ["snare", "s1.wav"], ["snare", "s2.flac"], ["tom", "tom0.wav"], ["tom", "tom1.wav"]]
    assert shots.audio.shape == (8, drums.LENGTH) and shots.audio.dtype == np.float32
    assert shots.sample_rate == SR
    np.testing.assert_allclose(np.abs(shots.audio).max(axis=1), 0.8, atol=1e-6)
    for clip, freq in zip(shots.audio, (1100, 1300, 300, 400, 700, 900, 150, 180)):
        # Resampled to 22 050 Hz: the pitch is kept and 0.2 s lasts 4410 samples, whatever the file's rate.
        assert peak_hz(clip, SR) == pytest.approx(freq, abs=6)
        assert abs(extent(clip) - 4410) <= 30, extent(clip)
        # Started at the onset: the leading silence is gone.
        assert float(np.abs(clip[:10]).max()) > 0.3


def test_a_flat_folder_gives_unlabelled_one_shots(tmp_path):
    for i, freq in enumerate((250, 500, 1000)):
        write_hit(tmp_path / f"hit{i}.wav", decaying_cos(freq, 22050, 0.1), 22050)
    shots = drums.load_one_shot_folder(tmp_path, length=4096)
    assert shots.labels is None and shots.classes == []
    assert shots.audio.shape == (3, 4096)
    assert [p.rsplit("/", 1)[-1] for p in shots.files] == ["hit0.wav", "hit1.wav", "hit2.wav"]
    assert [round(peak_hz(c, SR) / 50) * 50 for c in shots.audio] == [250, 500, 1000]


def test_one_shot_folder_errors_name_the_problem(tmp_path, class_folder):
    with pytest.raises(CourseInputError, match="is not a folder"):
        drums.load_one_shot_folder(tmp_path / "missing")
    with pytest.raises(CourseInputError, match="expected a folder path"):
        drums.load_one_shot_folder(None)

    write_hit(class_folder / "loose.wav", decaying_cos(300, SR, 0.1), SR)
    with pytest.raises(CourseInputError, match=r"both class sub-folders and loose audio files \(loose.wav"):
        drums.load_one_shot_folder(class_folder)
    (class_folder / "loose.wav").unlink()

    with pytest.raises(CourseInputError, match=r"clap'? holds 2 audio file\(s\).*at least 3"):
        drums.load_one_shot_folder(class_folder, min_per_class=3)
    (class_folder / "snare" / "s2.flac").unlink()
    with pytest.raises(CourseInputError, match=r"snare'? holds 1 audio file"):
        drums.load_one_shot_folder(class_folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseInputError, match="holds 0 audio file"):
        drums.load_one_shot_folder(tmp_path / "empty")


def test_a_corrupt_or_silent_file_is_named(class_folder):
    (class_folder / "snare" / "broken.wav").write_bytes(b"RIFF1234 this is not really a wave file" * 10)
    with pytest.raises(CourseInputError, match="broken.wav"):
        drums.load_one_shot_folder(class_folder)
    (class_folder / "snare" / "broken.wav").unlink()
    sf.write(class_folder / "snare" / "quiet.wav", np.zeros(4000, np.float32), 22050)
    with pytest.raises(CourseInputError, match=r"quiet.wav'?: the clip is silent"):
        drums.load_one_shot_folder(class_folder)


# ------------------------------------------------------------------------------ real_drums


def test_real_drums_are_the_course_hits_interleaved_and_seeded():
    audio, labels = drums.real_drums(3, seed=5, length=SHORT)
    assert audio.shape == (12, SHORT) and audio.dtype == torch.float32
    assert labels.tolist() == [0, 1, 2, 3] * 3
    ref_audio, ref_labels = drum_dataset(3, seed=5, sample_rate=SR, length=SHORT)
    assert torch.equal(audio, torch.from_numpy(ref_audio)) and torch.equal(labels, torch.from_numpy(ref_labels))
    again, _ = drums.real_drums(3, seed=5, length=SHORT)
    assert torch.equal(audio, again)
    # A bigger set starts with the same hits; another seed shares none of them.
    bigger, _ = drums.real_drums(4, seed=5, length=SHORT)
    assert torch.equal(bigger[:12], audio)
    other, _ = drums.real_drums(3, seed=3, length=SHORT)
    distance = torch.cdist(audio, other)
    assert float(distance.min()) > 0.1
    assert drums.real_drums(1)[0].shape == (4, drums.LENGTH)


# ------------------------------------------------------------------------------ generate_drums


def test_generated_hits_come_in_the_data_row_order(model):
    audio, labels = drums.generate_drums(model, 2, steps=2, seed=0, progress=False)
    assert audio.shape == (8, SHORT) and audio.dtype == torch.float32 and audio.device.type == "cpu"
    assert labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    # Row i is the sampler's clip i for class labels[i], from the generator seeded (seed, batch 0).
    g = torch.Generator().manual_seed(0)
    direct = sample(model, 8, None, 2, g, class_labels=labels, guidance_scale=2.0, progress=False)
    assert torch.equal(audio, direct[:, 0])
    picked, picked_labels = drums.generate_drums(model, 1, steps=2, classes=["hihat", "kick"], progress=False)
    assert picked_labels.tolist() == [2, 0] and picked.shape == (2, SHORT)
    one, one_labels = drums.generate_drums(model, 2, steps=2, classes="snare", progress=False)
    assert one_labels.tolist() == [1, 1]


def test_generation_is_seeded_per_batch(model):
    kwargs = {"steps": 2, "progress": False, "batch_size": 3}
    a, labels = drums.generate_drums(model, 2, seed=7, **kwargs)
    b, _ = drums.generate_drums(model, 2, seed=7, **kwargs)
    c, _ = drums.generate_drums(model, 2, seed=8, **kwargs)
    assert torch.equal(a, b)
    assert float((a - c).abs().mean()) > 0.01
    # Batch 1 (rows 3..5) draws its noise from its own generator, seed 7 * 1_000_003 + 1.
    g = torch.Generator().manual_seed(7 * 1_000_003 + 1)
    direct = sample(model, 3, None, 2, g, class_labels=labels[3:6], guidance_scale=2.0, progress=False)
    assert torch.equal(a[3:6], direct[:, 0])


def test_peak_limit_scales_loud_hits_down_instead_of_clipping(model):
    g = torch.Generator().manual_seed(0)
    raw = sample(model, 8, None, 2, g, guidance_scale=2.0, progress=False, clip=False,
                 class_labels=torch.tensor([0, 1, 2, 3] * 2))[:, 0]
    peaks = raw.abs().amax(dim=-1)
    assert (peaks < 0.9).any() and (peaks > 1).any()  # this untrained model's hits: some quiet, some overshoot
    limited, _ = drums.generate_drums(model, 2, steps=2, seed=0, progress=False, peak_limit=0.9)
    torch.testing.assert_close(limited, raw * (0.9 / peaks).clamp(max=1.0)[:, None])  # quiet ones untouched
    assert limited.abs().amax() <= 0.9 + 1e-6
    clamped, _ = drums.generate_drums(model, 2, steps=2, seed=0, progress=False)
    assert torch.equal(clamped, raw.clamp(-1, 1))
    with pytest.raises(CourseInputError, match="peak_limit"):
        drums.generate_drums(model, 1, steps=1, peak_limit=0, progress=False)
    with pytest.raises(CourseInputError, match="peak_limit"):
        drums.generate_drums(model, 1, steps=1, peak_limit=1.5, progress=False)


def test_generate_drums_rejects_bad_requests(model):
    with pytest.raises(CourseInputError, match="'cowbell' is not one of the model's classes"):
        drums.generate_drums(model, 1, steps=1, classes=["kick", "cowbell"], progress=False)
    with pytest.raises(CourseInputError, match="empty"):
        drums.generate_drums(model, 1, steps=1, classes=[], progress=False)
    unconditional = UNet1D(tiny_config(num_classes=0), seed=0)
    with pytest.raises(CourseInputError, match="no classes"):
        drums.generate_drums(unconditional, 1, steps=1, progress=False)
    with pytest.raises(CourseInputError, match="expected a class-conditional"):
        drums.generate_drums("checkpoints/drum-diffusion", 1, progress=False)
    with pytest.raises(CourseInputError, match="n_per_class"):
        drums.generate_drums(model, 0, steps=1, progress=False)
    with pytest.raises(CourseInputError, match="seed"):
        drums.generate_drums(model, 1, steps=1, seed=-1, progress=False)
    with pytest.raises(CourseInputError, match="steps"):
        drums.generate_drums(model, 1, steps=0, progress=False)


# ------------------------------------------------------------------------------ evaluate_drum_model


def test_evaluation_measures_what_it_says(model, clf):
    result = drums.evaluate_drum_model(model, clf, n_per_class=2, steps=2, seed=1, real_seed=3, progress=False)
    assert set(result) == {"class_accuracy", "class_accuracy_per_class", "real_accuracy", "fd_generated",
                           "fd_real_halves", "fd_ratio", "eval_samples", "eval_steps", "guidance_scale", "eta",
                           "sampler", "seed", "real_seed", "tail_db", "tail_db_real", "tail_gap_db", "clipped",
                           "peak_limit"}
    assert list(result["class_accuracy_per_class"]) == list(DRUM_CLASSES)
    assert all(0.0 <= v <= 1.0 for v in result["class_accuracy_per_class"].values())
    assert 0.0 <= result["class_accuracy"] <= 1.0 and 0.0 <= result["real_accuracy"] <= 1.0
    assert result["fd_generated"] >= 0 and result["fd_real_halves"] > 0
    assert (result["eval_samples"], result["eval_steps"], result["seed"], result["real_seed"]) == (8, 2, 1, 3)
    # Recompute every number from its definition.
    gen, gen_labels = drums.generate_drums(model, 2, steps=2, seed=1, progress=False)
    real, real_labels = drums.real_drums(4, seed=3, length=SHORT)
    real_a, real_b = real[:8], real[8:]
    pred = clf.predict(gen)
    assert result["class_accuracy"] == round(float((pred == gen_labels).float().mean()), 4)
    for k, name in enumerate(DRUM_CLASSES):
        assert result["class_accuracy_per_class"][name] == round(float((pred[gen_labels == k] == k).float().mean()), 4)
    assert result["real_accuracy"] == round(float((clf.predict(real_a) == real_labels[:8]).float().mean()), 4)
    fd_gen = frechet_audio_distance(gen, real_a, clf, SR)
    fd_real = frechet_audio_distance(real_b, real_a, clf, SR)
    assert result["fd_generated"] == round(fd_gen, 3) and result["fd_real_halves"] == round(fd_real, 3)
    assert result["fd_ratio"] == round(fd_gen / fd_real, 3)
    tails, real_tails = drums.tail_level_db(gen), drums.tail_level_db(real_a)
    for k, name in enumerate(DRUM_CLASSES):
        assert result["tail_db"][name] == round(float(tails[gen_labels == k].median()), 1)
        assert result["tail_db_real"][name] == round(float(real_tails[real_labels[:8] == k].median()), 1)
    gaps = [float(tails[gen_labels == k].median()) - float(real_tails[real_labels[:8] == k].median()) for k in range(4)]
    assert result["tail_gap_db"] == round(max(gaps), 1)
    assert result["clipped"] == round(float((gen.abs().amax(dim=-1) >= 0.999).float().mean()), 4)
    # An untrained model's noise is far from real hits; two real halves are close.
    assert result["fd_ratio"] > 3 and result["real_accuracy"] >= 0.75


def test_tail_level_of_an_exponential_decay():
    """x = exp(-t / tau): the RMS of the last quarter against the peak 1, worked out in closed form."""
    n, tau = 8000, 800.0
    t = torch.arange(n, dtype=torch.float64)
    hit = torch.exp(-t / tau)
    a, b = 0.75 * n, n  # mean of exp(-2t/tau) over [a, b)
    mean_sq = tau / 2 * (math.exp(-2 * a / tau) - math.exp(-2 * b / tau)) / (b - a)
    assert drums.tail_level_db(hit).item() == pytest.approx(10 * math.log10(mean_sq), abs=0.05)  # about -35 dB
    both = drums.tail_level_db(torch.stack([hit, torch.ones(n, dtype=torch.float64), torch.zeros(n)]))
    assert both.shape == (3,) and both[1].item() == pytest.approx(0.0) and both[2].item() == -math.inf
    assert drums.tail_level_db(hit, tail=0.5).item() > drums.tail_level_db(hit).item()  # the louder later half
    with pytest.raises(CourseInputError, match="mix stereo hits to mono"):
        drums.tail_level_db(torch.zeros(2, 2, 100))
    with pytest.raises(CourseInputError, match="tail"):
        drums.tail_level_db(hit, tail=1.5)


def test_evaluation_needs_the_drum_classifier(model, clf):
    with pytest.raises(CourseInputError, match="differ from the model's.*load_drum_classifier"):
        drums.evaluate_drum_model(model, load_style_classifier(), n_per_class=2, steps=1, progress=False)
    with pytest.raises(CourseInputError, match="n_per_class"):
        drums.evaluate_drum_model(model, clf, n_per_class=1, steps=1, progress=False)


# ------------------------------------------------------------------------------ export_one_shots


def test_export_writes_44k_24_bit_files_at_minus_1_dbfs(tmp_path):
    hits = torch.from_numpy(drum_dataset(1, seed=9, sample_rate=SR, length=SHORT)[0][:2])
    paths = drums.export_one_shots(0.3 * hits, tmp_path / "export", names=["kick_01", "snare_01"])
    assert paths == [tmp_path / "export" / "kick_01.wav", tmp_path / "export" / "snare_01.wav"]
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["kick_01.wav", "snare_01.wav"]
    target = 10 ** (-1 / 20)
    for path, hit in zip(paths, hits):
        info = sf.info(str(path))
        assert (info.samplerate, info.subtype, info.channels, info.frames) == (44100, "PCM_24", 1, 2 * SHORT)
        data, _ = sf.read(str(path), dtype="float64")
        assert abs(np.abs(data).max() - target) <= 2.0**-23
        # The same hit, upsampled: one gain away from resample(hit) (within 24-bit rounding).
        up = resample(hit, SR, 44100).double().numpy()
        np.testing.assert_allclose(data, up * (target / np.abs(up).max()), atol=2.0**-22)
    # One hit (T,) with the default name; 16-bit on request.
    (path,) = drums.export_one_shots(hits[0], tmp_path / "one", bit_depth=16)
    assert path.name == "hit_000.wav" and sf.info(str(path)).subtype == "PCM_16"
    (named,) = drums.export_one_shots(hits[1], tmp_path / "one", names="snare")
    assert named.name == "snare.wav"


@pytest.mark.parametrize(
    "audio, kwargs, match",
    [
        (np.ones((2, 512), np.float32), {"names": ["a"]}, "got 1 names for 2 hits"),
        (np.ones((2, 512), np.float32), {"names": ["a", "a"]}, "share a name"),
        (np.ones((2, 512), np.float32), {"names": ["Kick", "kick"]}, "share a name"),
        (np.ones((2, 512), np.float32), {"names": ["a", "drums/b"]}, "'drums/b' is not a usable file name"),
        (np.ones((2, 512), np.float32), {"names": ["a", ""]}, "not a usable file name"),
        (np.zeros((0, 512), np.float32), {}, "empty"),
        (np.ones((1, 1, 512), np.float32), {}, "dimensions"),
        (np.ones((1, 512), np.float32), {"peak_db": 3.0}, "peak_db"),
        (np.ones((1, 512), np.float32), {"bit_depth": 8}, "bit_depth"),
        (np.ones((1, 512), np.float32), {"target_rate": 0}, "target_rate"),
    ],
)
def test_export_rejects_bad_input(tmp_path, audio, kwargs, match):
    with pytest.raises(CourseInputError, match=match):
        drums.export_one_shots(audio, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_silent_hit_stops_the_export_before_any_file_is_written(tmp_path):
    kick = decaying_cos(200, SR, 0.05)
    hits = np.stack([kick, np.zeros_like(kick)])
    with pytest.raises(CourseInputError, match="hit 'snare' is silent"):
        drums.export_one_shots(hits, tmp_path / "out", names=["kick", "snare"])
    assert not (tmp_path / "out").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(CourseInputError, match="is a file"):
        drums.export_one_shots(hits[:1], tmp_path / "file")


# ------------------------------------------------------------------------------ load_drum_model


def test_load_drum_model_explains_a_missing_model(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseInputError, match="has no config.json"):
        drums.load_drum_model(tmp_path / "empty")
    monkeypatch.setattr(drums, "default_model_dir", lambda: tmp_path / "nowhere")
    with pytest.raises(CourseInputError, match="shipped drum model was not found.*train_drums.py"):
        drums.load_drum_model()


def test_a_saved_drum_model_loads_and_generates_the_same(tmp_path, model):
    assert drums.default_model_dir().parts[-2:] == ("checkpoints", "drum-diffusion")
    model.save_pretrained(tmp_path / "mine")
    loaded = drums.load_drum_model(tmp_path / "mine")
    assert isinstance(loaded, UNet1D) and not loaded.training
    assert loaded.config == model.config
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())
    a, _ = drums.generate_drums(model, 1, steps=2, seed=3, progress=False)
    b, _ = drums.generate_drums(loaded, 1, steps=2, seed=3, progress=False)
    assert torch.equal(a, b)
