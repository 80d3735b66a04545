"""Train the course's small spectrogram diffusion model (lesson 02's offline stand-in) from scratch.

    python scripts/train_mel_diffusion.py                      # the shipped model (about 25 min, 2 CPU cores)
    python scripts/train_mel_diffusion.py --max-steps 100 --out course_data/mel-try   # a quick try

Data: course-made music (``course_lib.synth.music_clip``, every style) cut into 64x64 mel-spectrogram
images with ``course_lib.Mel`` (22 050 Hz, n_fft 1024, hop 512: one image is 1.49 s). Model: the small
diffusers ``UNet2DModel`` of ``course_lib.models.mel_unet``, trained with ``course_lib.training`` (epsilon prediction, DDPM noise
schedule, EMA). The result is saved with ``SpectrogramDiffusionPipeline.save_pretrained`` in diffusers'
layout, next to a model card with the loss curve and metrics:

- Fréchet distance (on the course's style-classifier embeddings) of generated clips to held-out real
  clips, against the same distance for the output of the same architecture left untrained, with
  DDIM 50 steps at eta 1 (stochastic: the better sampler for this small model) and at eta 0;
- spectral convergence of the Mel round trip, for reference.

Everything is seeded; on the CPU the same command gives the same model. Training resumes after an
interruption (run the same command again).
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
from course_lib.diffusion import SpectrogramDiffusionPipeline, diffusion_loss, images_to_tensor  # noqa: E402
from course_lib.metrics import frechet_audio_distance  # noqa: E402
from course_lib.models.classifier import load_style_classifier  # noqa: E402
from course_lib.models.mel_unet import mel_unet, noise_scheduler  # noqa: E402
from course_lib.models.release import command_line, training_arguments, write_training_outputs  # noqa: E402
from course_lib.mel import Mel  # noqa: E402

MEL = dict(x_res=64, y_res=64, sample_rate=22050, n_fft=1024, hop_length=512, top_db=80, n_iter=32)


def music_images(mel: Mel, clips_per_style: int, seconds: float, seed: int) -> torch.Tensor:
    """All 64x64 slices of ``clips_per_style`` course-made clips of every style, as uint8 images."""
    clips = [synth.music_clip(style, duration=seconds, sample_rate=mel.sr, seed=seed + i)
             for style in synth.MUSIC_STYLES for i in range(clips_per_style)]
    return mel.audio_to_images(np.stack(clips))


def real_clips(n_per_style: int, seconds: float, seed: int, sample_rate: int) -> np.ndarray:
    return np.stack([synth.music_clip(style, duration=seconds, sample_rate=sample_rate, seed=seed + i)
                     for style in synth.MUSIC_STYLES for i in range(n_per_style)])


def main(argv: list[str] | None = None) -> int:
    parser = training_arguments("mel-diffusion-64", __doc__.splitlines()[0], batch_size=16, lr=5e-4, resumable=True)
    parser.add_argument("--max-steps", type=int, default=2800,
                        help="optimizer steps (a step budget, so the same command gives the same model)")
    parser.add_argument("--clips-per-style", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--eval-samples", type=int, default=60)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from diffusers import DDIMScheduler

    mel = Mel(**MEL)
    started = time.time()
    images = music_images(mel, args.clips_per_style, args.seconds, seed=1000)
    data = images_to_tensor(images)  # (N, 1, 64, 64) in [-1, 1]
    print(f"data: {tuple(data.shape)} images from {args.clips_per_style} clips x {len(synth.MUSIC_STYLES)} styles "
          f"({time.time() - started:.1f} s)", flush=True)

    torch.manual_seed(args.seed)
    unet = mel_unet()
    untrained = mel_unet()  # the same weights, kept untrained for the baseline
    untrained.load_state_dict(unet.state_dict())
    scheduler = noise_scheduler()
    n_params = sum(p.numel() for p in unet.parameters())
    print(f"UNet2DModel: {n_params:,} parameters", flush=True)

    config = training.TrainConfig(
        output_dir=args.run_dir, max_steps=args.max_steps, time_budget_s=args.time_budget,
        batch_size=args.batch_size, lr=args.lr, warmup_steps=100, ema_decay=0.999, seed=args.seed,
        checkpoint_every=250, keep_last_n=2, log_every=10,
    )
    result = training.train(
        unet, data, lambda model, batch, g: diffusion_loss(model, batch, scheduler, g), config,
        resume=True,
    )
    model = result.ema_model if result.ema_model is not None else unet
    print(f"trained {result.steps} steps ({result.stopped_by}); final loss (mean of last 50) "
          f"{float(np.mean(result.losses[-50:])):.4f}", flush=True)

    # Evaluate: generated vs held-out real vs the untrained network, on the style classifier's embeddings.
    ddim = DDIMScheduler.from_config(scheduler.config)
    pipe = SpectrogramDiffusionPipeline(model.eval(), ddim, mel)
    base = SpectrogramDiffusionPipeline(untrained.eval(), DDIMScheduler.from_config(scheduler.config), mel)
    n = args.eval_samples
    held_out = real_clips(max(2, n // len(synth.MUSIC_STYLES)), mel.slice_size / mel.sr, 50_000, mel.sr)
    held_out_b = real_clips(max(2, n // len(synth.MUSIC_STYLES)), mel.slice_size / mel.sr, 60_000, mel.sr)
    classifier = load_style_classifier()
    fd = {}
    for eta in (1.0, 0.0):
        generated = pipe(n, steps=50, eta=eta, generator=torch.Generator().manual_seed(1), progress=True)
        noise_like = base(n, steps=50, eta=eta, generator=torch.Generator().manual_seed(1), progress=True)
        length = generated.audios.shape[-1]
        fd[eta] = (frechet_audio_distance(generated.audios, held_out[:, :length], classifier),
                   frechet_audio_distance(noise_like.audios, held_out[:, :length], classifier))
        if eta == 1.0:
            predicted = classifier.predict(torch.as_tensor(generated.audios)).numpy()
    fd_real = frechet_audio_distance(held_out_b[:, :length], held_out[:, :length], classifier)
    style_counts = {s: int((predicted == i).sum()) for i, s in enumerate(classifier.classes)}
    metrics = {
        "fd_generated_vs_heldout": round(fd[1.0][0], 3),
        "fd_untrained_vs_heldout": round(fd[1.0][1], 3),
        "fd_ratio_generated_over_untrained": round(fd[1.0][0] / fd[1.0][1], 4),
        "fd_generated_vs_heldout_eta0": round(fd[0.0][0], 3),
        "fd_untrained_vs_heldout_eta0": round(fd[0.0][1], 3),
        "fd_ratio_generated_over_untrained_eta0": round(fd[0.0][0] / fd[0.0][1], 4),
        "fd_real_vs_heldout": round(fd_real, 3),
        "eval_samples": n,
        "ddim_steps": 50,
        "generated_style_counts_eta1": style_counts,
        "train_steps": result.steps,
        "train_seconds": round(result.elapsed_s, 1),
        "final_loss_mean_last_50": round(float(np.mean(result.losses[-50:])), 5),
        "parameters": n_params,
        "train_images": int(data.shape[0]),
    }
    print(json.dumps(metrics, indent=2), flush=True)

    out = Path(args.out)
    SpectrogramDiffusionPipeline(model, scheduler, mel).save_pretrained(out)
    counts = ", ".join(f"{k} {v}" for k, v in style_counts.items())
    card = MODEL_CARD.format(command=command_line(parser, args), style_counts_text=counts, **{**vars(args), **metrics})
    write_training_outputs(out, result, metrics, card)
    print(f"saved to {out}", flush=True)
    return 0


MODEL_CARD = """# mel-diffusion-64: the course's small spectrogram diffusion model

Lesson 02's offline stand-in for `teticio/audio-diffusion-instrumental-hiphop-256`. It loads with
`course_lib.diffusion.SpectrogramDiffusionPipeline.from_pretrained` (and diffusers'
`DiffusionPipeline.from_pretrained`) from this folder: `unet/` (safetensors), `scheduler/`, `mel/`.

- **Made by:** `{command}` (`scripts/train_mel_diffusion.py`, seed {seed}), on 2 CPU cores.
- **Data:** course-made music, `course_lib.synth.music_clip` in every style ({clips_per_style} clips of
  {seconds:g} s each), cut into {train_images} mel-spectrogram images of 64 x 64 (22 050 Hz, n_fft 1024,
  hop 512, 64 mel bands, top_db 80; one image = 1.49 s of audio).
- **Model:** diffusers `UNet2DModel`, {parameters:,} parameters, 4 levels (16/32/64/64 channels), no
  attention; DDPM noise schedule (1000 steps, linear betas), epsilon prediction. Weights are the EMA
  (decay 0.999) of the trained ones.
- **Training:** `course_lib.training`, AdamW lr {lr:g} (100 warm-up steps), batch {batch_size},
  {train_steps} steps in {train_seconds:g} s; final loss (mean of the last 50 steps) {final_loss_mean_last_50}. The curve is
  `loss_curve.png`, every value `losses.json`.
  The time is wall-clock on whatever else the machine was doing; on two otherwise idle CPU cores a
  step takes about 0.5 s (about 23 minutes for 2800 steps).

## Metrics (`metrics.json`)

Fréchet distance on the embeddings of the course's style classifier (`checkpoints/style-classifier`),
{eval_samples} clips each, DDIM {ddim_steps} steps:

| compared with held-out real clips | FD, eta 1 | FD, eta 0 |
|---|---:|---:|
| generated by this model | {fd_generated_vs_heldout} | {fd_generated_vs_heldout_eta0} |
| generated by the same network untrained (noise-like) | {fd_untrained_vs_heldout} | {fd_untrained_vs_heldout_eta0} |
| other real clips (the floor) | {fd_real_vs_heldout} | |

The generated/untrained ratio is {fd_ratio_generated_over_untrained} at eta 1 and
{fd_ratio_generated_over_untrained_eta0} at eta 0. Sample this model with `eta=1`: the deterministic
sampler (eta 0) lets its small errors pile up into a few look-alike textures (styles the classifier sees
in the eta-1 samples: {style_counts_text}). What it makes is music-like at this
size, not music: a 64 x 64 image is blurry, and Griffin-Lim adds its phasey sound.
"""


if __name__ == "__main__":
    sys.exit(main())
