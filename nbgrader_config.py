"""nbgrader settings for the course's solution notebooks (see README, "Grading with nbgrader").

Copy this file into your nbgrader course directory (the folder that holds ``source/``), or merge
its lines into your own ``nbgrader_config.py``. nbgrader must run in a Python environment where the
course's package is installed (``pip install -e <clone of the course>``): the check cells import it.

With these settings the notebook that ``nbgrader generate_assignment`` releases has the same code
as the course's own exercise notebook in ``exercises/``: the same stub line in place of each
answer, and no ``solution-only`` cells.
"""

import os

try:
    from course_lib.tools.exercises import BEGIN_MARKER, END_MARKER, STUB_LINE
    from course_lib.tools.nbgrader_release import CourseRelease
except ImportError as err:  # pragma: no cover - a message for a teacher's setup, not a code path
    raise ImportError(
        "nbgrader_config.py needs the course's package `course_lib` in nbgrader's Python environment: "
        "run `pip install -e <path to your clone of the course>` there, then rerun nbgrader."
    ) from err

from nbgrader.converters import GenerateAssignment

c = get_config()  # noqa: F821 - provided by nbgrader when it reads this file

# The answer region, delimited exactly as the course writes it, becomes the course's stub line,
# indented like the "### BEGIN SOLUTION" line (nbgrader's default stub is "# YOUR CODE HERE" + a bare raise).
c.ClearSolutions.begin_solution_delimeter = BEGIN_MARKER
c.ClearSolutions.end_solution_delimeter = END_MARKER
c.ClearSolutions.code_stub = {"python": STUB_LINE}

# First drop the solution-only cells and point Colab links at exercises/, then nbgrader's own steps.
c.GenerateAssignment.preprocessors = [CourseRelease, *GenerateAssignment.class_traits()["preprocessors"].default()]

# Autograding runs the notebooks as the course's grader does: the quick profile unless the
# environment says otherwise (the kernel inherits nbgrader's environment), 120 s per cell.
os.environ.setdefault("COURSE_PROFILE", "quick")
c.Execute.timeout = 120
