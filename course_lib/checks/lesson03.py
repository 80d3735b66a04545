"""Checks for lesson 03's exercises (fine-tuning); re-exported by :mod:`course_lib.checks`.

1. :func:`check_model_range`: uint8 pixels (B, H, W) -> float32 (B, 1, H, W) in [-1, 1], and the way back.
2. :func:`check_training_loss`: the DDPM fine-tuning loss (the exercise hands out a broken one to
   fix), against the course's own ``diffusion_loss`` drawing from a generator with the same seed,
   and the gradients it gives a tiny ``UNet2DModel``.
3. :func:`check_save_atomically`: a safetensors save that never leaves a broken file (a temporary file
   in the same folder, then ``os.replace``), under a simulated failure half-way through the write.
4. :func:`check_epoch_starts`: the random start frame of each clip in an epoch, seeded by (seed, epoch).
5. :func:`check_ema_memory`: a prediction of how many EMA updates it takes until the starting weights'
   share of the average falls to a given fraction, against the count measured by running
   :func:`course_lib.training.update_ema`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator

import numpy as np

from course_lib.checks.harness import (
    ExerciseFailed,
    all_close,
    as_numpy,
    call_answer,
    call_answer_with_hint,
    diagnose,
    need_callable,
    preview,
    print_passed,
    require_unchanged,
    to_numpy,
    worst_difference,
)

__all__ = ["check_model_range", "check_training_loss", "check_save_atomically", "check_epoch_starts",
           "check_ema_memory"]


def _dtype_name(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    return str(dtype).replace("torch.", "") if dtype is not None else type(value).__name__


def _model_range_ref(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float64) / 255.0 * 2.0 - 1.0)[:, None]


def _pixels_ref(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round((x[:, 0].astype(np.float64) + 1.0) / 2.0 * 255.0), 0, 255).astype(np.uint8)


def _check_to_model_range(title: str, fn: Callable[[Any], Any], case: str, pixels: Any) -> np.ndarray:
    """Run ``to_model_range`` on one case; return its result as float64 NumPy."""
    __tracebackhide__ = True
    import torch

    given = pixels.clone()
    got = call_answer(title, fn, case, given, signature="to_model_range(pixels) -> tensor")
    require_unchanged(title, case, (pixels,), (given,), ("pixels",))
    if not isinstance(got, torch.Tensor):
        raise ExerciseFailed(
            title, f"to_model_range on case {case} returned {type(got).__name__}, not a torch tensor.",
            "the UNet takes torch tensors: work on the tensor you are given (pixels.float() / 255 ...).",
        )
    p = pixels.numpy()
    want = _model_range_ref(p)
    if tuple(got.shape) != want.shape:
        hint = "the result is (B, 1, H, W): a batch of one-channel images."
        if tuple(got.shape) == p.shape:
            hint = "the channel axis is missing: the UNet wants (B, 1, H, W); add it with x[:, None] or x.unsqueeze(1)."
        raise ExerciseFailed(title, f"to_model_range on case {case}: expected shape {want.shape}, "
                                    f"got {tuple(got.shape)}.", hint)
    if got.dtype != torch.float32:
        hint = "the UNet's weights are float32: convert with .float() (or .to(torch.float32))."
        if not got.is_floating_point():
            hint = ("integer grey levels cannot hold -1 ... 1: convert to float first, pixels.float(), then scale "
                    "(uint8 arithmetic also wraps around at 256).")
        raise ExerciseFailed(title, f"to_model_range on case {case}: expected dtype float32, got {_dtype_name(got)}.",
                             hint)
    array = as_numpy(got)
    if not all_close(array, want, 1e-6, 1e-6):
        pf = p.astype(np.float64)[:, None]
        hint = diagnose(array, [
            (pf / 255.0, "that is [0, 1]; the model works in [-1, 1]: x = pixels / 255 * 2 - 1."),
            (pf / 127.5, "0 must give -1: subtract 1 after dividing by 127.5."),
            ((pf - 128.0) / 128.0, "0 must give -1 and 255 must give +1 exactly: the middle is 127.5, not 128."),
            ((pf * 2.0 % 256.0) / 255.0 - 1.0, ("pixels * 2 overflowed: uint8 arithmetic wraps around at 256. "
                                                 "Convert to float first: pixels.float() / 255 * 2 - 1.")),
            (1.0 - pf / 255.0 * 2.0, "the sign is flipped: 0 (silence, black) gives -1 and 255 gives +1."),
        ], "map grey level 0 to -1 and 255 to +1 linearly: pixels / 255 * 2 - 1.")
        raise ExerciseFailed(title, f"to_model_range on case {case}: {worst_difference(array, want)}.", hint)
    return array


def _check_to_pixels(title: str, fn: Callable[[Any], Any], case: str, x: Any) -> np.ndarray:
    """Run ``to_pixels`` on one case; return its result as a uint8 NumPy array."""
    __tracebackhide__ = True
    given = x.clone()
    got = call_answer(title, fn, case, given, signature="to_pixels(x) -> uint8 images")
    require_unchanged(title, case, (x,), (given,), ("x",))
    want = _pixels_ref(as_numpy(x))
    shape = tuple(int(s) for s in getattr(got, "shape", ()))
    if shape != want.shape:
        hint = "the result is (B, H, W) grey levels, one image per item."
        if shape == tuple(x.shape):
            hint = "drop the channel axis: x[:, 0] (or .squeeze(1)) turns (B, 1, H, W) into (B, H, W)."
        raise ExerciseFailed(title, f"to_pixels on case {case}: expected shape {want.shape}, got {shape}.", hint)
    if _dtype_name(got) != "uint8":
        raise ExerciseFailed(
            title, f"to_pixels on case {case}: expected dtype uint8, got {_dtype_name(got)}.",
            "images are grey levels 0..255 stored as uint8: finish with .round().to(torch.uint8).",
        )
    array = to_numpy(title, got, f"to_pixels' result on case {case}")
    if not np.array_equal(array, want):
        xs = as_numpy(x)[:, 0]
        level = (xs + 1.0) / 2.0 * 255.0
        inside = (level >= 0) & (level <= 255)
        wrong = array != want
        hint = "undo to_model_range: map -1 … 1 back to 0 … 255, then keep the levels inside [0, 255] and round them."
        if not wrong[inside].any():
            hint = ("the values outside [-1, 1] are wrong: the model's outputs overshoot, and converting a negative "
                    "or > 255 value to uint8 wraps around. Clamp first: x.clamp(-1, 1) (or the levels to [0, 255]).")
        elif set(np.unique(want[inside].astype(np.int64) - array[inside])) == {0, 1}:
            hint = ("the levels are cut off, not rounded: .to(torch.uint8) drops the fraction, so 254.99998 becomes "
                    "254. Call .round() before converting.")
        n_wrong = int(wrong.sum())
        k = np.unravel_index(int(np.argmax(wrong)), wrong.shape)
        raise ExerciseFailed(
            title, f"to_pixels on case {case}: {n_wrong} of {wrong.size} pixels are wrong; at index "
                   f"{tuple(int(i) for i in k)}, x = {float(xs[k]):.6g} should give {int(want[k])}, got "
                   f"{int(array[k])}.", hint)
    return array


def check_model_range(to_model_range: Callable[[Any], Any], to_pixels: Callable[[Any], Any]) -> None:
    """Check ``to_model_range(pixels)`` and its inverse ``to_pixels(x)``.

    ``to_model_range``: uint8 images ``(B, H, W)`` -> float32 ``(B, 1, H, W)`` in [-1, 1] (0 -> -1,
    255 -> +1, ``pixels / 255 * 2 - 1``). ``to_pixels``: float ``(B, 1, H, W)`` -> uint8 ``(B, H, W)``,
    ``(x + 1) / 2 * 255`` clamped to [0, 255] and rounded. Checked on every grey level, a random
    batch, all-black and all-white images, values off the grid and outside [-1, 1]; and the round
    trip ``to_pixels(to_model_range(p)) == p`` must be exact.
    """
    __tracebackhide__ = True
    import torch

    title = "Pixels to the model's range and back"
    need_callable(to_model_range, "to_model_range", "check_model_range(to_model_range, to_pixels)")
    need_callable(to_pixels, "to_pixels", "check_model_range(to_model_range, to_pixels)")
    gen = torch.Generator().manual_seed(30)
    every = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    batch = torch.randint(0, 256, (3, 8, 12), generator=gen, dtype=torch.uint8)
    extremes = torch.stack([torch.zeros(4, 4, dtype=torch.uint8), torch.full((4, 4), 255, dtype=torch.uint8)])
    for case, pixels in [("every grey level 0..255, shape (1, 16, 16)", every),
                         ("a random batch of shape (3, 8, 12)", batch),
                         ("an all-black and an all-white image, shape (2, 4, 4)", extremes)]:
        _check_to_model_range(title, to_model_range, case, pixels)

    grid = torch.from_numpy(_model_range_ref(every.numpy())).float()
    levels = torch.randint(0, 256, (2, 1, 8, 8), generator=gen).double()
    jitter = (torch.rand(levels.shape, generator=gen, dtype=torch.float64) - 0.5) * 0.8  # within 0.4 of a level
    near = ((levels + jitter) / 255.0 * 2.0 - 1.0).float()
    outside = torch.tensor([[[[-3.0, -1.5, -1.0001, -1.0], [1.0, 1.0001, 1.5, 40.0]]]])
    for case, x in [("every level of the model range, shape (1, 1, 16, 16)", grid),
                    ("values up to 0.4 grey levels off the grid, shape (2, 1, 8, 8)", near),
                    ("values outside [-1, 1] (the model overshoots), shape (1, 1, 2, 4)", outside)]:
        _check_to_pixels(title, to_pixels, case, x)

    for case, pixels in [("every grey level", every), ("the random batch", batch)]:
        there = call_answer(title, to_model_range, case, pixels.clone(), signature="to_model_range(pixels) -> tensor")
        back = to_numpy(title, call_answer(title, to_pixels, case, there, signature="to_pixels(x) -> uint8 images"),
                         "the round trip's result")
        if back.shape != tuple(pixels.shape) or not np.array_equal(back, pixels.numpy()):
            raise ExerciseFailed(title, f"to_pixels(to_model_range(p)) is not p on {case}.",
                                 "round (do not truncate) on the way back, and use the same 255 in both directions.")
    print_passed(title, "every grey level, a batch, black and white, off-grid and out-of-range values; "
                   "the round trip is exact")


def _tiny_unet(seed: int) -> Any:
    """A small UNet2DModel (about 40k parameters) with weights from ``seed``; the global RNG is left alone."""
    import torch
    from diffusers import UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                           block_out_channels=(8, 16), norm_num_groups=4,
                           down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))


def _loss_variants(unet: Any, x0: Any, scheduler: Any, seed: int) -> list[tuple[float, str]]:
    """Losses of the usual wrong answers, each with its hint (for the failure message)."""
    import torch
    import torch.nn.functional as F

    n = int(scheduler.config.num_train_timesteps)
    b = x0.shape[0]

    def draw(noise_first: bool = False, high: int = n) -> tuple[Any, Any]:
        g = torch.Generator().manual_seed(seed)
        if noise_first:
            noise = torch.randn(x0.shape, generator=g)
            return torch.randint(0, high, (b,), generator=g), noise
        t = torch.randint(0, high, (b,), generator=g)
        return t, torch.randn(x0.shape, generator=g)

    out = []
    with torch.no_grad():
        t, noise = draw()
        pred = unet(scheduler.add_noise(x0, noise, t), t).sample
        right = float(F.mse_loss(pred, noise))
        out += [
            (right ** 2, ("your loss is the MSE times itself. That is what loss.backward(loss) does to the gradients: "
                          "it scales them by the loss. Return the plain MSE; the loop calls loss.backward().")),
            (right * x0.numel(), "that is the sum of the squared errors; take the mean (F.mse_loss's default)."),
            (float(F.mse_loss(pred, x0)), "the UNet predicts the noise that was added: compare its output with noise, not x0."),
        ]
        t2, noise2 = draw(noise_first=True)
        out.append((float(F.mse_loss(unet(scheduler.add_noise(x0, noise2, t2), t2).sample, noise2)),
                    "the draws are in the wrong order: first t = torch.randint(...), then noise = torch.randn(...)."))
        if n > 1:
            t3, noise3 = draw(high=n - 1)
            out.append((float(F.mse_loss(unet(scheduler.add_noise(x0, noise3, t3), t3).sample, noise3)),
                        ("t runs from 0 to num_train_timesteps - 1: torch.randint's high is exclusive, so pass "
                         "num_train_timesteps itself.")))
        out.append((float(F.mse_loss(unet(x0, t).sample, noise)),
                    "the UNet must see the noisy images: noisy = scheduler.add_noise(x0, noise, t)."))
        noisy = scheduler.add_noise(x0, noise, t)
        out.append((float(F.mse_loss(unet(noisy, t.float() / n).sample, noise)),
                    ("the UNet is told another noise level than the one added: add_noise used the integer timestep t "
                     "(0 .. T-1), and this UNet's timestep embedding was trained on that same t. t / T (the [0, 1) "
                     "convention of lesson 05's v-diffusion) tells it every image is almost clean. Pass t itself.")))
        out.append((float(F.mse_loss(unet(noisy, n - 1 - t).sample, noise)),
                    ("the UNet is told T - 1 - t, the sampler's countdown, not the timestep the noise was added at: "
                     "pass t itself.")))
    return out


def _require_repeatable(title: str, fn: Callable[..., Any], case: str, unet: Any, x0: Any, scheduler: Any,
                        seed: int, value: float) -> None:
    """Fail if ``fn`` gives another loss for the same generator seed once the global RNG has moved on."""
    __tracebackhide__ = True
    import torch

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed + 1000)
        again = call_answer(title, fn, case, unet, x0.clone(), scheduler, torch.Generator().manual_seed(seed),
                            signature="fn(unet, x0, scheduler, generator) -> loss")
    again_value = float(again.detach()) if isinstance(again, torch.Tensor) else float(again)
    if not math.isclose(again_value, value, rel_tol=1e-6, abs_tol=1e-8):
        raise ExerciseFailed(
            title, f"on case {case}, the same generator seed gave two different losses ({value:.6f}, then "
                   f"{again_value:.6f}): something in your loss draws from the global RNG.",
            "look at the target of the MSE: the UNet is asked for the noise that was ADDED to x0 (the `noise` you "
            "drew from generator and passed to add_noise), not for a fresh draw such as torch.randn_like(x0), "
            "which it can never predict.",
        )


def check_training_loss(fn: Callable[[Any, Any, Any, Any], Any]) -> None:
    """Check ``fn(unet, x0, scheduler, generator) -> loss``: the DDPM fine-tuning loss.

    From ``generator``, in this order: ``t = torch.randint(0, T, (B,))`` and ``noise = torch.randn(x0.shape)``
    (T = ``scheduler.config.num_train_timesteps``); then ``noisy = scheduler.add_noise(x0, noise, t)`` and
    the MSE between ``unet(noisy, t).sample`` and ``noise``. The reference is
    :func:`course_lib.diffusion.diffusion_loss` with a generator of the same seed, on a tiny
    ``UNet2DModel`` and three batches (1000- and 100-step schedules, a batch of one); the loss must
    agree to float32 rounding, consume the generator exactly as the reference does, not call
    ``backward`` itself, and give the reference's gradients.
    """
    __tracebackhide__ = True
    import torch
    from diffusers import DDPMScheduler

    from course_lib.diffusion import diffusion_loss

    title = "The fine-tuning loss"
    need_callable(fn, "fn", "check_training_loss(training_loss)")
    signature = "fn(unet, x0, scheduler, generator) -> loss"
    unet = _tiny_unet(31)
    data_gen = torch.Generator().manual_seed(32)
    plan = [
        ("a batch of 4 images (4, 1, 16, 16), a 1000-step linear schedule", (4, 1, 16, 16),
         DDPMScheduler(num_train_timesteps=1000), 0),
        ("a batch of 2 (2, 1, 16, 16), a 100-step cosine schedule", (2, 1, 16, 16),
         DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2"), 11),
        ("a batch of one (1, 1, 16, 32), a 1000-step schedule", (1, 1, 16, 32),
         DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear"), 5),
    ]
    for k, (case, shape, scheduler, seed) in enumerate(plan):
        x0 = torch.rand(shape, generator=data_gen) * 2 - 1
        n = int(scheduler.config.num_train_timesteps)
        unet.zero_grad(set_to_none=True)
        unet.train()
        given, g = x0.clone(), torch.Generator().manual_seed(seed)
        got = call_answer_with_hint(
            title, fn, case, unet, given, scheduler, g, signature=signature,
            hint=(f"draw t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator) "
                  f"(this schedule has {n} steps), noise = torch.randn(x0.shape, generator=generator); the UNet "
                  "returns an output object whose prediction is .sample."),
        )
        require_unchanged(title, case, (x0,), (given,), ("x0",))
        if any(p.grad is not None for p in unet.parameters()):
            raise ExerciseFailed(
                title, f"on case {case}, your function already called backward: the UNet has gradients.",
                ("return the loss and let the training loop call loss.backward() (once, with no argument: "
                 "loss.backward(loss) would also multiply every gradient by the loss)."),
            )
        if not isinstance(got, torch.Tensor):
            hint = "return the loss tensor that F.mse_loss gives you."
            if isinstance(got, (float, int)):
                hint = "return the tensor, not loss.item(): a Python number is cut off from the graph, so no gradient."
            raise ExerciseFailed(title, f"on case {case}, expected a scalar tensor, got {type(got).__name__}.", hint)
        if got.numel() != 1:
            raise ExerciseFailed(title, f"on case {case}, expected one number, got a tensor of shape {tuple(got.shape)}.",
                                 "average over every pixel of every image: F.mse_loss(prediction, noise).")
        ref_g = torch.Generator().manual_seed(seed)
        want = diffusion_loss(unet, x0, scheduler, ref_g)
        if not torch.equal(g.get_state(), ref_g.get_state()):
            fresh = torch.Generator().manual_seed(seed).get_state()
            hint = ("draw exactly two things from generator: t with torch.randint(0, T, (batch,)), then noise with "
                    "torch.randn(x0.shape), both with generator=generator.")
            if torch.equal(g.get_state(), fresh):
                hint = ("your function did not draw from `generator`: pass generator=generator to torch.randint and "
                        "torch.randn. The global RNG (torch.randn_like) makes a resumed run differ from an "
                        "uninterrupted one.")
            raise ExerciseFailed(title, f"on case {case}, the generator was not used as the reference uses it.", hint)
        value, ref = float(got.detach()), float(want.detach())
        _require_repeatable(title, fn, case, unet, x0, scheduler, seed, value)
        if not math.isclose(value, ref, rel_tol=1e-5, abs_tol=1e-7):
            hint = ("follow the lesson's training step in order: t, then the noise, both from generator; the noisy "
                    "images at t from the scheduler; then what should the UNet's output be compared with?")
            for wrong, why in _loss_variants(unet, x0, scheduler, seed):
                if math.isclose(value, wrong, rel_tol=1e-5, abs_tol=1e-7):
                    hint = why
                    break
            raise ExerciseFailed(title, f"on case {case}, expected the loss {ref:.6f}, got {value:.6f}.", hint)
        if k == 0:
            if not got.requires_grad:
                raise ExerciseFailed(
                    title, f"on case {case}, your loss carries no gradient (requires_grad is False).",
                    "do not compute it under torch.no_grad(), and do not .detach() the UNet's output.",
                )
            got.backward()
            mine = [None if p.grad is None else p.grad.clone() for p in unet.parameters()]
            unet.zero_grad(set_to_none=True)
            diffusion_loss(unet, x0, scheduler, torch.Generator().manual_seed(seed)).backward()
            for (name, p), grad in zip(unet.named_parameters(), mine):
                if grad is None or not torch.allclose(grad, p.grad, rtol=1e-4, atol=1e-7):
                    raise ExerciseFailed(
                        title, f"on case {case}, the gradient of {name} differs from the reference's.",
                        "return the MSE itself, not a rescaled or partly detached version of it.",
                    )
            unet.zero_grad(set_to_none=True)
    print_passed(title, "3 batches, 1000- and 100-step schedules and a batch of one; equals diffusion.diffusion_loss "
                   "and gives its gradients")


class _SimulatedFailure(OSError):
    """The error the save check raises half-way through a write (a full disk, as far as the learner knows)."""


@contextlib.contextmanager
def _patched_save_file(fn: Callable[..., Any], replacement: Callable[..., Any]) -> Iterator[None]:
    """Make ``safetensors.torch.save_file`` be ``replacement``, also where ``fn``'s module imported it by name."""
    import safetensors.torch as st

    real = st.save_file
    namespace = getattr(fn, "__globals__", {})
    names = [k for k, v in list(namespace.items()) if v is real]
    st.save_file = replacement
    for k in names:
        namespace[k] = replacement
    try:
        yield
    finally:
        st.save_file = real
        for k in names:
            namespace[k] = real


def _files(folder: Any) -> set[str]:
    return {p.name for p in folder.iterdir()}


def check_save_atomically(fn: Callable[[dict, Any], Any]) -> None:
    """Check ``fn(tensors, path)``: save a dict of tensors as safetensors without ever leaving a broken file.

    The file must load back equal; ``safetensors.torch.save_file`` must write a temporary file in the
    same folder as ``path``, never ``path`` itself (``os.replace`` then moves it into place, which is
    atomic); no temporary file may be left. Then the check makes ``save_file`` write half a file and
    raise, as a full disk would: the previous file at ``path`` must be there unchanged (or, for a
    first save, no file at all), the half-written temporary file must be gone, and the error must
    reach the caller. ``path`` is given as a ``pathlib.Path`` and as a ``str``.
    """
    __tracebackhide__ = True
    import tempfile
    from pathlib import Path

    import safetensors.torch as st
    import torch

    title = "Saving atomically"
    need_callable(fn, "fn", "check_save_atomically(save_atomically)")
    signature = "fn(tensors, path) -> None"
    real_save = st.save_file
    gen = torch.Generator().manual_seed(33)
    first = {"weight": torch.randn(4, 3, generator=gen), "bias": torch.zeros(3), "step": torch.tensor(7)}
    second = {"weight": torch.randn(4, 3, generator=gen), "codes": torch.arange(10, dtype=torch.int16)}
    third = {"weight": torch.randn(64, 64, generator=gen)}
    writes: list[Path] = []

    def spy(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
        writes.append(Path(filename))
        return real_save(tensors, filename, *args, **kwargs)

    def failing(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
        writes.append(Path(filename))
        whole = st.save(tensors)
        with open(filename, "wb") as f:
            f.write(whole[: len(whole) // 2])
        raise _SimulatedFailure(28, "No space left on device (simulated by the check, half-way through the write)")

    with tempfile.TemporaryDirectory(prefix="course-check-") as tmp:
        folder = Path(tmp) / "run"
        folder.mkdir()
        bystander = folder / "notes.txt"
        bystander.write_text("another file in the folder: leave it alone")
        path = folder / "weights.safetensors"
        for case, tensors, where in [("a first save (path is a pathlib.Path)", first, path),
                                     ("saving over an existing file (path is a str)", second, str(path))]:
            writes.clear()
            with _patched_save_file(fn, spy):
                call_answer(title, fn, case, {k: v.clone() for k, v in tensors.items()}, where, signature=signature)
            if not writes:
                raise ExerciseFailed(title, f"on case {case}, safetensors.torch.save_file was not called.",
                                     "write the temporary file with safetensors.torch.save_file(tensors, tmp_path).")
            if any(w.resolve() == path.resolve() for w in writes):
                raise ExerciseFailed(
                    title, f"on case {case}, save_file wrote straight to path.",
                    "a crash half-way through would leave a broken file there: write to a temporary file in the same "
                    "folder, then os.replace(tmp_path, path).",
                )
            elsewhere = [w for w in writes if w.resolve().parent != folder.resolve()]
            if elsewhere:
                raise ExerciseFailed(
                    title, f"on case {case}, the temporary file {elsewhere[0]} is not in path's folder.",
                    "create it next to path (tempfile.mkstemp(dir=folder) or path + '.tmp'): os.replace is only "
                    "atomic within one file system, and /tmp is often another one.",
                )
            if not path.is_file():
                raise ExerciseFailed(title, f"on case {case}, there is no file at path afterwards.",
                                     "after writing the temporary file, move it into place: os.replace(tmp_path, path).")
            try:
                loaded = st.load_file(str(path))
            except Exception as err:
                raise ExerciseFailed(title, f"on case {case}, path does not hold a readable safetensors file ({err}).",
                                     "write it with safetensors.torch.save_file, then os.replace it onto path.") from err
            same = loaded.keys() == tensors.keys() and all(
                loaded[k].dtype == v.dtype and torch.equal(loaded[k], v) for k, v in tensors.items())
            if not same:
                raise ExerciseFailed(title, f"on case {case}, the file at path does not hold the tensors given.",
                                     "save the dict you are given, unchanged.")
            left = sorted(_files(folder) - {path.name, bystander.name})
            if left:
                raise ExerciseFailed(title, f"on case {case}, left behind in the folder: {left}.",
                                     "os.replace moves the temporary file onto path (do not copy it), and nothing "
                                     "else should be created.")

        for case, existed in [("a save over an existing file that fails half-way", True),
                              ("a first save that fails half-way", False)]:
            if not existed:
                path.unlink()
            before = path.read_bytes() if existed else None
            writes.clear()
            raised: BaseException | None = None
            with _patched_save_file(fn, failing):
                try:
                    fn({k: v.clone() for k, v in third.items()}, path)
                except Exception as err:  # noqa: BLE001 - the learner may wrap the save's error in any other
                    raised = err
            if not writes:
                raise ExerciseFailed(title, f"on case {case}, safetensors.torch.save_file was not called.",
                                     "write the temporary file with safetensors.torch.save_file(tensors, tmp_path).")
            if existed and (not path.is_file() or path.read_bytes() != before):
                raise ExerciseFailed(
                    title, f"on case {case}: the previous file at path was " +
                    ("deleted." if not path.is_file() else "replaced by a broken one."),
                    "path may only change through os.replace(tmp_path, path), after the temporary file is complete.",
                )
            if not existed and path.exists():
                raise ExerciseFailed(title, f"on case {case}: a broken file was left at path.",
                                     "only os.replace a temporary file onto path once save_file has returned.")
            left = sorted(_files(folder) - {path.name, bystander.name})
            if left:
                raise ExerciseFailed(
                    title, f"on case {case}, the half-written temporary file is still there: {left}.",
                    "when saving fails, remove it (try: ... except BaseException: os.remove(tmp_path); raise), "
                    "then let the error go on.",
                )
            chain, err = [], raised
            while err is not None and len(chain) < 10:
                chain.append(err)
                err = err.__cause__ or err.__context__
            if raised is None:
                raise ExerciseFailed(
                    title, f"on case {case}, your function returned normally although the save failed.",
                    "after cleaning up, re-raise the error (a bare `raise` in the except block): the caller must know "
                    "that nothing was saved.",
                )
            if not any(isinstance(e, _SimulatedFailure) for e in chain):
                raise ExerciseFailed(
                    title, f"on case {case}, the caller got {type(raised).__name__}: {raised}, not the save's error.",
                    "clean up, then re-raise the original error with a bare `raise`.",
                )
        if bystander.read_text() != "another file in the folder: leave it alone":
            raise ExerciseFailed(title, "another file in path's folder was changed.", "touch only path and your temp file.")
    print_passed(title, "a first save and an overwrite load back equal, no temporary file left; a save that fails half-way "
                   "leaves the old file (or none) and no temporary file, and raises")


def _epoch_starts_result(title: str, fn: Callable[..., Any], n_frames: Any, x_res: int, seed: int,
                         epoch: int) -> np.ndarray:
    """The learner's starts for one call, checked for shape, whole numbers and range."""
    __tracebackhide__ = True
    case = f"n_frames={preview(n_frames.numpy(), 8)} ({n_frames.numel()} clips), x_res={x_res}, seed={seed}, epoch={epoch}"
    given = n_frames.clone()
    got = call_answer_with_hint(
        title, fn, case, given, x_res, seed, epoch, signature="fn(n_frames, x_res, seed, epoch) -> starts",
        hint=("a clip of exactly x_res frames has one start, 0; torch.randint(low, high) needs high > low and its "
              "high is exclusive, so clip i's starts are torch.randint(0, n_frames[i] - x_res + 1, ...)."),
    )
    require_unchanged(title, case, (n_frames,), (given,), ("n_frames",))
    starts = to_numpy(title, got, f"your result on case {case}")
    if starts.shape != (n_frames.numel(),):
        raise ExerciseFailed(title, f"on case {case}, expected {n_frames.numel()} starts (one per clip) of shape "
                                    f"({n_frames.numel()},), got shape {starts.shape}.", "return one start per clip.")
    if not np.array_equal(starts, np.round(starts)):
        raise ExerciseFailed(title, f"on case {case}, the starts are not whole numbers: {preview(starts)}.",
                             "starts are frame numbers: draw integers (torch.randint) or convert with .long().")
    last = n_frames.numpy() - x_res
    bad = np.nonzero((starts < 0) | (starts > last))[0]
    if bad.size:
        i = int(bad[0])
        raise ExerciseFailed(
            title, f"on case {case}, clip {i} has {int(n_frames[i])} frames, so its start must be in 0..{int(last[i])}, "
                   f"got {int(starts[i])}.",
            "a slice of x_res frames starting at s ends at s + x_res, so s can be at most n_frames - x_res.",
        )
    return starts.astype(np.int64)


def check_epoch_starts(fn: Callable[[Any, int, int, int], Any]) -> None:
    """Check ``fn(n_frames, x_res, seed, epoch) -> starts``: one random start frame per clip per epoch.

    ``n_frames`` is an int64 tensor of clip lengths in frames (each ≥ ``x_res``). Start ``i`` must lie in
    ``0 .. n_frames[i] - x_res`` (a clip exactly ``x_res`` long -> 0), and come from a generator seeded by
    ``(seed, epoch)``: the same arguments give the same starts whatever the global RNG does, another
    epoch or seed gives other starts, clips get their own draws, and over many epochs every start
    occurs, each about equally often.
    """
    __tracebackhide__ = True
    import torch

    title = "A random slice per clip per epoch"
    need_callable(fn, "fn", "check_epoch_starts(epoch_starts)")
    gen = torch.Generator().manual_seed(34)
    mixed = torch.tensor([100, 64, 65, 300, 80, 64])
    many = torch.randint(64, 2000, (50,), generator=gen)
    wide = torch.randint(256, 1300, (8,), generator=gen)
    for n_frames, x_res, seed, epoch in [(mixed, 64, 0, 0), (many, 64, 3, 7), (wide, 256, 1, 2),
                                         (torch.tensor([64]), 64, 0, 5)]:
        _epoch_starts_result(title, fn, n_frames, x_res, seed, epoch)

    reference = _epoch_starts_result(title, fn, many, 64, 3, 7)
    with torch.random.fork_rng(devices=[]):
        state = np.random.get_state()
        try:
            torch.manual_seed(12345)
            np.random.seed(12345)
            _epoch_starts_result(title, fn, many, 64, 3, 8)
            global_state = torch.random.get_rng_state()
            again = _epoch_starts_result(title, fn, many, 64, 3, 7)
            touched_global = not torch.equal(global_state, torch.random.get_rng_state())
        finally:
            np.random.set_state(state)
    if not np.array_equal(again, reference):
        raise ExerciseFailed(
            title, "two calls with the same (seed=3, epoch=7) gave different starts.",
            "make a generator from (seed, epoch) inside the function, e.g. torch.Generator().manual_seed(...), and draw "
            "only from it: the global RNG changes between calls, and a resumed run must see the same slices.",
        )
    if touched_global:
        raise ExerciseFailed(
            title, "your function changed torch's global random state.",
            "draw from your own torch.Generator().manual_seed(...): torch.manual_seed would reset the global RNG that "
            "the rest of training (dropout, initialisation) draws from.",
        )
    epochs = [_epoch_starts_result(title, fn, many, 64, 3, e) for e in range(6)]
    if any(np.array_equal(epochs[e], epochs[e + 1]) for e in range(len(epochs) - 1)):
        raise ExerciseFailed(title, "two epochs in a row gave the same starts for 50 clips.",
                             "the epoch must enter the generator's seed, or every epoch shows the same slices.")
    if np.array_equal(_epoch_starts_result(title, fn, many, 64, 4, 7), reference):
        raise ExerciseFailed(title, "seed=3 and seed=4 gave the same starts for epoch 7.",
                             "the seed must enter the generator's seed too.")
    equal = _epoch_starts_result(title, fn, torch.full((20,), 500), 64, 0, 0)
    if np.all(equal == equal[0]):
        raise ExerciseFailed(title, "20 clips of the same length all got the same start.",
                             "draw one start per clip, not one for the whole epoch.")

    short = torch.tensor([68, 65, 64])
    n_epochs = 1000
    seen = np.stack([_epoch_starts_result(title, fn, short, 64, 0, e) for e in range(n_epochs)])
    for i, frames in enumerate(short.tolist()):
        counts = np.bincount(seen[:, i], minlength=frames - 64 + 1)
        expected = n_epochs / counts.size
        never = [s for s, c in enumerate(counts) if c == 0]
        if never:
            hint = "every start from 0 to n_frames - x_res must be possible."
            if never == [counts.size - 1]:
                hint = ("the last start, n_frames - x_res, never occurs: torch.randint's high is exclusive (use "
                        "n_frames - x_res + 1), and int(rand * (n_frames - x_res)) never reaches it either.")
            raise ExerciseFailed(title, f"over {n_epochs} epochs, a clip of {frames} frames (x_res=64) never started "
                                        f"at frame(s) {never}.", hint)
        if counts.min() < 0.75 * expected:
            raise ExerciseFailed(
                title, f"over {n_epochs} epochs, a clip of {frames} frames started at 0..{counts.size - 1} this often: "
                       f"{counts.tolist()}; each should be about {expected:.0f}.",
                "every start should be equally likely: torch.randint(0, n - x_res + 1), or floor(rand * (n - x_res + "
                "1)); rounding makes the two ends half as likely.",
            )
    print_passed(title, f"4 cases in range (a clip exactly x_res long starts at 0); repeatable; epochs and seeds differ; "
                   f"every start occurs over {n_epochs} epochs")


# ----------------------------------------------------------------------------- 5. EMA memory

# (decay, fraction) cases: the lesson's two settings first, then a window, a half-life and a slow decay.
_EMA_CASES = [(0.9, 0.01), (0.99, 0.01), (0.99, math.exp(-1.0)), (0.999, 0.5), (0.95, 0.05), (0.998, 0.1)]


def _measured_steps_to_forget(decay: float, fraction: float, max_steps: int = 1_000_000) -> int:
    """How many EMA updates until the starting weights' share of the average is at most ``fraction``.

    Measured, not computed: a one-weight EMA starts at 1 (the base model's weight) and is updated with
    :func:`course_lib.training.update_ema` towards a model whose weight is 0, until it is ``<= fraction``.
    Its value after ``n`` updates is exactly the share of the starting weights left in the average.
    """
    import torch

    from course_lib.training import update_ema
    from course_lib.validate import CourseInputError, check_number

    check_number(decay, "decay", 0, 1, high_open=True)
    check_number(fraction, "fraction", 0, 1, low_open=True, high_open=True)
    model = torch.nn.Linear(1, 1, bias=False).double().requires_grad_(False)
    ema = torch.nn.Linear(1, 1, bias=False).double().requires_grad_(False)
    model.weight.fill_(0.0)
    ema.weight.fill_(1.0)
    steps = 0
    while float(ema.weight) > fraction:
        if steps >= max_steps:
            raise CourseInputError(f"decay={decay}, fraction={fraction}: more than {max_steps} updates; "
                                   "choose a decay further from 1 or a larger fraction.")
        update_ema(ema, model, decay)
        steps += 1
    return steps


def _ema_prediction(title: str, fn: Callable[[float, float], Any], decay: float, fraction: float) -> float:
    """The learner's predicted number of steps for one case, as a finite number."""
    __tracebackhide__ = True
    case = f"decay={decay:g}, fraction={fraction:.4g}"
    got = call_answer_with_hint(
        title, fn, case, decay, fraction, signature="steps_to_forget(decay, fraction) -> number of steps",
        hint="work with plain Python floats: math.log (or np.log) of decay and of fraction.",
    )
    value = to_numpy(title, got, f"your prediction for {case}")
    if value.size != 1:
        raise ExerciseFailed(title, f"for {case}, expected one number of steps, got shape {value.shape}.",
                             "return a single number.")
    value = float(value.reshape(()))
    if not math.isfinite(value):
        raise ExerciseFailed(title, f"for {case}, your prediction is {value}.",
                             "ln(decay) is negative and never 0 for a decay below 1: check what you divide by.")
    return value


def _ema_hint(decay: float, fraction: float, got: float, want: int) -> str:
    """The hint for a wrong prediction: the usual wrong formulas first, then a push in the right direction."""
    window = 1.0 / (1.0 - decay)
    near = lambda x: math.isclose(got, x, rel_tol=0.02, abs_tol=0.5)  # noqa: E731
    if near(window):
        return (f"{window:.0f} steps is the window 1/(1 - decay): after it, a weight's share has fallen to about "
                f"1/e ≈ 37%, whatever fraction you were asked about. How many windows until it is {fraction:.3g}?")
    if got < 0 or near(-want):
        return "a number of steps is positive: ln(decay) and ln(fraction) are both negative."
    if near(-math.log10(fraction) * window) or near(-math.log2(fraction) * window):
        return ("the approximation ln(decay) ≈ -(1 - decay) holds for the natural logarithm only: use math.log, "
                "or the same base on top and bottom of a ratio of logarithms.")
    if near(math.log(1.0 - fraction) / math.log(decay)):
        return (f"that is when the share has fallen BY {fraction:.3g} (to {1 - fraction:.3g}); the question is when it "
                f"has fallen TO {fraction:.3g}.")
    return ("unroll the update: the starting weights' share is 1 before any update, decay after one, decay * decay "
            "after two... Which n first brings it to the fraction or below?")


def check_ema_memory(steps_to_forget: Callable[[float, float], Any]) -> None:
    """Check a prediction ``steps_to_forget(decay, fraction)`` against the EMA's measured memory.

    The EMA of training (``ema = decay * ema + (1 - decay) * weights``, :func:`course_lib.training.update_ema`)
    starts as a copy of the base model. The learner predicts after how many updates the base model's
    share of the average has fallen to ``fraction`` or below; the check measures it for six cases
    (running ``update_ema`` on a one-weight model) and accepts predictions within a step or 6 % (so the
    approximation ``ln(1 / fraction) / (1 - decay)``, close for decays near 1, passes too).
    """
    __tracebackhide__ = True
    title = "How long the EMA remembers"
    need_callable(steps_to_forget, "steps_to_forget", "check_ema_memory(steps_to_forget)")
    rows = []
    for decay, fraction in _EMA_CASES:
        got = _ema_prediction(title, steps_to_forget, decay, fraction)
        want = _measured_steps_to_forget(decay, fraction)
        if abs(got - want) > max(1.0, 0.06 * want):
            raise ExerciseFailed(
                title, f"for decay={decay:g}, fraction={fraction:.4g} you predicted {got:.4g} steps; running the EMA "
                       f"took {want} updates to bring the base model's share to {fraction:.4g} or below.",
                _ema_hint(decay, fraction, got, want),
            )
        rows.append(f"{decay:g} -> {fraction:.3g}: {want}")
    print_passed(title, "predictions match the measured EMA (decay -> fraction: updates): " + "; ".join(rows))
