"""The machinery every lesson's checks share: the failure type, calling the learner's code, comparing.

A check (``check_*`` in :mod:`course_lib.checks.lesson01` ... ``lesson07``) is built from these:

- :func:`need_callable` refuses anything but a function (a :class:`~course_lib.errors.CourseInputError`:
  a mistake in the check cell, not in the answer);
- :func:`call_answer` calls the learner's function on one case, turning the stub's
  ``NotImplementedError`` into "not answered yet" and any other exception into an :class:`ExerciseFailed`;
- :func:`to_numpy` / :func:`tensor_result` read the answer back as a float64 NumPy array;
- :func:`all_close`, :func:`worst_difference` and :func:`diagnose` compare it with the reference and
  name the usual mistake;
- :func:`print_passed` prints the one line a passing check shows.

It also holds the two generic checks a notebook may call on any value: :func:`check_close` and
:func:`check_shape`. Imports only NumPy and :mod:`course_lib.errors` (torch is imported inside the
helpers that need it), so a notebook's check cells start quickly.
"""

from __future__ import annotations

import math
import sysconfig
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from course_lib.errors import CourseInputError

__all__ = ["require_whole_numbers", "require_predictions", 
    "ExerciseFailed",
    "DIFFUSION_ATOL",
    "DIFFUSION_RTOL",
    "need_callable",
    "print_passed",
    "call_answer",
    "call_answer_with_hint",
    "to_numpy",
    "tensor_result",
    "as_numpy",
    "preview",
    "all_close",
    "worst_difference",
    "diagnose",
    "require_unchanged",
    "check_close",
    "check_shape",
]

# Tolerances of the diffusion lessons' checks: float32 answers against float32 (diffusers) or
# float64 (NumPy) references.
DIFFUSION_ATOL = 1e-4
DIFFUSION_RTOL = 1e-4


class ExerciseFailed(AssertionError):
    """An exercise's answer is not right yet; the message says what is wrong and hints at the fix."""

    def __init__(self, exercise: str, problem: str, hint: str | None = None) -> None:
        self.exercise = exercise
        self.problem = problem
        self.hint = hint
        message = f"❌ {exercise}: {problem}"
        if hint:
            message += f"\nHint: {hint}"
        super().__init__(message)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.exercise, self.problem, self.hint))

    def _render_traceback_(self) -> list[str]:
        """What IPython and Jupyter show for this failure: the message and hint, not a traceback.

        IPython calls this instead of printing the traceback, so a learner reads the feedback
        alone, not the checker's source. When the learner's own code raised, the line of their
        code it came from is added. (Plain Python and pytest still show the full traceback.)
        """
        lines = f"❌ {self.exercise}: {self.problem}".splitlines()
        where = _learner_line(self.__cause__)
        if where:
            lines.append(where)
        if self.hint:
            lines += f"Hint: {self.hint}".splitlines()
        return lines


def _learner_line(error: BaseException | None) -> str:
    """``"(raised in your code, line N: <code>)"``: the innermost frame outside course_lib and installed packages."""
    if error is None or error.__traceback__ is None:
        return ""
    skip = (str(Path(__file__).resolve().parent.parent), sysconfig.get_paths()["stdlib"], "site-packages", "dist-packages")
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not any(s in str(Path(f.filename).resolve()) for s in skip)]
    if not frames:
        return ""
    frame = frames[-1]
    code = f": {frame.line.strip()}" if frame.line else ""
    return f"(raised in your code, line {frame.lineno}{code})"


# ----------------------------------------------------------------------------- calling and comparing


def need_callable(fn: Any, name: str, example: str) -> None:
    """Refuse a check's argument that is not a function (a CourseInputError showing ``example``)."""
    if not callable(fn):
        raise CourseInputError(
            f"{name}: expected your function, got {type(fn).__name__}. Pass the function itself, "
            f"without calling it: {example}."
        )


def print_passed(title: str, detail: str) -> None:
    """Print the one line a passing check shows: ``✅ <title>: passed (<detail>)``."""
    print(f"✅ {title}: passed ({detail})")


def call_answer(title: str, fn: Callable[..., Any], case: str, *args: Any, signature: str, **kwargs: Any) -> Any:
    """Call the learner's function, turning its exceptions into friendly failures."""
    __tracebackhide__ = True
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise ExerciseFailed(
            title,
            "not answered yet: your function still raises NotImplementedError.",
            "replace the line `raise NotImplementedError(...)` with your code, run that cell, then run this check again.",
        ) from None
    except ExerciseFailed:
        raise
    except TypeError as err:
        raise ExerciseFailed(
            title,
            f"on case {case}, your function raised TypeError: {err}",
            f"keep the signature {signature}; if the message mentions arrays, use NumPy/torch functions "
            "(np.log10, not math.log10) so that it works on whole arrays.",
        ) from err
    except Exception as err:
        raise ExerciseFailed(
            title, f"on case {case}, your function raised {type(err).__name__}: {err}"
        ) from err


def to_numpy(title: str, value: Any, what: str) -> np.ndarray:
    """The learner's result as a float64 (or complex) NumPy array, or a clear failure."""
    __tracebackhide__ = True
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise ExerciseFailed(title, f"{what} could not be read as an array ({err}).") from err
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ExerciseFailed(title, f"{what} is not numeric (got {type(value).__name__} of dtype {array.dtype}).")
    if not np.iscomplexobj(array):
        array = array.astype(np.float64)
    return array


def preview(array: np.ndarray, limit: int = 6) -> str:
    """The first ``limit`` values of ``array``, for a failure message: ``[0.1, 0.2, ...]``."""
    flat = np.asarray(array).ravel()
    shown = ", ".join(f"{v:.4g}" for v in flat[:limit])
    return f"[{shown}{', ...' if flat.size > limit else ''}]"


def all_close(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> bool:
    """Same shape and ``|a - b| <= atol + rtol * |b|`` everywhere (``b`` is the reference)."""
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def worst_difference(got: np.ndarray, expected: np.ndarray) -> str:
    """Where ``got`` is furthest from ``expected`` (same shape), and both values there, in words."""
    diff = np.abs(got - expected)
    where = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
    return (
        f"largest difference {float(diff.max()):.4g} at index {tuple(int(i) for i in where)}: "
        f"expected {complex(expected[where]) if np.iscomplexobj(expected) else float(expected[where]):.6g}, "
        f"got {complex(got[where]) if np.iscomplexobj(got) else float(got[where]):.6g}"
    )


def call_answer_with_hint(title: str, fn: Callable[..., Any], case: str, *args: Any, signature: str, hint: str) -> Any:
    """:func:`call_answer`, but an exception raised by the learner's code gets ``hint`` (not a stub's message)."""
    __tracebackhide__ = True
    try:
        return call_answer(title, fn, case, *args, signature=signature)
    except ExerciseFailed as err:
        if err.__cause__ is None:  # "not answered yet" and the like keep their own hint
            raise
        raise ExerciseFailed(title, err.problem, hint) from err.__cause__


def tensor_result(title: str, got: Any, case: str, want: np.ndarray, hint: str = "") -> np.ndarray:
    """The learner's tensor as float64 NumPy, with the shape checked against ``want``."""
    __tracebackhide__ = True
    array = to_numpy(title, got, f"your result on case {case}")
    if array.shape != want.shape:
        raise ExerciseFailed(
            title, f"on case {case}, expected shape {want.shape}, got {array.shape}.",
            "return a tensor of the input's shape (N, 1, H, W)" + (f"; {hint}" if hint else "."),
        )
    return array


def require_unchanged(title: str, case: str, before: Sequence[Any], after: Sequence[Any], names: Sequence[str]) -> None:
    """Fail if the learner's function changed an input tensor in place (``after`` are the tensors it got)."""
    __tracebackhide__ = True
    import torch

    for name, old, new in zip(names, before, after):
        if isinstance(old, torch.Tensor) and not torch.equal(old, new):
            raise ExerciseFailed(
                title, f"on case {case}, your function changed its input {name}.",
                f"compute a new tensor (e.g. start from {name}.clone()) and leave the caller's {name} as it was: "
                "the pipeline still needs it.",
            )


def diagnose(got: np.ndarray, candidates: Sequence[tuple[np.ndarray, str]], default: str) -> str:
    """The hint of the first known wrong answer that ``got`` matches, else ``default``."""
    for wrong, hint in candidates:
        if wrong.shape == got.shape and all_close(got, wrong, DIFFUSION_ATOL, DIFFUSION_RTOL):
            return hint
    return default


def as_numpy(x: Any) -> np.ndarray:
    """A reference tensor (or array) as float64 NumPy, no checks: for the check's own values."""
    return x.detach().cpu().numpy().astype(np.float64) if hasattr(x, "detach") else np.asarray(x, dtype=np.float64)


# ----------------------------------------------------------------------------- generic checks


def check_close(name: str, got: Any, expected: Any, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Check that the learner's value ``got`` matches ``expected`` element-wise (shape too).

    Passes when ``|got - expected| <= atol + rtol * |expected|`` everywhere; the failure names
    the worst element. Works with numbers, lists, NumPy arrays and tensors.
    """
    __tracebackhide__ = True
    if not isinstance(name, str) or not name.strip():
        raise CourseInputError("name: give the exercise a short title, e.g. check_close('mel of 1 kHz', got, 1000.0).")
    for label, tol in (("atol", atol), ("rtol", rtol)):
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
            raise CourseInputError(f"{label}: expected a non-negative number, got {tol!r}.")
    try:
        want = to_numpy(name, expected, "expected")
    except ExerciseFailed as err:
        raise CourseInputError(f"expected: {err.problem} Pass numbers, an array or a tensor.") from err
    if not np.all(np.isfinite(want)):
        raise CourseInputError("expected: contains NaN or inf; give finite reference values.")
    value = to_numpy(name, got, "your value")
    if value.shape != want.shape:
        raise ExerciseFailed(
            name,
            f"expected shape {want.shape}, got {value.shape}.",
            "check which axes you kept, reduced or transposed.",
        )
    if not np.all(np.isfinite(value)):
        raise ExerciseFailed(name, f"your value has {int((~np.isfinite(value)).sum())} NaN or inf entries.")
    if not all_close(value, want, atol, rtol):
        raise ExerciseFailed(name, f"{worst_difference(value, want)} (tolerance atol={atol:g}, rtol={rtol:g}).")
    biggest = float(np.abs(value - want).max()) if value.size else 0.0
    print_passed(name, f"shape {value.shape}, largest difference {biggest:.2g}")


def check_shape(name: str, got: Any, expected_shape: Sequence[int | None]) -> None:
    """Check that ``got`` (array or tensor) has ``expected_shape``; ``None`` matches any size.

    Shapes are the first thing to go wrong in batched code, so later lessons check them alone.
    """
    __tracebackhide__ = True
    if not isinstance(name, str) or not name.strip():
        raise CourseInputError("name: give the exercise a short title, e.g. check_shape('mel batch', mels, (8, 128, None)).")
    if isinstance(expected_shape, (str, bytes)) or not isinstance(expected_shape, Sequence):
        raise CourseInputError(f"expected_shape: give a tuple such as (8, 128, None), got {expected_shape!r}.")
    for size in expected_shape:
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0):
            raise CourseInputError(f"expected_shape: each entry must be a whole number ≥ 0 or None, got {size!r}.")
    shape = getattr(got, "shape", None)
    if shape is None:
        raise ExerciseFailed(
            name, f"expected an array or tensor of shape {tuple(expected_shape)}, got {type(got).__name__}.",
            "return the NumPy array or torch tensor itself.",
        )
    shape = tuple(int(s) for s in shape)
    want = tuple(expected_shape)
    pretty = "(" + ", ".join("any" if s is None else str(s) for s in want) + ("," if len(want) == 1 else "") + ")"
    if len(shape) != len(want) or any(w is not None and w != s for s, w in zip(shape, want)):
        hint = None
        if len(shape) == len(want) + 1 and shape[0] == 1:
            hint = "there is an extra leading axis of size 1; drop it with .squeeze(0)."
        elif len(shape) + 1 == len(want):
            hint = "an axis is missing; a batch axis can be added with .unsqueeze(0) (or x[None])."
        elif sorted(shape) == sorted(s for s in want if s is not None) and None not in want:
            hint = "the sizes are right but in another order; check your transpose/permute."
        raise ExerciseFailed(name, f"expected shape {pretty}, got {shape}.", hint)
    print_passed(name, f"shape {shape}")


def require_whole_numbers(title: str, predicted: Any, keys: Sequence[Any], unit: str, label: str = "{}") -> None:
    """Every ``predicted[key]`` must be a whole number >= 0 of ``unit`` (a prediction exercise's answers).

    ``label`` formats a key for the message, e.g. ``"run ({})"`` or ``"{!r}"``.
    """
    for key in keys:
        value = predicted[key]
        whole = isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole or value < 0:
            raise ExerciseFailed(title, f"{label.format(key)}: expected a whole number of {unit}, got {value!r}.")


def require_predictions(title: str, predicted: Any, keys: Sequence[Any], unit: str, *, dict_name: str,
                        answer_hint: str, label: str = "{}", expected: str | None = None) -> None:
    """A prediction exercise's answers: a dict with a whole number >= 0 of ``unit`` for every key.

    Says which check failed in the learner's words: not a dict (``expected`` describes one), keys
    still ``None`` (listed with ``label``, then ``answer_hint``), or a value that is not a whole number.
    """
    if not isinstance(predicted, dict):
        raise ExerciseFailed(title, f"expected {expected or 'the dict ' + dict_name}, got {type(predicted).__name__}.",
                             f"keep the cell's dict {dict_name} and fill in its values.")
    missing = [label.format(k) for k in keys if predicted.get(k) is None]
    if missing:
        raise ExerciseFailed(title, f"not answered yet: no prediction for {', '.join(missing)}.", answer_hint)
    require_whole_numbers(title, predicted, keys, unit, label)
