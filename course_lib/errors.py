"""The course's one exception type (imports nothing, so the teacher's tools stay torch-free).

Every public ``course_lib`` function that gets a bad argument raises :class:`CourseInputError`, a
``ValueError`` whose message names the argument, says what is wrong and how to fix it.
"""

from __future__ import annotations

__all__ = ["CourseInputError"]


class CourseInputError(ValueError):
    """A bad argument to a ``course_lib`` function; the message says how to fix it."""
