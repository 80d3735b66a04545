"""What every benchmark script shares: the common command-line options and the JSON output."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """``--json PATH``, ``--threads N`` (default 2, as the course measures) and ``--omp-default``.

    ``--omp-default`` itself is read from ``sys.argv`` by each script before torch is imported
    (it must be set before OpenMP starts); declaring it here keeps the parser accepting it.
    """
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the course measures with 2)")
    parser.add_argument("--omp-default", action="store_true",
                        help="leave OMP_WAIT_POLICY unset (spinning OpenMP threads; see bench_spectrogram.py)")


def write_json(path: Path | None, result: Any) -> None:
    """Write ``result`` to ``path`` as indented JSON (folders created) and say so; nothing when ``path`` is None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}")
