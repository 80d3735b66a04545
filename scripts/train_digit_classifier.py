"""Train the course's digit-word classifier (zero ... nine) and ship it to checkpoints/digit-classifier.

    python scripts/train_digit_classifier.py                 # the shipped checkpoint (about a minute on 2 CPU cores)
    python scripts/train_digit_classifier.py --out course_data/digit-clf --epochs 1 --n-train 8   # a smoke run

Lesson 06 uses it as the judge of its two generators (the spectrogram VAE and a spectrogram diffusion
model, both trained on the same digit clips): which word does a generated clip sound like, and how far
is the set of generated clips from real ones (Fréchet distance on its embedding)? Same network as the
style and drum classifiers (``course_lib.models.classifier.StyleClassifier``), on 64-band log-mel features
of 22 050 Hz clips of 0.74 s (n_fft 512, hop 128).

Data: ``course_lib.synth.digit_dataset`` with seed ``TRAIN_SEED`` for training and ``VAL_SEED`` for
validation. The generators train on seed 0 and are evaluated against seed 1000, so the judge saw none
of those clips. Training batches are augmented with
``course_lib.models.classifier.augment_delay_noise`` (a 0-20 ms start delay and white noise at 15-60 dB SNR)
so the judge does not hinge on details a generator may get slightly wrong. Everything follows from ``--seed``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from course_lib.models.classifier import (
    DEFAULT_CONFIG,
    StyleClassifier,
    augment_delay_noise,
    classification_accuracy,
    fit_classifier,
)
from course_lib.models.release import command_line, training_arguments, write_model_card
from course_lib.synth import DIGIT_CLASSES, digit_dataset

TRAIN_SEED = 2000
VAL_SEED = 3000
SAMPLE_RATE = 22050
DURATION = 0.74
FEATURES = dict(sample_rate=SAMPLE_RATE, n_fft=512, hop_length=128, n_mels=64, top_db=80.0)


MODEL_CARD = """# digit-classifier: the course's judge for generated digit words

A 4-block CNN on 64-band log-mel spectrograms (n_fft 512, hop 128) of 22 050 Hz clips of 0.74 s,
trained from scratch on the course-made words of `course_lib.synth.digit_dataset` to tell apart
{classes}. Lesson 06 uses it to say which word a generated clip sounds like, and its
penultimate layer ({embed_dim} values) for Fréchet distances between sets of clips.
{n_params:,} parameters, {size_kib:.0f} KiB.

```python
from course_lib.models.classifier import load_digit_classifier
clf = load_digit_classifier()
clf.predict(audio)        # (N,) class ids; clf.classes[id] is the word
clf.embed(audio)          # (N, {embed_dim}) embeddings
```

## Data

`digit_dataset(n, seed, sample_rate=22050, duration=0.74)`: training {n_train_per_class} clips per class
(seed {train_data_seed}), held-out validation {n_val_per_class} per class (seed {val_data_seed}). Lesson 06's
generators train on seed 0 and are measured against seed 1000, so none of those clips were seen here.
Training batches get a random start delay (0-20 ms) and white noise at 15-60 dB SNR.

## Training

AdamW (lr {lr}, weight decay {weight_decay}), one-cycle schedule, batch {batch_size}, {epochs} epochs,
seed {seed}, {train_seconds:.0f} s on {threads} CPU thread(s). Final training loss {final_loss:.4f}.

## Results (held-out validation clips)

Accuracy: **{val_pct:.1f} %** on clean clips; {val_noisy_pct:.1f} % with white noise at 20 dB SNR.

| word | accuracy |
|---|---|
{per_class}

`tests/test_digit_models.py` checks ≥ 97 % on further unseen seeds.

## Reproduce

```bash
{command}
```

Limits: it knows ten synthetic formant words, not real speech. A clip of pure noise still gets one of
the ten labels: read its labels together with the Fréchet distance.
"""


def main(argv: list[str] | None = None) -> dict:
    """Train, evaluate, save the checkpoint and its model card; return the summary dict."""
    parser = training_arguments("digit-classifier", __doc__.split("\n")[0], batch_size=32, lr=3e-3)
    parser.add_argument("--n-train", type=int, default=150, help="training clips per class")
    parser.add_argument("--n-val", type=int, default=40, help="held-out clips per class")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    args = parser.parse_args(argv)

    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    audio, labels = digit_dataset(args.n_train, seed=TRAIN_SEED, sample_rate=SAMPLE_RATE, duration=DURATION)
    val_audio, val_labels = digit_dataset(args.n_val, seed=VAL_SEED, sample_rate=SAMPLE_RATE, duration=DURATION)
    x_train, y_train = torch.from_numpy(audio), torch.from_numpy(labels)
    x_val, y_val = torch.from_numpy(val_audio), torch.from_numpy(val_labels)

    cfg = {k: v for k, v in DEFAULT_CONFIG.items() if k != "training"}
    cfg.update(FEATURES, classes=list(DIGIT_CLASSES), channels=[16, 32, 48, 64], embed_dim=64)
    model = StyleClassifier(cfg)

    def make_batch(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return model.features_of(augment_delay_noise(x_train[idx], gen, SAMPLE_RATE))

    t_train = time.time()
    loss_ema = fit_classifier(model, len(x_train), y_train, make_batch, args.epochs, args.batch_size, args.lr,
                              args.weight_decay, args.seed, evaluate=lambda m: classification_accuracy(m, x_val, y_val)[0])
    train_seconds = time.time() - t_train

    acc, per_class = classification_accuracy(model, x_val, y_val)
    rms = x_val.pow(2).mean(dim=1, keepdim=True).sqrt()
    noisy = x_val + torch.randn(x_val.shape, generator=torch.Generator().manual_seed(1)) * rms * 10 ** (-20 / 20)
    acc_noisy = float((model.predict(noisy) == y_val).float().mean())

    command = command_line(parser, args)
    info = {
        "embed_dim": cfg["embed_dim"], "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size,
        "lr": args.lr, "weight_decay": args.weight_decay, "n_train_per_class": args.n_train,
        "n_val_per_class": args.n_val, "train_data_seed": TRAIN_SEED, "val_data_seed": VAL_SEED,
        "val_accuracy": round(acc, 4), "val_accuracy_noisy": round(acc_noisy, 4),
        "val_accuracy_per_class": {k: round(v, 4) for k, v in per_class.items()},
        "final_loss": round(loss_ema, 4), "train_seconds": round(train_seconds, 1), "threads": args.threads,
        "command": command,
    }
    model.config["training"] = {k: v for k, v in info.items() if k != "embed_dim"}
    out = Path(args.out)
    model.save_pretrained(out)
    size = (out / "model.safetensors").stat().st_size
    n_params = sum(p.numel() for p in model.parameters())
    card = MODEL_CARD.format(
        classes=", ".join(DIGIT_CLASSES), n_params=n_params, size_kib=size / 1024, val_pct=acc * 100,
        val_noisy_pct=acc_noisy * 100,
        per_class="\n".join(f"| {k} | {v * 100:.1f} % |" for k, v in per_class.items()), **info)
    write_model_card(out, card)
    print(json.dumps({"val_accuracy": acc, "val_accuracy_noisy": acc_noisy, "per_class": per_class,
                      "train_seconds": train_seconds, "total_seconds": time.time() - t0, "size_bytes": size,
                      "n_params": n_params}, indent=1))
    return info


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
