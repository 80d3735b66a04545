"""Checks for lesson 07's exercises (text-to-audio with latent diffusion); re-exported by :mod:`course_lib.checks`.

1. :func:`check_noise_guidance`: classifier-free guidance on the UNet's two noise predictions,
   ``eps_uncond + w * (eps_cond - eps_uncond)``.
2. :func:`check_unet_evaluations`: predictions of how many latents the UNet denoises in four calls of the
   model (guided, unguided, with a negative prompt, inversion); the truth is counted on the model.
3. :func:`check_cross_attention`: one cross-attention head in plain torch: queries from the latent tokens,
   keys and values from the text states, ``softmax(Q K^T / sqrt(d)) V``.
4. :func:`check_latent_scale`: the VAE's scaling factor, ``1 / std`` of the raw latents, which gives the
   diffusion model latents of unit variance.
5. :func:`check_latent_cost`: predictions of what the latent space saves (values per clip, compression,
   attention tokens and pairwise scores), for the course's model and for AudioLDM 2's sizes.
6. :func:`check_ddim_inversion_step`: one DDIM inversion step, the deterministic step run backwards, which a
   DDIM step with the same noise prediction undoes exactly.

The references are the formulas in NumPy float64, written here independently of
:mod:`course_lib.text_to_audio`; exercise 5's truth is computed from the shapes in :data:`COST_MODELS`, and
exercise 2's is counted on the model itself.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from course_lib.checks.harness import (
    DIFFUSION_ATOL,
    DIFFUSION_RTOL,
    ExerciseFailed,
    all_close,
    as_numpy,
    call_answer_with_hint,
    diagnose,
    need_callable,
    print_passed,
    require_predictions,
    require_unchanged,
    to_numpy,
    worst_difference,
)

__all__ = [
    "check_noise_guidance",
    "UNET_RUNS",
    "check_unet_evaluations",
    "check_cross_attention",
    "check_latent_scale",
    "COST_MODELS",
    "COST_KEYS",
    "check_latent_cost",
    "check_ddim_inversion_step",
]


def _result(title: str, got: Any, case: str, want: np.ndarray, hint: str) -> np.ndarray:
    """The learner's tensor as float64 NumPy: the right shape and finite, or a failure with ``hint``."""
    __tracebackhide__ = True
    array = to_numpy(title, got, f"your result on case {case}")
    if array.shape != want.shape:
        raise ExerciseFailed(title, f"on case {case}, expected shape {want.shape}, got {array.shape}.", hint)
    if not np.all(np.isfinite(array)):
        raise ExerciseFailed(title, f"on case {case}, your result has {int((~np.isfinite(array)).sum())} NaN or inf "
                                    "entries.", "look for a division by zero or a square root of a negative number.")
    return array


# ----------------------------------------------------------------------------- 1. guidance on the noise


def check_noise_guidance(fn: Callable[[Any, Any, float], Any]) -> None:
    """Check ``fn(eps_uncond, eps_cond, w) -> eps``: classifier-free guidance on two noise predictions.

    ``eps_uncond`` is the UNet's prediction for the null condition (all-zero text states), ``eps_cond`` for
    the prompt, both (B, 4, 16, 16). The guided prediction is ``eps_uncond + w * (eps_cond - eps_uncond)``:
    w = 0 gives the unconditional prediction, w = 1 the conditional one, and w > 1 goes beyond it, away
    from "no prompt". Checked at w = 3 (the course model's), 0, 1 and 7.5.
    """
    __tracebackhide__ = True
    import torch

    title = "Classifier-free guidance on the noise"
    need_callable(fn, "fn", "check_noise_guidance(guide)")
    signature = "fn(eps_uncond, eps_cond, w) -> eps"
    gen = torch.Generator().manual_seed(70)
    cases = []
    for shape, w in [((2, 4, 16, 16), 3.0), ((2, 4, 16, 16), 0.0), ((1, 4, 16, 16), 1.0), ((3, 4, 16, 16), 7.5)]:
        cases.append((f"w = {w:g} on predictions of shape {shape}", torch.randn(shape, generator=gen),
                      torch.randn(shape, generator=gen), w))
    for case, uncond, cond, w in cases:
        copies = (uncond.clone(), cond.clone())
        got = call_answer_with_hint(title, fn, case, *copies, w, signature=signature,
                                    hint="combine the two tensors with + - * only; w is a plain number.")
        require_unchanged(title, case, (uncond, cond), copies, ("eps_uncond", "eps_cond"))
        u, c = as_numpy(uncond), as_numpy(cond)
        want = u + w * (c - u)
        array = _result(title, got, case, want, "the guided prediction has the shape of each prediction: (B, 4, 16, 16); "
                                                "do not stack or concatenate the two.")
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            hint = diagnose(array, [
                (c + w * (c - u), "you started from eps_cond; start from eps_uncond and move w times the difference."),
                (u + w * (u - c), "the difference points the wrong way: it should lead from eps_uncond towards eps_cond, "
                                  "so that w > 1 goes past the prompt's prediction, away from 'no prompt'."),
                (c + w * (u - c), "eps_uncond and eps_cond swapped roles: w = 0 must give eps_uncond and w = 1 eps_cond."),
                (w * c, "w times eps_cond alone only rescales the prediction (and the noise level it implies); "
                        "guidance is about the difference the prompt makes, eps_cond - eps_uncond."),
                (u + w * c, "guidance moves along the difference the prompt makes: eps_cond - eps_uncond."),
                (w * (c - u), "add the difference to a starting point: eps_uncond."),
            ], "start from the unconditional prediction and move w times the difference towards the conditional one.")
            if w in (0.0, 1.0):
                hint = (f"at w = {w:g} guidance must return eps_{'uncond' if w == 0 else 'cond'} itself. " + hint)
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
    print_passed(title, "w = 3, 0 (eps_uncond), 1 (eps_cond) and 7.5")


# ----------------------------------------------------------------------------- 2. what guidance costs

UNET_PROMPTS = ("dreamy ambient", "fast techno")
UNET_STEPS = 10
# The four runs of the prediction exercise: what each asks of the model (2 prompts, 10 DDIM steps each).
UNET_RUNS: dict[str, str] = {
    "guided": "model.generate(prompts, guidance_scale=3.0, steps=10)",
    "unguided": "model.generate(prompts, guidance_scale=1.0, steps=10)",
    "negative": "model.generate(prompts, guidance_scale=3.0, negative_prompt='rock', steps=10)",
    "invert": "model.invert(latents, prompts, steps=10)  (guidance_scale 1, its default)",
}


def _count_unet_rows(model: Any) -> dict[str, int]:
    """Run the four calls of :data:`UNET_RUNS` on ``model`` and count the latents its UNet denoises in each."""
    import torch

    rows = [0]

    def count(_module: Any, args: Any, kwargs: Any) -> None:
        sample = args[0] if args else kwargs["sample"]
        rows[0] += int(sample.shape[0])

    prompts = list(UNET_PROMPTS)
    runs = {
        "guided": lambda: model.generate(prompts, guidance_scale=3.0, steps=UNET_STEPS, seed=0, progress=False),
        "unguided": lambda: model.generate(prompts, guidance_scale=1.0, steps=UNET_STEPS, seed=0, progress=False),
        "negative": lambda: model.generate(prompts, guidance_scale=3.0, negative_prompt="rock", steps=UNET_STEPS,
                                           seed=0, progress=False),
        "invert": lambda: model.invert(model.noise(len(prompts), seed=0), prompts, steps=UNET_STEPS, progress=False),
    }
    counted = {}
    hook = model.unet.register_forward_pre_hook(count, with_kwargs=True)
    try:
        with torch.no_grad():
            for name, run in runs.items():
                rows[0] = 0
                run()
                counted[name] = rows[0]
    finally:
        hook.remove()
    return counted


def check_unet_evaluations(predicted: Any, model: Any) -> None:
    """Check ``predicted = {"guided": n, "unguided": n, "negative": n, "invert": n}``: latents the UNet denoises.

    Each number is the rows of every batch the UNet is called on, summed over the call of :data:`UNET_RUNS`
    (2 prompts, :data:`UNET_STEPS` DDIM steps). ``model`` is the lesson's :class:`course_lib.text_to_audio.TextToAudio`;
    the check runs the four calls on it and counts, so the truth is whatever the model does: guidance needs
    the unconditional prediction too (a batch twice as large), except at scale 1, where it cannot change the
    result; a negative prompt takes the place of the null condition.
    """
    __tracebackhide__ = True
    from course_lib.text_to_audio import TextToAudio

    title = "What guidance costs"
    if not isinstance(model, TextToAudio):
        raise ExerciseFailed(title, f"model: expected the lesson's model (tta.load_text_to_audio()), got "
                                    f"{type(model).__name__}.",
                             "run the cell that loads model first, and pass it: check_unet_evaluations(rows, model).")
    require_predictions(title, predicted, tuple(UNET_RUNS), "latents", dict_name="rows", label="{!r}",
                        answer_hint="write a whole number of latents for each run, then run this check again.")
    measured = _count_unet_rows(model)
    n, steps = len(UNET_PROMPTS), UNET_STEPS
    for name in UNET_RUNS:
        got = int(predicted[name])
        if got == measured[name]:
            continue
        hint = (f"count per step: how many latents go through the UNet for {n} prompts, and how many steps are "
                "there?")
        if got == measured[name] // steps:
            hint = f"that is one step's worth; the UNet runs at each of the {steps} steps."
        elif name in ("guided", "negative") and got == n * steps:
            hint = ("guidance combines two predictions for every latent, with and without the prompt: the UNet "
                    "sees each latent twice per step (one batch of 2 x B).")
        elif name == "negative" and got == 3 * n * steps:
            hint = ("the negative prompt takes the place of the null condition in the unconditional branch; it "
                    "adds no third prediction.")
        elif name in ("unguided", "invert") and got == 2 * n * steps:
            hint = ("at scale 1, eps_uncond + 1 * (eps_cond - eps_uncond) is eps_cond alone: the unconditional "
                    "prediction cannot change the result, so the model does not compute it.")
        raise ExerciseFailed(title, f"{name!r} ({UNET_RUNS[name]}): you predicted {got} latents; counted on the "
                                    f"model: {measured[name]}.", hint)
    print_passed(title, f"{n} prompts, {steps} steps: guided {measured['guided']} latents, unguided "
                        f"{measured['unguided']}, negative prompt {measured['negative']}, inversion "
                        f"{measured['invert']} (counted on the model)")


# ----------------------------------------------------------------------------- 3. one cross-attention head


def _attention_ref(x: np.ndarray, text: np.ndarray, wq: np.ndarray, wk: np.ndarray, wv: np.ndarray) -> np.ndarray:
    """softmax(Q K^T / sqrt(d)) V with Q from the latents and K, V from the text, in float64."""
    q, k, v = x @ wq, text @ wk, text @ wv
    return _softmax(q @ np.swapaxes(k, -1, -2) / math.sqrt(wq.shape[1]), axis=-1) @ v


def _softmax(s: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(s - s.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def check_cross_attention(fn: Callable[[Any, Any, Any, Any, Any], Any]) -> None:
    """Check ``fn(latents, text, wq, wk, wv) -> out``: one cross-attention head, as in the UNet's ``attn2``.

    ``latents`` are (B, N, C): N latent positions (tokens) of C channels; ``text`` is (B, L, D): L text
    states of width D; ``wq`` is (C, d), ``wk`` and ``wv`` are (D, d). Queries come from the latents,
    keys and values from the text: ``Q = latents @ wq``, ``K = text @ wk``, ``V = text @ wv``, and
    ``out = softmax(Q K^T / sqrt(d)) V`` (B, N, d), the softmax over the L text tokens, so each latent
    position takes an average of the text's values. One case has C = D (so that using the latents for the
    keys runs, and can be recognised); one is the null condition, all-zero text states.
    """
    __tracebackhide__ = True
    import torch

    title = "One cross-attention head"
    need_callable(fn, "fn", "check_cross_attention(cross_attention)")
    signature = "fn(latents, text, wq, wk, wv) -> out (B, N, d)"
    gen = torch.Generator().manual_seed(71)
    plan = [("C = D = 32, d = 8: 2 clips of 16 latent tokens, 5 text tokens", 2, 16, 32, 5, 32, 8, False),
            ("the course's sizes: 2 clips of 8 x 8 = 64 tokens of 96 channels, 12 text tokens of width 64, d = 12",
             2, 64, 96, 12, 64, 12, False),
            ("one clip, 4 tokens, 3 text tokens, d = 2", 1, 4, 6, 3, 10, 2, False),
            ("the null condition (all-zero text states): 1 clip, 64 tokens", 1, 64, 96, 12, 64, 12, True)]
    for case, b, n, c, length, d_text, d, null in plan:
        x = torch.randn((b, n, c), generator=gen)
        text = torch.zeros((b, length, d_text)) if null else torch.randn((b, length, d_text), generator=gen)
        wq = torch.randn((c, d), generator=gen) * 2 / math.sqrt(c)
        wk = torch.randn((d_text, d), generator=gen) * 2 / math.sqrt(d_text)
        wv = torch.randn((d_text, d), generator=gen) / math.sqrt(d_text)
        inputs = (x, text, wq, wk, wv)
        copies = tuple(t.clone() for t in inputs)
        got = call_answer_with_hint(
            title, fn, case, *copies, signature=signature,
            hint="follow the shapes: Q = latents @ wq is (B, N, d); K = text @ wk and V = text @ wv are (B, L, d) "
                 "(the text gives keys and values, the latents only the queries); the scores Q @ K.transpose(-2, -1) "
                 "are (B, N, L).")
        require_unchanged(title, case, inputs, copies, ("latents", "text", "wq", "wk", "wv"))
        nx, nt, nq, nk, nv = (as_numpy(t) for t in inputs)
        want = _attention_ref(nx, nt, nq, nk, nv)
        array = to_numpy(title, got, f"your result on case {case}")
        if array.shape != want.shape:
            hint = "one output row per latent token (the queries): (B, N, d)."
            if array.shape == (b, n, length):
                hint = "those are the attention weights (B, N, L); the head's output is weights @ V."
            elif array.shape == (b, length, d):
                hint = "one row per text token: the queries must come from the latents (B, N, C) @ wq."
            raise ExerciseFailed(title, f"on case {case}, expected shape {want.shape}, got {array.shape}.", hint)
        if not np.all(np.isfinite(array)):
            raise ExerciseFailed(title, f"on case {case}, your result has NaN or inf entries.",
                                 "use torch.softmax (it subtracts the row maximum), not exp(...) / sum(exp(...)).")
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            q, k, v = nx @ nq, nt @ nk, nt @ nv
            scores = q @ np.swapaxes(k, -1, -2)
            wrong_width = ("scale by sqrt(d), the width of Q and K (wq.shape[1]), not by the width of the latents (C) "
                           "or of the text states (D).")
            mistakes = [
                (_softmax(scores, -1) @ v, "the scores are missing their scale: divide Q K^T by sqrt(d), d the head's "
                                          "width (wq.shape[1]), or the softmax saturates as d grows."),
                (_softmax(scores / d, -1) @ v, "divide by sqrt(d), not d."),
                (_softmax(scores / math.sqrt(c), -1) @ v, wrong_width),
                (_softmax(scores / math.sqrt(d_text), -1) @ v, wrong_width),
                (_softmax(scores / math.sqrt(d), 1) @ v, "the softmax runs over the wrong axis: each latent token "
                                                         "(row) spreads its attention over the L text tokens, so take "
                                                         "it over the last axis (dim=-1)."),
                (_softmax(scores / math.sqrt(d), -1) @ k, "the values come from text @ wv; text @ wk gives the keys."),
            ]
            if c == d_text:  # the latents can stand in for the text here: self-attention
                mistakes.append((_attention_ref(nx, nx, nq, nk, nv),
                                 "that is self-attention: keys and values come from the text states (text @ wk, "
                                 "text @ wv), only the queries from the latents."))
            hint = diagnose(array, mistakes, "Q from the latents, K and V from the text, scores Q K^T / sqrt(d), "
                                             "softmax over the text tokens, then the weights times V.")
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
    print_passed(title, "4 cases, the course's sizes among them; with the null condition every output is 0")


# ----------------------------------------------------------------------------- 4. the latents' scale


def check_latent_scale(fn: Callable[[Any], Any]) -> None:
    """Check ``fn(latents) -> scaling_factor``: ``1 / std`` of the VAE's raw latents, one number for the set.

    ``latents`` are (B, 4, 16, 16) posterior means of a set of clips. The diffusion model works on
    ``latents * scaling_factor``, which then have standard deviation 1, as the noise schedule assumes (at
    ``alpha_bar = 0.5`` signal and noise are then equally strong). The standard deviation is taken over
    every number at once (not per channel, not the root mean square). Either the sample or the population
    standard deviation is accepted: with thousands of numbers they agree to 1e-3.
    """
    __tracebackhide__ = True
    import torch

    title = "The latents' scaling factor"
    need_callable(fn, "fn", "check_latent_scale(scaling_factor)")
    signature = "fn(latents) -> scaling_factor"
    gen = torch.Generator().manual_seed(73)
    plan = [("8 clips, standard deviation 1.32, mean 0.4", 8, 1.32, 0.4, False),
            ("3 clips, standard deviation 0.25, mean -1, channels of different spreads", 3, 0.25, -1.0, True),
            ("16 clips, standard deviation 3, mean 0", 16, 3.0, 0.0, False)]
    for case, b, std, mean, uneven in plan:
        spread = torch.tensor([0.6, 1.0, 1.2, 1.4])[None, :, None, None] if uneven else torch.tensor(1.0)
        latents = torch.randn((b, 4, 16, 16), generator=gen) * spread
        latents = (latents - latents.mean()) / latents.std() * std + mean
        given = latents.clone()
        got = call_answer_with_hint(title, fn, case, given, signature=signature,
                                    hint="one number from the whole tensor: latents.std() gives the spread.")
        require_unchanged(title, case, (latents,), (given,), ("latents",))
        array = to_numpy(title, got, f"your result on case {case}")
        x = as_numpy(latents)
        if array.size != 1:
            hint = "one factor for every number of every latent: take the standard deviation of the whole tensor."
            if array.shape == (4,) or array.shape == (1, 4, 1, 1):
                hint = ("that is one factor per channel; the course (like Stable Diffusion) uses one number for the "
                        "whole latent: the standard deviation over all values.")
            raise ExerciseFailed(title, f"on case {case}, expected one number, got shape {array.shape}.", hint)
        value = float(array.reshape(()))
        want = 1.0 / float(x.std(ddof=1))
        if not math.isfinite(value) or abs(value - want) > 1e-3 * want:
            mistakes = [
                (float(x.std()), "that is the standard deviation itself; the factor multiplies the latents to bring "
                                 "their spread to 1, so it is 1 / std."),
                (1.0 / float(x.var()), "1 / variance scales the spread by std / variance = 1 / std; divide by the "
                                       "standard deviation."),
                (1.0 / float(np.sqrt((x ** 2).mean())), "that is 1 / the root mean square, which counts the mean "
                                                        "as spread; the training script uses the standard deviation."),
                (1.0 / float(np.abs(x).max()), "1 / the largest value only squeezes the latents into [-1, 1]; the "
                                               "noise schedule needs unit variance: 1 / std."),
            ]
            hint = next((h for wrong, h in mistakes if abs(value - wrong) <= 1e-3 * abs(wrong)),
                        "after multiplying by your factor, the latents' standard deviation must be 1.")
            raise ExerciseFailed(title, f"on case {case}: expected {want:.6g}, got {value:.6g}.", hint)
    print_passed(title, "3 sets of latents; each times your factor has standard deviation 1")


# ----------------------------------------------------------------------------- 5. what the latent space saves

# The two models of the prediction exercise: the mel image (channels, mel frames, mel bands), the latent
# (channels, frames, bands), and how many times the UNet halves each side before its first attention block.
COST_MODELS: dict[str, dict[str, Any]] = {
    "course": {"what": "the course's model", "mel": (1, 64, 64), "latent": (4, 16, 16), "halvings": 1,
               "layout": "its UNet's first block has no attention and halves each side; the second attends"},
    "audioldm2": {"what": "AudioLDM 2 (10.24 s at 16 kHz, hop 160: 1024 frames x 64 mel bands)", "mel": (1, 1024, 64),
                  "latent": (8, 256, 16), "halvings": 0,
                  "layout": "its UNet's first block already attends, at the latent's full size"},
}
COST_QUANTITIES = ("mel_values", "latent_values", "compression", "tokens", "scores", "mel_scores")
COST_KEYS = tuple(f"{model}_{q}" for model in COST_MODELS for q in COST_QUANTITIES)


def _cost_truth(spec: dict[str, Any]) -> dict[str, int]:
    """The six numbers of one model, from its shapes: values, their ratio, tokens and scores at the first attention."""
    mel_values, latent_values = math.prod(spec["mel"]), math.prod(spec["latent"])
    shrink = 2 ** spec["halvings"]
    tokens = (spec["latent"][1] // shrink) * (spec["latent"][2] // shrink)
    mel_tokens = (spec["mel"][1] // shrink) * (spec["mel"][2] // shrink)
    return {"mel_values": mel_values, "latent_values": latent_values, "compression": mel_values // latent_values,
            "tokens": tokens, "scores": tokens ** 2, "mel_scores": mel_tokens ** 2}


def _cost_hint(quantity: str, got: int, spec: dict[str, Any], truth: dict[str, int]) -> str:
    """What the usual wrong number means, for one quantity of one model."""
    ch, frames, bands = spec["latent"]
    shrink = 2 ** spec["halvings"]
    full_tokens = frames * bands
    if quantity == "mel_values":
        return f"the mel image is {' x '.join(map(str, spec['mel']))}: multiply all three sizes."
    if quantity == "latent_values":
        if got == frames * bands:
            return f"count the channels too: each of the {frames} x {bands} positions holds {ch} numbers."
        return f"the latent is {ch} x {frames} x {bands}: multiply all three sizes."
    if quantity == "compression":
        positions = (spec["mel"][1] * spec["mel"][2]) // (frames * bands)
        if got == positions:
            return (f"{positions} is the ratio of positions; each latent position holds {ch} numbers where a mel "
                    f"pixel holds 1, so the values shrink only {truth['compression']}x.")
        return "compression = mel values / latent values."
    if quantity == "tokens":
        if got == full_tokens and shrink > 1:
            return f"{spec['layout']}: attention sees {frames // shrink} x {bands // shrink} positions, not {frames} x {bands}."
        if got == (frames // 2) * (bands // 2) and shrink == 1:
            return f"{spec['layout']}: one token per latent position, {frames} x {bands}."
        if got == truth["tokens"] * ch:
            return "a token is one position with all its channels (one vector), not one number."
        return f"one token per position where attention runs; {spec['layout']}."
    if quantity == "scores":
        if got == truth["tokens"]:
            return "every token scores against every token: Q K^T is tokens x tokens."
        if got in (truth["tokens"] * (truth["tokens"] - 1) // 2, truth["tokens"] * (truth["tokens"] + 1) // 2):
            return "both orders count: Q K^T is a full tokens x tokens matrix (token i's row and token j's row differ)."
        return "Q K^T has one score for each pair (query token, key token): tokens x tokens."
    mel_tokens = int(math.isqrt(truth["mel_scores"]))
    if got == mel_tokens:
        return "that is the token count; the scores are that squared."
    if got == truth["scores"] * (mel_tokens // truth["tokens"]):
        return (f"on the mel image the same block sees {mel_tokens // truth['tokens']}x more tokens, and the scores "
                "grow with the square of the token count.")
    return (f"without the VAE the UNet runs on the {spec['mel'][1]} x {spec['mel'][2]} mel image, halving each side "
            f"{spec['halvings']} time(s) before the same attention block: count those tokens, then square.")


def check_latent_cost(predicted: Any) -> None:
    """Check a prediction of what the latent space saves, for the two models of :data:`COST_MODELS`.

    ``predicted`` has a whole number for each of :data:`COST_KEYS`: for the course's model (``course_*``)
    and for AudioLDM 2's sizes (``audioldm2_*``): ``mel_values`` and ``latent_values`` (numbers per clip),
    ``compression`` (mel values / latent values), ``tokens`` and ``scores`` (self-attention tokens and
    pairwise scores of one head at the UNet's first attention block, working on the latent), and
    ``mel_scores`` (the same block's scores if the UNet ran on the mel image itself). The truth is computed
    from the shapes; a wrong number gets the arithmetic it missed.
    """
    __tracebackhide__ = True
    title = "What the latent space saves"
    require_predictions(title, predicted, COST_KEYS, "values, tokens or scores", dict_name="cost", label="{!r}",
                        answer_hint="work each number out on paper from the sizes in the exercise, write it in "
                                    "(e.g. cost['course_mel_values'] = 64 * 64), then run this check again.")
    for model, spec in COST_MODELS.items():
        truth = _cost_truth(spec)
        for quantity in COST_QUANTITIES:
            got = int(predicted[f"{model}_{quantity}"])
            if got != truth[quantity]:
                raise ExerciseFailed(
                    title, f"{model}_{quantity!s} ({spec['what']}): you predicted {got:,}; computed from the shapes: "
                           f"{truth[quantity]:,}.", _cost_hint(quantity, got, spec, truth))
    course, big = _cost_truth(COST_MODELS["course"]), _cost_truth(COST_MODELS["audioldm2"])
    print_passed(title, f"the course's latent holds {course['compression']}x fewer values and its first attention "
                        f"{course['mel_scores'] // course['scores']}x fewer scores; AudioLDM 2's: "
                        f"{big['compression']}x and {big['mel_scores'] // big['scores']}x")


# ----------------------------------------------------------------------------- 6. one DDIM inversion step


def _ddim_ref(x: np.ndarray, eps: np.ndarray, a_from: float, a_to: float) -> np.ndarray:
    """The deterministic DDIM move from noise level ``a_from`` to ``a_to`` (either way) with a fixed eps."""
    x0 = (x - math.sqrt(1.0 - a_from) * eps) / math.sqrt(a_from)
    return math.sqrt(a_to) * x0 + math.sqrt(1.0 - a_to) * eps


def _inversion_cases() -> list[tuple[str, float, float]]:
    """(case, alpha_bar_prev, alpha_bar_t) pairs of the course's 50-step cosine schedule, the first step included."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False,
                          set_alpha_to_one=True)
    sched.set_timesteps(50)
    ac = sched.alphas_cumprod.double()
    stride = 1000 // 50
    cases = []
    for t in (480, 960, 0):  # the middle, the last and the first inversion step (from the clean latent: alpha_bar 1)
        prev = t - stride
        a_prev = 1.0 if prev < 0 else float(ac[prev])
        cases.append((f"from t = {prev if prev >= 0 else 'clean'} to t = {t} (alpha_bar {a_prev:.5f} -> "
                      f"{float(ac[t]):.5f})", a_prev, float(ac[t])))
    cases.append(("the same level both sides (alpha_bar 0.5 -> 0.5: nothing to do)", 0.5, 0.5))
    return cases


def check_ddim_inversion_step(fn: Callable[[Any, Any, Any, Any], Any]) -> None:
    """Check ``fn(x_prev, eps, alpha_bar_prev, alpha_bar_t) -> x_t``: one DDIM inversion step (eta 0).

    Lesson 02's DDIM step goes from the noisier ``x_t`` to the cleaner ``x_prev``: it estimates
    ``x0 = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t)`` and puts it back at ``alpha_bar_prev``
    with the same eps. Inversion walks the other way with the same two moves: ``x0`` from ``x_prev`` at
    ``alpha_bar_prev``, then ``x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps``. For a fixed eps
    the DDIM step then returns ``x_prev`` exactly, which the check verifies on the answer. The alphas are
    0-d float64 tensors, as a scheduler stores them; cases come from the course's cosine schedule.
    """
    __tracebackhide__ = True
    import torch

    title = "One DDIM inversion step"
    need_callable(fn, "fn", "check_ddim_inversion_step(invert_step)")
    signature = "fn(x_prev, eps, alpha_bar_prev, alpha_bar_t) -> x_t"
    gen = torch.Generator().manual_seed(72)
    worst_round_trip = 0.0
    for case, a_prev, a_t in _inversion_cases():
        x = torch.randn((2, 4, 16, 16), generator=gen)
        eps = torch.randn((2, 4, 16, 16), generator=gen)
        copies = (x.clone(), eps.clone())
        got = call_answer_with_hint(title, fn, case, *copies, torch.tensor(a_prev, dtype=torch.float64),
                                    torch.tensor(a_t, dtype=torch.float64), signature=signature,
                                    hint="the alphas are 0-d tensors: alpha_bar ** 0.5 or torch.sqrt(alpha_bar) "
                                         "work on them; combine them with x_prev and eps by + - * /.")
        require_unchanged(title, case, (x, eps), copies, ("x_prev", "eps"))
        nx, ne = as_numpy(x), as_numpy(eps)
        want = _ddim_ref(nx, ne, a_prev, a_t)
        array = _result(title, got, case, want, "x_t has the shape of x_prev.")
        if not all_close(array, want, DIFFUSION_ATOL, DIFFUSION_RTOL):
            x0 = (nx - math.sqrt(1 - a_prev) * ne) / math.sqrt(a_prev)
            hint = diagnose(array, [
                (_ddim_ref(nx, ne, a_t, a_prev), "that is the ordinary DDIM step, towards less noise; inversion goes "
                                                 "the other way: estimate x0 at alpha_bar_prev, re-noise to alpha_bar_t."),
                (math.sqrt(a_t) * nx + math.sqrt(1 - a_t) * ne, "x_prev is not the clean latent (except at the very "
                                                                "first step): estimate x0 from x_prev and eps first."),
                (a_t * ((nx - (1 - a_prev) * ne) / a_prev) + (1 - a_t) * ne,
                 "alpha_bar is a fraction of the variance: the scales are its square roots, sqrt(alpha_bar) and "
                 "sqrt(1 - alpha_bar)."),
                (math.sqrt(a_t) * x0 - math.sqrt(1 - a_t) * ne, "add the noise direction: + sqrt(1 - alpha_bar_t) * eps."),
                (math.sqrt(a_t) * (nx - math.sqrt(1 - a_prev) * ne) + math.sqrt(1 - a_t) * ne,
                 "the x0 estimate divides by sqrt(alpha_bar_prev)."),
                (math.sqrt(a_t / a_prev) * nx, "scaling x_prev is not enough: the noise part grows too, along eps."),
            ], "two moves, as in lesson 02's DDIM step but the other way: x0 from x_prev and eps at alpha_bar_prev, "
               "then x0 and eps mixed at alpha_bar_t.")
            raise ExerciseFailed(title, f"on case {case}: {worst_difference(array, want)}.", hint)
        back = _ddim_ref(array, ne, a_t, a_prev)  # the DDIM step with the same eps undoes the answer
        worst_round_trip = max(worst_round_trip, float(np.abs(back - nx).max()))
    print_passed(title, f"4 cases of the course's schedule; a DDIM step with the same eps takes your x_t back to x_prev "
                        f"(largest difference {worst_round_trip:.1g})")
