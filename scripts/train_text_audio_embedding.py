"""Train the course's CLAP-style text–audio embedding and ship it to checkpoints/text-audio-embedding.

    python scripts/train_text_audio_embedding.py                       # the shipped checkpoint (a few min, 2 CPU cores)
    python scripts/train_text_audio_embedding.py --out course_data/ta --steps 20 --n-train 4   # a smoke run

Data: course-made music of the six styles (``scripts/_text_audio.py``): 64 x 64 mel images (1.49 s each)
and captions drawn afresh for every use. Loss: symmetric InfoNCE (``contrastive_loss``), where two items
of the same style count as equally right, so the embedding learns what the captions say about the
sound (the style) rather than to tell apart clips no caption distinguishes. Everything follows from
``--seed``. Evidence in the model card: CLAP scores of matched captions against shuffled ones, and
zero-shot style recognition (the best-scoring style prompt) on held-out clips.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from course_lib.models.release import command_line, training_arguments, write_model_card
from course_lib.models.text_audio import DEFAULT_CONFIG, TextAudioModel, contrastive_loss, make_word_tokenizer

from _text_audio import (HELD_OUT_SEED0, MEL, STYLES, TRAIN_SEED0, captions_for, images_to_unit, mel_dataset,
                         vocabulary)
from _course_music import style_prompt

def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random crop of 40-64 frames (the same length for the batch) and a random level shift."""
    n = int(torch.randint(40, 65, (1,), generator=gen))
    start = int(torch.randint(0, x.shape[-1] - n + 1, (1,), generator=gen))
    shift = (torch.rand(x.shape[0], 1, 1, 1, generator=gen) - 0.5) * 0.2
    return (x[..., start:start + n] + shift).clamp(-1, 1)


@torch.no_grad()
def evaluate(model: TextAudioModel, data: dict[str, torch.Tensor], seed: int) -> dict:
    """Matched vs shuffled CLAP scores and zero-shot style accuracy on ``data``."""
    model.eval()
    rng = np.random.default_rng(seed)
    x = images_to_unit(data["images"])
    audio_emb = torch.cat([model.embed_mel(x[i:i + 256]) for i in range(0, len(x), 256)])
    text_emb = model.embed_text(captions_for(data["labels"], data["seeds"], rng))
    matched = (audio_emb * text_emb).sum(-1)
    perm = torch.from_numpy(rng.permutation(len(x)))
    shuffled = (audio_emb * text_emb[perm]).sum(-1)
    prompts = [[style_prompt(s, v, legacy_articles=True) for s in STYLES] for v in range(4)]
    zero_shot = [float(((audio_emb @ model.embed_text(p).T).argmax(-1) == data["labels"]).float().mean())
                 for p in prompts]
    model.train()
    return {"matched_mean": float(matched.mean()), "matched_std": float(matched.std()),
            "shuffled_mean": float(shuffled.mean()), "shuffled_std": float(shuffled.std()),
            "matched_above_shuffled": float((matched > shuffled).float().mean()),
            "zero_shot_style_accuracy": float(np.mean(zero_shot)),
            "zero_shot_per_wording": [round(z, 4) for z in zero_shot], "n": len(x)}


def make_model_card(info: dict) -> str:
    """README.md: what it is, data, training, evidence, the command."""
    ev, c = info["eval"], info["config"]
    return f"""# text-audio-embedding: a small course-trained CLAP-style text–audio embedding

Two encoders trained together so that a caption and a clip it describes land close in one
{c["embed_dim"]}-dimensional space: a word-level text encoder (`tokenizer.json`, {info["vocab_size"]} words;
embeddings + a {c["text_layers"]}-layer transformer of width {c["text_width"]}) and a 4-block CNN on 64 x 64 mel
images (`course_lib.Mel`, n_fft 1024, hop 512, 22 050 Hz: 1.49 s). The **CLAP score** is the cosine
similarity of the two embeddings. Lesson 07 uses the text encoder's per-token states
(`text_states`, width {c["text_width"]}) as the cross-attention input of its latent diffusion UNet
(`checkpoints/text-audio-ldm`), and the score to measure generated clips against their prompts.
{info["n_params"]:,} parameters, {info["size_bytes"] / 1024:.0f} KiB.

```python
from course_lib.models.text_audio import load_text_audio_model
model = load_text_audio_model()
model.clap_score(["fast techno", "calm ambient music"], images)   # images: (2, 1, 64, 64) in [-1, 1]
```

## Data
Course-made music only (`course_lib.synth.music_clip`, styles {", ".join(STYLES)}), 4.5 s clips cut into
three mel images each; captions from `scripts/_course_music.py` (style word in several spellings,
tempo, instruments, mood), drawn afresh each time an image is used.
- training: {info["n_train"]} clips per style, seeds {TRAIN_SEED0}..{TRAIN_SEED0 + info["n_train"] - 1} ({info["n_train_images"]} images)
- held-out: {info["n_val"]} clips per style, seeds {HELD_OUT_SEED0}..{HELD_OUT_SEED0 + info["n_val"] - 1} ({ev["n"]} images)

## Training
Symmetric InfoNCE with a learned temperature; items of the same style share the target. AdamW (lr
{info["lr"]}, cosine decay), batch {info["batch_size"]}, {info["steps"]} steps, random 40-64-frame crops and level
shifts, seed {info["seed"]}, CPU, {info["train_seconds"]:.0f} s of training ({info["total_seconds"]:.0f} s in all) on
{info["threads"]} thread(s). Final loss {info["final_loss"]:.4f} (the floor with six styles in a batch is about
log(batch / 6) = {math.log(info["batch_size"] / 6):.2f}).

## Evidence (held-out clips, fresh captions)
| | CLAP score (mean ± std) |
|---|---:|
| matched caption | **{ev["matched_mean"]:.3f}** ± {ev["matched_std"]:.3f} |
| shuffled caption (another clip's) | {ev["shuffled_mean"]:.3f} ± {ev["shuffled_std"]:.3f} |

The matched caption scores above the shuffled one for {ev["matched_above_shuffled"] * 100:.1f} % of the images (a shuffled
caption names the same style about one time in six, and then scores as high). Zero-shot style recognition
(the style whose prompt scores highest, four wordings of `style_prompt`): **{ev["zero_shot_style_accuracy"] * 100:.1f} %**
(chance 16.7 %; per wording {ev["zero_shot_per_wording"]}). Before training: matched {info["eval_untrained"]["matched_mean"]:.3f},
shuffled {info["eval_untrained"]["shuffled_mean"]:.3f}, zero-shot {info["eval_untrained"]["zero_shot_style_accuracy"] * 100:.1f} %.

## Reproduce
```bash
{info["command"]}
```
Limits: it knows the course's words and six synthetic styles; an unknown word becomes `[UNK]`, and
on real recordings its scores mean little. It hears style only: items of one style share the
target, so tempo, instruments and mood in a caption do not move the score.
"""


def main(argv: list[str] | None = None) -> dict:
    """Train, evaluate, save the checkpoint and its model card; return the summary dict."""
    parser = training_arguments("text-audio-embedding", __doc__.split("\n")[0], batch_size=64, lr=2e-3)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--n-train", type=int, default=100, help="training clips per style")
    parser.add_argument("--n-val", type=int, default=20, help="held-out clips per style")
    args = parser.parse_args(argv)

    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train = mel_dataset(args.n_train, TRAIN_SEED0)
    val = mel_dataset(args.n_val, HELD_OUT_SEED0)
    words = vocabulary()
    tokenizer = make_word_tokenizer(words)
    config = {**DEFAULT_CONFIG, "vocab_size": tokenizer.get_vocab_size(), "mel": dict(MEL)}
    model = TextAudioModel(config, tokenizer)
    eval_untrained = evaluate(model, val, args.seed)

    x_all = images_to_unit(train["images"])
    labels, seeds = train["labels"], train["seeds"]
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=max(0.05, 2 / args.steps))
    gen = torch.Generator().manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    losses: list[float] = []
    t_train = time.time()
    model.train()
    for step in range(args.steps):
        idx = torch.randperm(len(x_all), generator=gen)[: args.batch_size]
        texts = captions_for(labels[idx], seeds[idx], rng)
        same = labels[idx][:, None] == labels[idx][None, :]
        loss = contrastive_loss(model.embed_text(texts), model.embed_mel(augment(x_all[idx], gen)),
                                model.logit_scale.clamp(max=4.6), same)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step} loss {np.mean(losses[-50:]):.4f} ({time.time() - t_train:.0f} s)", flush=True)
    train_seconds = time.time() - t_train
    ev = evaluate(model, val, args.seed)
    print(json.dumps(ev, indent=1))

    command = command_line(parser, args)
    info = {"seed": args.seed, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
            "n_train": args.n_train, "n_val": args.n_val, "n_train_images": len(x_all),
            "train_seeds": [TRAIN_SEED0, TRAIN_SEED0 + args.n_train - 1],
            "held_out_seeds": [HELD_OUT_SEED0, HELD_OUT_SEED0 + args.n_val - 1],
            "final_loss": round(float(np.mean(losses[-50:])), 4), "train_seconds": round(train_seconds, 1),
            "threads": args.threads, "eval": ev, "eval_untrained": eval_untrained, "command": command}
    model.config["training"] = info
    out = Path(args.out)
    model.save_pretrained(out)
    info.update(config=model.config, vocab_size=tokenizer.get_vocab_size(),
                size_bytes=(out / "model.safetensors").stat().st_size,
                n_params=sum(p.numel() for p in model.parameters()), total_seconds=time.time() - t0)
    write_model_card(out, make_model_card(info))
    return info


if __name__ == "__main__":
    main()
