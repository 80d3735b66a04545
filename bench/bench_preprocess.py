"""Benchmark: the classic per-file librosa loop vs course_lib's per-file and batched pipelines.

Generates ``n_files`` one-second clips (half at 8 kHz, half at 22.05 kHz, a quarter of them
shorter than the 0.74 s the features use, so they get padded) in a temporary folder, then
times, alternating and after one warm-up run of each:

(a) a faithful classic loop written with librosa (librosa.load at 22050 Hz -> right pad ->
    librosa.stft 512/256 -> drop top bin -> amplitude_to_db -> min-max -> one .npy per file,
    one stats file at the end; the stats go to JSON here, where the original used pickle);
(b) ``course_lib.preprocess.PreprocessingPipeline`` (per file, soundfile + torchaudio);
(c) ``course_lib.preprocess.preprocess_folder`` (batched, one safetensors file).

It reports the median wall time of each, the ratios (a)/(c) and (b)/(c), and the largest
absolute difference between the normalised features. (a) resamples with soxr (librosa's
default) while (b) and (c) use torchaudio's sinc resampler, so (a) vs (c) is reported
separately for the files that needed no resampling.

Run: ``python bench/bench_preprocess.py [--n-files 300] [--repeats 3] [--threads 2]``.

On a shared, oversubscribed machine torch's OpenMP threads spin-wait for each other and
single runs of the torch paths can take several times longer than usual (the NumPy-based
classic loop is hardly affected); ``OMP_WAIT_POLICY=PASSIVE`` makes the numbers steady.
The result records the load average before and after, so noisy runs can be spotted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from course_lib import preprocess as P  # noqa: E402

SAMPLE_RATE = 22050
DURATION = 0.74
FRAME_SIZE = 512
HOP_LENGTH = 256


def make_files(folder: Path, n_files: int, seed: int = 0) -> list[str]:
    """Write ``n_files`` WAV clips of tones plus noise; returns their names (sorted)."""
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n_files):
        sr = 8000 if i % 2 else 22050
        seconds = rng.uniform(0.3, 0.7) if i % 4 == 3 else 1.0
        t = np.arange(int(sr * seconds)) / sr
        freq = rng.uniform(100, 3500)
        x = 0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-t * rng.uniform(0, 4)) + 0.01 * rng.standard_normal(t.size)
        name = f"clip{i:04d}.wav"
        sf.write(folder / name, x.astype(np.float32), sr, subtype="PCM_16")
        names.append(name)
    return sorted(names)


def classic_librosa_loop(audio_dir: Path, out_dir: Path, sample_rate: int = SAMPLE_RATE,
                         duration: float = DURATION, frame_size: int = FRAME_SIZE,
                         hop_length: int = HOP_LENGTH) -> dict:
    """The per-file loop as tutorials write it (with min-max done right), using librosa."""
    import librosa

    expected = int(round(sample_rate * duration))
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = {}
    for name in sorted(os.listdir(audio_dir)):
        signal = librosa.load(audio_dir / name, sr=sample_rate, duration=duration, mono=True)[0]
        if len(signal) < expected:
            signal = np.pad(signal, (0, expected - len(signal)), mode="constant")
        stft = librosa.stft(signal, n_fft=frame_size, hop_length=hop_length)[:-1]
        log_spec = librosa.amplitude_to_db(np.abs(stft))
        lo, hi = float(log_spec.min()), float(log_spec.max())
        norm = (log_spec - lo) / (hi - lo)
        np.save(out_dir / (name + ".npy"), norm)
        stats[name] = {"min": lo, "max": hi}
    (out_dir / "min_max_values.json").write_text(json.dumps(stats))
    return stats


def _run_classic(audio_dir: Path, out: Path) -> None:
    classic_librosa_loop(audio_dir, out)


def _run_pipeline(audio_dir: Path, out: Path) -> None:
    P.PreprocessingPipeline(out, sample_rate=SAMPLE_RATE, duration=DURATION,
                            frame_size=FRAME_SIZE, hop_length=HOP_LENGTH).process(audio_dir)


def _run_batched(audio_dir: Path, out: Path) -> None:
    P.preprocess_folder(audio_dir, out / "features.safetensors", sample_rate=SAMPLE_RATE,
                        duration=DURATION, frame_size=FRAME_SIZE, hop_length=HOP_LENGTH)


def run_preprocess_bench(n_files: int = 300, repeats: int = 3, threads: int = 2) -> dict:
    """Time the three ways on the same files (alternating, after a warm-up); return the numbers."""
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    runners = {"classic": _run_classic, "pipeline": _run_pipeline, "batched": _run_batched}
    times: dict[str, list[float]] = {k: [] for k in runners}
    work = Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    try:
        audio_dir = work / "audio"
        audio_dir.mkdir()
        names = make_files(audio_dir, n_files)
        for key, run in runners.items():  # warm-up: imports, numba/FFT plans, kernel caches
            run(audio_dir, work / f"warm_{key}")
        for r in range(repeats):
            for key, run in runners.items():
                out = work / f"{key}_{r}"
                start = time.perf_counter()
                run(audio_dir, out)
                times[key].append(time.perf_counter() - start)
                if r < repeats - 1:
                    shutil.rmtree(out)
        last = repeats - 1
        batched, stats = P.load_features(work / f"batched_{last}" / "features.safetensors")
        assert stats["files"] == names
        classic = np.stack([np.load(work / f"classic_{last}" / (n + ".npy")) for n in names])
        pipeline = np.stack([np.load(work / f"pipeline_{last}" / (n + ".npy")) for n in names])
        native = np.array([sf.info(audio_dir / n).samplerate == SAMPLE_RATE for n in names])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "n_files": n_files,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "times_s": times,
        "median_classic_s": med["classic"],
        "median_pipeline_s": med["pipeline"],
        "median_batched_s": med["batched"],
        "classic_over_batched": med["classic"] / med["batched"],
        "pipeline_over_batched": med["pipeline"] / med["batched"],
        "max_abs_diff_pipeline_vs_batched": float(np.abs(pipeline - batched).max()),
        "max_abs_diff_classic_vs_batched_native_rate": float(np.abs(classic[native] - batched[native]).max()),
        "max_abs_diff_classic_vs_batched_all": float(np.abs(classic - batched).max()),
        "mean_abs_diff_classic_vs_batched_resampled": float(np.abs(classic[~native] - batched[~native]).mean()),
    }


def main() -> None:
    """Command line entry point: print the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-files", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the course measures with 2)")
    args = parser.parse_args()
    print(json.dumps(run_preprocess_bench(args.n_files, args.repeats, args.threads), indent=2))


if __name__ == "__main__":
    main()
