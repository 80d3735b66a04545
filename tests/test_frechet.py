"""Fréchet distance: exact values on hand-built sets, its properties, and the audio version on course-made sound."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from course_lib.models.classifier import load_style_classifier
from course_lib.metrics import frechet_audio_distance, frechet_distance
from course_lib.mel import Mel
from course_lib.synth import MUSIC_STYLES, music_clip, noise
from course_lib.validate import CourseInputError

SR = 22050


def _with_stats(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """4 rows whose sample mean is ``mean`` and sample covariance is exactly ``diag(var)`` (N - 1 normalisation).

    The sign patterns (+-1, +-1) have zero-mean, orthogonal columns of sample variance 4/3.
    """
    signs = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float64)[:, : len(mean)]
    return mean + signs * np.sqrt(np.asarray(var) * 3.0 / 4.0)


def _reference_fd(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's general matrix square root (fine for well-conditioned covariances)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(ca @ cb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.trace(root))


def test_one_dimensional_gaussians_match_the_closed_form():
    for m1, s1, m2, s2 in [(0.0, 1.0, 0.0, 1.0), (1.0, 4.0, -2.0, 9.0), (3.0, 0.25, 3.5, 2.0)]:
        a = _with_stats(np.array([m1]), np.array([s1]))
        b = _with_stats(np.array([m2]), np.array([s2]))
        expected = (m1 - m2) ** 2 + s1 + s2 - 2 * np.sqrt(s1 * s2)
        assert frechet_distance(a, b) == pytest.approx(expected, abs=1e-10)


def test_diagonal_covariances_add_up_per_dimension():
    mean_a, var_a = np.array([1.0, -1.0]), np.array([4.0, 1.0])
    mean_b, var_b = np.array([0.0, 2.0]), np.array([1.0, 9.0])
    expected = float(((mean_a - mean_b) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum())
    assert expected == pytest.approx(1 + 9 + 1 + 4)
    got = frechet_distance(_with_stats(mean_a, var_a), _with_stats(mean_b, var_b))
    assert got == pytest.approx(expected, abs=1e-10)


def test_agrees_with_scipy_sqrtm_on_a_well_conditioned_case():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    assert frechet_distance(a, b) == pytest.approx(_reference_fd(a, b), rel=1e-8)


def test_self_distance_is_zero_and_the_distance_is_symmetric():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 16))
    b = rng.normal(size=(70, 16)) * 1.5 + 0.3
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, b) > 1.0
    # torch input and float32 give the same number
    assert frechet_distance(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(
        frechet_distance(a, b), rel=1e-4)


def test_a_pure_mean_shift_adds_its_squared_length():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(40, 8))
    values = []
    for shift in (0.0, 0.5, 1.0, 2.0):
        fd = frechet_distance(a, a + shift)
        assert fd == pytest.approx(8 * shift**2, abs=1e-8)
        values.append(fd)
    assert values == sorted(values) and values[-1] > values[1]


def test_singular_covariances_give_a_finite_non_negative_value():
    # Fewer samples than dimensions: both covariances are singular.
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(5, 32)), rng.normal(size=(6, 32))
    fd = frechet_distance(a, b)
    assert np.isfinite(fd) and fd > 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    "emb_a, emb_b, match",
    [
        (np.zeros((1, 4)), np.zeros((5, 4)), "emb_a: has 1 row"),
        (np.zeros((5, 4)), np.zeros((1, 4)), "emb_b: has 1 row"),
        (np.zeros((5, 4)), np.zeros((5, 3)), "dimensions per row"),
        (np.zeros(5), np.zeros((5, 1)), "emb_a: expected 2 dimensions"),
        (np.full((5, 2), np.nan), np.zeros((5, 2)), "NaN"),
        ("nope", np.zeros((5, 2)), "emb_a"),
    ],
)
def test_bad_embeddings_get_clear_errors(emb_a, emb_b, match):
    with pytest.raises(CourseInputError, match=match):
        frechet_distance(emb_a, emb_b)


# ----------------------------------------------------------------------------- on audio


def _music(seed0: int, per_style: int, seconds: float = 3.0) -> np.ndarray:
    return np.stack([music_clip(s, seconds, SR, seed=seed0 + i) for s in MUSIC_STYLES for i in range(per_style)])


def _mel() -> Mel:
    """A 64 x 128 spectrogram-image converter (about 3 s of audio), the size of a small course diffusion model."""
    return Mel(x_res=128, y_res=64, sample_rate=SR, n_fft=1024, hop_length=512, n_iter=16)


def _smoothed_noise_audio(n: int, seed: int) -> np.ndarray:
    """What an untrained spectrogram generator gives: smooth random images turned into audio by ``Mel``."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, 8, 16, generator=gen)
    images = torch.nn.functional.interpolate(coarse, size=(64, 128), mode="bicubic", align_corners=False)[:, 0]
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return _mel().images_to_audio(images).numpy()


@pytest.fixture(scope="module")
def clf():
    torch.set_num_threads(2)
    return load_style_classifier()


@pytest.fixture(scope="module")
def sets(clf):
    per_style = 8  # 48 clips per set, enough for a stable 96-dimensional covariance estimate
    n = per_style * len(MUSIC_STYLES)
    audio = {
        "real_a": _music(30_000, per_style),
        "real_b": _music(31_000, per_style),
        "white": np.stack([noise(3.0, SR, "white", seed=40_000 + i) for i in range(n)]),
        "pink": np.stack([noise(3.0, SR, "pink", seed=41_000 + i) for i in range(n)]),
        "smooth": _smoothed_noise_audio(n, seed=42_000),
    }
    # A perfect spectrogram generator: real images of set B turned back into audio (Griffin-Lim phase).
    mel = _mel()
    audio["roundtrip_b"] = mel.images_to_audio(mel.audio_to_images(audio["real_b"])).numpy()
    return audio, {k: clf.embed(v) for k, v in audio.items()}


def test_real_music_is_much_closer_to_real_music_than_noise_is(sets):
    _, emb = sets
    same = frechet_distance(emb["real_a"], emb["real_b"])
    for other in ("white", "pink", "smooth"):
        far = frechet_distance(emb["real_a"], emb[other])
        assert far > 5 * same, (other, far, same)


def test_spectrogram_images_of_real_music_score_far_better_than_smooth_noise_images(sets):
    # The bar the course diffusion model must clear (FD(generated, real) < FD(untrained-like, real) / 3),
    # checked here on an ideal generator whose only flaw is the image round trip.
    _, emb = sets
    ideal = frechet_distance(emb["real_a"], emb["roundtrip_b"])
    untrained = frechet_distance(emb["real_a"], emb["smooth"])
    assert ideal < untrained / 3, (ideal, untrained)


def test_frechet_audio_distance_embeds_with_the_shipped_classifier(sets, clf):
    audio, emb = sets
    fad = frechet_audio_distance(audio["real_a"][:12], audio["white"][:12])
    assert fad == pytest.approx(frechet_distance(emb["real_a"][:12], emb["white"][:12]), rel=1e-4)
    assert frechet_audio_distance(audio["real_a"][:12], audio["real_a"][:12], classifier=clf) == pytest.approx(
        0.0, abs=1e-6)


def test_frechet_audio_distance_rejects_bad_input(clf):
    clips = np.zeros((3, SR), dtype=np.float32)
    with pytest.raises(CourseInputError, match="audio_a: has 1 clip"):
        frechet_audio_distance(clips[:1], clips, classifier=clf)
    with pytest.raises(CourseInputError, match="audio_b: expected 2 dimensions"):
        frechet_audio_distance(clips, clips[0], classifier=clf)
    with pytest.raises(CourseInputError, match="44100 Hz was given where 22050"):
        frechet_audio_distance(clips, clips, classifier=clf, sample_rate=44100)
    with pytest.raises(CourseInputError, match="classifier: expected a model with an embed"):
        frechet_audio_distance(clips, clips, classifier=object())
    bad = clips.copy()
    bad[0, 5] = np.nan
    with pytest.raises(CourseInputError, match="NaN"):
        frechet_audio_distance(clips, bad, classifier=clf)
