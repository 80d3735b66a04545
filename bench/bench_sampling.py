"""Benchmark: lesson 02's samplers and Mels, on the course's shipped model, in one run.

(a) Samplers on ``checkpoints/mel-diffusion-64`` (64x64 mel images, 1.0 M-parameter UNet):
    DDIM 50 steps with eta 0 and eta 1, and DDPM 1000 steps. ``--clips`` clips each, made in
    batches of ``--batch`` with the same starting noise for every sampler (batch b uses seed
    ``SEED + b``); the batches alternate between samplers, so drift in the machine's speed hits
    all of them alike. Reported: median seconds per batch, the ratio to DDIM-50, and the Fréchet
    distance (FD, on the course style classifier's embeddings) of each sampler's clips to
    held-out real clips (``course_lib.synth.music_clip``, seeds 70 000 and up, never trained
    on), with two yardsticks: the same network untrained (DDIM-50, eta 1) and other real clips.
(b) ``course_lib.Mel`` vs diffusers' ``Mel`` (librosa inside, same config) as ``pipe.mel`` in a
    full generation (DDIM-50, eta 1, one batch, the same seed, hence the same images): total
    seconds and the share spent turning images into audio (timed inside the call). Both audios
    are scored by spectral convergence against the image itself: each clip is turned back into
    a mel image with one shared analysis and compared, in mel magnitude with the best gain,
    with the generated image (how faithfully the Mel realises what the UNet drew).
(c) The same Mel comparison at teticio's size: a 256x256 ``UNet2DModel`` built from the config
    of teticio's audio-diffusion checkpoints, **untrained** (random weights; the Mel's cost
    does not depend on them), a few DDIM steps, ``Mel()`` defaults (n_fft 2048, hop 512). The
    time of one UNet step is measured too, so the Mel's share at 50 steps can be worked out.

Run by hand (not in CI): ``python bench/bench_sampling.py [--quick] [--json out.json]``. The
full run takes about 25 minutes on 2 shared cores (DDPM's 1000 steps are most of it); ``--quick`` is
a smoke run of a minute or two whose numbers mean little. Compare ratios from the same run;
the load average before and after is printed. ``--one NAME --batch B`` makes a single batch one
way (a sampler, or DDIM-50 eta 1 with one of the two Mels) and exits, so whole processes can be
timed against each other from outside, start-up included.
"""

from __future__ import annotations

import os
import sys

if "--omp-default" not in sys.argv:  # before torch is imported; see bench_spectrogram.py's docstring
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import add_common_args, write_json  # bench/_common.py (this folder is on sys.path when run as a script)

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import synth  # noqa: E402
from course_lib.models.classifier import load_style_classifier  # noqa: E402
from course_lib.diffusion import SpectrogramDiffusionPipeline  # noqa: E402
from course_lib.metrics import frechet_audio_distance, spectral_convergence_best_gain  # noqa: E402
from course_lib.mel import Mel  # noqa: E402

MODEL = ROOT / "checkpoints" / "mel-diffusion-64"
SEED = 123  # batch b of every sampler starts from the noise of seed SEED + b
REAL_SEED = 70_000  # held-out real clips: training used 1000+, the model card's eval 50 000+ / 60 000+
FLOOR_SEED = 90_000  # a second real set, for the real-vs-real floor

# The UNet of teticio's audio-diffusion-256 checkpoints (diffusers' DDPM-256 layout), 1 channel.
TETICIO_UNET = {
    "sample_size": 256,
    "in_channels": 1,
    "out_channels": 1,
    "layers_per_block": 2,
    "block_out_channels": (128, 128, 256, 256, 512, 512),
    "down_block_types": ("DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D",
                         "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"),
}


def _diffusers_mel(course_mel: Mel) -> Any:
    """diffusers' own ``Mel`` with the same image size and STFT settings as ``course_mel``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers import Mel as DiffusersMel

    return DiffusersMel(x_res=course_mel.x_res, y_res=course_mel.y_res, sample_rate=course_mel.sr,
                        n_fft=course_mel.n_fft, hop_length=course_mel.hop_length, top_db=course_mel.top_db,
                        n_iter=course_mel.n_iter)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _real_clips(n: int, length: int, seed: int) -> np.ndarray:
    """``n`` real clips (the six styles in turn), each ``length`` samples."""
    styles = synth.MUSIC_STYLES
    duration = max(1.5, length / 22050 + 0.01)  # 1.5 s as the model card's eval, cut to the generated length
    clips = [synth.music_clip(styles[i % len(styles)], duration=duration, sample_rate=22050, seed=seed + i)[:length]
             for i in range(n)]
    return np.stack(clips).astype(np.float32)


def _use_scheduler(pipe: SpectrogramDiffusionPipeline, kind: str) -> None:
    from diffusers import DDIMScheduler, DDPMScheduler

    cls = DDIMScheduler if kind == "ddim" else DDPMScheduler
    pipe.scheduler = cls.from_config(pipe.scheduler.config)


# ----------------------------------------------------------------------------- (a) samplers


def bench_samplers(pipe: SpectrogramDiffusionPipeline, clips: int, batch: int, ddpm_steps: int,
                   classifier: Any) -> dict[str, Any]:
    """Seconds per batch and FD to held-out real clips for DDIM-50 (eta 0 and 1) and DDPM."""
    from diffusers import UNet2DModel

    samplers = {
        "DDIM 50 steps, eta 0": ("ddim", 50, 0.0),
        "DDIM 50 steps, eta 1": ("ddim", 50, 1.0),
        f"DDPM {ddpm_steps} steps": ("ddpm", ddpm_steps, 0.0),
    }
    n_batches = -(-clips // batch)
    times: dict[str, list[float]] = {name: [] for name in samplers}
    audio: dict[str, list[np.ndarray]] = {name: [] for name in samplers}
    _use_scheduler(pipe, "ddim")
    pipe(batch, steps=2, generator=0, progress=False)  # warm-up
    for b in range(n_batches):
        size = min(batch, clips - b * batch)
        for name, (kind, steps, eta) in samplers.items():
            _use_scheduler(pipe, kind)
            t, out = _timed(lambda size=size, steps=steps, eta=eta, b=b: pipe(size, steps=steps, eta=eta,
                                                                               generator=SEED + b, progress=False))
            times[name].append(t / size * batch)  # a short last batch is scaled to a full one
            audio[name].append(out.audios)
        print(f"  batch {b + 1}/{n_batches}: " + ", ".join(f"{n}: {times[n][-1]:.2f} s" for n in samplers),
              flush=True)

    made = {name: np.concatenate(parts) for name, parts in audio.items()}
    length = next(iter(made.values())).shape[-1]
    real = _real_clips(clips, length, REAL_SEED)
    other_real = _real_clips(clips, length, FLOOR_SEED)

    torch.manual_seed(0)
    untrained = SpectrogramDiffusionPipeline(UNet2DModel.from_config(pipe.unet.config).eval(), pipe.scheduler,
                                             pipe.mel)
    _use_scheduler(untrained, "ddim")
    noise_like = np.concatenate([untrained(min(batch, clips - b * batch), steps=50, eta=1.0, generator=SEED + b,
                                           progress=False).audios for b in range(n_batches)])

    fd = {name: frechet_audio_distance(a, real, classifier) for name, a in made.items()}
    base = statistics.median(times["DDIM 50 steps, eta 0"])
    rows = {
        name: {
            "scheduler": kind, "steps": steps, "eta": eta,
            "s_per_batch": statistics.median(times[name]),
            "time_ratio_vs_ddim50_eta0": statistics.median(times[name]) / base,
            "fd_to_heldout_real": fd[name],
            "times_s_per_batch": times[name],
        }
        for name, (kind, steps, eta) in samplers.items()
    }
    return {
        "clips_per_sampler": clips,
        "batch": batch,
        "rows": rows,
        "fd_untrained_ddim50_eta1": frechet_audio_distance(noise_like, real, classifier),
        "fd_real_vs_other_real": frechet_audio_distance(other_real, real, classifier),
    }


# ----------------------------------------------------------------------------- (b, c) Mels


def _mel_magnitude(images: np.ndarray, top_db: float) -> torch.Tensor:
    """uint8 images (N, n_mels, frames) -> mel magnitudes (relative to each image's loudest pixel)."""
    db = torch.from_numpy(images.astype(np.float32)) * (top_db / 255.0) - top_db
    return torch.pow(10.0, db / 20.0)


def image_fidelity(images: np.ndarray, audios: np.ndarray, mel: Mel) -> float:
    """Mean best-gain spectral convergence between generated images and the mel images of their audio.

    Both sides go through the same analysis (``mel.audio_to_images``), so the number says how
    faithfully an image -> audio step realised the image, whichever Mel made the audio. The
    last column is left out: the audio ends half a hop before it and is padded with silence.
    """
    again = mel.audio_to_images(torch.from_numpy(np.ascontiguousarray(audios)), pad=True).numpy()
    ref = _mel_magnitude(images[..., :-1], mel.top_db)
    est = _mel_magnitude(again[..., :-1], mel.top_db)
    return float(spectral_convergence_best_gain(ref, est).mean())


def _mel_timer(pipe: SpectrogramDiffusionPipeline) -> list[float]:
    """Make ``pipe`` record how long each images -> audio call takes (inside its ``__call__``)."""
    spent: list[float] = []
    inner = SpectrogramDiffusionPipeline.images_to_audio.__get__(pipe)

    def timed_images_to_audio(images: np.ndarray) -> np.ndarray:
        t, out = _timed(lambda: inner(images))
        spent.append(t)
        return out

    pipe.images_to_audio = timed_images_to_audio  # type: ignore[method-assign]
    return spent


def bench_mels(pipe: SpectrogramDiffusionPipeline, batch: int, steps: int, eta: float, repeats: int,
               fidelity: bool) -> dict[str, Any]:
    """Full generations with ``course_lib.Mel`` and diffusers' ``Mel`` in turn: total and Mel seconds."""
    ours = pipe.mel
    mels = {"course_lib Mel": ours, "diffusers Mel (librosa)": _diffusers_mel(ours)}
    spent = _mel_timer(pipe)
    _use_scheduler(pipe, "ddim")
    for mel in mels.values():  # warm-up: librosa compiles numba kernels on first use
        pipe.mel = mel
        pipe(1, steps=1, generator=0, progress=False)
    totals: dict[str, list[float]] = {name: [] for name in mels}
    in_mel: dict[str, list[float]] = {name: [] for name in mels}
    outputs: dict[str, Any] = {}
    for _ in range(repeats):
        for name, mel in mels.items():
            pipe.mel = mel
            np.random.seed(0)  # librosa's Griffin-Lim draws its starting phases from NumPy's global generator
            spent.clear()
            t, outputs[name] = _timed(lambda: pipe(batch, steps=steps, eta=eta, generator=SEED, progress=False))
            totals[name].append(t)
            in_mel[name].append(sum(spent))
    pipe.mel = ours
    del pipe.images_to_audio  # back to the class's method
    same_images = bool(np.array_equal(outputs["course_lib Mel"].images, outputs["diffusers Mel (librosa)"].images))
    rows = {}
    for name in mels:
        total, mel_s = statistics.median(totals[name]), statistics.median(in_mel[name])
        rows[name] = {"total_s": total, "mel_s": mel_s, "unet_and_rest_s": total - mel_s, "mel_share": mel_s / total,
                      "mel_s_per_image": mel_s / batch, "totals_s": totals[name], "mel_times_s": in_mel[name]}
        if fidelity:
            rows[name]["image_fidelity_sc"] = image_fidelity(outputs[name].images, outputs[name].audios, ours)
    c, d = rows["course_lib Mel"], rows["diffusers Mel (librosa)"]
    return {
        "batch": batch, "steps": steps, "eta": eta, "repeats": repeats, "same_images": same_images,
        "mel_config": ours.to_dict(), "rows": rows,
        "total_speedup": d["total_s"] / c["total_s"], "mel_speedup": d["mel_s"] / c["mel_s"],
    }


def bench_teticio_size(batch: int, steps: int, repeats: int) -> dict[str, Any]:
    """(b) at 256x256 with an untrained UNet of teticio's layout, plus one UNet step's time."""
    from diffusers import DDIMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(**TETICIO_UNET).eval()
    pipe = SpectrogramDiffusionPipeline(unet, DDIMScheduler(), Mel())
    result = bench_mels(pipe, batch, steps, 1.0, repeats, fidelity=False)
    noise = torch.randn(batch, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        unet(noise, 999)  # warm-up
        step_s = statistics.median(_timed(lambda: unet(noise, 999))[0] for _ in range(max(repeats, 2)))
    result["untrained_weights"] = True
    result["unet_parameters"] = sum(p.numel() for p in unet.parameters())
    result["unet_step_s"] = step_s
    for row in result["rows"].values():  # what a real 50-step DDIM run would spend in the Mel
        row["mel_share_at_50_steps"] = row["mel_s"] / (50 * step_s + row["mel_s"])
    return result


# ----------------------------------------------------------------------------- driver

ONE_RUNS = {  # --one NAME: a single generation, for timing the whole process from outside
    "ddim50-eta0": ("ddim", 50, 0.0, "course"),
    "ddim50-eta1": ("ddim", 50, 1.0, "course"),
    "ddpm1000": ("ddpm", 1000, 0.0, "course"),
    "mel-course": ("ddim", 50, 1.0, "course"),
    "mel-diffusers": ("ddim", 50, 1.0, "diffusers"),
}


def run_one(name: str, batch: int, threads: int = 2) -> float:
    """Load the shipped model and make one batch with the sampler / Mel ``name``; return its seconds."""
    torch.set_num_threads(threads)
    kind, steps, eta, mel = ONE_RUNS[name]
    pipe = SpectrogramDiffusionPipeline.from_pretrained(MODEL)
    if mel == "diffusers":
        pipe.mel = _diffusers_mel(pipe.mel)
    _use_scheduler(pipe, kind)
    t, _ = _timed(lambda: pipe(batch, steps=steps, eta=eta, generator=SEED, progress=False))
    return t



def run_bench(clips: int = 60, batch: int = 12, ddpm_steps: int = 1000, mel_batch: int = 12, mel_repeats: int = 3,
              big_batch: int = 1, big_steps: int = 2, big_repeats: int = 3, threads: int = 2) -> dict[str, Any]:
    """All three parts; returns the numbers (also what ``--json`` writes)."""
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    pipe = SpectrogramDiffusionPipeline.from_pretrained(MODEL)
    classifier = load_style_classifier()
    print("(a) samplers ...", flush=True)
    samplers = bench_samplers(pipe, clips, batch, ddpm_steps, classifier)
    print("(b) Mels on the shipped model ...", flush=True)
    mels = bench_mels(pipe, mel_batch, 50, 1.0, mel_repeats, fidelity=True)
    print("(c) Mels at 256x256 (untrained UNet) ...", flush=True)
    big = bench_teticio_size(big_batch, big_steps, big_repeats)
    return {
        "model": str(MODEL.relative_to(ROOT)),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "samplers": samplers,
        "mel_64": mels,
        "mel_256_untrained": big,
    }


def print_table(result: dict[str, Any]) -> None:
    """Print the numbers as small Markdown tables."""
    s = result["samplers"]
    print(f"\nmodel {result['model']}; threads={result['torch_threads']}; "
          f"OMP_WAIT_POLICY={result['omp_wait_policy']}; load average before/after: "
          f"{result['load_average_1min_before_after']}")
    print(f"\n(a) samplers: {s['clips_per_sampler']} clips each, batches of {s['batch']}")
    print("| sampler | s/batch | time vs DDIM-50 eta 0 | FD to held-out real |")
    print("|---|---:|---:|---:|")
    for name, row in s["rows"].items():
        print(f"| {name} | {row['s_per_batch']:.2f} | {row['time_ratio_vs_ddim50_eta0']:.1f}x | "
              f"{row['fd_to_heldout_real']:.1f} |")
    print(f"| same network untrained (DDIM 50, eta 1) | | | {s['fd_untrained_ddim50_eta1']:.1f} |")
    print(f"| other real clips (floor) | | | {s['fd_real_vs_other_real']:.2f} |")
    for key, title in (("mel_64", "(b) Mels in a full generation, shipped 64x64 model"),
                       ("mel_256_untrained", ("(c) Mels in a full generation, 256x256 UNet of teticio's layout, "
                                              "UNTRAINED weights"))):
        m = result[key]
        extra = (f"; {m['unet_parameters'] / 1e6:.1f} M parameters, one UNet step {m['unet_step_s']:.2f} s"
                 if "unet_step_s" in m else "")
        print(f"\n{title}: batch {m['batch']}, DDIM {m['steps']} steps, eta {m['eta']}, "
              f"median of {m['repeats']}; same images from both: {m['same_images']}{extra}")
        fid = "image_fidelity_sc" in next(iter(m["rows"].values()))
        at50 = "mel_share_at_50_steps" in next(iter(m["rows"].values()))
        print("| Mel | total s | of which Mel s | Mel share |" + (" share at 50 steps |" if at50 else "")
              + (" SC image vs its audio |" if fid else ""))
        print("|---|---:|---:|---:|" + ("---:|" if at50 else "") + ("---:|" if fid else ""))
        for name, row in m["rows"].items():
            print(f"| {name} | {row['total_s']:.2f} | {row['mel_s']:.2f} | {100 * row['mel_share']:.0f} % |"
                  + (f" {100 * row['mel_share_at_50_steps']:.1f} % |" if at50 else "")
                  + (f" {row['image_fidelity_sc']:.3f} |" if fid else ""))
        print(f"speed-up with course_lib's Mel: whole generation {m['total_speedup']:.2f}x, "
              f"image -> audio {m['mel_speedup']:.1f}x")


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 8 clips, DDPM 100 steps, 1 repeat (numbers mean little)")
    add_common_args(parser)
    parser.add_argument("--clips", type=int, default=60, help="clips per sampler for the FD (default 60)")
    parser.add_argument("--batch", type=int, default=12, help="batch size for (a) and (b) (default 12)")
    parser.add_argument("--ddpm-steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="repeats for (b) and (c)")
    parser.add_argument("--one", choices=sorted(ONE_RUNS), default=None,
                        help="only make one batch of --batch clips this way and print its seconds "
                             "(for timing whole processes against each other)")
    args = parser.parse_args()
    if args.one is not None:
        print(f"{args.one}: {run_one(args.one, args.batch, args.threads):.3f} s")
        return
    if args.quick:
        kwargs = {"clips": 8, "batch": 4, "ddpm_steps": 100, "mel_batch": 4, "mel_repeats": 1, "big_batch": 1,
                  "big_steps": 1, "big_repeats": 1}
    else:
        kwargs = {"clips": args.clips, "batch": args.batch, "ddpm_steps": args.ddpm_steps, "mel_batch": args.batch,
                  "mel_repeats": args.repeats, "big_repeats": args.repeats}
    result = run_bench(threads=args.threads, **kwargs)
    print_table(result)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
