"""Train the course's music-style classifier and ship it to checkpoints/style-classifier.

    python scripts/train_style_classifier.py                 # the shipped checkpoint (about 6 min on 2 CPU cores)
    python scripts/train_style_classifier.py --out course_data/clf --epochs 2 --n-train 8   # a smoke run

Data: course-made music (``course_lib.synth.music_clip``), every style of ``MUSIC_STYLES``, 4 s clips
at 22 050 Hz. Training clips use seeds ``TRAIN_SEED0 + i``, held-out validation clips
``VAL_SEED0 + i``; tests and metrics use other seeds, so every number reported is on unseen clips.
Each training step takes a random-length (1.5-4 s) random crop of every clip's log-mel features, so
the model works on the clip lengths the course's generators produce. Everything follows from
``--seed``: the same command writes the same weights on the same machine.
The features are cached with ``course_lib.data.cached_tensors`` (a second run skips synthesis).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from course_lib.data import cached_tensors
from course_lib.models.classifier import DEFAULT_CONFIG, StyleClassifier, fit_classifier, log_mel_features
from course_lib.models.release import command_line, training_arguments, write_model_card
from course_lib.synth import MUSIC_STYLES, music_clip

TRAIN_SEED0 = 10_000
VAL_SEED0 = 20_000
CLIP_SECONDS = 4.0
MIN_CROP_SECONDS = 1.5


def make_features(styles: list[str], n_per_style: int, seed0: int, cfg: dict) -> dict[str, torch.Tensor]:
    """Synthesise n_per_style clips per style (seeds seed0 + i) and return their log-mel features and labels."""
    feats, labels = [], []
    for k, style in enumerate(tqdm(styles, desc=f"synthesising (seeds {seed0}+)")):
        audio = np.stack([music_clip(style, CLIP_SECONDS, cfg["sample_rate"], seed=seed0 + i)
                          for i in range(n_per_style)])
        feats.append(log_mel_features(audio, cfg["sample_rate"], cfg["n_fft"], cfg["hop_length"], cfg["n_mels"],
                                      cfg["top_db"])[:, 0].to(torch.float16))
        labels.append(torch.full((n_per_style,), k, dtype=torch.int64))
    return {"features": torch.cat(feats), "labels": torch.cat(labels)}


def random_crops(feats: torch.Tensor, n_frames: int, gen: torch.Generator) -> torch.Tensor:
    """A random n_frames-long crop of each item, renormalised as if the crop had been analysed on its own.

    Features are dB relative to the clip's loudest bin mapped by (dB + 40) / 40, so a crop is
    shifted to peak at +1 again and floored at -1 (the top_db floor).
    """
    starts = torch.randint(0, feats.shape[-1] - n_frames + 1, (feats.shape[0],), generator=gen)
    idx = starts[:, None] + torch.arange(n_frames)[None]
    crop = torch.gather(feats, 2, idx[:, None, :].expand(-1, feats.shape[1], -1)).float()
    crop = crop - crop.amax(dim=(1, 2), keepdim=True) + 1.0
    return crop.clamp_min(-1.0)[:, None]


def evaluate(model: StyleClassifier, feats: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy on full-length features."""
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(feats[i:i + 64, None].float()).argmax(-1) for i in range(0, len(feats), 64)])
    return float((pred == labels).float().mean())


def make_model_card(info: dict) -> str:
    """README.md with data, steps, accuracy and the command."""
    per_class = "\n".join(f"| {k} | {v * 100:.1f} % |" for k, v in info["val_accuracy_per_class"].items())
    text = f"""# style-classifier: a small course-trained music-style classifier

A 4-block CNN on 64-band log-mel spectrograms of 22 050 Hz mono audio (n_fft 1024, hop 256), trained
from scratch to recognise the six course-made music styles of `course_lib.synth.MUSIC_STYLES`
({", ".join(info["classes"])}). Its penultimate layer ({info["embed_dim"]} values,
`StyleClassifier.embed`) is the embedding behind `course_lib.metrics.frechet_audio_distance`.
{info["n_params"]:,} parameters, {info["size_bytes"] / 1024:.0f} KiB.

```python
from course_lib.models.classifier import load_style_classifier
clf = load_style_classifier()
clf.predict(audio)        # (N,) class ids, clf.classes[id] is the name
clf.embed(audio)          # (N, {info["embed_dim"]}) embeddings
```

## Data

Synthesised on the fly by `course_lib.synth.music_clip(style, {CLIP_SECONDS}, 22050, seed)`; no external data.

- training: {info["n_train_per_style"]} clips per style, seeds {TRAIN_SEED0}..{TRAIN_SEED0 + info["n_train_per_style"] - 1}
  ({info["n_train_per_style"] * len(info["classes"])} clips of {CLIP_SECONDS:g} s)
- held-out validation: {info["n_val_per_style"]} clips per style, seeds {VAL_SEED0}..{VAL_SEED0 + info["n_val_per_style"] - 1}
- every training step uses a random crop of random length ({MIN_CROP_SECONDS:g}-{CLIP_SECONDS:g} s) of each clip.

## Training

AdamW (lr {info["lr"]}, weight decay {info["weight_decay"]}), one-cycle schedule (10 % warm-up, cosine decay), batch {info["batch_size"]},
{info["epochs"]} epochs = {info["steps"]} steps, seed {info["seed"]}, CPU, {info["train_seconds"]:.0f} s of training
({info["total_seconds"]:.0f} s in all; {info["data_seconds"]:.0f} s of it preparing the features: synthesis, or
reading the cache of an earlier run) on {info["threads"]} thread(s).
Final training loss {info["final_loss"]:.4f}.

## Results (held-out validation clips, full {CLIP_SECONDS:g} s)

Accuracy: **{info["val_accuracy"] * 100:.1f} %**; on random {MIN_CROP_SECONDS:g} s crops: {info["val_accuracy_short"] * 100:.1f} %.

| style | accuracy |
|---|---|
{per_class}

`tests/test_classifier.py` checks ≥ 90 % on further unseen seeds.

## Reproduce

```bash
{info["command"]}
```

Limits: it knows only the six synthetic styles; on real recordings its classes mean little, but its
embedding still separates music-like from noise-like audio (see `tests/test_frechet.py`).
"""
    return text


def main(argv: list[str] | None = None) -> dict:
    """Train, evaluate, save the checkpoint and its model card; return the summary dict."""
    parser = training_arguments("style-classifier", __doc__.split("\n")[0], batch_size=32, lr=3e-3)
    parser.add_argument("--n-train", type=int, default=80, help="training clips per style")
    parser.add_argument("--n-val", type=int, default=20, help="held-out clips per style")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    args = parser.parse_args(argv)

    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = {k: v for k, v in DEFAULT_CONFIG.items() if k != "training"}
    styles = list(MUSIC_STYLES)
    cfg["classes"] = styles
    feat_keys = {k: cfg[k] for k in ("sample_rate", "n_fft", "hop_length", "n_mels", "top_db")}
    common = {"styles": styles, "seconds": CLIP_SECONDS, **feat_keys}
    train = cached_tensors("style-clf-train", {**common, "n": args.n_train, "seed0": TRAIN_SEED0},
                           lambda: make_features(styles, args.n_train, TRAIN_SEED0, cfg))
    val = cached_tensors("style-clf-val", {**common, "n": args.n_val, "seed0": VAL_SEED0},
                         lambda: make_features(styles, args.n_val, VAL_SEED0, cfg))
    data_seconds = time.time() - t0
    x_train, y_train = train["features"].float(), train["labels"]
    x_val, y_val = val["features"].float(), val["labels"]

    model = StyleClassifier(cfg)
    total = math.ceil(len(x_train) / args.batch_size) * args.epochs
    hop_s = cfg["hop_length"] / cfg["sample_rate"]
    min_frames, max_frames = int(MIN_CROP_SECONDS / hop_s), x_train.shape[-1]

    def make_batch(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n_frames = int(torch.randint(min_frames, max_frames + 1, (1,), generator=gen))
        return random_crops(x_train[idx], n_frames, gen)

    t_train = time.time()
    loss_ema = fit_classifier(model, len(x_train), y_train, make_batch, args.epochs, args.batch_size, args.lr,
                              args.weight_decay, args.seed, evaluate=lambda m: evaluate(m, x_val, y_val))
    train_seconds = time.time() - t_train

    acc = evaluate(model, x_val, y_val)
    model.eval()
    with torch.no_grad():
        short = random_crops(x_val, min_frames, torch.Generator().manual_seed(1))
        acc_short = float((model(short).argmax(-1) == y_val).float().mean())
        pred = model(x_val[:, None]).argmax(-1)
    per_class = {s: float((pred[y_val == k] == k).float().mean()) for k, s in enumerate(styles)}

    command = command_line(parser, args)
    info = {
        "classes": styles, "embed_dim": cfg["embed_dim"], "seed": args.seed, "epochs": args.epochs, "steps": total,
        "batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
        "n_train_per_style": args.n_train, "n_val_per_style": args.n_val,
        "train_seeds": [TRAIN_SEED0, TRAIN_SEED0 + args.n_train - 1], "val_seeds": [VAL_SEED0, VAL_SEED0 + args.n_val - 1],
        "clip_seconds": CLIP_SECONDS, "val_accuracy": round(acc, 4), "val_accuracy_short": round(acc_short, 4),
        "val_accuracy_per_class": {k: round(v, 4) for k, v in per_class.items()},
        "final_loss": round(loss_ema, 4), "train_seconds": round(train_seconds, 1),
        "data_seconds": round(data_seconds, 1), "threads": args.threads,
        "command": command,
    }
    model.config["training"] = {k: v for k, v in info.items() if k not in ("classes", "embed_dim")}
    out = Path(args.out)
    model.save_pretrained(out)
    info["size_bytes"] = (out / "model.safetensors").stat().st_size
    info["n_params"] = sum(p.numel() for p in model.parameters())
    info["total_seconds"] = time.time() - t0
    write_model_card(out, make_model_card(info))
    print(json.dumps({k: info[k] for k in ("val_accuracy", "val_accuracy_short", "val_accuracy_per_class",
                                          "train_seconds", "total_seconds", "size_bytes", "n_params")}, indent=1))
    return info


if __name__ == "__main__":
    main()
