"""A small CLAP-style text–audio embedding, trained contrastively on course-made music and its captions.

Two encoders map a caption and a mel image into one shared space; after training, the cosine
similarity of the two embeddings (the *CLAP score*) is high when the caption describes the clip.
Lesson 07 uses it twice: its per-token text states condition the latent diffusion UNet by
cross-attention, and its score measures how well a generated clip matches its prompt.

- :class:`TextAudioModel`: the text encoder (word embeddings, a 2-layer transformer) and the audio
  encoder (a 4-block CNN on 64 x 64 mel images), with :meth:`~TextAudioModel.text_states`,
  :meth:`~TextAudioModel.embed_text`, :meth:`~TextAudioModel.embed_mel` and
  :meth:`~TextAudioModel.clap_score`; saved as ``config.json`` + ``model.safetensors`` +
  ``tokenizer.json`` (a word-level ``tokenizers`` tokenizer).
- :func:`make_word_tokenizer`: the word-level tokenizer from a word list.
- :func:`contrastive_loss`: the symmetric InfoNCE loss of CLIP/CLAP.
- :func:`load_text_audio_model`: the checkpoint ``checkpoints/text-audio-embedding``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.errors import CourseInputError
from course_lib.io import atomic_write, check_file
from course_lib.models.base import PretrainedModel

__all__ = ["DEFAULT_CONFIG", "TextAudioModel", "make_word_tokenizer", "contrastive_loss", "load_text_audio_model",
           "TOKENIZER_NAME", "PAD", "UNK"]

TOKENIZER_NAME = "tokenizer.json"
PAD, UNK = "[PAD]", "[UNK]"

DEFAULT_CONFIG: dict[str, Any] = {
    "model_type": "course-text-audio",
    "vocab_size": 256,
    "max_tokens": 16,  # captions are cut to this many words (the course's captions have at most 12)
    "text_width": 64,  # the per-token states' width: the UNet's cross_attention_dim
    "text_layers": 2,
    "text_heads": 4,
    "audio_channels": [16, 32, 64, 96],
    "n_mels": 64,  # mel image height; the width (frames) may vary, the CNN averages over time
    "embed_dim": 64,  # the shared space
    "mel": None,  # the course_lib.Mel settings of the images (recorded, for the lesson)
    "training": None,  # free-form notes from the training script
}


def _check_config(config: Any) -> dict[str, Any]:
    """Fill missing keys from DEFAULT_CONFIG and refuse unknown ones."""
    if not isinstance(config, dict):
        raise CourseInputError(f"config: expected a dict like DEFAULT_CONFIG, got {type(config).__name__}.")
    unknown = sorted(set(config) - set(DEFAULT_CONFIG) - {"_class_name"})
    if unknown:
        raise CourseInputError(f"config: unknown key(s) {unknown}; the known keys are {sorted(DEFAULT_CONFIG)}.")
    cfg = {**DEFAULT_CONFIG, **{k: v for k, v in config.items() if k != "_class_name"}}
    if cfg["text_width"] % cfg["text_heads"]:
        raise CourseInputError(f"config: text_width {cfg['text_width']} must be a multiple of text_heads "
                               f"{cfg['text_heads']}.")
    return cfg


def make_word_tokenizer(words: list[str]) -> Any:
    """A lower-casing word-level ``tokenizers.Tokenizer``: id 0 is ``[PAD]``, 1 ``[UNK]``, then ``words``.

    Words and punctuation are split apart (``"fast, loud"`` -> ``fast , loud``), so a caption typed
    with commas still finds its words.
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab = {PAD: 0, UNK: 1}
    for w in words:
        w = w.lower()
        if w and w not in vocab:
            vocab[w] = len(vocab)
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def contrastive_loss(text_emb: torch.Tensor, audio_emb: torch.Tensor, logit_scale: torch.Tensor,
                     same: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of unit-norm embedding pairs (row i of each belongs together).

    ``same`` (B, B, bool), optional, marks pairs that are equally right (two captions of the same
    style): they share the target probability instead of counting as negatives.
    """
    logits = logit_scale.exp() * text_emb @ audio_emb.T
    target = torch.eye(len(logits), device=logits.device) if same is None else same.float()
    target = target / target.sum(dim=1, keepdim=True)
    loss_t = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_a = -(target.T * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (loss_t + loss_a) / 2


class TextAudioModel(PretrainedModel):
    """A text encoder and a mel-image encoder that embed captions and clips into one space.

    Mel images are (N, 1, n_mels, frames) in [-1, 1] (``course_lib.Mel`` bytes / 127.5 - 1).
    """

    def __init__(self, config: dict[str, Any] | None = None, tokenizer: Any = None) -> None:
        super().__init__()
        self.config = _check_config({} if config is None else dict(config))
        c = self.config
        self.tokenizer = tokenizer
        self.token_embedding = nn.Embedding(c["vocab_size"], c["text_width"], padding_idx=0)
        self.position_embedding = nn.Parameter(torch.zeros(c["max_tokens"], c["text_width"]))
        layer = nn.TransformerEncoderLayer(c["text_width"], c["text_heads"], 2 * c["text_width"], dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.text_transformer = nn.TransformerEncoder(layer, c["text_layers"], enable_nested_tensor=False)
        self.text_norm = nn.LayerNorm(c["text_width"])
        self.text_projection = nn.Linear(c["text_width"], c["embed_dim"])
        blocks: list[nn.Module] = []
        c_in = 1
        for c_out in c["audio_channels"]:
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(), nn.MaxPool2d(2)]
            c_in = c_out
        self.audio_cnn = nn.Sequential(*blocks)
        self.audio_projection = nn.Sequential(nn.Linear(2 * c_in, c["embed_dim"]), nn.SiLU(),
                                              nn.Linear(c["embed_dim"], c["embed_dim"]))
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07), as CLIP starts

    # -- text ----------------------------------------------------------------------------

    def tokenize(self, texts: str | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions -> token ids (N, max_tokens) and a mask (N, max_tokens), 1 on words, 0 on padding."""
        if self.tokenizer is None:
            raise CourseInputError("tokenize: this model has no tokenizer; load it with from_pretrained(folder), "
                                   "or build it with TextAudioModel(config, make_word_tokenizer(words)).")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise CourseInputError(f"texts: expected a caption or a list of captions, got {type(texts).__name__}.")
        n = self.config["max_tokens"]
        ids = torch.zeros(len(texts), n, dtype=torch.int64)
        for i, enc in enumerate(self.tokenizer.encode_batch(list(texts))):
            row = enc.ids[:n]
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.int64)
        return ids, (ids != 0).to(torch.float32)

    def _device(self) -> torch.device:
        return self.position_embedding.device

    def text_states(self, texts: str | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token states (N, max_tokens, text_width), zero on padding, and the mask: what a UNet attends to.

        The empty caption ``""`` gives all zeros: the "no text" condition of classifier-free guidance.
        """
        ids, mask = self.tokenize(texts)
        ids, mask = ids.to(self._device()), mask.to(self._device())
        h = self.token_embedding(ids) + self.position_embedding[None]
        h = self.text_transformer(h, src_key_padding_mask=(mask == 0) & (mask.sum(1, keepdim=True) > 0))
        return self.text_norm(h) * mask[..., None], mask

    def embed_text(self, texts: str | list[str]) -> torch.Tensor:
        """Captions -> unit-norm embeddings (N, embed_dim): the projected mean of the token states."""
        h, mask = self.text_states(texts)
        pooled = h.sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
        return F.normalize(self.text_projection(pooled), dim=-1)

    # -- audio ---------------------------------------------------------------------------

    def embed_mel(self, images: torch.Tensor) -> torch.Tensor:
        """Mel images (N, 1, n_mels, frames) in [-1, 1] -> unit-norm embeddings (N, embed_dim)."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1:3] != (1, self.config["n_mels"]):
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise CourseInputError(f"images: expected a tensor (N, 1, {self.config['n_mels']}, frames) in [-1, 1], "
                                   f"got {got}; make it with course_lib.Mel(...).audio_to_images(audio) / 127.5 - 1.")
        if images.shape[-1] < 16:
            raise CourseInputError(f"images: {images.shape[-1]} frames is too short; the encoder needs at least 16.")
        h = self.audio_cnn(images.to(self._device(), torch.float32))
        h = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return F.normalize(self.audio_projection(h), dim=-1)

    def clap_score(self, texts: str | list[str], images: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of caption i and mel image i (N,): the CLAP score, in [-1, 1]."""
        t, a = self.embed_text(texts), self.embed_mel(images)
        if len(t) != len(a):
            raise CourseInputError(f"texts and images: {len(t)} captions for {len(a)} images; give one per image.")
        return (t * a).sum(-1)

    # -- saving --------------------------------------------------------------------------

    def save_pretrained(self, folder: str | os.PathLike, dtype: str = "float32") -> Path:
        """``config.json`` + ``model.safetensors`` (via PretrainedModel) + ``tokenizer.json``, each atomic."""
        out = super().save_pretrained(folder, dtype)
        if self.tokenizer is not None:
            atomic_write(out / TOKENIZER_NAME, lambda tmp: self.tokenizer.save(str(tmp)))
        return out

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device | None = None
                        ) -> "TextAudioModel":
        """The model in ``folder`` with its tokenizer, in eval mode."""
        from tokenizers import Tokenizer

        model = super().from_pretrained(folder, device)
        path = check_file(Path(folder) / TOKENIZER_NAME, "folder")
        model.tokenizer = Tokenizer.from_file(str(path))
        return model.eval()

    def config_to_dict(self) -> dict[str, Any]:
        """The config as saved in ``config.json``."""
        return dict(self.config)

    @classmethod
    def config_from_dict(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Check that a saved config is this model's."""
        if config.get("model_type") != DEFAULT_CONFIG["model_type"]:
            raise CourseInputError(f"config: it is not a {DEFAULT_CONFIG['model_type']!r} config (model_type "
                                   f"{config.get('model_type')!r}).")
        return {k: v for k, v in config.items() if k != "_class_name"}


def load_text_audio_model(folder: str | os.PathLike | None = None, device: str | torch.device = "cpu"
                          ) -> TextAudioModel:
    """The course-trained text–audio embedding (``checkpoints/text-audio-embedding``), or the one in ``folder``.

    Taught in lesson 07.
    """
    return TextAudioModel.load_shipped("text-audio-embedding", folder, device)
