"""MusicGen for lesson 04: loading (online or offline), generation with timing, the codebook patterns.

MusicGen is three models in a row: a T5 **text encoder**, a **decoder language model** that
predicts discrete audio tokens for several EnCodec codebooks at once, and the **EnCodec** decoder
that turns tokens back into a waveform. One transformer handles all codebooks by *delaying*
codebook ``k`` by ``k`` steps (the delay pattern, see :func:`delay_pattern`).

Online, :func:`load_musicgen` loads ``facebook/musicgen-small``; offline it loads the course's own
small MusicGen, trained on course-made music (``checkpoints/course-musicgen``, made by
``scripts/train_musicgen.py`` around the course codec ``checkpoints/course-encodec``), through the
same ``from_pretrained`` calls (see :mod:`course_lib.hub`). :func:`load_musicgen_melody` and
:func:`generate_with_melody` run ``facebook/musicgen-melody`` (a tune's chromagram plus text; online only).

>>> mg = load_musicgen()
>>> result = generate(mg, text=["lo-fi piano"], max_new_tokens=64, seed=0)
>>> result.audio[0].shape, result.sample_rate
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from course_lib import settings
from course_lib.hub import is_standin, resolve_pretrained
from course_lib.validate import CourseInputError, as_float_tensor, check_positive_int, check_sample_rate

DEFAULT_HUB_ID = "facebook/musicgen-small"
MELODY_HUB_ID = "facebook/musicgen-melody"
PAD = -1  # how :func:`delay_pattern` marks a step where a codebook produces nothing


# ----------------------------------------------------------------------------- loading


@dataclass
class MusicGen:
    """A loaded MusicGen: model, processor, where they came from, and their key numbers.

    ``standin`` is True when the model came from a local folder (offline: the course's own MusicGen)
    rather than from the Hub.
    """

    model: Any
    processor: Any
    source: str
    standin: bool
    device: str

    @property
    def sample_rate(self) -> int:
        """EnCodec's sampling rate in Hz (32 000 for musicgen-small, 22 050 for the course's model)."""
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> int:
        """Token frames per second of audio (50)."""
        return int(self.model.config.audio_encoder.frame_rate)

    @property
    def hop_length(self) -> int:
        """Audio samples per token frame."""
        return self.sample_rate // self.frame_rate

    @property
    def num_codebooks(self) -> int:
        """Codebooks predicted per frame (4)."""
        return int(self.model.decoder.num_codebooks)

    @property
    def codebook_size(self) -> int:
        """Codes per codebook (2048 for musicgen-small, 512 for the course's model)."""
        return int(self.model.config.audio_encoder.codebook_size)

    @property
    def max_positions(self) -> int:
        """The decoder's maximum number of token steps (prompt and new tokens together)."""
        return int(self.model.config.decoder.max_position_embeddings)

    @property
    def num_parameters(self) -> int:
        """Number of parameters of the whole model."""
        return sum(p.numel() for p in self.model.parameters())

    def facts(self) -> dict[str, Any]:
        """The numbers a learner should know about the loaded model, as a dict."""
        return {
            "source": self.source,
            "course model (offline)": self.standin,
            "parameters": self.num_parameters,
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "hop_length": self.hop_length,
            "num_codebooks": self.num_codebooks,
            "codebook_size": self.codebook_size,
            "max_positions": self.max_positions,
        }


def randomise_codebooks(model: Any, seed: int) -> None:
    """Give an untrained MusicGen's EnCodec codebooks random entries (in place), so that codes sound different.

    A fresh ``EncodecModel``'s codebooks are all zero, so every token would decode to the same sound; the course's
    untrained stand-ins (``checkpoints/tiny-musicgen``, the test Hub's musicgen repos) fill them from ``seed``.
    """
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            book = layer.codebook
            book.embed.copy_(torch.randn(book.embed.shape, generator=generator))
            if hasattr(book, "embed_avg"):
                book.embed_avg.copy_(book.embed)
            if hasattr(book, "cluster_size"):
                book.cluster_size.fill_(1.0)
            if hasattr(book, "inited"):
                book.inited.fill_(True)


def load_musicgen(
    hub_id: str = DEFAULT_HUB_ID,
    local_dir: str | os.PathLike | None = None,
    *,
    online: bool | None = None,
    device: str | None = None,
) -> MusicGen:
    """Load model and processor: ``hub_id`` online, the course's own MusicGen offline.

    Both go through ``MusicgenForConditionalGeneration.from_pretrained`` and
    ``AutoProcessor.from_pretrained``; only the source differs (:func:`course_lib.hub.resolve_pretrained`).
    The model is put in eval mode on ``device`` (default :func:`course_lib.settings.device`).
    """
    from transformers import MusicgenForConditionalGeneration

    return _load(MusicgenForConditionalGeneration, "musicgen", hub_id, local_dir, online, device)


def load_musicgen_melody(
    hub_id: str = MELODY_HUB_ID,
    local_dir: str | os.PathLike | None = None,
    *,
    online: bool | None = None,
    device: str | None = None,
) -> MusicGen:
    """Load ``facebook/musicgen-melody`` (model and ``MusicgenMelodyProcessor``) for :func:`generate_with_melody`.

    Online it comes from the Hub (1.5 B parameters, about 6 GB: a GPU runtime). The course ships no
    offline stand-in for it, so offline :func:`course_lib.hub.resolve_pretrained` stops at once with a
    clear error, unless ``local_dir`` is a folder you saved with ``save_pretrained``.

    Taught in lesson 04 (notebooks/04_musicgen.ipynb, section 13).
    """
    from transformers import MusicgenMelodyForConditionalGeneration

    return _load(MusicgenMelodyForConditionalGeneration, "musicgen_melody", hub_id, local_dir, online, device)


def _load(model_class: Any, model_type: str, hub_id: str, local_dir: Any, online: bool | None,
          device: str | None) -> MusicGen:
    """Resolve the source, check its ``model_type``, and load model (eval mode, on ``device``) and processor."""
    from transformers import AutoConfig, AutoProcessor
    from transformers.utils import logging as hf_logging

    source = resolve_pretrained(hub_id, local_dir, online=online)
    dev = settings.device(device)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # pad id = codebook size is how MusicGen is meant to be, but warned about
    try:
        found = AutoConfig.from_pretrained(source).model_type
        if found != model_type:
            right = "load_musicgen_melody" if found == "musicgen_melody" else "load_musicgen"
            raise CourseInputError(
                f"hub_id: {source!r} holds a {found!r} model where {model_type!r} is needed; load it with {right}()."
            )
        model = model_class.from_pretrained(source).to(dev).eval()
        processor = AutoProcessor.from_pretrained(source)
    finally:
        hf_logging.set_verbosity(level)
    return MusicGen(model=model, processor=processor, source=source, standin=is_standin(source), device=dev)


def _check_mg(mg: Any) -> MusicGen:
    if not isinstance(mg, MusicGen):
        raise CourseInputError(f"mg: expected the result of load_musicgen(), got {type(mg).__name__}.")
    return mg


# ----------------------------------------------------------------------------- lengths


def frames_for_samples(mg: MusicGen, n_samples: int) -> int:
    """How many token frames EnCodec makes of ``n_samples`` audio samples (rounded up)."""
    _check_mg(mg)
    n = check_positive_int(n_samples, "n_samples")
    return math.ceil(n / mg.hop_length)


def expected_num_samples(
    mg: MusicGen, max_new_tokens: int, prompt_samples: int = 0, longest_prompt_samples: int | None = None
) -> int:
    """Samples MusicGen returns for ``max_new_tokens`` new steps (after an audio prompt of ``prompt_samples``).

    In a batch of audio prompts, every clip is padded to the longest (``longest_prompt_samples``),
    generated from there, and ``batch_decode(..., padding_mask=...)`` then removes as many samples
    as were padded: ``longest output - (longest_prompt_samples - prompt_samples)``.

    Each step makes one token per codebook, but codebook ``k`` runs ``k`` steps late, so the last
    ``num_codebooks - 1`` steps finish frames only partly and are dropped: the audio holds
    ``prompt_frames + max_new_tokens - (num_codebooks - 1)`` frames of ``hop_length`` samples.

    Taught in lesson 04 (notebooks/04_musicgen.ipynb).
    """
    _check_mg(mg)
    steps = check_positive_int(max_new_tokens, "max_new_tokens", minimum=mg.num_codebooks)
    if isinstance(prompt_samples, bool) or not isinstance(prompt_samples, (int, np.integer)) or prompt_samples < 0:
        raise CourseInputError(f"prompt_samples: expected a whole number ≥ 0, got {prompt_samples!r}.")
    longest = int(prompt_samples) if longest_prompt_samples is None else int(longest_prompt_samples)
    if longest < prompt_samples:
        raise CourseInputError(
            f"longest_prompt_samples: {longest} is shorter than prompt_samples={prompt_samples}; give the longest clip's length."
        )
    prompt_frames = 0 if longest == 0 else frames_for_samples(mg, longest)
    return (prompt_frames + steps - (mg.num_codebooks - 1)) * mg.hop_length - (longest - int(prompt_samples))


def tokens_to_seconds(max_new_tokens: int, frame_rate: int = 50, num_codebooks: int = 4) -> tuple[float, float]:
    """(nominal, actual) seconds for ``max_new_tokens`` steps: ``n / frame_rate`` and the same minus the delay frames.

    ``tokens_to_seconds(256)`` is ``(5.12, 5.06)``.
    """
    steps = check_positive_int(max_new_tokens, "max_new_tokens")
    rate = check_positive_int(frame_rate, "frame_rate")
    k = check_positive_int(num_codebooks, "num_codebooks")
    return steps / rate, max(steps - (k - 1), 0) / rate


def bitrate_kbps(frame_rate: int, num_codebooks: int, codebook_size: int) -> float:
    """EnCodec's bitrate in kbit/s: ``frame_rate × num_codebooks × log2(codebook_size) / 1000``.

    Each frame sends one code per codebook, and a code out of ``codebook_size`` takes
    ``log2(codebook_size)`` bits: musicgen-small's 4 codebooks of 2048 at 50 frames/s make 2.2 kbit/s.

    Taught in lesson 04 (notebooks/04_musicgen.ipynb).
    """
    rate = check_positive_int(frame_rate, "frame_rate")
    books = check_positive_int(num_codebooks, "num_codebooks")
    size = check_positive_int(codebook_size, "codebook_size", minimum=2)
    return round(rate * books * math.log2(size) / 1000, 6)


# ----------------------------------------------------------------------------- input checks


def check_texts(text: Any, unconditional: bool = True) -> list[str]:
    """A list of non-empty prompts from a string or a list of strings, or a clear error.

    ``unconditional=False`` (musicgen-melody) leaves out the hint that ``text=None`` generates unconditionally.
    """
    if isinstance(text, str):
        text = [text]
    if not isinstance(text, (list, tuple)) or len(text) == 0:
        raise CourseInputError(f"text: expected a prompt string or a non-empty list of them, got {text!r}.")
    for i, t in enumerate(text):
        if not isinstance(t, str):
            raise CourseInputError(f"text[{i}]: expected a string, got {type(t).__name__}.")
        if not t.strip():
            raise CourseInputError(
                f"text[{i}]: the prompt is empty. Describe the music (e.g. 'calm lo-fi piano')"
                + (", or leave text=None for unconditional generation." if unconditional else ".")
            )
    return list(text)


def check_audio_prompts(audio: Any, sample_rate: Any, mg: MusicGen) -> list[np.ndarray]:
    """Audio prompts as a list of 1-D float32 arrays at the model's rate, or a clear error.

    Accepts one clip or a list of clips; each clip is ``(samples,)`` or ``(1, samples)`` (mono).
    """
    _check_mg(mg)
    if sample_rate is None:
        raise CourseInputError(
            f"sample_rate: give the rate of the audio prompt; the model needs {mg.sample_rate} Hz."
        )
    check_sample_rate(sample_rate, "sample_rate", expected=mg.sample_rate)
    clips = list(audio) if isinstance(audio, (list, tuple)) else [audio]
    if not clips:
        raise CourseInputError("audio: got an empty list; give at least one clip.")
    out = []
    for i, clip in enumerate(clips):
        x = as_float_tensor(clip, f"audio[{i}]", min_ndim=1, max_ndim=2, min_length=mg.hop_length)
        if x.ndim == 2:
            if x.shape[0] != 1:
                raise CourseInputError(
                    f"audio[{i}]: has {x.shape[0]} channels (shape {tuple(x.shape)}); this model is mono. "
                    "Mix it down first with course_lib.audio.to_mono(clip)."
                )
            x = x[0]
        out.append(x.detach().cpu().numpy().astype(np.float32))
    return out


def check_max_new_tokens(mg: MusicGen, max_new_tokens: Any, prompt_frames: int = 0) -> int:
    """Check that ``max_new_tokens`` fits the decoder's positions (after ``prompt_frames`` of prompt)."""
    _check_mg(mg)
    steps = check_positive_int(max_new_tokens, "max_new_tokens", minimum=mg.num_codebooks)
    room = mg.max_positions - 1 - prompt_frames  # one position for the start token
    if steps > room:
        raise CourseInputError(
            f"max_new_tokens: {steps} new tokens do not fit: the decoder has {mg.max_positions} positions"
            + (f" and the audio prompt takes {prompt_frames}" if prompt_frames else "")
            + f", so at most {room} ({room / mg.frame_rate:.2f} s) can be generated at once."
        )
    return steps


# ----------------------------------------------------------------------------- the delay pattern


def delay_pattern(codes: Any, pad: int = PAD) -> np.ndarray:
    """Lay codes ``(num_codebooks, frames)`` out as the decoder produces them: ``(num_codebooks, steps)``.

    Codebook ``k`` is delayed by ``k`` steps, so ``out[k, t + k] = codes[k, t]``, there are
    ``frames + num_codebooks - 1`` steps, and the empty places hold ``pad``. At step ``s`` the
    decoder emits codebook 0 of frame ``s``, codebook 1 of frame ``s - 1``, and so on: one
    transformer predicts all codebooks, each conditioned on the coarser ones of the same frame.

    Taught in lesson 04 (notebooks/04_musicgen.ipynb).
    """
    arr = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes)
    if arr.ndim != 2 or arr.size == 0:
        raise CourseInputError(
            f"codes: expected a 2-D array (num_codebooks, frames), got shape {arr.shape}. "
            "For a batch, pass one item, e.g. codes[0]."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise CourseInputError(f"codes: expected integer token ids, got dtype {arr.dtype}.")
    k, t = arr.shape
    out = np.full((k, t + k - 1), pad, dtype=np.int64)
    for book in range(k):
        out[book, book : book + t] = arr[book]
    return out


def undo_delay_pattern(delayed: Any, pad: int = PAD) -> np.ndarray:
    """Invert :func:`delay_pattern`: ``(num_codebooks, steps)`` back to ``(num_codebooks, steps - num_codebooks + 1)``."""
    arr = np.asarray(delayed.detach().cpu() if isinstance(delayed, torch.Tensor) else delayed)
    if arr.ndim != 2 or arr.shape[1] < arr.shape[0]:
        raise CourseInputError(
            f"delayed: expected (num_codebooks, steps) with steps ≥ num_codebooks, got shape {arr.shape}."
        )
    k, steps = arr.shape
    frames = steps - k + 1
    return np.stack([arr[book, book : book + frames] for book in range(k)]).astype(np.int64)


def plot_delay_pattern(delayed: Any, max_steps: int = 12, pad: int = PAD, ax: Any = None, title: str | None = None) -> Any:
    """Draw which token of which codebook is produced at which step, with the token ids written in."""
    import matplotlib.pyplot as plt

    arr = np.asarray(delayed)
    if arr.ndim != 2:
        raise CourseInputError(f"delayed: expected (num_codebooks, steps), got shape {arr.shape}.")
    steps = min(check_positive_int(max_steps, "max_steps"), arr.shape[1])
    arr = arr[:, :steps]
    k = arr.shape[0]
    if ax is None:
        _, ax = plt.subplots(figsize=(min(1.0 * steps + 1.5, 16), 0.6 * k + 1.2))
    frame = np.where(arr == pad, np.nan, np.arange(steps)[None, :] - np.arange(k)[:, None]).astype(float)
    ax.imshow(frame, aspect="auto", cmap="viridis", vmin=0, vmax=max(steps - 1, 1))
    for b in range(k):
        for s in range(steps):
            text = "pad" if arr[b, s] == pad else f"{int(arr[b, s])}\nf{s - b}"
            ax.text(s, b, text, ha="center", va="center", fontsize=7, color="white" if arr[b, s] != pad else "grey")
    ax.set_xticks(range(steps))
    ax.set_yticks(range(k), [f"codebook {b}" for b in range(k)])
    ax.set_xlabel("decoder step (colour and f#: the audio frame the token belongs to)")
    ax.set_title(title or "The delay pattern: codebook k runs k steps late")
    return ax


def plot_patterns(steps: dict[str, Any], token: tuple[int, int], axes: Any = None) -> Any:
    """Draw codebook patterns side by side: the step that writes each token, and what one token can see.

    ``steps`` maps a pattern name to a ``(codebooks, frames)`` array of decoder step numbers (the step
    at which each token is written). For ``token = (codebook, frame)`` the cells are coloured: the token
    itself (red), tokens written at an earlier step, which it can see (green), and tokens written at the
    same or a later step, which it cannot (grey). The numbers are the steps.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    if not isinstance(steps, dict) or not steps:
        raise CourseInputError("steps: expected a dict {pattern name: (codebooks, frames) array of step numbers}.")
    arrays = {name: np.asarray(a) for name, a in steps.items()}
    shapes = {a.shape for a in arrays.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise CourseInputError(f"steps: every pattern needs the same 2-D (codebooks, frames) shape, got {sorted(shapes)}.")
    k, t = next(iter(shapes))
    if (not isinstance(token, tuple) or len(token) != 2 or not all(isinstance(v, (int, np.integer)) for v in token)
            or not (0 <= token[0] < k and 0 <= token[1] < t)):
        raise CourseInputError(f"token: expected (codebook, frame) with codebook < {k} and frame < {t}, got {token!r}.")
    if axes is None:
        _, axes = plt.subplots(1, len(arrays), figsize=(4.2 * len(arrays), 0.5 * k + 1.6), squeeze=False)
        axes = axes[0]
    cmap = ListedColormap(["#d9d9d9", "#74c476", "#e6550d"])
    for ax, (name, arr) in zip(axes, arrays.items()):
        own = arr[token]
        state = np.where(arr < own, 1, 0)
        state[token] = 2
        ax.imshow(state, cmap=cmap, vmin=0, vmax=2, aspect="auto")
        for b in range(k):
            for f in range(t):
                ax.text(f, b, str(int(arr[b, f])), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(t))
        ax.set_yticks(range(k), [f"cb {b}" for b in range(k)])
        ax.set_xlabel("audio frame")
        ax.set_title(f"{name}: {int(arr.max()) + 1} steps; token sees {int((arr < own).sum())}")
    return axes


# ----------------------------------------------------------------------------- generation


@dataclass
class Generation:
    """What :func:`generate` returns: audio per item, its rate, the tokens and the cost."""

    audio: list[np.ndarray]  # one (channels, samples) float32 array per item, padding removed
    sample_rate: int
    codes: np.ndarray  # (batch, num_codebooks, frames) token ids EnCodec decoded
    delayed: np.ndarray  # (batch, num_codebooks, steps) the decoder's output, PAD where nothing was produced
    seconds: float  # wall time of generate()
    new_tokens: int
    batch_size: int
    guidance: bool
    peak_memory_mb: float
    memory_kind: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def steps_per_second(self) -> float:
        """Decoder steps per second of wall time (each step makes one token per codebook per item)."""
        return self.new_tokens / self.seconds if self.seconds > 0 else float("inf")

    @property
    def audio_seconds(self) -> float:
        """Length of the longest returned clip in seconds."""
        return max(a.shape[-1] for a in self.audio) / self.sample_rate

    @property
    def realtime_factor(self) -> float:
        """Wall time divided by audio length for one item: below 1 is faster than real time."""
        return self.seconds / self.audio_seconds if self.audio_seconds > 0 else float("inf")

    def cost(self) -> dict[str, Any]:
        """One row of a cost table."""
        return {
            "batch": self.batch_size,
            "guidance": self.guidance,
            "new tokens": self.new_tokens,
            "seconds": round(self.seconds, 2),
            "steps/s": round(self.steps_per_second, 1),
            "audio s": round(self.audio_seconds, 2),
            "real-time factor": round(self.realtime_factor, 3),
            f"peak memory MB ({self.memory_kind})": round(self.peak_memory_mb, 1),
        }


def _peak_memory_mb(device: str) -> tuple[float, str]:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20, "GPU allocated"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak / 2**20 if sys.platform == "darwin" else peak / 2**10), "process peak RSS"


class _Recorder:
    """Temporarily wraps the model so that the decoder's raw output and EnCodec's codes are kept."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.delayed: torch.Tensor | None = None
        self.codes: torch.Tensor | None = None

    def __enter__(self) -> "_Recorder":
        decoder, encoder = self.model.decoder, self.model.audio_encoder
        original_apply = type(decoder).apply_delay_pattern_mask
        original_decode = encoder.decode

        def apply(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            result = original_apply(input_ids, mask)
            self.delayed = result.detach().cpu().clone()
            return result

        def decode(audio_codes: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self.codes = audio_codes.detach().cpu().clone()
            return original_decode(audio_codes, *args, **kwargs)

        decoder.apply_delay_pattern_mask = apply
        encoder.decode = decode
        return self

    def __exit__(self, *exc: Any) -> None:
        del self.model.decoder.apply_delay_pattern_mask
        del self.model.audio_encoder.decode


def generate(
    mg: MusicGen,
    text: str | Sequence[str] | None = None,
    audio: Any = None,
    sample_rate: int | None = None,
    *,
    num_samples: int = 1,
    max_new_tokens: int = 256,
    seed: int | None = 0,
    do_sample: bool = True,
    guidance_scale: float | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    progress: bool = False,
) -> Generation:
    """Generate audio with MusicGen and measure it.

    - ``text=None, audio=None``: unconditional, ``num_samples`` clips (``get_unconditional_inputs``,
      which asks for no guidance unless ``guidance_scale`` is given).
    - ``text``: one clip per prompt; ``guidance_scale > 1`` turns on classifier-free guidance.
    - ``audio`` (+ ``sample_rate`` = the model's rate): continue each clip (with ``text`` if given, one
      prompt per clip). Clips of different length are padded together; the padding is removed from
      the output with ``processor.batch_decode(..., padding_mask=...)``.

    ``seed`` seeds torch right before sampling (same seed → same audio on the CPU); ``None`` leaves
    the generator alone. Settings left at ``None`` come from ``model.generation_config``.

    Taught in lesson 04 (notebooks/04_musicgen.ipynb).
    """
    mg = _check_mg(mg)
    gen_kwargs = _generation_options(do_sample, guidance_scale, temperature, top_k)
    if not isinstance(progress, bool):
        raise CourseInputError(f"progress: expected True or False, got {progress!r}.")
    texts = None if text is None else check_texts(text)
    clips = None if audio is None else check_audio_prompts(audio, sample_rate, mg)
    if texts is not None and clips is not None and len(texts) != len(clips):
        raise CourseInputError(
            f"text: {len(texts)} prompt(s) for {len(clips)} audio clip(s); give one text per clip (or text=None)."
        )
    prompt_frames = 0 if clips is None else max(frames_for_samples(mg, len(c)) for c in clips)
    steps = check_max_new_tokens(mg, max_new_tokens, prompt_frames)
    gen_kwargs["max_new_tokens"] = steps

    inputs, padding_mask = _model_inputs(mg, texts, clips, num_samples)
    if texts is None and clips is None:
        gen_kwargs.setdefault("guidance_scale", 1.0)  # what get_unconditional_inputs asks for
    used_guidance = float(gen_kwargs.get("guidance_scale", mg.model.generation_config.guidance_scale or 1.0))
    if seed is not None:
        settings.seed_everything(seed)
    values, rec, seconds = _timed_generate(mg, inputs, gen_kwargs, progress)

    if clips is not None and padding_mask is not None:   # batched audio prompts: cut each clip's padding off
        audio_out = [np.asarray(a, dtype=np.float32) for a in mg.processor.batch_decode(values, padding_mask=padding_mask)]
    else:
        audio_out = [values[i].numpy().astype(np.float32) for i in range(values.shape[0])]
    return _generation(mg, audio_out, rec, seconds, steps, {**gen_kwargs, "guidance_scale": used_guidance, "seed": seed})


def _generation(mg: MusicGen, audio_out: list[np.ndarray], rec: Any, seconds: float, steps: int,
                used: dict[str, Any]) -> Generation:
    """A :class:`Generation` from the decoded audio and what :class:`_Recorder` kept (``used``: the settings)."""
    peak, kind = _peak_memory_mb(mg.device)
    batch, k = len(audio_out), mg.num_codebooks
    delayed = rec.delayed.reshape(batch, k, -1)[:, :, 1:].numpy().astype(np.int64)  # drop the start token
    delayed[delayed == mg.model.generation_config.pad_token_id] = PAD
    codes = rec.codes[0].numpy().astype(np.int64)
    return Generation(
        audio=audio_out, sample_rate=mg.sample_rate, codes=codes, delayed=delayed, seconds=seconds,
        new_tokens=steps, batch_size=batch, guidance=used["guidance_scale"] > 1, peak_memory_mb=peak,
        memory_kind=kind, settings=used,
    )


def _generation_options(do_sample: Any, guidance_scale: Any, temperature: Any, top_k: Any) -> dict[str, Any]:
    """The sampling settings for ``model.generate``, checked; ``None`` ones are left to ``generation_config``."""
    if not isinstance(do_sample, bool):
        raise CourseInputError(f"do_sample: expected True or False, got {do_sample!r}.")
    if guidance_scale is not None and (isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) or guidance_scale < 0):
        raise CourseInputError(f"guidance_scale: expected a number ≥ 0 (1 = no guidance, 3 = default), got {guidance_scale!r}.")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature <= 0):
        raise CourseInputError(f"temperature: expected a number > 0 (1 = unchanged), got {temperature!r}.")
    if top_k is not None:
        check_positive_int(top_k, "top_k")
    options: dict[str, Any] = {"max_new_tokens": None, "do_sample": do_sample}
    for name, value, cast in (("guidance_scale", guidance_scale, float), ("temperature", temperature, float),
                              ("top_k", top_k, int)):
        if value is not None:
            options[name] = cast(value)
    return options


def _model_inputs(mg: MusicGen, texts: list[str] | None, clips: list[np.ndarray] | None, num_samples: int
                  ) -> tuple[dict[str, Any], Any]:
    """``(inputs for model.generate, padding mask of the audio prompts or None)``, on the model's device."""
    padding_mask = None
    if texts is None and clips is None:
        n = check_positive_int(num_samples, "num_samples")
        inputs = dict(mg.model.get_unconditional_inputs(num_samples=n))
        inputs.pop("guidance_scale", None)
    else:
        kwargs: dict[str, Any] = {"padding": True, "return_tensors": "pt"}
        if texts is not None:
            kwargs["text"] = texts
        if clips is not None:
            kwargs["audio"] = clips
            kwargs["sampling_rate"] = mg.sample_rate
        inputs = dict(mg.processor(**kwargs))
        padding_mask = inputs.pop("padding_mask", None)
        if clips is not None and padding_mask is not None:
            inputs["padding_mask"] = padding_mask
    inputs = {k: (v.to(mg.device) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    return inputs, padding_mask


def _timed_generate(mg: MusicGen, inputs: dict[str, Any], gen_kwargs: dict[str, Any], progress: bool
                    ) -> tuple[torch.Tensor, Any, float]:
    """Run ``model.generate`` once: (audio values on the CPU, the recorded codes, seconds)."""
    if mg.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    extra: dict[str, Any] = {}
    bar = _ProgressBar(gen_kwargs["max_new_tokens"]) if progress else None
    if bar is not None:
        from transformers import LogitsProcessorList

        extra["logits_processor"] = LogitsProcessorList([bar])
    start = time.perf_counter()
    with _Recorder(mg.model) as rec, torch.no_grad():
        values = mg.model.generate(**inputs, **gen_kwargs, **extra)
    if mg.device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    return values.detach().cpu(), rec, seconds


class _ProgressBar:
    """A logits processor that only advances a text progress bar: ``generate`` calls it once per new step."""

    def __init__(self, total: int) -> None:
        self.bar = settings.progress(total=total, desc="generating", unit="step")  # a text bar
        self.total = total
        self.count = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Count one step and return the scores unchanged."""
        self.count += 1
        self.bar.update(1)
        if self.count >= self.total:
            self.bar.close()
        return scores

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()


def progress_bar(max_new_tokens: int) -> Any:
    """A ``logits_processor`` for ``model.generate`` that shows a text progress bar, one tick per new step.

    ``model.generate(**inputs, max_new_tokens=n, logits_processor=progress_bar(n))``
    """
    from transformers import LogitsProcessorList

    return LogitsProcessorList([_ProgressBar(check_positive_int(max_new_tokens, "max_new_tokens"))])


def cost_table(
    mg: MusicGen, max_new_tokens: int = 256, batch_sizes: Sequence[int] = (1,), text: str = "calm lo-fi piano",
    guidance: Sequence[float] = (1.0, 3.0), seed: int = 0,
) -> list[dict[str, Any]]:
    """Measure generation cost (steps/s, real-time factor, memory) for each batch size and guidance.

    A short warm-up generation runs first, so that one-time costs (first calls into torch, memory
    allocation) do not land in the first row.
    """
    mg = _check_mg(mg)
    if not isinstance(text, str):
        raise CourseInputError(f"text: expected one prompt string, got {type(text).__name__}.")
    sizes = [check_positive_int(b, "batch_sizes") for b in batch_sizes]
    scales = list(guidance)
    if not sizes or not scales:
        raise CourseInputError("batch_sizes, guidance: give at least one batch size and one guidance scale.")
    check_max_new_tokens(mg, max_new_tokens)
    generate(mg, text=text, max_new_tokens=mg.num_codebooks, guidance_scale=max(scales), seed=seed)
    rows = []
    for b in sizes:
        for g in scales:
            result = generate(mg, text=[text] * b, max_new_tokens=max_new_tokens, guidance_scale=g, seed=seed)
            rows.append(result.cost())
    return rows


def save_generation(path: str | os.PathLike, result: Generation, index: int = 0) -> Path:
    """Write item ``index`` of a :class:`Generation` to a WAV file at the encoder's rate (peak-safe)."""
    from course_lib.audio import save_wav

    if not isinstance(result, Generation):
        raise CourseInputError(f"result: expected the Generation returned by generate(), got {type(result).__name__}.")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(result.audio):
        raise CourseInputError(f"index: expected 0 to {len(result.audio) - 1}, got {index!r}.")
    clip = result.audio[index]
    peak = float(np.max(np.abs(clip))) if clip.size else 0.0
    if peak > 1.0:
        clip = clip / peak  # a generated clip can overshoot; never clip silently
    return save_wav(path, clip, result.sample_rate)


# ----------------------------------------------------------------------------- melody conditioning (musicgen-melody)


def _check_melody(mg: Any) -> MusicGen:
    mg = _check_mg(mg)
    if getattr(mg.model.config, "model_type", None) != "musicgen_melody":
        raise CourseInputError(
            f"mg: {mg.source!r} is not a melody model (it cannot read a tune); load one with load_musicgen_melody()."
        )
    return mg


def check_tune(mg: MusicGen, tune: Any, sample_rate: Any) -> np.ndarray:
    """The reference tune as a 1-D float32 array at the feature extractor's rate (32 kHz), or a clear error.

    Mono only (``(samples,)`` or ``(1, samples)``); another rate is resampled; at least one chroma hop
    long, at most the feature extractor's 30 s (it would cut the rest off without a word); not silent
    (a silent tune has no strongest note, and its chromagram would be all C).
    """
    from course_lib.audio import resample

    extractor = _check_melody(mg).processor.feature_extractor
    if sample_rate is None:
        raise CourseInputError(f"sample_rate: give the rate of the tune in Hz (the model reads {extractor.sampling_rate}).")
    rate = check_sample_rate(sample_rate, "sample_rate")
    x = as_float_tensor(tune, "tune", min_ndim=1, max_ndim=2)
    if x.ndim == 2:
        if x.shape[0] != 1:
            raise CourseInputError(
                f"tune: has shape {tuple(x.shape)}, but musicgen-melody reads one channel (samples,). "
                "Mix it down first with course_lib.audio.to_mono(tune) (for (samples, channels), transpose first)."
            )
        x = x[0]
    clip = x.detach().cpu().numpy().astype(np.float32)
    if rate != extractor.sampling_rate:
        clip = np.asarray(resample(clip, rate, extractor.sampling_rate), dtype=np.float32)
    seconds = len(clip) / extractor.sampling_rate
    if len(clip) < extractor.hop_length:
        raise CourseInputError(
            f"tune: {seconds:.3f} s is shorter than one chroma frame ({extractor.hop_length} samples at "
            f"{extractor.sampling_rate} Hz, {extractor.hop_length / extractor.sampling_rate:.3f} s); give a longer tune."
        )
    if len(clip) > extractor.n_samples:
        raise CourseInputError(
            f"tune: {seconds:.1f} s is longer than the {extractor.chunk_length} s the model reads; cut it, "
            f"e.g. tune[: {extractor.chunk_length} * sample_rate]."
        )
    if float(np.max(np.abs(clip))) < 1e-4:
        raise CourseInputError("tune: is silent (peak below 1e-4), so it names no note; give a tune you can hear.")
    return clip


def melody_chroma(mg: MusicGen, tune: Any, sample_rate: int) -> np.ndarray:
    """The one-hot chromagram musicgen-melody is conditioned on: ``(frames, 12)``, one 1 per frame.

    Computed by the loaded processor's ``MusicgenMelodyFeatureExtractor`` (frame ``t`` covers samples
    around ``t × hop_length``; column 0 is C, 1 is C♯, … 11 is B).

    Taught in lesson 04 (notebooks/04_musicgen.ipynb, section 13).
    """
    clip = check_tune(mg, tune, sample_rate)
    extractor = mg.processor.feature_extractor
    features = extractor(clip, sampling_rate=extractor.sampling_rate, return_tensors="pt").input_features
    return features[0].numpy().astype(np.float32)


def generate_with_melody(
    mg: MusicGen,
    tune: Any,
    sample_rate: int,
    text: str | Sequence[str],
    *,
    max_new_tokens: int = 256,
    seed: int | None = 0,
    do_sample: bool = True,
    guidance_scale: float | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    progress: bool = False,
) -> Generation:
    """Let musicgen-melody play ``tune``'s notes in the style of each prompt: one clip per prompt.

    The processor turns the tune into its one-hot chromagram (:func:`melody_chroma`) and the prompts
    into T5 tokens; the model puts the chroma frames in front of the text's hidden states and
    generates ``max_new_tokens`` steps (``(max_new_tokens - 3) × 640`` samples at 32 kHz, as
    :func:`expected_num_samples` says). The tune is checked by :func:`check_tune` (mono, resampled
    to 32 kHz, 1 frame to 30 s, not silent). ``seed`` and the sampling settings work as in :func:`generate`
    (``guidance_scale=None``: the model's 3.0).

    Taught in lesson 04 (notebooks/04_musicgen.ipynb, section 13).
    """
    mg = _check_melody(mg)
    gen_kwargs = _generation_options(do_sample, guidance_scale, temperature, top_k)
    if not isinstance(progress, bool):
        raise CourseInputError(f"progress: expected True or False, got {progress!r}.")
    if text is None:
        raise CourseInputError("text: musicgen-melody needs a prompt (e.g. 'warm jazz piano trio'): the tune "
                               "gives the notes, the text the style.")
    texts = check_texts(text, unconditional=False)
    clip = check_tune(mg, tune, sample_rate)
    steps = check_max_new_tokens(mg, max_new_tokens)
    gen_kwargs["max_new_tokens"] = steps
    extractor_rate = mg.processor.feature_extractor.sampling_rate
    inputs = mg.processor(audio=[clip] * len(texts), sampling_rate=extractor_rate, text=texts, padding=True,
                          return_tensors="pt")
    inputs = {k: (v.to(mg.device) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
    used_guidance = float(gen_kwargs.get("guidance_scale", mg.model.generation_config.guidance_scale or 1.0))
    if seed is not None:
        settings.seed_everything(seed)
    values, rec, seconds = _timed_generate(mg, inputs, gen_kwargs, progress)
    audio_out = [values[i].numpy().astype(np.float32) for i in range(values.shape[0])]
    used = {**gen_kwargs, "guidance_scale": used_guidance, "seed": seed,
            "chroma_frames": int(inputs["input_features"].shape[1])}
    return _generation(mg, audio_out, rec, seconds, steps, used)
