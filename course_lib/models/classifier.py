"""A small course-trained audio classifier, used as an embedding for Fréchet distances.

The model is a four-block CNN on log-mel spectrograms of 22 050 Hz mono audio. It was trained
(``scripts/train_style_classifier.py``) to tell apart the course-made music styles of
:data:`course_lib.synth.MUSIC_STYLES`; its penultimate layer (:meth:`StyleClassifier.embed`) is a
compact description of "what kind of music this sounds like", the same role the VGGish
embedding plays in the Fréchet Audio Distance (Kilgour et al., 2019).

- :class:`StyleClassifier`: the model, with :meth:`~StyleClassifier.embed`,
  :meth:`~StyleClassifier.predict`, :meth:`~StyleClassifier.predict_proba`,
  :meth:`~StyleClassifier.save_pretrained` and :meth:`~StyleClassifier.from_pretrained`
  (a ``config.json`` plus ``model.safetensors`` folder).
- :func:`load_style_classifier`: the checkpoint that ships in ``checkpoints/style-classifier``.
- :func:`log_mel_features`: the exact input features (so training and use cannot drift apart).

Any clip length from about 0.4 s up works: the network ends in a global average over time.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from course_lib.settings import make_generator
from course_lib.models.base import PretrainedModel
from course_lib.validate import CourseInputError, as_float_tensor, check_positive_int, check_sample_rate

__all__ = [
    "DEFAULT_CONFIG",
    "StyleClassifier",
    "log_mel_features",
    "load_style_classifier",
    "load_drum_classifier",
    "load_digit_classifier",
    "augment_delay_noise",
    "classification_accuracy",
    "fit_classifier",
]

DEFAULT_CONFIG: dict[str, Any] = {
    "model_type": "course-style-classifier",
    "sample_rate": 22050,
    "n_fft": 1024,
    "hop_length": 256,
    "n_mels": 64,
    "top_db": 80.0,
    "channels": [16, 32, 64, 96],
    "embed_dim": 96,
    "dropout": 0.2,
    "classes": ["hiphop", "techno", "ambient", "chiptune", "rock", "jazz"],
    "training": None,  # free-form notes written by the training script (data seeds, steps, accuracy)
}

_MIN_FRAMES = 16  # four 2x poolings need at least 16 frames to leave one


def _check_config(config: Any) -> dict[str, Any]:
    """Fill missing keys from DEFAULT_CONFIG and check the values that matter."""
    if not isinstance(config, dict):
        raise CourseInputError(f"config: expected a dict like DEFAULT_CONFIG, got {type(config).__name__}.")
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise CourseInputError(f"config: unknown key(s) {unknown}; the known keys are {sorted(DEFAULT_CONFIG)}.")
    cfg = {**DEFAULT_CONFIG, **config}
    check_sample_rate(cfg["sample_rate"], "config['sample_rate']")
    for key in ("n_fft", "hop_length", "n_mels", "embed_dim"):
        check_positive_int(cfg[key], f"config[{key!r}]")
    channels = cfg["channels"]
    if not isinstance(channels, (list, tuple)) or len(channels) != 4:
        raise CourseInputError(f"config['channels']: expected a list of 4 channel counts, got {channels!r}.")
    for c in channels:
        check_positive_int(c, "config['channels'][i]")
    classes = cfg["classes"]
    if (not isinstance(classes, (list, tuple)) or len(classes) < 2
            or not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes)):
        raise CourseInputError(f"config['classes']: expected at least 2 distinct class names, got {classes!r}.")
    if not (isinstance(cfg["dropout"], (int, float)) and 0.0 <= cfg["dropout"] < 1.0):
        raise CourseInputError(f"config['dropout']: expected a number in [0, 1), got {cfg['dropout']!r}.")
    if cfg["training"] is not None and not isinstance(cfg["training"], dict):
        raise CourseInputError(f"config['training']: expected a dict of notes or None, got {cfg['training']!r}.")
    cfg["channels"] = [int(c) for c in channels]
    cfg["classes"] = list(classes)
    return cfg


def log_mel_features(audio: Any, sample_rate: int = 22050, n_fft: int = 1024, hop_length: int = 256,
                     n_mels: int = 64, top_db: float = 80.0) -> torch.Tensor:
    """Audio (T,) or (N, T) -> normalised log-mel features (N, 1, n_mels, frames).

    Power mel spectrogram in dB relative to each clip's loudest bin (so the overall level does
    not matter), floored at ``-top_db`` and mapped to roughly [-1, 1] by ``(dB + 40) / 40``.
    """
    from course_lib.spectrogram import mel_spectrogram, power_to_db

    x = as_float_tensor(audio, "audio", min_ndim=1, max_ndim=2, min_length=n_fft)
    if x.ndim == 1:
        x = x[None]
    mel = mel_spectrogram(x, sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    db = power_to_db(mel, ref="max", top_db=top_db)
    return ((db + top_db / 2) / (top_db / 2))[:, None]


class StyleClassifier(PretrainedModel):
    """Log-mel CNN: 4 x (conv 3x3, batch norm, ReLU, 2x2 max-pool), time-frequency average, embedding, classes.

    ``forward`` takes features from :func:`log_mel_features` and returns logits; the audio-level
    methods (:meth:`embed`, :meth:`predict`, :meth:`predict_proba`) do the feature step for you.
    ``save_pretrained`` / ``from_pretrained`` come from :class:`~course_lib.models.base.PretrainedModel`.
    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = _check_config({} if config is None else dict(config))
        blocks: list[nn.Module] = []
        c_in = 1
        for c_out in self.config["channels"]:
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                       nn.MaxPool2d(2)]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.embedding = nn.Sequential(nn.Linear(c_in, self.config["embed_dim"]), nn.ReLU())
        self.dropout = nn.Dropout(self.config["dropout"])
        self.head = nn.Linear(self.config["embed_dim"], len(self.config["classes"]))

    @property
    def classes(self) -> list[str]:
        """The class names, in the order of the logits."""
        return list(self.config["classes"])

    @property
    def sample_rate(self) -> int:
        """The sample rate (Hz) the model expects."""
        return int(self.config["sample_rate"])

    def embed_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Features (N, 1, n_mels, frames) -> embeddings (N, embed_dim) (the penultimate layer)."""
        if feats.ndim != 4 or feats.shape[1] != 1 or feats.shape[2] != self.config["n_mels"]:
            raise CourseInputError(
                f"feats: expected shape (N, 1, {self.config['n_mels']}, frames), got {tuple(feats.shape)}; "
                "make them with log_mel_features(audio, ...) using the model's config."
            )
        if feats.shape[-1] < _MIN_FRAMES:
            raise CourseInputError(
                f"feats: {feats.shape[-1]} frames is too short; the model needs at least {_MIN_FRAMES} "
                f"(about {_MIN_FRAMES * self.config['hop_length'] / self.sample_rate:.2f} s of audio)."
            )
        h = self.features(feats).mean(dim=(2, 3))
        return self.embedding(h)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Features (N, 1, n_mels, frames) -> class logits (N, n_classes)."""
        return self.head(self.dropout(self.embed_features(feats)))

    def features_of(self, audio: Any, sample_rate: int | None = None) -> torch.Tensor:
        """Audio (T,) or (N, T) at the model's rate -> features (N, 1, n_mels, frames) on the model's device."""
        rate = self.sample_rate if sample_rate is None else sample_rate
        check_sample_rate(rate, "sample_rate", expected=self.sample_rate)
        min_len = max(self.config["n_fft"], _MIN_FRAMES * self.config["hop_length"])
        x = as_float_tensor(audio, "audio", min_ndim=1, max_ndim=2, min_length=min_len)
        device = next(self.parameters()).device
        c = self.config
        return log_mel_features(x.to(device), c["sample_rate"], c["n_fft"], c["hop_length"], c["n_mels"],
                                c["top_db"])

    def _batched(self, audio: Any, sample_rate: int | None, batch_size: int, fn: Any) -> torch.Tensor:
        batch_size = check_positive_int(batch_size, "batch_size")
        rate = self.sample_rate if sample_rate is None else sample_rate
        check_sample_rate(rate, "sample_rate", expected=self.sample_rate)
        min_len = max(self.config["n_fft"], _MIN_FRAMES * self.config["hop_length"])
        x = as_float_tensor(audio, "audio", min_ndim=1, max_ndim=2, min_length=min_len)
        if x.ndim == 1:
            x = x[None]
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = [fn(self.features_of(x[i:i + batch_size], rate)) for i in range(0, x.shape[0], batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out).cpu()

    def embed(self, audio: Any, sample_rate: int | None = None, batch_size: int = 64) -> torch.Tensor:
        """Audio (T,) or (N, T) -> embeddings (N, embed_dim), float32 on the CPU, in eval mode, no gradients."""
        return self._batched(audio, sample_rate, batch_size, self.embed_features)

    def predict_proba(self, audio: Any, sample_rate: int | None = None, batch_size: int = 64) -> torch.Tensor:
        """Audio (T,) or (N, T) -> class probabilities (N, n_classes); column k is ``classes[k]``."""
        return self._batched(audio, sample_rate, batch_size, lambda f: torch.softmax(self(f), dim=-1))

    def predict(self, audio: Any, sample_rate: int | None = None, batch_size: int = 64) -> torch.Tensor:
        """Audio (T,) or (N, T) -> the most likely class id per clip (N,) (``classes[id]`` is its name)."""
        return self.predict_proba(audio, sample_rate, batch_size).argmax(dim=-1)

    def config_to_dict(self) -> dict[str, Any]:
        """The config as saved in ``config.json`` (it is already a JSON-friendly dict)."""
        return dict(self.config)

    @classmethod
    def config_from_dict(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Check that a saved config is a style-classifier config; :class:`StyleClassifier` checks the rest."""
        if config.get("model_type") != DEFAULT_CONFIG["model_type"]:
            raise CourseInputError(
                f"config: it is not a {DEFAULT_CONFIG['model_type']!r} config (model_type "
                f"{config.get('model_type')!r})."
            )
        return config


def load_style_classifier(folder: str | os.PathLike | None = None, device: str | torch.device = "cpu"
                          ) -> StyleClassifier:
    """The course-trained music-style classifier that ships with the repository (or the one in ``folder``).

    Lessons 02 and 03 use its embedding to measure generated music with a Fréchet distance.

    Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
    """
    return StyleClassifier.load_shipped("style-classifier", folder, device)


def load_digit_classifier(folder: str | os.PathLike | None = None, device: str | torch.device = "cpu"
                          ) -> StyleClassifier:
    """The course-trained digit-word classifier (``synth.DIGIT_CLASSES``; 22 050 Hz clips of 0.74 s).

    Lesson 06 uses it as the judge of its generators: which word a generated clip sounds like, and
    its embedding for Fréchet distances between sets of clips.

    Taught in lesson 06 (notebooks/06_spectrogram_vae.ipynb).
    """
    return StyleClassifier.load_shipped("digit-classifier", folder, device)


def load_drum_classifier(folder: str | os.PathLike | None = None, device: str | torch.device = "cpu"
                         ) -> StyleClassifier:
    """The course-trained drum classifier (kick, snare, hihat, percussion; 22 050 Hz one-shots).

    Lesson 05 uses it to check that generated hits are of the class they were asked for, and its
    embedding for Fréchet distances between sets of one-shots.

    Taught in lesson 05 (notebooks/05_tiny_waveform_diffusion.ipynb).
    """
    return StyleClassifier.load_shipped("drum-classifier", folder, device)


def classification_accuracy(model: StyleClassifier, audio: Any, labels: torch.Tensor
                            ) -> tuple[float, dict[str, float]]:
    """The share of clips ``model`` labels correctly, overall and per class (``{class name: accuracy}``)."""
    pred = model.predict(audio)
    per_class = {name: float((pred[labels == k] == k).float().mean()) for k, name in enumerate(model.classes)}
    return float((pred == labels).float().mean()), per_class


def augment_delay_noise(audio: torch.Tensor, gen: torch.Generator, sample_rate: int = 22050,
                        max_delay_s: float = 0.02, snr_db: tuple[float, float] = (15.0, 60.0)) -> torch.Tensor:
    """Training augmentation for a judge: a random start delay and white noise at a random SNR, per clip.

    ``audio`` (N, T). Each clip is shifted later by 0 to ``max_delay_s`` seconds (zeros in front) and
    gets white noise ``snr_db[0]`` to ``snr_db[1]`` dB below its RMS, so a classifier does not hinge on
    exact timing or a perfectly clean background, details a generator may get slightly wrong.
    """
    n, length = audio.shape
    max_delay = int(max_delay_s * sample_rate)
    delays = torch.randint(0, max_delay + 1, (n,), generator=gen)
    idx = torch.arange(length)[None] - delays[:, None]
    shifted = torch.where(idx >= 0, torch.gather(audio, 1, idx.clamp_min(0)), torch.zeros(()))
    low, high = snr_db
    snr = low + (high - low) * torch.rand(n, 1, generator=gen)
    rms = shifted.pow(2).mean(dim=1, keepdim=True).sqrt()
    noise = torch.randn(shifted.shape, generator=gen) * rms * 10 ** (-snr / 20)
    return shifted + noise


def fit_classifier(model: StyleClassifier, n_items: int, labels: torch.Tensor, make_batch: Any, epochs: int,
                   batch_size: int = 32, lr: float = 3e-3, weight_decay: float = 1e-2, seed: int = 0,
                   evaluate: Any = None, desc: str = "training") -> float:
    """The training loop behind the shipped classifiers; returns the final smoothed loss.

    AdamW with a one-cycle schedule (10 % warm-up), cross-entropy with label smoothing 0.05. Each
    epoch shuffles ``range(n_items)`` with a generator seeded by ``seed``; ``make_batch(idx, gen)``
    turns a batch of item indices into model features, drawing any augmentation from the same
    generator, so a run is reproducible. ``evaluate(model) -> float`` is shown after every epoch.
    """
    import math

    from course_lib.settings import progress as progress_bar

    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = math.ceil(n_items / batch_size) * epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.1)
    gen = make_generator(seed)
    loss_ema = float("nan")
    bar = progress_bar(range(epochs), desc=desc)
    for _ in bar:
        model.train()
        order = torch.randperm(n_items, generator=gen)
        for i in range(0, n_items, batch_size):
            idx = order[i:i + batch_size]
            loss = nn.functional.cross_entropy(model(make_batch(idx, gen)), labels[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            value = float(loss.detach())
            loss_ema = value if math.isnan(loss_ema) else 0.9 * loss_ema + 0.1 * value
        if evaluate is not None:
            bar.set_postfix(loss=f"{loss_ema:.3f}", val=f"{evaluate(model):.3f}")
    model.eval()
    return loss_ema
