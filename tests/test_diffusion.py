"""Tests for course_lib.diffusion with tiny, randomly initialised UNets built here (no downloads).

Images are 32 mel bands by 32 frames, hop 64 at 8 kHz, so one image is 0.256 s of audio and a
UNet call takes milliseconds. Step counts are kept small: these tests check the plumbing
(shapes, masks, seeds, saving), not the sound.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from course_lib.diffusion import SpectrogramDiffusionPipeline, SpectrogramOutput, images_to_tensor, slerp
from course_lib.mel import Mel
from course_lib.validate import CourseInputError

SR, HOP, H, W = 8000, 64, 32, 32


def make_unet(sample_size=H, seed: int = 0, input_scale: float = 1.0) -> UNet2DModel:
    """A ~160k-parameter UNet2DModel (one down-sampling: widths must be even)."""
    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=sample_size, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(16, 32), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8)
    with torch.no_grad():
        unet.conv_in.weight.mul_(input_scale)
    return unet.eval()


def make_mel(x_res: int = W) -> Mel:
    return Mel(x_res=x_res, y_res=H, sample_rate=SR, n_fft=256, hop_length=HOP, n_iter=4)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These UNets are tiny: one thread is ~20x faster than two fighting over a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pipe() -> SpectrogramDiffusionPipeline:
    return SpectrogramDiffusionPipeline(make_unet(), DDIMScheduler(clip_sample=False), make_mel())


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """0.5 s: a 440 Hz tone with a 1 kHz tone in its second half, and a little noise."""
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1000 * t) * (t > 0.25)
    return (x + 0.02 * rng.standard_normal(t.shape)).astype(np.float32)


# ----------------------------------------------------------------------------- sampling


def test_shapes_and_types(pipe):
    out = pipe(2, steps=3, generator=0, progress=False)
    assert isinstance(out, SpectrogramOutput)
    assert out.images.shape == (2, H, W) and out.images.dtype == np.uint8
    assert out.audios.shape == (2, (W - 1) * HOP) and out.audios.dtype == np.float32
    assert out.sample_rate == SR
    assert out.noise.shape == (2, 1, H, W)
    pil = out.pil_images
    assert len(pil) == 2 and pil[0].size == (W, H) and pil[0].mode == "L"
    assert np.array_equal(np.asarray(pil[1]), out.images[1])


def test_same_seed_same_output_other_seed_differs(pipe):
    a = pipe(1, steps=3, generator=7, eta=0.5, progress=False)
    b = pipe(1, steps=3, generator=torch.Generator().manual_seed(7), eta=0.5, progress=False)
    c = pipe(1, steps=3, generator=8, eta=0.5, progress=False)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.audios, b.audios)
    assert not np.array_equal(a.images, c.images)


def test_ddpm_scheduler_and_default_steps():
    ddpm = SpectrogramDiffusionPipeline(make_unet(), DDPMScheduler(), make_mel())
    assert ddpm.default_steps() == 1000
    out = ddpm(1, steps=4, generator=0, progress=False)
    assert out.images.shape == (1, H, W)
    # DDPM draws fresh noise every step, so it follows the generator too.
    again = ddpm(1, steps=4, generator=0, progress=False)
    assert np.array_equal(out.images, again.images)


def test_wider_noise_gives_longer_audio(pipe):
    out = pipe(1, steps=2, generator=0, width=4 * W, progress=False)
    assert out.images.shape == (1, H, 4 * W)
    assert out.audios.shape == (1, (4 * W - 1) * HOP)
    with pytest.raises(CourseInputError, match="width: 33 is not a multiple of 2"):
        pipe(1, steps=2, width=33, progress=False)


def test_own_noise_is_used(pipe):
    noise = torch.randn(1, 1, H, W, generator=torch.Generator().manual_seed(3))
    a = pipe(1, steps=3, noise=noise, generator=0, progress=False)
    b = pipe(1, steps=3, noise=noise, generator=99, progress=False)  # eta 0: the generator is not used
    assert np.array_equal(a.images, b.images)
    assert torch.equal(a.noise, noise)


def test_variation_starts_from_the_clip(clip):
    # With a UNet that ignores its input, the run from start_step is pure algebra: starting at the
    # last step from the clip's image noised to t=0 gives the clip's image back up to a few levels.
    p = SpectrogramDiffusionPipeline(make_unet(input_scale=0.0), DDIMScheduler(clip_sample=False), make_mel())
    image = p.audio_to_image(clip, SR)
    out = p(1, steps=10, start_step=9, raw_audio=clip, sample_rate=SR, generator=0, progress=False)
    far = p(1, steps=10, start_step=0, raw_audio=clip, sample_rate=SR, generator=0, progress=False)
    near_err = np.abs(out.images[0].astype(int) - image.astype(int)).mean()
    far_err = np.abs(far.images[0].astype(int) - image.astype(int)).mean()
    assert near_err < 3.0 < far_err


def test_audio_file_is_read_and_resampled(pipe, clip, tmp_path):
    import soundfile as sf

    from course_lib.audio import resample

    sf.write(tmp_path / "clip.wav", resample(clip, SR, 16000), 16000)
    from_file = pipe(1, steps=2, audio_file=tmp_path / "clip.wav", start_step=1, generator=0, progress=False)
    from_array = pipe(1, steps=2, raw_audio=clip, sample_rate=SR, start_step=1, generator=0, progress=False)
    # the file went 8 kHz -> 16 kHz -> 8 kHz, so its image is close to, not equal to, the array's
    assert from_file.images.shape == (1, H, W)
    assert np.abs(from_file.images.astype(int) - from_array.images.astype(int)).mean() < 8
    assert "SpectrogramDiffusionPipeline(sample_size=(32, 32)" in repr(pipe)


def test_inpainting_keeps_the_masked_region(pipe, clip):
    image = pipe.audio_to_image(clip, SR)
    start, end = 0.064, 0.032  # seconds -> 8 and 4 columns at 125 columns per second
    out = pipe(2, steps=4, raw_audio=clip, sample_rate=SR, mask_start_secs=start, mask_end_secs=end,
               generator=1, progress=False)
    left, right = pipe.seconds_to_pixels(start), pipe.seconds_to_pixels(end)
    assert (left, right) == (8, 4)
    for im in out.images:
        assert np.array_equal(im[:, :left], image[:, :left])
        assert np.array_equal(im[:, W - right:], image[:, W - right:])
        assert not np.array_equal(im[:, left:W - right], image[:, left:W - right])


def test_continuation_is_longer_and_starts_with_the_input(pipe, clip):
    out = pipe.continue_audio(clip, 0.5, SR, steps=3, generator=0, progress=False)
    assert out.shape == (clip.shape[0] + SR // 2,)
    assert np.array_equal(out[: clip.shape[0]], clip)
    assert np.isfinite(out).all() and np.abs(out[clip.shape[0]:]).max() > 0
    faded = pipe.continue_audio(clip, 0.1, SR, steps=3, generator=0, crossfade_secs=0.01, progress=False)
    fade = int(0.01 * SR)
    assert np.array_equal(faded[: clip.shape[0] - fade], clip[:-fade])
    assert faded.shape == (clip.shape[0] + 800,)


def test_loop_ends_as_it_begins(pipe):
    out, loops = pipe.loop(1, overlap=0.25, steps=3, generator=0, progress=False)
    tied = 8
    assert np.array_equal(out.images[0][:, W - tied:], out.images[0][:, :tied])
    period = (W - tied) * HOP
    assert loops.shape == (1, period)
    # the crossfade starts from what follows the period, so tiling the loop has no jump there
    assert loops[0, 0] == out.audios[0, period]


def test_inversion_round_trip(clip):
    # DDIM inversion evaluates the UNet at each noise level on the sample from the level below, so
    # it is exact only when the prediction does not change along the path. With an input-blind UNet
    # (conv_in weights zero) the round trip is exact (max error 0 grey levels, measured). A random
    # UNet is not a denoiser: its DDIM path is chaotic and even 50 steps lose the image (measured
    # mean error ~100 levels), while a trained model's prediction changes slowly along the path. We
    # use a random UNet whose input weights are scaled by 1e-4 as a stand-in for "slowly": measured
    # mean |error| 2.3 / 2.2 / 1.4 / 0.66 grey levels at 5 / 10 / 25 / 50 steps (max 17 / 14 / 13 / 7
    # of 255). The error is the first-order gap between neighbouring levels, so it must shrink as
    # steps grow; the bounds leave ~1.5x room over the measured values (10 and 50 steps).
    blind = SpectrogramDiffusionPipeline(make_unet(input_scale=0.0), DDIMScheduler(clip_sample=False), make_mel())
    image = blind.audio_to_image(clip, SR)
    noise = blind.encode(image, steps=10, progress=False)
    back = blind(1, steps=10, noise=noise, progress=False, return_audio=False)
    assert np.abs(back.images[0].astype(int) - image.astype(int)).max() <= 1

    smooth = SpectrogramDiffusionPipeline(make_unet(input_scale=1e-4), DDIMScheduler(clip_sample=False), make_mel())
    errors = {}
    for steps in (10, 50):
        noise = smooth.encode(image, steps=steps, progress=False)
        assert noise.shape == (1, 1, H, W)
        back = smooth(1, steps=steps, noise=noise, progress=False, return_audio=False)
        errors[steps] = np.abs(back.images[0].astype(int) - image.astype(int)).mean()
    assert errors[50] < 1.0 and errors[10] < 3.5
    assert errors[50] < errors[10]


def test_slerp_properties():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 1, 32, 32, generator=g), torch.randn(1, 1, 32, 32, generator=g)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    # two independent Gaussian noises are nearly orthogonal: the arc keeps the norm, the chord loses ~30 %
    ends = (a.norm() + b.norm()) / 2
    assert abs(float(mid.norm() / ends) - 1.0) < 0.05
    assert float(((a + b) / 2).norm() / ends) < 0.8
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-5)  # parallel: falls back to a straight line
    with pytest.raises(CourseInputError, match="x1"):
        slerp(a, b[..., :16], 0.5)
    with pytest.raises(CourseInputError, match="alpha"):
        slerp(a, b, 1.5)


def test_images_to_tensor_scaling():
    x = images_to_tensor(np.array([[0, 255]], dtype=np.uint8))
    assert x.shape == (1, 1, 1, 2) and x.flatten().tolist() == [-1.0, 1.0]
    with pytest.raises(CourseInputError, match="uint8"):
        images_to_tensor(np.zeros((4, 4), dtype=np.float32))


# ----------------------------------------------------------------------------- saving and loading


def test_save_load_identity(tmp_path, pipe):
    folder = pipe.save_pretrained(tmp_path / "pipe")
    for part in ("unet/diffusion_pytorch_model.safetensors", "unet/config.json", "scheduler/scheduler_config.json",
                 "mel/mel_config.json", "model_index.json"):
        assert (folder / part).is_file(), part
    index = json.loads((folder / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == ["diffusers", "DDIMScheduler"]
    loaded = SpectrogramDiffusionPipeline.from_pretrained(folder)
    assert loaded.mel.to_dict() == pipe.mel.to_dict()
    a = pipe(1, steps=3, generator=5, eta=0.3, progress=False)
    b = loaded(1, steps=3, generator=5, eta=0.3, progress=False)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.audios, b.audios)


def test_save_load_keeps_the_course_mel_settings(tmp_path):
    """Settings only the course's Mel has (kept under "_course_lib" in mel_config.json) survive a round trip."""
    mel = Mel(x_res=W, y_res=H, sample_rate=SR, n_fft=256, hop_length=HOP, n_iter=4, nnls_iter=3, seed=5)
    folder = SpectrogramDiffusionPipeline(make_unet(), DDIMScheduler(clip_sample=False), mel).save_pretrained(
        tmp_path / "pipe")
    assert "_course_lib" in json.loads((folder / "mel" / "mel_config.json").read_text())
    loaded = SpectrogramDiffusionPipeline.from_pretrained(folder)
    assert loaded.mel.to_dict() == mel.to_dict() and loaded.mel.seed == 5 and loaded.mel.nnls_iter == 3


def test_diffusers_reads_the_layout(tmp_path, pipe):
    from diffusers import DiffusionPipeline

    folder = pipe.save_pretrained(tmp_path / "pipe")
    theirs = DiffusionPipeline.from_pretrained(folder)
    assert isinstance(theirs.unet, UNet2DModel) and isinstance(theirs.scheduler, DDIMScheduler)
    for (name, p1), (_, p2) in zip(pipe.unet.state_dict().items(), theirs.unet.state_dict().items()):
        assert torch.equal(p1, p2), name


def _teticio_style(folder, sample_size, x_res):
    """A folder laid out like teticio's checkpoints: .bin weights, diffusers' Mel config."""
    unet = make_unet(sample_size=sample_size, seed=1)
    unet.save_pretrained(folder / "unet", safe_serialization=False)
    DDIMScheduler().save_pretrained(folder / "scheduler")
    (folder / "mel").mkdir()
    (folder / "mel" / "mel_config.json").write_text(json.dumps({
        "_class_name": "Mel", "_diffusers_version": "0.12.0.dev0", "hop_length": HOP, "n_fft": 256, "n_iter": 4,
        "sample_rate": SR, "top_db": 80, "x_res": x_res, "y_res": H}))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "AudioDiffusionPipeline", "_diffusers_version": "0.12.0.dev0", "mel": ["diffusers", "Mel"],
        "scheduler": ["diffusers", "DDIMScheduler"], "unet": ["diffusers", "UNet2DModel"], "vqvae": [None, None]}))
    return unet


@pytest.mark.parametrize("sample_size, x_res", [(H, W), ((H, 2 * W), 2 * W)])
def test_teticio_style_int_and_pair_sample_size(tmp_path, sample_size, x_res):
    unet = _teticio_style(tmp_path, sample_size, x_res)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.bin").is_file()
    loaded = SpectrogramDiffusionPipeline.from_pretrained(tmp_path, use_safetensors=False)
    assert loaded.sample_size == (H, x_res)
    assert loaded.mel.x_res == x_res and loaded.mel.n_iter == 4
    out = loaded(1, steps=2, generator=0, progress=False)
    assert out.images.shape == (1, H, x_res) and out.audios.shape == (1, (x_res - 1) * HOP)
    for (name, p1), (_, p2) in zip(unet.state_dict().items(), loaded.unet.state_dict().items()):
        assert torch.equal(p1, p2), name


# ----------------------------------------------------------------------------- bad input


def test_bad_input_gets_clear_errors(pipe, clip, tmp_path):
    with pytest.raises(CourseInputError, match="mel: y_res=16"):
        SpectrogramDiffusionPipeline(make_unet(), DDIMScheduler(), Mel(x_res=W, y_res=16, sample_rate=SR, n_fft=256,
                                                                       hop_length=HOP))
    with pytest.raises(CourseInputError, match="init_image: is 32x16"):
        pipe(1, steps=2, init_image=np.zeros((H, 16), np.uint8), progress=False)
    with pytest.raises(CourseInputError, match="images: are 16 high"):
        pipe.encode(np.zeros((16, W), np.uint8), steps=2, progress=False)
    with pytest.raises(CourseInputError, match="mask_start_secs \\+ mask_end_secs"):
        pipe(1, steps=2, raw_audio=clip, sample_rate=SR, mask_start_secs=0.2, mask_end_secs=0.1, progress=False)
    with pytest.raises(CourseInputError, match="mask_start_secs: must be ≥ 0"):
        pipe(1, steps=2, raw_audio=clip, sample_rate=SR, mask_start_secs=-0.1, progress=False)
    with pytest.raises(CourseInputError, match="needs a clip|keeps part of a clip"):
        pipe(1, steps=2, mask_start_secs=0.1, progress=False)
    with pytest.raises(CourseInputError, match="steps: must be at least 1"):
        pipe(1, steps=0, progress=False)
    with pytest.raises(CourseInputError, match="start_step: must be below steps"):
        pipe(1, steps=3, start_step=3, raw_audio=clip, sample_rate=SR, progress=False)
    with pytest.raises(CourseInputError, match="resample"):
        pipe(1, steps=2, raw_audio=clip, sample_rate=16000, progress=False)
    with pytest.raises(CourseInputError, match="resample"):
        pipe.continue_audio(clip, 0.1, 16000, steps=2, progress=False)
    with pytest.raises(CourseInputError, match="sample_rate: give the rate"):
        pipe(1, steps=2, raw_audio=clip, progress=False)
    with pytest.raises(CourseInputError, match="eta: only the DDIM"):
        SpectrogramDiffusionPipeline(make_unet(), DDPMScheduler(), make_mel())(1, steps=2, eta=0.5, progress=False)
    with pytest.raises(CourseInputError, match="noise: has shape"):
        pipe(1, steps=2, noise=torch.zeros(1, 1, H, 16), progress=False)
    with pytest.raises(CourseInputError, match="generator"):
        pipe(1, steps=2, generator="seed", progress=False)
    with pytest.raises(CourseInputError, match="steps: 5000 is more than the 1000"):
        pipe(1, steps=5000, progress=False)
    with pytest.raises(CourseInputError, match="has no unet/ folder"):
        SpectrogramDiffusionPipeline.from_pretrained(tmp_path)
    with pytest.raises(CourseInputError, match="is not an existing folder"):
        SpectrogramDiffusionPipeline.from_pretrained(tmp_path / "missing")


@pytest.mark.parametrize("part", ["model_index.json", "scheduler/scheduler_config.json", "mel/mel_config.json"])
def test_a_corrupt_or_missing_json_file_is_named(tmp_path, pipe, part):
    folder = pipe.save_pretrained(tmp_path / "pipe")
    path = folder / part
    path.write_text(path.read_text()[:20])
    with pytest.raises(CourseInputError, match=f"{path.name}.*not valid JSON.*Restore the folder"):
        SpectrogramDiffusionPipeline.from_pretrained(folder)
    path.unlink()
    if part == "model_index.json":  # optional: teticio-style folders may lack it
        assert SpectrogramDiffusionPipeline.from_pretrained(folder).sample_size == (H, W)
    else:
        with pytest.raises(CourseInputError, match=f"has no {path.name}.*Restore the folder"):
            SpectrogramDiffusionPipeline.from_pretrained(folder)


@pytest.mark.parametrize("damage", ["cut weights", "no weights", "corrupt config", "no config"])
def test_broken_unet_files_name_the_folder_and_the_fix(tmp_path, pipe, damage):
    folder = pipe.save_pretrained(tmp_path / "pipe")
    weights, config = folder / "unet" / "diffusion_pytorch_model.safetensors", folder / "unet" / "config.json"
    if damage == "cut weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "no weights":
        weights.unlink()
    elif damage == "corrupt config":
        config.write_text(config.read_text()[:30])
    else:
        config.unlink()
    match = "could not load the UNet from .*unet.*missing or corrupt.*save_pretrained"
    if damage == "no weights":  # found before diffusers looks for (pickle) .bin files and says so
        match = r"unet' has no weights \(diffusion_pytorch_model.safetensors or .bin\).*save_pretrained"
    with pytest.raises(CourseInputError, match=match):
        SpectrogramDiffusionPipeline.from_pretrained(folder)


def test_public_signatures_have_no_private_arguments():
    import inspect

    for method in (SpectrogramDiffusionPipeline.__call__, SpectrogramDiffusionPipeline.continue_audio,
                   SpectrogramDiffusionPipeline.loop, SpectrogramDiffusionPipeline.encode):
        assert not [p for p in inspect.signature(method).parameters if p.startswith("_")], method.__name__


def test_no_generator_follows_the_global_seed(pipe):
    torch.manual_seed(11)
    a = pipe(1, steps=2, eta=1.0, progress=False, return_audio=False)
    torch.manual_seed(11)
    b = pipe(1, steps=2, eta=1.0, progress=False, return_audio=False)
    assert np.array_equal(a.images, b.images) and torch.equal(a.noise, b.noise)


def test_images_to_audio_takes_arrays_lists_and_pil_images_and_refuses_others(pipe):
    from PIL import Image

    images = pipe(2, steps=2, generator=0, progress=False).images
    expected = pipe.images_to_audio(images)
    assert expected.shape[0] == 2 and expected.dtype == np.float32
    assert np.array_equal(pipe.images_to_audio([images[0], images[1]]), expected)
    assert np.array_equal(pipe.images_to_audio([Image.fromarray(im) for im in images]), expected)
    assert np.array_equal(pipe.images_to_audio(images[0]), expected[:1])
    for bad in ([], images.astype(np.float32), images[:, None]):
        with pytest.raises(CourseInputError, match="images: expected uint8"):
            pipe.images_to_audio(bad)
