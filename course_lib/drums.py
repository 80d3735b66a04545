"""Lesson 05's drum plumbing: one-shot data, the shipped drum model, its evaluation, DAW export.

- :func:`real_drums`: course-made one-shots at the model's rate and length (``synth.drum_dataset``).
- :func:`load_one_shot_folder`: your own one-shots from a folder (one sub-folder per class),
  loaded, resampled, trimmed or padded and normalised like the course's hits.
- :func:`load_drum_model`: the class-conditional ``UNet1D`` in ``checkpoints/drum-diffusion``.
- :func:`generate_drums`: a batch of hits for every class, in the same row order as the data.
- :func:`evaluate_drum_model`: class accuracy (judged by the course's drum classifier) and the
  Fréchet distance of generated to held-out real hits against real-vs-real.
- :func:`export_one_shots`: 44.1 kHz 24-bit WAV files for a DAW.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from course_lib.settings import make_generator
from course_lib.validate import (
    CourseInputError,
    as_float_tensor,
    check_number,
    check_positive_int,
    check_sample_rate,
    prepare_output_dir,
)

__all__ = [
    "SAMPLE_RATE",
    "LENGTH",
    "AUDIO_EXTENSIONS",
    "OneShots",
    "real_drums",
    "prepare_one_shot",
    "load_one_shot_folder",
    "default_model_dir",
    "load_drum_model",
    "generate_drums",
    "evaluate_drum_model",
    "tail_level_db",
    "export_one_shots",
]

SAMPLE_RATE = 22050  # the "laptop" model's rate
LENGTH = 8192  # its clip length (0.37 s)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
_PEAK = 0.8  # course-made hits peak between 0.6 and 0.95; user hits are scaled to the middle
_ONSET_DB = -40.0  # a hit starts at its first sample within 40 dB of its peak
_FADE_S = 0.01  # fade-out applied when a long sample is cut


@dataclass
class OneShots:
    """A set of one-shots: ``audio`` (N, length) float32, ``labels`` (N,) int64 class ids (None when
    the folder had no class sub-folders), ``classes`` (names, in label order), ``files`` (sources)."""

    audio: np.ndarray
    labels: np.ndarray | None
    classes: list[str]
    files: list[str] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE


def real_drums(n_per_class: int, seed: int = 0, sample_rate: int = SAMPLE_RATE, length: int = LENGTH
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Course-made hits: audio (N, length) float32 and labels (N,), rows interleaved kick, snare, hihat, percussion.

    Seed 0 is the drum model's training set; the evaluation uses seed 3 (and the drum classifier
    seeds 1 and 2), so keep those apart when you measure.
    """
    from course_lib.synth import drum_dataset

    audio, labels = drum_dataset(n_per_class, seed=seed, sample_rate=sample_rate, length=length)
    return torch.from_numpy(audio), torch.from_numpy(labels)


def prepare_one_shot(audio: Any, length: int = LENGTH, sample_rate: int = SAMPLE_RATE, peak: float = _PEAK,
                     name: str = "audio") -> np.ndarray:
    """One mono hit (T,) -> exactly ``length`` samples: start at the onset, cut (with a 10 ms fade) or
    pad with silence, and scale to ``peak``. Silent audio raises (there is nothing to learn from it)."""
    x = as_float_tensor(audio, name, min_ndim=1, max_ndim=1).detach().cpu().numpy().astype(np.float64)
    total = x.shape[0]
    n = check_positive_int(length, "length", minimum=16)
    rate = check_sample_rate(sample_rate)
    p = check_number(peak, "peak", 0, 1, low_open=True)
    top = float(np.abs(x).max())
    if top < 1e-6:
        raise CourseInputError(f"{name}: the clip is silent (peak {top:.1e}); remove it from the folder.")
    onset = int(np.argmax(np.abs(x) >= top * 10 ** (_ONSET_DB / 20)))
    x = x[onset:onset + n]
    if onset + n < total:  # samples were cut off: fade out so the clip does not end in a click
        fade = min(n, max(1, int(_FADE_S * rate)))
        x = x.copy()
        x[-fade:] *= np.linspace(1.0, 0.0, fade)
    x = np.pad(x, (0, n - x.shape[0]))
    return (x * (p / np.abs(x).max())).astype(np.float32)


def _audio_files(folder: Path) -> list[Path]:
    """Audio files in ``folder``, sorted; hidden ones (macOS ``._kick.wav`` copies) are skipped."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_EXTENSIONS)


def load_one_shot_folder(folder: str | os.PathLike, sample_rate: int = SAMPLE_RATE, length: int = LENGTH,
                         min_per_class: int = 2) -> OneShots:
    """Your own one-shots as training data for the drum model.

    Layout: ``folder/<class name>/*.wav`` (one sub-folder per class, e.g. ``kick/``, ``snare/``) for a
    class-conditional model, or audio files straight in ``folder`` for an unconditional one.
    WAV, FLAC, Ogg, AIFF and MP3 are read; every file is mixed to mono, resampled to
    ``sample_rate``, started at its onset, cut or padded to ``length`` samples and scaled to a peak
    of 0.8. Errors name the file and the fix (unreadable, silent, too few files).

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    from course_lib.audio import load_audio

    if not isinstance(folder, (str, os.PathLike)):
        raise CourseInputError(f"folder: expected a folder path such as 'my_one_shots/', got {type(folder).__name__}.")
    root = Path(folder)
    if not root.is_dir():
        raise CourseInputError(
            f"folder: {str(root)!r} is not a folder; make one with a sub-folder per class (kick/, snare/, ...) "
            "holding your WAV one-shots."
        )
    rate = check_sample_rate(sample_rate)
    n = check_positive_int(length, "length", minimum=16)
    minimum = check_positive_int(min_per_class, "min_per_class")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = _audio_files(root)
    if subdirs and loose:
        raise CourseInputError(
            f"folder: {str(root)!r} has both class sub-folders and loose audio files ({loose[0].name}, ...); "
            "move each file into the sub-folder of its class, or use a folder without sub-folders."
        )
    groups = [(d.name, _audio_files(d)) for d in subdirs] if subdirs else [("", loose)]
    audio, labels, files = [], [], []
    for label, (name, paths) in enumerate(groups):
        where = f"{str(root / name)!r}" if name else f"{str(root)!r}"
        if len(paths) < minimum:
            raise CourseInputError(
                f"folder: {where} holds {len(paths)} audio file(s) ({', '.join(AUDIO_EXTENSIONS)}); "
                f"put at least {minimum} one-shots there (dozens train far better)."
            )
        for path in paths:
            clip, _ = load_audio(path, sample_rate=rate, mono=True)
            audio.append(prepare_one_shot(clip, n, rate, name=f"file {str(path)!r}"))
            labels.append(label)
            files.append(str(path))
    classes = [name for name, _ in groups] if subdirs else []
    return OneShots(np.stack(audio), np.asarray(labels, np.int64) if classes else None, classes, files, rate)


def default_model_dir() -> Path:
    """Where the shipped drum model lives: ``<repo>/checkpoints/drum-diffusion``."""
    from course_lib.hub import checkpoint_dir

    return checkpoint_dir("drum-diffusion")


def load_drum_model(folder: str | os.PathLike | None = None, device: str | torch.device | None = None) -> Any:
    """The course-trained drum ``UNet1D`` (``checkpoints/drum-diffusion``), or one saved in ``folder``.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    from course_lib.models.unet1d import UNet1D

    root = default_model_dir() if folder is None else folder
    if folder is None and not (Path(root) / "config.json").is_file():
        raise CourseInputError(
            f"folder: the shipped drum model was not found at {str(root)!r}; run this from a clone of the "
            "course (pip install -e .), or train one with `python scripts/train_drums.py`."
        )
    return UNet1D.from_pretrained(root, device=device)


def _class_names(model: Any) -> list[str]:
    """The model's class names (``"0"``, ``"1"``, ... when its config names none)."""
    config = getattr(model, "config", None)
    if not isinstance(model, torch.nn.Module) or not hasattr(config, "num_classes"):
        raise CourseInputError(
            f"model: expected a class-conditional course_lib.models.unet1d.UNet1D (e.g. load_drum_model()), "
            f"got {type(model).__name__}."
        )
    if not config.num_classes:
        raise CourseInputError("model: it has no classes; generate_drums needs a class-conditional UNet1D.")
    return list(config.class_names) or [str(k) for k in range(int(config.num_classes))]


def generate_drums(model: Any, n_per_class: int, steps: int = 50, guidance_scale: float = 2.0, eta: float = 0.0,
                   seed: int = 0, classes: Sequence[str] | None = None, batch_size: int = 64,
                   progress: bool = True, sampler: str = "ddim",
                   peak_limit: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` hits of every class: audio (N, T) float32 on the CPU and labels (N,).

    Rows are interleaved like :func:`real_drums` (class 0, 1, 2, 3, 0, ...). Generation runs in
    batches of ``batch_size`` clips; batch ``b`` draws its noise from a generator seeded with
    ``(seed, b)``, so the result depends only on the arguments. ``classes`` picks some of the
    model's classes (in that order). A stereo model's hits are mixed to mono. ``sampler``: ``"ddim"`` or
    ``"heun"`` (see ``vdiffusion.sample``). ``peak_limit``: None clamps to [-1, 1], so a hit the sampler makes
    louder than full scale is clipped; a number (e.g. 0.95, the loudest course-made hit) scales every hit that
    peaks above it down to it instead, so none is clipped.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    from course_lib.settings import progress as progress_bar

    from course_lib.diffusion.vdiffusion import sample

    names = _class_names(model)
    wanted = names if classes is None else [classes] if isinstance(classes, str) else list(classes)
    if not wanted:
        raise CourseInputError(f"classes: got an empty list; give some of {names}, or None for all.")
    for c in wanted:
        if c not in names:
            raise CourseInputError(f"classes: {c!r} is not one of the model's classes {names}.")
    n_per = check_positive_int(n_per_class, "n_per_class")
    bs = check_positive_int(batch_size, "batch_size")
    seed = check_positive_int(seed, "seed", minimum=0)
    limit = None if peak_limit is None else check_number(peak_limit, "peak_limit (e.g. 0.95; None clamps)", 0, 1)
    if limit == 0:
        raise CourseInputError("peak_limit: 0 would silence every hit; use e.g. 0.95, or None to clamp.")
    labels = torch.tensor([names.index(c) for _ in range(n_per) for c in wanted])
    out = []
    starts = range(0, len(labels), bs)
    for b, start in enumerate(progress_bar(starts, desc="generating", disable=not progress or len(starts) == 1)):
        g = make_generator(seed * 1_000_003 + b)
        chunk = labels[start:start + bs]
        hits = sample(model, len(chunk), None, steps, g, class_labels=chunk, guidance_scale=guidance_scale,
                      eta=eta, progress=progress and len(starts) == 1, sampler=sampler, clip=limit is None)
        if limit is not None:  # scale down, do not clip
            hits = hits * (limit / hits.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        out.append(hits.mean(dim=1).cpu())
    return torch.cat(out), labels


def tail_level_db(audio: Any, tail: float = 0.25) -> torch.Tensor:
    """How far each hit has decayed by its end: the RMS of its last ``tail`` share against its peak, in dB.

    ``audio`` is (N, T) or (T,); returns (N,) (one value for a single hit), e.g. -63 dB for a real hi-hat
    that has died away and -38 dB for one whose tail still hisses. A silent hit gives -inf.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    x = as_float_tensor(audio, "audio")
    single = x.ndim == 1
    x = x[None] if single else x
    if x.ndim != 2 or x.shape[-1] < 4:
        raise CourseInputError(f"audio: expected hits (N, samples) or one hit (samples,), got {tuple(x.shape)}; "
                               "mix stereo hits to mono first, e.g. audio.mean(dim=1).")
    tail = check_number(tail, "tail (the share of each hit at its end, e.g. 0.25)", 0, 1)
    start = min(x.shape[-1] - 1, int(round(x.shape[-1] * (1 - tail))))
    rms = x[:, start:].double().pow(2).mean(dim=-1).sqrt()
    peak = x.double().abs().amax(dim=-1)
    level = 20 * torch.log10(rms / peak.clamp_min(1e-12))
    level = level.where(rms > 0, torch.tensor(-math.inf, dtype=torch.float64)).float()
    return level[0] if single else level


def evaluate_drum_model(model: Any, classifier: Any, n_per_class: int = 50, steps: int = 50,
                        guidance_scale: float = 2.0, eta: float = 0.0, seed: int = 1, real_seed: int = 3,
                        progress: bool = True, sampler: str = "ddim",
                        peak_limit: float | None = None) -> dict[str, Any]:
    """Measure a drum model against held-out real hits, judged by ``classifier`` (the drum classifier).

    Generates ``n_per_class`` hits per class and returns a dict with:

    - ``class_accuracy`` (and ``class_accuracy_per_class``): share of generated hits the classifier
      labels as the class they were generated for; ``real_accuracy``: the same for real hits;
    - ``fd_generated``: Fréchet distance of the generated set to a held-out real set of equal size,
      ``fd_real_halves``: the distance between that real set and a second one (the yardstick: what
      sampling noise alone gives), and ``fd_ratio`` = generated / real-vs-real;
    - ``tail_db`` and ``tail_db_real``: per class, the median :func:`tail_level_db` of generated and real hits,
      and ``tail_gap_db``, the largest amount by which a class's generated tails are louder than real ones;
    - ``clipped``: the share of generated hits that reach full scale (|x| >= 0.999), clipped by the sampler
      (``peak_limit``, passed to :func:`generate_drums`, scales such hits down instead).

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    from course_lib.metrics import frechet_audio_distance

    names = _class_names(model)
    if list(getattr(classifier, "classes", [])) != names:
        raise CourseInputError(
            f"classifier: its classes {getattr(classifier, 'classes', None)} differ from the model's {names}; "
            "use course_lib.models.classifier.load_drum_classifier()."
        )
    n_per = check_positive_int(n_per_class, "n_per_class", minimum=2)
    rate = int(model.config.sample_rate)
    length = int(model.config.sample_length)
    gen_audio, gen_labels = generate_drums(model, n_per, steps, guidance_scale, eta, seed, progress=progress,
                                           sampler=sampler, peak_limit=peak_limit)
    real, real_labels = real_drums(2 * n_per, seed=real_seed, sample_rate=rate, length=length)
    half = len(real) // 2  # interleaved rows: each half has n_per hits of every class
    real_a, real_b = real[:half], real[half:]
    pred = classifier.predict(gen_audio, sample_rate=rate)
    real_pred = classifier.predict(real_a, sample_rate=rate)
    per_class = {c: float((pred[gen_labels == k] == k).float().mean()) for k, c in enumerate(names)}
    fd_gen = frechet_audio_distance(gen_audio, real_a, classifier, rate)
    fd_real = frechet_audio_distance(real_b, real_a, classifier, rate)
    tails, real_tails = tail_level_db(gen_audio), tail_level_db(real_a)
    tail_db = {c: float(tails[gen_labels == k].median()) for k, c in enumerate(names)}
    tail_db_real = {c: float(real_tails[real_labels[:half] == k].median()) for k, c in enumerate(names)}
    return {
        "class_accuracy": round(float((pred == gen_labels).float().mean()), 4),
        "class_accuracy_per_class": {k: round(v, 4) for k, v in per_class.items()},
        "real_accuracy": round(float((real_pred == real_labels[:half]).float().mean()), 4),
        "fd_generated": round(fd_gen, 3),
        "fd_real_halves": round(fd_real, 3),
        "fd_ratio": round(fd_gen / fd_real, 3) if fd_real > 0 else float("inf"),
        "tail_db": {c: round(v, 1) for c, v in tail_db.items()},
        "tail_db_real": {c: round(v, 1) for c, v in tail_db_real.items()},
        "tail_gap_db": round(max(tail_db[c] - tail_db_real[c] for c in names), 1),
        "clipped": round(float((gen_audio.abs().amax(dim=-1) >= 0.999).float().mean()), 4),
        "eval_samples": int(len(gen_audio)),
        "eval_steps": int(steps),
        "guidance_scale": float(guidance_scale),
        "eta": float(eta),
        "sampler": sampler,
        "peak_limit": peak_limit,
        "seed": int(seed),
        "real_seed": int(real_seed),
    }


def export_one_shots(audio: Any, folder: str | os.PathLike, names: Sequence[str] | None = None,
                     sample_rate: int = SAMPLE_RATE, target_rate: int = 44100, bit_depth: int = 24,
                     peak_db: float = -1.0) -> list[Path]:
    """Write hits (N, T) or one hit (T,) as WAV files a DAW takes: resampled to ``target_rate``
    (44.1 kHz), peak-normalised to ``peak_db`` dBFS, ``bit_depth``-bit PCM (24 by default).

    ``names`` gives the file stems (default ``hit_000`` ...); returns the paths written.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    from course_lib.audio import peak_normalise, resample, save_wav

    x = as_float_tensor(audio, "audio", min_ndim=1, max_ndim=2)
    if x.ndim == 1:
        x = x[None]
    if x.shape[0] == 0:
        raise CourseInputError("audio: no hits to export (got an empty batch).")
    if isinstance(names, str):
        names = [names]
    stems = [f"hit_{i:03d}" for i in range(x.shape[0])] if names is None else list(names)
    if len(stems) != x.shape[0]:
        raise CourseInputError(f"names: got {len(stems)} names for {x.shape[0]} hits; give one name per hit.")
    bad = [s for s in stems if not isinstance(s, str) or not s or any(ch in s for ch in "/\\:")]
    if bad:
        raise CourseInputError(f"names: {bad[0]!r} is not a usable file name (no slashes or colons).")
    if len({s.casefold() for s in stems}) != len(stems):  # "Kick" and "kick" are one file on macOS/Windows
        raise CourseInputError("names: two hits share a name; every file needs its own.")
    level = check_number(peak_db, "peak_db", high=0.0)
    if isinstance(bit_depth, bool) or bit_depth not in (16, 24, 32):
        raise CourseInputError(f"bit_depth: {bit_depth!r} is not supported; use 16, 24 (the default) or 32.")
    up = resample(x, check_sample_rate(sample_rate), check_sample_rate(target_rate, "target_rate"))
    for stem, hit in zip(stems, up):  # check every hit before writing any file
        if float(hit.abs().max()) < 1e-6:
            raise CourseInputError(f"audio: hit {stem!r} is silent; there is nothing to export.")
    out = prepare_output_dir(folder, "folder")
    paths = []
    for stem, hit in zip(stems, up):
        paths.append(save_wav(out / f"{stem}.wav", peak_normalise(hit, level), target_rate, bit_depth=bit_depth))
    return paths
