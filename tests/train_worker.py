"""A tiny training run in its own process, for the kill-and-resume tests of training and checkpoints.

Usage: python tests/train_worker.py OUTPUT_DIR MAX_STEPS [--hang-at-save STEP] [--kill-at POINT STEP]
                                    [--checkpoint-every N] [--keep-last-n N]

Prints ``STEP n`` after each optimizer step and, at the end, ``LOSSES <json list>``. With
``--hang-at-save STEP`` it stops for a long time inside the save of that step, after the files are
written to the temporary folder and before they are published, so that a test can kill it there.
With ``--kill-at POINT STEP`` it sends itself SIGKILL (no handler runs, as with a real kill) when the
save of that step reaches ``POINT``, one of the points of ``course_lib.checkpoints._reached``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import torch

from course_lib import checkpoints, training


def tiny_problem(seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    """A small MLP and a fixed regression data set (inputs and targets side by side)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g)
    y = torch.sin(x @ torch.tensor([1.0, -2.0, 0.5, 1.5])).unsqueeze(1)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Dropout(0.1), torch.nn.Linear(16, 1))
    return model, torch.cat([x, y], dim=1)


def noisy_mse(model: torch.nn.Module, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """MSE on inputs with a little noise drawn from the step's generator (so resuming must reproduce it)."""
    x, y = batch[:, :4], batch[:, 4:]
    x = x + 0.05 * torch.randn(x.shape, generator=generator)
    return torch.nn.functional.mse_loss(model(x), y)


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("max_steps", type=int)
    parser.add_argument("--hang-at-save", type=int)
    parser.add_argument("--kill-at", nargs=2, metavar=("POINT", "STEP"))
    parser.add_argument("--checkpoint-every", type=int, default=3)
    parser.add_argument("--keep-last-n", type=int, default=5)
    args = parser.parse_args(argv)

    def reached(point: str, step: int, path: Path) -> None:
        if point == "written" and step == args.hang_at_save:
            print(f"SAVING {step}", flush=True)
            time.sleep(300)
        if args.kill_at is not None and [point, str(step)] == args.kill_at:
            print(f"KILLED AT {point} {step}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoints._reached = reached
    model, data = tiny_problem()
    config = training.TrainConfig(
        output_dir=str(args.out), max_steps=args.max_steps, batch_size=8, lr=1e-2,
        checkpoint_every=args.checkpoint_every, keep_last_n=args.keep_last_n, ema_decay=0.9, seed=7,
        grad_accum_steps=2, sample_every=1,
    )
    result = training.train(
        model, data, noisy_mse, config, progress=False, sample_fn=lambda m, s: print(f"STEP {s}", flush=True)
    )
    print("LOSSES " + json.dumps(result.losses), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
