"""Tests of the opt-in compilation (``training.compile_model``) used by ``training.train`` and ``vdiffusion.sample``.

The compiled model must compute what the eager one does (up to float rounding: inductor fuses and reorders
operations), must never change what is saved, and must fall back to the eager model with one warning where
no compiler works. The tests that really compile are marked slow: compiling even a tiny U-Net takes
seconds to tens of seconds on a shared 2-core CPU (less with inductor's on-disk cache).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from safetensors.torch import load_file

from course_lib import training
from course_lib.diffusion import vdiffusion
from course_lib.models.unet1d import UNet1D, UNet1DConfig
from course_lib.training import TrainConfig, compile_model, train
from course_lib.validate import CourseInputError

torch.set_num_threads(min(2, torch.get_num_threads()))
# Inductor's own code still calls a deprecated torch.jit decorator (torch 2.11); nothing of the course's.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

BATCH, LENGTH = 4, 64  # one input shape everywhere, so that the slow tests share their compiled graphs


def tiny_model(seed: int = 0) -> UNet1D:
    """Three levels (4x down), attention at the lowest, two classes: seconds to compile."""
    config = UNet1DConfig(in_channels=1, sample_rate=8000, sample_length=LENGTH, channels=(8, 8, 16),
                          factors=(1, 2, 2), blocks=(1, 1, 1), attention=(False, False, True), attention_heads=2,
                          attention_head_features=8, modulation_features=16, resnet_groups=4, num_classes=2,
                          class_names=("a", "b"))
    return UNet1D(config, seed=seed)


def clips(n: int = 8) -> torch.utils.data.TensorDataset:
    """``n`` decaying noise bursts with alternating class labels."""
    g = torch.Generator().manual_seed(7)
    audio = 0.5 * torch.randn(n, 1, LENGTH, generator=g) * torch.exp(-torch.arange(LENGTH) / 16.0)
    return torch.utils.data.TensorDataset(audio, torch.arange(n) % 2)


def _config(folder, **changes) -> TrainConfig:
    base = {"output_dir": str(folder), "max_steps": 4, "batch_size": BATCH, "lr": 1e-3, "checkpoint_every": 2,
            "seed": 1, "keep_last_n": 5, "ema_decay": 0.5}
    return TrainConfig(**{**base, **changes})


@pytest.fixture
def no_compiler(monkeypatch):
    """torch.compile as on a machine without a working compiler: dynamo works, the backend raises at the first call."""
    real = torch.compile

    def failing_backend(graph, example_inputs):
        raise RuntimeError("C++ compiler not found (simulated)\nmore detail")

    def compile_without_a_compiler(fn, **kwargs):
        return real(fn, **{**kwargs, "backend": failing_backend})

    monkeypatch.setattr(torch, "compile", compile_without_a_compiler)
    monkeypatch.setattr(training, "_compiler_problem", {})  # forget what an earlier test found


# ------------------------------------------------------------------------------ the switch


def test_modes_cuda_graphs_only_on_a_cuda_gpu():
    mode = training._compile_mode
    assert mode(False, "cpu") is None and mode(False, "cuda") is None
    assert mode(True, "cuda") == mode("auto", "cuda") == "reduce-overhead"  # CUDA graphs on a GPU
    assert mode(True, "cpu") == mode("auto", "cpu") == mode(True, "mps") == "default"
    assert mode("max-autotune-no-cudagraphs", "cpu") == "max-autotune-no-cudagraphs"
    assert mode("max-autotune", "cuda") == "max-autotune"
    with pytest.warns(UserWarning, match="records CUDA graphs, which need a CUDA GPU; on cpu 'default'"):
        assert mode("reduce-overhead", "cpu") == "default"
    with pytest.warns(UserWarning, match="'max-autotune-no-cudagraphs' is used instead"):
        assert mode("max-autotune", "cpu") == "max-autotune-no-cudagraphs"


def test_compile_model_calls_torch_compile_with_fixed_shapes_and_the_guarded_mode(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(kw) or ("compiled", fn))
    monkeypatch.setattr(training, "_compiler_problem", {"cpu": None})  # the compiler check passed
    model = tiny_model()
    assert compile_model(model, False) is model and calls == []
    assert compile_model(model, True) == ("compiled", model)
    with pytest.warns(UserWarning, match="need a CUDA GPU"):
        compile_model(model, "reduce-overhead")
    assert calls == [{"mode": "default", "dynamic": False, "backend": "inductor"}] * 2


@pytest.mark.parametrize("bad", ["fast", "inductor", 1, None, ["default"]])
def test_bad_compile_values_are_refused_before_anything_happens(bad, tmp_path):
    model = tiny_model()
    with pytest.raises(CourseInputError, match="compile: expected False, True, or one of"):
        compile_model(model, bad)
    with pytest.raises(CourseInputError, match="compile: expected"):
        vdiffusion.sample(model, 1, LENGTH, 2, generator=0, progress=False, compile=bad)
    with pytest.raises(CourseInputError, match="compile: expected"):
        train(model, clips(), vdiffusion.v_loss, _config(tmp_path / "run"), progress=False, compile=bad)
    assert not (tmp_path / "run").exists()  # refused before the output folder was made
    with pytest.raises(CourseInputError, match="model: expected a torch.nn.Module"):
        compile_model(lambda x: x, True)


# ------------------------------------------------------------------------------ no compiler: eager, one warning


def test_torch_compile_raising_gives_the_eager_model_and_one_warning(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("torch.compile is not supported on this Python (simulated)")

    monkeypatch.setattr(torch, "compile", refuse)
    monkeypatch.setattr(training, "_compiler_problem", {})
    model = tiny_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compile_model(model, True) is model
    assert [str(w.message) for w in caught] == [
        "torch.compile cannot run here (RuntimeError: torch.compile is not supported on this Python (simulated)); "
        "the model runs eagerly: the same results, without the speed-up. Pass compile=False to silence this."
    ]
    with pytest.warns(RuntimeWarning, match="cannot run here"):
        fallback = vdiffusion.sample(model, 2, LENGTH, 3, generator=4, class_labels="a", guidance_scale=2.0,
                                     progress=False, compile=True)
    assert torch.equal(fallback, vdiffusion.sample(model, 2, LENGTH, 3, generator=4, class_labels="a",
                                                   guidance_scale=2.0, progress=False))


def test_a_compiler_failing_at_the_first_call_trains_and_samples_eagerly(no_compiler, tmp_path):
    eager_model, fallback_model = tiny_model(), tiny_model()
    eager = train(eager_model, clips(), vdiffusion.v_loss, _config(tmp_path / "eager"), progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallback = train(fallback_model, clips(), vdiffusion.v_loss, _config(tmp_path / "fallback"), progress=False,
                         compile=True)
    messages = [str(w.message) for w in caught if "cannot run here" in str(w.message)]
    assert messages == ["torch.compile cannot run here (RuntimeError: C++ compiler not found (simulated)); the model "
                        "runs eagerly: the same results, without the speed-up. Pass compile=False to silence this."]
    assert fallback.losses == eager.losses  # bitwise: the same eager computation
    for k, v in eager_model.state_dict().items():
        assert torch.equal(fallback_model.state_dict()[k], v)
    assert training._compiler_problem == {"cpu": "RuntimeError: C++ compiler not found (simulated)"}
    with pytest.warns(RuntimeWarning, match="C\\+\\+ compiler not found"):  # the check is remembered, still said
        assert compile_model(eager_model, True) is eager_model


# ------------------------------------------------------------------------------ really compiled (slow)


@pytest.mark.slow
def test_compiled_forward_loss_and_gradients_match_eager():
    model = tiny_model()
    compiled = compile_model(model, True)
    assert compiled is not model and compiled._orig_mod is model  # really compiled, sharing the parameters
    audio, labels = clips()[:BATCH]
    sigma = torch.tensor([0.1, 0.4, 0.7, 1.0])
    torch.testing.assert_close(compiled(audio, sigma, labels), model(audio, sigma, labels), rtol=1e-4, atol=1e-5)

    def loss_and_grads(net):
        model.zero_grad(set_to_none=True)
        loss = vdiffusion.v_loss(net, (audio, labels), generator=3)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss_c, grads_c = loss_and_grads(compiled)
    loss_e, grads_e = loss_and_grads(model)
    assert loss_e > 0.1  # a real loss, not a trivial zero
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-6)
    assert grads_c.keys() == grads_e.keys()
    for name, grad in grads_e.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(grads_c[name], grad, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.slow
def test_compiled_sampling_matches_eager():
    model = tiny_model()
    kwargs = {"class_labels": ["a", "b"], "guidance_scale": 2.0, "generator": 5, "progress": False, "clip": False}
    compiled = vdiffusion.sample(model, 2, LENGTH, 4, compile=True, **kwargs)
    eager = vdiffusion.sample(model, 2, LENGTH, 4, **kwargs)
    assert eager.abs().max() > 0.1
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_compiled_training_saves_the_eager_keys_and_resumes_exactly(tmp_path):
    eager_model, full_model = tiny_model(), tiny_model()
    eager = train(eager_model, clips(), vdiffusion.v_loss, _config(tmp_path / "eager"), progress=False)
    full = train(full_model, clips(), vdiffusion.v_loss, _config(tmp_path / "full"), progress=False, compile=True)
    # What is saved has the model's own keys: no "_orig_mod." prefix from the compiled wrapper.
    for name in ("model", "ema"):
        saved = load_file(full.checkpoint / f"{name}.safetensors")
        assert set(saved) == set(full_model.state_dict())
    torch.testing.assert_close(torch.tensor(full.losses), torch.tensor(eager.losses), rtol=1e-4, atol=1e-6)
    for k, v in eager_model.state_dict().items():
        torch.testing.assert_close(full_model.state_dict()[k], v, rtol=1e-3, atol=1e-5)
    # Interrupted after step 2 and resumed, compiled both times: the uninterrupted run, bitwise.
    half = train(tiny_model(), clips(), vdiffusion.v_loss, _config(tmp_path / "resumed", max_steps=2),
                 progress=False, compile=True)
    assert half.losses == full.losses[:2]
    resumed_model = tiny_model(seed=9)  # other starting weights: the checkpoint must replace them
    rest = train(resumed_model, clips(), vdiffusion.v_loss, _config(tmp_path / "resumed"), progress=False,
                 compile=True)
    assert rest.resumed_from == 2 and rest.losses == full.losses
    for k, v in full_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[k], v), k
    # An eager run's checkpoint resumes compiled too (the same keys), and the reverse.
    cross = train(tiny_model(), clips(), vdiffusion.v_loss, _config(tmp_path / "eager", max_steps=5),
                  progress=False, compile=True)
    assert cross.resumed_from == 4 and cross.losses[:4] == eager.losses and len(cross.losses) == 5
