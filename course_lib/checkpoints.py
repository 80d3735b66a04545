"""Checkpoints of a training run: written so that a kill at any moment loses at most the save in progress.

``course_lib.training`` saves and resumes through this module (and re-exports ``save_checkpoint``,
``load_checkpoint`` and ``latest_checkpoint``, the names the lessons call). Checkpoints hold no pickle:
tensors go to safetensors files, everything else to JSON::

    output_dir/checkpoints/step-000120/model.safetensors      weights
                                      ema.safetensors        EMA weights (if on)
                                      state.safetensors      optimizer tensors, torch RNG states
                                      state.json             step, config, losses, data position,
                                                             optimizer hyper-parameters, Python and
                                                             NumPy RNG states, LR schedule state
    output_dir/latest.json                                   {"step": 120, "folder": "step-000120"}

How a save survives a kill (``SIGKILL``, a closed Colab tab, a power cut), step by step:

1. the files go into a hidden ``.tmp-step-…-<pid>`` folder and are flushed to disk (``fsync``);
2. if the same step was saved before, that copy is renamed aside to ``.old-step-…-<pid>``;
3. one rename publishes the new folder as ``step-…`` (a rename is atomic on one file system);
4. ``latest.json`` is replaced atomically (:func:`course_lib.io.atomic_write`);
5. the set-aside copy and, with ``keep_last_n``, older checkpoints are deleted, each by first renaming it
   to a hidden ``.trash-…`` name (one rename takes it out of sight) and only then removing its files.

So a published ``step-…`` folder is always complete, and resume takes the newest one. What a kill leaves
behind is hidden and is tidied by :func:`clean_leftovers`: a set-aside ``.old-…`` copy whose published twin
is missing or incomplete is put back (it may be the only complete copy of that step), the rest is deleted.
Folders set aside as ``.broken-…`` (checkpoints resume could not read) are kept for a person to inspect.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from course_lib.io import atomic_write, load_tensors, prepare_output_dir, read_json, save_tensors, write_json
from course_lib.validate import CourseInputError, check_positive_int

__all__ = ["clean_leftovers", "delete_checkpoints", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

_CHECKPOINTS = "checkpoints"
_LATEST = "latest.json"
_FORMAT = 1
# What an interrupted save or delete leaves: a hidden kind, the folder's own name, the id of the process.
_LEFTOVER = re.compile(r"\.(tmp|old|trash)-((?:old-)?step-\d+(?:-\d+)?|checkpoints)-(\d+)")
_REQUIRED = ("state.json", "model.safetensors", "state.safetensors")


# --------------------------------------------------------------------------------------------
# The format: safetensors + JSON
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


def _is_json(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def _write_checkpoint_files(
    folder: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    ema_model: torch.nn.Module | None,
    lr_scheduler: Any,
    grad_scaler: Any,
    extra: dict[str, Any] | None,
) -> None:
    """Write a checkpoint's files into ``folder`` (each with :mod:`course_lib.io`) and flush them to disk."""
    save_tensors(folder / "model.safetensors", _tensors_for_file(model.state_dict()), metadata={"step": str(step)})
    if ema_model is not None:
        save_tensors(folder / "ema.safetensors", _tensors_for_file(ema_model.state_dict()))
    tensors, rng_meta = _rng_state()
    meta: dict[str, Any] = {"format": _FORMAT, "step": step, "rng": rng_meta, "has_ema": ema_model is not None}
    if optimizer is not None:
        opt_tensors, meta["optimizer"] = _flatten_optimizer(optimizer.state_dict())
        tensors.update(opt_tensors)
    save_tensors(folder / "state.safetensors", _tensors_for_file(tensors))
    if lr_scheduler is not None:
        meta["lr_scheduler"] = {k: v for k, v in lr_scheduler.state_dict().items() if _is_json(v)}
    if grad_scaler is not None and grad_scaler.is_enabled():
        meta["grad_scaler"] = grad_scaler.state_dict()
    meta.update(extra or {})
    write_json(folder / "state.json", meta, indent=1)
    for p in folder.iterdir():
        _fsync(p)
    _fsync(folder)


# --------------------------------------------------------------------------------------------
# Saving: a kill at any moment leaves the old checkpoint or the new one, and hidden leftovers
# --------------------------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's list of names, to disk: a rename survives a power cut only after this."""
    if path.is_dir() and os.name != "posix":  # Windows cannot open a folder to fsync it
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reached(point: str, step: int, path: Path) -> None:
    """A test hook, called where a kill inside a save leaves a different state on disk.

    ``point`` is ``"written"`` (the temporary folder is complete), ``"moved-aside"`` (the old copy of the
    same step is hidden), ``"published"`` (the new folder has its name, ``latest.json`` not yet),
    ``"pointer"`` (``latest.json``'s temporary file is written, not yet renamed) or ``"deleting"``
    (after each file removed from a folder being deleted). ``step`` is the step being saved (-1 when
    :func:`clean_leftovers` or :func:`delete_checkpoints` deletes); ``path`` is the folder or file concerned.
    """


def _folder_name(step: int) -> str:
    return f"step-{step:06d}"


def _prepare_dir(output_dir: Any) -> Path:
    """``output_dir`` created if needed (:func:`course_lib.io.prepare_output_dir`) and checked to be writable."""
    try:
        p = prepare_output_dir(output_dir, "output_dir")
    except OSError as e:
        raise CourseInputError(
            f"output_dir: cannot create {str(output_dir)!r} ({e.strerror}); choose a folder you can write to."
        ) from e
    if not os.access(p, os.W_OK | os.X_OK):
        raise CourseInputError(f"output_dir: {str(p)!r} is not writable; choose a folder you can write to.")
    return p


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

    The files go into a hidden temporary folder first, which one rename then publishes whole.
    ``extra`` is merged into ``state.json`` (``train`` stores its config, losses and data position
    there). ``keep_last_n`` deletes older checkpoints once the new one is published, so the newest
    complete checkpoint is never deleted before its successor is in place. First it tidies what
    earlier saves of this process, or of processes no longer running, left behind
    (:func:`clean_leftovers`); if the save fails, it tidies its own leftovers before raising.
    """
    step = check_positive_int(step, "step", minimum=0)
    root = _prepare_dir(output_dir)
    ckpts = root / _CHECKPOINTS
    ckpts.mkdir(exist_ok=True)
    clean_leftovers(root)
    name = _folder_name(step)
    final = ckpts / name
    tmp = ckpts / f".tmp-{name}-{os.getpid()}"
    old = ckpts / f".old-{name}-{os.getpid()}"
    try:
        tmp.mkdir()
        _write_checkpoint_files(tmp, step, model, optimizer, ema_model, lr_scheduler, grad_scaler, extra)
        _reached("written", step, tmp)
        # Publish: one rename makes the whole folder appear at once.
        moved_aside = final.exists()
        if moved_aside:  # the same step saved again (e.g. the end of a run that resumed on a checkpoint)
            os.replace(final, old)
            _reached("moved-aside", step, old)
        os.replace(tmp, final)
        _fsync(ckpts)
        _reached("published", step, final)
        _write_pointer(root, step, name)
        if moved_aside:
            _discard(old, step)
        if keep_last_n is not None:
            for older in _checkpoint_folders(root)[keep_last_n:]:
                if older != final:
                    _discard(older, step)
    except BaseException:
        with contextlib.suppress(OSError):
            clean_leftovers(root)  # puts a set-aside copy back, removes the unpublished folder
        raise
    return final


def _write_pointer(root: Path, step: int, name: str) -> None:
    """Replace ``latest.json`` atomically: the same bytes as ``write_json(..., indent=1)``, with the test hook
    called while the new text sits in :func:`course_lib.io.atomic_write`'s temporary file."""
    text = json.dumps({"step": step, "folder": name}, indent=1, ensure_ascii=False) + "\n"

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")
        _reached("pointer", step, Path(tmp))

    atomic_write(root / _LATEST, write)
    _fsync(root / _LATEST)
    _fsync(root)


def _discard(folder: Path, step: int = -1) -> None:
    """Delete a checkpoint folder so that a kill part-way leaves nothing that looks usable.

    One rename first takes it out of sight (a hidden ``.trash-`` name that resume ignores and that
    :func:`clean_leftovers` deletes later); only then do its files go, one by one.
    """
    trash = folder.with_name(f".trash-{folder.name.lstrip('.')}-{os.getpid()}")
    if trash.exists():  # this process's own earlier, interrupted delete of a folder of the same name
        shutil.rmtree(trash)
    os.replace(folder, trash)
    for child in sorted(trash.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
        _reached("deleting", step, trash)
    trash.rmdir()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` is running; outside POSIX, always True (``os.kill`` there would end it)."""
    if pid == os.getpid() or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _complete(folder: Path) -> bool:
    """Whether a checkpoint folder has all its files, non-empty (a cheap check: resume reads them in full)."""
    try:
        meta = read_json(folder / "state.json", "checkpoint")
    except CourseInputError:
        return False
    if not isinstance(meta, dict):
        return False
    names = _REQUIRED + (("ema.safetensors",) if meta.get("has_ema") else ())
    return all((folder / n).is_file() and (folder / n).stat().st_size > 0 for n in names)


def clean_leftovers(output_dir: str | os.PathLike, *, every_process: bool = False) -> None:
    """Tidy what interrupted saves left in a run's folder, putting back a checkpoint that is still needed.

    A hidden ``.old-step-…`` copy (set aside while the same step was saved again) goes back to its name
    when the published ``step-…`` twin is missing or incomplete: it may be the only complete copy of
    that step, and resume sees only published names. Otherwise it is deleted, and so are ``.tmp-…``
    (unpublished saves) and ``.trash-…`` (interrupted deletes). ``.broken-…`` folders, checkpoints resume
    could not read, are kept for a person to inspect.

    By default only leftovers of this process and of processes no longer running are touched, so a
    save never pulls the floor from under another one still writing. ``every_process=True`` (what
    ``train`` does when it starts, since a run owns its output folder) tidies all of them, including
    the temporary file of an interrupted ``latest.json`` write, whose name carries no process id.
    """
    root = Path(output_dir)
    ckpts = root / _CHECKPOINTS

    def ours(pid: int) -> bool:
        return every_process or pid == os.getpid() or not _alive(pid)

    for folder in (root, ckpts):
        if not folder.is_dir():
            continue
        # Beside the checkpoints folder, only an interrupted delete of all of it (``delete_checkpoints``).
        found = sorted((m.groups(), p) for p in folder.iterdir()
                       if (m := _LEFTOVER.fullmatch(p.name)) and (m[2] == _CHECKPOINTS) == (folder == root))
        for (kind, name, pid), path in found:
            if not ours(int(pid)):
                continue
            twin = folder / name
            if kind == "old" and folder == ckpts and name.startswith("step-") and not _complete(twin):
                if twin.exists():
                    _discard(twin)
                os.replace(path, twin)
            elif kind == "old":
                _discard(path)
            else:
                shutil.rmtree(path, ignore_errors=True)
    if every_process:
        for tmp in root.glob(f".{_LATEST}.*"):  # course_lib.io.atomic_write's temporary file
            if tmp.is_file():
                tmp.unlink(missing_ok=True)


def delete_checkpoints(output_dir: str | os.PathLike) -> None:
    """Delete a run's checkpoints and ``latest.json`` (``train(..., resume=False)``).

    The folder is first renamed to a hidden ``.trash-checkpoints-<pid>``, so a kill part-way never leaves
    half-deleted checkpoints under published names; :func:`clean_leftovers` removes the rest later.
    """
    root = Path(output_dir)
    ckpts = root / _CHECKPOINTS
    if ckpts.is_dir():
        _discard(ckpts)
    (root / _LATEST).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Finding and loading
# --------------------------------------------------------------------------------------------


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
            folder = root / _CHECKPOINTS / read_json(pointer, "latest.json")["folder"]
            if folder.is_dir():
                return folder
        except (CourseInputError, KeyError, TypeError):
            pass
    folders = _checkpoint_folders(root)
    return folders[0] if folders else None


def _read_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict[str, torch.Tensor], dict[str, Any]]:
    meta = read_json(folder / "state.json", "checkpoint")
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT or not isinstance(meta.get("step"), int):
        raise CourseInputError(f"checkpoint: {str(folder / 'state.json')!r} is not the state of a course checkpoint.")
    weights = load_tensors(folder / "model.safetensors", "checkpoint")
    ema = load_tensors(folder / "ema.safetensors", "checkpoint") if meta.get("has_ema") else None
    state = load_tensors(folder / "state.safetensors", "checkpoint")
    return weights, ema, state, meta


def _load_into(target: Any, state: dict[str, Any], name: str, folder: Path) -> None:
    """``target.load_state_dict(state)``; a checkpoint of another shape is a CourseInputError saying so."""
    try:
        target.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = (lines[1] if len(lines) > 1 else lines[0] if lines else type(err).__name__)[:300].rstrip(".")
        raise CourseInputError(
            f"{name}: the checkpoint {folder.name} does not fit the model ({detail}). Build the model with the "
            "settings of the run that saved it; to train this model from scratch instead, use another "
            "output_dir or resume=False."
        ) from err


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
    A checkpoint saved from a model of another shape is a ``CourseInputError`` that says so.
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
    _load_into(model, weights, "model", folder)
    if ema_model is not None:
        if ema is None:
            raise CourseInputError(f"ema_model: the checkpoint {folder.name} has no EMA weights (ema_decay was None).")
        _load_into(ema_model, ema, "ema_model", folder)
    if optimizer is not None and "optimizer" in meta:
        _load_into(optimizer, _unflatten_optimizer(state, meta["optimizer"]), "optimizer", folder)
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
