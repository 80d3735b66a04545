"""Benchmark: course_lib.mel.Mel against diffusers' Mel, audio -> image and image -> audio.

Both sides get the same slices of a music-like signal (course_lib.synth.music_clip in several
styles when available, else a synthetic mix), with ``torch.set_num_threads(2)``. Each side is
warmed up first (diffusers' first call compiles numba code), then the timings alternate
between the two sides for ``--repeats`` rounds and the medians are reported.

- audio -> image: slices per second; the fraction of pixels that differ and the largest
  difference (grey levels) between the two sides' images.
- image -> audio: seconds per image (both sides start from diffusers' images), and the
  spectral convergence of the result against the original slice's |STFT| at the best gain
  (an image keeps no absolute level), for course_lib's default (FAST), its QUALITY setting
  and the plain clamped pseudo-inverse ("lstsq").

At the end, if ``bench/bench_preprocess.py`` exposes ``run_preprocess_bench()``, its numbers
are printed too.

Run by hand (not in CI): ``python bench/bench_spectrogram.py [--quick] [--json out.json]``.
The machine is shared: the load average is printed before and after; compare ratios from
the same run only.

OpenMP threads: by default torch's two OpenMP threads spin while they wait for each other,
and on a shared 2-core machine a busy neighbour then stalls every parallel operation for a
scheduler slice, which makes timings swing by 10x. This script sets
``OMP_WAIT_POLICY=PASSIVE`` before torch starts (unless it is already set, or
``--omp-default`` is given): threads then sleep instead of spinning. The diffusers side does
its work in NumPy/SciPy/numba and is not affected.
"""

from __future__ import annotations

import os
import sys

if "--omp-default" not in sys.argv:  # must happen before torch is imported; see the docstring
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import importlib.util
import statistics
import time
import warnings
from pathlib import Path

from _common import add_common_args, write_json  # bench/_common.py (this folder is on sys.path when run as a script)
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import spectrogram as S  # noqa: E402
from course_lib.mel import FAST, QUALITY, Mel  # noqa: E402
from course_lib.metrics import spectral_convergence_best_gain  # noqa: E402

SETTINGS = {
    "course_lib default (FAST)": dict(FAST),
    "course_lib QUALITY": dict(QUALITY),
    "course_lib lstsq": {"inversion": "lstsq", "n_iter": 32},
}


def make_signal(n_slices: int, slice_size: int, sample_rate: int = 22050, seed: int = 0) -> tuple[np.ndarray, str]:
    """``n_slices * slice_size`` samples of music: synth.music_clip in turns of style, else a simple mix."""
    n = n_slices * slice_size
    try:
        from course_lib.synth import MUSIC_STYLES, music_clip

        styles = list(MUSIC_STYLES)
        per_style = -(-n_slices // len(styles))  # ceil
        parts = [music_clip(style, per_style * slice_size / sample_rate + 0.05, sample_rate, seed=seed)
                 for style in styles]
        audio = np.concatenate(parts)[:n]
        source = f"course_lib.synth.music_clip ({', '.join(styles)})"
    except ImportError:
        audio = _fallback_music(n, sample_rate, seed)
        source = "synthetic notes + drums (course_lib.synth not available)"
    return np.ascontiguousarray(audio, dtype=np.float32), source


def _fallback_music(n: int, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    out = np.zeros(n)
    pos = 0
    while pos < n:
        length = min(n - pos, int(rng.choice([0.25, 0.5]) * sr))
        f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
        tt = t[:length]
        env = np.minimum(1.0, tt / 0.01) * np.exp(-3.0 * tt)
        out[pos:pos + length] += 0.2 * env * sum(np.sin(2 * np.pi * f0 * k * tt) / k for k in range(1, 7))
        pos += length
    for start in range(0, n, int(0.25 * sr)):
        length = min(n - start, int(0.12 * sr))
        out[start:start + length] += 0.2 * rng.standard_normal(length) * np.exp(-40 * t[:length])
    return 0.8 * out / np.abs(out).max()


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _sc(reference_slices: np.ndarray, audio: np.ndarray, n_fft: int, hop: int) -> list[float]:
    """Best-gain spectral convergence of each rebuilt clip against its original slice."""
    ref = S.magnitude(S.stft(reference_slices, n_fft, hop))
    est = S.magnitude(S.stft(np.asarray(audio, dtype=np.float32), n_fft, hop))
    frames = min(ref.shape[-1], est.shape[-1])
    return spectral_convergence_best_gain(ref[..., :frames], est[..., :frames]).tolist()


def run_bench(n_slices: int = 16, n_i2a: int = 16, repeats: int = 3, threads: int = 2,
              a2i_passes: int = 5) -> dict[str, Any]:
    """Time both sides on the same slices; return the numbers (also used for ``--json``)."""
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from diffusers.pipelines.deprecated.audio_diffusion.mel import Mel as DiffusersMel
    load_before = os.getloadavg()[0]
    theirs = DiffusersMel()
    ours = {name: Mel(**kw) for name, kw in SETTINGS.items()}
    default = ours["course_lib default (FAST)"]
    audio, source = make_signal(n_slices, theirs.slice_size, theirs.sr)
    theirs.load_audio(raw_audio=audio)
    assert theirs.get_number_of_slices() == n_slices
    slices = audio.reshape(n_slices, -1)

    # warm-up: numba compilation on diffusers' side, caches on ours
    theirs.image_to_audio(theirs.audio_slice_to_image(0))
    default.audio_to_images(audio[: theirs.slice_size])
    for mel in ours.values():
        mel.images_to_audio(default.audio_to_images(audio[: theirs.slice_size]))

    a2i = {"diffusers": [], "course_lib": []}
    i2a: dict[str, list[float]] = {"diffusers": [], **{name: [] for name in ours}}
    their_images: list = []
    our_images = None
    their_audio: list = []
    our_audio: dict[str, Any] = {}
    for _ in range(repeats):
        # audio -> image is quick: time `a2i_passes` passes over the slices so each timing is long
        # enough (≥ 0.3 s) not to be one scheduler hiccup
        t, their_images = _timed(lambda: [[theirs.audio_slice_to_image(i) for i in range(n_slices)]
                                          for _ in range(a2i_passes)][-1])
        a2i["diffusers"].append(t / a2i_passes)
        t, our_images = _timed(lambda: [default.audio_to_images(audio) for _ in range(a2i_passes)][-1])
        a2i["course_lib"].append(t / a2i_passes)
        np.random.seed(0)  # librosa's Griffin-Lim draws its phases from NumPy's global generator
        t, their_audio = _timed(lambda: [theirs.image_to_audio(im) for im in their_images[:n_i2a]])
        i2a["diffusers"].append(t / n_i2a)
        stack = np.stack([np.asarray(im) for im in their_images[:n_i2a]])
        for name, mel in ours.items():
            t, our_audio[name] = _timed(lambda: mel.images_to_audio(stack))
            i2a[name].append(t / n_i2a)

    theirs_px = np.stack([np.asarray(im) for im in their_images]).astype(int)
    diff = np.abs(our_images.numpy().astype(int) - theirs_px)
    a2i_med = {k: statistics.median(v) for k, v in a2i.items()}
    i2a_med = {k: statistics.median(v) for k, v in i2a.items()}
    sc = {"diffusers": _sc(slices[:n_i2a], np.stack(their_audio), theirs.n_fft, theirs.hop_length)}
    for name in ours:
        sc[name] = _sc(slices[:n_i2a], our_audio[name].numpy(), theirs.n_fft, theirs.hop_length)
    sc_mean = {k: float(np.mean(v)) for k, v in sc.items()}
    return {
        "signal": source,
        "n_slices_audio_to_image": n_slices,
        "n_images_image_to_audio": n_i2a,
        "repeats": repeats,
        "audio_to_image_passes_per_timing": a2i_passes,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "audio_to_image": {
            "diffusers_slices_per_s": n_slices / a2i_med["diffusers"],
            "course_lib_slices_per_s": n_slices / a2i_med["course_lib"],
            "speedup": a2i_med["diffusers"] / a2i_med["course_lib"],
            "pixels_differing_fraction": float((diff > 0).mean()),
            "max_pixel_diff": int(diff.max()),
            "times_s_per_pass": a2i,
        },
        "image_to_audio": {
            name: {
                "s_per_image": i2a_med[name],
                "speedup_vs_diffusers": i2a_med["diffusers"] / i2a_med[name],
                "spectral_convergence_best_gain": sc_mean[name],
                "sc_ratio_vs_diffusers": sc_mean[name] / sc_mean["diffusers"],
                "settings": SETTINGS.get(name, {"librosa": "nnls + griffinlim", "n_iter": theirs.n_iter}),
                "times_s_per_image": i2a[name],
            }
            for name in i2a
        },
    }


def print_table(result: dict[str, Any]) -> None:
    """Print the numbers as a small Markdown table."""
    a2i = result["audio_to_image"]
    print(f"signal: {result['signal']}; threads={result['torch_threads']}; "
          f"OMP_WAIT_POLICY={result['omp_wait_policy']}; repeats={result['repeats']}; "
          f"load average before/after: {result['load_average_1min_before_after']}")
    print()
    print(f"audio -> image ({result['n_slices_audio_to_image']} slices of 256x256)")
    print("| side | slices/s | speed-up | pixels differing | max diff |")
    print("|---|---:|---:|---:|---:|")
    print(f"| diffusers Mel | {a2i['diffusers_slices_per_s']:.1f} | 1.00x | | |")
    print(f"| course_lib Mel | {a2i['course_lib_slices_per_s']:.1f} | {a2i['speedup']:.2f}x | "
          f"{100 * a2i['pixels_differing_fraction']:.4f}% | {a2i['max_pixel_diff']} |")
    print()
    print(f"image -> audio ({result['n_images_image_to_audio']} images)")
    print("| side | s/image | speed-up | spectral convergence (best gain) | SC / diffusers |")
    print("|---|---:|---:|---:|---:|")
    for name, row in result["image_to_audio"].items():
        label = "diffusers Mel (librosa)" if name == "diffusers" else name
        print(f"| {label} | {row['s_per_image']:.3f} | {row['speedup_vs_diffusers']:.2f}x | "
              f"{row['spectral_convergence_best_gain']:.4f} | {row['sc_ratio_vs_diffusers']:.2f} |")


def run_preprocess_rows(quick: bool) -> dict[str, Any] | None:
    """Call bench/bench_preprocess.py's ``run_preprocess_bench()`` if it exists; return its dict."""
    path = ROOT / "bench" / "bench_preprocess.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("bench_preprocess", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    runner = getattr(module, "run_preprocess_bench", None)
    if runner is None:
        return None
    try:
        return runner(n_files=60, repeats=2) if quick else runner()
    except TypeError:  # a different signature: use its defaults
        return runner()


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 slices, 1 repeat: a smoke run")
    add_common_args(parser)
    parser.add_argument("--slices", type=int, default=16, help="slices for audio -> image (default 16)")
    parser.add_argument("--images", type=int, default=16, help="images for image -> audio (default 16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-preprocess", action="store_true", help="skip bench_preprocess.py")
    args = parser.parse_args()
    n_slices, n_images, repeats = (4, 4, 1) if args.quick else (args.slices, min(args.images, args.slices),
                                                                  args.repeats)
    result = run_bench(n_slices, n_images, repeats, args.threads, a2i_passes=1 if args.quick else 5)
    print_table(result)
    if not args.no_preprocess:
        rows = run_preprocess_rows(args.quick)
        if rows is not None:
            result["preprocess"] = rows
            print()
            print("bench_preprocess.py")
            for key, value in rows.items():
                if key != "times_s":
                    print(f"  {key}: {value}")
    write_json(args.json, result)


if __name__ == "__main__":
    main()
