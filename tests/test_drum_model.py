"""The shipped lesson-05 drum model (checkpoints/drum-diffusion) is small and safe, and makes drums,
measured: the course's drum classifier labels at least 90 % of generated hits with the class they
were generated for (the model card: 200 hits, 50 steps), and the Fréchet distance of generated to
held-out real hits is far below an untrained network's. The issue's second target, a Fréchet
distance within 3x of real-vs-real, is NOT met yet (the model card measures 16x); the card says so,
and the test pins the recorded ratio so that a retrained model's number is checked, not assumed."""

import json
from pathlib import Path

import pytest
import torch

from course_lib import drums
from course_lib.models.classifier import load_drum_classifier
from course_lib.models.unet1d import CONFIGS, UNet1D

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "checkpoints" / "drum-diffusion"

# A cheaper sampler than the card's (10 steps, no guidance: one pass per step, 40 hits) so the test
# stays near a minute on 2 cores. Different sampling noise (seed 5) and real sets (seed 9) than the card's.
STEPS = 10
GUIDANCE = 1.0
N_PER_CLASS = 10
SEED = 5
REAL_SEED = 9  # drum model trained on seed 0, the classifier on 1 and 2, the card used 3


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield drums.load_drum_model()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def evidence(model):
    return drums.evaluate_drum_model(model, load_drum_classifier(), n_per_class=N_PER_CLASS, steps=STEPS,
                                     guidance_scale=GUIDANCE, seed=SEED, real_seed=REAL_SEED, progress=False)


def test_shipped_model_is_small_safe_and_documented():
    files = [p for p in MODEL.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 10 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".pkl", ".pt", ".pth", ".ckpt", ".pickle")]
    for name in ("config.json", "model.safetensors", "README.md", "metrics.json", "losses.json", "loss_curve.png"):
        assert (MODEL / name).is_file(), name
    metrics = json.loads((MODEL / "metrics.json").read_text())
    assert metrics["eval_samples"] == 200
    assert metrics["class_accuracy"] >= 0.9
    assert metrics["fd_ratio"] == pytest.approx(metrics["fd_generated"] / metrics["fd_real_halves"], rel=0.02)
    losses = json.loads((MODEL / "losses.json").read_text())
    assert len(losses) == metrics["train_steps"]
    first, last = sum(losses[:100]) / 100, sum(losses[-100:]) / 100
    assert last < 0.5 * first  # the curve the card shows went down


def test_shipped_model_is_the_laptop_configuration(model):
    laptop = CONFIGS["laptop"]
    assert model.config.to_dict() == laptop.to_dict()
    assert model.num_parameters() == UNet1D(laptop).num_parameters()
    assert list(model.config.class_names) == ["kick", "snare", "hihat", "percussion"]


def test_generated_hits_are_labelled_as_their_class(evidence):
    assert evidence["eval_samples"] == 4 * N_PER_CLASS
    assert evidence["real_accuracy"] >= 0.97
    assert evidence["class_accuracy"] >= 0.90, evidence
    for name, acc in evidence["class_accuracy_per_class"].items():
        assert acc >= 0.7, (name, evidence)


@pytest.fixture(scope="module")
def untrained_evidence():
    untrained = UNet1D(CONFIGS["laptop"], seed=0)
    return drums.evaluate_drum_model(untrained, load_drum_classifier(), n_per_class=N_PER_CLASS, steps=STEPS,
                                     guidance_scale=GUIDANCE, seed=SEED, real_seed=REAL_SEED, progress=False)


def test_generated_hits_are_far_closer_to_real_ones_than_an_untrained_networks(evidence, untrained_evidence):
    assert evidence["fd_real_halves"] == untrained_evidence["fd_real_halves"] > 0  # the same real sets
    assert evidence["fd_generated"] < untrained_evidence["fd_generated"] / 10, (evidence, untrained_evidence)
    assert untrained_evidence["class_accuracy"] < 0.6  # noise is not labelled as the asked-for class
