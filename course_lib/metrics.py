"""Numbers that say how close a reconstruction is to its reference.

- :func:`spectral_convergence`: relative Frobenius error of a magnitude spectrogram.
- :func:`spectral_convergence_best_gain`: the same after the best overall gain, for spectrograms
  that lost their absolute level (spectrogram images store dB relative to their maximum).
- :func:`log_spectral_distance`: the RMS difference in dB, averaged over frames.
- :func:`frechet_distance`: the Fréchet distance between two sets of embeddings, each summarised
  by its mean and covariance (the FID / FAD formula).
- :func:`frechet_audio_distance`: the same on a judge's embeddings of two sets of clips, a "does this sound
  like the real thing" number. The judge must know the audio: the course's classifiers
  (:mod:`course_lib.models.classifier`) for course-made sound, CLAP (:mod:`course_lib.models.clap`) for real music.

The first three take magnitude spectrograms shaped (F, T) or batched (..., F, T) as NumPy or torch, and
return a float for one spectrogram or a tensor of one value per item for a batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from course_lib.validate import CourseInputError, as_float_tensor

__all__ = [
    "spectral_convergence",
    "spectral_convergence_best_gain",
    "log_spectral_distance",
    "frechet_distance",
    "frechet_audio_distance",
]


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

    Taught in lesson 01 (notebooks/01_spectrogram_basics.ipynb).
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

    Taught in lesson 03 (notebooks/03_fine_tuning.ipynb).
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


# ----------------------------------------------------------------------------- Fréchet distance


def _embeddings(x: Any, name: str) -> np.ndarray:
    """Check a set of embeddings (N, D) and return it as float64 NumPy."""
    t = as_float_tensor(x, name, min_ndim=2, max_ndim=2)
    if t.shape[0] < 2:
        raise CourseInputError(
            f"{name}: has {t.shape[0]} row(s); a covariance needs at least 2 embeddings (rows), and a "
            "useful Fréchet distance many more (tens to hundreds). Pass an (N, D) array with N ≥ 2."
        )
    # as_float_tensor made float32; re-read float64 inputs at full precision.
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        return np.asarray(x)
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        return x.detach().cpu().numpy()
    return t.detach().cpu().numpy().astype(np.float64)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition (negative rounding clipped)."""
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(emb_a: Any, emb_b: Any) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings (N_a, D) and (N_b, D).

    ``|mu_a - mu_b|² + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^½)`` with sample means and (N - 1)
    covariances, in float64. The cross term uses ``tr((C_a C_b)^½) = tr((A C_b A)^½)`` with
    ``A = C_a^½``: ``A C_b A`` is symmetric positive semi-definite, so its square root comes from
    an eigendecomposition with tiny negative eigenvalues (rounding) clipped to 0. That is exact
    for singular covariances (N ≤ D) where ``scipy.linalg.sqrtm`` of ``C_a C_b`` can return
    complex noise. 0 means the same mean and covariance; the value is symmetric, never negative,
    and in squared embedding units (compare only numbers from the same embedding).
    """
    a = _embeddings(emb_a, "emb_a")
    b = _embeddings(emb_b, "emb_b")
    if a.shape[1] != b.shape[1]:
        raise CourseInputError(
            f"emb_a has {a.shape[1]} dimensions per row but emb_b has {b.shape[1]}; embed both sets with "
            "the same model (shapes (N_a, D) and (N_b, D))."
        )
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    w = np.linalg.eigvalsh((middle + middle.T) / 2)
    cross = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    value = float(np.square(mu_a - mu_b).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross)
    return max(value, 0.0)


def frechet_audio_distance(audio_a: Any, audio_b: Any, classifier: Any = None, sample_rate: int = 22050) -> float:
    """Fréchet distance between two sets of clips, on embeddings of the course's style classifier.

    ``audio_a`` (N_a, T_a) and ``audio_b`` (N_b, T_b) are mono clips at ``sample_rate`` (the
    classifier's rate, 22 050 Hz; clips within a set share a length, the two sets need not).
    ``classifier`` is any judge with ``embed(audio, sample_rate=...) -> (N, D)``: by default the
    shipped :func:`course_lib.models.classifier.load_style_classifier` (course-made music); for real music
    :func:`course_lib.models.clap.load_clap_judge`. Lower means the two sets sound
    more alike; real course music against real course music of the same styles scores far below
    real music against noise.

    Taught in lesson 02 (notebooks/02_audio_diffusion_pipeline.ipynb).
    """
    from course_lib.validate import check_sample_rate

    rate = check_sample_rate(sample_rate)
    xa = as_float_tensor(audio_a, "audio_a", min_ndim=2, max_ndim=2)
    xb = as_float_tensor(audio_b, "audio_b", min_ndim=2, max_ndim=2)
    for name, x in (("audio_a", xa), ("audio_b", xb)):
        if x.shape[0] < 2:
            raise CourseInputError(
                f"{name}: has {x.shape[0]} clip(s); pass a batch (N, T) of at least 2 clips (tens are better)."
            )
    if classifier is None:
        from course_lib.models.classifier import load_style_classifier

        classifier = load_style_classifier()
    if not callable(getattr(classifier, "embed", None)):
        raise CourseInputError(
            f"classifier: expected a model with an embed(audio, sample_rate=...) method such as "
            f"course_lib.models.classifier.load_style_classifier(), got {type(classifier).__name__}."
        )
    emb_a = classifier.embed(xa, sample_rate=rate)
    emb_b = classifier.embed(xb, sample_rate=rate)
    return frechet_distance(emb_a, emb_b)
