"""Tests for course_lib.models.vae: shapes of both configurations, the KL term against hand-computed values,
the reparameterisation's statistics, determinism, save/load, training through course_lib.training
(the loss falls; a resumed run equals an uninterrupted one), lesson 01's preprocessing and the way
back to audio, bad input, and the shipped checkpoint against the mean-spectrogram baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from course_lib import synth, training
from course_lib.models import vae
from course_lib.metrics import spectral_convergence
from course_lib.preprocess import PreprocessingPipeline, load_features, preprocess_folder
from course_lib.spectrogram import magnitude, stft
from course_lib.validate import CourseInputError

TINY = vae.VAEConfig(channels=(4, 8, 8, 16, 16), latent_dim=8)


@pytest.fixture(scope="module")
def clips() -> dict:
    """Three clips per class (30), preprocessed with lesson 01's pipeline."""
    torch.set_num_threads(2)
    audio, labels = synth.digit_dataset(3, seed=11)
    features, mins, maxs = vae.preprocess_clips(audio)
    return {"audio": audio, "labels": labels, "features": features, "mins": mins, "maxs": maxs}


def _tiny(seed: int = 0) -> vae.SpectrogramVAE:
    torch.manual_seed(seed)
    return vae.SpectrogramVAE(TINY)


# ---------------------------------------------------------------------------------------------
# Shapes and configurations
# ---------------------------------------------------------------------------------------------


def _expected_parameters(cfg: vae.VAEConfig) -> int:
    """Count by hand: conv / transposed conv (k*k*in*out + out), batch norm (2 per channel), linears."""
    k2 = cfg.kernel_size ** 2
    chans = (1,) + cfg.channels
    pairs = list(zip(chans[:-1], chans[1:]))
    encoder = sum(k2 * a * b + b for a, b in pairs)  # conv a -> b
    decoder = sum(k2 * b * a + a for a, b in pairs)  # transposed conv b -> a: the mirror
    norms = 2 * sum(cfg.channels) + 2 * sum(chans[1:-1])  # encoder: every block; decoder: all but the output
    flat = math.prod(cfg.bottleneck_shape)
    linears = 2 * (flat * cfg.latent_dim + cfg.latent_dim) + (cfg.latent_dim * flat + flat)
    return encoder + decoder + norms + linears


def test_classic_config_shapes_and_size() -> None:
    shapes = [s for _, s in vae.layer_shapes(vae.CLASSIC)]
    assert shapes == [(1, 256, 64), (512, 128, 32), (256, 64, 16), (128, 32, 8), (64, 16, 4), (32, 8, 4)]
    assert vae.CLASSIC.bottleneck_shape == (32, 8, 4) and vae.CLASSIC.latent_dim == 128
    model = vae.SpectrogramVAE(vae.CLASSIC)
    assert model.num_parameters() == _expected_parameters(vae.CLASSIC) == 3_543_009
    out = model.reconstruct(torch.rand(1, 1, 256, 64))  # one item through the GPU-sized network
    assert out.shape == (1, 1, 256, 64)


def test_laptop_shapes_forward_and_size() -> None:
    assert vae.VAEConfig() == vae.LAPTOP
    torch.manual_seed(0)
    model = vae.SpectrogramVAE()
    assert model.num_parameters() == _expected_parameters(vae.LAPTOP)
    assert 4 * model.num_parameters() <= 10 * 2**20  # float32 safetensors within the 10 MB budget
    x = torch.rand(3, 256, 64)  # (B, H, W) works as well as (B, 1, H, W)
    out = model(x, torch.Generator().manual_seed(0))
    assert out.reconstruction.shape == (3, 1, 256, 64)
    assert out.mu.shape == out.logvar.shape == out.z.shape == (3, 128)
    assert float(out.reconstruction.min()) > 0 and float(out.reconstruction.max()) < 1  # sigmoid
    assert model.sample(2, torch.Generator().manual_seed(0)).shape == (2, 1, 256, 64)
    assert model.training  # the inference helpers put the mode back


def test_config_json_round_trip_and_validation() -> None:
    cfg = vae.CLASSIC.replace(kl_weight=3e-5)
    again = vae.VAEConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.strides[-1] == (2, 1)
    assert vae.LAPTOP.num_samples == 16317  # 0.74 s at 22 050 Hz: 1 + 16317 // 256 = 64 frames
    with pytest.raises(CourseInputError, match="strides"):
        vae.VAEConfig(channels=(8, 8), strides=((2, 2),))
    with pytest.raises(CourseInputError, match="kernel_size"):
        vae.VAEConfig(kernel_size=4)
    with pytest.raises(CourseInputError, match="divisible"):
        vae.VAEConfig(strides=((2, 2), (2, 2), (2, 2), (2, 2), (2, 3)))
    with pytest.raises(CourseInputError, match="frame_size"):
        vae.VAEConfig(frame_size=1024)
    with pytest.raises(CourseInputError, match="duration"):
        vae.VAEConfig(duration=1.0)
    with pytest.raises(CourseInputError, match="kl_weight"):
        vae.VAEConfig(kl_weight=-1.0)
    with pytest.raises(CourseInputError, match="unknown"):
        vae.VAEConfig.from_dict({"latent": 3})


# ---------------------------------------------------------------------------------------------
# KL and reparameterisation
# ---------------------------------------------------------------------------------------------


def test_kl_against_a_hand_computed_case() -> None:
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # item 0: 0.5 * (1 + 1 - 1 - 0) + 0.5 * (0 + 2 - 1 - ln 2); item 1 is the prior itself: 0
    first = 0.5 + 0.5 * (1.0 - math.log(2.0))
    per_item = vae.kl_divergence(mu, logvar, reduction="none")
    torch.testing.assert_close(per_item, torch.tensor([first, 0.0]))
    assert float(vae.kl_divergence(mu, logvar)) == pytest.approx(first / 2)
    assert float(vae.kl_divergence(mu, logvar, reduction="sum")) == pytest.approx(first)
    # and against torch.distributions on random values
    g = torch.Generator().manual_seed(0)
    m, lv = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m, (0.5 * lv).exp()),
                                            torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(vae.kl_divergence(m, lv, "none"), ref)


def test_reparameterisation_statistics_and_gradient() -> None:
    n = 40_000
    mu = torch.tensor([2.0, -1.0]).repeat(n, 1).requires_grad_(True)
    logvar = torch.tensor([math.log(0.25), math.log(4.0)]).repeat(n, 1).requires_grad_(True)
    z = vae.SpectrogramVAE.reparameterise(mu, logvar, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), torch.tensor([2.0, -1.0]), atol=0.03, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([0.5, 2.0]), atol=0, rtol=0.02)
    z.sum().backward()
    assert torch.all(mu.grad == 1.0)  # dz/dmu = 1: the gradient passes through the sample
    again = vae.SpectrogramVAE.reparameterise(mu, logvar, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)


# ---------------------------------------------------------------------------------------------
# Determinism, save / load
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_model_and_outputs(clips: dict) -> None:
    a, b = _tiny(3), _tiny(3)
    x = clips["features"][:4]
    out_a = a(x, torch.Generator().manual_seed(5))
    out_b = b(x, torch.Generator().manual_seed(5))
    assert torch.equal(out_a.reconstruction, out_b.reconstruction) and torch.equal(out_a.z, out_b.z)
    assert torch.equal(a.reconstruct(x), a.reconstruct(x))  # the mean code: no randomness
    assert not torch.equal(out_a.z, a(x, torch.Generator().manual_seed(6)).z)


def test_save_and_load_give_identical_outputs(clips: dict, tmp_path: Path) -> None:
    model = _tiny(1)
    training.train(model, clips["features"], lambda m, b, g: vae.vae_loss(m, b, g),
                   training.TrainConfig(output_dir=str(tmp_path / "run"), max_steps=3, batch_size=8, lr=1e-3),
                   progress=False)  # so that batch-norm statistics are not the defaults
    folder = model.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = vae.SpectrogramVAE.from_pretrained(folder)
    assert loaded.config == model.config and not loaded.training
    x = clips["features"][:5]
    assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
    assert torch.equal(loaded.sample(3, torch.Generator().manual_seed(2)),
                       model.sample(3, torch.Generator().manual_seed(2)))
    assert torch.equal(vae.load_vae(folder).reconstruct(x), model.reconstruct(x))


# ---------------------------------------------------------------------------------------------
# Training through course_lib.training
# ---------------------------------------------------------------------------------------------


def _train(model: vae.SpectrogramVAE, features: torch.Tensor, folder: Path, steps: int) -> training.TrainResult:
    cfg = training.TrainConfig(output_dir=str(folder), max_steps=steps, batch_size=10, lr=3e-3, seed=4,
                               checkpoint_every=5)
    return training.train(model, features, lambda m, b, g: vae.vae_loss(m, b, g), cfg, progress=False)


def test_training_lowers_the_loss(clips: dict, tmp_path: Path) -> None:
    model = _tiny(0)
    x = clips["features"]
    before = vae.vae_loss_terms(model, x, torch.Generator().manual_seed(0))
    result = _train(model, x, tmp_path, 40)
    after = vae.vae_loss_terms(model, x, torch.Generator().manual_seed(0))
    assert np.mean(result.losses[-5:]) < 0.7 * np.mean(result.losses[:5])
    assert float(after["reconstruction"]) < 0.7 * float(before["reconstruction"])


def test_resume_equals_uninterrupted(clips: dict, tmp_path: Path) -> None:
    x = clips["features"]
    straight = _tiny(0)
    full = _train(straight, x, tmp_path / "straight", 12)
    interrupted = _tiny(0)
    _train(interrupted, x, tmp_path / "resumed", 5)
    resumed_model = _tiny(9)  # different starting weights: everything must come from the checkpoint
    resumed = _train(resumed_model, x, tmp_path / "resumed", 12)
    assert resumed.resumed_from == 5
    assert resumed.losses == full.losses
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed_model.state_dict().items()):
        assert torch.equal(a, b), name


def test_loss_is_mse_plus_weighted_kl(clips: dict) -> None:
    model = _tiny(2)
    x = clips["features"][:6]
    terms = vae.vae_loss_terms(model, x, torch.Generator().manual_seed(1), kl_weight=0.5)
    out = model(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(terms["reconstruction"], ((out.reconstruction - x) ** 2).mean())
    torch.testing.assert_close(terms["kl"], vae.kl_divergence(out.mu, out.logvar))
    torch.testing.assert_close(terms["loss"], terms["reconstruction"] + 0.5 * terms["kl"])
    default = vae.vae_loss(model, (x, torch.zeros(6)), torch.Generator().manual_seed(1))  # (features, labels)
    torch.testing.assert_close(default, terms["reconstruction"] + TINY.kl_weight * terms["kl"])


# ---------------------------------------------------------------------------------------------
# Lesson 01's preprocessing, the min/max table, and back to audio
# ---------------------------------------------------------------------------------------------


def test_preprocess_clips_equals_the_lesson01_pipeline(clips: dict, tmp_path: Path) -> None:
    audio = clips["audio"][:3].copy()
    audio[2, 12000:] = 0.0
    short = audio[2, :12000]  # a short file: the pipeline pads it with zeros
    for i, clip in enumerate([audio[0], audio[1], short]):
        sf.write(tmp_path / f"{i}.wav", clip, 22050, subtype="FLOAT")
    preprocess_folder(tmp_path, tmp_path / "features.safetensors")
    ref, stats = load_features(tmp_path / "features.safetensors")
    features, mins, maxs = vae.preprocess_clips([audio[0], audio[1], audio[2]])
    np.testing.assert_allclose(features[:, 0].numpy(), ref, atol=2e-6)
    np.testing.assert_allclose(mins.numpy(), stats["mins"], atol=1e-4)
    np.testing.assert_allclose(maxs.numpy(), stats["maxs"], atol=1e-4)
    padded, _, _ = vae.preprocess_clips(short[None])
    torch.testing.assert_close(padded[0], features[2])


def test_min_max_json_round_trip_and_lesson01_tables(clips: dict, tmp_path: Path) -> None:
    path = vae.save_min_max(tmp_path / "t" / "min_max_values.json", clips["mins"], clips["maxs"])
    mins, maxs, names = vae.load_min_max(path)
    torch.testing.assert_close(mins, clips["mins"].to(torch.float64))
    torch.testing.assert_close(maxs, clips["maxs"].to(torch.float64))
    assert names[0] == "clip-00000" and len(names) == 30
    assert json.loads(path.read_text())["files"]["clip-00001"]["max"] == pytest.approx(float(clips["maxs"][1]))
    # a table written by lesson 01's per-file pipeline reads the same way
    (tmp_path / "wav").mkdir()
    for i in range(2):
        sf.write(tmp_path / "wav" / f"c{i}.wav", clips["audio"][i], 22050, subtype="FLOAT")
    table = PreprocessingPipeline(tmp_path / "feat").process(tmp_path / "wav")
    mins2, maxs2, names2 = vae.load_min_max(tmp_path / "feat" / "min_max_values.json")
    assert names2 == ["c0.wav", "c1.wav"]
    np.testing.assert_allclose(mins2.numpy(), clips["mins"][:2].numpy(), atol=1e-4)
    assert float(maxs2[1]) == pytest.approx(table["c1.wav"]["max"])
    np.testing.assert_allclose(maxs2.numpy(), clips["maxs"][:2].numpy(), atol=1e-4)


def test_features_back_to_audio(clips: dict) -> None:
    x = clips["features"][:4]
    model = vae.SpectrogramVAE(TINY)
    audio = model.to_audio(x, clips["mins"][:4], clips["maxs"][:4], generator=torch.Generator().manual_seed(0))
    assert audio.shape == (4, 16317)
    ref = magnitude(stft(torch.as_tensor(clips["audio"][:4]), n_fft=512, hop_length=256))
    est = magnitude(stft(audio, n_fft=512, hop_length=256))
    assert float(spectral_convergence(ref, est).max()) < 0.3  # Griffin-Lim of the true spectrogram
    # the stored range sets the level: 20 dB more on both ends is 10 times the amplitude
    louder = model.to_audio(x, clips["mins"][:4] + 20, clips["maxs"][:4] + 20,
                            generator=torch.Generator().manual_seed(0))
    ratio = louder.square().mean(1).sqrt() / audio.square().mean(1).sqrt()
    torch.testing.assert_close(ratio, torch.full((4,), 10.0), rtol=1e-3, atol=0)
    direct = vae.features_to_audio(x, clips["mins"][:4], clips["maxs"][:4], generator=torch.Generator().manual_seed(0))
    assert direct.shape == (4, 256 * 63)  # without a length: hop * (frames - 1)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_input(clips: dict, tmp_path: Path) -> None:
    model = _tiny(0)
    with pytest.raises(CourseInputError, match="256, 64"):
        model.encode(torch.rand(2, 1, 128, 64))
    with pytest.raises(CourseInputError, match="NaN"):
        model.encode(torch.full((1, 1, 256, 64), float("nan")))
    with pytest.raises(CourseInputError, match=r"\[0, 1\]"):
        model.encode(torch.rand(1, 1, 256, 64) * 80 - 60)  # dB values, not normalised
    with pytest.raises(CourseInputError, match="dimensions"):
        model.encode(torch.rand(256, 64))
    with pytest.raises(CourseInputError, match="integer"):
        model.encode(torch.zeros(1, 1, 256, 64, dtype=torch.int64))
    with pytest.raises(CourseInputError, match="latent"):
        model.decode(torch.zeros(2, 5))
    with pytest.raises(CourseInputError, match="same shape"):
        model.reparameterise(torch.zeros(2, 8), torch.zeros(2, 4))
    with pytest.raises(CourseInputError, match="generator"):
        model.sample(2, generator=0)  # type: ignore[arg-type]
    with pytest.raises(CourseInputError, match="n: must be at least 1"):
        model.sample(0)
    with pytest.raises(CourseInputError, match="reduction"):
        vae.kl_divergence(torch.zeros(2, 3), torch.zeros(2, 3), reduction="avg")
    with pytest.raises(CourseInputError, match="mu/logvar"):
        vae.kl_divergence(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(CourseInputError, match="model"):
        vae.vae_loss(torch.nn.Linear(2, 2), clips["features"][:2])  # type: ignore[arg-type]
    with pytest.raises(CourseInputError, match="config"):
        vae.SpectrogramVAE({"latent_dim": 4})  # type: ignore[arg-type]
    with pytest.raises(CourseInputError, match="mins/maxs"):
        vae.features_to_audio(clips["features"][:3], clips["mins"][:2], clips["maxs"][:2])
    with pytest.raises(CourseInputError, match="frequency rows"):
        vae.features_to_audio(clips["features"][:2, :, :128], clips["mins"][:2], clips["maxs"][:2])
    with pytest.raises(CourseInputError, match="swap"):
        vae.save_min_max(tmp_path / "x.json", clips["maxs"], clips["mins"])
    with pytest.raises(CourseInputError, match="does not exist"):
        vae.load_min_max(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(CourseInputError, match="min/max table"):
        vae.load_min_max(tmp_path / "bad.json")
    with pytest.raises(CourseInputError, match="config.json"):
        vae.SpectrogramVAE.from_pretrained(tmp_path)
    with pytest.raises(CourseInputError, match="not an existing folder"):
        vae.load_vae(tmp_path / "nowhere")
    model.save_pretrained(tmp_path / "other")  # readable weights next to a config of another model
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "something-else"}))
    with pytest.raises(CourseInputError, match="course-spectrogram-vae"):
        vae.SpectrogramVAE.from_pretrained(tmp_path / "other")
    saved = model.save_pretrained(tmp_path / "tiny")
    cfg = json.loads((saved / "config.json").read_text())
    cfg["latent_dim"] = 16
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CourseInputError, match="do not fit"):
        vae.SpectrogramVAE.from_pretrained(saved)
    with pytest.raises(CourseInputError, match="audio"):
        vae.preprocess_clips(np.zeros((2, 100), dtype=np.int16))


# ---------------------------------------------------------------------------------------------
# The shipped checkpoint
# ---------------------------------------------------------------------------------------------


def test_shipped_checkpoint_beats_the_mean_spectrogram() -> None:
    folder = Path(__file__).resolve().parents[1] / "checkpoints" / vae.CHECKPOINT_NAME
    metrics = json.loads((folder / "metrics.json").read_text())
    assert (folder / "model.safetensors").stat().st_size <= 10 * 2**20
    model = vae.load_vae()
    assert model.config == vae.LAPTOP.replace(kl_weight=model.config.kl_weight)
    # The first 10 held-out clips of every class, the same rows the training script measured.
    audio, _ = synth.digit_dataset(metrics["test_subset_per_class"], seed=metrics["heldout_seed"])
    x, _, _ = vae.preprocess_clips(audio)
    vae_mse = float(vae.reconstruction_error(model, x).mean())
    baseline = float((x - x.mean(dim=0, keepdim=True)).square().mean())  # the best constant guess
    ratio = vae_mse / baseline
    assert ratio == pytest.approx(metrics["test_subset_ratio"], abs=0.02)  # reproduces the script's number
    assert ratio < 1.2 * metrics["test_subset_ratio"] and ratio < 0.5
    mins, maxs, names = vae.load_min_max(folder / vae.MIN_MAX_NAME)
    assert len(names) == metrics["train_clips"] and bool((maxs - mins <= 80.0 + 1e-3).all())
