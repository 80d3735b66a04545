"""Files, written so that nothing is lost: the course's one atomic write, JSON and safetensors save/load.

Foundation layer: imports no torch at import time (``safetensors.torch`` is imported inside the
functions that need it), so the teacher's tools can use the path checks here without waiting for torch.

- :func:`atomic_write` writes a temporary file in the target's folder and ``os.replace``-s it onto the
  target: a reader sees the old file or the new one, never half of one, even if the process is killed.
- :func:`write_json` / :func:`read_json` and :func:`save_tensors` / :func:`load_tensors` build on it and
  turn a missing, empty or corrupt file into a :class:`CourseInputError` that names the file.
- :func:`save_pretrained_files` / :func:`load_pretrained_files` are the one ``save_pretrained`` /
  ``from_pretrained`` pair of the course's own models: ``model.safetensors`` + ``config.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from course_lib.errors import CourseInputError

__all__ = [
    "REPO_ROOT", "atomic_write", "write_json", "read_json", "save_tensors", "load_tensors",
    "save_pretrained_files", "load_pretrained_files", "check_file", "check_dir", "prepare_output_dir",
    "WEIGHTS_NAME", "CONFIG_NAME",
]

# The folder above the package: a clone of the course (``pip install -e .``).
REPO_ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


# ----------------------------------------------------------------------------------------------
# Path checks (torch-free; ``course_lib.validate`` re-exports them)
# ----------------------------------------------------------------------------------------------
def check_file(path: Any, name: str = "path") -> Path:
    """Check that ``path`` names an existing, non-empty file."""
    if not isinstance(path, (str, os.PathLike)):
        raise CourseInputError(f"{name}: expected a file path, got {type(path).__name__}.")
    p = Path(path)
    if not p.exists():
        raise CourseInputError(f"{name}: {str(p)!r} does not exist; check the path (cwd is {os.getcwd()!r}).")
    if p.is_dir():
        raise CourseInputError(f"{name}: {str(p)!r} is a folder; give a file inside it.")
    if p.stat().st_size == 0:
        raise CourseInputError(f"{name}: {str(p)!r} is an empty file; it may be a failed download or copy.")
    return p


def check_dir(path: Any, name: str = "folder") -> Path:
    """Check that ``path`` names an existing folder."""
    if not isinstance(path, (str, os.PathLike)):
        raise CourseInputError(f"{name}: expected a folder path, got {type(path).__name__}.")
    p = Path(path)
    if not p.is_dir():
        raise CourseInputError(f"{name}: {str(p)!r} is not an existing folder.")
    return p


def prepare_output_dir(path: Any, name: str = "folder") -> Path:
    """Check that ``path`` can be a folder to write into, create it if needed, and return it."""
    if not isinstance(path, (str, os.PathLike)):
        raise CourseInputError(f"{name}: expected a folder path, got {type(path).__name__}.")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CourseInputError(f"{name}: {str(p)!r} is a file; give a folder to write into.")
    for parent in p.parents:  # a file somewhere above the folder: say which
        if parent.exists():
            if not parent.is_dir():
                raise CourseInputError(f"{name}: {str(parent)!r} (above {str(p)!r}) is a file, not a folder; "
                                       "choose a path whose parents are folders.")
            break
    p.mkdir(parents=True, exist_ok=True)
    return p


# ----------------------------------------------------------------------------------------------
# Atomic writing
# ----------------------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)``, then move the finished file onto ``path`` in one step.

    The temporary file sits in ``path``'s folder (``os.replace`` is atomic only within one file
    system) and is removed if ``write`` fails, so ``path`` holds the old file or the new one, never a
    part. The result is readable by everyone (0o644), like any other file the course writes.
    """
    path = Path(path)
    folder = prepare_output_dir(path.parent, "path")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1, sort_keys: bool = False) -> Path:
    """Write ``obj`` as JSON (UTF-8, a trailing newline) to ``path`` atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_json(path: str | os.PathLike, name: str = "path", hint: str = "") -> Any:
    """Read a JSON file; a missing, empty or corrupt file is a :class:`CourseInputError` naming it."""
    p = check_file(path, name)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CourseInputError(
            f"{name}: {str(p)!r} is not valid JSON ({err}); the file is corrupt or cut short. "
            f"{hint or 'Restore it from the repository or save it again.'}"
        ) from err


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None
                 ) -> Path:
    """Write a dict of tensors as safetensors, atomically."""
    from safetensors.torch import save_file

    contiguous = {k: v.detach().contiguous() for k, v in tensors.items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    return atomic_write(path, lambda tmp: save_file(contiguous, tmp, metadata=meta or None))


def load_tensors(path: str | os.PathLike, name: str = "path", hint: str = "", device: str = "cpu"
                 ) -> dict[str, Any]:
    """Read a safetensors file; a missing, short or corrupt file is a :class:`CourseInputError` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = check_file(path, name)
    try:
        return load_file(str(p), device=device)
    except (SafetensorError, OSError, ValueError) as err:
        raise CourseInputError(
            f"{name}: {str(p)!r} is not a readable safetensors file ({err}); it is corrupt or cut short. "
            f"{hint or 'Restore it from the repository or save it again.'}"
        ) from err


# ----------------------------------------------------------------------------------------------
# save_pretrained / from_pretrained for the course's own models
# ----------------------------------------------------------------------------------------------
def save_pretrained_files(folder: str | os.PathLike, state_dict: Mapping[str, Any], config: Mapping[str, Any],
                          dtype: Any = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder``, each atomically.

    ``dtype`` (e.g. ``torch.float16``) stores floating-point weights smaller; they are cast back on load.
    """
    out = prepare_output_dir(folder, "folder")
    weights = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v) for k, v in state_dict.items()}
    save_tensors(out / WEIGHTS_NAME, weights, metadata={"format": "pt"})
    write_json(out / CONFIG_NAME, dict(config))
    return out


def load_pretrained_files(folder: str | os.PathLike, hint: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``(config, state_dict)`` from a folder written by :func:`save_pretrained_files`."""
    root = check_dir(folder, "folder")
    for file in (CONFIG_NAME, WEIGHTS_NAME):
        if not (root / file).is_file():
            raise CourseInputError(
                f"folder: {str(root)!r} has no {file}, so it is not a save_pretrained folder of this model. "
                f"{hint or 'Give the folder that save_pretrained wrote.'}"
            )
    config = read_json(root / CONFIG_NAME, "folder", hint)
    if not isinstance(config, dict):
        raise CourseInputError(f"folder: {str(root / CONFIG_NAME)!r} holds {type(config).__name__}, not a JSON "
                               f"object. {hint}")
    return config, load_tensors(root / WEIGHTS_NAME, "folder", hint)
