"""AudioLDM 2 for lesson 07's online section: a real text-to-audio latent diffusion pipeline, part by part.

``cvssp/audioldm2-music`` (Liu et al., 2023) is the grown-up version of the course's own latent
diffusion model (:mod:`course_lib.text_to_audio`): the same idea (denoise a compressed mel
spectrogram, guided by text, then decode it to sound) with every part trained at scale.

- :func:`load_audioldm2`: the diffusers ``AudioLDM2Pipeline`` through :func:`course_lib.hub.resolve_pretrained`
  (online only: the course ships no stand-in for it; offline, lesson 07 uses the course-trained model).
- :func:`describe_parts`: one row per part (class, parameters, what it does, its key numbers).
- :func:`generate`: a prompt (and a negative prompt) -> a 16 kHz waveform, seeded.
- :func:`vocoder_vs_griffin_lim`: the pipeline's HiFi-GAN vocoder against Griffin-Lim on the same log-mel.
- :func:`clap_score`: how well texts and clips match, judged by LAION's CLAP (:mod:`course_lib.models.clap`).
- :func:`provenance`: where a pipeline came from; an untrained Hub stand-in (the tests' local server) is
  labelled as such in every report, so its noise is never mistaken for a result.

diffusers and transformers are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import torch

from course_lib import settings
from course_lib.audio import resample
from course_lib.errors import CourseInputError
from course_lib.hub import is_standin, resolve_online_only, resolve_pretrained
from course_lib.metrics import spectral_convergence
from course_lib.models.clap import CLAP_HUB_ID, ClapJudge, load_clap_judge
from course_lib.spectrogram import griffin_lim, hifigan_log_mel, magnitude, mel_to_linear, stft
from course_lib.validate import as_float_tensor, check_number, check_positive_int, check_sample_rate

__all__ = [
    "AUDIOLDM2_ID", "MEL", "load_audioldm2", "provenance", "describe_parts", "generate",
    "vocoder_vs_griffin_lim", "clap_score",
]

AUDIOLDM2_ID = "cvssp/audioldm2-music"
# The log-mel AudioLDM 2's VAE and HiFi-GAN vocoder were trained on (its training code's
# ``mel_spectrogram_train``): 16 kHz, reflect padding of (n_fft - hop) / 2, STFT without centring, magnitude,
# 64 Slaney mel bands from 0 to 8 kHz, natural log of the mel clamped at 1e-5. 100 frames per second.
MEL = {"sample_rate": 16000, "n_fft": 1024, "hop_length": 160, "win_length": 1024, "n_mels": 64,
       "f_min": 0.0, "f_max": 8000.0}
MAX_SECONDS = 30.0  # the model was trained on 10.24 s clips; far longer ones fall apart (and take long)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# What each part does, in the order the prompt flows through them.
_PARTS = (
    ("text_encoder", "CLAP text tower: the prompt -> one vector in CLAP's shared text-audio space (what it "
                     "should sound like)"),
    ("text_encoder_2", "Flan-T5 encoder: the prompt -> one vector per token (what the words say)"),
    ("projection_model", "two linear maps that bring the CLAP vector and the T5 vectors to GPT-2's width, "
                         "framed by learnt start/end vectors"),
    ("language_model", "GPT-2: from the projected text, generates 8 new vectors (audio features) the UNet "
                       "attends to"),
    ("unet", "denoises the latent mel spectrogram, step by step, attending to GPT-2's vectors and to T5's"),
    ("vae", "autoencoder: log-mel spectrogram <-> a latent 4x smaller per axis; generating uses its decoder "
            "(latent -> log-mel)"),
    ("vocoder", "HiFi-GAN: log-mel spectrogram -> waveform (160 samples per frame, 16 kHz)"),
)


# ----------------------------------------------------------------------------- loading and provenance


def _endpoint() -> str:
    """The Hub address the Hugging Face libraries use now (``HF_ENDPOINT`` or the public Hub)."""
    import huggingface_hub.constants as hub_constants

    return str(hub_constants.ENDPOINT).rstrip("/")


def _is_local_endpoint(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    return host in _LOOPBACK or host.startswith("127.")


def _source_provenance(source: str) -> dict[str, Any]:
    """Where ``source`` (a Hub id or a folder) comes from, and whether its weights are an untrained stand-in."""
    if is_standin(source):
        card = Path(source) / "README.md"
        untrained = card.is_file() and "UNTRAINED stand-in" in card.read_text(encoding="utf-8", errors="replace")
        where = f"the local folder {source}"
        endpoint = None
    else:
        endpoint = _endpoint()
        untrained = _is_local_endpoint(endpoint)
        where = f"{source} from a local Hub stand-in at {endpoint}" if untrained else f"{source} from {endpoint}"
    label = where + (" (tiny UNTRAINED stand-in weights: its output is noise and means nothing)" if untrained
                     else "")
    return {"source": source, "endpoint": endpoint, "untrained_standin": bool(untrained), "label": label}


def _check_pipe(pipe: Any) -> Any:
    needed = ("vae", "unet", "vocoder", "text_encoder", "text_encoder_2", "projection_model", "language_model")
    if any(getattr(pipe, name, None) is None for name in needed) or not callable(pipe):
        raise CourseInputError(
            f"pipe: expected the AudioLDM2Pipeline that load_audioldm2() returns, got {type(pipe).__name__}."
        )
    return pipe


def provenance(pipe: Any) -> dict[str, Any]:
    """``{"source", "endpoint", "untrained_standin", "label"}`` for a pipeline from :func:`load_audioldm2`.

    ``untrained_standin`` is True when the weights are the tests' tiny untrained stand-in (served from a
    Hub address on this computer, or a folder whose model card says so); ``label`` says it in words.
    """
    _check_pipe(pipe)
    found = getattr(pipe, "course_provenance", None)
    if isinstance(found, dict):
        return dict(found)
    return _source_provenance(str(getattr(pipe, "name_or_path", "") or "an unknown source"))


def _check_dtype(dtype: Any, dev: str) -> torch.dtype:
    if dtype is None:
        return torch.float16 if dev.startswith("cuda") else torch.float32
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    raise CourseInputError(f"dtype: expected None, 'float32', 'float16' or 'bfloat16' (or the torch dtype), got "
                           f"{dtype!r}. None picks float16 on a GPU and float32 on the CPU.")


def load_audioldm2(hub_id: str = AUDIOLDM2_ID, device: str | None = None, dtype: Any = None) -> Any:
    """AudioLDM 2 (``cvssp/audioldm2-music`` by default) as a diffusers ``AudioLDM2Pipeline``, in eval mode.

    Online only: ``hub_id`` goes through :func:`course_lib.hub.resolve_pretrained`, and the course ships
    no offline stand-in for a 1.1-billion-parameter model, so offline this raises
    :class:`CourseInputError` (lesson 07 then uses the course-trained model of
    :mod:`course_lib.text_to_audio`). ``device`` defaults to :func:`course_lib.settings.device`; ``dtype``
    to float16 on a GPU, float32 on the CPU. The language model is loaded as ``GPT2LMHeadModel`` (the same weights; its hidden states are
    what the pipeline reads): the repo's ``model_index.json`` names ``GPT2Model``, which recent
    transformers releases can no longer step token by token inside the pipeline (diffusers issue 12630).
    Where it came from is kept on the pipeline (:func:`provenance`).

    Taught in lesson 07 (notebooks/07_text_to_audio.ipynb).
    """
    source = resolve_online_only(
        hub_id, "This section needs the internet: offline, lesson 07 uses the course-trained text-to-audio model "
        "instead (course_lib.text_to_audio.load_text_to_audio(), from checkpoints/text-audio-ldm), which the rest "
        "of the lesson runs.")
    dev = settings.device(device)
    torch_dtype = _check_dtype(dtype, dev)

    from diffusers import AudioLDM2Pipeline
    from transformers import GPT2LMHeadModel

    language_model = GPT2LMHeadModel.from_pretrained(source, subfolder="language_model", dtype=torch_dtype)
    pipe = AudioLDM2Pipeline.from_pretrained(source, language_model=language_model, dtype=torch_dtype)
    pipe = pipe.to(dev)
    for name in ("vae", "unet", "vocoder", "text_encoder", "text_encoder_2", "projection_model", "language_model"):
        getattr(pipe, name).eval()
    pipe.course_provenance = _source_provenance(source)
    return pipe


# ----------------------------------------------------------------------------- the parts


def _key_numbers(name: str, pipe: Any) -> str:
    """The configuration numbers that say what a part takes and gives."""
    if name == "text_encoder":
        return f"text vector: {pipe.text_encoder.config.projection_dim}"
    if name == "text_encoder_2":
        return f"width {pipe.text_encoder_2.config.d_model}, prompt cut at {pipe.tokenizer_2.model_max_length} tokens"
    if name == "projection_model":
        c = pipe.projection_model.config
        return f"{c.text_encoder_dim} and {c.text_encoder_1_dim} -> {c.langauge_model_dim}"
    if name == "language_model":
        c = pipe.language_model.config
        return f"width {c.n_embd}, {c.n_layer} layer(s), {getattr(c, 'max_new_tokens', 8)} new vectors"
    if name == "unet":
        c = pipe.unet.config
        dims = sorted({d for block in c.cross_attention_dim for d in (block if isinstance(block, (list, tuple))
                                                                      else [block]) if d is not None})
        return (f"{c.in_channels} latent channels, widths {list(c.block_out_channels)}, cross-attention to "
                f"widths {dims}")
    if name == "vae":
        c = pipe.vae.config
        return (f"{c.latent_channels} latent channels, {2 ** (len(c.block_out_channels) - 1)}x smaller per axis, "
                f"scaling factor {c.scaling_factor:.4f}")
    c = pipe.vocoder.config
    return f"{c.model_in_dim} mel bands -> {c.sampling_rate} Hz, {int(np.prod(c.upsample_rates))} samples per frame"


def describe_parts(pipe: Any) -> list[dict[str, Any]]:
    """One row per part of the pipeline, in the order a prompt flows through them.

    Each row: ``part`` (the pipeline's attribute), ``class``, ``parameters`` (all of that part's
    weights), ``what it does``, ``key numbers`` (from its configuration) and ``weights`` ("trained" or
    "UNTRAINED stand-in", see :func:`provenance`). The CLAP row counts the whole CLAP model: its
    audio tower is used only to rank several takes of one prompt.

    Taught in lesson 07 (notebooks/07_text_to_audio.ipynb).
    """
    _check_pipe(pipe)
    weights = "UNTRAINED stand-in" if provenance(pipe)["untrained_standin"] else "trained"
    rows = []
    for name, role in _PARTS:
        part = getattr(pipe, name)
        rows.append({
            "part": name,
            "class": type(part).__name__,
            "parameters": int(sum(p.numel() for p in part.parameters())),
            "what it does": role,
            "key numbers": _key_numbers(name, pipe),
            "weights": weights,
        })
    return rows


# ----------------------------------------------------------------------------- generating


def _sample_rate(pipe: Any) -> int:
    return int(pipe.vocoder.config.sampling_rate)


def _min_seconds(pipe: Any) -> float:
    """The shortest clip the pipeline makes: one latent row = vae scale x hop samples."""
    hop = int(np.prod(pipe.vocoder.config.upsample_rates))
    return pipe.vae_scale_factor * hop / _sample_rate(pipe)


def generate(pipe: Any, prompt: str, negative_prompt: str | None = None, steps: int = 100,
             guidance_scale: float = 3.5, seconds: float = 10.0, seed: Any = 0,
             progress: bool = True) -> tuple[np.ndarray, int]:
    """One clip for ``prompt``: ``(audio, sample_rate)``, audio float32 of shape (round(seconds x rate),).

    DDIM with ``steps`` steps and classifier-free guidance ``guidance_scale`` (> 1 turns it on;
    AudioLDM 2's default 3.5). ``negative_prompt`` replaces the empty prompt as the direction to steer
    away from ("low quality, noise"), so it needs guidance. ``seed`` (an int or a CPU
    ``torch.Generator``, see :func:`course_lib.settings.make_generator`) fixes the starting noise: the same
    seed gives the same clip. Check :func:`provenance` before judging the sound.

    Taught in lesson 07 (notebooks/07_text_to_audio.ipynb).
    """
    _check_pipe(pipe)
    if not isinstance(prompt, str) or not prompt.strip():
        raise CourseInputError(f"prompt: expected a non-empty text such as 'calm lo-fi piano', got {prompt!r}.")
    if negative_prompt is not None and not isinstance(negative_prompt, str):
        raise CourseInputError(f"negative_prompt: expected a text such as 'low quality' or None, got "
                               f"{type(negative_prompt).__name__}.")
    steps = check_positive_int(steps, "steps")
    if steps > 1000:
        raise CourseInputError(f"steps: {steps} is more than the 1000 training noise levels; use 20 to 200.")
    guidance = check_number(guidance_scale, "guidance_scale", low=0.0, high=30.0)
    if negative_prompt and guidance <= 1.0:
        raise CourseInputError(f"negative_prompt: is used only with guidance; give guidance_scale > 1 (e.g. 3.5), "
                               f"got {guidance:g}, or drop the negative prompt.")
    low = _min_seconds(pipe)
    seconds = check_number(seconds, "seconds", low=low, high=MAX_SECONDS)
    generator = settings.make_generator(seed)
    pipe.set_progress_bar_config(disable=not progress)
    out = pipe(prompt, negative_prompt=negative_prompt or None, num_inference_steps=steps,
               guidance_scale=guidance, audio_length_in_s=seconds, generator=generator, output_type="np")
    audio = np.asarray(out.audios[0], dtype=np.float32).reshape(-1)
    return audio, _sample_rate(pipe)


# ----------------------------------------------------------------------------- vocoder against Griffin-Lim


def _mono_clip(audio: Any, sample_rate: Any, rate: int, min_samples: int) -> torch.Tensor:
    """A mono clip at ``rate`` on the CPU, checked: long enough for one STFT window, at most MAX_SECONDS."""
    sr = check_sample_rate(sample_rate)
    x = as_float_tensor(audio, "audio", min_ndim=1, max_ndim=1).detach().cpu()
    if x.shape[-1] > MAX_SECONDS * sr:
        raise CourseInputError(f"audio: {x.shape[-1] / sr:.1f} s is longer than {MAX_SECONDS:g} s; cut a shorter "
                               "excerpt first.")
    if sr != rate:
        x = resample(x, sr, rate)
    if x.shape[-1] < min_samples:
        raise CourseInputError(f"audio: {x.shape[-1]} samples at {rate} Hz is too short; give at least "
                               f"{min_samples / rate:.2f} s.")
    return x


def _metrics(original: torch.Tensor, rebuilt: torch.Tensor, log_mel: torch.Tensor) -> dict[str, float]:
    """Spectral convergence (STFT magnitudes, 0 = identical) and mean |log-mel difference| (nats)."""
    ref = magnitude(stft(original, n_fft=MEL["n_fft"], hop_length=MEL["hop_length"]))
    est = magnitude(stft(rebuilt, n_fft=MEL["n_fft"], hop_length=MEL["hop_length"]))
    rebuilt_mel = hifigan_log_mel(rebuilt, **MEL)
    return {"spectral_convergence": float(spectral_convergence(ref, est)),
            "mel_distance": float((rebuilt_mel - log_mel).abs().mean())}


def vocoder_vs_griffin_lim(pipe: Any, audio: Any, sample_rate: int, n_iter: int = 64,
                           seed: int = 0) -> dict[str, Any]:
    """Turn AudioLDM 2's log-mel of a clip back into sound two ways and measure both.

    The clip is resampled to 16 kHz and cut to whole frames; its log-mel is made exactly as AudioLDM 2's
    training code makes it (:data:`MEL`, :func:`course_lib.spectrogram.hifigan_log_mel`). Then:

    - ``"hifigan"``: the pipeline's vocoder, a network trained to turn such mels into waveforms;
    - ``"griffin_lim"``: exp of the log-mel -> linear magnitudes (non-negative least squares,
      :func:`~course_lib.spectrogram.mel_to_linear`) -> ``n_iter`` Griffin-Lim iterations (phase from
      ``seed``).

    Returns ``{"sample_rate", "original", "hifigan", "griffin_lim", "log_mel" (64, frames), "metrics":
    {"hifigan": {...}, "griffin_lim": {...}}, "untrained_standin", "label"}``; each metric set holds the
    spectral convergence against the original (lower is better) and the mean absolute log-mel
    difference (``mel_distance``). With an untrained stand-in the HiFi-GAN side is noise.

    Taught in lesson 07 (notebooks/07_text_to_audio.ipynb).
    """
    _check_pipe(pipe)
    n_iter = check_positive_int(n_iter, "n_iter")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CourseInputError(f"seed: expected a whole number ≥ 0, got {seed!r}.")
    rate, hop, n_fft = MEL["sample_rate"], MEL["hop_length"], MEL["n_fft"]
    if _sample_rate(pipe) != rate or int(pipe.vocoder.config.model_in_dim) != MEL["n_mels"]:
        raise CourseInputError(
            f"pipe: its vocoder takes {pipe.vocoder.config.model_in_dim} mel bands at "
            f"{_sample_rate(pipe)} Hz, not AudioLDM 2's {MEL['n_mels']} at {rate} Hz; load it with load_audioldm2()."
        )
    x = _mono_clip(audio, sample_rate, rate, min_samples=n_fft)
    frames = x.shape[-1] // hop
    x = x[: frames * hop]
    log_mel = hifigan_log_mel(x, **MEL)  # (64, frames)

    weights = next(pipe.vocoder.parameters())
    with torch.no_grad():
        vocoded = pipe.vocoder(log_mel.T[None].to(weights.device, weights.dtype))
    vocoded = vocoded.reshape(-1)[: frames * hop].float().cpu()

    linear = mel_to_linear(log_mel.exp(), sample_rate=rate, n_fft=n_fft, f_min=MEL["f_min"], f_max=MEL["f_max"])
    # The mel frames come from an STFT without centring after (n_fft - hop) / 2 samples of padding, so the
    # rebuilt signal starts that many samples before the clip.
    rebuilt = griffin_lim(linear, n_fft=n_fft, hop_length=hop, n_iter=n_iter, center=False,
                          generator=torch.Generator().manual_seed(int(seed)))
    start = (n_fft - hop) // 2
    rebuilt = rebuilt[start: start + frames * hop]

    info = provenance(pipe)
    return {
        "sample_rate": rate,
        "original": x.numpy().astype(np.float32),
        "hifigan": vocoded.numpy().astype(np.float32),
        "griffin_lim": rebuilt.numpy().astype(np.float32),
        "log_mel": log_mel.numpy().astype(np.float32),
        "metrics": {"hifigan": _metrics(x, vocoded, log_mel), "griffin_lim": _metrics(x, rebuilt, log_mel)},
        "untrained_standin": info["untrained_standin"],
        "label": info["label"],
    }


# ----------------------------------------------------------------------------- CLAP score

_JUDGES: dict[tuple[str, str, str], tuple[ClapJudge, Any, dict[str, Any]]] = {}


def _clap(hub_id: str, device: str | None) -> tuple[ClapJudge, Any, dict[str, Any]]:
    """LAION's CLAP judge, its tokenizer and provenance, loaded once per (id, Hub address, device)."""
    dev = settings.device(device)
    key = (hub_id, _endpoint(), dev)
    if key not in _JUDGES:
        judge = load_clap_judge(hub_id, device=dev)
        from transformers import AutoTokenizer

        source = resolve_pretrained(hub_id)
        _JUDGES[key] = (judge, AutoTokenizer.from_pretrained(source), _source_provenance(source))
    return _JUDGES[key]


def clap_score(texts: Any, audio: Any, sample_rate: int, hub_id: str = CLAP_HUB_ID,
               device: str | None = None) -> dict[str, Any]:
    """Cosine similarity of every text with every clip in CLAP's shared space (LAION's CLAP, online).

    ``texts``: a list of N strings; ``audio``: M clips, (M, T) or (T,), at ``sample_rate``. Returns
    ``{"scores": (N, M) float32 array, "untrained_standin", "label"}``; ``scores[i, j]`` is near 1 when
    clip j sounds like text i, so with one prompt per clip the diagonal (matched pairs) should beat the
    rest (shuffled pairs). The audio side is :meth:`ClapJudge.embed <course_lib.models.clap.ClapJudge.embed>`
    (resampled to 48 kHz, middle 10 s). Offline there is no CLAP: this raises :class:`CourseInputError`.

    Taught in lesson 07 (notebooks/07_text_to_audio.ipynb).
    """
    if isinstance(texts, str):
        texts = [texts]
    if (not isinstance(texts, (list, tuple)) or not texts
            or not all(isinstance(t, str) and t.strip() for t in texts)):
        raise CourseInputError(f"texts: expected a list of non-empty strings such as ['calm piano'], got {texts!r}.")
    clips = as_float_tensor(audio, "audio", min_ndim=1, max_ndim=2)
    rate = check_sample_rate(sample_rate)
    judge, tokenizer, info = _clap(hub_id, device)
    audio_emb = judge.embed(clips, sample_rate=rate)  # (M, D), unit length
    tokens = tokenizer(list(texts), padding=True, return_tensors="pt").to(judge.device)
    with torch.no_grad():
        out = judge.model.get_text_features(**tokens)
    text_emb = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 4 / 5
    text_emb = torch.nn.functional.normalize(text_emb.float().cpu(), dim=-1)
    scores = (text_emb @ audio_emb.T).numpy().astype(np.float32)
    if not np.isfinite(scores).all():
        raise CourseInputError("audio: CLAP gave non-finite scores; check that the clips are not silent.")
    return {"scores": scores, "untrained_standin": info["untrained_standin"], "label": info["label"]}
