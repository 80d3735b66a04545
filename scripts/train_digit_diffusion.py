"""Train lesson 06's comparison model: a lesson-02-style spectrogram diffusion model on the VAE's digit data.

    python scripts/train_digit_diffusion.py                  # the shipped model (about 25 min on 2 CPU cores)
    python scripts/train_digit_diffusion.py --max-steps 20 --n-per-class 4 --eval-per-class 2 --out course_data/dd-try

Lesson 06 compares its spectrogram VAE with a diffusion model, and a comparison is only fair on the
same data: this model trains on exactly the clips ``scripts/train_vae.py`` uses
(``synth.digit_dataset(200, seed=0)``: 2000 spoken-digit-like words of 0.74 s at 22 050 Hz) and is
measured against the same held-out clips (seed 1000). It is lesson 02's recipe at lesson 02's size:
each clip becomes one 64 x 64 mel-spectrogram image (``course_lib.Mel``: n_fft 1024, hop 256, 64
mel bands, 16 384 samples per image, so a clip is padded by 67 samples of silence), the same
diffusers ``UNet2DModel`` as ``checkpoints/mel-diffusion-64`` (16/32/64/64 channels, no attention),
DDPM training with epsilon prediction, and EMA weights. Griffin-Lim uses 64 iterations, as the
VAE's does.

Metrics (``metrics.json``, the model card): Fréchet distance on the embeddings of the course's digit
classifier (``checkpoints/digit-classifier``) of generated clips to the held-out clips, against the
same for the untrained network and for other real clips (the floor); which words the generated
clips are, by the same classifier. ``bench/bench_generators.py`` puts this model next to the VAE.

Everything is seeded; training resumes after an interruption (run the same command again).
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
from course_lib.models.classifier import load_digit_classifier  # noqa: E402
from course_lib.models.mel_unet import mel_unet, noise_scheduler  # noqa: E402  (lesson 02's offline model)
from course_lib.models.release import command_line, training_arguments, write_training_outputs  # noqa: E402
from course_lib.mel import Mel  # noqa: E402

SAMPLE_RATE = 22050
DURATION = 0.74  # the VAE's clip length (16 317 samples); one image holds 16 384
MEL = dict(x_res=64, y_res=64, sample_rate=SAMPLE_RATE, n_fft=1024, hop_length=256, top_db=80, n_iter=64)


def digit_images(mel: Mel, n_per_class: int, seed: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """``digit_dataset(n_per_class, seed)`` as (images in [-1, 1] (N, 1, 64, 64), audio, labels)."""
    audio, labels = synth.digit_dataset(n_per_class, seed=seed, sample_rate=SAMPLE_RATE, duration=DURATION)
    return images_to_tensor(mel.audio_to_images(audio, pad=True)), audio, labels


def main(argv: list[str] | None = None) -> int:
    parser = training_arguments("digit-diffusion", __doc__.splitlines()[0], batch_size=16, lr=5e-4, resumable=True)
    parser.add_argument("--max-steps", type=int, default=2400,
                        help="optimizer steps (a step budget, so the same command gives the same model)")
    parser.add_argument("--n-per-class", type=int, default=200, help="training clips per class (the VAE's 200)")
    parser.add_argument("--eval-per-class", type=int, default=30, help="held-out clips per class (the VAE's 30)")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--heldout-seed", type=int, default=1000)
    parser.add_argument("--eval-steps", type=int, default=50, help="DDIM steps for the evaluation samples")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from diffusers import DDIMScheduler

    mel = Mel(**MEL)
    started = time.time()
    data, _, _ = digit_images(mel, args.n_per_class, args.data_seed)
    _, held_audio, _ = digit_images(mel, args.eval_per_class, args.heldout_seed)
    _, other_audio, _ = digit_images(mel, args.eval_per_class, args.data_seed)  # training clips: the floor
    data_seconds = time.time() - started
    print(f"data: {tuple(data.shape)} images ({data_seconds:.1f} s)", flush=True)

    torch.manual_seed(args.seed)
    unet = mel_unet()
    untrained = mel_unet()
    untrained.load_state_dict(unet.state_dict())
    scheduler = noise_scheduler()
    n_params = sum(p.numel() for p in unet.parameters())
    print(f"UNet2DModel: {n_params:,} parameters", flush=True)

    config = training.TrainConfig(
        output_dir=args.run_dir, max_steps=args.max_steps, time_budget_s=args.time_budget,
        batch_size=args.batch_size, lr=args.lr, warmup_steps=100, ema_decay=0.999, seed=args.seed, checkpoint_every=250, keep_last_n=2, log_every=10,
    )
    result = training.train(
        unet, data, lambda model, batch, g: diffusion_loss(model, batch, scheduler, g), config, resume=True,
    )
    model = (result.ema_model if result.ema_model is not None else unet).eval()
    print(f"trained {result.steps} steps ({result.stopped_by}, {result.elapsed_s:.0f} s); final loss "
          f"(mean of last 50) {float(np.mean(result.losses[-50:])):.4f}", flush=True)

    # -- evaluation on the digit classifier ------------------------------------------------------------
    n = held_audio.shape[0]
    classifier = load_digit_classifier()
    pipe = SpectrogramDiffusionPipeline(model, DDIMScheduler.from_config(scheduler.config), mel)
    base = SpectrogramDiffusionPipeline(untrained.eval(), DDIMScheduler.from_config(scheduler.config), mel)
    length = held_audio.shape[-1]
    t0 = time.time()
    generated = pipe(n, steps=args.eval_steps, eta=1.0, generator=torch.Generator().manual_seed(1),
                     progress=True).audios[:, :length]
    sample_seconds = time.time() - t0
    noise_like = base(n, steps=args.eval_steps, eta=1.0, generator=torch.Generator().manual_seed(1),
                      progress=True).audios[:, :length]
    predicted = classifier.predict(torch.as_tensor(generated)).numpy()
    metrics = {
        "fd_generated_vs_heldout": round(frechet_audio_distance(generated, held_audio, classifier), 3),
        "fd_untrained_vs_heldout": round(frechet_audio_distance(noise_like, held_audio, classifier), 3),
        "fd_real_train_vs_heldout": round(frechet_audio_distance(other_audio, held_audio, classifier), 3),
    }
    metrics["fd_ratio_generated_over_untrained"] = round(
        metrics["fd_generated_vs_heldout"] / metrics["fd_untrained_vs_heldout"], 4)
    metrics.update({
        "generated_word_counts": {w: int((predicted == i).sum()) for i, w in enumerate(classifier.classes)},
        "eval_clips": n,
        "ddim_steps": args.eval_steps,
        "ddim_eta": 1.0,
        "sample_seconds": round(sample_seconds, 1),
        "heldout_seed": args.heldout_seed,
        "data_seed": args.data_seed,
        "train_clips": int(data.shape[0]),
        "train_steps": result.steps,
        "train_seconds": round(result.elapsed_s, 1),
        "data_seconds": round(data_seconds, 1),
        "final_loss_mean_last_50": round(float(np.mean(result.losses[-50:])), 5),
        "parameters": n_params,
    })
    print(json.dumps(metrics, indent=2), flush=True)

    out = Path(args.out)
    SpectrogramDiffusionPipeline(model, scheduler, mel).save_pretrained(out)
    counts = ", ".join(f"{k} {v}" for k, v in metrics["generated_word_counts"].items())
    card = MODEL_CARD.format(command=command_line(parser, args), counts_text=counts, **{**vars(args), **metrics})
    write_training_outputs(out, result, metrics, card)
    print(f"saved to {out}", flush=True)
    return 0


MODEL_CARD = """# digit-diffusion: lesson 06's diffusion model on the VAE's data

The diffusion side of lesson 06's comparison: lesson 02's recipe (mel-spectrogram images and a 2D
UNet) trained on exactly the clips the spectrogram VAE (`checkpoints/spectrogram-vae`) trains on.
Load it with `course_lib.diffusion.SpectrogramDiffusionPipeline.from_pretrained` (or diffusers'
`DiffusionPipeline.from_pretrained`) on this folder: `unet/` (safetensors), `scheduler/`, `mel/`.

- **Made by:** `{command}` (`scripts/train_digit_diffusion.py`, seed {seed}), on {threads} CPU threads.
- **Data:** `course_lib.synth.digit_dataset({n_per_class}, seed={data_seed})`: {train_clips} spoken-digit-like
  words of 0.74 s at 22 050 Hz, one 64 x 64 mel image each (`course_lib.Mel`: n_fft 1024, hop 256, 64 mel
  bands, top_db 80; 16 384 samples per image, the clip padded with 67 samples of silence).
- **Model:** diffusers `UNet2DModel`, {parameters:,} parameters, the architecture of
  `checkpoints/mel-diffusion-64` (4 levels, 16/32/64/64 channels, no attention); DDPM schedule (1000
  steps, linear betas), epsilon prediction. Weights are the EMA (decay 0.999) of the trained ones.
- **Training:** `course_lib.training`, AdamW lr {lr:g} (100 warm-up steps), batch {batch_size},
  {train_steps} steps in {train_seconds:g} s (plus {data_seconds:g} s making the data); final loss (mean of the
  last 50 steps) {final_loss_mean_last_50}. The curve is `loss_curve.png`, every value `losses.json`.
  The time is wall-clock on whatever else the machine was doing.

## Metrics (`metrics.json`)

Fréchet distance on the embeddings of the course's digit classifier (`checkpoints/digit-classifier`),
{eval_clips} clips each against the {eval_clips} held-out clips (seed {heldout_seed}), DDIM {ddim_steps} steps at
eta {ddim_eta:g}, Griffin-Lim 64 iterations:

| clips | FD to held-out |
|---|---:|
| generated by this model | {fd_generated_vs_heldout} |
| other real clips (the floor) | {fd_real_train_vs_heldout} |
| generated by the same network untrained | {fd_untrained_vs_heldout} |

Sampling the {eval_clips} clips took {sample_seconds:g} s. The digit classifier hears the generated clips as:
{counts_text}.

`bench/bench_generators.py` measures this model and the VAE side by side (FD, samples per second,
parameters); lesson 06 shows the table.
"""


if __name__ == "__main__":
    sys.exit(main())
