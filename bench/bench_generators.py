"""Benchmark: lesson 06's spectrogram VAE against a diffusion model trained on the same clips, in one run.

Both shipped models learned from the same 2 000 course-made digit words (``synth.digit_dataset(200,
seed=0)``): ``checkpoints/spectrogram-vae`` and ``checkpoints/digit-diffusion`` (lesson 02's recipe:
64 x 64 mel images, a 1.0 M-parameter diffusers ``UNet2DModel``). Both are measured all the way to
sound with the same Griffin-Lim iterations (64), by ``course_lib.compare.measure_generator``:

(a) Quality: ``--clips`` clips per model against as many held-out clips (seed 1000, never trained
    on): the Fréchet distance on the course digit classifier's embedding, with the distance of other
    real clips (training clips) as the floor, and the words the classifier hears. The diffusion
    model is measured at DDIM 50 steps (eta 1, as its model card) and at 10 steps. Two more rows
    send the real clips through each model's representation and back without any model
    (``compare.spectrogram_round_trip``, ``compare.mel_round_trip``): each model's own floor.
(b) Speed: batches of ``--batch`` clips, each model in turn (VAE, diffusion-50, diffusion-10, VAE, ...)
    for ``--repeats`` rounds, so a drift in the machine's speed hits all alike; the median clips per
    second of each and the ratio of the VAE's to each diffusion setting, taken round by round.
(c) Size: parameters of each network.

Run by hand (not in CI): ``python bench/bench_generators.py [--quick] [--json out.json]``. The full
run takes about 8 minutes on 2 cores; ``--quick`` is a smoke run whose numbers mean little.
"""

from __future__ import annotations

import os
import sys

if "--omp-default" not in sys.argv:  # before torch is imported; see bench_spectrogram.py's docstring
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import time
from pathlib import Path

from _common import add_common_args, write_json  # bench/_common.py (this folder is on sys.path when run as a script)

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import synth  # noqa: E402
from course_lib.models.classifier import load_digit_classifier  # noqa: E402
from course_lib.compare import (  # noqa: E402
    comparison_table,
    diffusion_generator,
    measure_generator,
    mel_round_trip,
    spectrogram_round_trip,
    vae_generator,
)
from course_lib.diffusion import SpectrogramDiffusionPipeline  # noqa: E402
from course_lib.metrics import frechet_audio_distance  # noqa: E402
from course_lib.models.vae import load_min_max, load_vae  # noqa: E402

GL_ITERS = 64


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300, help="generated clips per model for the FD")
    parser.add_argument("--batch", type=int, default=50, help="clips per batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per model")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 clips, batch 10, 1 round")
    add_common_args(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.batch, args.repeats = 20, 10, 1
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.threads} threads", flush=True)

    vae = load_vae()
    mins, maxs, _ = load_min_max(ROOT / "checkpoints" / "spectrogram-vae" / "min_max_values.json")
    pipe = SpectrogramDiffusionPipeline.from_pretrained(ROOT / "checkpoints" / "digit-diffusion",
                                                        mel_overrides={"n_iter": GL_ITERS})
    judge = load_digit_classifier()
    held, _ = synth.digit_dataset(-(-args.clips // 10), seed=1000)
    held = held[:args.clips]
    other, _ = synth.digit_dataset(-(-args.clips // 10), seed=0)
    length = held.shape[1]
    generators = {
        "VAE (prior samples)": vae_generator(vae, mins, maxs, n_iter=GL_ITERS),
        "diffusion, DDIM 50": diffusion_generator(pipe, 50, eta=1.0, length=length),
        "diffusion, DDIM 10": diffusion_generator(pipe, 10, eta=1.0, length=length),
    }

    # (a) quality, and what each representation alone costs (real clips there and back, no model)
    other = other[:args.clips]
    floor = frechet_audio_distance(other, held, judge)
    references = {
        "real clips via the VAE's spectrogram + Griffin-Lim": frechet_audio_distance(
            spectrogram_round_trip(other, n_iter=GL_ITERS, generator=torch.Generator().manual_seed(0)), held, judge),
        "real clips via the 64-band mel image + Griffin-Lim": frechet_audio_distance(
            mel_round_trip(pipe.mel, other, generator=torch.Generator().manual_seed(0)), held, judge),
    }
    reports = [measure_generator(name, gen, args.clips, held, judge, batch_size=args.batch, seed=1)[0]
               for name, gen in generators.items()]
    print(comparison_table(reports, floor=floor, references=references), flush=True)

    # (b) speed, interleaved
    per_round: dict[str, list[float]] = {name: [] for name in generators}
    with torch.no_grad():
        for r in range(args.repeats):
            for name, gen in generators.items():
                started = time.perf_counter()
                gen(args.batch, torch.Generator().manual_seed(100 + r))
                per_round[name].append(args.batch / (time.perf_counter() - started))
    vae_name = next(iter(generators))
    speed = {name: round(statistics.median(v), 3) for name, v in per_round.items()}
    ratios = {name: round(statistics.median(a / b for a, b in zip(per_round[vae_name], v)), 2)
              for name, v in per_round.items() if name != vae_name}
    print("\nclips per second (median of rounds, batch of", args.batch, "):")
    for name, value in speed.items():
        extra = f"   VAE is {ratios[name]}x faster" if name in ratios else ""
        print(f"  {name:22s} {value:8.2f}{extra}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    result = {
        "clips": args.clips, "batch": args.batch, "repeats": args.repeats, "threads": args.threads,
        "griffin_lim_iterations": GL_ITERS, "fd_floor_real_vs_heldout": round(floor, 3),
        "fd_real_round_trips": {k: round(v, 3) for k, v in references.items()},
        "reports": [r.as_dict() for r in reports], "clips_per_second_median": speed,
        "vae_speed_ratio": ratios,
    }
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
