"""The course's tools for teachers and maintainers: never imported by a notebook, and free of torch.

- ``python -m course_lib.tools.exercises build|check``: exercise notebooks from the solutions
- ``python -m course_lib.tools.grade submissions/``: the teacher's grader
- ``python -m course_lib.tools.colab sync``: the repository address, Colab badges and setup cells
- ``python -m course_lib.tools.lab``: JupyterLab on the course (``make lab``)
"""
