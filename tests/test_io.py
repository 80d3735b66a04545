"""course_lib.io (one atomic write, JSON and safetensors save/load), settings.make_generator (the seed
rule) and hub.checkpoint_dir (the list of shipped checkpoints)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from course_lib import hub, io, settings
from course_lib.errors import CourseInputError


def test_atomic_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    io.atomic_write(target, lambda tmp: open(tmp, "w").write("new"))
    assert target.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def half_then_fail(tmp):
        with open(tmp, "w") as f:
            f.write("ne")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_atomic_write_creates_folders_and_refuses_a_file_above(tmp_path):
    io.atomic_write(tmp_path / "x" / "y" / "z.txt", lambda tmp: open(tmp, "w").write("1"))
    assert (tmp_path / "x" / "y" / "z.txt").read_text() == "1"
    (tmp_path / "f").write_text("a file")
    with pytest.raises(CourseInputError, match="is a file"):
        io.atomic_write(tmp_path / "f" / "sub" / "z.txt", lambda tmp: None)


def test_json_round_trip_and_clear_errors(tmp_path):
    p = io.write_json(tmp_path / "c.json", {"b": [1, 2.5], "a": "é"})
    assert io.read_json(p) == {"b": [1, 2.5], "a": "é"}
    assert p.read_text(encoding="utf-8").endswith("\n")
    (tmp_path / "bad.json").write_text('{"a": 1')
    with pytest.raises(CourseInputError, match=r"bad\.json.*not valid JSON"):
        io.read_json(tmp_path / "bad.json", "config")
    with pytest.raises(CourseInputError, match="does not exist"):
        io.read_json(tmp_path / "missing.json")
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(CourseInputError, match="empty file"):
        io.read_json(tmp_path / "empty.json")


def test_tensors_round_trip_exactly_and_corrupt_files_name_themselves(tmp_path):
    tensors = {"w": torch.randn(3, 4), "i": torch.arange(5)}
    p = io.save_tensors(tmp_path / "t.safetensors", tensors, metadata={"step": 7})
    back = io.load_tensors(p)
    assert set(back) == {"w", "i"} and torch.equal(back["w"], tensors["w"]) and torch.equal(back["i"], tensors["i"])
    data = p.read_bytes()
    (tmp_path / "half.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CourseInputError, match=r"half\.safetensors.*corrupt or cut short"):
        io.load_tensors(tmp_path / "half.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CourseInputError, match="junk.safetensors"):
        io.load_tensors(tmp_path / "junk.safetensors")


def test_pretrained_files_round_trip_with_float16_and_missing_parts(tmp_path):
    state = {"layer.weight": torch.randn(4, 4), "layer.steps": torch.tensor([3])}
    io.save_pretrained_files(tmp_path / "m", state, {"width": 4}, dtype=torch.float16)
    config, loaded = io.load_pretrained_files(tmp_path / "m")
    assert config == {"width": 4}
    assert loaded["layer.weight"].dtype == torch.float16 and loaded["layer.steps"].dtype == state["layer.steps"].dtype
    assert torch.allclose(loaded["layer.weight"].float(), state["layer.weight"], atol=1e-2)
    os.remove(tmp_path / "m" / io.WEIGHTS_NAME)
    with pytest.raises(CourseInputError, match="has no model.safetensors"):
        io.load_pretrained_files(tmp_path / "m")
    with pytest.raises(CourseInputError, match="not an existing folder"):
        io.load_pretrained_files(tmp_path / "nowhere")
    io.write_json(tmp_path / "list" / io.CONFIG_NAME, [1, 2])
    io.save_tensors(tmp_path / "list" / io.WEIGHTS_NAME, state)
    with pytest.raises(CourseInputError, match="not a JSON object"):
        io.load_pretrained_files(tmp_path / "list")


def test_make_generator_is_the_one_seed_rule():
    a = torch.randn(5, generator=settings.make_generator(3))
    b = torch.randn(5, generator=settings.make_generator(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, torch.randn(5, generator=settings.make_generator(4)))
    g = torch.Generator().manual_seed(1)
    assert settings.make_generator(g) is g
    torch.manual_seed(0)
    c = torch.randn(5, generator=settings.make_generator(None))
    torch.manual_seed(0)
    d = torch.randn(5, generator=settings.make_generator(None))
    assert torch.equal(c, d)  # None follows the global seed, so a seeded notebook repeats
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(CourseInputError, match="generator"):
            settings.make_generator(bad)


def test_every_shipped_checkpoint_is_where_the_hub_says_with_its_script():
    for name, script in hub.SHIPPED.items():
        folder = hub.checkpoint_dir(name)
        assert folder == io.REPO_ROOT / "checkpoints" / name
        assert (folder / "config.json").is_file() or (folder / "model_index.json").is_file(), name
        assert (io.REPO_ROOT / script).is_file(), script
    assert sorted(hub.SHIPPED) == sorted(p.name for p in (io.REPO_ROOT / "checkpoints").iterdir() if p.is_dir())
    with pytest.raises(CourseInputError, match="not a shipped checkpoint"):
        hub.checkpoint_dir("no-such-model")
    assert json.loads((hub.checkpoint_dir("style-classifier") / "config.json").read_text())
