"""Input checks shared by every public function of ``course_lib`` (foundation layer).

torch is imported inside :func:`as_float_tensor` only, so the teacher's tools can use the number checks
without loading torch.

Each check raises :class:`CourseInputError` (a ``ValueError``) whose message names the
argument, says what is wrong with it and how to fix it. Learners see these messages far more
often than tracebacks from deep inside torch, so they are written for people.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from course_lib.errors import CourseInputError
from course_lib.io import check_dir, check_file, prepare_output_dir

if TYPE_CHECKING:
    import torch

__all__ = [
    "CourseInputError", "as_float_tensor", "check_sample_rate", "check_number", "check_positive_int",
    "check_choice", "check_file", "check_dir", "prepare_output_dir",
]


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray) or (hasattr(x, "shape") and hasattr(x, "dtype")):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
    return type(x).__name__


def as_float_tensor(
    x: Any,
    name: str = "audio",
    *,
    min_ndim: int = 1,
    max_ndim: int | None = None,
    min_length: int = 1,
    allow_complex: bool = False,
) -> torch.Tensor:
    """Turn ``x`` (NumPy array, tensor or list) into a float32 tensor, checking it on the way.

    Rejects integer PCM (with the scale to divide by), empty arrays, wrong rank, NaN and inf.
    A float64 input becomes float32; a tensor keeps its device.
    """
    import torch

    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise CourseInputError(f"{name}: got an object array; pass numbers (a float32 array).")
        tensor = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        tensor = x
    else:
        raise CourseInputError(
            f"{name}: expected a NumPy array or torch tensor, got {_describe(x)}. "
            "Load audio with course_lib.audio.load_audio(path)."
        )
    if tensor.dtype == torch.bool:
        raise CourseInputError(f"{name}: got a boolean array; pass float samples.")
    if not tensor.is_floating_point() and not tensor.is_complex():
        scale = {torch.int16: "32768", torch.int32: "2**31", torch.uint8: "128 after subtracting 128"}.get(
            tensor.dtype, "its full-scale value"
        )
        raise CourseInputError(
            f"{name}: got integer samples ({tensor.dtype}); convert to float in [-1, 1] first, "
            f"e.g. x.astype('float32') / {scale}."
        )
    if tensor.is_complex() and not allow_complex:
        raise CourseInputError(f"{name}: got complex values; pass a real array (take .abs() for a magnitude).")
    if tensor.ndim < min_ndim or (max_ndim is not None and tensor.ndim > max_ndim):
        want = f"{min_ndim}" if max_ndim == min_ndim else f"{min_ndim} to {max_ndim if max_ndim is not None else 'any'}"
        raise CourseInputError(
            f"{name}: expected {want} dimensions, got {tensor.ndim} (shape {tuple(tensor.shape)})."
        )
    if tensor.numel() == 0 or (tensor.ndim >= 1 and tensor.shape[-1] < min_length):
        raise CourseInputError(
            f"{name}: is empty or too short (shape {tuple(tensor.shape)}); it needs at least {min_length} "
            "values along its last axis."
        )
    if not tensor.is_complex() and tensor.dtype != torch.float32:
        tensor = tensor.to(torch.float32)
    # A sum is finite whenever every value is (barring overflow), and it is far cheaper than an
    # element-wise test on long clips; only when it is not do we look value by value.
    if not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise CourseInputError(
            f"{name}: contains {bad} NaN or infinite value(s); clean it first, e.g. torch.nan_to_num(x)."
        )
    return tensor


def check_sample_rate(sample_rate: Any, name: str = "sample_rate", expected: int | None = None) -> int:
    """Check that a sample rate is a positive whole number (and the expected one, if given)."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float, np.floating)):
        raise CourseInputError(f"{name}: expected a sample rate in Hz such as 22050, got {sample_rate!r}.")
    if float(sample_rate) != int(sample_rate) or int(sample_rate) <= 0:
        raise CourseInputError(f"{name}: {sample_rate!r} is not a positive whole number of Hz (e.g. 22050).")
    rate = int(sample_rate)
    if not (100 <= rate <= 768_000):
        raise CourseInputError(f"{name}: {rate} Hz is not a plausible audio rate; use e.g. 16000, 22050 or 44100.")
    if expected is not None and rate != expected:
        raise CourseInputError(
            f"{name}: audio at {rate} Hz was given where {expected} Hz is needed; "
            f"resample it first with course_lib.audio.resample(audio, {rate}, {expected})."
        )
    return rate


def check_number(
    value: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a finite real number inside [low, high] (open ends if asked)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise CourseInputError(f"{name}: expected a number, got {type(value).__name__} {value!r}.")
    v = float(value)
    if not np.isfinite(v):
        raise CourseInputError(f"{name}: must be a finite number, got {value!r}.")
    if low is not None and (v < low or (low_open and v == low)):
        raise CourseInputError(f"{name}: must be {'>' if low_open else '≥'} {low:g}, got {v:g}.")
    if high is not None and (v > high or (high_open and v == high)):
        raise CourseInputError(f"{name}: must be {'<' if high_open else '≤'} {high:g}, got {v:g}.")
    return v


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Check that ``value`` is a whole number no smaller than ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise CourseInputError(f"{name}: expected a whole number ≥ {minimum}, got {value!r}.")
    if int(value) < minimum:
        raise CourseInputError(f"{name}: must be at least {minimum}, got {value}.")
    return int(value)


def check_choice(value: Any, name: str, choices: tuple | list) -> Any:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise CourseInputError(f"{name}: {value!r} is not one of {tuple(choices)}.")
    return value
