"""Feedback for the course's exercises: each ``check_*`` tests a learner's answer and explains.

How an exercise works (see :mod:`course_lib.tools.exercises` for the notebook conventions):

- the learner writes a function (or computes a value) in an answer cell;
- the check cell right after it calls one of the checks, passing the learner's object:
  ``from course_lib.checks import check_denormalise`` then ``check_denormalise(denormalise)``
  (or ``from course_lib import checks`` then ``checks.check_denormalise(denormalise)``).

A check runs the learner's function on several cases and compares with a reference. Most
references are the maths written out in NumPy float64 in the check itself, independently of the
``course_lib`` code the lesson teaches. Where a library or the course defines the behaviour, the
check compares with that code: lesson 02's with diffusers' schedulers, lesson 03's loss with the
course's own ``diffusion_loss``. On success a check prints one line,
``✅ <exercise title>: passed (<short detail>)``. On failure it raises :class:`ExerciseFailed`
(an ``AssertionError``) whose message says which case failed, what was expected, what came back,
and a hint at the usual cause. A function that still raises ``NotImplementedError`` (the stub of
an exercise notebook) fails with a friendly "not answered yet" message. The grader
(:mod:`course_lib.tools.grade`) counts an exercise as passed when its check cell runs without an
error.

The package: :mod:`~course_lib.checks.harness` holds :class:`ExerciseFailed` and the machinery
the checks share (plus the generic :func:`check_close` and :func:`check_shape`); one module per
lesson holds that lesson's checks, and this module re-exports them all:

- lesson 01 (:mod:`~course_lib.checks.lesson01`): ``check_playback``, ``check_hz_to_mel``,
  ``check_denormalise``, ``check_batched_log_spectrogram``, ``check_griffin_lim``,
  ``check_stft_shape``, ``check_more_iterations`` (and ``griffin_lim_pair``, its listening test);
- lesson 02 (:mod:`~course_lib.checks.lesson02`): ``check_add_noise``, ``check_ddim_step``,
  ``check_fixed_ddim_step``, ``check_unet_calls``, ``check_slerp``, ``check_keep_known``;
- lesson 03 (:mod:`~course_lib.checks.lesson03`): ``check_model_range``, ``check_training_loss``,
  ``check_save_atomically``, ``check_epoch_starts``, ``check_ema_memory``;
- lesson 04 (:mod:`~course_lib.checks.lesson04`): ``check_audio_seconds``, ``check_decoding_steps``,
  ``check_delay_pattern``, ``check_output_samples``, ``check_guidance``, ``check_remove_padding``,
  ``check_codebook_loss``;
- lesson 05 (:mod:`~course_lib.checks.lesson05`): ``check_v_target``, ``check_denoise``,
  ``check_sampler_step``, ``check_rms_of_v``, ``check_guidance_guess`` (with ``guidance_mystery``),
  ``check_to_24bit``;
- lesson 06 (:mod:`~course_lib.checks.lesson06`): ``check_reparameterise``, ``check_kl_per_clip``,
  ``check_vae_objective``, ``check_interpolate``, ``check_elbo_kl_weight``, ``check_beta_prediction``;
- lesson 07 (:mod:`~course_lib.checks.lesson07`): ``check_noise_guidance``, ``check_unet_evaluations`` (with
  ``UNET_RUNS``), ``check_cross_attention``, ``check_latent_scale``, ``check_latent_cost`` (with ``COST_MODELS``,
  ``COST_KEYS``), ``check_ddim_inversion_step``.

Importing the package imports only NumPy (torch and diffusers are imported by the checks that
need them), so a notebook's check cells start quickly.
"""

from __future__ import annotations

import importlib as _importlib
import sys as _sys

# Reloading this package (importlib.reload) reloads its modules below too, so a notebook that redefined
# or patched a check gets the real one back. (The grader does not rely on this: it loads the checks
# afresh from its private copy for every check cell; see course_lib.tools.grade_worker.)
for _module in ("harness", "lesson01", "lesson02", "lesson03", "lesson04", "lesson05", "lesson06", "lesson07"):
    if f"{__name__}.{_module}" in _sys.modules:
        _importlib.reload(_sys.modules[f"{__name__}.{_module}"])
del _module

from course_lib.checks.harness import ExerciseFailed, check_close, check_shape  # noqa: E402
from course_lib.checks.lesson01 import (  # noqa: E402
    GRIFFIN_LIM_BOUND,
    LOG_SPEC_TOL_DB,
    check_batched_log_spectrogram,
    check_denormalise,
    check_griffin_lim,
    check_hz_to_mel,
    check_more_iterations,
    check_playback,
    check_stft_shape,
    griffin_lim_pair,
)
from course_lib.checks.lesson02 import (  # noqa: E402
    UNET_CALL_RUNS,
    check_add_noise,
    check_ddim_step,
    check_fixed_ddim_step,
    check_keep_known,
    check_slerp,
    check_unet_calls,
)
from course_lib.checks.lesson03 import (  # noqa: E402
    check_ema_memory,
    check_epoch_starts,
    check_model_range,
    check_save_atomically,
    check_training_loss,
)
from course_lib.checks.lesson04 import (  # noqa: E402
    check_audio_seconds,
    check_codebook_loss,
    check_decoding_steps,
    check_delay_pattern,
    check_guidance,
    check_output_samples,
    check_remove_padding,
)
from course_lib.checks.lesson05 import (  # noqa: E402
    check_denoise,
    check_guidance_guess,
    check_rms_of_v,
    check_sampler_step,
    check_to_24bit,
    check_v_target,
    guidance_mystery,
)
from course_lib.checks.lesson06 import (  # noqa: E402
    check_beta_prediction,
    check_elbo_kl_weight,
    check_interpolate,
    check_kl_per_clip,
    check_reparameterise,
    check_vae_objective,
)
from course_lib.checks.lesson07 import (  # noqa: E402
    COST_KEYS,
    COST_MODELS,
    UNET_RUNS,
    check_cross_attention,
    check_ddim_inversion_step,
    check_latent_cost,
    check_latent_scale,
    check_noise_guidance,
    check_unet_evaluations,
)

__all__ = [
    "ExerciseFailed",
    # lesson 01
    "check_playback",
    "check_hz_to_mel",
    "check_denormalise",
    "check_batched_log_spectrogram",
    "check_griffin_lim",
    "check_stft_shape",
    "check_more_iterations",
    "griffin_lim_pair",
    "GRIFFIN_LIM_BOUND",
    "LOG_SPEC_TOL_DB",
    # lesson 02
    "check_add_noise",
    "check_ddim_step",
    "check_fixed_ddim_step",
    "check_unet_calls",
    "UNET_CALL_RUNS",
    "check_slerp",
    "check_keep_known",
    # lesson 03
    "check_model_range",
    "check_training_loss",
    "check_save_atomically",
    "check_epoch_starts",
    "check_ema_memory",
    # lesson 04
    "check_audio_seconds",
    "check_decoding_steps",
    "check_delay_pattern",
    "check_output_samples",
    "check_guidance",
    "check_remove_padding",
    "check_codebook_loss",
    # lesson 05
    "check_v_target",
    "check_denoise",
    "check_sampler_step",
    "check_rms_of_v",
    "guidance_mystery",
    "check_guidance_guess",
    "check_to_24bit",
    # lesson 06
    "check_reparameterise",
    "check_kl_per_clip",
    "check_vae_objective",
    "check_interpolate",
    "check_elbo_kl_weight",
    "check_beta_prediction",
    # lesson 07
    "check_noise_guidance",
    "UNET_RUNS",
    "check_unet_evaluations",
    "check_cross_attention",
    "check_latent_scale",
    "COST_MODELS",
    "COST_KEYS",
    "check_latent_cost",
    "check_ddim_inversion_step",
    # any lesson
    "check_close",
    "check_shape",
]
