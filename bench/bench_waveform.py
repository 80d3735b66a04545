"""Benchmark: lesson 05's waveform U-Net against the peer's, the same architecture in two libraries.

Compared: ``course_lib.models.unet1d.UNet1D`` with ``CONFIGS["reference"]`` (unconditional,
``num_classes=0``, so exactly the peer's 31 574 724 parameters) against ``audio-diffusion-pytorch``
0.1.3's ``DiffusionModel(UNetV0, VDiffusion, VSampler)`` built with ``a-unet`` 0.0.16 the way
tiny-audio-diffusion builds it (channels 32..256 over 8 levels, items 2/4, attention at the three
lowest levels with 8 heads x 64, modulation features 1024, 8 GroupNorm groups).

Measured for each side, in float32 and in bf16 autocast (``torch.autocast("cpu", torch.bfloat16)``):

- ``train b1`` / ``train b4``: one training step on stereo clips of ``--length`` samples (batch 1
  and 4): zero the gradients, the library's own v-diffusion loss (ours: ``vdiffusion.v_loss``; the
  peer: ``DiffusionModel.forward``, i.e. its ``VDiffusion``), backward, gradient clipping at 1.0,
  AdamW (lr 1e-4, betas (0.95, 0.999), eps 1e-6, weight decay 1e-3, the peer's settings). The
  optimizer is built as ``course_lib.training.train`` builds it (ours: ``training.make_optimizer``,
  fused where torch has the kernel) or with PyTorch's defaults (the peer's Lightning module). One
  warm-up step (it also creates the optimizer's state), then the median of ``--train-steps`` timed
  steps; the optimizer's share (clipping + AdamW) is timed too, so the model's forward + backward
  speed-up can be read on its own.
- ``sample``: one clip, 50 steps of each library's own sampler (ours: ``vdiffusion.sample`` with
  ``eta=0``; the peer: ``VSampler``, the same deterministic v-sampler on the same linear grid),
  after a 1-step warm-up.
- Time: wall-clock seconds (what a learner waits) and, less sensitive to other programs sharing the
  cores, the CPU seconds of the process (all its threads).
- Peak memory: the process's maximum resident set size (``ru_maxrss``) at the end, and the same
  minus the resident size right after imports, model, optimizer and data were built ("working
  memory": what the step or the sampler itself needs).

Every measurement runs in a fresh Python process (clean peak memory; nothing one side did to the
process, its allocator or its thread pool can help or hurt the other) with ``--threads`` torch threads
(2: the course's laptop). The sides are interleaved: for every repeat and every measurement, ours
and the peer's run back to back, in alternating order; ratios are computed per pair and their
median is reported, with the medians of the raw numbers. The load average is recorded before and
after. Compare ratios from one run only.

Needs the optional extra (never needed by the course, its tests or notebooks)::

    pip install -e .[bench-peer]      # audio-diffusion-pytorch==0.1.3, a-unet==0.0.16

Run by hand (not in CI): ``python bench/bench_waveform.py [--quick] [--json out.json]``; the full run
takes 20-30 minutes on 2 shared cores, ``--quick`` (8 192 samples, 5 sampling steps, 1 repeat) about 2.
"""

from __future__ import annotations

import os
import sys

if "--omp-default" not in sys.argv:  # before torch is imported; see bench_spectrogram.py's docstring
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import add_common_args, write_json  # bench/_common.py (this folder is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parents[1]
PEER_PACKAGES = {"audio_diffusion_pytorch": "audio-diffusion-pytorch==0.1.3", "a_unet": "a-unet==0.0.16"}
INSTALL_HINT = "pip install -e .[bench-peer]   (or: pip install audio-diffusion-pytorch==0.1.3 a-unet==0.0.16)"
SIDES = ("ours", "peer")
PRECISIONS = ("fp32", "bf16")
# AdamW as tiny-audio-diffusion trains (the same for both sides).
OPTIMIZER = {"lr": 1e-4, "betas": (0.95, 0.999), "eps": 1e-6, "weight_decay": 1e-3}
MAX_GRAD_NORM = 1.0
# The peer's UNetV0 arguments (tiny-audio-diffusion), as in /work/shared/PEERS.md.
PEER_UNET = {
    "in_channels": 2,
    "channels": [32, 32, 64, 64, 128, 128, 256, 256],
    "factors": [1, 2, 2, 2, 2, 2, 2, 2],
    "items": [2, 2, 2, 2, 2, 2, 4, 4],
    "attentions": [0, 0, 0, 0, 0, 1, 1, 1],
    "attention_heads": 8,
    "attention_features": 64,
    "modulation_features": 1024,
    "resnet_groups": 8,
}


def missing_peer_packages() -> list[str]:
    """The pip names of the peer packages that are not installed (empty when all are)."""
    return [pip for module, pip in PEER_PACKAGES.items() if importlib.util.find_spec(module) is None]


# ----------------------------------------------------------------------------- one measurement (worker)


def _rss_mb() -> float:
    """The resident set size of this process now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _peak_rss_mb() -> float:
    """The largest resident set size this process has had, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _build(side: str) -> tuple[Any, Any, Any]:
    """(model, loss(x, step) -> scalar, sample(noise, steps) -> clips) for one side, weights from seed 0."""
    import torch

    if side == "ours":
        from course_lib.diffusion import vdiffusion
        from course_lib.models.unet1d import CONFIGS, UNet1D

        model = UNet1D(CONFIGS["reference"].replace(num_classes=0, class_names=()), seed=0)

        def loss(x: torch.Tensor, step: int) -> torch.Tensor:
            return vdiffusion.v_loss(model, x, generator=step)

        def sample(n: int, length: int, steps: int) -> torch.Tensor:
            return vdiffusion.sample(model, n, length, steps, generator=0, progress=False, clip=False)

        return model, loss, sample

    from audio_diffusion_pytorch import DiffusionModel, UNetV0, VDiffusion, VSampler

    torch.manual_seed(0)
    model = DiffusionModel(net_t=UNetV0, diffusion_t=VDiffusion, sampler_t=VSampler, **PEER_UNET)

    def peer_loss(x: torch.Tensor, step: int) -> torch.Tensor:
        torch.manual_seed(step)  # VDiffusion draws sigma and noise from the global generator
        return model(x)

    def peer_sample(n: int, length: int, steps: int) -> torch.Tensor:
        noise = torch.randn((n, 2, length), generator=torch.Generator().manual_seed(0))
        return model.sample(noise, num_steps=steps)

    return model, peer_loss, peer_sample


def _optimizer(side: str, params: list[Any]) -> Any:
    """AdamW with the peer's settings: as ``course_lib.training.train`` makes it (ours), PyTorch's default (peer)."""
    import torch

    if side == "ours":
        from course_lib.training import TrainConfig, make_optimizer

        return make_optimizer(params, TrainConfig(**OPTIMIZER))
    return torch.optim.AdamW(params, **OPTIMIZER)


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Do one measurement described by ``spec`` in this process and return its numbers."""
    import contextlib

    import torch

    torch.set_num_threads(int(spec["threads"]))
    side, task, precision = spec["side"], spec["task"], spec["precision"]
    length, batch = int(spec["length"]), int(spec["batch"])
    model, loss_fn, sample_fn = _build(side)
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    def autocast() -> Any:
        return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    times: list[float] = []  # wall-clock seconds
    cpu_times: list[float] = []  # CPU seconds of this process (all its threads): less sensitive to other load
    result: dict[str, Any] = {**spec, "parameters": n_params}

    if task == "train":
        model.train()
        optimizer = _optimizer(side, params)
        x = 0.1 * torch.randn((batch, 2, length), generator=torch.Generator().manual_seed(1))
        x = x.clamp(-1, 1)
        rss_built = _rss_mb()
        losses, optimizer_times = [], []
        for step in range(1 + int(spec["train_steps"])):
            start, cpu_start = time.perf_counter(), time.process_time()
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_fn(x, step)
            loss.backward()
            middle = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
            losses.append(float(loss.detach()))
            if step > 0:  # step 0 is the warm-up
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
                optimizer_times.append(time.perf_counter() - middle)
        result.update(losses=losses, optimizer_seconds=statistics.median(optimizer_times))
    else:
        model.eval()
        rss_built = _rss_mb()
        steps = int(spec["sample_steps"])
        with autocast():
            sample_fn(1, length, 1)  # warm-up
            start, cpu_start = time.perf_counter(), time.process_time()
            out = sample_fn(batch, length, steps)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        result["sample_rms"] = float(out.float().pow(2).mean().sqrt())
    peak = _peak_rss_mb()
    result.update(seconds=statistics.median(times), all_seconds=times, cpu_seconds=statistics.median(cpu_times),
                  rss_built_mb=rss_built, peak_rss_mb=peak, working_mb=peak - rss_built)
    return result


# ----------------------------------------------------------------------------- driver


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh Python process."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    if "--omp-default" in sys.argv:
        cmd.append("--omp-default")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"worker {spec} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def measurements(length: int, train_steps: int, sample_steps: int, threads: int) -> list[dict[str, Any]]:
    """The list of (task, precision, batch) measurements, each to be made for both sides."""
    common = {"length": length, "threads": threads, "train_steps": train_steps, "sample_steps": sample_steps}
    out = []
    for precision in PRECISIONS:
        for task, batch in (("train", 1), ("train", 4), ("sample", 1)):
            out.append({"task": task, "batch": batch, "precision": precision, **common})
    return out


def _name(spec: dict[str, Any]) -> str:
    what = f"train b{spec['batch']}" if spec["task"] == "train" else f"sample {spec['sample_steps']} steps"
    return f"{what}, {spec['precision']}"


def run_bench(length: int = 32768, repeats: int = 3, train_steps: int = 3, sample_steps: int = 50,
              threads: int = 2) -> dict[str, Any]:
    """Every measurement ``repeats`` times for both sides, interleaved; returns medians and per-pair ratios."""
    load_before = os.getloadavg()[0]
    specs = measurements(length, train_steps, sample_steps, threads)
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {_name(s): {side: [] for side in SIDES} for s in specs}
    for r in range(repeats):
        for i, spec in enumerate(specs):
            order = SIDES if (r + i) % 2 == 0 else SIDES[::-1]
            for side in order:
                res = _measure({**spec, "side": side})
                raw[_name(spec)][side].append(res)
                print(f"  [{r + 1}/{repeats}] {_name(spec)}, {side}: {res['seconds']:.3f} s, peak "
                      f"{res['peak_rss_mb']:.0f} MB (working {res['working_mb']:.0f} MB)", flush=True)
    rows = {}
    for name, sides in raw.items():
        ours, peer = sides["ours"], sides["peer"]
        keys = ["seconds", "cpu_seconds", "peak_rss_mb", "working_mb", "rss_built_mb"]
        if "optimizer_seconds" in ours[0]:
            for m in ours + peer:
                m["model_seconds"] = m["seconds"] - m["optimizer_seconds"]
            keys += ["optimizer_seconds", "model_seconds"]
        med = {side: {k: statistics.median(m[k] for m in sides[side]) for k in keys} for side in SIDES}
        rows[name] = {
            "ours": med["ours"],
            "peer": med["peer"],
            "speedup": statistics.median(p["seconds"] / o["seconds"] for o, p in zip(ours, peer)),
            "cpu_speedup": statistics.median(p["cpu_seconds"] / o["cpu_seconds"] for o, p in zip(ours, peer)),
            "peak_ratio": statistics.median(o["peak_rss_mb"] / p["peak_rss_mb"] for o, p in zip(ours, peer)),
            "working_ratio": statistics.median(o["working_mb"] / p["working_mb"] for o, p in zip(ours, peer)),
            "raw": sides,
        }
        if "model_seconds" in keys:
            rows[name]["model_speedup"] = statistics.median(p["model_seconds"] / o["model_seconds"]
                                                            for o, p in zip(ours, peer))
    first = next(iter(raw.values()))
    import torch

    return {
        "length": length,
        "repeats": repeats,
        "train_steps_timed": train_steps,
        "sample_steps": sample_steps,
        "torch": torch.__version__,
        "torch_threads": threads,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load_average_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "parameters": {side: first[side][0]["parameters"] for side in SIDES},
        "rows": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    """Print the medians and ratios as a Markdown table."""
    p = result["parameters"]
    print(f"\nparameters: ours {p['ours']:,}, peer {p['peer']:,} ({100 * (p['ours'] / p['peer'] - 1):+.3f} %); "
          f"stereo x {result['length']} samples; {result['repeats']} repeats; threads={result['torch_threads']}; "
          f"OMP_WAIT_POLICY={result['omp_wait_policy']}; load average before/after "
          f"{result['load_average_1min_before_after']}; torch {result['torch']}")
    print("| measurement | peer s | ours s | speed-up | CPU-s speed-up | peer peak MB | ours peak MB | peak ratio "
          "| peer working MB | ours working MB | working ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in result["rows"].items():
        o, q = row["ours"], row["peer"]
        print(f"| {name} | {q['seconds']:.2f} | {o['seconds']:.2f} | **{row['speedup']:.2f}x** | "
              f"{row['cpu_speedup']:.2f}x | "
              f"{q['peak_rss_mb']:.0f} | {o['peak_rss_mb']:.0f} | {row['peak_ratio']:.2f} | "
              f"{q['working_mb']:.0f} | {o['working_mb']:.0f} | **{row['working_ratio']:.2f}** |")
    print("\nTraining steps split: forward + backward (the model) and gradient clipping + AdamW (the optimizer)")
    print("| measurement | peer model s | ours model s | model speed-up | peer optimizer s | ours optimizer s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in result["rows"].items():
        if "model_speedup" in row:
            o, q = row["ours"], row["peer"]
            print(f"| {name} | {q['model_seconds']:.2f} | {o['model_seconds']:.2f} | {row['model_speedup']:.2f}x | "
                  f"{q['optimizer_seconds']:.3f} | {o['optimizer_seconds']:.3f} |")


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 8192 samples, 1 timed training step, 5 sampling steps, 1 repeat")
    add_common_args(parser)
    parser.add_argument("--length", type=int, default=32768, help="samples per stereo clip (default 32768)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of every measurement")
    parser.add_argument("--train-steps", type=int, default=3, help="timed training steps per process")
    parser.add_argument("--sample-steps", type=int, default=50, help="sampler steps (default 50)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    missing = missing_peer_packages()
    if missing:
        sys.exit(f"bench_waveform.py compares with the peer library, which is not installed (missing: "
                 f"{', '.join(missing)}).\nInstall the optional extra: {INSTALL_HINT}")
    if args.worker is not None:
        print("RESULT " + json.dumps(run_worker(json.loads(args.worker))), flush=True)
        return
    if args.quick:
        kwargs = {"length": 8192, "repeats": 1, "train_steps": 1, "sample_steps": 5}
    else:
        kwargs = {"length": args.length, "repeats": args.repeats, "train_steps": args.train_steps,
                  "sample_steps": args.sample_steps}
    result = run_bench(threads=args.threads, **kwargs)
    print_table(result)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
