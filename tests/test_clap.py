"""CLAP, lesson 03's online judge of real music (course_lib.models.clap), against the Hub stand-in.

The stand-in's CLAP (tests/hub_standin, ``build_clap``) has the real files, feature extractor and input
geometry with tiny untrained towers: its embeddings mean nothing, so these tests check shapes, rates,
determinism and errors, not musical judgement.
"""

import numpy as np
import pytest
import torch

import hub_standin as standin
from course_lib.errors import CourseInputError
from course_lib.metrics import frechet_audio_distance
from course_lib.models.clap import CLAP_HUB_ID, ClapJudge, load_clap_judge


def _clips(n: int, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """n clips of tones plus a little noise, float32 (n, T)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    freqs = rng.uniform(110.0, 880.0, size=(n, 1))
    clips = 0.4 * np.sin(2 * np.pi * freqs * t) + 0.05 * rng.standard_normal((n, t.size))
    return clips.astype(np.float32)


@pytest.fixture
def judge(hub_online) -> ClapJudge:
    return load_clap_judge(device="cpu")


def test_the_standin_is_laion_clap_in_its_real_layout(hub_online):
    from huggingface_hub import HfApi
    from transformers import ClapProcessor

    assert standin.CLAP_ID == CLAP_HUB_ID == "laion/clap-htsat-unfused"
    files = {s.rfilename for s in HfApi(endpoint=hub_online).model_info(CLAP_HUB_ID).siblings}
    assert {"config.json", "model.safetensors", "pytorch_model.bin", "preprocessor_config.json", "vocab.json",
            "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"} <= files
    processor = ClapProcessor.from_pretrained(CLAP_HUB_ID)
    extractor = processor.feature_extractor
    assert (extractor.sampling_rate, extractor.feature_size, extractor.hop_length) == (48000, 64, 480)
    assert (extractor.max_length_s, extractor.fft_window_size) == (10, 1024)
    assert (extractor.truncation, extractor.padding) == ("rand_trunc", "repeatpad")
    text = processor.tokenizer(["a calm piano melody"], return_tensors="pt")
    assert text["input_ids"][0, 0] == 0 and text["input_ids"][0, -1] == 2  # RoBERTa's <s> ... </s>


def test_load_clap_judge_embeds_at_22050_and_44100_hz(judge):
    assert isinstance(judge, ClapJudge) and not judge.model.training
    assert judge.sample_rate == 48000 and judge.embed_dim == judge.model.config.projection_dim == 32
    features = judge.feature_extractor([np.zeros(judge.max_samples)], sampling_rate=48000, return_tensors="pt")
    assert tuple(features["input_features"].shape) == (1, 1, 1001, 64)  # a real-length input fits HTSAT
    for rate, n in ((22050, 3), (44100, 2)):
        emb = judge.embed(_clips(n, 1.5, rate, seed=rate), sample_rate=rate)
        assert isinstance(emb, torch.Tensor) and emb.dtype == torch.float32 and emb.device.type == "cpu"
        assert emb.shape == (n, 32) and torch.isfinite(emb).all()
    one = judge.embed(torch.from_numpy(_clips(1, 1.5, 22050, seed=1)[0]), sample_rate=22050)
    assert one.shape == (1, 32)


def test_the_same_clip_gives_the_same_embedding(judge):
    clips = _clips(3, 1.5, 22050, seed=3)
    first = judge.embed(clips, sample_rate=22050, batch_size=2)
    again = judge.embed(clips, sample_rate=22050)
    assert torch.equal(first, judge.embed(clips, sample_rate=22050, batch_size=2))
    torch.testing.assert_close(first, again, rtol=1e-4, atol=1e-5)  # batching does not change an embedding
    long_clip = _clips(1, 12.0, 22050, seed=4)  # longer than CLAP's 10 s: its middle, not a random crop
    assert torch.equal(judge.embed(long_clip, sample_rate=22050), judge.embed(long_clip, sample_rate=22050))


def test_frechet_audio_distance_with_the_clap_judge(judge):
    a = _clips(4, 1.5, 22050, seed=5)
    b = _clips(4, 1.5, 22050, seed=6) * np.linspace(0.0, 1.0, a.shape[1], dtype=np.float32)
    distance = frechet_audio_distance(a, b, judge, sample_rate=22050)
    assert np.isfinite(distance) and distance >= 0.0
    assert frechet_audio_distance(a, a, judge, sample_rate=22050) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("audio, sample_rate, match", [
    (np.full((2, 22050), np.nan, dtype=np.float32), 22050, "NaN"),
    (np.zeros((2, 0), dtype=np.float32), 22050, "empty"),
    (np.zeros((2, 1, 22050), dtype=np.float32), 22050, "dimensions"),
    (np.zeros((2, 22050), dtype=np.int16), 22050, "integer"),
    (np.zeros((2, 22050), dtype=np.float32), 0, "sample_rate"),
    (np.zeros((2, 22050), dtype=np.float32), 22050.5, "sample_rate"),
    (np.zeros((2, 22050), dtype=np.float32), "22050", "sample_rate"),
])
def test_bad_input_is_a_course_error(judge, audio, sample_rate, match):
    with pytest.raises(CourseInputError, match=match):
        judge.embed(audio, sample_rate=sample_rate)


def test_bad_batch_size_and_bad_parts_are_course_errors(judge):
    with pytest.raises(CourseInputError, match="batch_size"):
        judge.embed(_clips(2, 1.0, 22050, seed=7), sample_rate=22050, batch_size=0)
    with pytest.raises(CourseInputError, match="model"):
        ClapJudge(object(), judge.feature_extractor)
    with pytest.raises(CourseInputError, match="feature_extractor"):
        ClapJudge(judge.model, object())


def test_offline_there_is_no_clap(monkeypatch):
    import huggingface_hub.constants as hub_constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):  # go_offline() sets them
        monkeypatch.setenv(name, "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(CourseInputError, match="cannot be loaded offline") as info:
        load_clap_judge()
    assert CLAP_HUB_ID in str(info.value) and "load_style_classifier" in str(info.value)
