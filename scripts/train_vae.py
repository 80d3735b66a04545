"""Train lesson 06's spectrogram VAE and ship it to checkpoints/spectrogram-vae.

    python scripts/train_vae.py                                  # the shipped model (about 16 min on 2 idle CPU cores)
    python scripts/train_vae.py --max-steps 30 --n-per-class 8 --eval-per-class 4 --out course_data/vae-try
                                                                 # a smoke run (about a minute)

Data: course-made spoken-digit-like words (``course_lib.synth.digit_dataset``: ten classes, 0.74 s at
22 050 Hz), training clips from ``--data-seed``, held-out clips from ``--heldout-seed`` (a different
seed, so no clip is shared). Both go through lesson 01's preprocessing (pad to 16 317 samples,
log-magnitude spectrogram with frame 512 / hop 256 and the top bin dropped: 256 x 64, floor 80 dB
below the clip's peak, min-max normalised per clip); every clip's dB minimum and maximum is kept, and
the training clips' table ships as ``min_max_values.json`` (JSON, lesson 01's layout).

Model: ``course_lib.models.vae.SpectrogramVAE`` with the default (laptop) ``VAEConfig``, trained with
``course_lib.training`` on ``vae_loss`` (MSE + kl_weight * KL) for a fixed number of steps, so the same
command gives the same model; run it again after an interruption and it resumes.

Metrics on the held-out clips (``metrics.json``, and the model card):

- reconstruction MSE (normalised spectrograms, decoding the mean code) against the best constant guess,
  the mean spectrogram (of the training set, and of the held-out set itself), as a ratio;
- spectral convergence of the audio that Griffin-Lim rebuilds from the reconstruction, next to
  Griffin-Lim of the true spectrogram (what the lost phase alone costs) and of the mean spectrogram;
- the KL term (nats per clip);
- Fréchet distances on the course's style-classifier embeddings (the only course embedding for
  22 050 Hz clips of this length; it was trained on music, not speech, so read it as a generic "how
  alike do these sound" number): prior samples, reconstructions, other real clips (the floor) and
  samples of the same network untrained, each against the held-out clips.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench/RESULTS.md: spinning threads stall a shared CPU

import numpy as np
import torch

from course_lib import synth, training  # noqa: E402
from course_lib.models.release import command_line, training_arguments, write_training_outputs  # noqa: E402
from course_lib.models.classifier import load_style_classifier  # noqa: E402
from course_lib.metrics import frechet_audio_distance, spectral_convergence  # noqa: E402
from course_lib.spectrogram import magnitude, stft  # noqa: E402
from course_lib.models.vae import (  # noqa: E402
    MIN_MAX_NAME,
    SpectrogramVAE,
    VAEConfig,
    kl_divergence,
    preprocess_clips,
    reconstruction_error,
    save_min_max,
    vae_loss,
)

TEST_SUBSET_PER_CLASS = 10  # tests/test_vae.py re-measures the first 10 held-out clips of every class


def make_data(n_per_class: int, seed: int, config: VAEConfig) -> dict:
    """Synthesise and preprocess ``n_per_class`` clips of every class: audio, labels, features, mins, maxs."""
    audio, labels = synth.digit_dataset(n_per_class, seed=seed, sample_rate=config.sample_rate,
                                        duration=config.duration)
    features, mins, maxs = preprocess_clips(audio, config.sample_rate, config.duration, config.frame_size,
                                            config.hop_length)
    names = [f"{synth.DIGIT_CLASSES[c]}-{i // len(synth.DIGIT_CLASSES):04d}" for i, c in enumerate(labels)]
    return {"audio": audio, "labels": labels, "features": features, "mins": mins, "maxs": maxs, "names": names}


def mse_to(features: torch.Tensor, guess: torch.Tensor) -> float:
    """Mean squared error of one constant guess (1, H, W) against every spectrogram."""
    return float((features - guess).square().mean())


def gl_convergence(model: SpectrogramVAE, spectrograms: torch.Tensor, data: dict, rows: slice, seed: int) -> float:
    """Mean spectral convergence of Griffin-Lim audio from ``spectrograms`` against the real clips' STFT."""
    c = model.config
    audio = model.to_audio(spectrograms, data["mins"][rows], data["maxs"][rows], n_iter=64,
                           generator=torch.Generator().manual_seed(seed))
    ref = magnitude(stft(torch.as_tensor(data["audio"][rows]), n_fft=c.frame_size, hop_length=c.hop_length))
    est = magnitude(stft(audio, n_fft=c.frame_size, hop_length=c.hop_length))
    return float(spectral_convergence(ref, est).mean())


def pooled(features: torch.Tensor) -> torch.Tensor:
    """A coarse summary of each spectrogram: 16 frequency bands x 8 time steps (block means)."""
    n, _, h, w = features.shape
    return features[:, 0].reshape(n, 16, h // 16, 8, w // 8).mean(dim=(2, 4)).reshape(n, -1)


def nearest_class(features: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """The class whose mean pooled training spectrogram is nearest (a deliberately simple classifier)."""
    return torch.cdist(pooled(features), centroids).argmin(dim=1)


def main(argv: list[str] | None = None) -> int:
    parser = training_arguments("spectrogram-vae", __doc__.splitlines()[0], batch_size=32, lr=1e-3, resumable=True)
    parser.add_argument("--max-steps", type=int, default=6000,
                        help="optimizer steps (a step budget, so the same command gives the same model)")
    parser.add_argument("--n-per-class", type=int, default=200, help="training clips per class")
    parser.add_argument("--eval-per-class", type=int, default=30, help="held-out clips per class")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--heldout-seed", type=int, default=1000)
    parser.add_argument("--kl-weight", type=float, default=None, help="default: the config's kl_weight")
    parser.add_argument("--ema-decay", type=float, default=None, help="optional EMA of the weights (e.g. 0.995)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    config = VAEConfig() if args.kl_weight is None else VAEConfig(kl_weight=args.kl_weight)
    started = time.time()
    train = make_data(args.n_per_class, args.data_seed, config)
    held = make_data(args.eval_per_class, args.heldout_seed, config)
    data_seconds = time.time() - started
    print(f"data: {tuple(train['features'].shape)} training and {tuple(held['features'].shape)} held-out "
          f"spectrograms ({data_seconds:.1f} s)", flush=True)

    torch.manual_seed(args.seed)
    model = SpectrogramVAE(config)
    untrained = SpectrogramVAE(config)  # the same architecture left untrained: the noise-like baseline
    untrained.load_state_dict(model.state_dict())
    n_params = model.num_parameters()
    print(f"SpectrogramVAE: {n_params:,} parameters, latent {config.latent_dim}, kl_weight {config.kl_weight:g}",
          flush=True)

    tc = training.TrainConfig(
        output_dir=args.run_dir, max_steps=args.max_steps, time_budget_s=args.time_budget,
        batch_size=args.batch_size, lr=args.lr,
        warmup_steps=100, ema_decay=args.ema_decay, seed=args.seed, checkpoint_every=500, keep_last_n=2,
        log_every=10,
    )
    result = training.train(model, train["features"], lambda m, b, g: vae_loss(m, b, g), tc, resume=True)
    model = (result.ema_model if result.ema_model is not None else model).eval()
    print(f"trained {result.steps} steps ({result.stopped_by}, {result.elapsed_s:.0f} s); final loss "
          f"(mean of last 50) {float(np.mean(result.losses[-50:])):.5f}", flush=True)

    # -- reconstruction against the mean spectrogram ---------------------------------------------
    x = held["features"]
    errors = reconstruction_error(model, x)
    train_mean = train["features"].mean(dim=0, keepdim=True)
    test_rows = slice(0, TEST_SUBSET_PER_CLASS * len(synth.DIGIT_CLASSES))
    sub = x[test_rows]
    with torch.no_grad():
        mu, logvar = model.encode(x)
        kl = kl_divergence(mu, logvar, reduction="none")
    recon = model.reconstruct(sub)
    metrics: dict = {
        "recon_mse_heldout": round(float(errors.mean()), 6),
        "baseline_mse_train_mean": round(mse_to(x, train_mean), 6),
        "baseline_mse_heldout_mean": round(mse_to(x, x.mean(dim=0, keepdim=True)), 6),
    }
    metrics["recon_ratio_vs_train_mean"] = round(metrics["recon_mse_heldout"] / metrics["baseline_mse_train_mean"], 4)
    metrics["recon_ratio_vs_heldout_mean"] = round(
        metrics["recon_mse_heldout"] / metrics["baseline_mse_heldout_mean"], 4)
    metrics["test_subset_per_class"] = TEST_SUBSET_PER_CLASS
    metrics["test_subset_recon_mse"] = round(float(errors[test_rows].mean()), 6)
    metrics["test_subset_baseline_mse"] = round(mse_to(sub, sub.mean(dim=0, keepdim=True)), 6)
    metrics["test_subset_ratio"] = round(metrics["test_subset_recon_mse"] / metrics["test_subset_baseline_mse"], 4)
    metrics["kl_nats_per_clip_heldout"] = round(float(kl.mean()), 3)
    per_dim = (0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)).mean(dim=0)  # KL of each latent number
    metrics["active_latent_dims"] = int((per_dim > 0.01).sum())  # the rest carry (almost) no information

    # -- back to audio: spectral convergence of Griffin-Lim ----------------------------------------
    gl_seed = 7
    metrics["sc_griffin_lim_of_true_spectrogram"] = round(gl_convergence(model, sub, held, test_rows, gl_seed), 4)
    metrics["sc_griffin_lim_of_reconstruction"] = round(gl_convergence(model, recon, held, test_rows, gl_seed), 4)
    mean_guess = train_mean.expand(sub.shape[0], -1, -1, -1)
    metrics["sc_griffin_lim_of_mean_spectrogram"] = round(gl_convergence(model, mean_guess, held, test_rows, gl_seed),
                                                         4)

    # -- Fréchet distances on the style classifier's embeddings -------------------------------------
    classifier = load_style_classifier()
    n_eval = x.shape[0]
    typical_min = float(train["mins"].median())
    typical_max = float(train["maxs"].median())
    lo, hi = torch.full((n_eval,), typical_min), torch.full((n_eval,), typical_max)
    samples = model.sample(n_eval, generator=torch.Generator().manual_seed(1))
    sample_audio = model.to_audio(samples, lo, hi, generator=torch.Generator().manual_seed(2))
    noise_like = untrained.sample(n_eval, generator=torch.Generator().manual_seed(1))
    noise_audio = untrained.to_audio(noise_like, lo, hi, generator=torch.Generator().manual_seed(2))
    recon_audio = model.to_audio(model.reconstruct(x), held["mins"], held["maxs"],
                                 generator=torch.Generator().manual_seed(2))
    real = torch.as_tensor(held["audio"])
    other_real = torch.as_tensor(train["audio"][:n_eval])
    metrics["fd_prior_samples_vs_heldout"] = round(frechet_audio_distance(sample_audio, real, classifier), 3)
    metrics["fd_reconstructions_vs_heldout"] = round(frechet_audio_distance(recon_audio, real, classifier), 3)
    metrics["fd_real_train_vs_heldout"] = round(frechet_audio_distance(other_real, real, classifier), 3)
    metrics["fd_untrained_samples_vs_heldout"] = round(frechet_audio_distance(noise_audio, real, classifier), 3)
    metrics["fd_ratio_samples_over_untrained"] = round(
        metrics["fd_prior_samples_vs_heldout"] / metrics["fd_untrained_samples_vs_heldout"], 4)
    # -- which words do prior samples look like? A nearest-class-mean rule on coarse spectrograms --
    labels = torch.as_tensor(train["labels"])
    centroids = torch.stack([pooled(train["features"][labels == c]).mean(dim=0)
                             for c in range(len(synth.DIGIT_CLASSES))])
    held_labels = torch.as_tensor(held["labels"])
    held_pred = nearest_class(x, centroids)
    metrics["nearest_class_accuracy_heldout"] = round(float((held_pred == held_labels).float().mean()), 4)
    recon_pred = nearest_class(model.reconstruct(x), centroids)
    metrics["nearest_class_accuracy_reconstructions"] = round(float((recon_pred == held_labels).float().mean()), 4)
    sample_pred = nearest_class(samples, centroids)
    metrics["prior_samples_nearest_class_counts"] = {
        name: int((sample_pred == c).sum()) for c, name in enumerate(synth.DIGIT_CLASSES)}
    metrics.update({
        "eval_clips": n_eval,
        "heldout_seed": args.heldout_seed,
        "data_seed": args.data_seed,
        "train_clips": int(train["features"].shape[0]),
        "train_steps": result.steps,
        "train_seconds": round(result.elapsed_s, 1),
        "data_seconds": round(data_seconds, 1),
        "final_loss_mean_last_50": round(float(np.mean(result.losses[-50:])), 6),
        "parameters": n_params,
        "kl_weight": config.kl_weight,
        "typical_min_db": round(typical_min, 3),
        "typical_max_db": round(typical_max, 3),
    })
    print(json.dumps(metrics, indent=2), flush=True)

    # -- ship ------------------------------------------------------------------------------------
    out = Path(args.out)
    model.save_pretrained(out)
    save_min_max(out / MIN_MAX_NAME, train["mins"], train["maxs"], train["names"],
                 params={"sample_rate": config.sample_rate, "duration": config.duration,
                         "num_samples": config.num_samples, "frame_size": config.frame_size,
                         "hop_length": config.hop_length, "min_val": 0.0, "max_val": 1.0,
                         "source": f"synth.digit_dataset({args.n_per_class}, seed={args.data_seed})"})
    weights_mb = (out / "model.safetensors").stat().st_size / 2**20
    card = MODEL_CARD.format(
        command=command_line(parser, args), weights_mb=weights_mb, channels=", ".join(map(str, config.channels)),
        latent_dim=config.latent_dim, n_classes=len(synth.DIGIT_CLASSES),
        counts_text=", ".join(f"{k} {v}" for k, v in metrics["prior_samples_nearest_class_counts"].items()),
        ema=f"EMA (decay {args.ema_decay:g}) of the weights" if args.ema_decay else "the trained weights (no EMA)",
        **{**vars(args), **metrics})
    write_training_outputs(out, result, metrics, card, decimals=6)
    print(f"saved to {out}", flush=True)
    return 0


MODEL_CARD = """# spectrogram-vae: lesson 06's spectrogram VAE

A convolutional variational autoencoder on 256 x 64 log-spectrograms (0.74 s of 22 050 Hz audio),
the course's version of the classic "sound generation with a VAE" project. Load it with
`course_lib.models.vae.load_vae()` (or `SpectrogramVAE.from_pretrained` on this folder): `config.json`,
`model.safetensors` ({weights_mb:.1f} MB), and `min_max_values.json`, the dB minimum and maximum of
every training clip (lesson 01's table, JSON) for turning spectrograms back into sound.

- **Made by:** `{command}` (`scripts/train_vae.py`, seed {seed}), on {threads} CPU threads.
- **Data:** course-made spoken-digit-like words, `course_lib.synth.digit_dataset` ({n_classes} classes,
  zero ... nine): {train_clips} training clips (seed {data_seed}), {eval_clips} held-out clips (seed
  {heldout_seed}); lesson 01's preprocessing (frame 512, hop 256, top bin dropped, 80 dB floor, min-max
  per clip).
- **Model:** `SpectrogramVAE`, {parameters:,} parameters: encoder conv 3x3 blocks with {channels}
  channels (strides 2, 2, 2, 2, (2, 1)), latent {latent_dim}, a mirrored decoder, sigmoid output. The
  classic project's encoder (`course_lib.models.vae.CLASSIC`: 512, 256, 128, 64, 32 channels) is far slower on
  a CPU for this data size.
- **Training:** `course_lib.training`, loss `MSE + {kl_weight:g} * KL`, AdamW lr {lr:g} (100 warm-up
  steps), batch {batch_size}, {train_steps} steps in {train_seconds:g} s (plus {data_seconds:g} s making the
  data); final loss (mean of the last 50 steps) {final_loss_mean_last_50}. Shipped: {ema}. The curve is
  `loss_curve.png`, every value `losses.json`. The time is wall-clock on whatever else the machine was
  doing; on two otherwise idle CPU cores a step takes about 0.16 s (150 steps measured in 23.5 s), so the
  6 000 steps take about 16 minutes, plus half a minute making the data.

## Metrics on held-out clips (`metrics.json`)

| | value |
|---|---:|
| reconstruction MSE (normalised spectrograms, mean code) | {recon_mse_heldout} |
| mean training spectrogram as the guess | {baseline_mse_train_mean} |
| mean held-out spectrogram as the guess (the best constant) | {baseline_mse_heldout_mean} |
| ratio VAE / best constant | {recon_ratio_vs_heldout_mean} |
| KL per clip (nats) | {kl_nats_per_clip_heldout} |

Spectral convergence (lower is better) of Griffin-Lim audio (64 iterations) against the real clips,
first {test_subset_per_class} held-out clips of each class: {sc_griffin_lim_of_true_spectrogram} from the
true spectrogram (the cost of the lost phase alone), {sc_griffin_lim_of_reconstruction} from the VAE's
reconstruction, {sc_griffin_lim_of_mean_spectrogram} from the mean spectrogram.

Fréchet distance on the course's style-classifier embeddings ({eval_clips} clips each, against the
held-out clips; that classifier was trained on music, so this is a generic similarity number):
prior samples {fd_prior_samples_vs_heldout}, reconstructions {fd_reconstructions_vs_heldout}, other real
clips {fd_real_train_vs_heldout} (the floor), samples of the untrained network {fd_untrained_samples_vs_heldout}.
Prior samples are turned into sound with the training clips' median dB range ({typical_min_db} to
{typical_max_db} dB).

Which words do prior samples look like? A nearest-class-mean rule on coarse (16 x 8) spectrograms,
right on {nearest_class_accuracy_heldout} of the held-out clips and {nearest_class_accuracy_reconstructions}
of their reconstructions, assigns the {eval_clips} prior samples to: {counts_text}.
"""


if __name__ == "__main__":
    sys.exit(main())
