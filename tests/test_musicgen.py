"""course_lib.musicgen on the course's own small MusicGen (offline: checkpoints/course-musicgen)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from course_lib import musicgen as M
from course_lib.validate import CourseInputError

STEPS = 8
SR, HOP = 22050, 441  # the course codec: 50 frames per second


@pytest.fixture(scope="module")
def mg():
    return M.load_musicgen(online=False, device="cpu")


def test_loads_the_course_model_with_musicgens_layout(mg):
    assert mg.standin and mg.source.endswith("course-musicgen")
    assert (mg.sample_rate, mg.frame_rate, mg.hop_length, mg.num_codebooks) == (SR, 50, HOP, 4)
    # facts that broke earlier builds: pad/bos = codebook size, quantizers = codebooks, text vocab > bos
    dec = mg.model.config.decoder
    assert dec.pad_token_id == dec.bos_token_id == mg.codebook_size == 512
    assert mg.model.config.audio_encoder.num_quantizers == mg.num_codebooks
    assert mg.model.config.text_encoder.vocab_size > dec.bos_token_id
    # codebooks trained (a fresh EnCodec has all-zero ones)
    book = mg.model.audio_encoder.quantizer.layers[0].codebook.embed
    assert float(book.abs().sum()) > 0 and not torch.allclose(book[0], book[1])


def test_tokenizer_is_the_saved_one():
    tok = json.loads((Path(M.__file__).parents[1] / "checkpoints/course-musicgen/tokenizer.json").read_text())
    mg_tok = M.load_musicgen(online=False).processor.tokenizer
    assert mg_tok.tokenize("chill hip hop with sub bass") == ["▁chill", "▁hip", "▁hop", "▁with", "▁sub", "▁bass"]
    assert len(mg_tok) == 640 and tok["model"]["type"] == "Unigram"


def test_lengths():
    assert M.tokens_to_seconds(256) == (5.12, 5.06)
    assert M.tokens_to_seconds(1500) == (30.0, 29.94)


@pytest.mark.parametrize("steps", [STEPS, 13])
def test_unconditional_length_follows_max_new_tokens(mg, steps):
    r = M.generate(mg, max_new_tokens=steps, seed=0)
    assert r.audio[0].shape == (1, (steps - 3) * HOP) == (1, M.expected_num_samples(mg, steps))
    assert r.sample_rate == SR and not r.guidance
    assert r.codes.shape == (1, 4, steps - 3) and r.delayed.shape == (1, 4, steps)


def test_delay_pattern_hand_computed():
    codes = np.array([[1, 2, 3], [4, 5, 6]])
    expected = np.array([[1, 2, 3, -1], [-1, 4, 5, 6]])
    np.testing.assert_array_equal(M.delay_pattern(codes), expected)
    np.testing.assert_array_equal(M.undo_delay_pattern(expected), codes)
    four = M.delay_pattern(np.arange(8).reshape(4, 2), pad=99)
    np.testing.assert_array_equal(
        four, [[0, 1, 99, 99, 99], [99, 2, 3, 99, 99], [99, 99, 4, 5, 99], [99, 99, 99, 6, 7]]
    )


def test_delay_pattern_matches_what_the_model_produced(mg):
    r = M.generate(mg, text=["calm piano", "loud drums"], max_new_tokens=STEPS, seed=1)
    for i in range(2):
        np.testing.assert_array_equal(M.delay_pattern(r.codes[i]), r.delayed[i])
        assert (r.delayed[i][1:, 0] == M.PAD).all() and (r.delayed[i][0, -3:] == M.PAD).all()


def test_same_seed_same_audio_different_seed_different(mg):
    a = M.generate(mg, text="slow jazz", max_new_tokens=STEPS, seed=3)
    b = M.generate(mg, text="slow jazz", max_new_tokens=STEPS, seed=3)
    c = M.generate(mg, text="slow jazz", max_new_tokens=STEPS, seed=4)
    np.testing.assert_array_equal(a.audio[0], b.audio[0])
    np.testing.assert_array_equal(a.codes, b.codes)
    assert not np.array_equal(a.codes, c.codes)
    assert np.abs(a.audio[0] - c.audio[0]).max() > 1e-3


def test_guidance_changes_the_output(mg):
    plain = M.generate(mg, text="fast techno", max_new_tokens=STEPS, seed=5, guidance_scale=1.0)
    guided = M.generate(mg, text="fast techno", max_new_tokens=STEPS, seed=5, guidance_scale=3.0)
    assert guided.guidance and not plain.guidance
    assert not np.array_equal(plain.codes, guided.codes)


def test_greedy_is_deterministic_without_a_seed(mg):
    a = M.generate(mg, text="piano", max_new_tokens=8, seed=None, do_sample=False, guidance_scale=1.0)
    torch.manual_seed(123)
    b = M.generate(mg, text="piano", max_new_tokens=8, seed=None, do_sample=False, guidance_scale=1.0)
    np.testing.assert_array_equal(a.codes, b.codes)


def test_audio_prompts_of_different_length_lose_their_padding(mg):
    short = (0.3 * np.sin(np.arange(11025) / 10)).astype(np.float32)   # 25 frames
    long = (0.3 * np.sin(np.arange(16538) / 7)).astype(np.float32)     # 37.5 frames: 38
    r = M.generate(mg, audio=[short, long], sample_rate=SR, text=["jazz", "rock"], max_new_tokens=STEPS, seed=0)
    lengths = [a.shape[-1] for a in r.audio]
    assert lengths == [M.expected_num_samples(mg, STEPS, 11025, 16538), M.expected_num_samples(mg, STEPS, 16538)]
    assert lengths == [(38 + STEPS - 3) * HOP - 5513, (38 + STEPS - 3) * HOP]
    # a single prompt: no padding at all
    one = M.generate(mg, audio=short[None, :], sample_rate=SR, max_new_tokens=STEPS, seed=0)
    assert one.audio[0].shape[-1] == (25 + STEPS - 3) * HOP


def test_save_and_load_identity(mg, tmp_path):
    mg.model.save_pretrained(tmp_path / "copy")
    mg.processor.save_pretrained(tmp_path / "copy")
    copy = M.load_musicgen("anything/at-all", tmp_path / "copy", online=False)
    a = M.generate(mg, text="warm synth pad", max_new_tokens=8, seed=7)
    b = M.generate(copy, text="warm synth pad", max_new_tokens=8, seed=7)
    np.testing.assert_array_equal(a.audio[0], b.audio[0])


def test_wav_export_at_the_encoders_rate(mg, tmp_path):
    r = M.generate(mg, max_new_tokens=8, seed=0)
    path = M.save_generation(tmp_path / "out.wav", r)
    data, rate = sf.read(path)
    assert rate == SR and data.shape == (5 * HOP,)
    assert np.abs(data - r.audio[0][0] / max(1.0, np.abs(r.audio[0]).max())).max() < 1e-4


def test_cost_row(mg):
    r = M.generate(mg, text="x y", max_new_tokens=8, seed=0)
    row = r.cost()
    assert row["new tokens"] == 8 and row["audio s"] == 0.1 and row["batch"] == 1
    assert row["steps/s"] > 0 and row["real-time factor"] > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"text": ""}, "text\\[0\\].*empty"),
        ({"text": ["ok", "  "]}, "text\\[1\\]"),
        ({"text": []}, "text"),
        ({"text": ["ok", 3]}, "text\\[1\\]"),
        ({"audio": np.zeros(SR, np.float32), "sample_rate": 16000}, "16000 Hz.*22050"),
        ({"audio": np.zeros(SR, np.float32)}, "sample_rate"),
        ({"audio": np.zeros((2, SR), np.float32), "sample_rate": SR}, "2 channels.*to_mono"),
        ({"audio": np.zeros(SR, np.int16), "sample_rate": SR}, "integer"),
        ({"audio": [np.zeros(SR, np.float32)], "text": ["a", "b"], "sample_rate": SR}, "one text per clip"),
        ({"max_new_tokens": 5000}, "max_new_tokens.*1024 positions"),
        ({"max_new_tokens": 2}, "max_new_tokens"),
        ({"guidance_scale": -1}, "guidance_scale"),
        ({"temperature": 0}, "temperature"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_bad_inputs(mg, kwargs, match):
    with pytest.raises(CourseInputError, match=match):
        M.generate(mg, **kwargs)


def test_audio_prompt_leaves_less_room(mg):
    clip = np.zeros(SR * 10, np.float32)  # 500 frames of prompt
    with pytest.raises(CourseInputError, match="audio prompt takes 500"):
        M.check_max_new_tokens(mg, 600, prompt_frames=500)
    assert M.check_max_new_tokens(mg, 523, prompt_frames=500) == 523
    assert M.frames_for_samples(mg, clip.size) == 500


def test_bad_helper_inputs():
    with pytest.raises(CourseInputError, match="codes"):
        M.delay_pattern(np.zeros(4, int))
    with pytest.raises(CourseInputError, match="integer"):
        M.delay_pattern(np.zeros((4, 3)))
    with pytest.raises(CourseInputError, match="mg"):
        M.generate("facebook/musicgen-small")


def test_cost_table_rows(mg):
    rows = M.cost_table(mg, max_new_tokens=6, batch_sizes=(1, 2), guidance=(1.0,))
    assert [(r["batch"], r["guidance"], r["new tokens"]) for r in rows] == [(1, False, 6), (2, False, 6)]
    assert all(r["audio s"] == round(3 * HOP / SR, 2) for r in rows)
    with pytest.raises(CourseInputError, match="batch_sizes"):
        M.cost_table(mg, max_new_tokens=6, batch_sizes=(0,))


def test_progress_bar_does_not_change_the_output(mg):
    a = M.generate(mg, text="drums", max_new_tokens=6, seed=2, progress=True)
    b = M.generate(mg, text="drums", max_new_tokens=6, seed=2)
    np.testing.assert_array_equal(a.codes, b.codes)
    proc = M.progress_bar(6)
    scores = torch.randn(2, 5)
    assert torch.equal(proc[0](torch.zeros(2, 1, dtype=torch.long), scores), scores) and proc[0].count == 1


def test_bitrate():
    assert M.bitrate_kbps(50, 4, 2048) == 2.2      # musicgen-small's EnCodec
    assert M.bitrate_kbps(50, 1, 512) == 0.45     # the course codec: 1, 2, 4 codebooks
    assert [M.bitrate_kbps(50, n, 512) for n in (1, 2, 4)] == [0.45, 0.9, 1.8]
    assert M.bitrate_kbps(75, 8, 1024) == 6.0      # EnCodec 24 kHz at 6 kbit/s
    with pytest.raises(CourseInputError, match="codebook_size"):
        M.bitrate_kbps(50, 4, 1)


def test_bitrate_matches_the_course_codecs_config(mg):
    codec = mg.model.audio_encoder.config
    assert M.bitrate_kbps(mg.frame_rate, mg.num_codebooks, mg.codebook_size) == codec.target_bandwidths[-1] == 1.8


def test_plot_patterns_colours_what_a_token_sees():
    import matplotlib

    matplotlib.use("Agg")
    k, t = np.arange(4)[:, None], np.arange(5)[None, :]
    steps = {"flatten": t * 4 + k, "parallel": t + 0 * k, "delay": t + k}
    axes = M.plot_patterns(steps, token=(2, 3))
    titles = [ax.get_title() for ax in axes]
    # flatten: 14 tokens before (3 frames × 4 + 2); parallel: the 12 of frames 0-2; delay: steps < 5
    assert titles == ["flatten: 20 steps; token sees 14", "parallel: 5 steps; token sees 12",
                      "delay: 8 steps; token sees 14"]
    with pytest.raises(CourseInputError, match="token"):
        M.plot_patterns(steps, token=(4, 0))
    with pytest.raises(CourseInputError, match="same 2-D"):
        M.plot_patterns({"a": np.zeros((4, 5)), "b": np.zeros((4, 6))}, token=(0, 0))
