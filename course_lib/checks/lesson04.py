"""Checks for lesson 04's exercises (MusicGen); re-exported by :mod:`course_lib.checks`.

1. :func:`check_audio_seconds`: how many seconds of audio ``max_new_tokens`` give (the delay frames).
2. :func:`check_decoding_steps`: predict the decoder steps of three codebook patterns (delay, flattening,
   parallel); the truth is counted on the patterns laid out.
3. :func:`check_delay_pattern`: lay codes (codebooks, frames) out in MusicGen's delay pattern (the
   exercise gives a broken version to fix).
4. :func:`check_output_samples`: predict how many samples ``generate`` returns; the truth is measured on
   the model.
5. :func:`check_guidance`: classifier-free guidance on logits.
6. :func:`check_remove_padding`: what ``processor.batch_decode(..., padding_mask=...)`` does.
7. :func:`check_codebook_loss`: MusicGen's training loss, cross-entropy per codebook (pad ignored), averaged
   over the codebooks; the reference is the formula in torch, and transformers' own loss agrees (tested).

Hints point the way first (what to look at); a formula comes only once the check has recognised
the mistake.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from course_lib.checks.harness import (
    call_answer_with_hint,
    require_predictions,
    ExerciseFailed,
    all_close,
    call_answer,
    need_callable,
    print_passed,
    to_numpy,
    worst_difference,
)

__all__ = [
    "check_audio_seconds",
    "check_decoding_steps",
    "check_delay_pattern",
    "check_output_samples",
    "check_guidance",
    "check_remove_padding",
    "check_codebook_loss",
]


def check_audio_seconds(fn: Callable[[int, int, int], float]) -> None:
    """Check ``fn(max_new_tokens, frame_rate, num_codebooks) -> seconds`` of audio MusicGen returns.

    Each step makes one token per codebook, codebook ``k`` runs ``k`` steps late, so only
    ``max_new_tokens - (num_codebooks - 1)`` complete frames come out:
    ``(max_new_tokens - num_codebooks + 1) / frame_rate`` seconds (256 steps at 50 Hz: 5.06 s).
    """
    __tracebackhide__ = True
    title = "Seconds of audio from max_new_tokens"
    need_callable(fn, "fn", "check_audio_seconds(audio_seconds)")
    signature = "fn(max_new_tokens, frame_rate, num_codebooks) -> seconds"
    for steps, rate, books in [(256, 50, 4), (1500, 50, 4), (100, 50, 8), (75, 75, 1), (10, 25, 4)]:
        case = f"max_new_tokens={steps}, frame_rate={rate}, num_codebooks={books}"
        got = call_answer(title, fn, case, steps, rate, books, signature=signature)
        try:
            seconds = float(got)
        except (TypeError, ValueError) as err:
            raise ExerciseFailed(title, f"on case {case}, expected a number of seconds, got {got!r}.") from err
        want = (steps - books + 1) / rate
        if not math.isclose(seconds, want, rel_tol=1e-9, abs_tol=1e-9):
            hint = "each codebook k starts k steps late: how many of the last steps still leave a frame unfinished?"
            if math.isclose(seconds, steps / rate, rel_tol=1e-9):
                hint = "that is the nominal length max_new_tokens / frame_rate; subtract the delay frames first."
            elif math.isclose(seconds, (steps - books) / rate, rel_tol=1e-9):
                hint = "off by one frame: codebook 0 has no delay, so only num_codebooks - 1 frames are lost."
            raise ExerciseFailed(title, f"on case {case}, expected {want:.6g} s, got {seconds:.6g} s.", hint)
    print_passed(title, "5 cases, e.g. 256 tokens at 50 Hz with 4 codebooks = 5.06 s")


def _reference_delay(codes: np.ndarray, pad: int) -> np.ndarray:
    k, t = codes.shape
    out = np.full((k, t + k - 1), pad, dtype=np.int64)
    for book in range(k):
        out[book, book : book + t] = codes[book]
    return out


STEP_FRAMES = 250  # 5 s at 50 frames per second
STEP_CODEBOOKS = 4
_PATTERNS = ("delay", "flatten", "parallel")


def _count_steps(frames: int, codebooks: int) -> dict[str, int]:
    """Decoder steps of each pattern, counted on the layouts: one column of the layout is one step."""
    codes = np.arange(frames * codebooks).reshape(codebooks, frames)
    flattened = codes.T.reshape(1, -1)  # frame by frame, codebook by codebook: one code per step
    return {
        "delay": _reference_delay(codes, -1).shape[1],
        "flatten": flattened.shape[1],
        "parallel": codes.shape[1],  # all codebooks of a frame in one step, no delay
    }


def check_decoding_steps(predicted: Any) -> None:
    """Check ``predicted = {"delay": n, "flatten": n, "parallel": n}``: decoder steps for 5 s of 4 codebooks.

    :data:`STEP_FRAMES` frames of :data:`STEP_CODEBOOKS` codebooks. The truth is counted on the
    three layouts built here: the delay pattern (codebook k shifted k steps), flattening (one code per
    step) and the parallel pattern (every codebook of a frame at once). Each wrong number gets a hint.
    """
    __tracebackhide__ = True
    title = "Decoding steps of three codebook patterns"
    require_predictions(title, predicted, _PATTERNS, "steps", dict_name="steps",
                        answer_hint="write a whole number for each pattern, e.g. steps['delay'] = ..., then run "
                                    "this check again.")
    truth = _count_steps(STEP_FRAMES, STEP_CODEBOOKS)
    t, k = STEP_FRAMES, STEP_CODEBOOKS
    for name in _PATTERNS:
        got = int(predicted[name])
        if got == truth[name]:
            continue
        if name == "delay":
            hint = ("draw it small: 3 frames of 2 codebooks, codebook 1 one step late. When does the last codebook "
                    "write the last frame's code?")
            if got == t:
                hint = "that is the parallel pattern's count; with the delay the last codebook starts K - 1 steps late."
            elif got == t + k:
                hint = "off by one: codebook 0 has no delay, so the last codebook is K - 1 steps late, not K."
        elif name == "flatten":
            hint = "flattening writes one code per step: how many codes do T frames of K codebooks hold?"
        else:
            hint = "the parallel pattern writes every codebook of a frame in the same step, with no delay."
        raise ExerciseFailed(title, f"{name}: you predicted {got} steps for T = {t} frames and K = {k} codebooks; "
                                    f"counted on the layout: {truth[name]}.", hint)
    print_passed(title, f"T = {t}, K = {k}: delay {truth['delay']}, flatten {truth['flatten']}, "
                        f"parallel {truth['parallel']} steps")


def check_delay_pattern(fn: Callable[[np.ndarray, int], Any]) -> None:
    """Check ``fn(codes, pad) -> delayed``: codes ``(K, T)`` → ``(K, T + K - 1)``, ``out[k, t + k] = codes[k, t]``."""
    __tracebackhide__ = True
    title = "The codebook delay pattern"
    need_callable(fn, "fn", "check_delay_pattern(delay)")
    signature = "fn(codes, pad) -> delayed"
    rng = np.random.default_rng(4)
    cases = [
        (np.array([[1, 2, 3], [4, 5, 6]]), -1),
        (np.arange(8).reshape(4, 2), 99),
        (rng.integers(0, 2048, size=(4, 7)), 2048),
        (np.array([[5, 6, 7, 8]]), -1),
        (rng.integers(0, 256, size=(8, 3)), -1),
    ]
    for codes, pad in cases:
        case = f"codes of shape {codes.shape}, pad={pad}"
        got = to_numpy(title, call_answer(title, fn, case, codes.copy(), pad, signature=signature), "your result")
        want = _reference_delay(codes, pad)
        if got.shape != want.shape:
            hint = "how many steps until the last codebook has written its last code? Codebook 0 has no delay."
            if got.shape == (want.shape[0], want.shape[1] + 1):
                hint = ("one step too many: codebook k is k steps late, so the last one (k = K - 1) ends at step "
                        "T + K - 2, and there are T + K - 1 steps.")
            raise ExerciseFailed(title, f"on case {case}, expected shape {want.shape}, got {got.shape}.", hint)
        if not np.array_equal(got, want):
            hint = "codebook k is shifted right by k steps; everything else is pad."
            if codes.shape[0] > 1 and np.array_equal(got[::-1], _reference_delay(codes[::-1], pad)):
                hint = "the delays run the wrong way: codebook 0 has no delay, the last codebook the largest."
            raise ExerciseFailed(
                title, f"on case {case}, expected\n{want}\ngot\n{got.astype(np.int64)}", hint
            )
    print_passed(title, "5 cases, 1 to 8 codebooks")


SAMPLE_NEW_TOKENS = 30  # steps in the output-length exercise
SAMPLE_PROMPT_SECONDS = 0.5  # its audio prompt


def check_output_samples(predicted: Any, mg: Any) -> None:
    """Check ``predicted = {"text only": n, "with prompt": n}``: samples ``generate`` returns, measured on ``mg``.

    Both runs use ``max_new_tokens=SAMPLE_NEW_TOKENS``; the second continues a silent audio prompt of
    ``SAMPLE_PROMPT_SECONDS`` seconds. ``mg`` is a :class:`course_lib.musicgen.MusicGen` (the lesson's
    model); the check generates both and counts the samples, so the truth is whatever the model does.
    """
    __tracebackhide__ = True
    import torch

    from course_lib.musicgen import MusicGen

    title = "How many samples does generate return?"
    if not isinstance(mg, MusicGen):
        raise ExerciseFailed(title, f"mg: expected the lesson's MusicGen (musicgen.load_musicgen()), got {type(mg).__name__}.",
                             "run the cell that loads mg first, and pass it: check_output_samples(samples, mg).")
    runs = ("text only", "with prompt")
    require_predictions(title, predicted, runs, "samples", dict_name="samples", label="{!r}",
                        answer_hint="write a whole number of samples for each run, then run this check again.")
    n = SAMPLE_NEW_TOKENS
    prompt = np.zeros(int(SAMPLE_PROMPT_SECONDS * mg.sample_rate), dtype=np.float32)
    measured = {}
    with torch.no_grad():
        for name, kwargs in (("text only", {"text": ["lo-fi piano"]}),
                             ("with prompt", {"text": ["lo-fi piano"], "audio": [prompt], "sampling_rate": mg.sample_rate})):
            inputs = mg.processor(**kwargs, padding=True, return_tensors="pt").to(mg.device)
            torch.manual_seed(0)
            values = mg.model.generate(**inputs, max_new_tokens=n, do_sample=True, guidance_scale=1.0)
            measured[name] = int(values.shape[-1])
    hop, k = mg.hop_length, mg.num_codebooks
    prompt_frames = len(prompt) // hop
    for name in runs:
        got = int(predicted[name])
        if got == measured[name]:
            continue
        frames = got / hop
        hint = (f"one frame is sample_rate / frame_rate = {hop} samples; count the frames first: how many do "
                f"{n} steps finish, and what does the prompt add?")
        if name == "text only" and got == n * hop:
            hint = (f"that is {n} whole frames; codebook k runs k steps late, so the last {k - 1} steps finish no "
                    "frame.")
        elif name == "with prompt" and got in (measured["text only"], n * hop):
            hint = (f"the prompt is re-encoded into {prompt_frames} frames and comes back in the output, "
                    "before the continuation.")
        elif name == "with prompt" and got == len(prompt) + n * hop:
            hint = f"the prompt comes back whole, but the {k - 1} delay steps still finish no frame."
        elif got % hop:
            hint = f"{got} samples is {frames:.2f} frames: the output is always a whole number of {hop}-sample frames."
        raise ExerciseFailed(title, f"{name!r}: you predicted {got} samples; generate returned {measured[name]}.", hint)
    print_passed(title, f"{n} new steps: {measured['text only']} samples alone, {measured['with prompt']} after a "
                        f"{SAMPLE_PROMPT_SECONDS} s prompt (measured)")


def check_guidance(fn: Callable[[Any, Any, float], Any]) -> None:
    """Check ``fn(cond_logits, uncond_logits, scale) -> logits`` of classifier-free guidance.

    The guided logits are ``uncond + scale * (cond - uncond)``: scale 1 gives the conditional
    logits back, 0 the unconditional ones, and larger scales push away from "no prompt".
    """
    __tracebackhide__ = True
    import torch

    title = "Classifier-free guidance"
    need_callable(fn, "fn", "check_guidance(guide)")
    signature = "fn(cond_logits, uncond_logits, scale) -> logits"
    gen = torch.Generator().manual_seed(0)
    cond = torch.randn(4, 2048, generator=gen)
    uncond = torch.randn(4, 2048, generator=gen)
    for scale in (3.0, 1.0, 0.0, 7.5):
        case = f"scale={scale} on logits of shape {tuple(cond.shape)}"
        got = to_numpy(title, call_answer(title, fn, case, cond.clone(), uncond.clone(), scale, signature=signature), "your result")
        want = (uncond + scale * (cond - uncond)).numpy().astype(np.float64)
        if not all_close(got, want, atol=1e-4, rtol=1e-5):
            hint = "start from the unconditional logits and move scale times the difference towards the conditional ones."
            if got.shape == want.shape and all_close(got, (cond + scale * (cond - uncond)).numpy(), 1e-4, 1e-5):
                hint = "you started from the conditional logits; start from the unconditional ones."
            elif got.shape == want.shape and all_close(got, (scale * cond).numpy(), 1e-4, 1e-5):
                hint = "scaling the conditional logits alone only sharpens them; guidance needs the unconditional logits too."
            detail = worst_difference(got, want) if got.shape == want.shape else f"shape {got.shape} instead of {want.shape}"
            raise ExerciseFailed(title, f"on case {case}: {detail}.", hint)
    print_passed(title, "scales 0, 1, 3 and 7.5")


def check_remove_padding(fn: Callable[[np.ndarray, np.ndarray], Any]) -> None:
    """Check ``fn(audio_values, padding_mask) -> list of (channels, n) arrays`` without the padded samples.

    ``audio_values`` is ``(batch, channels, samples)``; ``padding_mask`` is ``(batch, prompt_samples)``
    with 1 for real prompt samples and 0 for padding. The generated part after the prompt is
    always kept; inside the prompt, samples where the mask is 0 are dropped.
    """
    __tracebackhide__ = True
    title = "Removing the padding of audio prompts"
    need_callable(fn, "fn", "check_remove_padding(remove_padding)")
    signature = "fn(audio_values, padding_mask) -> list of arrays"
    rng = np.random.default_rng(7)
    cases = []
    for lengths, total, channels in [((5, 8), 12, 1), ((8, 8), 10, 1), ((3, 6, 4), 9, 2)]:
        longest = max(lengths)
        mask = np.zeros((len(lengths), longest), dtype=np.int64)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        audio = rng.standard_normal((len(lengths), channels, total)).astype(np.float32)
        cases.append((audio, mask, lengths))
    for audio, mask, lengths in cases:
        case = f"audio of shape {audio.shape}, prompts of {list(lengths)} samples"
        got = call_answer(title, fn, case, audio.copy(), mask.copy(), signature=signature)
        if not isinstance(got, (list, tuple)) or len(got) != audio.shape[0]:
            raise ExerciseFailed(
                title, f"on case {case}, expected a list of {audio.shape[0]} arrays, got {type(got).__name__}"
                + (f" of length {len(got)}" if isinstance(got, (list, tuple)) else "") + ".",
                "items have different lengths after the padding is gone, so return a list, one array per item.",
            )
        full = np.concatenate([mask, np.ones((mask.shape[0], audio.shape[-1] - mask.shape[1]), dtype=mask.dtype)], axis=1)
        for i, item in enumerate(got):
            arr = to_numpy(title, item, f"item {i}")
            want = audio[i][:, full[i] != 0].astype(np.float64)
            if arr.shape != want.shape:
                hint = "keep the channel axis: each item is (channels, samples)."
                if arr.size == want.size - (audio.shape[-1] - mask.shape[1]) * audio.shape[1]:
                    hint = "the mask only covers the prompt; the generated samples after it are real audio, keep them."
                elif arr.size == audio.shape[1] * audio.shape[2]:
                    hint = "nothing was removed: drop the samples where the mask is 0."
                raise ExerciseFailed(title, f"on case {case}, item {i}: expected shape {want.shape}, got {arr.shape}.", hint)
            if not np.allclose(arr, want, atol=1e-6):
                raise ExerciseFailed(
                    title, f"on case {case}, item {i}: the right length but the wrong samples.",
                    "remove the samples where the mask is 0 (the padding sits after each short prompt), not the last ones.",
                )
    print_passed(title, "3 batches, mono and stereo")


def _codebook_loss_cases() -> list[tuple[Any, Any, int]]:
    """(logits (B, K, S, V), targets (B, K, S), pad) cases in the delay pattern, some with extra padding.

    The pad id is the codebook size, as in MusicGen. Codebooks hold different numbers of real tokens in
    the last case, so a mean over all tokens differs from the mean of the per-codebook means.
    """
    import torch

    gen = torch.Generator().manual_seed(11)
    cases = []
    for batch, books, frames, vocab, extra_pad in [(1, 4, 6, 16, 0), (2, 4, 5, 32, 0), (2, 3, 7, 8, 5)]:
        steps = frames + books - 1
        targets = torch.full((batch, books, steps), vocab, dtype=torch.long)
        for k in range(books):
            targets[:, k, k:k + frames] = torch.randint(0, vocab, (batch, frames), generator=gen)
        if extra_pad:  # the first codebook loses a few more tokens (a shorter clip in the batch)
            targets[:, 0, frames - extra_pad:frames] = vocab
        logits = 2.0 * torch.randn(batch, books, steps, vocab, generator=gen)
        cases.append((logits, targets, vocab))
    return cases


def check_codebook_loss(fn: Callable[[Any, Any, int], Any]) -> None:
    """Check ``fn(logits, targets, pad) -> loss``: MusicGen's cross-entropy over the codebooks.

    ``logits`` is ``(batch, codebooks, steps, codebook_size)``, ``targets`` ``(batch, codebooks, steps)``
    in the delay pattern with ``pad`` (= codebook size) where a codebook has no token. The loss is the
    cross-entropy of each codebook over its real tokens (pad ignored), averaged over the codebooks, as
    ``MusicgenForCausalLM`` computes it when given labels.
    """
    __tracebackhide__ = True
    import torch
    import torch.nn.functional as F

    title = "MusicGen's training loss over the codebooks"
    need_callable(fn, "fn", "check_codebook_loss(codebook_loss)")
    signature = "fn(logits, targets, pad) -> loss"
    pad_hint = ("the pad id equals the codebook size, so it is no class of the logits: leave pad positions out of "
                "the loss (F.cross_entropy has an argument for that).")
    for logits, targets, pad in _codebook_loss_cases():
        case = f"logits {tuple(logits.shape)}, pad={pad}"
        got = call_answer_with_hint(title, fn, case, logits.clone(), targets.clone(), pad, signature=signature,
                                    hint=pad_hint)
        try:
            value = float(got)
        except (TypeError, ValueError) as err:
            raise ExerciseFailed(title, f"on case {case}, expected one number (a scalar loss), got {type(got).__name__}.",
                                 "average down to a single number: one loss per codebook, then their mean.") from err
        books = logits.shape[1]
        per_book = [F.cross_entropy(logits[:, k].reshape(-1, logits.shape[-1]), targets[:, k].reshape(-1),
                                    ignore_index=pad) for k in range(books)]
        want = float(torch.stack(per_book).mean())
        if math.isclose(value, want, rel_tol=1e-4, abs_tol=1e-5):
            continue
        flat = float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad))
        hint = "take the cross-entropy of each codebook over its real tokens, then the mean over the codebooks."
        if math.isclose(value, float(torch.stack(per_book).sum()), rel_tol=1e-4):
            hint = "that is the sum over the codebooks; MusicGen takes their mean."
        elif math.isclose(value, flat, rel_tol=1e-4):
            hint = ("that is one mean over all tokens together; MusicGen averages each codebook first and then the "
                    "codebooks, so each codebook weighs the same even when they hold different numbers of tokens.")
        raise ExerciseFailed(title, f"on case {case}, expected {want:.5f}, got {value:.5f}.", hint)
    print_passed(title, "3 batches in the delay pattern, one with codebooks of different lengths")
