"""The online/offline switch of course_lib.hub: Hub id online, shipped folder offline, clear errors."""

import os
import time
from pathlib import Path

import pytest

from course_lib import hub, settings
from course_lib.validate import CourseInputError


def test_online_returns_the_hub_id_unchanged():
    assert hub.resolve_pretrained("facebook/musicgen-small", online=True) == "facebook/musicgen-small"
    # online, even an id without a stand-in is fine: the Hub will be asked
    assert hub.resolve_pretrained("someone/other-model", online=True) == "someone/other-model"


def test_offline_returns_the_shipped_standin_folder(monkeypatch):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    source = hub.resolve_pretrained("facebook/musicgen-small")
    assert Path(source) == hub.REPO_ROOT / "checkpoints" / "course-musicgen"
    assert (Path(source) / "config.json").is_file() and (Path(source) / "model.safetensors").is_file()
    assert hub.is_standin(source) and not hub.is_standin("facebook/musicgen-small")
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # go_offline() ran


def test_settings_decide_when_online_is_not_given(monkeypatch):
    monkeypatch.setattr(settings, "is_online", lambda *a, **k: True)
    assert hub.resolve_pretrained("facebook/musicgen-small") == "facebook/musicgen-small"
    monkeypatch.setattr(settings, "is_online", lambda *a, **k: False)
    assert hub.resolve_pretrained("facebook/musicgen-small").endswith("course-musicgen")


def test_unknown_id_offline_fails_fast_and_explains():
    start = time.perf_counter()
    with pytest.raises(CourseInputError) as info:
        hub.resolve_pretrained("someone/unknown-model", online=False)
    message = str(info.value)
    assert "someone/unknown-model" in message and "facebook/musicgen-small" in message
    assert "COURSE_OFFLINE" in message and "local_dir" in message
    assert time.perf_counter() - start < 5  # no network retries (a generous bound, not a timing test)


def test_explicit_local_dir(tmp_path):
    folder = tmp_path / "mine"
    with pytest.raises(CourseInputError, match="does not exist"):
        hub.resolve_pretrained("x/y", folder, online=False)
    folder.mkdir()
    with pytest.raises(CourseInputError, match="config.json"):
        hub.resolve_pretrained("x/y", folder, online=False)
    (folder / "config.json").write_text("{}")
    assert hub.resolve_pretrained("x/y", folder, online=False) == str(folder)


def test_missing_standin_folder_says_how_to_rebuild(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "REPO_ROOT", tmp_path)
    with pytest.raises(CourseInputError, match="train_musicgen.py"):
        hub.resolve_pretrained("facebook/musicgen-small", online=False)


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_bad_hub_id(bad):
    with pytest.raises(CourseInputError, match="hub_id"):
        hub.resolve_pretrained(bad, online=True)


def test_bad_online_flag():
    with pytest.raises(CourseInputError, match="online"):
        hub.resolve_pretrained("facebook/musicgen-small", online="yes")


def test_online_only_models_add_the_lessons_offline_hint(monkeypatch):
    monkeypatch.setattr(settings, "is_online", lambda *a, **k: True)
    assert hub.resolve_online_only("cvssp/audioldm2-music", "use X") == "cvssp/audioldm2-music"
    monkeypatch.setattr(settings, "is_online", lambda *a, **k: False)
    with pytest.raises(CourseInputError, match=r"cannot be loaded offline.*use the course model instead"):
        hub.resolve_online_only("cvssp/audioldm2-music", "Offline, use the course model instead.")
    with pytest.raises(CourseInputError, match="hub_id"):  # a bad id is still a bad id, online or not
        hub.resolve_online_only("", "hint")
