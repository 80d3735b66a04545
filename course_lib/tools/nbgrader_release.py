"""nbgrader's release of a solution notebook, made to match the course's exercise notebook.

``nbgrader generate_assignment`` already replaces each ``### BEGIN SOLUTION`` ... ``### END
SOLUTION`` region by its code stub (``nbgrader_config.py`` at the repository root sets the stub to
the course's :data:`~course_lib.tools.exercises.STUB_LINE`). Two things nbgrader does not know
about are done by :class:`CourseRelease`, which that config puts first among nbgrader's
``GenerateAssignment.preprocessors``:

- cells tagged ``solution-only`` (e.g. "these are the worked answers") are left out, before
  nbgrader records the notebook's cells in its gradebook;
- Open-in-Colab links to ``/solutions/`` point to ``/exercises/``.

Both are :func:`course_lib.tools.exercises.learner_cells`, the same step that builds
``exercises/``. Only nbgrader loads this module (it imports nbconvert, not torch).
"""

from __future__ import annotations

from typing import Any

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool

from course_lib.tools.exercises import learner_cells

__all__ = ["CourseRelease"]


class CourseRelease(Preprocessor):
    """Drop ``solution-only`` cells and point Colab links at ``/exercises/``, as ``exercises/`` does."""

    # nbconvert's preprocessors are off unless enabled; nbgrader registers its list without enabling.
    enabled = Bool(True, help="Whether nbgrader runs this preprocessor.").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        """Return ``nb`` with its cells replaced by the cells a learner gets."""
        nb.cells = learner_cells(nb.cells)
        return nb, resources
