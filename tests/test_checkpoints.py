"""Tests of course_lib.checkpoints: a kill at any point of a save leaves no litter and loses nothing published.

The kill tests run tests/train_worker.py (a 97-parameter MLP, 10 steps, a checkpoint every 4 steps,
keep_last_n=1) in a subprocess that sends itself SIGKILL at one point of the save of step 8, then resume
it in a new process and compare with a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from course_lib import checkpoints, training

sys.path.insert(0, str(Path(__file__).parent))
from train_worker import noisy_mse, tiny_problem

REPO = Path(__file__).resolve().parents[1]
STEPS = 10


def _worker(out: Path, steps: int, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO / "tests" / "train_worker.py"), str(out), str(steps),
           "--checkpoint-every", "4", "--keep-last-n", "1", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def _finished(run: subprocess.CompletedProcess) -> tuple[list[float], int]:
    """The losses of a worker that ran to the end, and how many steps it trained itself."""
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    losses = json.loads([line for line in lines if line.startswith("LOSSES ")][-1][7:])
    return losses, sum(line.startswith("STEP ") for line in lines)


def _kill(out: Path, steps: int, point: str, step: int) -> None:
    run = _worker(out, steps, "--kill-at", point, str(step))
    assert run.returncode == -signal.SIGKILL, (run.returncode, run.stderr[-2000:])
    assert f"KILLED AT {point} {step}" in run.stdout


def _weights(out: Path) -> dict[str, dict[str, torch.Tensor]]:
    folder = training.latest_checkpoint(out)
    return {name: load_file(folder / f"{name}.safetensors") for name in ("model", "ema")}


def _hidden(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*"))


def _latest_step(out: Path) -> int:
    return json.loads((out / "latest.json").read_text())["step"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[list[float], dict[str, dict[str, torch.Tensor]]]:
    out = tmp_path_factory.mktemp("reference") / "run"
    losses, trained = _finished(_worker(out, STEPS))
    assert trained == STEPS
    return losses, _weights(out)


def _assert_resumed_like_the_reference(out: Path, reference, trained_expected: int) -> None:
    losses, trained = _finished(_worker(out, STEPS))
    assert trained == trained_expected  # steps redone = those after the last published checkpoint only
    assert losses == reference[0]  # bitwise
    got = _weights(out)
    for part, tensors in reference[1].items():
        assert set(got[part]) == set(tensors)
        for k, v in tensors.items():
            assert torch.equal(got[part][k], v), (part, k)
    assert _hidden(out) == []  # no .tmp-, .old-, .trash-, .latest.json.*.tmp left
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000010"]  # keep_last_n=1
    assert _latest_step(out) == STEPS


# What each kill inside the save of step 8 leaves on disk, and how many steps the resumed run must train.
AFTER_KILL = {
    # the files are in .tmp-step-000008-<pid>; only step 4 is published
    "written": (["checkpoints/.tmp-step-000008-*"], ["step-000004"], 4, STEPS - 4),
    # step 8 is published, latest.json still names step 4 (not yet pruned)
    "published": ([], ["step-000004", "step-000008"], 4, STEPS - 8),
    # latest.json's new text sits in course_lib.io's temporary file, not yet renamed
    "pointer": ([".latest.json.*.tmp"], ["step-000004", "step-000008"], 4, STEPS - 8),
    # pruning step 4: renamed out of sight first, then killed after its first file was removed
    "deleting": (["checkpoints/.trash-step-000004-*"], ["step-000008"], 8, STEPS - 8),
}


@pytest.mark.parametrize("point", list(AFTER_KILL))
def test_a_kill_inside_a_save_leaves_no_litter_and_loses_nothing_published(tmp_path, reference, point):
    out = tmp_path / "run"
    _kill(out, STEPS, point, 8)
    hidden, published, latest, trained = AFTER_KILL[point]
    assert len(_hidden(out)) == len(hidden)
    for pattern in hidden:
        assert list(out.glob(pattern)), (pattern, _hidden(out))
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if not p.name.startswith(".")) == published
    assert _latest_step(out) == latest
    if point == "deleting":
        trash = next(out.glob("checkpoints/.trash-step-000004-*"))
        assert len(list(trash.iterdir())) == 3  # one of its 4 files already gone: a half-deleted folder
    _assert_resumed_like_the_reference(out, reference, trained)


def test_a_kill_while_the_same_step_is_saved_again_keeps_that_step_resumable(tmp_path, reference):
    out = tmp_path / "run"
    _kill(out, STEPS, "published", 8)  # step 8 is published, latest.json still names step 4
    # A run to step 8 resumes at 8 and saves it again to point latest.json at it; killed after it moved the
    # old copy aside, the only complete step 8 is hidden (and step 4 is older by 4 steps).
    _kill(out, 8, "moved-aside", 8)
    ckpts = out / "checkpoints"
    assert not (ckpts / "step-000008").exists()
    assert list(ckpts.glob(".old-step-000008-*")) and list(ckpts.glob(".tmp-step-000008-*"))
    _assert_resumed_like_the_reference(out, reference, STEPS - 8)  # step 8 put back: nothing redone


# --------------------------------------------------------------------------------------------
# In one process: failures (exceptions) at each point, and clean_leftovers' rules
# --------------------------------------------------------------------------------------------


def _save(out: Path, step: int, model: torch.nn.Module, **kw) -> Path:
    return checkpoints.save_checkpoint(out, step, model, ema_model=model, keep_last_n=1, **kw)


@pytest.mark.parametrize("point", ["written", "moved-aside", "published", "pointer", "deleting"])
def test_a_save_that_fails_at_any_point_tidies_after_itself(tmp_path, monkeypatch, point):
    model, _ = tiny_problem()
    out = tmp_path / "run"
    _save(out, 4, model)
    _save(out, 8, model)
    before = load_file(out / "checkpoints" / "step-000008" / "model.safetensors")

    def fail(at, step, path):
        if at == point:
            raise OSError(f"disk full at {at} (simulated)")

    monkeypatch.setattr(checkpoints, "_reached", fail)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    # "moved-aside" happens only when a step is saved again, "deleting" only with something to delete.
    step = 8 if point == "moved-aside" else 12
    with pytest.raises(OSError, match="simulated"):
        _save(out, step, model)
    monkeypatch.undo()
    assert _hidden(out) == []
    folders = sorted(p.name for p in (out / "checkpoints").iterdir())
    if point in ("written", "moved-aside"):  # the new one never appeared: step 8 as it was
        assert folders == ["step-000008"]
        assert torch.equal(load_file(out / "checkpoints" / "step-000008" / "model.safetensors")["0.weight"],
                           before["0.weight"])
    else:  # the new one is published; the failure came before (or during) deleting the old one
        assert "step-000012" in folders
        assert checkpoints._resume_candidates(out)[0].name == "step-000012"


def _fake_checkpoint(folder: Path, step: int, files=("state.json", "model.safetensors", "state.safetensors")) -> Path:
    folder.mkdir(parents=True)
    for name in files:
        text = json.dumps({"format": 1, "step": step, "has_ema": False}) if name == "state.json" else "x"
        (folder / name).write_text(text)
    return folder


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_set_aside_copy_goes_back_when_its_twin_is_missing_or_incomplete(tmp_path):
    ckpts = tmp_path / "checkpoints"
    dead = _dead_pid()
    _fake_checkpoint(ckpts / f".old-step-000004-{dead}", 4)  # twin missing: restored
    _fake_checkpoint(ckpts / f".old-step-000008-{dead}", 8)
    _fake_checkpoint(ckpts / "step-000008", 8, files=("state.json",))  # twin without weights: replaced
    _fake_checkpoint(ckpts / f".old-step-000012-{dead}", 12)
    (ckpts / f".old-step-000012-{dead}" / "marker").write_text("old")
    _fake_checkpoint(ckpts / "step-000012", 12)  # twin complete: the old copy goes
    checkpoints.clean_leftovers(tmp_path)
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-000004", "step-000008", "step-000012"]
    assert (ckpts / "step-000008" / "model.safetensors").is_file()
    assert not (ckpts / "step-000012" / "marker").exists()


def test_leftovers_of_a_running_process_are_kept_until_a_run_starts(tmp_path):
    ckpts = tmp_path / "checkpoints"
    alive, dead = os.getppid(), _dead_pid()
    for pid in (alive, dead):
        _fake_checkpoint(ckpts / f".tmp-step-000004-{pid}", 4)
        _fake_checkpoint(ckpts / f".trash-step-000002-{pid}", 2)
    _fake_checkpoint(ckpts / f".broken-step-000006-{dead}", 6)
    (tmp_path / ".latest.json.abc123.tmp").write_text("{")
    checkpoints.clean_leftovers(tmp_path)  # what every save does first: dead processes' leftovers only
    assert _hidden(tmp_path) == sorted([
        ".latest.json.abc123.tmp", f"checkpoints/.broken-step-000006-{dead}",
        f"checkpoints/.tmp-step-000004-{alive}", f"checkpoints/.trash-step-000002-{alive}",
    ])
    checkpoints.clean_leftovers(tmp_path, every_process=True)  # what train does when it starts
    assert [p.name for p in ckpts.iterdir()] == [f".broken-step-000006-{dead}"]  # kept for a person
    assert not (tmp_path / ".latest.json.abc123.tmp").exists()


def test_starting_over_deletes_everything_through_a_hidden_name(tmp_path, monkeypatch):
    model, data = tiny_problem()
    config = training.TrainConfig(output_dir=str(tmp_path / "run"), max_steps=4, batch_size=8, checkpoint_every=2)
    training.train(model, data, noisy_mse, config, progress=False)
    out = tmp_path / "run"
    seen = []

    def kill_once(point, step, path):
        seen.append(path.name)
        if len(seen) == 1:
            raise KeyboardInterrupt  # stopped part-way through deleting

    monkeypatch.setattr(checkpoints, "_reached", kill_once)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.delete_checkpoints(out)
    monkeypatch.undo()
    assert seen == [f".trash-checkpoints-{os.getpid()}"]
    assert not (out / "checkpoints").exists() and training.latest_checkpoint(out) is None
    result = training.train(model, data, noisy_mse, config, resume=False, progress=False)
    assert result.resumed_from is None and result.steps == 4
    assert _hidden(out) == []
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
