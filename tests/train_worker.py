"""A tiny training run in its own process, for the kill-and-resume test of ``course_lib.training``.

Usage: python tests/train_worker.py OUTPUT_DIR MAX_STEPS [--hang-at-save STEP]

Prints ``STEP n`` after each optimizer step and, at the end, ``LOSSES <json list>``. With
``--hang-at-save STEP`` it stops for a long time inside the save of that step, after the files are
written to the temporary folder and before they are published, so that a test can kill it there.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from course_lib import training


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
    out, max_steps = Path(argv[0]), int(argv[1])
    hang = int(argv[3]) if len(argv) > 3 and argv[2] == "--hang-at-save" else None

    def on_temp_written(tmp: Path, step: int) -> None:
        if step == hang:
            print(f"SAVING {step}", flush=True)
            time.sleep(300)

    training._on_temp_written = on_temp_written
    model, data = tiny_problem()
    config = training.TrainConfig(
        output_dir=str(out), max_steps=max_steps, batch_size=8, lr=1e-2, checkpoint_every=3,
        keep_last_n=5, ema_decay=0.9, seed=7, grad_accum_steps=2, sample_every=1,
    )
    result = training.train(
        model, data, noisy_mse, config, progress=False, sample_fn=lambda m, s: print(f"STEP {s}", flush=True)
    )
    print("LOSSES " + json.dumps(result.losses), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
