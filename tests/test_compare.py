"""course_lib.compare: one measuring protocol for every generator (FD, speed, size, classes heard)."""

import json
import math

import numpy as np
import pytest
import torch

from course_lib import synth
from course_lib.models.classifier import load_digit_classifier
from course_lib.compare import (
    GeneratorReport,
    comparison_table,
    diffusion_generator,
    measure_generator,
    vae_generator,
)
from course_lib.validate import CourseInputError
from course_lib.models.vae import LAPTOP, SpectrogramVAE


@pytest.fixture(scope="module")
def judge():
    return load_digit_classifier()


@pytest.fixture(scope="module")
def real():
    return synth.digit_dataset(3, seed=1000)[0]      # 30 held-out clips


@pytest.fixture(scope="module")
def other_real():
    return torch.from_numpy(synth.digit_dataset(3, seed=4000)[0])


def test_real_clips_score_near_the_floor_and_noise_scores_far(judge, real, other_real):
    def replay(n, gen):      # a "generator" that returns unseen real clips
        start = int(torch.randint(0, 30 - n + 1, (1,), generator=gen))
        return other_real[start:start + n]

    def hiss(n, gen):
        return 0.1 * torch.randn((n, real.shape[1]), generator=gen)

    good, clips = measure_generator("replay", replay, 20, real, judge, batch_size=10, progress=False)
    bad, _ = measure_generator("hiss", hiss, 20, real, judge, batch_size=10, progress=False)
    assert clips.shape == (20, real.shape[1])
    assert good.fd * 10 < bad.fd, (good.fd, bad.fd)
    assert sum(good.class_counts.values()) == 20 and len(good.class_counts) == 10
    assert sum(1 for v in good.class_counts.values() if v) >= 5      # replayed real words: many classes heard
    assert good.clips_per_second > 0 and math.isclose(good.clips_per_second, 20 / good.seconds, rel_tol=1e-2)


def test_measuring_is_seeded(judge, real):
    def hiss(n, gen):
        return 0.1 * torch.randn((n, real.shape[1]), generator=gen)

    a, clips_a = measure_generator("hiss", hiss, 6, real, judge, batch_size=4, seed=3, progress=False)
    b, clips_b = measure_generator("hiss", hiss, 6, real, judge, batch_size=4, seed=3, progress=False)
    assert torch.equal(clips_a, clips_b) and a.fd == b.fd and a.class_counts == b.class_counts


def test_vae_generator_makes_clips_of_the_vae_length_and_counts_parameters(judge, real):
    vae = SpectrogramVAE(LAPTOP).eval()
    gen = vae_generator(vae, [-60.0, -50.0, -40.0], [20.0, 30.0, 40.0], n_iter=4)
    out = gen(3, torch.Generator().manual_seed(0))
    assert out.shape == (3, LAPTOP.num_samples) and torch.isfinite(out).all()
    report, _ = measure_generator("untrained VAE", gen, 4, real, judge, batch_size=2, progress=False)
    assert report.parameters == 2_067_777


def test_diffusion_generator_cuts_to_length(tmp_path):
    from diffusers import DDIMScheduler, UNet2DModel

    from course_lib.diffusion import SpectrogramDiffusionPipeline
    from course_lib.mel import Mel

    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(8, 8), norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    pipe = SpectrogramDiffusionPipeline(unet, DDIMScheduler(num_train_timesteps=100),
                                        Mel(x_res=16, y_res=16, n_fft=256, hop_length=64, n_iter=2))
    gen = diffusion_generator(pipe, steps=2, length=900)
    out = gen(2, torch.Generator().manual_seed(0))
    assert out.shape == (2, 900)
    assert gen.parameters == sum(p.numel() for p in unet.parameters())
    # a pipeline saved with its training scheduler (DDPM) samples with DDIM, and is itself left alone
    from diffusers import DDPMScheduler

    ddpm_pipe = SpectrogramDiffusionPipeline(unet, DDPMScheduler(num_train_timesteps=100), pipe.mel)
    a = diffusion_generator(ddpm_pipe, steps=2, length=900)(2, torch.Generator().manual_seed(0))
    assert torch.allclose(a, out) and isinstance(ddpm_pipe.scheduler, DDPMScheduler)
    with pytest.raises(CourseInputError, match="SpectrogramDiffusionPipeline"):
        diffusion_generator(unet)


def test_table_lists_every_model_and_the_floor():
    reports = [GeneratorReport("A", 1000, 10, 2.0, 5.0, 12.5, {"x": 3, "y": 0}),
               GeneratorReport("B", 2_000_000, 10, 1.0, 10.0, 3.25, {"x": 1, "y": 9})]
    table = comparison_table(reports, floor=0.5)
    assert "| A | 1,000 | 12.50 | 5.00 | 1 of 2 |" in table
    assert "| B | 2,000,000 | 3.25 | 10.00 | 2 of 2 |" in table
    assert "0.50" in table.splitlines()[-1]
    assert json.loads(json.dumps(reports[0].as_dict()))["fd"] == 12.5


def test_bad_input_is_named(judge, real):
    def ok(n, gen):
        return torch.zeros((n, real.shape[1]))

    with pytest.raises(CourseInputError, match="generate: expected a function"):
        measure_generator("x", "not a function", 4, real, judge)
    with pytest.raises(CourseInputError, match="n"):
        measure_generator("x", ok, 1, real, judge)
    with pytest.raises(CourseInputError, match="at least 2 real clips"):
        measure_generator("x", ok, 4, real[:1], judge)
    with pytest.raises(CourseInputError, match="NaN"):
        measure_generator("x", lambda n, g: torch.full((n, 4000), float("nan")), 4, real, judge, progress=False)
    with pytest.raises(CourseInputError, match="expected audio"):
        measure_generator("x", lambda n, g: torch.zeros((1, 4000)), 4, real, judge, batch_size=4, progress=False)
    with pytest.raises(CourseInputError, match="real_audio"):
        measure_generator("x", ok, 4, np.zeros(10), judge)
    with pytest.raises(CourseInputError, match="mins/maxs"):
        vae_generator(SpectrogramVAE(LAPTOP), [0.0], [0.0])
    with pytest.raises(CourseInputError, match="mins/maxs"):
        vae_generator(SpectrogramVAE(LAPTOP), [float("nan")], [1.0])
