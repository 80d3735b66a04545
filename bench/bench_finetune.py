"""Benchmark: lesson 03's data path, the tutorial's DataLoader against course_lib's cached mel slices.

Both paths get the same clips: a course-made genre dataset with the columns of
``lewtun/music_genres`` (``course_lib.data.make_music_dataset``: 44.1 kHz 16-bit WAV in an
``Audio`` feature, 30 s per clip by default, as in the real dataset), and the shipped small model's
Mel (``checkpoints/mel-diffusion-64``: 64x64 images, 22 050 Hz, n_fft 1024, hop 512).

(a) The data path alone, in batches per second:
    - tutorial: ``course_lib.data.tutorial_dataloader``, a torch DataLoader whose collate function
      decodes each row, resamples 44.1 k -> 22.05 k with a torchaudio ``Resample`` module, picks a
      random slice and runs the Mel on it, for every clip of every batch;
    - cached: ``course_lib.data.CachedMelSlices``, whose batches are random crops of whole-clip mel
      spectrograms computed once. The one-off cost of building that cache (decode + resample + mel
      of every whole clip, written to a safetensors file) and of reading it back in a later session
      are reported separately, with the number of tutorial epochs that the build costs.
(b) End to end: training samples per second through ``course_lib.training.train`` with the
    shipped model's UNet2DModel configuration (fresh weights, the same for both), its DDPM scheduler,
    the same batch size and number of steps, fed by each path.

Each path is warmed up first (the tutorial's before the cache is built, so the build is not charged
for building resampling kernels and filter banks); then the two alternate for ``--repeats`` rounds
and the medians and their ratios (cached / tutorial) are reported. The machine is shared: the load average is recorded
before and after; compare ratios from the same run only.

Run by hand (not in CI): ``python bench/bench_finetune.py [--quick] [--json out.json]``.
``OMP_WAIT_POLICY=PASSIVE`` is set before torch starts (see ``bench_spectrogram.py``) unless
``--omp-default`` is given.
"""

from __future__ import annotations

import os
import sys

if "--omp-default" not in sys.argv:  # must happen before torch is imported
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import data as D  # noqa: E402
from course_lib.mel import Mel  # noqa: E402
from course_lib.diffusion import diffusion_loss  # noqa: E402
from course_lib.training import TrainConfig, train  # noqa: E402

CHECKPOINT = ROOT / "checkpoints" / "mel-diffusion-64"


def make_clips(n_clips: int, seconds: float, seed: int = 0) -> Any:
    """``n_clips`` course-made songs (the six styles in turn) at 44.1 kHz, as a datasets.Dataset."""
    per_style = -(-n_clips // 6)  # ceil
    return D.make_music_dataset(n_per_style=per_style, duration=seconds, sample_rate=44100, seed=seed).select(
        range(n_clips))


def _epoch_of_batches(make_batches: Callable[[int], Any], epoch: int) -> int:
    """Pull every batch of one epoch; return how many there were (checking their shape on the way)."""
    count = 0
    for batch in make_batches(epoch):
        assert batch.ndim == 4 and batch.shape[1] == 1 and float(batch.abs().max()) <= 1.0
        count += 1
    return count


def time_batches(make_batches: Callable[[int], Any], epoch: int, min_seconds: float) -> float:
    """Batches per second: whole epochs from ``epoch`` on, until at least ``min_seconds`` have passed."""
    batches, start = 0, time.perf_counter()
    while True:
        batches += _epoch_of_batches(make_batches, epoch)
        epoch += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return batches / elapsed


def build_unet(seed: int = 0) -> torch.nn.Module:
    """The shipped small model's UNet2DModel architecture with fresh weights drawn from ``seed``."""
    from diffusers import UNet2DModel

    config = json.loads((CHECKPOINT / "unet" / "config.json").read_text())
    torch.manual_seed(seed)
    return UNet2DModel.from_config(config)


def time_training(data: Any, batch_size: int, steps: int, out: Path) -> float:
    """Training samples per second for ``steps`` optimizer steps of a fresh UNet fed by ``data``."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_pretrained(str(CHECKPOINT / "scheduler"))
    model = build_unet()
    config = TrainConfig(output_dir=str(out), max_steps=steps, batch_size=batch_size, lr=1e-4,
                         checkpoint_every=10**9, seed=0)
    start = time.perf_counter()
    result = train(model, data, lambda m, b, g: diffusion_loss(m, b, scheduler, g), config, resume=False,
                   progress=False)
    elapsed = time.perf_counter() - start
    assert result.steps == steps
    return steps * batch_size / elapsed


def run_finetune_bench(n_clips: int = 24, seconds: float = 30.0, batch_size: int = 8, steps: int = 12,
                       repeats: int = 3, threads: int = 2, min_seconds: float = 1.0) -> dict[str, Any]:
    """Time both data paths on the same clips, alone and feeding training; return the numbers."""
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    mel = Mel.from_config(CHECKPOINT / "mel")
    start = time.perf_counter()
    clips = make_clips(n_clips, seconds)
    make_s = time.perf_counter() - start
    work = Path(tempfile.mkdtemp(prefix="bench_finetune_"))

    def tutorial(epoch: int) -> Any:
        return D.tutorial_dataloader(clips, mel, batch_size, epoch=epoch)

    try:
        _epoch_of_batches(tutorial, 0)  # warm-up first, so that the build below is not charged for it
        cached = D.CachedMelSlices(clips, mel, batch_size=batch_size, folder=work / "cache", progress=False)
        assert not cached.from_cache
        build_s = cached.build_seconds
        reloaded = D.CachedMelSlices(clips, mel, batch_size=batch_size, folder=work / "cache", progress=False)
        assert reloaded.from_cache
        load_s = reloaded.build_seconds
        _epoch_of_batches(cached, 0)
        paths = {"tutorial": tutorial, "cached": cached}
        data_rates: dict[str, list[float]] = {k: [] for k in paths}
        for r in range(repeats):
            for key, make_batches in paths.items():
                data_rates[key].append(time_batches(make_batches, 1 + 100 * r, min_seconds))

        for key, make_batches in paths.items():  # warm-up of training (diffusers import, first passes)
            time_training(make_batches, batch_size, 2, work / f"warm_{key}")
        train_rates: dict[str, list[float]] = {k: [] for k in paths}
        for r in range(repeats):
            for key, make_batches in paths.items():
                train_rates[key].append(time_training(make_batches, batch_size, steps, work / f"run_{key}_{r}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    data_med = {k: statistics.median(v) for k, v in data_rates.items()}
    train_med = {k: statistics.median(v) for k, v in train_rates.items()}
    tutorial_epoch_s = len(cached) / data_med["tutorial"]
    return {
        "clips": n_clips,
        "seconds_per_clip": seconds,
        "mel": {k: mel.to_dict()[k] for k in ("x_res", "y_res", "sample_rate", "n_fft", "hop_length")},
        "batch_size": batch_size,
        "batches_per_epoch": len(cached),
        "train_steps": steps,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "dataset_generation_s": round(make_s, 2),
        "cache_build_s": round(build_s, 3),
        "cache_load_s": round(load_s, 4),
        "cache_mib": round(cached.db.numel() * 4 / 2**20, 2),
        "cache_build_in_tutorial_epochs": round(build_s / tutorial_epoch_s, 2),
        "data_batches_per_s": data_rates,
        "data_median_batches_per_s": data_med,
        "data_speedup_cached_over_tutorial": data_med["cached"] / data_med["tutorial"],
        "train_samples_per_s": train_rates,
        "train_median_samples_per_s": train_med,
        "train_speedup_cached_over_tutorial": train_med["cached"] / train_med["tutorial"],
        "train_data_share_tutorial": 1.0 - train_med["tutorial"] / train_med["cached"],
    }


def main() -> None:
    """Command line entry point: print the results as JSON (and write them with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24, help="clips in the dataset (styles in turn)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each clip (lewtun/music_genres: ~30 s)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per training run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the course measures with 2)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="least time per data-path measurement")
    parser.add_argument("--quick", action="store_true", help="a small, fast run (12 clips of 10 s, 4 steps, 1 repeat)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")
    parser.add_argument("--omp-default", action="store_true", help="keep OpenMP's default (spinning) wait policy")
    args = parser.parse_args()
    if args.quick:
        args.clips, args.seconds, args.steps, args.repeats, args.min_seconds = 12, 10.0, 4, 1, 0.3
    warnings.filterwarnings("ignore")
    result = run_finetune_bench(args.clips, args.seconds, args.batch_size, args.steps, args.repeats, args.threads,
                                args.min_seconds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
