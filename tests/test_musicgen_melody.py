"""musicgen-melody (lesson 04, section 13) through its ONLINE code path, against a Hub stand-in.

The stand-in of ``facebook/musicgen-melody`` (tests/hub_standin/melody.py) has the real repo's files,
configuration numbers and feature extractor, and tiny RANDOM weights: it is UNTRAINED, so it follows neither
the tune nor the prompt. These tests check the code path (loading from the Hub, lengths and rate, seeds, that
the chromagram reaches the model, the chromagram itself, the errors), never how the music sounds.
"""

from __future__ import annotations

import re
import types

import numpy as np
import pytest
import torch

import hub_standin as standin
from course_lib import musicgen as M
from course_lib import synth
from course_lib.validate import CourseInputError
from hub_standin.melody import MELODY_ID, build_musicgen_melody
from hub_standin.server import HubStandin

RATE, HOP, N_FFT = 32_000, 4096, 16_384  # musicgen-melody's feature extractor
NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
TUNE_NOTES = [60, 64, 67, 72, 69, 65, 62, 59]  # C E G C A F D B, half a second each (notebook 04, section 13)
STEPS = 16


def course_tune(notes=TUNE_NOTES, sample_rate: int = RATE) -> np.ndarray:
    """The notebook's tune, made with course_lib.synth: one sine per note, half a second each."""
    return np.concatenate([synth.tone(synth.midi_to_hz(n), 0.5, sample_rate, amplitude=0.4) for n in notes])


def plain_chroma_notes(tune: np.ndarray, rate: int = RATE) -> np.ndarray:
    """The notebook's plain-code chromagram: power per pitch class of each STFT frame, then the strongest."""
    power = torch.stft(torch.from_numpy(tune), N_FFT, HOP, window=torch.hann_window(N_FFT),
                       return_complex=True).abs() ** 2
    freqs = np.arange(power.shape[0]) * rate / N_FFT
    audible = freqs > 30
    pitch_class = np.zeros(len(freqs), dtype=int)
    pitch_class[audible] = np.round(12 * np.log2(freqs[audible] / 440) + 69).astype(int) % 12
    chroma = np.stack([power[audible & (pitch_class == c)].sum(0).numpy() for c in range(12)])
    return chroma.argmax(0)


@pytest.fixture(scope="module")
def melody_server(tmp_path_factory):
    """A Hub stand-in serving only facebook/musicgen-melody (built once for this module)."""
    root = tmp_path_factory.mktemp("melody-hub")
    build_musicgen_melody(root)
    with HubStandin(root) as server:
        yield server


@pytest.fixture(scope="module")
def mg(melody_server, tmp_path_factory):
    """musicgen-melody loaded ONLINE (HF_ENDPOINT = the stand-in, fresh HF_HOME), as section 13 loads it."""
    with pytest.MonkeyPatch.context() as patch:
        standin.use_standin(patch, melody_server.endpoint, tmp_path_factory.mktemp("hf-home"))
        return M.load_musicgen_melody(device="cpu")


@pytest.fixture(scope="module")
def tune():
    return course_tune()


def test_loads_online_from_the_real_layout(mg, melody_server):
    assert mg.source == MELODY_ID and not mg.standin
    assert type(mg.model).__name__ == "MusicgenMelodyForConditionalGeneration"
    assert type(mg.processor).__name__ == "MusicgenMelodyProcessor"
    fe = mg.processor.feature_extractor
    assert (fe.sampling_rate, fe.n_fft, fe.hop_length, fe.feature_size, fe.chunk_length) == (RATE, N_FFT, HOP, 12, 30)
    config = mg.model.config
    assert (config.num_chroma, config.chroma_length) == (12, 235)
    assert (mg.sample_rate, mg.frame_rate, mg.num_codebooks, mg.codebook_size, mg.max_positions) == (32000, 50, 4, 2048, 2048)
    assert mg.model.generation_config.guidance_scale == 3.0 and mg.model.generation_config.max_length == 1500
    fetched = {r.path for r in melody_server.requests if r.status in (200, 206)}
    for name in ("config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                 "preprocessor_config.json", "tokenizer.json"):
        assert any(re.fullmatch(f"/{MELODY_ID}/resolve/[^/]+/{re.escape(name)}", p) for p in fetched), name


def test_the_hub_lists_the_real_files(melody_server, monkeypatch, tmp_path):
    from huggingface_hub import HfApi

    standin.use_standin(monkeypatch, melody_server.endpoint, tmp_path / "hf-home")
    files = {s.rfilename for s in HfApi(endpoint=melody_server.endpoint).model_info(MELODY_ID).siblings}
    assert files == {"README.md", "config.json", "generation_config.json", "model-00001-of-00002.safetensors",
                     "model-00002-of-00002.safetensors", "model.safetensors.index.json", "preprocessor_config.json",
                     "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"}


def test_length_rate_and_codes(mg, tune):
    result = M.generate_with_melody(mg, tune, RATE, ["warm jazz piano trio", "techno"], max_new_tokens=STEPS)
    assert result.sample_rate == 32000 and result.batch_size == 2 and result.guidance  # the model's guidance 3
    expected = (STEPS - 3) * 640
    assert expected == M.expected_num_samples(mg, STEPS)
    assert [a.shape for a in result.audio] == [(1, expected)] * 2
    assert all(np.isfinite(a).all() for a in result.audio)
    assert result.codes.shape == (2, 4, STEPS - 3) and 0 <= result.codes.min() and result.codes.max() < 2048
    assert np.array_equal(M.undo_delay_pattern(result.delayed[0])[:, : STEPS - 3], result.codes[0])
    assert result.settings["chroma_frames"] == 1 + len(tune) // HOP == M.melody_chroma(mg, tune, RATE).shape[0]


def test_same_seed_same_audio_and_the_tune_reaches_the_model(mg, tune):
    first = M.generate_with_melody(mg, tune, RATE, "lo-fi", max_new_tokens=STEPS, seed=3)
    again = M.generate_with_melody(mg, tune, RATE, "lo-fi", max_new_tokens=STEPS, seed=3)
    other_seed = M.generate_with_melody(mg, tune, RATE, "lo-fi", max_new_tokens=STEPS, seed=4)
    assert np.array_equal(first.audio[0], again.audio[0]) and np.array_equal(first.codes, again.codes)
    assert not np.array_equal(first.codes, other_seed.codes)
    one_note = course_tune([66] * 8)  # F# all along: another chromagram, nothing else changed
    moved = M.generate_with_melody(mg, one_note, RATE, "lo-fi", max_new_tokens=STEPS, seed=3)
    assert not np.array_equal(first.codes, moved.codes)


def test_greedy_without_guidance(mg, tune):
    a = M.generate_with_melody(mg, tune, RATE, "ambient", max_new_tokens=STEPS, seed=None, do_sample=False,
                               guidance_scale=1.0)
    b = M.generate_with_melody(mg, tune, RATE, "ambient", max_new_tokens=STEPS, seed=None, do_sample=False,
                               guidance_scale=1.0)
    assert not a.guidance and a.settings["guidance_scale"] == 1.0 and np.array_equal(a.codes, b.codes)


def test_the_processors_chroma_is_the_plain_code_chromagram(mg, tune):
    chroma = M.melody_chroma(mg, tune, RATE)
    assert chroma.shape == (1 + len(tune) // HOP, 12) and np.array_equal(chroma.sum(1), np.ones(len(chroma)))
    theirs = chroma.argmax(1)
    mine = plain_chroma_notes(tune)
    n = min(len(mine), len(theirs))
    assert np.mean(mine[:n] == theirs[:n]) >= 0.9, (mine, theirs)
    # half a second is about 4 chroma frames: every 4th frame names the next note of the tune
    assert [NOTE_NAMES[c] for c in theirs[::4]] == list("CEGCAFDB")
    from transformers import MusicgenMelodyFeatureExtractor  # the library's defaults are musicgen-melody's settings

    default = MusicgenMelodyFeatureExtractor()(tune, sampling_rate=RATE, return_tensors="np").input_features[0]
    assert np.array_equal(chroma, default)


def test_another_rate_is_resampled(mg):
    at_22k = M.melody_chroma(mg, course_tune(sample_rate=22050), 22050)
    assert at_22k.shape[0] == 1 + (4 * RATE) // HOP  # 4 s at 32 kHz after resampling
    assert [NOTE_NAMES[c] for c in at_22k.argmax(1)[::4]] == list("CEGCAFDB")
    assert M.check_tune(mg, np.full((1, 8000), 0.1, np.float32), 8000).shape == (32000,)  # (1, n) is mono
    assert M.check_tune(mg, np.full(RATE, 0.1, np.float32), 2 * RATE).shape == (RATE // 2,)


@pytest.mark.parametrize(
    "tune, rate, text, match",
    [
        (np.zeros(0, np.float32), RATE, "jazz", "tune: is empty"),
        (np.full(RATE, np.nan, np.float32), RATE, "jazz", "tune: contains .* NaN"),
        (np.zeros((2, RATE), np.float32) + 0.1, RATE, "jazz", "one channel.*to_mono"),
        (np.zeros(RATE, np.float32), RATE, "jazz", "silent"),
        (np.full(1000, 0.1, np.float32), RATE, "jazz", "shorter than one chroma frame"),
        (np.full(31 * RATE, 0.1, np.float32), RATE, "jazz", "31.0 s is longer than the 30 s"),
        (np.full(RATE, 0.1, np.float32), None, "jazz", "sample_rate: give the rate"),
        (np.full(RATE, 0.1, np.float32), 32000.5, "jazz", "sample_rate"),
        (np.full(RATE, 0.1, np.float32), RATE, None, "needs a prompt"),
        (np.full(RATE, 0.1, np.float32), RATE, [], "non-empty list"),
        (np.full(RATE, 0.1, np.float32), RATE, ["jazz", "  "], r"text\[1\]: the prompt is empty\. Describe"),
    ],
)
def test_bad_inputs(mg, tune, rate, text, match):
    with pytest.raises(CourseInputError, match=match) as error:
        M.generate_with_melody(mg, tune, rate, text, max_new_tokens=STEPS)
    assert "text=None" not in str(error.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_new_tokens": 2}, "max_new_tokens"),
    ({"max_new_tokens": 5000}, "max_new_tokens.*2048 positions"),
    ({"guidance_scale": -1}, "guidance_scale"),
    ({"progress": "yes"}, "progress"),
])
def test_bad_settings(mg, tune, kwargs, match):
    with pytest.raises(CourseInputError, match=match):
        M.generate_with_melody(mg, tune, RATE, "jazz", **kwargs)


def test_only_a_melody_model_takes_a_tune(tune):
    small = M.MusicGen(model=types.SimpleNamespace(config=types.SimpleNamespace(model_type="musicgen")),
                       processor=None, source="facebook/musicgen-small", standin=False, device="cpu")
    with pytest.raises(CourseInputError, match="not a melody model.*load_musicgen_melody"):
        M.generate_with_melody(small, tune, RATE, "jazz")
    with pytest.raises(CourseInputError, match="load_musicgen"):
        M.melody_chroma("facebook/musicgen-melody", tune, RATE)


def test_offline_the_loader_stops_with_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(CourseInputError, match="musicgen-melody.*cannot be loaded offline.*local_dir"):
        M.load_musicgen_melody()


def test_offline_from_a_saved_folder_and_the_model_type_is_checked(mg, tmp_path):
    mg.model.save_pretrained(tmp_path / "melody")
    mg.processor.save_pretrained(tmp_path / "melody")
    copy = M.load_musicgen_melody("anything/at-all", tmp_path / "melody", online=False, device="cpu")
    assert copy.standin and type(copy.processor).__name__ == "MusicgenMelodyProcessor"
    for name, p in mg.model.state_dict().items():
        assert torch.equal(p, copy.model.state_dict()[name]), name
    from course_lib.hub import checkpoint_dir

    with pytest.raises(CourseInputError, match="holds a 'musicgen' model.*load_musicgen\\(\\)"):
        M.load_musicgen_melody("x/y", checkpoint_dir("course-musicgen"), online=False)
    with pytest.raises(CourseInputError, match="holds a 'musicgen_melody' model.*load_musicgen_melody"):
        M.load_musicgen("x/y", tmp_path / "melody", online=False)
