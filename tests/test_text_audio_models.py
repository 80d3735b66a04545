"""The shipped lesson-07 models: the CLAP-style text–audio embedding and the text-to-audio latent diffusion parts."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from course_lib.errors import CourseInputError
from course_lib.io import REPO_ROOT
from course_lib.mel import Mel
from course_lib.models.text_audio import TextAudioModel, contrastive_loss, load_text_audio_model, make_word_tokenizer
from course_lib.synth import MUSIC_STYLES, music_clip

LDM = REPO_ROOT / "checkpoints" / "text-audio-ldm"
EMB = REPO_ROOT / "checkpoints" / "text-audio-embedding"
MEL = dict(x_res=64, y_res=64, sample_rate=22050, n_fft=1024, hop_length=512, top_db=80)


@pytest.fixture(scope="module")
def model() -> TextAudioModel:
    return load_text_audio_model()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """One mel image per style, from seeds no model was trained or evaluated on."""
    mel = Mel(**MEL)
    clips = torch.stack([torch.from_numpy(music_clip(s, 1.6, 22050, seed=77_000 + k)) for k, s in enumerate(MUSIC_STYLES)])
    return mel.audio_to_images(clips.float()).float()[:, None] / 127.5 - 1.0


def test_the_shipped_checkpoints_are_small_and_complete():
    for folder in (EMB, LDM / "unet", LDM / "vae"):
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        assert 100_000 < size <= 10_000_000, (folder, size)
    ldm_bytes = sum(p.stat().st_size for p in LDM.rglob("*") if p.is_file())
    assert ldm_bytes <= 10_000_000, ldm_bytes  # the whole text-audio-ldm folder
    for part in ("unet", "vae"):  # stored in float16 (the card's numbers are measured on these)
        stored = load_file(LDM / part / "diffusion_pytorch_model.safetensors")
        assert {v.dtype for v in stored.values()} == {torch.float16}, part
    assert (EMB / "tokenizer.json").is_file() and (LDM / "scheduler" / "scheduler_config.json").is_file()
    config = json.loads((LDM / "config.json").read_text())
    assert config["latent_shape"] == [4, 16, 16] and config["mel"]["x_res"] == 64
    assert config["training"]["fd_ratio"] < 1 / 3  # the card's claim, measured by the script
    assert config["training"]["weights_dtype"] == "float16" and config["training"]["evaluated_on"] == "stored weights"
    assert config["training"]["eval"]["n"] >= 100 and config["training"]["eval"]["style_accuracy"] >= 0.8
    assert config["training"]["eval"]["clap_matched"] > config["training"]["eval"]["clap_shuffled"]


def test_embedding_shapes_and_the_empty_prompt(model, images):
    states, mask = model.text_states(["fast techno", "a calm ambient track with pads", ""])
    assert states.shape == (3, model.config["max_tokens"], model.config["text_width"])
    assert mask[0].tolist()[:3] == [1.0, 1.0, 0.0] and mask[2].sum() == 0
    assert torch.all(states[2] == 0) and torch.all(states[0, 2:] == 0)  # no text, no padding: all zeros
    emb = model.embed_text(["techno", "jazz"])
    assert emb.shape == (2, model.config["embed_dim"]) and torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert model.embed_mel(images).shape == (len(MUSIC_STYLES), model.config["embed_dim"])


def test_matched_prompts_score_above_shuffled_ones(model, images):
    prompts = [f"{s} music" for s in ("hip hop", "techno", "ambient", "chiptune", "rock", "jazz")]
    with torch.no_grad():
        scores = model.embed_text(prompts) @ model.embed_mel(images).T  # (prompt, clip)
    matched = scores.diagonal()
    shuffled = scores.roll(1, dims=0).diagonal()
    assert matched.mean() > shuffled.mean() + 0.2
    assert (scores.argmax(dim=0) == torch.arange(len(prompts))).float().mean() >= 5 / 6  # zero-shot style
    assert torch.allclose(model.clap_score(prompts, images), matched, atol=1e-5)


def test_the_ldm_parts_load_with_diffusers_and_fit_together(model):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(LDM, subfolder="unet").eval()
    vae = AutoencoderKL.from_pretrained(LDM, subfolder="vae").eval()
    scheduler = DDIMScheduler.from_pretrained(LDM, subfolder="scheduler")
    assert unet.config.cross_attention_dim == model.config["text_width"]
    for part in (unet, vae):  # float16 on disk, float32 parameters once loaded
        assert {p.dtype for p in part.parameters()} == {torch.float32}
    assert scheduler.config.num_train_timesteps == 1000
    states, _ = model.text_states(["fast techno", ""])
    z = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eps = unet(z, 500, encoder_hidden_states=states).sample
        image = vae.decode(z / vae.config.scaling_factor).sample
    assert eps.shape == z.shape and torch.isfinite(eps).all()
    assert not torch.allclose(eps[0], unet(z[:1], 500, encoder_hidden_states=torch.zeros_like(states[:1])).sample[0])
    assert image.shape == (2, 1, 64, 64)


def test_contrastive_loss_prefers_aligned_pairs():
    a = torch.nn.functional.normalize(torch.randn(8, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    scale = torch.tensor(2.0)
    aligned = contrastive_loss(a, a, scale)
    shuffled = contrastive_loss(a, a.roll(1, dims=0), scale)
    assert aligned < shuffled
    assert torch.isclose(contrastive_loss(a, a, scale, torch.eye(8, dtype=torch.bool)), aligned)
    swapped = a[[1, 0, 2, 3, 4, 5, 6, 7]]  # clips 0 and 1 swapped: wrong pairs, unless they are of one style
    same = torch.eye(8, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True
    assert contrastive_loss(a, swapped, scale, same) < contrastive_loss(a, swapped, scale) - 0.2


def test_bad_inputs_say_what_to_do(model):
    with pytest.raises(CourseInputError, match="images"):
        model.embed_mel(torch.zeros(2, 64, 64))
    with pytest.raises(CourseInputError, match="texts"):
        model.embed_text([1, 2])
    bare = TextAudioModel()
    with pytest.raises(CourseInputError, match="tokenizer"):
        bare.embed_text("techno")
    tok = make_word_tokenizer(["fast", "techno"])
    assert tok.encode("Fast, TECHNO beats").ids == [2, 1, 3, 1]  # lower-cased; ',' and 'beats' unknown
