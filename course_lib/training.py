"""One training loop for every lesson that trains a model (lessons 02, 03 and 05 use it).

``train(model, data, loss_fn, config)`` trains any ``torch.nn.Module`` with AdamW (its fused
kernel where torch has one: ``make_optimizer``), given a loss function
``loss_fn(model, batch, generator) -> scalar tensor``. Around that it adds what a real run needs:

- gradient accumulation, gradient clipping, an optional LR schedule with linear warm-up;
- mixed precision (bf16 or fp16 autocast) on a GPU only; the CPU always runs in float32;
- an optional EMA (exponential moving average) copy of the weights;
- a tqdm bar with the running loss, ``plot_losses`` for the curve, ``sample_fn`` every N steps;
- a budget: stop after ``max_steps`` optimizer steps or ``time_budget_s`` seconds, whichever first;
- checkpoints every N steps and at the end, written atomically, and ``resume=True``.

Checkpoints hold no pickle: tensors go to safetensors files, everything else to JSON::

    output_dir/checkpoints/step-000120/model.safetensors      weights
                                      ema.safetensors        EMA weights (if on)
                                      state.safetensors      optimizer tensors, torch RNG states
                                      state.json             step, config, losses, data position,
                                                             optimizer hyper-parameters, Python and
                                                             NumPy RNG states, LR schedule state
    output_dir/latest.json                                   {"step": 120, "folder": "step-000120"}

A checkpoint is first written into a hidden temporary folder, every file is flushed to disk
(``fsync``), and only then is the folder renamed to its final name (a rename is atomic on one file
system), after which ``latest.json`` is replaced the same way. A process killed at any moment
therefore leaves either the old checkpoint or the new one, never half of one.

Resuming gives exactly the run you would have had without the interruption (on the CPU, bitwise):
every random draw of step ``s`` comes from a generator seeded with ``(seed, step)``, and the data
order of epoch ``e`` is a function of ``(seed, e)``, so the checkpoint only has to remember the step
and where in the epoch the data stood.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.validate import (
    CourseInputError,
    check_choice,
    check_number,
    check_positive_int,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "diffusion_loss",
    "latest_checkpoint",
    "load_checkpoint",
    "make_optimizer",
    "plot_losses",
    "save_checkpoint",
    "step_generator",
    "train",
    "update_ema",
]

MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
PREDICTIONS = ("epsilon", "v_prediction")
_CHECKPOINTS = "checkpoints"
_LATEST = "latest.json"
_FORMAT = 1


# --------------------------------------------------------------------------------------------
# Configuration and result
# --------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as JSON inside every checkpoint.

    ``max_steps`` counts optimizer steps; each uses ``grad_accum_steps`` batches. ``batch_size``
    is only used when ``data`` is a dataset or a tensor (a data factory makes its own batches).
    ``time_budget_s`` (seconds of this call) stops early when it runs out. ``ema_decay=None``
    turns the EMA off. ``mixed_precision="auto"`` means bf16 on a GPU that supports it, fp16 on
    other GPUs, and float32 on the CPU (the CPU never uses autocast).
    """

    output_dir: str = "course_data/run"
    max_steps: int | None = 1000
    time_budget_s: float | None = None
    batch_size: int = 16
    grad_accum_steps: int = 1
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    eps: float = 1e-8
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    ema_decay: float | None = None
    mixed_precision: str = "auto"
    seed: int = 0
    checkpoint_every: int = 500
    keep_last_n: int = 2
    sample_every: int | None = None
    log_every: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> TrainConfig:
        """Check every field; raise ``CourseInputError`` naming the field and the fix."""
        if not isinstance(self.output_dir, (str, os.PathLike)) or str(self.output_dir) == "":
            raise CourseInputError(f"output_dir: give a folder path such as 'course_data/run', got {self.output_dir!r}.")
        self.output_dir = str(self.output_dir)
        if self.max_steps is None and self.time_budget_s is None:
            raise CourseInputError("max_steps / time_budget_s: give at least one budget, e.g. max_steps=1000.")
        if self.max_steps is not None:
            check_positive_int(self.max_steps, "max_steps")
        if self.time_budget_s is not None:
            check_number(self.time_budget_s, "time_budget_s", low=0, low_open=True)
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.grad_accum_steps, "grad_accum_steps")
        check_number(self.lr, "lr", low=0, low_open=True)
        if not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2:
            raise CourseInputError(f"betas: give two numbers such as (0.9, 0.999), got {self.betas!r}.")
        self.betas = (
            check_number(self.betas[0], "betas[0]", 0, 1, high_open=True),
            check_number(self.betas[1], "betas[1]", 0, 1, high_open=True),
        )
        check_number(self.weight_decay, "weight_decay", low=0)
        check_number(self.eps, "eps", low=0, low_open=True)
        check_positive_int(self.warmup_steps, "warmup_steps", minimum=0)
        if self.max_grad_norm is not None:
            check_number(self.max_grad_norm, "max_grad_norm", low=0, low_open=True)
        if self.ema_decay is not None:
            check_number(self.ema_decay, "ema_decay (use None to turn the EMA off)", 0, 1, high_open=True)
        check_choice(self.mixed_precision, "mixed_precision", MIXED_PRECISION)
        check_positive_int(self.seed, "seed", minimum=0)
        check_positive_int(self.checkpoint_every, "checkpoint_every")
        check_positive_int(self.keep_last_n, "keep_last_n")
        if self.sample_every is not None:
            check_positive_int(self.sample_every, "sample_every")
        check_positive_int(self.log_every, "log_every")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-friendly dict."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild a config from ``to_dict`` output (unknown keys are rejected)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise CourseInputError(f"config: unknown field(s) {sorted(unknown)}; known: {sorted(names)}.")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


@dataclass
class TrainResult:
    """What ``train`` returns. ``losses[i]`` is the loss of optimizer step ``i + 1``, over the whole run
    (including steps done before a resume)."""

    losses: list[float]
    steps: int
    stopped_by: str  # "steps" or "time"
    checkpoint: Path | None
    resumed_from: int | None
    elapsed_s: float
    lrs: list[float] = field(default_factory=list)
    ema_model: torch.nn.Module | None = None

    def plot(self, ax: Any = None, smooth: int | None = None) -> Any:
        """Plot the loss curve (see ``plot_losses``)."""
        return plot_losses(self, ax=ax, smooth=smooth)


# --------------------------------------------------------------------------------------------
# Reproducible randomness: one generator per (seed, step), one data order per (seed, epoch)
# --------------------------------------------------------------------------------------------


def _derive_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (SeedSequence spreads nearby inputs far apart)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def step_generator(seed: int, step: int, micro: int = 0) -> torch.Generator:
    """The CPU generator for micro-batch ``micro`` of optimizer step ``step`` (1-based) of a run.

    Because it depends only on ``(seed, step, micro)``, a resumed run draws the same noise and
    timesteps as an uninterrupted one without having to restore any generator state.
    """
    g = torch.Generator()
    g.manual_seed(_derive_seed(seed, 1, step, micro))
    return g


class _Batches:
    """Turns ``data`` into batches for epoch ``e``, in an order fixed by ``(seed, e)``."""

    def __init__(self, data: Any, batch_size: int, seed: int) -> None:
        self.seed = seed
        self.batch_size = batch_size
        if isinstance(data, torch.Tensor):
            if data.ndim < 1 or data.shape[0] == 0:
                raise CourseInputError("data: the tensor is empty; give at least batch_size examples along dim 0.")
            self.kind, self.data = "tensor", data
        elif hasattr(data, "__getitem__") and hasattr(data, "__len__") and not callable(data):
            self.kind, self.data = "dataset", data
        elif callable(data):
            self.kind, self.data = "factory", data
        else:
            raise CourseInputError(
                "data: give a tensor, a map-style dataset (with __len__ and __getitem__), or a function "
                f"epoch -> iterable of batches (e.g. a DataLoader seeded by the epoch); got {type(data).__name__}."
            )
        if self.kind != "factory" and len(self.data) < batch_size:
            raise CourseInputError(
                f"data: only {len(self.data)} examples for batch_size={batch_size}; lower batch_size "
                "(incomplete batches are dropped so that every step sees the same batch size)."
            )

    def epoch(self, epoch: int, skip: int) -> Iterator[Any]:
        """Batches of ``epoch`` after the first ``skip`` ones."""
        if self.kind == "factory":
            it = iter(self.data(epoch))
            for _ in range(skip):  # a factory can only be skipped by reading through it
                next(it, None)
            yield from it
            return
        g = torch.Generator()
        g.manual_seed(_derive_seed(self.seed, 2, epoch))
        order = torch.randperm(len(self.data), generator=g)
        n_batches = len(self.data) // self.batch_size
        for b in range(skip, n_batches):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self.kind == "tensor":
                yield self.data[idx]
            else:
                yield torch.utils.data.default_collate([self.data[int(i)] for i in idx])


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


# --------------------------------------------------------------------------------------------
# Losses and EMA
# --------------------------------------------------------------------------------------------


def diffusion_loss(
    model: torch.nn.Module,
    x0: torch.Tensor,
    scheduler: Any,
    generator: torch.Generator | None = None,
    prediction: str | None = None,
    **model_kwargs: Any,
) -> torch.Tensor:
    """The denoising loss of a diffusers-style model ``model(noisy, t).sample`` on clean images ``x0``.

    Each item gets its own random timestep ``t`` and Gaussian noise (both drawn on the CPU from
    ``generator``, so the draw is the same on every device), ``scheduler.add_noise`` makes the noisy
    input, and the loss is the mean squared error against the noise (``prediction="epsilon"``) or
    against the velocity ``v = sqrt(a) * noise - sqrt(1 - a) * x0`` from ``scheduler.get_velocity``
    (``"v_prediction"``). ``prediction=None`` uses ``scheduler.config.prediction_type``.

    Call ``loss.backward()`` on the result. The classic tutorial's ``loss.backward(loss)`` is wrong:
    the argument of ``backward`` is the upstream gradient, so it scales every gradient by the loss
    value itself (large early, tiny late), i.e. an accidental loss-dependent learning rate.
    """
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or x0.shape[0] == 0:
        raise CourseInputError(f"x0: expected a batch tensor (batch, ...), got {getattr(x0, 'shape', type(x0))}.")
    if prediction is None:
        prediction = getattr(getattr(scheduler, "config", None), "prediction_type", "epsilon")
    check_choice(prediction, "prediction", PREDICTIONS)
    n_train = int(scheduler.config.num_train_timesteps)
    t = torch.randint(0, n_train, (x0.shape[0],), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device, x0.dtype)
    noisy = scheduler.add_noise(x0, noise, t)
    out = model(noisy, t, **model_kwargs)
    pred = out.sample if hasattr(out, "sample") else (out[0] if isinstance(out, (tuple, list)) else out)
    target = noise if prediction == "epsilon" else scheduler.get_velocity(x0, noise, t)
    return F.mse_loss(pred.float(), target.float())


@torch.no_grad()
def update_ema(ema_model: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * weights`` for every floating parameter; buffers are copied."""
    check_number(decay, "decay", 0, 1)
    for e, p in zip(ema_model.parameters(), model.parameters(), strict=True):
        e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
    for e, b in zip(ema_model.buffers(), model.buffers(), strict=True):
        e.copy_(b)


# --------------------------------------------------------------------------------------------
# Checkpoints: safetensors + JSON, written atomically
# --------------------------------------------------------------------------------------------


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict`` into tensors (for safetensors) and a JSON-friendly rest."""
    tensors: dict[str, torch.Tensor] = {}
    rest: dict[str, dict[str, Any]] = {}
    for pid, slots in state["state"].items():
        rest[str(pid)] = {}
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{pid}.{name}"] = value
            else:
                rest[str(pid)][name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"state": rest, "param_groups": groups}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(pid): dict(extra) for pid, extra in meta["state"].items()}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    py = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [kind, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, gauss, cached))


def _tensors_for_file(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Own contiguous CPU copies: safetensors refuses shared storage (e.g. tied weights).
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # Windows cannot open a folder to fsync it
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _on_temp_written(tmp: Path, step: int) -> None:
    """Called after a checkpoint's files are on disk, before they are published (a test hook)."""


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_checkpoint(
    output_dir: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    ema_model: torch.nn.Module | None = None,
    lr_scheduler: Any = None,
    grad_scaler: Any = None,
    extra: dict[str, Any] | None = None,
    keep_last_n: int | None = None,
) -> Path:
    """Write ``output_dir/checkpoints/step-NNNNNN/`` atomically, then point ``latest.json`` at it.

    ``extra`` is merged into ``state.json`` (``train`` stores its config, losses and data position
    there). ``keep_last_n`` deletes older checkpoints once the new one is published.
    """
    from safetensors.torch import save_file

    step = check_positive_int(step, "step", minimum=0)
    root = _prepare_dir(output_dir)
    ckpts = root / _CHECKPOINTS
    ckpts.mkdir(exist_ok=True)
    name = f"step-{step:06d}"
    final = ckpts / name
    tmp = ckpts / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()

    save_file(_tensors_for_file(model.state_dict()), tmp / "model.safetensors", metadata={"step": str(step)})
    if ema_model is not None:
        save_file(_tensors_for_file(ema_model.state_dict()), tmp / "ema.safetensors")
    tensors, rng_meta = _rng_state()
    meta: dict[str, Any] = {"format": _FORMAT, "step": step, "rng": rng_meta, "has_ema": ema_model is not None}
    if optimizer is not None:
        opt_tensors, meta["optimizer"] = _flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
    save_file(_tensors_for_file(tensors), tmp / "state.safetensors")
    if lr_scheduler is not None:
        meta["lr_scheduler"] = {k: v for k, v in lr_scheduler.state_dict().items() if _is_json(v)}
    if grad_scaler is not None and grad_scaler.is_enabled():
        meta["grad_scaler"] = grad_scaler.state_dict()
    meta.update(extra or {})
    with open(tmp / "state.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    for p in tmp.iterdir():
        _fsync_file(p)
    _fsync_dir(tmp)
    _on_temp_written(tmp, step)

    # Publish: one rename makes the whole folder appear at once.
    trash = None
    if final.exists():  # the same step saved again (e.g. the end of a run that ends on a checkpoint)
        trash = ckpts / f".old-{name}-{os.getpid()}"
        os.replace(final, trash)
    os.replace(tmp, final)
    _fsync_dir(ckpts)
    _write_json_atomic(root / _LATEST, {"step": step, "folder": name})
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
    if keep_last_n is not None:
        for old in _checkpoint_folders(root)[keep_last_n:]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def _is_json(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _prepare_dir(output_dir: Any) -> Path:
    if not isinstance(output_dir, (str, os.PathLike)):
        raise CourseInputError(f"output_dir: expected a folder path, got {type(output_dir).__name__}.")
    p = Path(output_dir)
    if p.exists() and not p.is_dir():
        raise CourseInputError(f"output_dir: {str(p)!r} is a file; give a folder (or delete the file).")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CourseInputError(f"output_dir: cannot create {str(p)!r} ({e.strerror}); choose a folder you can write to.") from e
    if not os.access(p, os.W_OK | os.X_OK):
        raise CourseInputError(f"output_dir: {str(p)!r} is not writable; choose a folder you can write to.")
    return p


def _checkpoint_folders(root: Path) -> list[Path]:
    """Published checkpoint folders, newest first."""
    ckpts = root / _CHECKPOINTS
    if not ckpts.is_dir():
        return []
    found = [p for p in ckpts.iterdir() if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]), reverse=True)


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The folder ``latest.json`` points to (or the newest published one if it is missing); None if none."""
    root = Path(output_dir)
    pointer = root / _LATEST
    if pointer.is_file():
        try:
            folder = root / _CHECKPOINTS / json.loads(pointer.read_text())["folder"]
            if folder.is_dir():
                return folder
        except (ValueError, KeyError, TypeError):
            pass
    folders = _checkpoint_folders(root)
    return folders[0] if folders else None


def _read_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors.torch import load_file

    meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if meta.get("format") != _FORMAT or not isinstance(meta.get("step"), int):
        raise ValueError("state.json is not a course checkpoint")
    weights = load_file(folder / "model.safetensors")
    ema = load_file(folder / "ema.safetensors") if meta.get("has_ema") else None
    state = load_file(folder / "state.safetensors")
    return weights, ema, state, meta


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    ema_model: torch.nn.Module | None = None,
    restore_rng: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint folder (or a run's ``output_dir``: its latest good checkpoint) into ``model``.

    Returns the JSON state (``step``, ``config``, ``losses``, ...). If the checkpoint that
    ``latest.json`` names is damaged, the newest readable older one is used, with a warning.
    """
    p = Path(path)
    if not p.is_dir():
        raise CourseInputError(f"path: {str(p)!r} is not a checkpoint folder or a training output folder.")
    if (p / "state.json").is_file():
        candidates = [p]
    else:
        candidates = _resume_candidates(p)
        if not candidates:
            raise CourseInputError(f"path: no checkpoint in {str(p)!r}; train with checkpoint_every set first.")
    weights, ema, state, meta, folder = _first_good(candidates)
    model.load_state_dict(weights)
    if ema_model is not None:
        if ema is None:
            raise CourseInputError(f"ema_model: the checkpoint {folder.name} has no EMA weights (ema_decay was None).")
        ema_model.load_state_dict(ema)
    if optimizer is not None and "optimizer" in meta:
        optimizer.load_state_dict(_unflatten_optimizer(state, meta["optimizer"]))
    if restore_rng:
        _set_rng_state(state, meta["rng"])
    meta["folder"] = str(folder)
    return meta


def _resume_candidates(root: Path) -> list[Path]:
    # Newest published folder first. A published folder is always complete (it is renamed into place
    # only after its files are on disk), so one newer than latest.json (a kill between the rename and
    # the pointer update) is the better place to resume; latest.json is the pointer for people and tools.
    return _checkpoint_folders(root)


def _first_good(candidates: list[Path]) -> tuple[Any, Any, Any, dict[str, Any], Path]:
    problems = []
    for i, folder in enumerate(candidates):
        try:
            weights, ema, state, meta = _read_checkpoint(folder)
        except Exception as e:  # noqa: BLE001 - a damaged file fails in many ways (JSON, safetensors, missing)
            problems.append(f"{folder.name}: {type(e).__name__}: {e}")
            continue
        if i > 0:
            warnings.warn(
                f"checkpoint {candidates[0].name} is unreadable ({problems[0]}); using {folder.name} instead.",
                RuntimeWarning,
                stacklevel=3,
            )
        return weights, ema, state, meta, folder
    raise CourseInputError(
        "resume: every checkpoint is unreadable: " + "; ".join(problems)
        + ". Delete the checkpoints folder to start over, or pass resume=False."
    )


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def _precision(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or config.mixed_precision == "no":
        return None
    if config.mixed_precision == "bf16":
        return torch.bfloat16
    if config.mixed_precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def make_optimizer(params: Any, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with ``config``'s lr, betas, weight decay and eps, as ``train`` uses it.

    Where this torch can (CPU and CUDA since torch 2.4), the update runs as one fused kernel
    (``fused=True``): the same AdamW up to float rounding, but on a 2-core CPU the step of the
    31.6 M-parameter reference U-Net took about a quarter of the time of PyTorch's default
    per-parameter loop, which is also slowed down by denormal numbers in AdamW's second moments
    right after initialisation. Elsewhere the default implementation is used.
    """
    if not isinstance(config, TrainConfig):
        raise CourseInputError(f"config: expected a TrainConfig, got {type(config).__name__}.")
    params = list(params)
    settings = {"lr": config.lr, "betas": config.betas, "weight_decay": config.weight_decay, "eps": config.eps}
    try:
        return torch.optim.AdamW(params, fused=True, **settings)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without the fused kernel
        return torch.optim.AdamW(params, **settings)


def train(
    model: torch.nn.Module,
    data: Any,
    loss_fn: Callable[[torch.nn.Module, Any, torch.Generator], torch.Tensor],
    config: TrainConfig,
    *,
    resume: bool = True,
    sample_fn: Callable[[torch.nn.Module, int], Any] | None = None,
    lr_schedule: Callable[[torch.optim.Optimizer], Any] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` with AdamW on ``loss_fn(model, batch, generator)`` until a budget runs out.

    ``data`` is a tensor or map-style dataset (shuffled per epoch from ``(seed, epoch)``, batches of
    ``config.batch_size``, incomplete batches dropped), or a function ``epoch -> iterable of batches``
    that must give the same batches for the same epoch. Batches are moved to the model's device.
    ``generator`` is a CPU ``torch.Generator`` seeded from ``(seed, step)``: draw all randomness of
    the loss from it. ``sample_fn(model, step)`` runs every ``config.sample_every`` steps in eval
    mode (with the EMA model when the EMA is on). ``lr_schedule(optimizer)`` builds a torch LR
    scheduler stepped once per optimizer step; without it, the LR warms up linearly over
    ``config.warmup_steps`` steps and then stays at ``config.lr``.

    With ``resume=True`` and a checkpoint in ``config.output_dir``, training continues from the
    newest readable one (raise ``max_steps`` to train longer; a damaged newest checkpoint is set
    aside as ``.broken-*`` with a warning); ``resume=False`` deletes the old checkpoints and starts over.
    The global torch RNG is re-seeded from ``(seed, step)`` at every step, so dropout inside the model
    is reproducible too. Returns a ``TrainResult``; the model is left in eval mode.
    """
    if not isinstance(model, torch.nn.Module):
        raise CourseInputError(f"model: expected a torch.nn.Module, got {type(model).__name__}.")
    if not callable(loss_fn):
        raise CourseInputError("loss_fn: give a function loss_fn(model, batch, generator) -> scalar loss tensor.")
    if not isinstance(config, TrainConfig):
        raise CourseInputError(f"config: expected a TrainConfig, got {type(config).__name__}.")
    config.validate()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise CourseInputError("model: it has no trainable parameters (all have requires_grad=False).")
    root = _prepare_dir(config.output_dir)
    batches = _Batches(data, config.batch_size, config.seed)
    device = params[0].device
    amp_dtype = _precision(config, device)

    optimizer = make_optimizer(params, config)
    fast_path = {k: optimizer.param_groups[0][k] for k in ("fused", "foreach") if k in optimizer.param_groups[0]}
    if lr_schedule is not None:
        scheduler = lr_schedule(optimizer)
    else:
        warm = config.warmup_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm) if warm else 1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    ema_model = None
    if config.ema_decay is not None:
        ema_model = copy.deepcopy(model).eval().requires_grad_(False)

    for leftover in (root / _CHECKPOINTS).glob(".tmp-*") if (root / _CHECKPOINTS).is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)  # a save that was interrupted before publishing

    step, epoch, batch_in_epoch, losses, lrs, resumed_from = 0, 0, 0, [], [], None
    if resume and _resume_candidates(root):
        meta = load_checkpoint(root, model, optimizer, ema_model=ema_model, restore_rng=True)
        for group in optimizer.param_groups:  # the checkpoint's groups name the kernel it was made with
            group.update(fast_path)
        if meta["config"]["seed"] != config.seed:
            warnings.warn(
                f"resuming a run made with seed={meta['config']['seed']} under seed={config.seed}: "
                "the rest of the run will not match an uninterrupted one.",
                RuntimeWarning,
                stacklevel=2,
            )
        step, epoch, batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        for newer in _checkpoint_folders(root):  # unreadable ones newer than the resume point: set aside
            if int(newer.name[5:]) > step:
                os.replace(newer, newer.with_name(f".broken-{newer.name}-{os.getpid()}"))
        losses, lrs, resumed_from = list(meta["losses"]), list(meta["lrs"]), meta["step"]
        if "lr_scheduler" in meta:
            scheduler.load_state_dict({**scheduler.state_dict(), **meta["lr_scheduler"]})
        if "grad_scaler" in meta and scaler.is_enabled():
            scaler.load_state_dict(meta["grad_scaler"])
    elif not resume and (root / _CHECKPOINTS).is_dir():
        shutil.rmtree(root / _CHECKPOINTS)
        (root / _LATEST).unlink(missing_ok=True)

    def save() -> Path:
        extra = {
            "config": config.to_dict(),
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "losses": losses,
            "lrs": lrs,
        }
        return save_checkpoint(
            root, step, model, optimizer, ema_model=ema_model, lr_scheduler=scheduler,
            grad_scaler=scaler, extra=extra, keep_last_n=config.keep_last_n,
        )

    def next_batch() -> Any:
        nonlocal epoch, batch_in_epoch, it
        for _ in range(2):
            b = next(it, None)
            if b is not None:
                batch_in_epoch += 1
                return b
            epoch, batch_in_epoch = epoch + 1, 0
            it = batches.epoch(epoch, 0)
        raise CourseInputError(f"data: epoch {epoch} gave no batches; check the dataset or data factory.")

    it = batches.epoch(epoch, batch_in_epoch)
    last_ckpt = latest_checkpoint(root) if resumed_from is not None else None
    stopped_by = "steps"
    start = time.monotonic()
    total = config.max_steps
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=step, desc="training", unit="step", dynamic_ncols=True)
    model.train()
    running = None
    while config.max_steps is None or step < config.max_steps:
        if config.time_budget_s is not None and time.monotonic() - start >= config.time_budget_s:
            stopped_by = "time"
            break
        step += 1
        torch.manual_seed(_derive_seed(config.seed, 3, step))  # dropout etc. in the model: fixed per step
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for micro in range(config.grad_accum_steps):
            batch = _to_device(next_batch(), device)
            g = step_generator(config.seed, step, micro)
            with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = loss_fn(model, batch, g)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise CourseInputError("loss_fn: must return a scalar tensor (e.g. F.mse_loss(pred, target)).")
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError(
                    f"the loss became {loss.item()} at step {step}; lower lr (now {config.lr:g}) or check the data."
                )
            scaler.scale(loss / config.grad_accum_steps).backward()
            step_loss += float(loss.detach()) / config.grad_accum_steps
        if config.max_grad_norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema_model is not None:
            update_ema(ema_model, model, config.ema_decay)
        losses.append(step_loss)
        running = step_loss if running is None else 0.9 * running + 0.1 * step_loss
        if bar is not None:
            bar.update(1)
            if step % config.log_every == 0:
                bar.set_postfix(loss=f"{running:.4f}")
        if sample_fn is not None and config.sample_every is not None and step % config.sample_every == 0:
            target = ema_model if ema_model is not None else model
            target.eval()
            with torch.no_grad():
                sample_fn(target, step)
            model.train()
        if step % config.checkpoint_every == 0:
            last_ckpt = save()
    if bar is not None:
        bar.close()
    if (last_ckpt is None or last_ckpt.name != f"step-{step:06d}") and step > 0:
        last_ckpt = save()
    model.eval()
    return TrainResult(
        losses=losses,
        steps=step,
        stopped_by=stopped_by,
        checkpoint=last_ckpt,
        resumed_from=resumed_from,
        elapsed_s=time.monotonic() - start,
        lrs=lrs,
        ema_model=ema_model,
    )


def plot_losses(result: TrainResult | list[float], ax: Any = None, smooth: int | None = None) -> Any:
    """Plot the loss per optimizer step (log scale) with a moving average; return the Axes."""
    import matplotlib.pyplot as plt

    losses = np.asarray(result.losses if isinstance(result, TrainResult) else result, dtype=float)
    if losses.size == 0:
        raise CourseInputError("result: there are no losses to plot; train for at least one step.")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    steps = np.arange(1, losses.size + 1)
    ax.plot(steps, losses, alpha=0.35, label="loss per step")
    window = smooth or max(1, min(50, losses.size // 10))
    if window > 1 and losses.size >= window:
        avg = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], avg, label=f"moving average ({window} steps)")
    if isinstance(result, TrainResult) and result.resumed_from:
        ax.axvline(result.resumed_from, color="grey", linestyle=":", label="resumed here")
    if np.all(losses > 0):
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss")
    ax.legend()
    return ax
