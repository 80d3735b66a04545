"""The course's tools for teachers and maintainers: never imported by a notebook, and free of torch.

- ``python -m course_lib.tools.exercises build|check``: exercise notebooks (and nbgrader metadata) from the solutions
- ``nbgrader_release``: the preprocessor ``nbgrader_config.py`` adds, so nbgrader releases what ``exercises/`` holds
- ``python -m course_lib.tools.grade submissions/``: the teacher's grader (``grade_sandbox``, ``grade_worker``:
  the private copies and the per-notebook process; ``grade_flags``: answer cells a human should look at)
- ``python -m course_lib.tools.colab sync``: the repository address, Colab badges and setup cells
- ``python -m course_lib.tools.lab``: JupyterLab on the course (``make lab``)
"""
