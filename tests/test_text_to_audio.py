"""course_lib.text_to_audio: lesson 07's guided DDIM, inversion, interpolation and cost table on the shipped model."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import text_to_audio as tta
from course_lib.errors import CourseInputError
from course_lib.models.classifier import load_style_classifier

PROMPTS = ["calm ambient", "driving techno"]


@pytest.fixture(scope="module")
def model() -> tta.TextToAudio:
    return tta.load_text_to_audio()


@pytest.fixture(scope="module")
def noise(model) -> torch.Tensor:
    return model.noise(2, seed=5)


def reference_ddim(model, noise, cond, uncond, w, steps):
    """DDIM written with diffusers' own DDIMScheduler.step and plain UNet calls: what generate must match."""
    sched = type(model.scheduler).from_config(model.scheduler.config)
    sched.set_timesteps(steps)
    z = noise.clone()
    with torch.no_grad():
        for t in sched.timesteps:
            eps_c = model.unet(z, t, encoder_hidden_states=cond).sample
            eps = eps_c if uncond is None else (lambda u: u + w * (eps_c - u))(
                model.unet(z, t, encoder_hidden_states=uncond).sample)
            z = sched.step(eps, t, z).prev_sample
    return z


def test_shapes_and_ranges(model):
    assert model.latent_shape == (4, 16, 16) and model.image_shape == (1, 64, 64) and model.sample_rate == 22050
    assert 0.5 < model.scaling_factor < 1.0
    states = model.encode_prompt(["calm ambient", ""])
    assert states.shape == (2, 16, 64)
    assert float(states[1].abs().max()) == 0.0 and float(states[0].abs().max()) > 0.1  # "" is the null condition
    assert torch.equal(model.encode_prompt(None), torch.zeros(1, 16, 64))
    z = model.generate(PROMPTS, steps=3, seed=0, progress=False)
    assert z.shape == (2, 4, 16, 16) and torch.isfinite(z).all()
    images = model.decode_latents(z)
    assert images.shape == (2, 1, 64, 64) and float(images.min()) >= -1 and float(images.max()) <= 1
    audio = model.images_to_audio(images)
    assert audio.shape == (2, 63 * 512) and audio.dtype == torch.float32 and float(audio.abs().max()) > 0
    back = model.encode_images(images)
    assert back.shape == (2, 4, 16, 16)
    with pytest.raises(CourseInputError, match="shorter than one slice"):
        model.audio_to_images(audio[0])  # 63 hops of sound: one hop short of a 64-frame image
    clip = torch.cat([audio[0], audio[0], torch.zeros(2000)])
    assert model.audio_to_images(clip).shape == (2, 1, 64, 64)


def test_the_autoencoder_round_trip_keeps_the_image(model):
    clip = model.images_to_audio(model.decode_latents(model.generate("dreamy ambient", steps=10, seed=3,
                                                                     progress=False)))
    image = model.audio_to_images(torch.cat([clip[0], clip[0]]))[:1]
    rebuilt = model.decode_latents(model.encode_images(image))
    error = float((rebuilt - image).abs().mean())
    assert error < 0.5 * float((image - image.mean()).abs().mean()), error  # far better than a flat image


def test_same_seed_same_latents_on_the_cpu(model):
    a = model.generate(PROMPTS, steps=4, seed=11, progress=False)
    b = model.generate(PROMPTS, steps=4, seed=11, progress=False)
    c = model.generate(PROMPTS, steps=4, seed=12, progress=False)
    assert torch.equal(a, b)
    assert float((a - c).abs().mean()) > 0.1
    assert torch.equal(model.generate(PROMPTS, steps=4, seed=torch.Generator().manual_seed(11), progress=False), a)


def test_generate_is_seeded_noise_then_generate_from(model):
    z = model.generate(PROMPTS, steps=4, seed=9, progress=False)
    assert torch.equal(z, model.generate_from(model.noise(2, 9), PROMPTS, steps=4, progress=False))


def test_text_states_work_as_prompts(model, noise):
    by_text = model.generate_from(noise, PROMPTS, steps=4, progress=False)
    by_states = model.generate_from(noise, model.encode_prompt(PROMPTS), steps=4, progress=False)
    torch.testing.assert_close(by_states, by_text, rtol=0, atol=0)
    one = model.generate_from(noise, model.encode_prompt("calm ambient"), steps=4, progress=False)  # broadcast
    torch.testing.assert_close(one, model.generate_from(noise, "calm ambient", steps=4, progress=False))


def test_guidance_one_is_the_conditional_path(model, noise):
    cond = model.encode_prompt(PROMPTS)
    ref = reference_ddim(model, noise, cond, None, 1.0, 6)
    z = model.generate_from(noise, PROMPTS, guidance_scale=1.0, steps=6, progress=False)
    torch.testing.assert_close(z, ref, rtol=1e-4, atol=1e-4)
    # in one batch, the guided prediction at w = 1 is eps_c whatever the unconditional branch says
    neg = model.encode_prompt(["hard rock", "jazz"])
    eps_c = model.unet(noise, 500, encoder_hidden_states=cond).sample
    torch.testing.assert_close(model.guided_noise(noise, 500, cond, neg, 1.0), eps_c, rtol=1e-4, atol=1e-4)


def test_guided_sampling_matches_diffusers_ddim(model, noise):
    cond = model.encode_prompt(PROMPTS)
    ref = reference_ddim(model, noise, cond, torch.zeros_like(cond), 3.0, 6)
    z = model.generate_from(noise, PROMPTS, guidance_scale=3.0, steps=6, progress=False)
    torch.testing.assert_close(z, ref, rtol=1e-4, atol=1e-4)
    assert float((z - model.generate_from(noise, PROMPTS, guidance_scale=1.0, steps=6, progress=False)).abs().mean()) > 0.02


def test_a_negative_prompt_is_the_unconditional_branch(model, noise):
    plain = model.generate_from(noise, PROMPTS, guidance_scale=3.0, steps=6, progress=False)
    negative = model.generate_from(noise, PROMPTS, guidance_scale=3.0, negative_prompt="hard rock", steps=6,
                                   progress=False)
    cond = model.encode_prompt(PROMPTS)
    ref = reference_ddim(model, noise, cond, model.encode_prompt(["hard rock"] * 2), 3.0, 6)
    torch.testing.assert_close(negative, ref, rtol=1e-4, atol=1e-4)
    assert float((negative - plain).abs().mean()) > 0.05
    # without guidance the unconditional branch is unused, so a negative prompt changes nothing
    one = model.generate_from(noise, PROMPTS, guidance_scale=1.0, negative_prompt="hard rock", steps=6, progress=False)
    assert torch.equal(one, model.generate_from(noise, PROMPTS, guidance_scale=1.0, steps=6, progress=False))


def test_ddim_inversion_round_trip(model):
    z = model.generate(PROMPTS, steps=10, seed=2, progress=False)
    z_t = model.invert(z, PROMPTS, steps=10, progress=False)
    assert 0.6 < float(z_t.std()) < 1.4  # it ends at noise-like latents ...
    back = model.generate_from(z_t, PROMPTS, guidance_scale=1.0, steps=10, progress=False)
    fresh = model.generate_from(model.noise(2, 99), PROMPTS, guidance_scale=1.0, steps=10, progress=False)
    error = float((back - z).norm() / z.norm())
    fresh_error = float((fresh - z).norm() / z.norm())
    assert error < 0.35 * fresh_error, (error, fresh_error)  # ... that regenerate z, unlike fresh noise
    assert error < 0.25, error  # measured: 0.16 (fresh noise: 0.70)


def test_ddim_step_inverts_itself():
    x, eps = torch.randn(3, 4, 16, 16), torch.randn(3, 4, 16, 16)
    there = tta.ddim_step(x, eps, 0.3, 0.9)
    torch.testing.assert_close(tta.ddim_step(there, eps, 0.9, 0.3), x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tta.ddim_step(x, eps, 0.5, 0.5), x)  # no move between equal levels
    clean = tta.ddim_step(x, eps, 0.3, 1.0)  # to alpha 1: the predicted clean latent itself
    torch.testing.assert_close(clean, (x - 0.7 ** 0.5 * eps) / 0.3 ** 0.5)


def test_slerp_endpoints_norm_and_shapes():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 4, 16, 16, generator=g), torch.randn(1, 4, 16, 16, generator=g)
    b = b * (a.norm() / b.norm())
    torch.testing.assert_close(tta.slerp(a, b, 0.0), a)
    torch.testing.assert_close(tta.slerp(a, b, 1.0), b)
    mid = tta.slerp(a, b, 0.5)
    assert mid.shape == a.shape
    assert math.isclose(float(mid.norm()), float(a.norm()), rel_tol=1e-4)  # the norm is kept ...
    assert float(((a + b) / 2).norm()) < 0.8 * float(a.norm())  # ... where a straight line loses about 30 %
    cos = lambda u, v: float((u * v).sum() / (u.norm() * v.norm()))  # noqa: E731
    assert math.isclose(cos(mid, a), cos(mid, b), rel_tol=1e-4)  # half-way along the arc
    row = tta.slerp(a, b, [0.0, 0.25, 1.0])
    assert row.shape == (3, 4, 16, 16)  # a batch for generate_from
    torch.testing.assert_close(row[0], a[0])
    torch.testing.assert_close(row[1], tta.slerp(a, b, 0.25)[0])
    assert tta.slerp(a[0], b[0], torch.linspace(0, 1, 5)).shape == (5, 4, 16, 16)
    same = tta.slerp(a, a, 0.3)  # parallel: no circle, falls back to the line
    torch.testing.assert_close(same, a)


def test_cost_table(model):
    rows = tta.cost_table(model, batch=1, repeats=1)
    latent, pixel = rows
    assert "untrained" in pixel["model"] and "timing only" in pixel["model"] and "shipped" in latent["model"]
    assert latent["values per clip"] == 4 * 16 * 16 and pixel["values per clip"] == 64 * 64
    assert pixel["values per clip"] == 4 * latent["values per clip"]
    assert latent["self-attention tokens"] == [64] and pixel["self-attention tokens"] == [1024]  # 8x8 and 32x32
    assert latent["attention layers"] == pixel["attention layers"] == 4
    assert abs(latent["parameters"] - pixel["parameters"]) < 0.01 * latent["parameters"]  # same width
    assert pixel["activations MB per step"] > 8 * latent["activations MB per step"]
    assert all(r["seconds per step"] > 0 for r in rows) and latent["time vs latent"] == 1.0
    assert pixel["time vs latent"] == round(pixel["seconds per step"] / latent["seconds per step"], 2)
    with pytest.raises(CourseInputError, match="TextToAudio"):
        tta.cost_table("model")


def test_bad_inputs(model, noise):
    cases = [
        (lambda: model.generate([], steps=2), "empty list"),
        (lambda: model.generate(PROMPTS, guidance_scale=-1.0, steps=2), "guidance_scale"),
        (lambda: model.generate(PROMPTS, steps=0), "steps"),
        (lambda: model.generate(PROMPTS, steps=5000), "steps"),
        (lambda: model.generate(3, steps=2), "prompts"),
        (lambda: model.generate_from(torch.zeros(2, 4, 8, 8), PROMPTS, steps=2), "shape"),
        (lambda: model.generate_from(noise, ["a", "b", "c"], steps=2), "3 prompts for 2"),
        (lambda: model.generate_from(noise, PROMPTS, negative_prompt="", steps=2), "negative_prompt"),
        (lambda: model.generate_from(noise, torch.zeros(2, 8, 64), steps=2), "encode_prompt"),
        (lambda: model.generate_from(noise, torch.full((2, 16, 64), float("nan")), steps=2), "NaN"),
        (lambda: model.decode_latents(torch.full((1, 4, 16, 16), float("nan"))), "NaN"),
        (lambda: model.guided_noise(noise, 500, model.encode_prompt("a"), torch.zeros(1, 16, 64), 3.0), "one row"),
        (lambda: model.guided_noise(noise[:, :2], 500, model.encode_prompt(PROMPTS), torch.zeros(2, 16, 64), 3.0),
         "shape"),
        (lambda: model.decode_latents(torch.zeros(4, 16, 16)), "dimensions"),
        (lambda: model.invert(torch.zeros(1, 1, 64, 64), "ambient", steps=2), "encode_images"),
        (lambda: model.encode_images(torch.zeros(1, 1, 32, 32)), "audio_to_images"),
        (lambda: model.encode_images(torch.full((1, 1, 64, 64), 3.0)), r"\[-1, 1\]"),
        (lambda: model.images_to_audio(torch.zeros(1, 4, 16, 16)), "decode_latents"),
        (lambda: tta.ddim_step(noise, noise, 0.0, 0.5), "alpha_from"),
        (lambda: tta.slerp(torch.ones(3), torch.ones(4), 0.5), "shapes differ"),
        (lambda: tta.slerp(torch.ones(3), torch.ones(3), 1.5), "t:"),
        (lambda: tta.slerp(torch.zeros(3), torch.ones(3), 0.5), "all zeros"),
    ]
    for call, message in cases:
        with pytest.raises(CourseInputError, match=message):
            call()


def test_missing_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(CourseInputError, match="lacks"):
        tta.load_text_to_audio(tmp_path)
    monkeypatch.setattr(tta, "checkpoint_dir", lambda name: tmp_path / name)
    with pytest.raises(CourseInputError, match="train_latent_diffusion.py"):
        tta.load_text_to_audio()


def test_prompted_styles_are_heard(model):
    """Six clips each for an ambient and a techno prompt: the style classifier hears what was asked."""
    clf = load_style_classifier()
    prompts = ["dreamy ambient"] * 6 + ["techno music"] * 6
    z = model.generate(prompts, guidance_scale=3.0, steps=25, seed=0, progress=False)
    heard = clf.predict(model.images_to_audio(model.decode_latents(z)), sample_rate=model.sample_rate)
    ambient, techno = clf.classes.index("ambient"), clf.classes.index("techno")
    assert int((heard[:6] == ambient).sum()) >= 5, heard
    assert int((heard[6:] == techno).sum()) >= 5, heard
