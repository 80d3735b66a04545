"""Shared test set-up: deterministic hypothesis, a headless matplotlib, offline Hub libraries."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

# The same examples on every run, so a red test is reproducible; no per-example deadline on a noisy machine.
settings.register_profile(
    "course", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("course")
