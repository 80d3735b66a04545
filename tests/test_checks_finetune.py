"""Lesson 03 exercise checks: right answers pass, the usual wrong ones fail with the right hint."""

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from course_lib import checks
from course_lib.checks import ExerciseFailed
from course_lib.diffusion import diffusion_loss
from course_lib.validate import CourseInputError

# ----------------------------------------------------------------------------- exercise 1


def right_to_model_range(pixels):
    return pixels.float()[:, None] / 255 * 2 - 1


def right_to_pixels(x):
    return ((x[:, 0].clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8)


def test_model_range(capsys):
    checks.check_model_range(right_to_model_range, right_to_pixels)
    assert "✅" in capsys.readouterr().out


def test_model_range_accepts_numpy_pixels_on_the_way_back():
    checks.check_model_range(right_to_model_range, lambda x: right_to_pixels(x).numpy())


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (lambda p: p.float() / 255 * 2 - 1, "channel axis is missing"),
        (lambda p: p.float()[:, None] / 255, r"that is \[0, 1\]"),
        (lambda p: p.float()[:, None] / 127.5, "subtract 1"),
        (lambda p: (p.float()[:, None] - 128) / 128, "127.5, not 128"),
        (lambda p: p[:, None] * 2 / 255 - 1, "overflowed"),  # uint8 arithmetic wraps at 256
        (lambda p: p.double()[:, None] / 255 * 2 - 1, "dtype float32"),
        (lambda p: (p[:, None] / 255 * 2 - 1).numpy(), "not a torch tensor"),
    ],
)
def test_model_range_wrong_forward(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_model_range(wrong, right_to_pixels)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (lambda x: ((x[:, 0].clamp(-1, 1) + 1) / 2 * 255).to(torch.uint8), "cut off, not rounded"),
        (lambda x: ((x[:, 0] + 1) / 2 * 255).round().to(torch.uint8), "Clamp first"),
        (lambda x: ((x.clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8), "drop the channel axis"),
        (lambda x: ((x[:, 0].clamp(-1, 1) + 1) / 2 * 255).round(), "expected dtype uint8"),
        (lambda x: ((x[:, 0].clamp(-1, 1) + 1) / 2 * 256).clamp(0, 255).round().to(torch.uint8), "pixels are wrong"),
    ],
)
def test_model_range_wrong_back(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_model_range(right_to_model_range, wrong)


def test_model_range_in_place_clamp_fails():
    def clamps_the_callers_tensor(x):
        return ((x.clamp_(-1, 1)[:, 0] + 1) / 2 * 255).round().to(torch.uint8)

    with pytest.raises(ExerciseFailed, match="changed its input x"):
        checks.check_model_range(right_to_model_range, clamps_the_callers_tensor)


def test_model_range_unanswered_and_not_callable():
    def stub(pixels):
        raise NotImplementedError("Exercise: write your answer here")

    with pytest.raises(ExerciseFailed, match="not answered yet"):
        checks.check_model_range(stub, right_to_pixels)
    with pytest.raises(CourseInputError, match="to_pixels"):
        checks.check_model_range(right_to_model_range, right_to_pixels(torch.zeros(1, 1, 2, 2)))


def test_model_range_reference_is_the_courses_own_scaling():
    # The check's references agree with course_lib.diffusion's conversions (what the pipeline uses).
    from course_lib.diffusion import images_to_tensor, tensor_to_images

    pixels = torch.arange(256, dtype=torch.uint8).reshape(4, 8, 8)
    torch.testing.assert_close(right_to_model_range(pixels), images_to_tensor(pixels))
    x = torch.linspace(-1.3, 1.3, 4 * 64).reshape(4, 1, 8, 8)
    assert np.array_equal(right_to_pixels(x).numpy(), tensor_to_images(x))


# ----------------------------------------------------------------------------- exercise 2


def right_training_loss(unet, x0, scheduler, generator):
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    noisy = scheduler.add_noise(x0, noise, t)
    return F.mse_loss(unet(noisy, t).sample, noise)


def test_training_loss(capsys):
    checks.check_training_loss(right_training_loss)
    assert "✅" in capsys.readouterr().out


def test_training_loss_with_the_courses_own_function_passes():
    checks.check_training_loss(diffusion_loss)


def _draws(x0, scheduler, generator, noise_first=False, high=None):
    high = scheduler.config.num_train_timesteps if high is None else high
    if noise_first:
        noise = torch.randn(x0.shape, generator=generator)
        return torch.randint(0, high, (x0.shape[0],), generator=generator), noise
    t = torch.randint(0, high, (x0.shape[0],), generator=generator)
    return t, torch.randn(x0.shape, generator=generator)


def noise_before_t(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator, noise_first=True)
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)


def self_scaled(unet, x0, scheduler, generator):
    # What loss.backward(loss) does: every gradient multiplied by the loss value.
    loss = right_training_loss(unet, x0, scheduler, generator)
    return loss * loss.detach()


def backward_inside(unet, x0, scheduler, generator):
    loss = right_training_loss(unet, x0, scheduler, generator)
    loss.backward(loss)
    return loss


def global_rng(unet, x0, scheduler, generator):
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],))
    noise = torch.randn_like(x0)
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)


def hard_coded_1000(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator, high=1000)
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)


def exclusive_high_misread(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator, high=scheduler.config.num_train_timesteps - 1)
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)


def against_x0(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator)
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, x0)


def summed(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator)
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise, reduction="sum")


def clean_input(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator)
    return F.mse_loss(unet(x0, t).sample, noise)


def detached(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator)
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample.detach(), noise)


def as_number(unet, x0, scheduler, generator):
    return right_training_loss(unet, x0, scheduler, generator).item()


def forgot_sample(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator)
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t), noise)


def per_pixel(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator)
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise, reduction="none")


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (noise_before_t, "wrong order"),
        (self_scaled, r"loss.backward\(loss\)"),
        (backward_inside, "already called backward"),
        (global_rng, "did not draw from `generator`"),
        (hard_coded_1000, "this schedule has 100 steps"),
        (exclusive_high_misread, "high is exclusive"),
        (against_x0, "not x0"),
        (summed, "take the mean"),
        (clean_input, "must see the noisy images"),
        (detached, "carries no gradient"),
        (as_number, r"not loss.item\(\)"),
        (forgot_sample, r"\.sample"),
        (per_pixel, "one number"),
    ],
)
def test_training_loss_wrong_answers(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_training_loss(wrong)


def test_training_loss_check_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    checks.check_training_loss(right_training_loss)
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------------- exercise 3


def right_save_atomically(tensors, path):
    path = Path(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        save_file(tensors, tmp)  # imported by name: the check patches this module's name too
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def test_save_atomically(capsys):
    checks.check_save_atomically(right_save_atomically)
    assert "✅" in capsys.readouterr().out


def test_save_atomically_with_a_fixed_temp_name_passes():
    def with_suffix(tensors, path):
        tmp = str(path) + ".tmp"
        try:
            safetensors.torch.save_file(tensors, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    checks.check_save_atomically(with_suffix)


def test_save_atomically_restores_the_patched_names():
    checks.check_save_atomically(right_save_atomically)
    assert save_file is safetensors.torch.save_file
    assert save_file.__module__ == "safetensors.torch"


def straight_to_path(tensors, path):
    save_file(tensors, str(path))


def no_cleanup(tensors, path):
    tmp = str(path) + ".tmp"
    save_file(tensors, tmp)
    os.replace(tmp, path)


def swallows_the_error(tensors, path):
    tmp = str(path) + ".tmp"
    try:
        save_file(tensors, tmp)
        os.replace(tmp, path)
    except OSError:
        os.remove(tmp)


def temp_in_another_folder(tensors, path):
    handle, tmp = tempfile.mkstemp(suffix=".safetensors")
    os.close(handle)
    try:
        save_file(tensors, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def copies_instead_of_moving(tensors, path):
    tmp = str(path) + ".tmp"
    save_file(tensors, tmp)
    Path(path).write_bytes(Path(tmp).read_bytes())


def deletes_first(tensors, path):
    tmp = str(path) + ".tmp"
    if os.path.exists(path):
        os.remove(path)
    try:
        save_file(tensors, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def pickles(tensors, path):
    torch.save(tensors, path)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (straight_to_path, "wrote straight to path"),
        (no_cleanup, "half-written temporary file is still there"),
        (swallows_the_error, "returned normally although the save failed"),
        (temp_in_another_folder, "not in path's folder"),
        (copies_instead_of_moving, "left behind"),
        (deletes_first, "was deleted"),
        (pickles, "save_file was not called"),
    ],
)
def test_save_atomically_wrong_answers(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_save_atomically(wrong)


def test_save_atomically_direct_write_is_caught_by_the_failure_alone():
    # Even when the spy cannot see the target (bytes written by hand), the simulated failure catches a
    # direct write: the old file is truncated before save fails.
    def by_hand(tensors, path):
        with open(path, "wb") as f:
            safetensors.torch.save_file(tensors, str(path) + ".part")
            os.remove(str(path) + ".part")
            f.write(safetensors.torch.save(tensors))

    with pytest.raises(ExerciseFailed, match="replaced by a broken one"):
        checks.check_save_atomically(by_hand)


# ----------------------------------------------------------------------------- exercise 4


def right_epoch_starts(n_frames, x_res, seed, epoch):
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    n_starts = torch.as_tensor(n_frames) - x_res + 1
    return (torch.rand(n_starts.shape, generator=g, dtype=torch.float64) * n_starts).long()


def test_epoch_starts(capsys):
    checks.check_epoch_starts(right_epoch_starts)
    assert "✅" in capsys.readouterr().out


def test_epoch_starts_with_one_randint_per_clip_passes():
    def per_clip(n_frames, x_res, seed, epoch):
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        return [int(torch.randint(0, int(n) - x_res + 1, (1,), generator=g)) for n in n_frames]

    checks.check_epoch_starts(per_clip)


def test_epoch_starts_matches_the_cached_slices_rule():
    # CachedMelSlices draws its crops the same way: start in [0, n_starts), n_starts = frames - x_res + 1.
    frames = torch.tensor([64, 70, 300])
    starts = right_epoch_starts(frames, 64, 0, 0)
    assert starts[0] == 0 and 0 <= starts[1] <= 6 and 0 <= starts[2] <= 236


def _floor_of(n_frames, x_res, seed, epoch, scale):
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    span = torch.as_tensor(n_frames, dtype=torch.float64) - x_res
    return (torch.rand(span.shape, generator=g, dtype=torch.float64) * scale(span)).long()


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        # starts up to n_frames - 1: the slice runs past the end of the clip
        (lambda n, x, s, e: _floor_of(n, x, s, e, lambda span: span + x), "must be in 0"),
        # randint's high is exclusive: the exact-length clip makes randint(0, 0) fail
        (lambda n, x, s, e: torch.stack([torch.randint(0, int(k) - x, (1,), generator=torch.Generator().manual_seed(
            s * 1000 + e))[0] for k in n]), "high is exclusive"),
        # int(rand * (n - x_res)) never reaches the last start
        (lambda n, x, s, e: _floor_of(n, x, s, e, lambda span: span), "never started"),
        # rounding: both ends half as likely
        (lambda n, x, s, e: torch.round(_floor_of(n, x, s, e, lambda span: span * 1e6).double() / 1e6).long(),
         "equally likely"),
        # the epoch is ignored
        (lambda n, x, s, e: right_epoch_starts(n, x, s, 0), "two epochs in a row"),
        # the seed is ignored
        (lambda n, x, s, e: right_epoch_starts(n, x, 0, e), "seed must enter"),
        # the global RNG, never seeded
        (lambda n, x, s, e: (torch.rand(len(n), dtype=torch.float64) * (torch.as_tensor(n) - x + 1)).long(),
         "same \\(seed=3, epoch=7\\) gave different starts"),
        # the global RNG, re-seeded: repeatable, but it resets everyone else's random numbers
        (lambda n, x, s, e: (torch.manual_seed(s * 1000 + e), (torch.rand(len(n), dtype=torch.float64)
                                                               * (torch.as_tensor(n) - x + 1)).long())[1],
         "global random state"),
        # one draw for the whole epoch
        (lambda n, x, s, e: (torch.rand(1, generator=torch.Generator().manual_seed(s * 1000 + e), dtype=torch.float64)
                             * (torch.as_tensor(n) - x + 1)).long(), "all got the same start"),
        # starts as fractions of a frame
        (lambda n, x, s, e: right_epoch_starts(n, x, s, e).double() + 0.5, "not whole numbers"),
        (lambda n, x, s, e: right_epoch_starts(n, x, s, e)[:-1], "one per clip"),
    ],
)
def test_epoch_starts_wrong_answers(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_epoch_starts(wrong)


# ----------------------------------------------------------------------------- exercise 2: the broken loss


def tutorial_buggy_loss(unet, x0, scheduler, generator):
    # the exercise's broken loss: timestep t / T, a fresh target, backward(loss) inside
    T = scheduler.config.num_train_timesteps
    t = torch.randint(0, T, (x0.shape[0],), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    prediction = unet(scheduler.add_noise(x0, noise, t), t / T).sample
    loss = F.mse_loss(prediction, torch.randn_like(x0))
    loss.backward(loss)
    return loss


def fresh_target(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator)
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, torch.randn_like(x0))


def timestep_fraction(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator)
    T = scheduler.config.num_train_timesteps
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t / T).sample, noise)


def countdown_timestep(unet, x0, scheduler, generator):
    t, noise = _draws(x0, scheduler, generator)
    T = scheduler.config.num_train_timesteps
    return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), T - 1 - t).sample, noise)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (tutorial_buggy_loss, r"already called backward(.|\n)*loss.backward\(loss\)"),
        (fresh_target, "global RNG(.|\n)*noise that was ADDED"),
        (timestep_fraction, r"t / T"),
        (countdown_timestep, "countdown"),
    ],
)
def test_training_loss_finds_the_bugs_of_the_broken_loss(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_training_loss(wrong)


def test_training_loss_bugs_are_found_one_after_the_other():
    # fixing the broken loss bug by bug: each version fails on the next bug, the last one passes
    def no_backward(unet, x0, scheduler, generator):
        T = scheduler.config.num_train_timesteps
        t = torch.randint(0, T, (x0.shape[0],), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        return F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t / T).sample, torch.randn_like(x0))

    with pytest.raises(ExerciseFailed, match="global RNG"):
        checks.check_training_loss(no_backward)
    with pytest.raises(ExerciseFailed, match=r"t / T"):
        checks.check_training_loss(timestep_fraction)
    checks.check_training_loss(right_training_loss)


# ----------------------------------------------------------------------------- exercise 5: the EMA's memory


def right_steps_to_forget(decay, fraction):
    return math.ceil(math.log(fraction) / math.log(decay))


def test_ema_memory(capsys):
    checks.check_ema_memory(right_steps_to_forget)
    out = capsys.readouterr().out
    assert "✅" in out and "0.9 -> 0.01: 44" in out and "0.99 -> 0.01: 459" in out


@pytest.mark.parametrize(
    "prediction",
    [
        lambda d, f: math.log(f) / math.log(d),          # not rounded up
        lambda d, f: np.log(f) / np.log(d),              # NumPy
        lambda d, f: -math.log(f) / (1 - d),             # the window approximation, close for decays near 1
        lambda d, f: torch.tensor(math.log(f) / math.log(d)),
    ],
)
def test_ema_memory_accepts_equivalent_predictions(prediction):
    checks.check_ema_memory(prediction)


def test_ema_memory_is_measured_with_update_ema():
    from course_lib.checks.lesson03 import _EMA_CASES, _measured_steps_to_forget

    for decay, fraction in _EMA_CASES + [(0.5, 0.1), (0.8, 0.3)]:
        assert _measured_steps_to_forget(decay, fraction) == right_steps_to_forget(decay, fraction)
    with pytest.raises(CourseInputError, match="fraction"):
        _measured_steps_to_forget(0.9, 0.0)


@pytest.mark.parametrize(
    ("wrong", "match"),
    [
        (lambda d, f: 1 / (1 - d), r"window 1/\(1 - decay\)"),
        (lambda d, f: math.log(f) / (1 - d), "positive"),
        (lambda d, f: -math.log10(f) / (1 - d), "natural logarithm"),
        (lambda d, f: math.log(1 - f) / math.log(d), "fallen BY"),
        (lambda d, f: f / (1 - d), "fallen BY"),
        (lambda d, f: math.log(f) / math.log(d) * 2, "unroll the update"),
        (lambda d, f: float("nan"), "prediction is nan"),
        (lambda d, f: [1, 2], "one number"),
        (lambda d, f: "many", "not numeric"),
        (lambda d: 1, "TypeError"),
    ],
)
def test_ema_memory_wrong_answers(wrong, match):
    with pytest.raises(ExerciseFailed, match=match):
        checks.check_ema_memory(wrong)


def test_ema_memory_unanswered_and_not_callable():
    def stub(decay, fraction):
        raise NotImplementedError("replace this line with your code")

    with pytest.raises(ExerciseFailed, match="not answered yet"):
        checks.check_ema_memory(stub)
    with pytest.raises(CourseInputError, match="steps_to_forget"):
        checks.check_ema_memory(44)
