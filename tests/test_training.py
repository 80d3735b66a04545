"""Tests of course_lib.training: learning, checkpoints, atomic saves, resume, budgets, bad configs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from course_lib import checkpoints, training
from course_lib.diffusion import diffusion_loss
from course_lib.training import TrainConfig, train, update_ema
from course_lib.validate import CourseInputError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from train_worker import noisy_mse, tiny_problem


def _config(tmp_path: Path, **kw) -> TrainConfig:
    base = {"output_dir": str(tmp_path / "run"), "max_steps": 12, "batch_size": 8, "lr": 1e-2, "checkpoint_every": 4,
                "seed": 3, "keep_last_n": 10}
    base.update(kw)
    return TrainConfig(**base)


def test_loss_decreases_on_a_tiny_problem(tmp_path):
    model, data = tiny_problem()
    result = train(model, data, noisy_mse, _config(tmp_path, max_steps=300, lr=3e-2, checkpoint_every=1000),
                   progress=False)
    assert result.steps == 300 and result.stopped_by == "steps" and len(result.losses) == 300
    first, last = np.mean(result.losses[:10]), np.mean(result.losses[-10:])
    assert last < 0.5 * first, (first, last)
    ax = result.plot()
    assert ax.get_xlabel() == "optimizer step" and ax.get_ylabel() == "training loss"


def test_checkpoint_contents(tmp_path):
    model, data = tiny_problem()
    cfg = _config(tmp_path, max_steps=6, checkpoint_every=4, ema_decay=0.5)
    result = train(model, data, noisy_mse, cfg, progress=False)
    root = tmp_path / "run"
    names = sorted(p.name for p in (root / "checkpoints").iterdir())
    assert names == ["step-000004", "step-000006"]  # every 4 steps and at the end
    assert json.loads((root / "latest.json").read_text()) == {"step": 6, "folder": "step-000006"}
    assert result.checkpoint == root / "checkpoints" / "step-000006"
    folder = result.checkpoint
    assert sorted(p.name for p in folder.iterdir()) == ["ema.safetensors", "model.safetensors", "state.json", "state.safetensors"]
    weights = load_file(folder / "model.safetensors")
    assert set(weights) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(weights[k], v)
    ema = load_file(folder / "ema.safetensors")
    assert torch.equal(ema["0.weight"], result.ema_model.state_dict()["0.weight"])
    assert not torch.equal(ema["0.weight"], weights["0.weight"])
    state = load_file(folder / "state.safetensors")
    assert state["rng.torch_cpu"].dtype == torch.uint8
    assert state["optimizer.0.step"].item() == 6.0  # AdamW's own step count
    assert {"optimizer.0.exp_avg", "optimizer.0.exp_avg_sq"} <= set(state)
    meta = json.loads((folder / "state.json").read_text())
    assert meta["step"] == 6 and meta["losses"] == result.losses
    assert TrainConfig.from_dict(meta["config"]) == cfg
    assert meta["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-2)
    assert meta["epoch"] == 0 and meta["batch_in_epoch"] == 6  # 64 examples / 8 = 8 batches per epoch
    # No pickle anywhere: only safetensors and JSON files.
    assert all(p.suffix in {".safetensors", ".json"} for p in root.rglob("*") if p.is_file())
    # load_checkpoint puts the weights back into a fresh model.
    fresh, _ = tiny_problem(seed=99)
    training.load_checkpoint(root, fresh)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_resume_gives_the_same_losses_bitwise(tmp_path):
    model, data = tiny_problem()
    kw = {"ema_decay": 0.9, "grad_accum_steps": 2, "warmup_steps": 3, "max_steps": 14, "checkpoint_every": 5}
    full = train(model, data, noisy_mse, _config(tmp_path / "a", **kw), progress=False)
    model_b, _ = tiny_problem()
    first = train(model_b, data, noisy_mse, _config(tmp_path / "b", **{**kw, "max_steps": 7}), progress=False)
    assert first.losses == full.losses[:7]
    model_c, _ = tiny_problem(seed=123)  # different starting weights: the checkpoint must replace them
    rest = train(model_c, data, noisy_mse, _config(tmp_path / "b", **kw), progress=False)
    assert rest.resumed_from == 7 and rest.steps == 14
    assert rest.losses == full.losses  # bitwise, not approximately
    assert rest.lrs == full.lrs
    for k, v in model.state_dict().items():
        assert torch.equal(model_c.state_dict()[k], v)
    for k, v in full.ema_model.state_dict().items():
        assert torch.equal(rest.ema_model.state_dict()[k], v)


def test_resume_false_starts_over(tmp_path):
    model, data = tiny_problem()
    a = train(model, data, noisy_mse, _config(tmp_path, max_steps=4), progress=False)
    model, _ = tiny_problem()
    b = train(model, data, noisy_mse, _config(tmp_path, max_steps=4), resume=False, progress=False)
    assert b.resumed_from is None and b.losses == a.losses


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, data = tiny_problem()
    train(model, data, noisy_mse, _config(tmp_path, max_steps=4), progress=False)
    saved = load_file(tmp_path / "run" / "checkpoints" / "step-000004" / "model.safetensors")

    def crash(point, step, path):
        if point == "written":
            raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoints, "_reached", crash)
    with pytest.raises(OSError, match="simulated"):
        train(model, data, noisy_mse, _config(tmp_path, max_steps=8), progress=False)
    monkeypatch.undo()
    root = tmp_path / "run"
    assert json.loads((root / "latest.json").read_text())["step"] == 4
    assert training.latest_checkpoint(root).name == "step-000004"
    fresh, _ = tiny_problem(seed=5)
    meta = training.load_checkpoint(root, fresh)
    assert meta["step"] == 4
    assert torch.equal(fresh.state_dict()["0.weight"], saved["0.weight"])
    # The failed save removed its half-written folder itself; the next run resumes from step 4.
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["step-000004"]
    result = train(fresh, data, noisy_mse, _config(tmp_path, max_steps=8), progress=False)
    assert result.resumed_from == 4 and result.steps == 8


def test_resume_into_a_model_of_another_shape_says_the_checkpoint_does_not_fit(tmp_path):
    model, data = tiny_problem()
    train(model, data, noisy_mse, _config(tmp_path, max_steps=4), progress=False)
    wider = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Dropout(0.1), torch.nn.Linear(32, 1))
    with pytest.raises(CourseInputError, match=r"model: the checkpoint step-000004 does not fit the model.*0\.weight"):
        train(wider, data, noisy_mse, _config(tmp_path, max_steps=8), progress=False)
    other = torch.nn.Sequential(torch.nn.Linear(4, 1))
    with pytest.raises(CourseInputError, match="does not fit the model.*resume=False"):
        training.load_checkpoint(tmp_path / "run", other)
    # Nothing was damaged: the model that made the checkpoint still resumes from it.
    fresh, _ = tiny_problem()
    result = train(fresh, data, noisy_mse, _config(tmp_path, max_steps=8), progress=False)
    assert result.resumed_from == 4 and result.steps == 8


def _worker(out: Path, steps: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "train_worker.py"), str(out), str(steps), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _losses(proc: subprocess.Popen) -> list[float]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads([line for line in out.splitlines() if line.startswith("LOSSES ")][-1][7:])


def test_real_kill_during_save_then_resume_in_a_new_process(tmp_path):
    reference = _worker(tmp_path / "ref", 10)
    victim = _worker(tmp_path / "run", 10, "--hang-at-save", "6")
    try:
        for line in victim.stdout:  # wait until it is inside the save of step 6
            if line.startswith("SAVING 6"):
                break
        else:
            pytest.fail("the worker ended before saving step 6: " + victim.stderr.read())
        victim.send_signal(signal.SIGKILL)  # a real kill, no exception handler runs
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == -signal.SIGKILL
    root = tmp_path / "run"
    assert list((root / "checkpoints").glob(".tmp-step-000006-*"))  # the killed save, never published
    assert not (root / "checkpoints" / "step-000006").exists()
    assert json.loads((root / "latest.json").read_text())["step"] == 3
    resumed = _losses(_worker(root, 10))
    assert resumed == _losses(reference)  # identical to the run that was never interrupted
    assert len(resumed) == 10


def test_corrupt_latest_falls_back_with_a_warning(tmp_path):
    model, data = tiny_problem()
    train(model, data, noisy_mse, _config(tmp_path, max_steps=8), progress=False)
    root = tmp_path / "run"
    (root / "checkpoints" / "step-000008" / "model.safetensors").write_bytes(b"not a safetensors file")
    fresh, _ = tiny_problem()
    with pytest.warns(RuntimeWarning, match="step-000004"):
        result = train(fresh, data, noisy_mse, _config(tmp_path, max_steps=9), progress=False)
    assert result.resumed_from == 4 and result.steps == 9
    assert list((root / "checkpoints").glob(".broken-step-000008-*"))  # kept aside for inspection
    assert training.latest_checkpoint(root).name == "step-000009"
    # If every checkpoint is damaged, the error says how to get out.
    for folder in (root / "checkpoints").iterdir():
        (folder / "state.json").write_text("{broken")
    with pytest.raises(CourseInputError, match="resume=False"):
        train(fresh, data, noisy_mse, _config(tmp_path, max_steps=12), progress=False)


def test_time_budget_stops_and_step_budget_stops(tmp_path):
    model, data = tiny_problem()
    slow = lambda m, b, g: (__import__("time").sleep(0.05), noisy_mse(m, b, g))[1]
    result = train(model, data, slow, _config(tmp_path, max_steps=None, time_budget_s=0.2, checkpoint_every=1000),
                   progress=False)
    assert result.stopped_by == "time"
    assert 1 <= result.steps < 1000 and len(result.losses) == result.steps
    assert result.checkpoint.name == f"step-{result.steps:06d}"  # saved at the end even off the schedule
    model, _ = tiny_problem()
    result = train(model, data, noisy_mse, _config(tmp_path / "s", max_steps=5, time_budget_s=3600), progress=False)
    assert result.stopped_by == "steps" and result.steps == 5


def test_ema_matches_hand_computation():
    model = torch.nn.Linear(1, 1, bias=False)
    ema = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        ema.weight.fill_(1.0)
        model.weight.fill_(3.0)
    update_ema(ema, model, 0.9)
    assert ema.weight.item() == pytest.approx(0.9 * 1.0 + 0.1 * 3.0)  # 1.2
    with torch.no_grad():
        model.weight.fill_(-1.0)
    update_ema(ema, model, 0.5)
    assert ema.weight.item() == pytest.approx(0.5 * 1.2 + 0.5 * -1.0)  # 0.1


def test_ema_inside_train_follows_the_recursion(tmp_path):
    # With lr so small the weights barely move, the EMA after n steps is the weight trajectory averaged.
    model, data = tiny_problem()
    w0 = model[0].weight.detach().clone()
    result = train(model, data, noisy_mse, _config(tmp_path, max_steps=3, ema_decay=0.5), progress=False)
    # Rebuild the weight after each step by re-running 1, 2, 3 steps and apply the EMA by hand.
    expected = w0
    for n in (1, 2, 3):
        m, _ = tiny_problem()
        train(m, data, noisy_mse, _config(tmp_path / f"n{n}", max_steps=n), progress=False)
        expected = 0.5 * expected + 0.5 * m[0].weight.detach()
    assert torch.allclose(result.ema_model[0].weight, expected, atol=1e-6)


def test_diffusion_loss_epsilon_and_v():
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=50)
    x0 = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))

    class Oracle(torch.nn.Module):
        """Returns exactly the noise that was added (it can recover it from x0 it was given)."""

        def forward(self, noisy, t):
            a = sched.alphas_cumprod[t].view(-1, 1, 1, 1)
            return (noisy - a.sqrt() * x0) / (1 - a).sqrt()

    loss = diffusion_loss(Oracle(), x0, sched, torch.Generator().manual_seed(1), prediction="epsilon")
    assert loss.item() < 1e-8
    # The same oracle is wrong under v-prediction by exactly (eps - v); check the value by hand.
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, 50, (3,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    v = sched.get_velocity(x0, noise, t)
    want = torch.nn.functional.mse_loss(noise, v).item()
    got = diffusion_loss(Oracle(), x0, sched, torch.Generator().manual_seed(1), prediction="v_prediction").item()
    assert got == pytest.approx(want, rel=1e-4) and want > 0.01
    with pytest.raises(CourseInputError, match="prediction"):
        diffusion_loss(Oracle(), x0, sched, prediction="sample_x0")


def test_trains_a_tiny_diffusers_unet(tmp_path):
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    sched = DDPMScheduler(num_train_timesteps=100)
    images = torch.rand(16, 1, 8, 8) * 2 - 1
    samples = []
    result = train(
        unet, images, lambda m, x, g: diffusion_loss(m, x, sched, g), _config(tmp_path, max_steps=4, batch_size=4,
        sample_every=2, ema_decay=0.99), sample_fn=lambda m, s: samples.append((s, m.training)), progress=False,
    )
    assert result.steps == 4 and all(np.isfinite(result.losses))
    assert samples == [(2, False), (4, False)]  # called every 2 steps, in eval mode


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"lr": -1e-3}, "lr"),
        ({"lr": 0}, "lr"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_steps": None, "time_budget_s": None}, "budget"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"grad_accum_steps": 0}, "grad_accum_steps"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"betas": (0.9,)}, "betas"),
        ({"time_budget_s": -5}, "time_budget_s"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_config_errors(tmp_path, kw, match):
    with pytest.raises(CourseInputError, match=match):
        _config(tmp_path, **kw)


def test_bad_arguments_and_folders(tmp_path):
    model, data = tiny_problem()
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(CourseInputError, match="is a file"):
        train(model, data, noisy_mse, _config(tmp_path, output_dir=str(blocker)), progress=False)
    with pytest.raises(CourseInputError, match="output_dir"):
        train(model, data, noisy_mse, _config(tmp_path, output_dir=str(blocker / "inside")), progress=False)
    # A folder without write permission (simulated, because root may write anywhere) ...
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training.os, "access", lambda path, mode: False)
        with pytest.raises(CourseInputError, match="not writable"):
            train(model, data, noisy_mse, _config(tmp_path, output_dir=str(tmp_path / "ro")), progress=False)
    if os.geteuid() != 0:  # ... and a real one when the tests run as an ordinary user, so the permission case only means something for users
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(CourseInputError, match="writ"):
                train(model, data, noisy_mse, _config(tmp_path, output_dir=str(locked / "run")), progress=False)
        finally:
            locked.chmod(0o700)
    with pytest.raises(CourseInputError, match="batch_size"):
        train(model, data[:4], noisy_mse, _config(tmp_path), progress=False)
    with pytest.raises(CourseInputError, match="data"):
        train(model, 42, noisy_mse, _config(tmp_path), progress=False)
    with pytest.raises(CourseInputError, match="scalar"):
        train(model, data, lambda m, b, g: m(b[:, :4]), _config(tmp_path), progress=False)
    with pytest.raises(CourseInputError, match="TrainConfig"):
        train(model, data, noisy_mse, {"lr": 1e-3}, progress=False)


def test_data_factory_resumes_too(tmp_path):
    model, data = tiny_problem()

    def factory(epoch):  # a DataLoader whose order is a function of the epoch
        g = torch.Generator().manual_seed(100 + epoch)
        return torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, generator=g, drop_last=True)

    full = train(model, factory, noisy_mse, _config(tmp_path / "a", max_steps=9), progress=False)
    m, _ = tiny_problem()
    train(m, factory, noisy_mse, _config(tmp_path / "b", max_steps=5), progress=False)
    m, _ = tiny_problem()
    rest = train(m, factory, noisy_mse, _config(tmp_path / "b", max_steps=9), progress=False)
    assert rest.losses == full.losses


def test_resume_prefers_a_published_folder_newer_than_latest_json(tmp_path):
    model, data = tiny_problem()
    full = train(model, data, noisy_mse, _config(tmp_path / "a", max_steps=10), progress=False)
    m, _ = tiny_problem()
    train(m, data, noisy_mse, _config(tmp_path / "b", max_steps=8), progress=False)
    root = tmp_path / "b" / "run"
    assert json.loads((root / "latest.json").read_text())["step"] == 8
    # As if killed after step-000008 was renamed into place but before latest.json was replaced.
    (root / "latest.json").write_text(json.dumps({"step": 4, "folder": "step-000004"}))
    m, _ = tiny_problem()
    rest = train(m, data, noisy_mse, _config(tmp_path / "b", max_steps=10), progress=False)
    assert rest.resumed_from == 8 and rest.losses == full.losses


def test_make_optimizer_is_adamw_with_the_config_and_matches_the_default_kernel():
    config = TrainConfig(lr=1e-3, betas=(0.95, 0.999), eps=1e-6, weight_decay=1e-3)
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]
    grads = [[torch.randn(p.shape, generator=g) for p in start] for _ in range(3)]

    def run(make):
        params = [p.clone().requires_grad_() for p in start]
        opt = make(params)
        for step_grads in grads:
            for p, grad in zip(params, step_grads):
                p.grad = grad.clone()
            opt.step()
        return opt, params

    fast, got = run(lambda ps: training.make_optimizer(ps, config))
    _, want = run(lambda ps: torch.optim.AdamW(ps, lr=1e-3, betas=(0.95, 0.999), eps=1e-6, weight_decay=1e-3,
                                                foreach=False))
    group = fast.param_groups[0]
    assert isinstance(fast, torch.optim.AdamW)
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (1e-3, (0.95, 0.999), 1e-6, 1e-3)
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):  # the CPU has the fused kernel
        assert group["fused"] is True
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)  # the same AdamW, up to float rounding
    moved = max((a - s).abs().max().item() for a, s in zip(got, start))
    assert 2e-3 < moved < 4e-3  # three steps of about lr each
    with pytest.raises(CourseInputError, match="TrainConfig"):
        training.make_optimizer(start, {"lr": 1e-3})
