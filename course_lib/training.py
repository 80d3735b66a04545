"""One training loop for every lesson that trains a model (lessons 02, 03 and 05 use it).

``train(model, data, loss_fn, config)`` trains any ``torch.nn.Module`` with AdamW (its fused
kernel where torch has one: ``make_optimizer``), given a loss function
``loss_fn(model, batch, generator) -> scalar tensor``. Around that it adds what a real run needs:

- gradient accumulation, gradient clipping, an optional LR schedule with linear warm-up;
- mixed precision (bf16 or fp16 autocast) on a GPU only; the CPU always runs in float32;
- an optional EMA (exponential moving average) copy of the weights;
- a text progress bar with the running loss, ``plot_losses`` for the curve, ``sample_fn`` every N steps;
- a budget: stop after ``max_steps`` optimizer steps or ``time_budget_s`` seconds, whichever first;
- checkpoints every N steps and at the end, written atomically, and ``resume=True``;
- several processes (``accelerate launch`` or ``torchrun``, one per GPU): the same call, unchanged.

Checkpoints (safetensors + JSON, no pickle) are written and read by :mod:`course_lib.checkpoints`,
which explains how a save survives a kill at any moment; ``save_checkpoint``, ``load_checkpoint`` and
``latest_checkpoint`` are re-exported here, where the lessons call them.

Resuming gives exactly the run you would have had without the interruption (on the CPU, bitwise):
every random draw of step ``s`` comes from a generator seeded with ``(seed, step)``, and the data
order of epoch ``e`` is a function of ``(seed, e)``, so the checkpoint only has to remember the step
and where in the epoch the data stood.

Several processes. Started by ``accelerate launch --multi_gpu`` or ``torchrun`` (which set
``WORLD_SIZE``), ``train`` joins the processes itself (NCCL for a model on a GPU, gloo on the CPU)
and puts a model that is on a GPU on this process's GPU (``LOCAL_RANK``). ``batch_size`` is per
process: one optimizer step of W processes uses ``W * grad_accum_steps`` micro-batches, and process
``r`` computes micro-batches ``r*A ... r*A + A-1`` (``A = grad_accum_steps``) with exactly the data,
generator and dropout seed that a single process with ``grad_accum_steps = W * A`` gives them. The
gradients and the loss are then summed over the processes, so the run is that single-process run,
up to the order of the float additions. Only process 0 writes checkpoints, runs ``sample_fn`` and
shows the progress bar; every process reads the same ``output_dir`` (one machine, or a shared folder).
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from course_lib.checkpoints import (
    _CHECKPOINTS,
    _checkpoint_folders,
    _folder_name,
    _prepare_dir,
    _resume_candidates,
    clean_leftovers,
    delete_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from course_lib.settings import make_generator
from course_lib.validate import (
    CourseInputError,
    check_choice,
    check_number,
    check_positive_int,
)

__all__ = [
    "COMPILE_MODES",
    "TrainConfig",
    "TrainResult",
    "compile_model",
    "is_main_process",
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


# --------------------------------------------------------------------------------------------
# Configuration and result
# --------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as JSON inside every checkpoint.

    ``max_steps`` counts optimizer steps; each uses ``grad_accum_steps`` batches (per process, when
    several train together: see the module's notes). ``batch_size`` is only used when ``data`` is a
    dataset or a tensor (a data factory makes its own batches).
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
    return make_generator(_derive_seed(seed, 1, step, micro))


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
        """The batches of ``epoch`` after the first ``skip`` ones, as ``load`` takes them: the indices of each
        batch of a tensor or dataset (read only when needed, so a process skips others' batches cheaply),
        or a factory's batches themselves."""
        if self.kind == "factory":
            it = iter(self.data(epoch))
            for _ in range(skip):  # a factory can only be skipped by reading through it
                next(it, None)
            yield from it
            return
        order = torch.randperm(len(self.data), generator=make_generator(_derive_seed(self.seed, 2, epoch)))
        n_batches = len(self.data) // self.batch_size
        for b in range(skip, n_batches):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]

    def load(self, item: Any) -> Any:
        """The batch that an item of ``epoch`` stands for."""
        if self.kind == "tensor":
            return self.data[item]
        if self.kind == "dataset":
            return torch.utils.data.default_collate([self.data[int(i)] for i in item])
        return item


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


@torch.no_grad()
def update_ema(ema_model: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * weights`` for every floating parameter; buffers are copied.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    check_number(decay, "decay", 0, 1)
    for e, p in zip(ema_model.parameters(), model.parameters(), strict=True):
        e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
    for e, b in zip(ema_model.buffers(), model.buffers(), strict=True):
        e.copy_(b)


# --------------------------------------------------------------------------------------------
# Several processes: one per GPU, gradients summed over them
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Group:
    """This process's place among the processes that train together (``world == 1``: it trains alone)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def is_main_process() -> bool:
    """Whether this process is rank 0, the one that writes; also true when training alone.

    A script started by ``accelerate launch`` asks it before saving or evaluating the trained model,
    so that only one process does (it answers from ``RANK`` before ``train`` has joined the processes).
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def _in_one_buffer(tensors: list[torch.Tensor], collective: Callable[[torch.Tensor], Any]) -> None:
    """Apply an in-place ``collective`` (all-reduce, broadcast) to ``tensors``, packed into one buffer per dtype:
    one message instead of one per tensor."""
    for dtype in sorted({t.dtype for t in tensors}, key=str):  # the same order on every process
        same = [t for t in tensors if t.dtype == dtype]
        flat = torch.cat([t.detach().reshape(-1) for t in same])
        collective(flat.view(torch.uint8) if dtype == torch.bool else flat)
        for t, part in zip(same, flat.split([t.numel() for t in same]), strict=True):
            t.detach().copy_(part.view_as(t))


def _join_processes(model: torch.nn.Module) -> _Group:
    """Join the other processes of a launched run, put the model on this process's GPU, copy rank 0's weights.

    Alone (no process group, ``WORLD_SIZE`` unset or 1) nothing happens. A process group that the
    script already started is used as it is. Rank 0's weights and buffers go to every process, so a
    model built with another seed on some process still starts from the same point everywhere.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if not (dist.is_available() and (dist.is_initialized() or launched)):
        return _Group()
    device = next(model.parameters()).device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise CourseInputError(
                f"this process (LOCAL_RANK={local}) has no GPU of its own: {torch.cuda.device_count()} visible; "
                "start at most that many processes (accelerate launch --num_processes N)."
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        model.to(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(dist.destroy_process_group)
    elif dist.get_backend() == "nccl" and device.type != "cuda":
        raise CourseInputError("model: the processes talk over NCCL, which needs the model on a GPU; "
                               "move it there first, e.g. model.to('cuda').")
    with torch.no_grad():
        _in_one_buffer([*model.parameters(), *model.buffers()], lambda flat: dist.broadcast(flat, src=0))
    return _Group(rank=dist.get_rank(), world=dist.get_world_size())


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


# The modes of torch.compile that record CUDA graphs, and their equivalents without them (for other devices).
_CUDA_GRAPH_MODES = {"reduce-overhead": "default", "max-autotune": "max-autotune-no-cudagraphs"}
COMPILE_MODES = ("auto", "default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune")
_compiler_problem: dict[str, str | None] = {}  # device type -> why torch.compile cannot run there (None: it can)


def _check_compile(compile: Any) -> bool | str:
    """``compile`` if it is a valid switch (False, True or one of ``COMPILE_MODES``); else a ``CourseInputError``."""
    if not (isinstance(compile, bool) or (isinstance(compile, str) and compile in COMPILE_MODES)):
        raise CourseInputError(
            f"compile: expected False, True, or one of {COMPILE_MODES} (torch.compile's modes), got {compile!r}."
        )
    return compile


def _compile_mode(compile: bool | str, device_type: str) -> str | None:
    """The torch.compile mode for a ``compile`` switch on a device type; None means "run eagerly".

    ``True`` / ``"auto"``: CUDA graphs (``"reduce-overhead"``) on a CUDA GPU, ``"default"`` elsewhere. A mode
    that records CUDA graphs asked for on another device becomes its equivalent without them, with a warning.
    """
    if _check_compile(compile) is False:
        return None
    if compile is True or compile == "auto":
        return "reduce-overhead" if device_type == "cuda" else "default"
    if compile in _CUDA_GRAPH_MODES and device_type != "cuda":
        warnings.warn(f"compile={compile!r} records CUDA graphs, which need a CUDA GPU; on {device_type} "
                      f"{_CUDA_GRAPH_MODES[compile]!r} is used instead.", UserWarning, stacklevel=3)
        return _CUDA_GRAPH_MODES[compile]
    return compile


def _describe(error: BaseException) -> str:
    """An exception's type and the first line of its message, for a one-line warning (for dynamo's
    ``BackendCompilerFailed``, those of the compiler's own exception inside it)."""
    while isinstance(getattr(error, "inner_exception", None), BaseException):
        error = error.inner_exception  # type: ignore[attr-defined]
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def _check_compiler(device: torch.device) -> str | None:
    """Why torch.compile (inductor) cannot run on ``device`` here, or None when it can (tried once per device
    type): a tiny function is compiled and run forward and backward, which needs dynamo, inductor and the
    C++ (CPU) or Triton (GPU) compiler that inductor calls."""
    if device.type not in _compiler_problem:
        try:
            probe = torch.compile(lambda t: torch.nn.functional.silu(t) * 2.0 + 1.0, backend="inductor",
                                  dynamic=False)
            x = torch.linspace(-1.0, 1.0, 8, device=device, requires_grad=True)
            probe(x).sum().backward()
            _compiler_problem[device.type] = None
        except Exception as error:  # noqa: BLE001 - any failure here means: no working compiler
            _compiler_problem[device.type] = _describe(error)
    return _compiler_problem[device.type]


def compile_model(model: torch.nn.Module, compile: bool | str = True) -> torch.nn.Module:
    """``model`` compiled by ``torch.compile`` (inductor, fixed shapes), or ``model`` itself where that cannot run.

    ``compile``: False (eager, ``model`` itself), True or ``"auto"`` (CUDA graphs on a CUDA GPU, inductor's
    ``"default"`` mode elsewhere) or one of ``COMPILE_MODES``. The compiled module shares ``model``'s parameters:
    train it, then save and load ``model`` (the compiled wrapper's state dict prefixes every key with
    ``_orig_mod.``). Compiling happens at the first call (tens of seconds on a CPU, less with inductor's cache
    from an earlier run) and again for every new input shape. Where no compiler works (no C++ compiler, a torch
    without inductor, a Python that dynamo does not support yet) one warning says why and ``model`` is returned:
    the same results, without the speed-up. Measured on lesson 05's U-Net: bench/RESULTS.md.
    """
    if not isinstance(model, torch.nn.Module):
        raise CourseInputError(f"model: expected a torch.nn.Module, got {type(model).__name__}.")
    device = next(iter([*model.parameters(), *model.buffers()]), torch.empty(0)).device
    mode = _compile_mode(compile, device.type)
    if mode is None:
        return model
    problem = _check_compiler(device)
    if problem is None:
        try:
            return torch.compile(model, mode=mode, dynamic=False, backend="inductor")
        except Exception as error:  # noqa: BLE001 - e.g. torch.compile refusing this Python version
            problem = _describe(error)
    warnings.warn(f"torch.compile cannot run here ({problem}); the model runs eagerly: the same results, "
                  "without the speed-up. Pass compile=False to silence this.", RuntimeWarning, stacklevel=2)
    return model


@dataclass
class _Run:
    """What ``train`` carries from one optimizer step to the next, and what a checkpoint keeps of it."""

    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    config: TrainConfig
    root: Path
    batches: _Batches
    device: torch.device
    amp_dtype: torch.dtype | None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    ema_model: torch.nn.Module | None
    group: _Group = _Group()  # the processes training together
    step: int = 0  # optimizer steps done
    epoch: int = 0  # where the data stands: epoch, and batches already read from it
    batch_in_epoch: int = 0
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    resumed_from: int | None = None
    batch_iter: Iterator[Any] = field(default_factory=lambda: iter(()))
    forward_model: torch.nn.Module | None = None  # what loss_fn gets: the model, or it compiled (compile_model)


def _check_train_arguments(model: Any, loss_fn: Any, config: Any) -> list[torch.nn.Parameter]:
    """Validate ``train``'s arguments once; return the trainable parameters."""
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
    return params


def _warmup_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int) -> Any:
    """The default LR schedule: linear warm-up over ``warmup_steps`` optimizer steps, then constant."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup_steps) if warmup_steps else 1.0
    )


def _prepare_run(model: torch.nn.Module, params: list[torch.nn.Parameter], data: Any, config: TrainConfig,
                 lr_schedule: Callable[[torch.optim.Optimizer], Any] | None, group: _Group) -> _Run:
    """Output folder, batches, precision, optimizer, LR schedule, gradient scaler and EMA copy of a new run."""
    root = _prepare_dir(config.output_dir)
    batches = _Batches(data, config.batch_size, config.seed)
    device = params[0].device
    amp_dtype = _precision(config, device)
    optimizer = make_optimizer(params, config)
    scheduler = lr_schedule(optimizer) if lr_schedule is not None else _warmup_schedule(optimizer, config.warmup_steps)
    ema_model = None
    if config.ema_decay is not None:
        ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    return _Run(model=model, params=params, config=config, root=root, batches=batches, device=device,
                amp_dtype=amp_dtype, optimizer=optimizer, scheduler=scheduler,
                scaler=torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16), ema_model=ema_model,
                group=group)


def _resume_or_start_over(run: _Run, resume: bool) -> None:
    """Continue from the newest readable checkpoint (``resume=True``) or delete the old ones; then open the data.

    First every leftover of an interrupted save is tidied, whichever process left it: a run owns its
    output folder (``resume=False`` deletes all of it), so no other process should be saving there.
    With several processes, process 0 tidies and loads first (it may set damaged checkpoints aside),
    then the others load the checkpoint it loaded.
    """
    group = run.group
    if group.main:
        clean_leftovers(run.root, every_process=True)
        if not resume:
            delete_checkpoints(run.root)
    group.barrier()
    resuming = resume and bool(_resume_candidates(run.root))
    if resuming and group.main:
        _resume(run)
    group.barrier()
    if resuming and not group.main:
        _resume(run)
    run.batch_iter = run.batches.epoch(run.epoch, run.batch_in_epoch)


def _resume(run: _Run) -> None:
    """Load the newest readable checkpoint into ``run``: weights, EMA, optimizer, RNG, LR schedule, position."""
    optimizer, config = run.optimizer, run.config
    fast_path = {k: optimizer.param_groups[0][k] for k in ("fused", "foreach") if k in optimizer.param_groups[0]}
    meta = load_checkpoint(run.root, run.model, optimizer, ema_model=run.ema_model, restore_rng=True)
    for group in optimizer.param_groups:  # the checkpoint's groups name the kernel it was made with
        group.update(fast_path)
    if meta["config"]["seed"] != config.seed:
        warnings.warn(
            f"resuming a run made with seed={meta['config']['seed']} under seed={config.seed}: "
            "the rest of the run will not match an uninterrupted one.",
            RuntimeWarning,
            stacklevel=4,
        )
    before = meta.get("processes", 1) * meta["config"]["grad_accum_steps"]  # micro-batches per optimizer step
    if before != run.group.world * config.grad_accum_steps and run.group.main:
        warnings.warn(
            f"resuming a run whose steps used {before} micro-batches (processes x grad_accum_steps) with "
            f"{run.group.world * config.grad_accum_steps}: the rest of the run will not match an uninterrupted one.",
            RuntimeWarning,
            stacklevel=4,
        )
    run.step, run.epoch, run.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
    for newer in _checkpoint_folders(run.root) if run.group.main else ():  # unreadable ones past it: set aside
        if int(newer.name[5:]) > run.step:
            os.replace(newer, newer.with_name(f".broken-{newer.name}-{os.getpid()}"))
    run.losses, run.lrs, run.resumed_from = list(meta["losses"]), list(meta["lrs"]), meta["step"]
    if "lr_scheduler" in meta:
        run.scheduler.load_state_dict({**run.scheduler.state_dict(), **meta["lr_scheduler"]})
    if "grad_scaler" in meta and run.scaler.is_enabled():
        run.scaler.load_state_dict(meta["grad_scaler"])


def _next_batch(run: _Run) -> Any:
    """What the next batch of data is made from (``_Batches.load``), moving on to the next epoch when this
    one is used up."""
    for _ in range(2):
        batch = next(run.batch_iter, None)
        if batch is not None:
            run.batch_in_epoch += 1
            return batch
        run.epoch, run.batch_in_epoch = run.epoch + 1, 0
        run.batch_iter = run.batches.epoch(run.epoch, 0)
    raise CourseInputError(f"data: epoch {run.epoch} gave no batches; check the dataset or data factory.")


def _micro_batch_loss(run: _Run, loss_fn: Callable[..., torch.Tensor], item: Any, micro: int) -> torch.Tensor:
    """``loss_fn`` on the batch of ``item``, under autocast on a GPU, with the generator of (seed, step, micro).

    The global torch RNG (dropout etc. in the model) is seeded from the same numbers, per micro-batch so that
    a process starting at micro-batch ``m`` draws what a single process would. For micro-batch 0 this is the
    per-step seed ``(seed, 3, step)`` used before (a trailing 0 does not change what ``SeedSequence`` mixes),
    so runs without gradient accumulation resume older checkpoints exactly.
    """
    batch = _to_device(run.batches.load(item), run.device)
    generator = step_generator(run.config.seed, run.step, micro)
    torch.manual_seed(_derive_seed(run.config.seed, 3, run.step, micro))
    net = run.model if run.forward_model is None else run.forward_model
    if net is not run.model and run.device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()  # CUDA graphs: the previous micro-batch's outputs are done with
    with torch.autocast(device_type=run.device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
        loss = loss_fn(net, batch, generator)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise CourseInputError("loss_fn: must return a scalar tensor (e.g. F.mse_loss(pred, target)).")
    return loss


def _sum_over_processes(run: _Run, step_loss: float) -> float:
    """Sum every process's gradients and share of the loss (in place); return the loss of the whole step.

    A parameter that any process used gets a gradient on all (zeros where unused); one used by none keeps
    ``grad=None``, so AdamW leaves it alone exactly as a single process would.
    """
    if run.group.world == 1:
        return step_loss
    shared = torch.tensor([step_loss] + [p.grad is not None for p in run.params], dtype=torch.float64,
                          device=run.device)
    dist.all_reduce(shared)
    grads = []
    for p, used in zip(run.params, shared[1:].tolist(), strict=True):
        if used and p.grad is None:
            p.grad = torch.zeros_like(p)
        if used:
            grads.append(p.grad)
    _in_one_buffer(grads, dist.all_reduce)
    return float(shared[0])


def _train_step(run: _Run, loss_fn: Callable[..., torch.Tensor]) -> float:
    """Optimizer step ``run.step``: accumulate gradients (over all processes), clip, AdamW, LR schedule, EMA.

    Of the step's ``grad_accum_steps * world`` micro-batches, this process computes its own run of
    ``grad_accum_steps`` and only reads past the others'. Returns the step's loss over all processes.
    """
    config, group = run.config, run.group
    n_micro = config.grad_accum_steps * group.world
    mine = range(group.rank * config.grad_accum_steps, (group.rank + 1) * config.grad_accum_steps)
    run.optimizer.zero_grad(set_to_none=True)
    step_loss = 0.0
    for micro in range(n_micro):
        item = _next_batch(run)
        if micro in mine:
            loss = _micro_batch_loss(run, loss_fn, item, micro)
            run.scaler.scale(loss / n_micro).backward()
            step_loss += float(loss.detach()) / n_micro
    step_loss = _sum_over_processes(run, step_loss)
    if not math.isfinite(step_loss):
        raise FloatingPointError(
            f"the loss became {step_loss} at step {run.step}; lower lr (now {config.lr:g}) or check the data."
        )
    if config.max_grad_norm is not None:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.params, config.max_grad_norm)
    run.lrs.append(float(run.optimizer.param_groups[0]["lr"]))
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    if run.ema_model is not None:
        update_ema(run.ema_model, run.model, config.ema_decay)
    run.losses.append(step_loss)
    return step_loss


def _steps_left(config: TrainConfig, step: int) -> bool:
    return config.max_steps is None or step < config.max_steps


def _out_of_time(run: _Run, start: float) -> bool:
    """Whether the time budget is spent; process 0's clock decides for all, so that all stop at one step."""
    if run.config.time_budget_s is None:
        return False
    spent = time.monotonic() - start >= run.config.time_budget_s
    if run.group.world == 1:
        return spent
    answer = torch.tensor([int(spent)], dtype=torch.int32, device=run.device)
    dist.broadcast(answer, src=0)
    return bool(answer)


def _sample(run: _Run, sample_fn: Callable[[torch.nn.Module, int], Any]) -> None:
    """``sample_fn(model, step)`` in eval mode without gradients, with the EMA model when there is one
    (on process 0 alone when several train together)."""
    if not run.group.main:
        return
    target = run.ema_model if run.ema_model is not None else run.model
    target.eval()
    with torch.no_grad():
        sample_fn(target, run.step)
    run.model.train()


def _save(run: _Run) -> Path:
    """A checkpoint of ``run`` at its current step (see :func:`save_checkpoint`), written by process 0 alone."""
    if not run.group.main:
        return run.root / _CHECKPOINTS / _folder_name(run.step)
    extra = {
        "processes": run.group.world,
        "config": run.config.to_dict(),
        "epoch": run.epoch,
        "batch_in_epoch": run.batch_in_epoch,
        "losses": run.losses,
        "lrs": run.lrs,
    }
    return save_checkpoint(
        run.root, run.step, run.model, run.optimizer, ema_model=run.ema_model, lr_scheduler=run.scheduler,
        grad_scaler=run.scaler, extra=extra, keep_last_n=run.config.keep_last_n,
    )


def _progress_bar(progress: bool, run: _Run) -> Any:
    if not progress:
        return None
    from course_lib.settings import progress as progress_bar

    return progress_bar(total=run.config.max_steps, initial=run.step, desc="training", unit="step")


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
    compile: bool | str = False,
) -> TrainResult:
    """Train ``model`` with AdamW on ``loss_fn(model, batch, generator)`` until a budget runs out.

    ``data`` is a tensor or map-style dataset (shuffled per epoch from ``(seed, epoch)``, batches of
    ``config.batch_size``, incomplete batches dropped), or a function ``epoch -> iterable of batches``
    that must give the same batches for the same epoch. Batches are moved to the model's device.
    ``generator`` is a CPU ``torch.Generator`` seeded from ``(seed, step, micro-batch)``: draw all randomness of
    the loss from it. ``sample_fn(model, step)`` runs every ``config.sample_every`` steps in eval
    mode (with the EMA model when the EMA is on). ``lr_schedule(optimizer)`` builds a torch LR
    scheduler stepped once per optimizer step; without it, the LR warms up linearly over
    ``config.warmup_steps`` steps and then stays at ``config.lr``.

    With ``resume=True`` and a checkpoint in ``config.output_dir``, training continues from the
    newest readable one (raise ``max_steps`` to train longer; a damaged newest checkpoint is set
    aside as ``.broken-*`` with a warning); ``resume=False`` deletes the old checkpoints and starts over.
    Either way, what interrupted saves left in that folder is tidied first
    (:func:`course_lib.checkpoints.clean_leftovers`).
    The global torch RNG is re-seeded from ``(seed, step, micro-batch)`` before every micro-batch, so
    dropout inside the model is reproducible too. Returns a ``TrainResult``; the model is left in eval mode.

    Under ``accelerate launch --multi_gpu`` (or ``torchrun``) the same call trains on every process
    together, as one process with ``grad_accum_steps`` times the number of processes would; only
    process 0 writes (see the module's notes; ``is_main_process`` tells a script which process it is).

    ``compile`` (off by default): ``loss_fn`` gets the model compiled by :func:`compile_model` (True:
    inductor on a CPU, CUDA graphs on a GPU); checkpoints, ``sample_fn`` and the EMA use the model itself,
    so what is saved is the same either way. Compiling happens in the first step and counts against
    ``time_budget_s``; where no compiler works, one warning and the eager model.

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
    """
    params = _check_train_arguments(model, loss_fn, config)
    _check_compile(compile)
    run = _prepare_run(model, params, data, config, lr_schedule, _join_processes(model))
    _resume_or_start_over(run, resume)
    last_checkpoint = latest_checkpoint(run.root) if run.resumed_from is not None else None
    stopped_by, running = "steps", None
    start = time.monotonic()
    run.forward_model = compile_model(model, compile)  # after joining the processes: on this process's device
    bar = _progress_bar(progress and run.group.main, run)
    model.train()
    while _steps_left(config, run.step):
        if _out_of_time(run, start):
            stopped_by = "time"
            break
        run.step += 1
        loss = _train_step(run, loss_fn)
        running = loss if running is None else 0.9 * running + 0.1 * loss
        if bar is not None:
            bar.update(1)
            if run.step % config.log_every == 0:
                bar.set_postfix(loss=f"{running:.4f}")
        if sample_fn is not None and config.sample_every is not None and run.step % config.sample_every == 0:
            _sample(run, sample_fn)
        if run.step % config.checkpoint_every == 0:
            last_checkpoint = _save(run)
    if bar is not None:
        bar.close()
    if run.step > 0 and (last_checkpoint is None or last_checkpoint.name != _folder_name(run.step)):
        last_checkpoint = _save(run)  # the end of the run, off the checkpoint schedule
    run.group.barrier()  # every process returns once the last checkpoint is on disk
    model.eval()
    return TrainResult(
        losses=run.losses,
        steps=run.step,
        stopped_by=stopped_by,
        checkpoint=last_checkpoint,
        resumed_from=run.resumed_from,
        elapsed_s=time.monotonic() - start,
        lrs=run.lrs,
        ema_model=run.ema_model,
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
