"""Lesson 04 exercise checks: right answers pass, the usual wrong ones fail with the right hint."""

import numpy as np
import pytest
import torch

from course_lib import checks
from course_lib.checks import ExerciseFailed


def test_audio_seconds(capsys):
    checks.check_audio_seconds(lambda n, rate, k: (n - k + 1) / rate)
    assert "✅" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="nominal length"):
        checks.check_audio_seconds(lambda n, rate, k: n / rate)
    with pytest.raises(ExerciseFailed, match="off by one"):
        checks.check_audio_seconds(lambda n, rate, k: (n - k) / rate)
    with pytest.raises(ExerciseFailed, match="expected a number"):
        checks.check_audio_seconds(lambda n, rate, k: "five")


def right_delay(codes, pad):
    k, t = codes.shape
    out = np.full((k, t + k - 1), pad)
    for b in range(k):
        out[b, b : b + t] = codes[b]
    return out


def test_delay_pattern(capsys):
    checks.check_delay_pattern(right_delay)
    assert "✅" in capsys.readouterr().out

    def reversed_delay(codes, pad):
        return right_delay(codes[::-1], pad)[::-1]

    with pytest.raises(ExerciseFailed, match="wrong way"):
        checks.check_delay_pattern(reversed_delay)
    with pytest.raises(ExerciseFailed, match="shape"):
        checks.check_delay_pattern(lambda codes, pad: codes)
    with pytest.raises(ExerciseFailed, match="shifted right by k"):
        checks.check_delay_pattern(lambda codes, pad: np.where(right_delay(codes, pad) == pad, 0, right_delay(codes, pad)))


def test_delay_pattern_agrees_with_course_lib():
    from course_lib.musicgen import delay_pattern

    checks.check_delay_pattern(lambda codes, pad: delay_pattern(codes, pad=pad))


def test_guidance(capsys):
    checks.check_guidance(lambda c, u, s: u + s * (c - u))
    assert "✅" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="started from the conditional"):
        checks.check_guidance(lambda c, u, s: c + s * (c - u))
    with pytest.raises(ExerciseFailed, match="only sharpens"):
        checks.check_guidance(lambda c, u, s: s * c)


def test_guidance_matches_transformers_processor():
    from transformers import ClassifierFreeGuidanceLogitsProcessor

    proc = ClassifierFreeGuidanceLogitsProcessor(3.0)
    cond, uncond = torch.randn(2, 16), torch.randn(2, 16)
    out = proc(torch.zeros(2, 1, dtype=torch.long), torch.cat([cond, uncond]))
    torch.testing.assert_close(out, uncond + 3.0 * (cond - uncond))


def right_remove(audio, mask):
    full = np.concatenate([mask, np.ones((mask.shape[0], audio.shape[-1] - mask.shape[1]), mask.dtype)], axis=1)
    return [audio[i][:, full[i] != 0] for i in range(audio.shape[0])]


def test_remove_padding(capsys):
    checks.check_remove_padding(right_remove)
    assert "✅" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="return a list"):
        checks.check_remove_padding(lambda a, m: a)
    with pytest.raises(ExerciseFailed, match="nothing was removed"):
        checks.check_remove_padding(lambda a, m: list(a))
    with pytest.raises(ExerciseFailed, match="keep them"):
        checks.check_remove_padding(lambda a, m: [a[i][:, : m.shape[1]][:, m[i] != 0] for i in range(len(a))])

    def trims_the_end(a, m):
        return [a[i][:, : a.shape[-1] - int((m[i] == 0).sum())] for i in range(len(a))]

    with pytest.raises(ExerciseFailed, match="wrong samples"):
        checks.check_remove_padding(trims_the_end)


def test_remove_padding_agrees_with_the_musicgen_processor():
    from transformers import AutoProcessor

    from course_lib.hub import resolve_pretrained

    processor = AutoProcessor.from_pretrained(resolve_pretrained("facebook/musicgen-small", online=False))
    audio = np.random.default_rng(0).standard_normal((2, 1, 12)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1, 0, 0, 0], [1] * 8])
    for ours, theirs in zip(right_remove(audio, mask), processor.batch_decode(audio, padding_mask=mask)):
        np.testing.assert_array_equal(ours, np.asarray(theirs))
    # (the processor itself fails on stereo batches in transformers 5.23, so the check is not run on it)


def test_decoding_steps(capsys):
    checks.check_decoding_steps({"delay": 253, "flatten": 1000, "parallel": 250})
    assert "✅" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="not answered yet"):
        checks.check_decoding_steps({"delay": None, "flatten": None, "parallel": None})
    with pytest.raises(ExerciseFailed, match="parallel pattern's count"):
        checks.check_decoding_steps({"delay": 250, "flatten": 1000, "parallel": 250})
    with pytest.raises(ExerciseFailed, match="off by one"):
        checks.check_decoding_steps({"delay": 254, "flatten": 1000, "parallel": 250})
    with pytest.raises(ExerciseFailed, match="one code per step"):
        checks.check_decoding_steps({"delay": 253, "flatten": 253, "parallel": 250})
    with pytest.raises(ExerciseFailed, match="whole number"):
        checks.check_decoding_steps({"delay": 253.5, "flatten": 1000, "parallel": 250})
    with pytest.raises(ExerciseFailed) as info:
        checks.check_decoding_steps({"delay": 300, "flatten": 1000, "parallel": 250})
    assert "T + K" not in info.value.hint  # a first wrong guess gets a direction, not the formula


def test_the_broken_delay_of_the_exercise_gets_hints_in_order():
    def delay_broken(codes, pad):  # as in solutions/04_musicgen.ipynb
        k, t = codes.shape
        out = np.full((k, t + k), pad, dtype=np.int64)
        for book in range(k):
            out[book, k - 1 - book : k - 1 - book + t] = codes[book]
        return out

    def width_fixed(codes, pad):
        k, t = codes.shape
        return delay_broken(codes, pad)[:, : t + k - 1]

    with pytest.raises(ExerciseFailed, match="one step too many"):
        checks.check_delay_pattern(delay_broken)
    with pytest.raises(ExerciseFailed, match="wrong way"):
        checks.check_delay_pattern(width_fixed)


@pytest.fixture(scope="module")
def course_musicgen():
    from course_lib import musicgen

    return musicgen.load_musicgen(online=False, device="cpu")


def test_output_samples_is_measured_on_the_model(course_musicgen, capsys):
    from course_lib import musicgen
    from course_lib.checks.lesson04 import SAMPLE_NEW_TOKENS, SAMPLE_PROMPT_SECONDS

    mg = course_musicgen
    prompt = int(SAMPLE_PROMPT_SECONDS * mg.sample_rate)
    right = {"text only": musicgen.expected_num_samples(mg, SAMPLE_NEW_TOKENS),
             "with prompt": musicgen.expected_num_samples(mg, SAMPLE_NEW_TOKENS, prompt)}
    checks.check_output_samples(right, mg)
    assert "(measured)" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="last 3 steps finish no frame"):
        checks.check_output_samples({**right, "text only": SAMPLE_NEW_TOKENS * mg.hop_length}, mg)
    with pytest.raises(ExerciseFailed, match="comes back in the output"):
        checks.check_output_samples({**right, "with prompt": right["text only"]}, mg)
    with pytest.raises(ExerciseFailed, match="not answered yet"):
        checks.check_output_samples({"text only": None, "with prompt": None}, mg)
    with pytest.raises(ExerciseFailed, match="load_musicgen"):
        checks.check_output_samples(right, "mg")


def right_codebook_loss(logits, targets, pad):
    import torch.nn.functional as F

    books = logits.shape[1]
    return sum(F.cross_entropy(logits[:, k].reshape(-1, logits.shape[-1]), targets[:, k].reshape(-1),
                               ignore_index=pad) for k in range(books)) / books


def test_codebook_loss(capsys):
    import torch.nn.functional as F

    checks.check_codebook_loss(right_codebook_loss)
    assert "✅" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="sum over the codebooks"):
        checks.check_codebook_loss(lambda lg, tg, pad: right_codebook_loss(lg, tg, pad) * lg.shape[1])
    with pytest.raises(ExerciseFailed, match="one mean over all tokens"):
        checks.check_codebook_loss(lambda lg, tg, pad: F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1),
                                                                       ignore_index=pad))
    with pytest.raises(ExerciseFailed, match="leave pad positions out"):  # pad = codebook size is no class
        checks.check_codebook_loss(lambda lg, tg, pad: F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tg.reshape(-1)))
    with pytest.raises(ExerciseFailed, match="one number"):
        checks.check_codebook_loss(lambda lg, tg, pad: [1.0, 2.0])
    with pytest.raises(ExerciseFailed, match="not answered yet"):
        checks.check_codebook_loss(lambda lg, tg, pad: (_ for _ in ()).throw(NotImplementedError()))


def test_codebook_loss_reference_is_transformers_loss(course_musicgen):
    """The check's formula is MusicgenForCausalLM's loss given labels, on the course model's real logits."""
    model = course_musicgen.model
    k, pad = model.decoder.num_codebooks, model.config.decoder.pad_token_id
    gen = torch.Generator().manual_seed(0)
    frames = 7
    targets = torch.full((1, k, frames + k - 1), pad)
    for b in range(k):
        targets[:, b, b:b + frames] = torch.randint(0, pad, (1, frames), generator=gen)
    decoder_in = torch.cat([torch.full((1, k, 1), pad), targets[..., :-1]], dim=-1).reshape(k, -1)
    text = course_musicgen.processor(text=["techno"], return_tensors="pt")
    with torch.no_grad():
        out = model(**text, decoder_input_ids=decoder_in, labels=targets.transpose(1, 2))
    logits = out.logits.reshape(1, k, frames + k - 1, -1)
    assert abs(float(right_codebook_loss(logits, targets, pad)) - float(out.loss)) < 1e-4
    checks.check_codebook_loss(right_codebook_loss)
