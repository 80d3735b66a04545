"""The course-trained style classifier: the shipped checkpoint works on unseen clips; save/load; bad input."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from course_lib.hub import checkpoint_dir
from course_lib.models.classifier import (
    DEFAULT_CONFIG,
    StyleClassifier,
    load_drum_classifier,
    load_style_classifier,
    log_mel_features,
)
from course_lib.synth import DRUM_CLASSES, MUSIC_STYLES, drum_dataset, music_clip
from course_lib.validate import CourseInputError

SR = 22050
REPO = Path(__file__).resolve().parents[1]
TEST_SEED0 = 30_000  # far from the training (10 000+) and validation (20 000+) seeds


@pytest.fixture(scope="module")
def clf() -> StyleClassifier:
    torch.set_num_threads(2)
    return load_style_classifier()


@pytest.fixture(scope="module")
def fresh() -> tuple[np.ndarray, np.ndarray]:
    per_style = 6
    audio = np.stack([music_clip(s, 3.0, SR, seed=TEST_SEED0 + 500 + i)
                      for s in MUSIC_STYLES for i in range(per_style)])
    labels = np.repeat(np.arange(len(MUSIC_STYLES)), per_style)
    return audio, labels


def test_the_shipped_checkpoint_is_small_and_complete():
    folder = REPO / "checkpoints" / "style-classifier"
    assert checkpoint_dir("style-classifier") == folder
    for name in ("config.json", "model.safetensors", "README.md"):
        assert (folder / name).is_file(), name
    assert (folder / "model.safetensors").stat().st_size <= 2 * 1024 * 1024
    config = json.loads((folder / "config.json").read_text())
    assert config["classes"] == list(MUSIC_STYLES)
    _, high = config["training"]["train_seeds"]
    assert high < TEST_SEED0 and config["training"]["val_accuracy"] >= 0.9
    assert "accuracy" in (folder / "README.md").read_text().lower()


def test_it_classifies_unseen_course_music(clf, fresh):
    audio, labels = fresh
    pred = clf.predict(audio).numpy()
    accuracy = float((pred == labels).mean())
    assert accuracy >= 0.9, (accuracy, pred, labels)
    # Every style is recognised at least most of the time, not just the easy ones.
    for k in range(len(MUSIC_STYLES)):
        assert (pred[labels == k] == k).mean() >= 0.5, MUSIC_STYLES[k]


def test_the_drum_classifier_labels_unseen_real_hits():
    folder = REPO / "checkpoints" / "drum-classifier"
    assert checkpoint_dir("drum-classifier") == folder
    judge = load_drum_classifier()
    assert judge.classes == ["kick", "snare", "hihat", "percussion"] == list(DRUM_CLASSES)
    assert (judge.sample_rate, judge.config["hop_length"]) == (22050, 128) and not judge.training
    training = judge.config["training"]
    assert 4 not in (training["train_data_seed"], training["val_data_seed"])  # seed 4 was never seen
    audio, labels = drum_dataset(25, seed=4, sample_rate=22050, length=8192)  # 100 hits, 25 per class
    pred = judge.predict(audio).numpy()
    assert float((pred == labels).mean()) >= 0.97, (pred, labels)
    for k in range(len(DRUM_CLASSES)):
        assert (pred[labels == k] == k).mean() >= 0.9, DRUM_CLASSES[k]


def test_shorter_clips_work_too(clf, fresh):
    audio, labels = fresh
    pred = clf.predict(audio[:, : int(1.5 * SR)]).numpy()
    assert float((pred == labels).mean()) >= 0.75


def test_probabilities_embeddings_and_shapes(clf, fresh):
    audio, _ = fresh
    probs = clf.predict_proba(audio[:7])
    assert probs.shape == (7, len(MUSIC_STYLES))
    assert torch.allclose(probs.sum(-1), torch.ones(7), atol=1e-5)
    assert torch.equal(clf.predict(audio[:7]), probs.argmax(-1))
    emb = clf.embed(audio[:7])
    assert emb.shape == (7, clf.config["embed_dim"]) and emb.dtype == torch.float32
    assert bool((emb >= 0).all())  # after a ReLU
    # One clip on its own (1-D) embeds the same as inside a batch, and repeated calls agree.
    assert torch.allclose(clf.embed(audio[3]), emb[3:4], atol=1e-5)
    assert torch.equal(clf.embed(audio[:7], batch_size=3), clf.embed(audio[:7], batch_size=3))
    assert torch.allclose(clf.embed(audio[:7], batch_size=3), emb, atol=1e-5)
    # The overall level does not matter (features are relative to each clip's peak).
    assert torch.allclose(clf.embed(0.1 * audio[:2]), emb[:2], atol=1e-3)
    assert not clf.training


def test_features_are_normalised_log_mels():
    audio = music_clip("techno", 2.0, SR, seed=TEST_SEED0)
    feats = log_mel_features(audio)
    assert feats.shape == (1, 1, 64, 1 + len(audio) // 256)
    assert float(feats.max()) == pytest.approx(1.0)
    assert float(feats.min()) >= -1.0 - 1e-6


def test_save_and_load_give_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = StyleClassifier({"channels": [4, 8, 8, 8], "embed_dim": 12, "classes": ["a", "b", "c"]})
    model.eval()
    out = model.save_pretrained(tmp_path / "clf")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    loaded = StyleClassifier.from_pretrained(out)
    assert loaded.config == model.config and loaded.classes == ["a", "b", "c"]
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    x = np.random.default_rng(0).normal(size=(2, SR)).astype(np.float32) * 0.1
    assert torch.equal(model.embed(x), loaded.embed(x))
    assert loaded.embed(x).shape == (2, 12)
    assert set(load_file(str(out / "model.safetensors"))) == set(model.state_dict())


def test_the_training_script_is_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    spec = importlib.util.spec_from_file_location("train_style_classifier",
                                                  REPO / "scripts" / "train_style_classifier.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    tiny = ["--n-train", "2", "--n-val", "1", "--epochs", "1", "--batch-size", "4"]
    info = script.main(["--out", str(tmp_path / "a"), *tiny])
    script.main(["--out", str(tmp_path / "b"), *tiny])
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert info["steps"] == 3 and 0.0 <= info["val_accuracy"] <= 1.0
    card = (tmp_path / "a" / "README.md").read_text()
    assert "--n-train 2" in card and "seeds 10000..10001" in card
    assert StyleClassifier.from_pretrained(tmp_path / "a").config["training"]["steps"] == 3


@pytest.mark.parametrize(
    "audio, kwargs, match",
    [
        (np.zeros((2, SR), np.float32), {"sample_rate": 16000}, "16000 Hz was given where 22050"),
        (np.zeros(1000, np.float32), {}, "too short"),
        (np.zeros((1, 1, SR), np.float32), {}, "expected 1 to 2 dimensions"),
        (np.zeros(SR, np.int16), {}, "integer samples"),
        (np.full(SR, np.nan, np.float32), {}, "NaN"),
        (np.zeros(SR, np.float32), {"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_audio_gets_clear_errors(clf, audio, kwargs, match):
    with pytest.raises(CourseInputError, match=match):
        clf.embed(audio, **kwargs)


def test_bad_configs_and_folders_get_clear_errors(tmp_path):
    with pytest.raises(CourseInputError, match="unknown key"):
        StyleClassifier({"n_mel": 64})
    with pytest.raises(CourseInputError, match="classes"):
        StyleClassifier({"classes": ["only-one"]})
    with pytest.raises(CourseInputError, match="channels"):
        StyleClassifier({"channels": [8, 8]})
    with pytest.raises(CourseInputError, match="is not an existing folder"):
        StyleClassifier.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseInputError, match="has no config.json"):
        StyleClassifier.from_pretrained(tmp_path / "empty")
    other = tmp_path / "other"
    StyleClassifier({"channels": [4, 4, 4, 4], "embed_dim": 8}).save_pretrained(other)
    (other / "config.json").write_text(json.dumps({**DEFAULT_CONFIG, "model_type": "something-else"}))
    with pytest.raises(CourseInputError, match="is not a 'course-style-classifier' config"):
        StyleClassifier.from_pretrained(other)
    (other / "config.json").write_text(json.dumps(DEFAULT_CONFIG))  # bigger channels than the weights
    with pytest.raises(CourseInputError, match="do not fit the config"):
        StyleClassifier.from_pretrained(other)
    with pytest.raises(CourseInputError, match="is a file"):
        (tmp_path / "f").write_text("x")
        StyleClassifier().save_pretrained(tmp_path / "f")


def test_fit_classifier_learns_a_toy_task_reproducibly():
    """Two classes of fake features (bright top half vs bright bottom half): the shared loop learns them,
    and the same seed gives the same weights."""
    from course_lib.models.classifier import StyleClassifier, fit_classifier

    gen = torch.Generator().manual_seed(0)
    feats = torch.rand(32, 1, 64, 16, generator=gen) * 0.2 - 1
    labels = torch.arange(32) % 2
    feats[labels == 0, :, :32] += 1.5
    feats[labels == 1, :, 32:] += 1.5
    cfg = {"classes": ["top", "bottom"], "channels": [4, 8, 8, 8], "embed_dim": 8}
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = StyleClassifier(cfg)
        fit_classifier(model, 32, labels, lambda idx, g: feats[idx], epochs=15, batch_size=8, lr=1e-2)
        models.append(model)
    assert not models[0].training
    with torch.no_grad():
        assert (models[0](feats).argmax(-1) == labels).float().mean() == 1.0
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CourseInputError, match="epochs"):
        fit_classifier(models[0], 32, labels, lambda idx, g: feats[idx], epochs=0)
