"""Every lesson's ONLINE branch, run under nbval against the Hub stand-in (tests/hub_standin).

In Colab the lessons load teticio's pipeline, musicgen-small, ``lewtun/music_genres``, GTZAN, CLAP and AudioLDM 2 from
the Hub. Here a server on 127.0.0.1 serves those repos in their real layouts with small random weights,
and each notebook runs in a child pytest (nbval, quick profile) with ``HF_ENDPOINT`` pointing at it and the
offline switches removed. The notebooks' own check cells do the asserting; this test also checks, from the
server's log, that the notebook really fetched what the online branch loads (and did not fall back to
the offline stand-ins).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub_standin import child_environ

ROOT = Path(__file__).resolve().parents[1]

# notebook -> the repos its online branch must fetch files of
ONLINE_LESSONS = {
    "02_audio_diffusion_pipeline.ipynb": ["/teticio/audio-diffusion-instrumental-hiphop-256/resolve/"],
    "03_fine_tuning.ipynb": ["/teticio/audio-diffusion-instrumental-hiphop-256/resolve/",
                             "/datasets/lewtun/music_genres/resolve/",
                             "/laion/clap-htsat-unfused/resolve/"],
    "04_musicgen.ipynb": ["/facebook/musicgen-small/resolve/", "/datasets/sanchit-gandhi/gtzan/resolve/"],
    "07_text_to_audio.ipynb": ["/cvssp/audioldm2-music/resolve/", "/laion/clap-htsat-unfused/resolve/"],
}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", sorted(ONLINE_LESSONS))
def test_online_branch_runs_against_the_hub_standin(notebook, hub_standin_server, tmp_path):
    env = child_environ(hub_standin_server.endpoint, tmp_path / "hf-home")
    env.update(COURSE_PROFILE="quick", MPLBACKEND="Agg", PYTHONHASHSEED="0", OMP_WAIT_POLICY="PASSIVE")
    seen_before = len(hub_standin_server.requests)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         f"notebooks/{notebook}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert run.returncode == 0, (run.stdout[-6000:] + run.stderr[-2000:])
    fetched = [r.path for r in hub_standin_server.requests[seen_before:] if r.status in (200, 206)]
    for prefix in ONLINE_LESSONS[notebook]:
        assert any(prefix in path for path in fetched), f"{notebook} fetched nothing under {prefix}: {fetched[:20]}"
