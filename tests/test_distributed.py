"""``training.train`` on two CPU processes (gloo), started by ``accelerate launch`` as a learner with GPUs would.

The two processes (``tests/ddp_worker.py``: per process batch 4, ``grad_accum_steps=2``, trained to step 3,
then resumed to step 6) must give the losses and weights of one process with the same 16 examples per
optimizer step (batch 4, ``grad_accum_steps=4``) trained to step 6 without a break.

Tolerance: 1e-6 on losses (about 0.3 to 0.8 here) and weights. One process adds the four micro-batches'
gradients one after another, ((g0 + g1) + g2) + g3; two add (g0 + g1) and (g2 + g3) each and then the two
sums, so float32 rounding differs in the last bits (about 6e-8 was measured); everything else (data,
noise, dropout, AdamW) is the same computation. A process that drew its own noise or took other
examples would be off by about 1e-2, which the test also checks against a one-process run with the
wrong batch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from course_lib import training

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import STEPS, config  # noqa: E402
from train_worker import noisy_mse, tiny_problem  # noqa: E402

TOL = 1e-6


def _single(output_dir: Path, max_steps: int, **changes) -> tuple[training.TrainResult, torch.nn.Module]:
    model, data = tiny_problem()
    result = training.train(model, data, noisy_mse, config(output_dir, max_steps, **changes), progress=False)
    return result, model


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Path:
    """``accelerate launch --multi_gpu --num_processes 2 tests/ddp_worker.py OUT`` on the CPU; returns OUT."""
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(out / "hf")}  # HF_HOME: no accelerate config file
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(REPO / "tests" / "ddp_worker.py"), str(out)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def _rank(out: Path, rank: int) -> tuple[dict, dict[str, torch.Tensor]]:
    return json.loads((out / f"rank-{rank}.json").read_text()), load_file(out / f"rank-{rank}.safetensors")


def test_two_processes_train_like_one_with_the_same_global_batch(launched, tmp_path):
    (info0, weights0), (info1, weights1) = _rank(launched, 0), _rank(launched, 1)
    single, model = _single(tmp_path / "single", STEPS, grad_accum_steps=4)
    assert info0["steps"] == info1["steps"] == STEPS and info0["resumed_from"] == info1["resumed_from"] == 3
    assert info0["losses"] == info1["losses"]  # the logged loss is the mean over both processes, on both
    np.testing.assert_allclose(info0["losses"], single.losses, rtol=0, atol=TOL)
    for k in weights0:  # both processes hold the very same weights (they applied the same summed gradients)
        assert torch.equal(weights0[k], weights1[k]), k
    for k, v in model.state_dict().items():
        torch.testing.assert_close(weights0[f"model.{k}"], v, rtol=0, atol=TOL)
    for k, v in single.ema_model.state_dict().items():
        torch.testing.assert_close(weights0[f"ema.{k}"], v, rtol=0, atol=TOL)
    # The comparison can fail: one process with half the examples per step is far off.
    wrong, _ = _single(tmp_path / "wrong", STEPS, grad_accum_steps=2)
    assert np.max(np.abs(np.subtract(wrong.losses, single.losses))) > 1e-3


def test_only_process_0_writes_checkpoints_and_samples(launched):
    (info0, _), (info1, _) = _rank(launched, 0), _rank(launched, 1)
    assert info0["main"] is True and info1["main"] is False
    assert info0["saves"] == [2, 3, 4, 6] and info1["saves"] == []  # every 2 steps and at the end of each call
    assert info0["samples"] == [2, 4, 6] and info1["samples"] == []
    root = launched / "run"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoints", "latest.json"]
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["step-000004", "step-000006"]
    assert json.loads((root / "latest.json").read_text()) == {"step": 6, "folder": "step-000006"}
    assert info0["checkpoint"] == info1["checkpoint"] == str(root / "checkpoints" / "step-000006")
    state = json.loads((root / "checkpoints" / "step-000006" / "state.json").read_text())
    assert state["processes"] == 2 and state["losses"] == info0["losses"]


def test_one_process_resumes_a_two_process_run(launched, tmp_path):
    run = tmp_path / "resumed"
    shutil.copytree(launched / "run", run)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same micro-batches per step: nothing to warn about
        resumed, model = _single(run, 8, grad_accum_steps=4)
    straight, straight_model = _single(tmp_path / "straight", 8, grad_accum_steps=4)
    assert resumed.resumed_from == STEPS
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=0, atol=TOL)
    for (k, v), w in zip(model.state_dict().items(), straight_model.state_dict().values(), strict=True):
        torch.testing.assert_close(v, w, rtol=0, atol=TOL, msg=k)
    shutil.rmtree(run)
    shutil.copytree(launched / "run", run)
    with pytest.warns(RuntimeWarning, match="used 4 micro-batches .* with 2"):
        _single(run, 8, grad_accum_steps=2)


def test_is_main_process_reads_the_launchers_rank(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert training.is_main_process() is False
    monkeypatch.setenv("RANK", "0")
    assert training.is_main_process() is True
    monkeypatch.delenv("RANK")
    assert training.is_main_process() is True
