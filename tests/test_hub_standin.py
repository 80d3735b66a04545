"""The course's ONLINE loads, against a local stand-in for the Hub (tests/hub_standin, HF_ENDPOINT).

The repos are built once per session in their real layouts with small random weights; each test points
the Hub libraries at the stand-in with a fresh HF_HOME (fixture ``hub_online`` in conftest.py).
"""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import hub_standin as standin
from course_lib.errors import CourseInputError

TETICIO = standin.AUDIO_DIFFUSION_ID
MUSICGEN = standin.MUSICGEN_ID


def _request(url: str, method: str = "GET", headers: dict | None = None, data: bytes | None = None):
    """(status, headers, body) of one request, HTTP errors included."""
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _load_audio_dataset():
    """course_lib's load_audio_dataset (in hub_datasets; in data before the package was split)."""
    try:
        from course_lib.hub_datasets import audio_array, load_audio_dataset
    except ImportError:  # pragma: no cover - the older layout
        from course_lib.data import audio_array, load_audio_dataset
    return load_audio_dataset, audio_array


# ----------------------------------------------------------------------------- the server itself


def test_file_headers_and_range_reads(hub_standin):
    url = f"{hub_standin}/{TETICIO}/resolve/main/unet/diffusion_pytorch_model.bin"
    status, headers, body = _request(url, "HEAD")
    assert status == 200 and body == b""
    size = int(headers["Content-Length"])
    assert headers["X-Repo-Commit"] == standin.commit_sha("model", TETICIO)
    assert headers["ETag"] and int(headers["X-Linked-Size"]) == size and headers["X-Linked-Etag"]
    status, headers, body = _request(url, headers={"Range": "bytes=10-19"})
    assert status == 206 and len(body) == 10 and headers["Content-Range"] == f"bytes 10-19/{size}"
    status, _, tail = _request(url, headers={"Range": "bytes=-4"})
    assert status == 206 and len(tail) == 4
    status, headers, _ = _request(url, headers={"Range": f"bytes={size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    status, headers, _ = _request(f"{hub_standin}/{TETICIO}/resolve/main/model_index.json", "HEAD")
    assert status == 200 and "X-Linked-Size" not in headers  # a small text file is not in LFS


def test_missing_things_answer_as_the_hub_does(hub_standin):
    status, headers, _ = _request(f"{hub_standin}/api/models/nobody/nothing")
    assert status == 401 and headers["X-Error-Code"] == "RepoNotFound"
    status, headers, _ = _request(f"{hub_standin}/{TETICIO}/resolve/main/nothing.json", "HEAD")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound" and headers["X-Repo-Commit"]
    status, headers, _ = _request(f"{hub_standin}/datasets/{standin.GTZAN_ID}/resolve/v9/README.md", "HEAD")
    assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound"


def test_the_hub_api_lists_and_describes_repos(hub_online):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub_online)
    info = api.model_info(TETICIO)
    assert info.sha == standin.commit_sha("model", TETICIO)
    assert {s.rfilename for s in info.siblings} >= {"model_index.json", "unet/diffusion_pytorch_model.bin"}
    tree = {e.path for e in api.list_repo_tree(TETICIO, recursive=True)}
    assert {"unet", "unet/config.json", "mel/mel_config.json"} <= tree
    top = {e.path for e in api.list_repo_tree(TETICIO)}
    assert "unet" in top and "unet/config.json" not in top
    found = api.get_paths_info(TETICIO, ["model_index.json", "unet", "absent.txt"])
    assert [type(e).__name__ for e in found] == ["RepoFile", "RepoFolder"]
    data = api.dataset_info(standin.MUSIC_GENRES_ID)
    assert data.card_data is not None and "dataset_info" in data.card_data.to_dict()


def test_cli_serves_and_writes_its_endpoint(hub_standin_server, tmp_path):
    port_file = tmp_path / "endpoint"
    tests_dir = Path(__file__).resolve().parent
    process = subprocess.Popen([sys.executable, "-m", "hub_standin", "serve", "--root", str(hub_standin_server.root),
                                "--port-file", str(port_file)], cwd=tests_dir, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        endpoint = port_file.read_text().strip()
        status, _, body = _request(f"{endpoint}/api/models?limit=1")
        assert status == 200 and len(json.loads(body)) == 1
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0


# ----------------------------------------------------------------------------- what the lessons load online


def test_teticio_pipeline_loads_and_generates(hub_online):
    """Lessons 02 and 03: the .bin pipeline through SpectrogramDiffusionPipeline and DiffusionPipeline."""
    from diffusers import DiffusionPipeline

    from course_lib.diffusion import SpectrogramDiffusionPipeline

    pipe = SpectrogramDiffusionPipeline.from_pretrained(TETICIO, use_safetensors=False)
    assert pipe.sample_size == (256, 256) and pipe.sample_rate == 22050
    out = pipe(1, steps=2, generator=0, progress=False)
    assert out.images.shape == (1, 256, 256) and out.images.dtype == np.uint8
    assert out.audios.shape == (1, pipe.mel.hop_length * (256 - 1)) and np.isfinite(out.audios).all()

    diffusers_pipe = DiffusionPipeline.from_pretrained(TETICIO, use_safetensors=False)  # notebook 02's call
    assert type(diffusers_pipe).__name__ == "AudioDiffusionPipeline"
    assert diffusers_pipe.mel.config.x_res == 256 and diffusers_pipe.mel.config.sample_rate == 22050


def test_musicgen_loads_with_its_processor_and_generates(hub_online):
    """Lesson 04: the real repo's files (no processor_config.json), the real configuration numbers."""
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(MUSICGEN).eval()
    processor = AutoProcessor.from_pretrained(MUSICGEN)
    assert type(processor).__name__ == "MusicgenProcessor"
    assert model.config.decoder.vocab_size == 2048 and model.config.decoder.num_codebooks == 4
    assert model.config.decoder.max_position_embeddings == 2048
    assert model.config.audio_encoder.sampling_rate == 32000 and model.config.audio_encoder.frame_rate == 50
    assert model.config.audio_encoder.num_quantizers == 4 and model.config.text_encoder.model_type == "t5"
    assert model.generation_config.guidance_scale == 3.0 and model.generation_config.top_k == 250
    inputs = processor(text=["lo-fi hip hop beat", "calm piano"], padding=True, return_tensors="pt")
    with torch.no_grad():
        audio = model.generate(**inputs, max_new_tokens=6, generator=None)
    assert audio.shape[:2] == (2, 1) and audio.shape[-1] > 0


def test_music_genres_loads_at_44100_hz(hub_online):
    """Lesson 03: course_lib's load_audio_dataset on the parquet dataset."""
    load_audio_dataset, audio_array = _load_audio_dataset()
    dataset = load_audio_dataset(standin.MUSIC_GENRES_ID, split="train")
    assert set(dataset.column_names) == {"audio", "song_id", "genre_id", "genre"}
    assert {"Hip-Hop", "Electronic", "Rock"} <= set(dataset["genre"])
    clip, sr = audio_array(dataset[0])
    assert sr == 44100 and clip.ndim == 1 and len(clip) > 44100


def test_gtzan_streams_a_row(hub_online, hub_standin_server):
    """Lesson 04's prompt cell: the first row of GTZAN, streamed (parquet range reads)."""
    from datasets import load_dataset

    _, audio_array = _load_audio_dataset()
    seen = len(hub_standin_server.requests)
    row = next(iter(load_dataset(standin.GTZAN_ID, split="train", streaming=True)))
    assert set(row) == {"file", "audio", "genre"} and row["file"].endswith(".wav")
    clip, sr = audio_array(row)
    assert sr == 22050 and len(clip) > sr
    assert any(r.range for r in hub_standin_server.requests[seen:])  # it did read ranges


def test_a_missing_repo_fails_as_with_the_real_hub(hub_online):
    from datasets import load_dataset
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError
    from transformers import AutoConfig

    from course_lib.diffusion import SpectrogramDiffusionPipeline

    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nothing", "config.json")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(MUSICGEN, "no-such-file.json")
    with pytest.raises(OSError, match="not a valid model identifier"):
        AutoConfig.from_pretrained("nobody/nothing")
    with pytest.raises(DatasetNotFoundError):
        load_dataset("nobody/no-dataset", split="train")
    with pytest.raises(CourseInputError, match="nobody/nothing"):
        SpectrogramDiffusionPipeline.from_pretrained("nobody/nothing")


def test_build_all_builds_every_repo(hub_standin_server):
    """build_all writes each repo the course loads online (the CLAP judge's is checked in test_clap.py)."""
    root = Path(hub_standin_server.root)
    assert (root / "models" / TETICIO / "model_index.json").is_file()
    for repo_id in (MUSICGEN, standin.CLAP_ID):
        assert (root / "models" / repo_id / "config.json").is_file()
    for repo_id in (standin.MUSIC_GENRES_ID, standin.GTZAN_ID):
        assert any((root / "datasets" / repo_id / "data").glob("*.parquet"))
