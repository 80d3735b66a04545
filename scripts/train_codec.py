"""Train the course's small EnCodec on course-made music and ship it to checkpoints/course-encodec.

    python scripts/train_codec.py                       # the shipped checkpoint (about 16 min on 2 CPU cores)
    python scripts/train_codec.py --out course_data/codec --minutes 1 --n-train 4   # a smoke run

The model is transformers' ``EncodecModel`` (SEANet encoder and decoder with an LSTM, residual vector
quantizer) at a small size: 22 050 Hz mono, hop 441 samples (50 frames per second, as musicgen-small),
4 codebooks of 512 codes. ``config.target_bandwidths`` = 0.45, 0.9 and 1.8 kbit/s selects 1, 2 or 4
codebooks: ``model.encode(audio, bandwidth=0.9)``.

Training (no adversary, like EnCodec's "no discriminator" ablation): random 0.5 s crops of course-made
music in six styles; loss = 0.1 x time-domain L1 + multi-resolution spectral loss (L1 on log-mel and
log-STFT magnitudes, spectral convergence; n_fft 256-2048) + 0.25 x commitment. transformers keeps the codebooks as
buffers and has no training code for them, so this script trains them as EnCodec does: k-means
initialisation, exponential-moving-average updates and replacement of dead codes by recent encoder
outputs; the encoder gets its gradient through the straight-through estimator. Every step uses 1, 2
or 4 codebooks at random (quantizer dropout) so that every bandwidth decodes well.

Measured on held-out clips and written to the model card: spectral convergence and mel distance at
1, 2 and 4 codebooks with their bitrates, and how often the course's style classifier still
recognises the style of the reconstruction. Training stops after ``--steps`` steps or ``--minutes``
minutes, whichever comes first (with the time limit the result depends on the machine's speed; the
card records the steps actually run).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from _course_music import (BITS_PER_CODE, CLIP_SECONDS, CODEBOOK_SIZE, FRAME_RATE, HELD_OUT_SEED0, NUM_CODEBOOKS,
                           SAMPLE_RATE, TRAIN_SEED0, UPSAMPLING, folder_megabytes, music_set,
                           reconstruction_metrics, save_pretrained_atomically)
from course_lib.io import write_json
from course_lib.models.classifier import load_style_classifier
from course_lib.models.release import command_line, training_arguments, write_model_card
from course_lib.spectrogram import mel_filterbank
from course_lib.synth import MUSIC_STYLES

CODEBOOK_CHOICES = (1, 2, 4)  # the bandwidths the model card reports, also the quantizer dropout choices
CODEBOOK_WEIGHTS = (0.25, 0.25, 0.5)
MEL_SCALES = ((256, 32), (512, 64), (1024, 64), (2048, 80))  # (n_fft, n_mels) of the spectral losses


def bandwidth_kbps(n_codebooks: int) -> float:
    """The bitrate of ``n_codebooks`` codebooks in kbit/s: frames/s x codebooks x bits per code."""
    return round(FRAME_RATE * n_codebooks * BITS_PER_CODE / 1000, 3)


def codec_config(target_bandwidths: list[float] | None = None, num_filters: int = 8) -> Any:
    """The course codec's ``EncodecConfig``; ``target_bandwidths`` default: 1, 2 and 4 codebooks."""
    from transformers import EncodecConfig

    bands = target_bandwidths or [bandwidth_kbps(n) for n in CODEBOOK_CHOICES]
    config = EncodecConfig(
        sampling_rate=SAMPLE_RATE, audio_channels=1, target_bandwidths=bands, hidden_size=64, num_filters=num_filters,
        num_residual_layers=1, upsampling_ratios=UPSAMPLING, num_lstm_layers=1, codebook_size=CODEBOOK_SIZE,
        codebook_dim=64, use_causal_conv=False, norm_type="weight_norm", normalize=False, chunk_length_s=None,
        overlap=None,
    )
    if config.frame_rate != FRAME_RATE or config.num_quantizers != NUM_CODEBOOKS:
        raise RuntimeError(f"codec config: {config.frame_rate} frames/s and {config.num_quantizers} quantizers")
    return config


@torch.no_grad()
def data_dependent_init(model: Any, x: torch.Tensor) -> None:
    """Zero the convolutions' biases and scale each one's weight-norm gain so its output has unit spread on ``x``.

    With transformers' initialisation the input-dependent part of the signal halves at every layer
    (1e-6 of the output after encoder and decoder, measured) while the biases pass through, so the
    network starts out ignoring its input and the spectral losses settle on one average output for
    every clip. Rescaling layer by layer on a real batch (as in LSUV initialisation) fixes that; the
    last layer of the decoder is set to audio scale (0.1).
    """
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))]
    last = model.decoder.layers[-1].conv

    def rescale(module: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        factor = (0.1 if module is last else 1.0) / float(output.std().clamp_min(1e-8))
        module.parametrizations.weight.original0.mul_(factor)
        return output * factor

    for conv in convs:
        if conv.bias is not None:
            conv.bias.zero_()
    handles = [conv.register_forward_hook(rescale) for conv in convs]
    try:
        model.decoder(model.encoder(x))
    finally:
        for handle in handles:
            handle.remove()


# ---------------------------------------------------------------------------------------------- quantizer


class CodebookTrainer:
    """Trains the buffers of transformers' residual vector quantizer: k-means start, EMA updates, dead codes.

    ``quantize(z, n_q)`` takes encoder outputs (B, D, T), quantizes them with the first ``n_q``
    codebooks and returns the straight-through quantized tensor, the commitment loss and the codes.
    In training mode each codebook used moves towards the mean of the vectors assigned to it.
    """

    def __init__(self, quantizer: torch.nn.Module, decay: float = 0.97, dead_fraction: float = 0.03,
                 generator: torch.Generator | None = None) -> None:
        self.books = [layer.codebook for layer in quantizer.layers]
        self.decay = decay
        self.dead_fraction = dead_fraction  # a code is dead when used less than this share of the average
        self.generator = generator

    @staticmethod
    def _nearest(x: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
        dist = x.pow(2).sum(1, keepdim=True) - 2 * x @ embed.t() + embed.pow(2).sum(1)[None]
        return dist.argmin(dim=1)

    @torch.no_grad()
    def kmeans_init(self, z: torch.Tensor, iterations: int = 10) -> None:
        """Set every codebook by k-means on the residuals of ``z`` (B, D, T) left by the codebooks before it."""
        residual = z.transpose(1, 2).reshape(-1, z.shape[1])
        for book in self.books:
            k = book.embed.shape[0]
            pick = torch.randperm(len(residual), generator=self.generator)[:k]
            if len(pick) < k:
                raise ValueError(f"k-means needs at least {k} vectors, got {len(residual)}")
            centres = residual[pick].clone()
            for _ in range(iterations):
                idx = self._nearest(residual, centres)
                counts = torch.bincount(idx, minlength=k).float()
                sums = torch.zeros_like(centres).index_add_(0, idx, residual)
                used = counts > 0
                centres[used] = sums[used] / counts[used, None]
            book.embed.copy_(centres)
            book.embed_avg.copy_(centres)
            book.cluster_size.fill_(1.0)
            residual = residual - centres[self._nearest(residual, centres)]

    @torch.no_grad()
    def _update(self, book: Any, x: torch.Tensor, idx: torch.Tensor) -> None:
        k = book.embed.shape[0]
        counts = torch.bincount(idx, minlength=k).float()
        sums = torch.zeros_like(book.embed).index_add_(0, idx, x)
        book.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        book.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = book.cluster_size.sum()
        smoothed = (book.cluster_size + 1e-5) / (total + k * 1e-5) * total
        book.embed.copy_(book.embed_avg / smoothed[:, None])
        dead = book.cluster_size < self.dead_fraction * total / k
        n_dead = int(dead.sum())
        if n_dead:  # restart unused codes on random vectors of this batch
            pick = torch.randint(0, len(x), (n_dead,), generator=self.generator)
            book.embed[dead] = x[pick]
            book.embed_avg[dead] = x[pick]
            book.cluster_size[dead] = total / k

    def quantize(self, z: torch.Tensor, n_q: int, train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(straight-through quantized (B, D, T), commitment loss, codes (n_q, B, T))."""
        b, d, t = z.shape
        residual = z.transpose(1, 2).reshape(-1, d)
        total = torch.zeros_like(residual)
        commit = z.new_zeros(())
        codes = []
        for book in self.books[:n_q]:
            idx = self._nearest(residual.detach(), book.embed)
            if train:
                self._update(book, residual.detach(), idx)
            q = book.embed[idx].detach()
            commit = commit + F.mse_loss(residual, q)
            total = total + q
            residual = residual - q
            codes.append(idx.view(b, t))
        flat = z.transpose(1, 2).reshape(-1, d)
        straight = flat + (total - flat).detach()
        return straight.view(b, t, d).transpose(1, 2), commit, torch.stack(codes)


# ---------------------------------------------------------------------------------------------- losses


class SpectralLoss(torch.nn.Module):
    """Multi-resolution spectral loss, averaged over the scales of ``MEL_SCALES``.

    Per scale: L1 between log10 mel magnitudes, L1 between log10 STFT magnitudes and the spectral
    convergence of the STFT magnitudes. Magnitudes are divided by the window's sum (a full-scale sine
    peaks at 0.5) and floored at 1e-5 (-100 dB) before the logs, so quiet bins do not dominate.
    """

    def __init__(self) -> None:
        super().__init__()
        for n_fft, n_mels in MEL_SCALES:
            self.register_buffer(f"mel_{n_fft}", mel_filterbank(SAMPLE_RATE, n_fft, n_mels, norm=None).float())
            self.register_buffer(f"win_{n_fft}", torch.hann_window(n_fft))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = x.new_zeros(())
        for n_fft, _ in MEL_SCALES:
            win = getattr(self, f"win_{n_fft}")
            fb = getattr(self, f"mel_{n_fft}")
            mx = torch.stft(x, n_fft, n_fft // 4, window=win, return_complex=True).abs() / win.sum()
            my = torch.stft(y, n_fft, n_fft // 4, window=win, return_complex=True).abs() / win.sum()
            loss = loss + F.l1_loss(torch.log10((fb @ mx).clamp_min(1e-5)), torch.log10((fb @ my).clamp_min(1e-5)))
            loss = loss + F.l1_loss(torch.log10(mx.clamp_min(1e-5)), torch.log10(my.clamp_min(1e-5)))
            loss = loss + torch.linalg.norm(mx - my) / torch.linalg.norm(mx).clamp_min(1e-8)
        return loss / len(MEL_SCALES)


class BandEnergyLoss(torch.nn.Module):
    """L1 between log band energies (64 mel bands, n_fft 1024) pooled over 8 frames (93 ms): level, not detail."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("fb", mel_filterbank(SAMPLE_RATE, 1024, 64, norm=None).float())
        self.register_buffer("win", torch.hann_window(1024))

    def energies(self, x: torch.Tensor) -> torch.Tensor:
        power = torch.stft(x, 1024, 256, window=self.win, return_complex=True).abs().pow(2) / self.win.sum() ** 2
        return torch.log10(F.avg_pool1d(self.fb @ power, 8, 4).clamp_min(1e-9))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self.energies(y), self.energies(x))


class STFTDiscriminator(torch.nn.Module):
    """A small discriminator on the complex STFT (real and imaginary parts as two channels), as in EnCodec's
    multi-scale STFT discriminator but narrower; returns its logits and the features of every layer."""

    def __init__(self, n_fft: int, channels: int = 16) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("win", torch.hann_window(n_fft))
        conv = torch.nn.Conv2d
        self.convs = torch.nn.ModuleList([conv(2, channels, (3, 9), padding=(1, 4))] + [
            conv(channels, channels, (3, 9), stride=(1, 2), padding=(1, 4)) for _ in range(3)] + [
            conv(channels, channels, 3, padding=1)])
        self.out = conv(channels, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(x, self.n_fft, self.n_fft // 4, window=self.win, return_complex=True)
        h = torch.stack([spec.real, spec.imag], 1).transpose(2, 3)  # (B, 2, frames, bins)
        features = []
        for layer in self.convs:
            h = F.leaky_relu(layer(h), 0.2)
            features.append(h)
        return self.out(h), features


class Adversary:
    """Three STFT discriminators (n_fft 512, 1024, 2048) with hinge losses and feature matching."""

    def __init__(self) -> None:
        self.discs = torch.nn.ModuleList([STFTDiscriminator(n) for n in (512, 1024, 2048)])
        self.opt = torch.optim.AdamW(self.discs.parameters(), lr=3e-4, betas=(0.5, 0.9))

    def generator_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Hinge loss of the fakes ``y`` plus relative L1 between the real and fake features."""
        total = x.new_zeros(())
        for disc in self.discs:
            logits, fake = disc(y)
            with torch.no_grad():
                _, real = disc(x)
            match = sum(F.l1_loss(f, r) / (r.abs().mean() + 1e-5) for f, r in zip(fake, real)) / len(fake)
            total = total + F.relu(1 - logits).mean() + match
        return total / len(self.discs)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One discriminator update on real ``x`` and (detached) fake ``y``; returns its loss."""
        loss = sum(F.relu(1 - d(x)[0]).mean() + F.relu(1 + d(y.detach())[0]).mean() for d in self.discs)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss) / len(self.discs)


# ---------------------------------------------------------------------------------------------- training


def random_crops(audio: torch.Tensor, batch: int, length: int, gen: torch.Generator,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
    """``batch`` random crops of ``length`` samples (B, 1, length) from random clips, random gain 0.5-1.

    ``weights`` (N,): how often each clip is drawn, relative to the others (default: all alike).
    """
    if weights is None:
        clip = torch.randint(0, audio.shape[0], (batch,), generator=gen)
    else:
        clip = torch.multinomial(weights, batch, replacement=True, generator=gen)
    start = torch.randint(0, audio.shape[1] - length + 1, (batch,), generator=gen)
    idx = start[:, None] + torch.arange(length)[None]
    crops = torch.gather(audio[clip], 1, idx)
    gain = 0.5 + 0.5 * torch.rand(batch, 1, generator=gen)
    return (crops * gain)[:, None]


def train_codec(model: Any, audio: torch.Tensor, args: argparse.Namespace,
                weights: torch.Tensor | None = None) -> dict[str, Any]:
    """Train ``model`` in place on ``audio`` (N, T), clip ``i`` drawn in proportion to ``weights[i]``;
    return the loss log and the steps and seconds run."""
    gen = torch.Generator().manual_seed(args.seed)
    hop = SAMPLE_RATE // FRAME_RATE
    crop = int(SAMPLE_RATE * args.crop_seconds) // hop * hop
    trainer = CodebookTrainer(model.quantizer, generator=gen)
    spectral = SpectralLoss()
    band = BandEnergyLoss() if args.loss == "band" else None
    adversary = Adversary() if args.loss == "adversarial" else None
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.8, 0.99), weight_decay=0.0)
    model.train()
    if not args.init:  # a fresh codec; a fine-tuned one keeps its weights and codebooks
        data_dependent_init(model, random_crops(audio, 4 * args.batch_size, crop, gen))
        with torch.no_grad():  # k-means on the untrained encoder's outputs of a few batches
            z0 = torch.cat([model.encoder(random_crops(audio, args.batch_size, crop, gen)) for _ in range(4)])
            trainer.kmeans_init(z0)
    log: list[dict[str, float]] = []
    losses: list[float] = []
    start = time.time()
    budget = args.minutes * 60
    step = 0
    while step < args.steps and time.time() - start < budget:
        progress = max(step / args.steps, (time.time() - start) / budget)
        lr = args.lr * (min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))))
        for group in opt.param_groups:
            group["lr"] = lr
        x = random_crops(audio, args.batch_size, crop, gen, weights)
        n_q = CODEBOOK_CHOICES[int(torch.multinomial(torch.tensor(CODEBOOK_WEIGHTS), 1, generator=gen))]
        z = model.encoder(x)
        zq, commit, _ = trainer.quantize(z, n_q, train=True)
        y = model.decoder(zq)[..., : x.shape[-1]]
        l1 = F.l1_loss(y, x)
        spec = spectral(x[:, 0], y[:, 0])
        if band is not None:  # band energies instead of the waveform L1
            loss = spec + 2.0 * band(x[:, 0], y[:, 0]) + 0.25 * commit
        elif adversary is not None:
            loss = 0.1 * l1 + spec + adversary.generator_loss(x[:, 0], y[:, 0]) + 0.25 * commit
        else:
            loss = 0.1 * l1 + spec + 0.25 * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if adversary is not None:
            adversary.step(x[:, 0], y[:, 0])
        losses.append(float(loss.detach()))
        step += 1
        if step % 50 == 0 or step == 1:
            entry = {"step": step, "seconds": round(time.time() - start, 1), "loss": round(losses[-1], 4),
                     "l1": round(l1.item(), 4), "spectral": round(spec.item(), 4), "commit": round(commit.item(), 4),
                     "n_q": n_q, "lr": round(lr, 6)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
    model.eval()
    return {"log": log, "losses": losses, "steps": step, "train_seconds": time.time() - start}


@torch.no_grad()
def evaluate(model: Any, audio: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """SC, mel distance and style-classifier accuracy of the reconstructions at 1, 2 and 4 codebooks."""
    clf = load_style_classifier()
    x = audio[:, None]
    results: dict[str, Any] = {}
    acc_clean = float((clf.predict(audio, sample_rate=SAMPLE_RATE) == labels).float().mean())
    for n in CODEBOOK_CHOICES:
        bw = bandwidth_kbps(n)
        outs = []
        for i in range(0, len(x), 16):
            enc = model.encode(x[i:i + 16], bandwidth=bw)
            outs.append(model.decode(enc.audio_codes, enc.audio_scales).audio_values[:, 0, : x.shape[-1]])
        y = torch.cat(outs)
        metrics = reconstruction_metrics(audio, y)
        pred = clf.predict(y, sample_rate=SAMPLE_RATE)
        metrics["style_accuracy"] = float((pred == labels).float().mean())
        metrics["style_accuracy_per_style"] = {s: round(float((pred[labels == k] == k).float().mean()), 4)
                                               for k, s in enumerate(MUSIC_STYLES)}
        metrics["bitrate_kbps"] = bw
        metrics["codebooks"] = n
        results[str(n)] = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
    results["clean_style_accuracy"] = round(acc_clean, 4)
    return results


def model_card(info: dict[str, Any]) -> str:
    """README.md: what the codec is, how it was trained, what it measures, how to rebuild it."""
    rows = "\n".join(
        f"| {r['codebooks']} | {r['bitrate_kbps']:g} kbit/s | {r['spectral_convergence']:.3f} | "
        f"{r['mel_distance_db']:.2f} dB | {r['style_accuracy'] * 100:.1f} % |"
        for r in (info["eval"][str(n)] for n in CODEBOOK_CHOICES))
    return f"""# course-encodec: a small EnCodec trained on course-made music

transformers' `EncodecModel` at a small size, trained from scratch by `scripts/train_codec.py` on the
course's synthetic music (`course_lib.synth.music_clip`, six styles). It turns 22 050 Hz mono audio into
4 streams of tokens at 50 frames per second (hop 441 samples), 512 codes each (9 bits), and back. It is
the audio tokenizer of `checkpoints/course-musicgen`.

```python
from transformers import EncodecModel
codec = EncodecModel.from_pretrained("checkpoints/course-encodec")
enc = codec.encode(audio[None, None], bandwidth=1.8)        # 0.45, 0.9 or 1.8 kbit/s = 1, 2 or 4 codebooks
audio_out = codec.decode(enc.audio_codes, enc.audio_scales).audio_values
```

{info['n_params']:,} parameters plus {info['n_buffers']:,} codebook values (buffers); {info['megabytes']:.1f} MB
(safetensors). Encoder: SEANet with {info['num_filters']} base filters, one residual block per stage,
one LSTM layer; 64-dimensional latent; residual vector quantizer with 4 codebooks.

## Reconstruction of held-out clips

{info['n_eval']} clips of {CLIP_SECONDS:g} s (seeds {HELD_OUT_SEED0}+, {info['n_eval'] // len(MUSIC_STYLES)} per
style; none seen in training). Spectral convergence: |STFT| with n_fft 1024, hop 256 (0 is perfect).
Mel distance: mean absolute difference of 64-band mel power in dB, floored 80 dB below the reference's peak.
Style accuracy: share of reconstructions that the course's style classifier (`checkpoints/style-classifier`)
puts in the clip's style (on the original clips: {info['eval']['clean_style_accuracy'] * 100:.1f} %).

| codebooks | bitrate | spectral convergence | mel distance | style accuracy |
|---|---|---|---|---|
{rows}

Bitrate = 50 frames/s x codebooks x 9 bits. For scale: musicgen-small's EnCodec uses 4 codebooks of 2048
codes at 32 kHz (2.2 kbit/s) and was trained on 20 000 hours of music with adversarial losses; this one
trained for {info['train_seconds'] / 60:.1f} minutes on a CPU without any adversary, so expect a dull,
smeared sound; the style-accuracy column says how much of each style's character survives.

## Training

{info['n_train']} clips of {CLIP_SECONDS:g} s ({info['n_train'] // len(MUSIC_STYLES)} per style, seeds {TRAIN_SEED0}+),
random {info['crop_seconds']:g} s crops at a random gain (0.5-1), batch {info['batch_size']}{info['weighting']}.
Loss: 0.1 x L1 on the waveform + spectral losses at n_fft {', '.join(str(n) for n, _ in MEL_SCALES)} (L1 on
log-mel and on log-STFT magnitudes, spectral convergence) + 0.25 x commitment. Initialisation: biases zero, each
layer's weight-norm gain set on a batch of music so that it passes the signal on at unit spread (LSUV).
Codebooks: k-means start, EMA updates (decay 0.97),
dead codes restarted; quantizer dropout over 1, 2 and 4 codebooks. AdamW (lr {info['lr']}, betas 0.8/0.99),
warm-up then cosine decay, gradient clipping at 1. {info['steps']} steps in {info['train_seconds']:.0f} s of
training ({info['total_seconds']:.0f} s in all) on {info['threads']} CPU thread(s), seed {info['seed']}; final
loss {info['final_loss']:.3f}. Losses in `losses.json`, the training log in `metrics.json`.{info['variant']}

## Reproduce

```bash
{info['command']}
```
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate and save the codec with its model card; return the summary."""
    parser = training_arguments("course-encodec", __doc__.split("\n")[0], batch_size=8, lr=1e-3)
    parser.add_argument("--steps", type=int, default=6000, help="at most this many steps")
    parser.add_argument("--minutes", type=float, default=14.0, help="and at most this many minutes of training")
    parser.add_argument("--crop-seconds", type=float, default=0.5)
    parser.add_argument("--n-train", type=int, default=60, help="training clips per style")
    parser.add_argument("--n-eval", type=int, default=8, help="held-out clips per style")
    parser.add_argument("--num-filters", type=int, default=8,
                        help="SEANet base filters (8: 3.9 MB; 12: 7.1 MB and 16: 11.5 MB leave no room in MusicGen's 10 MB)")
    parser.add_argument("--chiptune-weight", type=float, default=1.0,
                        help="draw chiptune clips this many times as often as the others' (3 with --minutes 26 "
                             "was tried: chiptune still 0 %% recognised after the round trip; see bench/RESULTS.md)")
    parser.add_argument("--loss", choices=("plain", "band", "adversarial"), default="plain",
                        help="plain: the shipped loss; band: log band energies instead of the waveform L1; "
                             "adversarial: plus three STFT discriminators (tried as fine-tunes: bench/RESULTS.md)")
    parser.add_argument("--init", default=None, help="fine-tune this saved codec instead of a fresh one")
    parser.add_argument("--only-style", choices=MUSIC_STYLES, default=None, help="train on this style's clips only")
    args = parser.parse_args(argv)

    from transformers import EncodecModel

    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train = music_set(args.n_train, TRAIN_SEED0)
    held = music_set(args.n_eval, HELD_OUT_SEED0)
    model = EncodecModel.from_pretrained(args.init) if args.init else EncodecModel(
        codec_config(num_filters=args.num_filters))
    if args.only_style:
        keep = train["labels"] == MUSIC_STYLES.index(args.only_style)
        train = {"audio": train["audio"][keep], "labels": train["labels"][keep]}
    # The codec turns every held-out chiptune clip into rock (to the style classifier's ears); --chiptune-weight
    # draws chiptune clips more often (tried, did not help: bench/RESULTS.md).
    weights = None if args.chiptune_weight == 1.0 else (
        1.0 + (args.chiptune_weight - 1.0) * (train["labels"] == MUSIC_STYLES.index("chiptune")).float())
    run = train_codec(model, train["audio"], args, weights)
    results = evaluate(model, held["audio"], held["labels"])
    print(json.dumps(results, indent=1))

    out = Path(args.out)
    save_pretrained_atomically(out, lambda tmp: model.save_pretrained(tmp))
    info = {
        "eval": results, "steps": run["steps"], "train_seconds": round(run["train_seconds"], 1),
        "threads": args.threads, "seed": args.seed, "batch_size": args.batch_size, "lr": args.lr,
        "crop_seconds": args.crop_seconds, "chiptune_weight": args.chiptune_weight, "loss": args.loss,
        "init": args.init, "only_style": args.only_style,
        "weighting": "" if weights is None else f"; chiptune clips drawn {args.chiptune_weight:g} times as often",
        "n_train": len(train["audio"]), "n_eval": len(held["audio"]),
        "final_loss": sum(run["losses"][-50:]) / max(1, len(run["losses"][-50:])),
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_buffers": sum(b.numel() for n, b in model.named_buffers() if "codebook.embed" in n),
        "num_filters": model.config.num_filters, "command": command_line(parser, args),
    }
    write_json(out / "losses.json", [round(x, 4) for x in run["losses"]], indent=None)
    info["variant"] = "".join([
        f"\n\n**Variant:** loss `{args.loss}` (see the script's `--loss`)." if args.loss != "plain" else "",
        f" Fine-tuned from `{args.init}`, not trained from scratch." if args.init else "",
        f" Trained on {args.only_style} clips only." if args.only_style else ""])
    info["total_seconds"] = round(time.time() - t0, 1)
    info["megabytes"] = folder_megabytes(out)
    write_json(out / "metrics.json", {**{k: v for k, v in info.items()}, "log": run["log"]}, indent=1)
    write_model_card(out, model_card(info))
    print(json.dumps({k: info[k] for k in ("steps", "train_seconds", "total_seconds", "megabytes")}))
    return info


if __name__ == "__main__":
    main()
