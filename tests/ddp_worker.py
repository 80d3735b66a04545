"""One process of a training run on several processes, for tests/test_distributed.py.

Usage (the way a learner starts a run on several GPUs; ``--cpu`` alone would start one process):

    accelerate launch --multi_gpu --num_processes 2 tests/ddp_worker.py OUT

Each process trains ``train_worker.tiny_problem`` with ``train_worker.noisy_mse`` (dropout in the model,
noise from the step's generator) into ``OUT/run`` with the unchanged ``training.train``: first to step
``FIRST_STEPS``, then, resumed from that checkpoint, to ``STEPS``. It counts its own calls of
``save_checkpoint`` and ``sample_fn`` and writes ``OUT/rank-R.json`` (losses, steps, resume point, the
checkpoint it was told of, the counts) and ``OUT/rank-R.safetensors`` (final weights and EMA weights).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_worker import noisy_mse, tiny_problem  # noqa: E402

from course_lib import training  # noqa: E402
from course_lib.io import save_tensors, write_json  # noqa: E402

FIRST_STEPS, STEPS = 3, 6
PER_PROCESS = {"batch_size": 4, "grad_accum_steps": 2}  # 2 processes: 16 examples per optimizer step


def config(output_dir: str | Path, max_steps: int, **changes: Any) -> training.TrainConfig:
    """The run's settings; a single process matches two of these with ``grad_accum_steps=4``."""
    settings = {"output_dir": str(output_dir), "max_steps": max_steps, "lr": 1e-2, "seed": 3, "ema_decay": 0.5,
                "checkpoint_every": 2, "keep_last_n": 2, "sample_every": 2, **PER_PROCESS}
    return training.TrainConfig(**{**settings, **changes})


def main(out: Path) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    saves: list[int] = []
    samples: list[int] = []
    real_save = training.save_checkpoint

    def counting_save(output_dir: Any, step: int, *args: Any, **kwargs: Any) -> Path:
        saves.append(step)
        return real_save(output_dir, step, *args, **kwargs)

    training.save_checkpoint = counting_save  # what training._save calls
    model, data = tiny_problem()
    if rank == 1:  # another seed here: train must start every process from rank 0's weights
        model = tiny_problem(seed=1)[0]
    sample = lambda _model, step: samples.append(step)  # noqa: E731
    training.train(model, data, noisy_mse, config(out / "run", FIRST_STEPS), sample_fn=sample, progress=False)
    result = training.train(model, data, noisy_mse, config(out / "run", STEPS), sample_fn=sample)
    write_json(out / f"rank-{rank}.json", {
        "main": training.is_main_process(), "losses": result.losses, "steps": result.steps,
        "resumed_from": result.resumed_from, "checkpoint": str(result.checkpoint), "saves": saves,
        "samples": samples,
    })
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    weights.update({f"ema.{k}": v for k, v in result.ema_model.state_dict().items()})
    save_tensors(out / f"rank-{rank}.safetensors", weights)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
