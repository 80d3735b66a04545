"""Numbers that say how close a reconstruction is to its reference.

- :func:`spectral_convergence`: relative Frobenius error of a magnitude spectrogram.
- :func:`spectral_convergence_best_gain`: the same after the best overall gain, for spectrograms
  that lost their absolute level (spectrogram images store dB relative to their maximum).
- :func:`log_spectral_distance`: the RMS difference in dB, averaged over frames.

All take magnitude spectrograms shaped (F, T) or batched (..., F, T) as NumPy or torch, and
return a float for one spectrogram or a tensor of one value per item for a batch.
"""

from __future__ import annotations

from typing import Any

import torch

from course_lib.validate import CourseInputError, as_float_tensor

__all__ = ["spectral_convergence", "spectral_convergence_best_gain", "log_spectral_distance"]


def _pair(reference_mag: Any, estimate_mag: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two magnitude spectrograms and return them as float32 tensors on one device."""
    ref = as_float_tensor(reference_mag, "reference_mag", min_ndim=2)
    est = as_float_tensor(estimate_mag, "estimate_mag", min_ndim=2)
    if ref.shape != est.shape:
        raise CourseInputError(
            f"reference_mag has shape {tuple(ref.shape)} but estimate_mag has shape {tuple(est.shape)}; "
            "they must match. Compute both with the same n_fft/hop_length and trim the audio to the same "
            "length first."
        )
    if ref.device != est.device:
        est = est.to(ref.device)
    if bool((ref < 0).any()) or bool((est < 0).any()):
        raise CourseInputError(
            "reference_mag / estimate_mag: magnitudes must be ≥ 0; pass |STFT| (e.g. spectrogram.magnitude(...)), "
            "not dB values or raw audio."
        )
    return ref, est


def _result(values: torch.Tensor) -> float | torch.Tensor:
    """A float for a single spectrogram, else the per-item tensor."""
    return float(values) if values.ndim == 0 else values


def _sum_sq(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64).square().sum(dim=(-2, -1))


def _check_reference_energy(energy: torch.Tensor) -> None:
    if bool((energy <= 0).any()):
        raise CourseInputError(
            "reference_mag: at least one reference spectrogram is all zeros (silence), so a relative error "
            "is undefined; drop silent items or compare with a level-independent measure."
        )


def spectral_convergence(reference_mag: Any, estimate_mag: Any) -> float | torch.Tensor:
    """``||ref - est||_F / ||ref||_F`` per spectrogram (over the last two axes).

    0 means identical magnitudes; a random-phase reconstruction of music typically scores
    around 0.5 to 0.9. Lower is better.
    """
    ref, est = _pair(reference_mag, estimate_mag)
    energy = _sum_sq(ref)
    _check_reference_energy(energy)
    return _result((_sum_sq(ref - est) / energy).sqrt().to(torch.float32))


def spectral_convergence_best_gain(reference_mag: Any, estimate_mag: Any) -> float | torch.Tensor:
    """Spectral convergence after scaling each estimate by its least-squares optimal gain.

    The gain ``g = <ref, est> / <est, est>`` minimises ``||ref - g est||_F``; use this when the
    estimate's overall level is arbitrary (audio rebuilt from a spectrogram image). An
    all-zero estimate gets gain 0 and scores 1.
    """
    ref, est = _pair(reference_mag, estimate_mag)
    energy = _sum_sq(ref)
    _check_reference_energy(energy)
    ref64, est64 = ref.to(torch.float64), est.to(torch.float64)
    cross = (ref64 * est64).sum(dim=(-2, -1))
    est_energy = est64.square().sum(dim=(-2, -1))
    gain = torch.where(est_energy > 0, cross / est_energy.clamp_min(1e-300), torch.zeros_like(cross))
    error = (ref64 - gain[..., None, None] * est64).square().sum(dim=(-2, -1))
    return _result((error / energy).sqrt().to(torch.float32))


def log_spectral_distance(reference_mag: Any, estimate_mag: Any, amin: float = 1e-5) -> float | torch.Tensor:
    """Log-spectral distance in dB: per frame ``sqrt(mean_f (20 log10(ref / est))²)``, averaged over frames.

    Magnitudes are floored at ``amin`` (default 1e-5, i.e. -100 dB) so silent bins do not
    dominate. 0 means identical; lower is better.
    """
    ref, est = _pair(reference_mag, estimate_mag)
    if isinstance(amin, bool) or not isinstance(amin, (int, float)) or not amin > 0:
        raise CourseInputError(f"amin: expected a positive number such as 1e-5, got {amin!r}.")
    diff_db = 20.0 * (torch.log10(ref.clamp_min(amin)) - torch.log10(est.clamp_min(amin)))
    per_frame = diff_db.to(torch.float64).square().mean(dim=-2).sqrt()
    return _result(per_frame.mean(dim=-1).to(torch.float32))
