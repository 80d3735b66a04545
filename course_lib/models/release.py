"""What the scripts that train the shipped checkpoints share: their common arguments and their outputs.

Every script in ``scripts/`` trains one model of :data:`course_lib.hub.SHIPPED` and writes, next to
its weights, what a reader of the checkpoint needs: ``metrics.json``, the losses and their curve, and
a model card (``README.md``) that names the command that made it. These helpers write them the same
way everywhere, each file atomically (:func:`course_lib.io.atomic_write`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from course_lib.hub import SHIPPED, checkpoint_dir
from course_lib.io import REPO_ROOT, atomic_write, write_json

__all__ = ["training_arguments", "command_line", "write_model_card", "write_training_outputs"]


def training_arguments(checkpoint: str, description: str, *, batch_size: int, lr: float,
                       resumable: bool = False) -> argparse.ArgumentParser:
    """An argument parser with the options every script that trains ``checkpoint`` (a key of ``SHIPPED``) has.

    ``--out`` (default ``checkpoints/<checkpoint>``), ``--seed``, ``--threads``, ``--batch-size`` and
    ``--lr``; with ``resumable=True`` also ``--run-dir`` (where the resumable training checkpoints go,
    default ``course_data/<script name>``) and ``--time-budget``. Scripts add their own options.
    """
    parser = argparse.ArgumentParser(prog=SHIPPED[checkpoint], description=description)
    parser.add_argument("--out", default=str(checkpoint_dir(checkpoint)), help="where the checkpoint is written")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    if resumable:
        parser.add_argument("--run-dir", default=str(REPO_ROOT / "course_data" / Path(SHIPPED[checkpoint]).stem),
                            help="where checkpoints for resuming go (run the same command again to carry on)")
        parser.add_argument("--time-budget", type=float, default=None,
                            help="optional: also stop after this many seconds (the result then depends on the machine)")
    return parser


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """``python scripts/<script>.py --option value ...``: the options that differ from their defaults.

    The output folders (``--out``, ``--run-dir``) are left out: they say where a model went, not what it is.
    """
    changed = "".join(f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                      if k not in ("out", "run_dir") and v != parser.get_default(k))
    return f"python {parser.prog}{changed}"


def write_model_card(folder: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as the checkpoint's ``README.md``, atomically."""
    return atomic_write(Path(folder) / "README.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_training_outputs(folder: str | os.PathLike, result: Any, metrics: dict[str, Any], card: str | None,
                           smooth: int | None = None, decimals: int = 5) -> Path:
    """Write ``metrics.json``, ``losses.json``, ``loss_curve.png`` and ``README.md`` next to a trained model.

    ``result`` is the :class:`course_lib.training.TrainResult` of the run; ``card`` the model card's
    text (``None``: no card); ``smooth`` the moving-average window of the loss curve (default:
    :func:`course_lib.training.plot_losses`'s); ``decimals`` how the losses are rounded.
    """
    from matplotlib.figure import Figure  # no pyplot: nothing changes the caller's plotting backend

    from course_lib.training import plot_losses

    out = Path(folder)
    write_json(out / "metrics.json", metrics, indent=2)
    write_json(out / "losses.json", [round(float(x), decimals) for x in result.losses], indent=None)
    figure = Figure(figsize=(6, 3))
    plot_losses(result, ax=figure.subplots(), smooth=smooth)
    atomic_write(out / "loss_curve.png", lambda tmp: figure.savefig(tmp, format="png", dpi=80, bbox_inches="tight"))
    if card is not None:
        write_model_card(out, card)
    return out
