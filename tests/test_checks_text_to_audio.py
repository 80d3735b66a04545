"""Lesson 07's checks: right answers pass; the usual wrong answers fail with the matching hint; bad input is refused."""

import math
from pathlib import Path

import pytest
import torch

from course_lib.checks import (
    COST_KEYS,
    COST_MODELS,
    UNET_RUNS,
    ExerciseFailed,
    check_cross_attention,
    check_ddim_inversion_step,
    check_latent_cost,
    check_latent_scale,
    check_noise_guidance,
    check_unet_evaluations,
)
from course_lib.errors import CourseInputError

LDM = Path(__file__).resolve().parent.parent / "checkpoints" / "text-audio-ldm"


def guide(eps_uncond, eps_cond, w):
    return eps_uncond + w * (eps_cond - eps_uncond)


def cross_attention(latents, text, wq, wk, wv):
    q, k, v = latents @ wq, text @ wk, text @ wv
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(wq.shape[1]), dim=-1) @ v


def invert_step(x_prev, eps, alpha_bar_prev, alpha_bar_t):
    x0 = (x_prev - (1 - alpha_bar_prev) ** 0.5 * eps) / alpha_bar_prev ** 0.5
    return alpha_bar_t ** 0.5 * x0 + (1 - alpha_bar_t) ** 0.5 * eps


RIGHT_COST = {
    "course_mel_values": 64 * 64, "course_latent_values": 4 * 16 * 16, "course_compression": 4,
    "course_tokens": 8 * 8, "course_scores": 64 ** 2, "course_mel_scores": (32 * 32) ** 2,
    "audioldm2_mel_values": 1024 * 64, "audioldm2_latent_values": 8 * 256 * 16, "audioldm2_compression": 2,
    "audioldm2_tokens": 256 * 16, "audioldm2_scores": 4096 ** 2, "audioldm2_mel_scores": (1024 * 64) ** 2,
}


def test_right_answers_pass(capsys):
    check_noise_guidance(guide)
    check_cross_attention(cross_attention)
    check_latent_scale(lambda z: 1 / z.std())
    check_latent_cost(dict(RIGHT_COST))
    check_ddim_inversion_step(invert_step)
    out = capsys.readouterr().out
    assert out.count("✅") == 5
    assert "4x fewer values" in out and "256x fewer scores" in out


# ----------------------------------------------------------------------------- 1. guidance


@pytest.mark.parametrize("wrong, hint", [
    (lambda u, c, w: c + w * (c - u), "you started from eps_cond"),
    (lambda u, c, w: u + w * (u - c), "points the wrong way"),
    (lambda u, c, w: w * u + (1 - w) * c, "swapped roles"),
    (lambda u, c, w: w * c, "only rescales"),
    (lambda u, c, w: u + w * c, "along the difference"),
    (lambda u, c, w: torch.cat([u, c]), "do not stack"),
    (lambda u, c, w: guide(u, c, w) * float("nan"), "NaN"),
    (lambda u, c, w: guide(u, c, w).numpy().tolist() and "guided", "not numeric"),
])
def test_guidance_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_noise_guidance(wrong)


def test_guidance_that_only_works_at_w_3_is_told_the_end_points():
    def only_three(u, c, w):
        return guide(u, c, 3.0)

    with pytest.raises(ExerciseFailed, match="at w = 0 guidance must return eps_uncond itself"):
        check_noise_guidance(only_three)


def test_guidance_in_place_edit_is_caught():
    def in_place(u, c, w):
        c.sub_(u)
        return u + w * c

    with pytest.raises(ExerciseFailed, match="changed its input eps_cond"):
        check_noise_guidance(in_place)


# ----------------------------------------------------------------------------- 2. what guidance costs

RIGHT_ROWS = {"guided": 40, "unguided": 20, "negative": 40, "invert": 20}


@pytest.fixture(scope="module")
def model():
    from course_lib.text_to_audio import load_text_to_audio

    return load_text_to_audio()


def test_unet_evaluations_right_answer_passes(model, capsys):
    check_unet_evaluations(dict(RIGHT_ROWS), model)
    assert "guided 40 latents, unguided 20" in capsys.readouterr().out


@pytest.mark.parametrize("key, value, hint", [
    ("guided", 20, "sees each latent twice per step"),
    ("guided", 4, "one step's worth"),
    ("negative", 60, "adds no third prediction"),
    ("unguided", 40, "cannot change the result"),
    ("invert", 40, "cannot change the result"),
    ("invert", 7, "count per step"),
])
def test_unet_evaluations_wrong_predictions(model, key, value, hint):
    with pytest.raises(ExerciseFailed, match=hint) as info:
        check_unet_evaluations({**RIGHT_ROWS, key: value}, model)
    assert f"counted on the model: {RIGHT_ROWS[key]}" in str(info.value)


@pytest.mark.parametrize("predicted, model_arg, message", [
    (dict(RIGHT_ROWS), "the model", "expected the lesson's model"),
    ([40, 20, 40, 20], None, "expected the dict rows"),
    ({**RIGHT_ROWS, "invert": None}, None, "not answered yet: no prediction for 'invert'"),
    ({**RIGHT_ROWS, "guided": 40.5}, None, "expected a whole number"),
])
def test_unet_evaluations_bad_input(model, predicted, model_arg, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_unet_evaluations(predicted, model if model_arg is None else model_arg)


def test_unet_runs_name_every_prediction():
    assert set(UNET_RUNS) == set(RIGHT_ROWS)


# ----------------------------------------------------------------------------- 3. cross-attention


def _scaled(scale):
    def attention(latents, text, wq, wk, wv):
        q, k, v = latents @ wq, text @ wk, text @ wv
        return torch.softmax(q @ k.transpose(-2, -1) / scale(wq, latents, text), dim=-1) @ v
    return attention


@pytest.mark.parametrize("wrong, hint", [
    (_scaled(lambda wq, x, t: 1.0), "missing their scale"),
    (_scaled(lambda wq, x, t: wq.shape[1]), "sqrt\\(d\\), not d"),
    (_scaled(lambda wq, x, t: math.sqrt(x.shape[-1])), "not by the width of the latents"),
    (_scaled(lambda wq, x, t: math.sqrt(t.shape[-1])), "not by the width of the latents \\(C\\) or of the text"),
    (lambda x, t, wq, wk, wv: torch.softmax((x @ wq) @ (t @ wk).transpose(-2, -1) / math.sqrt(wq.shape[1]), dim=1)
     @ (t @ wv), "wrong axis"),
    (lambda x, t, wq, wk, wv: cross_attention(x, x, wq, wk, wv), "that is self-attention"),
    (lambda x, t, wq, wk, wv: torch.softmax((x @ wq) @ (t @ wk).transpose(-2, -1) / math.sqrt(wq.shape[1]), dim=-1)
     @ (t @ wk), "text @ wk gives the keys"),
    (lambda x, t, wq, wk, wv: torch.softmax((x @ wq) @ (t @ wk).transpose(-2, -1) / math.sqrt(wq.shape[1]), dim=-1),
     "those are the attention weights"),
    (lambda x, t, wq, wk, wv: cross_attention(t, x, wk, wq, wv), "queries must come from the latents"),
    (lambda x, t, wq, wk, wv: (x @ wq) @ (t @ wk).transpose(-2, -1) @ (t @ wv) @ wq, "follow the shapes"),
])
def test_cross_attention_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_cross_attention(wrong)


def test_cross_attention_is_one_head_of_diffusers_attention():
    """With one head, diffusers' Attention (the UNet's attn2) is the check's formula followed by its output layer."""
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=96, cross_attention_dim=64, heads=1, dim_head=12).eval()
    x, text = torch.randn(2, 64, 96), torch.randn(2, 7, 64)
    with torch.no_grad():
        want = attn(x, encoder_hidden_states=text)
        mine = attn.to_out[0](cross_attention(x, text, attn.to_q.weight.T, attn.to_k.weight.T, attn.to_v.weight.T))
    torch.testing.assert_close(mine, want, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- 4. the latents' scale


def test_latent_scale_right_answers_pass(capsys):
    check_latent_scale(lambda z: 1 / z.std())
    check_latent_scale(lambda z: 1 / z.numpy().std())  # the population standard deviation is accepted too
    assert capsys.readouterr().out.count("✅") == 2


@pytest.mark.parametrize("wrong, hint", [
    (lambda z: z.std(), "that is the standard deviation itself"),
    (lambda z: 1 / z.var(), "1 / variance"),
    (lambda z: 1 / z.square().mean().sqrt(), "root mean square"),
    (lambda z: 1 / z.abs().max(), "squeezes the latents"),
    (lambda z: 1 / z.std(dim=(0, 2, 3)), "one factor per channel"),
    (lambda z: 1 / z.std(dim=0), "expected one number"),
    (lambda z: z.std() * float("nan"), "standard deviation must be 1"),
    (lambda z: 2 / z.std(), "standard deviation must be 1"),
])
def test_latent_scale_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_latent_scale(wrong)


def test_latent_scale_in_place_edit_is_caught():
    def in_place(z):
        factor = 1 / z.std()
        z.mul_(factor)
        return factor

    with pytest.raises(ExerciseFailed, match="changed its input latents"):
        check_latent_scale(in_place)


# ----------------------------------------------------------------------------- 5. what the latent space saves


@pytest.mark.parametrize("key, value, hint", [
    ("course_latent_values", 16 * 16, "count the channels too"),
    ("course_compression", 16, "ratio of positions"),
    ("course_compression", 3, "mel values / latent values"),
    ("course_tokens", 16 * 16, "first block has no attention"),
    ("audioldm2_tokens", 4096 * 8, "not one number"),
    ("course_scores", 64, "every token scores against every token"),
    ("course_scores", 64 * 63 // 2, "both orders count"),
    ("course_mel_scores", 32 * 32, "that is the token count"),
    ("course_mel_scores", 4096 * 16, "16x more tokens"),
    ("audioldm2_compression", 16, "shrink only 2x"),
    ("audioldm2_tokens", 128 * 8, "one token per latent position"),
    ("audioldm2_mel_scores", 65536, "that is the token count"),
])
def test_latent_cost_wrong_predictions(key, value, hint):
    with pytest.raises(ExerciseFailed, match=hint) as info:
        check_latent_cost({**RIGHT_COST, key: value})
    assert key in str(info.value) and f"{RIGHT_COST[key]:,}" in str(info.value)


@pytest.mark.parametrize("predicted, message", [
    (None, "expected the dict cost"),
    ([4096, 1024], "expected the dict cost"),
    ({**RIGHT_COST, "course_tokens": None}, "not answered yet: no prediction for 'course_tokens'"),
    ({k: v for k, v in RIGHT_COST.items() if k != "audioldm2_scores"}, "no prediction for 'audioldm2_scores'"),
    ({**RIGHT_COST, "course_compression": 4.5}, "expected a whole number"),
    ({**RIGHT_COST, "course_compression": float("nan")}, "expected a whole number"),
    ({**RIGHT_COST, "course_tokens": "64"}, "expected a whole number"),
])
def test_latent_cost_bad_input(predicted, message):
    with pytest.raises(ExerciseFailed, match=message):
        check_latent_cost(predicted)


def test_latent_cost_accepts_whole_floats():
    check_latent_cost({k: float(v) for k, v in RIGHT_COST.items()})


def test_latent_cost_shapes_are_the_shipped_models():
    """The course row of COST_MODELS is what the shipped VAE and UNet do: measured on the models themselves."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    vae = AutoencoderKL.from_pretrained(LDM, subfolder="vae").eval()
    unet = UNet2DConditionModel.from_pretrained(LDM, subfolder="unet").eval()
    spec = COST_MODELS["course"]
    seen = []
    hooks = [m.register_forward_hook(lambda mod, args, out: seen.append(args[0].shape[1]))
             for name, m in unet.named_modules() if name.endswith("attn1")]
    with torch.no_grad():
        z = vae.encode(torch.zeros(1, *spec["mel"])).latent_dist.mean
        unet(z, 10, encoder_hidden_states=torch.zeros(1, 5, unet.config.cross_attention_dim))
    for hook in hooks:
        hook.remove()
    assert tuple(z.shape[1:]) == spec["latent"]
    assert seen[0] == RIGHT_COST["course_tokens"]  # the first self-attention sees 8 x 8 tokens


def test_latent_cost_audioldm2_layout_matches_diffusers():
    """AudioLDM 2's UNet attends in its first block; its VAE (3 blocks) shrinks each side 4x."""
    import inspect

    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel

    first = inspect.signature(AudioLDM2UNet2DConditionModel.__init__).parameters["down_block_types"].default[0]
    assert first.startswith("CrossAttn") and COST_MODELS["audioldm2"]["halvings"] == 0
    mel, latent = COST_MODELS["audioldm2"]["mel"], COST_MODELS["audioldm2"]["latent"]
    assert mel[1] == round(10.24 * 16000 / 160) and (mel[1] // latent[1], mel[2] // latent[2]) == (4, 4)
    assert set(COST_KEYS) == set(RIGHT_COST)


# ----------------------------------------------------------------------------- 6. DDIM inversion


@pytest.mark.parametrize("wrong, hint", [
    (lambda x, e, ap, at: invert_step(x, e, at, ap), "that is the ordinary DDIM step"),
    (lambda x, e, ap, at: at ** 0.5 * x + (1 - at) ** 0.5 * e, "estimate x0 from x_prev and eps first"),
    (lambda x, e, ap, at: at * (x - (1 - ap) * e) / ap + (1 - at) * e, "fraction of the variance"),
    (lambda x, e, ap, at: at ** 0.5 * (x - (1 - ap) ** 0.5 * e) / ap ** 0.5 - (1 - at) ** 0.5 * e,
     "add the noise direction"),
    (lambda x, e, ap, at: at ** 0.5 * (x - (1 - ap) ** 0.5 * e) + (1 - at) ** 0.5 * e, "divides by sqrt"),
    (lambda x, e, ap, at: (at / ap) ** 0.5 * x, "scaling x_prev is not enough"),
    (lambda x, e, ap, at: invert_step(x, e, ap, at)[0], "expected shape"),
    (lambda x, e, ap, at: invert_step(x, e, ap, at) / (at - at), "NaN or inf"),
    (lambda x, e, ap, at: invert_step(x, e, ap, at) + 0.01, "two moves"),
])
def test_inversion_wrong_answers(wrong, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        check_ddim_inversion_step(wrong)


def test_inversion_in_place_edit_is_caught():
    def in_place(x, e, ap, at):
        x.sub_((1 - ap) ** 0.5 * e)
        return at ** 0.5 * x / ap ** 0.5 + (1 - at) ** 0.5 * e

    with pytest.raises(ExerciseFailed, match="changed its input x_prev"):
        check_ddim_inversion_step(in_place)


def test_inversion_matches_diffusers_and_ddim_undoes_it():
    """The accepted answer is diffusers' DDIMInverseScheduler step, and DDIMScheduler's step takes it back."""
    from diffusers import DDIMInverseScheduler, DDIMScheduler

    config = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False, set_alpha_to_one=True)
    inverse, forward = DDIMInverseScheduler(**config), DDIMScheduler(**config)
    inverse.set_timesteps(50)
    forward.set_timesteps(50)
    gen = torch.Generator().manual_seed(1)
    x, eps = torch.randn(1, 4, 16, 16, generator=gen), torch.randn(1, 4, 16, 16, generator=gen)
    ac = inverse.alphas_cumprod
    for t in (0, 500, 960):
        prev = t - 20
        a_prev = torch.tensor(1.0) if prev < 0 else ac[prev]
        want = inverse.step(eps, t, x).prev_sample  # DDIMInverseScheduler.step(eps, t, x) moves from t - 20 to t
        mine = invert_step(x, eps, a_prev, ac[t])
        torch.testing.assert_close(mine, want, atol=1e-5, rtol=1e-5)
        if prev >= 0:
            back = forward.step(eps, t, mine, eta=0.0).prev_sample
            torch.testing.assert_close(back, x, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------- any check


@pytest.mark.parametrize("check", [check_noise_guidance, check_cross_attention, check_latent_scale,
                                   check_ddim_inversion_step])
def test_stubs_and_non_functions(check):
    def stub(*args):
        raise NotImplementedError("Exercise: write your answer here")

    with pytest.raises(ExerciseFailed, match="not answered yet"):
        check(stub)
    with pytest.raises(CourseInputError, match="without calling it"):
        check(torch.zeros(3))


@pytest.mark.parametrize("check, arity", [(check_noise_guidance, 3), (check_cross_attention, 5),
                                          (check_latent_scale, 1), (check_ddim_inversion_step, 4)])
def test_an_answer_that_raises_gets_a_hint(check, arity):
    def broken(*args):
        assert len(args) == arity
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(ExerciseFailed, match="raised RuntimeError") as info:
        check(broken)
    assert "Hint:" in str(info.value)
