"""Benchmark: lesson 05's waveform U-Net against the peer's, the same architecture in two libraries.

Compared: ``course_lib.models.unet1d.UNet1D`` with ``CONFIGS["reference"]`` (unconditional,
``num_classes=0``, so exactly the peer's 31 574 724 parameters) against ``audio-diffusion-pytorch``
0.1.3's ``DiffusionModel(UNetV0, VDiffusion, VSampler)`` built with ``a-unet`` 0.0.16 the way
tiny-audio-diffusion builds it (channels 32..256 over 8 levels, items 2/4, attention at the three
lowest levels with 8 heads x 64, modulation features 1024, 8 GroupNorm groups).

Three sides: ``ours`` (eager), ``compiled`` (the same model through ``course_lib.training.compile_model``, as
``train(..., compile=True)`` and ``vdiffusion.sample(..., compile=True)`` run it: inductor, fixed shapes,
``--compile-mode``, default ``"default"``) and ``peer`` (eager, as shipped). Measured for each side, in float32 and in bf16 autocast (``torch.autocast("cpu", torch.bfloat16)``):

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
- Compiling: the warm-up (the first training step, or the 1-step sampling call) is timed on its own as
  ``first_seconds``; for the compiled side it is the compile time (a fresh process: dynamo traces, inductor
  generates and builds the kernels, or takes them from its on-disk cache when an earlier process built the same
  ones). The steady-state numbers leave it out.
- Time: wall-clock seconds (what a learner waits) and, less sensitive to other programs sharing the
  cores, the CPU seconds of the process (all its threads).
- Peak memory: the process's maximum resident set size (``VmHWM``) at the end, and "working memory": the
  peak after the warm-up (reset there through ``/proc/self/clear_refs``, so compiling is left out) minus
  the resident size right after imports, model, optimizer and data were built: what the step or the sampler
  itself needs. Inductor's compile workers are separate processes and not counted.

Every measurement runs in a fresh Python process (clean peak memory; nothing one side did to the
process, its allocator or its thread pool can help or hurt the other) with ``--threads`` torch threads
(2: the course's laptop). The sides are interleaved: for every repeat and every measurement, ours
and the peer's run back to back, in alternating order; ratios are computed per pair and their
median is reported, with the medians of the raw numbers (both ours and compiled against the peer). The load average is recorded before and
after. Compare ratios from one run only.

Needs the optional extra (never needed by the course, its tests or notebooks)::

    pip install -e .[bench-peer]      # audio-diffusion-pytorch==0.1.3, a-unet==0.0.16

Run by hand (not in CI): ``python bench/bench_waveform.py [--quick] [--json out.json]``; the full run
took 20-30 minutes on 2 shared cores before the compiled side was added (it adds a third of that plus the
compiling), ``--quick`` (8 192 samples, 5 sampling steps, 1 repeat) about 4 with inductor's on-disk cache warm
and about 25 cold (every compiled measurement then compiles the 31.6 M-parameter model: 1-5 minutes each).
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
SIDES = ("ours", "compiled", "peer")
OURS = ("ours", "compiled")  # the sides compared with the peer
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
    """The largest resident set size this process has had since the last ``_reset_peak``, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e3
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # Linux reports kB


def _reset_peak() -> bool:
    """Start the peak resident set size afresh from now (Linux: ``clear_refs``); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _build(side: str, compile_mode: str) -> tuple[Any, Any, Any]:
    """(model, loss(x, step) -> scalar, sample(noise, steps) -> clips) for one side, weights from seed 0."""
    import torch

    if side in OURS:
        from course_lib.diffusion import vdiffusion
        from course_lib.models.unet1d import CONFIGS, UNet1D
        from course_lib.training import compile_model

        model = UNet1D(CONFIGS["reference"].replace(num_classes=0, class_names=()), seed=0)
        mode: bool | str = compile_mode if side == "compiled" else False
        net = compile_model(model, mode)  # what train(..., compile=mode) gives the loss function

        def loss(x: torch.Tensor, step: int) -> torch.Tensor:
            return vdiffusion.v_loss(net, x, generator=step)

        def sample(n: int, length: int, steps: int) -> torch.Tensor:
            return vdiffusion.sample(model, n, length, steps, generator=0, progress=False, clip=False, compile=mode)

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

    if side in OURS:
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
    model, loss_fn, sample_fn = _build(side, spec.get("compile_mode", "default"))
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
            if step > 0:  # step 0 is the warm-up (and, compiled, the compiling)
                times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu_start)
                optimizer_times.append(time.perf_counter() - middle)
            else:
                result["first_seconds"] = time.perf_counter() - start
                result["peak_warmup_mb"] = _peak_rss_mb()
                result["peak_reset"] = _reset_peak()
        result.update(losses=losses, optimizer_seconds=statistics.median(optimizer_times))
    else:
        model.eval()
        rss_built = _rss_mb()
        steps = int(spec["sample_steps"])
        with autocast():
            start = time.perf_counter()
            sample_fn(1, length, 1)  # warm-up (and, compiled, the compiling)
            result["first_seconds"] = time.perf_counter() - start
            result["peak_warmup_mb"] = _peak_rss_mb()
            result["peak_reset"] = _reset_peak()
            start, cpu_start = time.perf_counter(), time.process_time()
            out = sample_fn(batch, length, steps)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        result["sample_rms"] = float(out.float().pow(2).mean().sqrt())
    steady_peak = _peak_rss_mb()  # since the warm-up
    result.update(seconds=statistics.median(times), all_seconds=times, cpu_seconds=statistics.median(cpu_times),
                  rss_built_mb=rss_built, peak_rss_mb=max(steady_peak, result["peak_warmup_mb"]),
                  working_mb=steady_peak - rss_built)
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


def measurements(length: int, train_steps: int, sample_steps: int, threads: int,
                 compile_mode: str = "default") -> list[dict[str, Any]]:
    """The list of (task, precision, batch) measurements, each to be made for every side."""
    common = {"length": length, "threads": threads, "train_steps": train_steps, "sample_steps": sample_steps,
              "compile_mode": compile_mode}
    out = []
    for precision in PRECISIONS:
        for task, batch in (("train", 1), ("train", 4), ("sample", 1)):
            out.append({"task": task, "batch": batch, "precision": precision, **common})
    return out


def _name(spec: dict[str, Any]) -> str:
    what = f"train b{spec['batch']}" if spec["task"] == "train" else f"sample {spec['sample_steps']} steps"
    return f"{what}, {spec['precision']}"


def run_bench(length: int = 32768, repeats: int = 3, train_steps: int = 3, sample_steps: int = 50,
              threads: int = 2, compile_mode: str = "default") -> dict[str, Any]:
    """Every measurement ``repeats`` times for every side, interleaved; returns medians and per-pair ratios
    (ours and compiled, each against the peer)."""
    load_before = os.getloadavg()[0]
    specs = measurements(length, train_steps, sample_steps, threads, compile_mode)
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {_name(s): {side: [] for side in SIDES} for s in specs}
    k = 0
    for r in range(repeats):
        for spec in specs:
            order = SIDES[k % len(SIDES):] + SIDES[:k % len(SIDES)]  # each side first in turn
            k += 1
            for side in order:
                res = _measure({**spec, "side": side})
                raw[_name(spec)][side].append(res)
                print(f"  [{r + 1}/{repeats}] {_name(spec)}, {side}: {res['seconds']:.3f} s (first call "
                      f"{res['first_seconds']:.1f} s), peak {res['peak_rss_mb']:.0f} MB (working "
                      f"{res['working_mb']:.0f} MB)", flush=True)
    rows = {}
    for name, sides in raw.items():
        peer = sides["peer"]
        keys = ["seconds", "cpu_seconds", "first_seconds", "peak_rss_mb", "working_mb", "rss_built_mb"]
        if "optimizer_seconds" in peer[0]:
            for m in [m for side in SIDES for m in sides[side]]:
                m["model_seconds"] = m["seconds"] - m["optimizer_seconds"]
            keys += ["optimizer_seconds", "model_seconds"]
        row: dict[str, Any] = {side: {k: statistics.median(m[k] for m in sides[side]) for k in keys} for side in SIDES}
        for side in OURS:
            pairs = list(zip(sides[side], peer))

            def ratio(key: str, *, of_peer: bool, pairs: list[Any] = pairs) -> float:
                return statistics.median(p[key] / o[key] if of_peer else o[key] / p[key] for o, p in pairs)

            row[side].update(speedup=ratio("seconds", of_peer=True), cpu_speedup=ratio("cpu_seconds", of_peer=True),
                             peak_ratio=ratio("peak_rss_mb", of_peer=False),
                             working_ratio=ratio("working_mb", of_peer=False))
            if "model_seconds" in keys:
                row[side]["model_speedup"] = ratio("model_seconds", of_peer=True)
        row["raw"] = sides
        rows[name] = row
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
        "compile_mode": compile_mode,
        "parameters": {side: first[side][0]["parameters"] for side in SIDES},
        "rows": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    """Print the medians and ratios as Markdown tables: one row per measurement and side (ours, compiled)."""
    p = result["parameters"]
    print(f"\nparameters: ours {p['ours']:,}, peer {p['peer']:,} ({100 * (p['ours'] / p['peer'] - 1):+.3f} %); "
          f"stereo x {result['length']} samples; {result['repeats']} repeats; threads={result['torch_threads']}; "
          f"OMP_WAIT_POLICY={result['omp_wait_policy']}; compile mode {result['compile_mode']!r}; load average "
          f"before/after {result['load_average_1min_before_after']}; torch {result['torch']}")
    print("| measurement | side | peer s | ours s | speed-up | CPU-s speed-up | first call s (peer / ours) "
          "| peer peak MB | ours peak MB | peak ratio | peer working MB | ours working MB | working ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in result["rows"].items():
        q = row["peer"]
        for side in OURS:
            o = row[side]
            print(f"| {name} | {side} | {q['seconds']:.2f} | {o['seconds']:.2f} | **{o['speedup']:.2f}x** | "
                  f"{o['cpu_speedup']:.2f}x | {q['first_seconds']:.1f} / {o['first_seconds']:.1f} | "
                  f"{q['peak_rss_mb']:.0f} | {o['peak_rss_mb']:.0f} | {o['peak_ratio']:.2f} | "
                  f"{q['working_mb']:.0f} | {o['working_mb']:.0f} | **{o['working_ratio']:.2f}** |")
    print("\nTraining steps split: forward + backward (the model) and gradient clipping + AdamW (the optimizer)")
    print("| measurement | side | peer model s | ours model s | model speed-up | peer optimizer s | ours optimizer s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, row in result["rows"].items():
        q = row["peer"]
        for side in OURS:
            o = row[side]
            if "model_speedup" in o:
                print(f"| {name} | {side} | {q['model_seconds']:.2f} | {o['model_seconds']:.2f} | "
                      f"{o['model_speedup']:.2f}x | {q['optimizer_seconds']:.3f} | {o['optimizer_seconds']:.3f} |")


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
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode of the compiled side (default 'default'; e.g. "
                             "'max-autotune-no-cudagraphs')")
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
    result = run_bench(threads=args.threads, compile_mode=args.compile_mode, **kwargs)
    print_table(result)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
