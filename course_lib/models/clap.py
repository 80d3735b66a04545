"""CLAP as a judge of real music: audio embeddings for Fréchet distances (online only).

The course's style classifier (:mod:`course_lib.models.classifier`) was trained on course-made synth
music, so on real recordings it is out of its domain. CLAP (Wu et al., 2023; ``laion/clap-htsat-unfused``)
was trained on hundreds of thousands of real recordings with their captions; its audio embedding plays
the role the VGGish embedding plays in the Fréchet Audio Distance.

- :class:`ClapJudge`: :meth:`~ClapJudge.embed` turns clips into (N, D) embeddings, with the same
  interface as :meth:`StyleClassifier.embed <course_lib.models.classifier.StyleClassifier.embed>`, so
  ``metrics.frechet_audio_distance(a, b, judge, sample_rate=...)`` works with either judge.
- :func:`load_clap_judge`: the model from the Hub. There is no offline stand-in: offline, judge with
  :func:`course_lib.models.classifier.load_style_classifier`.

transformers is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from course_lib import settings
from course_lib.audio import resample
from course_lib.errors import CourseInputError
from course_lib.hub import resolve_online_only
from course_lib.validate import as_float_tensor, check_positive_int, check_sample_rate

__all__ = ["CLAP_HUB_ID", "ClapJudge", "load_clap_judge"]

CLAP_HUB_ID = "laion/clap-htsat-unfused"


class ClapJudge:
    """A CLAP model and its feature extractor, used for its audio embedding only.

    ``model`` is a transformers ``ClapModel`` and ``feature_extractor`` its ``ClapFeatureExtractor``
    (what :func:`load_clap_judge` loads). The model's rate (48 kHz for LAION's CLAP) and clip length
    (10 s) are read from the feature extractor.
    """

    def __init__(self, model: Any, feature_extractor: Any) -> None:
        if not callable(getattr(model, "get_audio_features", None)):
            raise CourseInputError(f"model: expected a transformers ClapModel, got {type(model).__name__}.")
        if not callable(feature_extractor) or not isinstance(getattr(feature_extractor, "sampling_rate", None), int):
            raise CourseInputError(
                "feature_extractor: expected a transformers ClapFeatureExtractor, got "
                f"{type(feature_extractor).__name__}."
            )
        self.model = model.eval()
        self.feature_extractor = feature_extractor

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) the model listens at; :meth:`embed` resamples to it."""
        return int(self.feature_extractor.sampling_rate)

    @property
    def max_samples(self) -> int:
        """The longest clip the model sees at once, in samples at :attr:`sample_rate` (10 s for LAION's CLAP)."""
        return int(self.feature_extractor.nb_max_samples)

    @property
    def embed_dim(self) -> int:
        """D, the size of one embedding (the model's projection size)."""
        return int(self.model.config.projection_dim)

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return next(self.model.parameters()).device

    def embed(self, audio: Any, sample_rate: int, batch_size: int = 16) -> torch.Tensor:
        """Mono audio (T,) or (N, T) at ``sample_rate`` -> embeddings (N, D), float32 on the CPU.

        Each clip is resampled to the model's rate; a clip longer than the model's 10 s is cut to its
        middle 10 s (the feature extractor would pick a random crop), a shorter one is repeated to fill
        them (the extractor's ``repeatpad``). Eval mode, no gradients: the same clip always gives the
        same embedding. The embeddings are L2-normalised, as CLAP makes them.
        """
        rate = check_sample_rate(sample_rate)
        batch_size = check_positive_int(batch_size, "batch_size")
        min_length = math.ceil(self.feature_extractor.fft_window_size * rate / self.sample_rate)
        x = as_float_tensor(audio, "audio", min_ndim=1, max_ndim=2, min_length=min_length)
        x = (x[None] if x.ndim == 1 else x).detach().cpu()
        keep = math.ceil(self.max_samples * rate / self.sample_rate)  # the middle 10 s, at the input's rate
        start = max((x.shape[-1] - keep) // 2, 0)
        x = x[:, start:start + keep]

        out = []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for i in range(0, x.shape[0], batch_size):
                    out.append(self._embed_batch(resample(x[i:i + batch_size], rate, self.sample_rate)))
        finally:
            self.model.train(was_training)
        return torch.cat(out)

    def _embed_batch(self, clips: torch.Tensor) -> torch.Tensor:
        """Clips (B, T) at the model's rate -> embeddings (B, D) on the CPU."""
        clips = clips[:, :self.max_samples]
        features = self.feature_extractor(list(clips.numpy()), sampling_rate=self.sample_rate, return_tensors="pt")
        # No clip is longer than the model's window now; saying so keeps a fused model from picking one at random.
        is_longer = torch.zeros(clips.shape[0], 1, dtype=torch.bool, device=self.device)
        weights = next(self.model.parameters())
        inputs = features["input_features"].to(weights.device, dtype=weights.dtype)
        out = self.model.get_audio_features(input_features=inputs, is_longer=is_longer)
        emb = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 4 / 5
        return emb.float().cpu()


def load_clap_judge(hub_id: str = CLAP_HUB_ID, device: str | torch.device | None = None) -> ClapJudge:
    """LAION's CLAP from the Hub as a judge of real music (``ClapModel`` + ``ClapFeatureExtractor``).

    Online only: the course ships no CLAP stand-in, so offline this raises :class:`CourseInputError`
    (from :func:`course_lib.hub.resolve_pretrained`); offline, use
    :func:`~course_lib.models.classifier.load_style_classifier`. ``device`` defaults to
    :func:`course_lib.settings.device`.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    source = resolve_online_only(
        hub_id, "Offline, judge with course_lib.models.classifier.load_style_classifier() instead.")
    dev = settings.device(None if device is None else str(device))

    from transformers import ClapFeatureExtractor, ClapModel

    model = ClapModel.from_pretrained(source).to(dev).eval()
    feature_extractor = ClapFeatureExtractor.from_pretrained(source)
    return ClapJudge(model, feature_extractor)
