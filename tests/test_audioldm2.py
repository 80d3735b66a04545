"""AudioLDM 2, lesson 07's online model (course_lib.audioldm2), against the Hub stand-in.

The stand-in (tests/hub_standin, ``build_audioldm2``) has cvssp/audioldm2-music's real layout and the
numbers the pipeline reads (16 kHz, 64 mel bands, 8 latent channels, the VAE scale) with tiny untrained
parts: its sound is noise, so these tests check loading over HF_ENDPOINT, shapes, rates, seeds, the
stand-in label and the Griffin-Lim side of the comparison (which needs no trained weights).
"""

import json

import numpy as np
import pytest
import torch

import hub_standin as standin
from course_lib import audioldm2
from course_lib.errors import CourseInputError
from course_lib.synth import music_clip

PARTS = ["text_encoder", "text_encoder_2", "projection_model", "language_model", "unet", "vae", "vocoder"]


@pytest.fixture(scope="module")
def pipe(hub_standin_server, tmp_path_factory):
    """The stand-in pipeline, loaded once over HF_ENDPOINT through load_audioldm2 (a module-wide hub_online)."""
    monkeypatch = pytest.MonkeyPatch()
    try:
        standin.use_standin(monkeypatch, hub_standin_server.endpoint, tmp_path_factory.mktemp("hf-home"))
        seen = len(hub_standin_server.requests)
        loaded = audioldm2.load_audioldm2(device="cpu")
        fetched = [r.path for r in hub_standin_server.requests[seen:] if r.status == 200]
        assert any("/cvssp/audioldm2-music/resolve/" in path for path in fetched), fetched[:10]
        yield loaded
    finally:
        monkeypatch.undo()


def test_the_standin_has_the_real_layout(hub_standin_server):
    folder = hub_standin_server.root / "models" / audioldm2.AUDIOLDM2_ID
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "AudioLDM2Pipeline"
    assert {k: v for k, v in index.items() if not k.startswith("_")} == standin.repos.AUDIOLDM2_COMPONENTS
    for part in PARTS:
        assert (folder / part / "config.json").is_file(), part
    assert (folder / "tokenizer" / "vocab.json").is_file() and (folder / "tokenizer_2" / "tokenizer.json").is_file()
    assert (folder / "feature_extractor" / "preprocessor_config.json").is_file()
    assert (folder / "scheduler" / "scheduler_config.json").is_file()
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size < 12e6, f"{size / 1e6:.1f} MB"


def test_load_keeps_the_real_numbers_and_labels_the_standin(pipe):
    from diffusers import AudioLDM2Pipeline, DDIMScheduler

    assert isinstance(pipe, AudioLDM2Pipeline) and isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.vocoder.config.sampling_rate == 16000 and pipe.vocoder.config.model_in_dim == 64
    assert int(np.prod(pipe.vocoder.config.upsample_rates)) == audioldm2.MEL["hop_length"] == 160
    assert pipe.vae.config.latent_channels == 8 and pipe.vae_scale_factor == 4
    assert pipe.vae.config.scaling_factor == pytest.approx(0.4110932946205139)
    assert pipe.language_model.config.max_new_tokens == 8
    assert type(pipe.language_model).__name__ == "GPT2LMHeadModel"
    info = audioldm2.provenance(pipe)
    assert info["source"] == audioldm2.AUDIOLDM2_ID and info["untrained_standin"] is True
    assert "UNTRAINED" in info["label"] and "127.0.0.1" in info["label"]


def test_describe_parts_counts_every_weight(pipe):
    rows = audioldm2.describe_parts(pipe)
    assert [row["part"] for row in rows] == PARTS
    for row in rows:
        part = getattr(pipe, row["part"])
        assert row["class"] == type(part).__name__
        assert row["parameters"] == sum(p.numel() for p in part.parameters()) > 0
        assert row["what it does"] and row["key numbers"] and row["weights"] == "UNTRAINED stand-in"
    by_part = {row["part"]: row for row in rows}
    assert "64 mel bands -> 16000 Hz" in by_part["vocoder"]["key numbers"]
    assert "8 latent channels" in by_part["vae"]["key numbers"]


def test_generate_is_seeded_and_listens_to_the_negative_prompt(pipe):
    kwargs = {"steps": 3, "guidance_scale": 3.0, "seconds": 0.5, "progress": False}
    audio, rate = audioldm2.generate(pipe, "calm piano", seed=0, **kwargs)
    assert rate == 16000 and audio.dtype == np.float32 and audio.shape == (8000,)
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0
    again, _ = audioldm2.generate(pipe, "calm piano", seed=0, **kwargs)
    np.testing.assert_array_equal(audio, again)
    other_seed, _ = audioldm2.generate(pipe, "calm piano", seed=1, **kwargs)
    negative, _ = audioldm2.generate(pipe, "calm piano", negative_prompt="loud noise", seed=0, **kwargs)
    scale = np.abs(audio).max()
    assert np.abs(other_seed - audio).max() > 1e-3 * scale
    assert np.abs(negative - audio).max() > 1e-3 * scale
    longer, _ = audioldm2.generate(pipe, "calm piano", seed=0, steps=2, seconds=0.73, progress=False)
    assert longer.shape == (11680,)


def test_generate_rejects_bad_input(pipe):
    with pytest.raises(CourseInputError, match="prompt"):
        audioldm2.generate(pipe, "  ")
    with pytest.raises(CourseInputError, match="guidance_scale > 1"):
        audioldm2.generate(pipe, "piano", negative_prompt="noise", guidance_scale=1.0)
    with pytest.raises(CourseInputError, match="seconds"):
        audioldm2.generate(pipe, "piano", seconds=0.01)
    with pytest.raises(CourseInputError, match="steps"):
        audioldm2.generate(pipe, "piano", steps=0)
    with pytest.raises(CourseInputError, match="pipe"):
        audioldm2.describe_parts(object())


def test_vocoder_vs_griffin_lim_on_a_course_clip(pipe):
    clip = music_clip("jazz", 1.5, 22050, seed=3)
    result = audioldm2.vocoder_vs_griffin_lim(pipe, clip, 22050, n_iter=32)
    frames = int(1.5 * 16000) // 160
    assert result["sample_rate"] == 16000 and result["log_mel"].shape == (64, frames)
    for key in ("original", "hifigan", "griffin_lim"):
        assert result[key].dtype == np.float32 and result[key].shape == (frames * 160,), key
        assert np.isfinite(result[key]).all()
    for method in ("hifigan", "griffin_lim"):
        metrics = result["metrics"][method]
        assert set(metrics) == {"spectral_convergence", "mel_distance"}
        assert all(isinstance(v, float) and np.isfinite(v) and v >= 0 for v in metrics.values())
    # Griffin-Lim needs no training: from the mel alone it rebuilds the clip's spectrum well.
    assert result["metrics"]["griffin_lim"]["spectral_convergence"] < 0.6
    assert result["metrics"]["griffin_lim"]["mel_distance"] < 0.5
    # The untrained stand-in's vocoder rebuilds nothing, and the result says it is a stand-in.
    assert result["metrics"]["hifigan"]["spectral_convergence"] > result["metrics"]["griffin_lim"][
        "spectral_convergence"]
    assert result["untrained_standin"] is True and "UNTRAINED" in result["label"]
    with pytest.raises(CourseInputError, match="too short"):
        audioldm2.vocoder_vs_griffin_lim(pipe, clip[:500], 22050)
    with pytest.raises(CourseInputError, match="audio"):
        audioldm2.vocoder_vs_griffin_lim(pipe, np.stack([clip, clip]), 22050)


def test_clap_score_gives_a_text_by_clip_matrix(hub_online):
    clips = np.stack([music_clip(style, 1.0, 22050, seed=i) for i, style in enumerate(("ambient", "rock", "jazz"))])
    result = audioldm2.clap_score(["calm ambient pads", "loud rock guitar"], clips, 22050, device="cpu")
    scores = result["scores"]
    assert scores.shape == (2, 3) and scores.dtype == np.float32
    assert np.all(np.abs(scores) <= 1.0 + 1e-5)
    one = audioldm2.clap_score("calm ambient pads", clips[0], 22050, device="cpu")["scores"]
    np.testing.assert_allclose(one, scores[:1, :1], atol=1e-5)
    assert result["untrained_standin"] is True
    with pytest.raises(CourseInputError, match="texts"):
        audioldm2.clap_score([""], clips, 22050)


def test_offline_load_says_what_the_lesson_uses_instead(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(CourseInputError) as error:
        audioldm2.load_audioldm2()
    message = str(error.value)
    assert "cvssp/audioldm2-music" in message and "cannot be loaded offline" in message
    assert "course-trained" in message and "text_to_audio" in message
