"""Tests of course_lib.models.unet1d: shapes, parameter counts, conditioning, attention maths, saving, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.models.unet1d import (
    CONFIGS,
    Modulation,
    SelfAttention,
    UNet1D,
    UNet1DConfig,
    attend,
    count_parameters,
    parameter_breakdown,
    sinusoidal_positions,
)
from course_lib.validate import CourseInputError

torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_config(**changes) -> UNet1DConfig:
    """Four levels (8x down), attention at the two lowest, conditional on four classes."""
    base = {"in_channels": 1, "sample_rate": 8000, "sample_length": 256, "channels": (8, 16, 16, 32),
            "factors": (1, 2, 2, 2), "blocks": (1, 1, 1, 2), "attention": (False, False, True, True),
            "attention_heads": 2, "attention_head_features": 8, "modulation_features": 32, "resnet_groups": 4}
    base.update(changes)
    return UNet1DConfig(**base)


# ------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_named_config_keeps_the_shape(name):
    config = CONFIGS[name]
    model = UNet1D(config, seed=0).eval()
    length = 2 * config.length_multiple  # short: the reference model is large for a CPU
    x = torch.randn(2, config.in_channels, length, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x, torch.tensor([0.2, 0.9]), torch.tensor([0, 3]))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert not torch.allclose(out, x)  # the network adds something to its skip path


def test_named_configs_match_the_brief():
    ref, lap = CONFIGS["reference"], CONFIGS["laptop"]
    assert (ref.in_channels, ref.sample_rate, ref.sample_length) == (2, 44100, 32768)
    assert ref.channels == (32, 32, 64, 64, 128, 128, 256, 256)
    assert ref.factors == (1, 2, 2, 2, 2, 2, 2, 2) and ref.blocks == (2, 2, 2, 2, 2, 2, 4, 4)
    assert ref.attention == (False,) * 5 + (True,) * 3
    assert (ref.attention_heads, ref.attention_head_features, ref.modulation_features) == (8, 64, 1024)
    assert not ref.positional_encoding  # as the peer; parameter-free, so the count is the same either way
    assert ref.length_multiple == 128 and ref.sample_length // ref.length_multiple == 256
    assert (lap.in_channels, lap.sample_rate, lap.sample_length) == (1, 22050, 8192)
    assert sum(lap.attention) == 2 and lap.attention[-2:] == (True, True)  # only the two lowest levels
    assert lap.sample_length // lap.length_multiple == 64
    assert ref.num_classes == lap.num_classes == 4 and ref.class_names == ("kick", "snare", "hihat", "percussion")


def test_laptop_model_runs_at_its_full_length():
    config = CONFIGS["laptop"]
    model = UNet1D(config, seed=1).eval()
    x = torch.randn(1, 1, config.sample_length, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert model(x, torch.tensor([0.5]), torch.tensor([2])).shape == (1, 1, 8192)


@pytest.mark.parametrize("length", [8, 16, 24, 200])
def test_any_length_that_the_factors_divide(length):
    model = UNet1D(tiny_config(in_channels=2), seed=0).eval()
    x = torch.randn(3, 2, length)
    with torch.no_grad():
        assert model(x, torch.rand(3)).shape == (3, 2, length)


def test_mono_and_stereo():
    for channels in (1, 2):
        model = UNet1D(tiny_config(in_channels=channels), seed=0).eval()
        with torch.no_grad():
            assert model(torch.randn(2, channels, 64), 0.5).shape == (2, channels, 64)


# ------------------------------------------------------------------------------ parameter counts


def test_reference_has_the_peer_projects_parameter_count():
    """31 574 724 is tiny-audio-diffusion's count (audio-diffusion-pytorch 0.1.3 UNetV0, in_channels=2)."""
    unconditional = UNet1D(CONFIGS["reference"].replace(num_classes=0))
    conditional = UNet1D(CONFIGS["reference"])
    parts = parameter_breakdown(unconditional)
    assert parts == {"linear": 23_545_026, "conv": 7_987_586, "norm": 41_984, "embedding": 0, "other": 128,
                     "total": 31_574_724}
    assert count_parameters(conditional) == 31_574_724 + 5 * 1024  # 4 classes + the null class
    assert abs(count_parameters(conditional) / 31.6e6 - 1) < 0.05
    assert parameter_breakdown(conditional)["embedding"] == 5 * 1024


def test_laptop_parameter_count_and_breakdown():
    model = UNet1D(CONFIGS["laptop"], seed=0)
    parts = parameter_breakdown(model)
    assert parts["total"] == count_parameters(model) == model.num_parameters() == 4_774_658
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    assert parts["embedding"] == 5 * 256 and parts["other"] == 128
    model.levels[0].requires_grad_(False)
    frozen = sum(p.numel() for p in model.levels[0].parameters())
    assert count_parameters(model, trainable_only=True) == 4_774_658 - frozen


def test_every_parameter_gets_a_gradient():
    model = UNet1D(tiny_config(), seed=0)
    x = torch.randn(4, 1, 32)
    out = model(x, torch.tensor([0.1, 0.4, 0.7, 1.0]), torch.tensor([0, 1, 4, 3]))  # 4 = the null class
    out.square().mean().backward()
    for name, p in model.named_parameters():
        if name == "class_embedding.weight":
            used = [0, 1, 3, 4]
            assert (p.grad[used].abs().sum(dim=1) > 0).all() and (p.grad[2] == 0).all()  # class 2 not in batch
        else:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


# ------------------------------------------------------------------------------ conditioning


def test_noise_level_and_class_change_the_output():
    model = UNet1D(tiny_config(), seed=0).eval()
    x = torch.randn(2, 1, 64, generator=torch.Generator().manual_seed(2))
    sigma = torch.tensor([0.3, 0.3])
    with torch.no_grad():
        a = model(x, sigma, torch.tensor([0, 0]))
        b = model(x, sigma, torch.tensor([1, 1]))
        c = model(x, torch.tensor([0.8, 0.8]), torch.tensor([0, 0]))
        again = model(x, sigma, torch.tensor([0, 0]))
        unconditional = model(x, sigma)
        null = model(x, sigma, torch.tensor([model.null_class] * 2))
    assert torch.equal(a, again)
    assert (a - b).abs().mean() > 1e-3 and (a - c).abs().mean() > 1e-3
    assert torch.equal(unconditional, null)  # None means the null class
    assert model.null_class == 4 and UNet1D(tiny_config(num_classes=0)).null_class is None


def test_items_of_a_batch_are_independent():
    model = UNet1D(tiny_config(), seed=0).eval()
    x = torch.randn(3, 1, 32)
    sigma, labels = torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0, 1, 2])
    with torch.no_grad():
        batch = model(x, sigma, labels)
        one = model(x[1:2], sigma[1:2], labels[1:2])
    torch.testing.assert_close(batch[1:2], one, rtol=1e-4, atol=1e-5)


def test_self_attention_matches_the_textbook_formula():
    torch.manual_seed(0)
    attn = SelfAttention(channels=12, heads=3, head_features=4)
    with torch.no_grad():
        attn.norm_q.weight.uniform_(0.5, 1.5)
        attn.norm_kv.bias.uniform_(-0.2, 0.2)
    x = torch.randn(2, 12, 10)
    tokens = x.transpose(1, 2)
    q = attn.to_q(F.layer_norm(tokens, (12,), attn.norm_q.weight, attn.norm_q.bias))
    k, v = attn.to_kv(F.layer_norm(tokens, (12,), attn.norm_kv.weight, attn.norm_kv.bias)).chunk(2, dim=-1)
    heads = []
    for h in range(3):
        part = slice(4 * h, 4 * h + 4)
        weights = torch.softmax(q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(4), dim=-1)
        heads.append(weights @ v[..., part])
    expected = x + attn.to_out(torch.cat(heads, dim=-1)).transpose(1, 2)
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("steps", [40, 1024])  # bf16: the written-out formula, then the fused kernel
def test_attend_matches_the_formula_in_float32_and_bf16(steps):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 3, steps, 8, generator=g) for _ in range(3))
    by_hand = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1) @ v
    torch.testing.assert_close(attend(q, k, v), by_hand, rtol=1e-5, atol=1e-5)
    half = attend(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert half.dtype == torch.bfloat16 and half.shape == by_hand.shape
    rel = (half.float() - by_hand).norm() / by_hand.norm()
    assert 0 < rel < 0.02, rel  # bf16 rounding, nothing more
    # The heads are independent: changing head 1's keys leaves heads 0 and 2 alone.
    k2 = k.clone()
    k2[:, 1] += 1.0
    for dtype in (torch.float32, torch.bfloat16):
        a = attend(q.to(dtype), k.to(dtype), v.to(dtype))
        b = attend(q.to(dtype), k2.to(dtype), v.to(dtype))
        assert torch.equal(a[:, [0, 2]], b[:, [0, 2]]) and not torch.equal(a[:, 1], b[:, 1])


def test_sinusoidal_positions_by_hand():
    pe = sinusoidal_positions(3, 5)  # 2 frequencies: 1 and 1/100 (10000 ** -(1/2)), one zero pad channel
    expected = torch.tensor([[math.sin(t), math.sin(t / 100), math.cos(t), math.cos(t / 100), 0.0] for t in range(3)])
    torch.testing.assert_close(pe, expected)


def test_positional_encoding_tells_attention_where_steps_are():
    """Without it, attention treats time steps as a set: shuffling them shuffles the output the same way."""
    x = torch.randn(1, 8, 12, generator=torch.Generator().manual_seed(0))
    order = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    for positional in (False, True):
        torch.manual_seed(0)
        attn = SelfAttention(channels=8, heads=2, head_features=4, positional=positional)
        shuffled_then_attended = attn(x[..., order])
        attended_then_shuffled = attn(x)[..., order]
        same = torch.allclose(shuffled_then_attended, attended_then_shuffled, atol=1e-5)
        assert same is (not positional)
    assert CONFIGS["laptop"].positional_encoding and not CONFIGS["reference"].positional_encoding


def test_modulation_normalises_each_time_step_then_scales_and_shifts():
    mod = Modulation(channels=6, features=5)
    with torch.no_grad():
        mod.to_scale_shift.weight.zero_()
        mod.to_scale_shift.bias.copy_(torch.tensor([1.0] * 6 + [0.5] * 6))  # scale 1 -> gain 2, shift 0.5
    x = torch.randn(2, 6, 7) * 3 + 4
    out = mod(x, torch.randn(2, 5))
    torch.testing.assert_close(out.mean(dim=1), torch.full((2, 7), 0.5), rtol=0, atol=1e-5)
    torch.testing.assert_close(out.std(dim=1, unbiased=False), torch.full((2, 7), 2.0), rtol=1e-4, atol=1e-4)


def test_modulation_under_bf16_autocast_keeps_bf16_and_float32_statistics():
    """Under autocast the output stays bf16, but mean and variance are taken in float32.

    With an offset of 30 (bf16 resolution 0.25 there), statistics accumulated in bf16 would be
    off by a good part of the standard deviation; float32 ones only leave the output's rounding.
    """
    torch.manual_seed(0)
    mod = Modulation(channels=64, features=5)
    x = (30 + torch.randn(2, 64, 9, generator=torch.Generator().manual_seed(1))).bfloat16()
    features = torch.randn(2, 5, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = mod(x, features)
    full = mod(x.float(), features)  # float32 all the way, on the same (bf16-rounded) input
    assert half.dtype == torch.bfloat16 and half.shape == x.shape
    rel = (half.float() - full).norm() / full.norm()
    assert rel < 0.01, rel


# ------------------------------------------------------------------------------ determinism, precision, saving


def test_seeded_initialisation_is_reproducible_and_private():
    state = torch.get_rng_state()
    a, b = UNet1D(tiny_config(), seed=5), UNet1D(tiny_config(), seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG was not used
    c = UNet1D(tiny_config(), seed=6)
    for (name, p), q, r in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert any(not torch.equal(p, r) for p, r in zip(a.parameters(), c.parameters()))


def test_bf16_autocast_on_the_cpu():
    model = UNet1D(tiny_config(), seed=0).eval()
    x = torch.randn(2, 1, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        full = model(x, torch.tensor([0.3, 0.6]), torch.tensor([1, 2]))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x, torch.tensor([0.3, 0.6]), torch.tensor([1, 2]))
    assert torch.isfinite(half).all()
    rel = (half.float() - full).norm() / full.norm()
    assert 0 < rel < 0.03, rel  # bf16 has ~3 significant digits: close, not equal


def test_config_json_round_trip():
    for config in CONFIGS.values():
        text = json.dumps(config.to_dict())
        assert UNet1DConfig.from_dict(json.loads(text)) == config
    changed = CONFIGS["laptop"].replace(in_channels=2)
    assert changed.in_channels == 2 and CONFIGS["laptop"].in_channels == 1


def test_save_and_load_pretrained(tmp_path):
    model = UNet1D(tiny_config(), seed=7).eval()
    folder = model.save_pretrained(tmp_path / "unet")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    saved = json.loads((folder / "config.json").read_text())
    assert saved["_class_name"] == "UNet1D" and saved["channels"] == [8, 16, 16, 32]
    assert (folder / "model.safetensors").read_bytes()[8:10] == b'{"'  # a safetensors JSON header, not a pickle
    loaded = UNet1D.from_pretrained(folder)
    assert not loaded.training and loaded.config == model.config
    x = torch.randn(2, 1, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x, 0.4, torch.tensor([1, 3])), model(x, 0.4, torch.tensor([1, 3])))


def test_float16_storage_loads_back_as_float32(tmp_path):
    from safetensors.torch import load_file

    model = UNet1D(tiny_config(), seed=3).eval()
    folder = model.save_pretrained(tmp_path / "half", dtype="float16")
    stored = load_file(str(folder / "model.safetensors"))
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    loaded = UNet1D.from_pretrained(folder)
    for (name, original), (_, back) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert back.dtype == torch.float32 and torch.equal(back, original.half().float()), name
    with pytest.raises(CourseInputError, match="dtype"):
        model.save_pretrained(tmp_path / "x", dtype="int8")


@pytest.mark.parametrize("damage", ["garbage", "half", "missing", "config"])
def test_damaged_files_name_the_file_and_the_fix(tmp_path, damage):
    folder = UNet1D(tiny_config(), seed=0).save_pretrained(tmp_path / "m")
    weights = folder / "model.safetensors"
    if damage == "garbage":
        weights.write_bytes(b"not a safetensors file " * 40)
    elif damage == "half":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "missing":
        weights.unlink()
    else:
        (folder / "config.json").write_text('{"channels": [8, 16,')
    expected = {"garbage": r"model\.safetensors' is not a readable safetensors file",
                "half": r"model\.safetensors' is not a readable safetensors file",
                "missing": "has no model.safetensors", "config": r"config\.json' is not valid JSON"}[damage]
    with pytest.raises(CourseInputError, match=expected) as info:
        UNet1D.from_pretrained(folder)
    assert "save_pretrained" in str(info.value)  # the fix


def test_from_pretrained_bad_folders(tmp_path):
    with pytest.raises(CourseInputError, match="not an existing folder"):
        UNet1D.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseInputError, match="no config.json"):
        UNet1D.from_pretrained(tmp_path / "empty")
    folder = UNet1D(tiny_config(), seed=0).save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "channels": [8, 16, 16, 64]}))
    with pytest.raises(CourseInputError, match="do not fit the config"):
        UNet1D.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "_class_name": "UNet2DModel"}))
    with pytest.raises(CourseInputError, match="not a UNet1D"):
        UNet1D.from_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CourseInputError, match="not valid JSON"):
        UNet1D.from_pretrained(folder)


# ------------------------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def model():
    return UNet1D(tiny_config(), seed=0).eval()


def test_length_not_divisible(model):
    with pytest.raises(CourseInputError, match=r"length 30 is not a multiple of 8.*e\.g\. 32"):
        model(torch.randn(1, 1, 30), 0.5)


def test_wrong_channels(model):
    with pytest.raises(CourseInputError, match=r"2 channel\(s\) but this model takes 1 \(mono\).*x.mean"):
        model(torch.randn(1, 2, 32), 0.5)
    with pytest.raises(CourseInputError, match=r"float tensor \(batch, 1, samples\)"):
        model(torch.randn(1, 32), 0.5)
    with pytest.raises(CourseInputError, match="float tensor"):
        model(torch.zeros(1, 1, 32, dtype=torch.long), 0.5)


def test_unknown_class(model):
    with pytest.raises(CourseInputError, match=r"unknown class 5; use 0..3 .*'kick'"):
        model(torch.randn(2, 1, 32), 0.5, torch.tensor([0, 5]))
    with pytest.raises(CourseInputError, match="unknown class -1"):
        model(torch.randn(2, 1, 32), 0.5, torch.tensor([-1, 0]))
    with pytest.raises(CourseInputError, match="integer class indices"):
        model(torch.randn(2, 1, 32), 0.5, torch.tensor([0.0, 1.0]))
    with pytest.raises(CourseInputError, match=r"shape \(2,\)"):
        model(torch.randn(2, 1, 32), 0.5, torch.tensor([0, 1, 2]))
    with pytest.raises(CourseInputError, match="unconditional"):
        UNet1D(tiny_config(num_classes=0))(torch.randn(1, 1, 32), 0.5, torch.tensor([0]))


def test_bad_noise_levels(model):
    with pytest.raises(CourseInputError, match=r"lie in \[0, 1\]"):
        model(torch.randn(2, 1, 32), torch.tensor([0.5, 1.5]))
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(CourseInputError, match=r"lie in \[0, 1\]"):
            model(torch.randn(2, 1, 32), bad)
    with pytest.raises(CourseInputError, match=r"lie in \[0, 1\]"):
        model(torch.randn(2, 1, 32), torch.tensor([0.5, float("nan")]))
    with pytest.raises(CourseInputError, match=r"shape \(2,\)"):
        model(torch.randn(2, 1, 32), torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(CourseInputError, match="one noise level per item"):
        model(torch.randn(2, 1, 32), "0.5")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"factors": (1, 2, 2)}, "factors: has 3 entries but channels has 4"),
        ({"channels": (8, 16, 18, 32)}, r"channels\[2\]: 18 is not a multiple of resnet_groups=4 .*e\.g\. 16"),
        ({"sample_length": 100}, r"sample_length: 100 is not a multiple of 8 .*e\.g\. 96"),
        ({"factors": (1, 0, 2, 2)}, r"factors\[1\]"),
        ({"blocks": (1, 1, 0, 1)}, r"blocks\[2\]"),
        ({"attention": (0, 0, 1, 1)}, r"attention\[0\]: expected True or False"),
        ({"in_channels": 0}, "in_channels"),
        ({"class_names": ("kick", "snare")}, "2 names for num_classes=4"),
        ({"channels": ()}, "at least one level"),
        ({"channels": 16}, "one entry per level"),
        ({"sample_rate": 12.5}, "sample_rate"),
        ({"num_classes": -1}, "num_classes"),
        ({"positional_encoding": "yes"}, "positional_encoding: expected True or False"),
    ],
)
def test_bad_configs(changes, message):
    with pytest.raises(CourseInputError, match=message):
        tiny_config(**changes)


def test_bad_config_objects():
    with pytest.raises(CourseInputError, match=r"unknown field\(s\) \['chanels'\]"):
        UNet1DConfig.from_dict({"chanels": [8]})
    with pytest.raises(CourseInputError, match="expected a UNet1DConfig"):
        UNet1D({"channels": [8]})
    with pytest.raises(CourseInputError, match="expected a torch.nn.Module"):
        parameter_breakdown("model")


# ------------------------------------------------------------------------------ checks that do not stall a device


def test_values_are_checked_only_where_reading_them_is_free(model):
    """CPU tensors: checked. Accelerator tensors: only with check_device_values (reading them would make every
    sampler step wait for the device). A meta tensor stands in for a GPU one: its values cannot be read at all."""
    on_device = torch.empty(2, device="meta")
    assert model._values_are_free(torch.zeros(2)) and not model._values_are_free(on_device)
    flagged = UNet1D(tiny_config(), seed=0)
    flagged.check_device_values = True
    assert flagged._values_are_free(on_device) and not UNet1D.check_device_values


def test_a_forward_pass_on_a_device_never_reads_values_back():
    """The whole forward pass on the meta device, which has shapes but no values: any check that read a value
    back (``.item()``, ``bool(t)``: a device sync on a GPU) would raise here. With the flag on, it does."""
    meta_model = UNet1D(tiny_config(), seed=0).to("meta").eval()
    x = torch.empty(2, 1, 32, device="meta")
    sigma, labels = torch.empty(2, device="meta"), torch.zeros(2, dtype=torch.long, device="meta")
    with torch.no_grad():
        out = meta_model(x, sigma, labels)
    assert out.shape == x.shape and out.device.type == "meta"
    meta_model.check_device_values = True
    with pytest.raises((RuntimeError, NotImplementedError)):
        with torch.no_grad():
            meta_model(x, sigma, labels)


# ------------------------------------------------------------------------------ no synthesiser behind the model


def test_drum_class_names_are_those_of_the_drum_data():
    from course_lib.models.unet1d import DRUM_CLASS_NAMES
    from course_lib.synth import DRUM_CLASSES

    assert DRUM_CLASS_NAMES == DRUM_CLASSES == CONFIGS["laptop"].class_names


def test_importing_the_model_does_not_import_the_synthesiser():
    import subprocess
    import sys

    code = ("import sys, course_lib.models.unet1d; "
            "print(sorted(m for m in ('course_lib.synth', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
