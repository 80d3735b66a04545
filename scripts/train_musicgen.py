"""Train the course's small MusicGen on course-made music and captions; ship it to checkpoints/course-musicgen.

    python scripts/train_musicgen.py                   # the shipped checkpoint (about 25 min on 2 CPU cores)
    python scripts/train_musicgen.py --out course_data/mg --minutes 1 --n-train 10 --n-eval 2   # a smoke run

Needs the course codec first (``python scripts/train_codec.py`` → ``checkpoints/course-encodec``).

The model is transformers' ``MusicgenForConditionalGeneration``, the architecture of musicgen-small at
a small size: a T5 text encoder (2 layers, d_model 64) with a fixed word-level vocabulary (as in
``scripts/make_tiny_musicgen.py``), a decoder language model over the codec's 4 codebooks with the
delay pattern, and the course codec (``checkpoints/course-encodec``, frozen) to turn tokens into
22 050 Hz audio. The folder loads like musicgen-small::

    model = MusicgenForConditionalGeneration.from_pretrained("checkpoints/course-musicgen")
    processor = AutoProcessor.from_pretrained("checkpoints/course-musicgen")

Training: the codec's tokens of course-made clips (six styles, 4 s each), random 3 s windows, each
paired with one of several captions made from the clip's plan (style word in varied spellings, tempo,
instruments, mood; ``_course_music.caption``). 10 % of captions are dropped the way generation's
classifier-free guidance drops them (text states and mask zeroed), so guidance has an unconditional
model to push against. Text encoder and decoder learn together by cross-entropy over the 4 codebooks.

Measured and written to the model card: with prompts that name a style (``_course_music.style_prompt``),
how often the course's style classifier recognises the prompted style in the generated clips; the
Fréchet distance (style-classifier embeddings, ``course_lib.metrics``) of the generated clips to
held-out course music, against the same for lesson 04's untrained stand-in (``checkpoints/tiny-musicgen``)
and for this architecture before training.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from _course_music import (CODEBOOK_SIZE, FRAME_RATE, HELD_OUT_SEED0, NUM_CODEBOOKS, SAMPLE_RATE, TEXT_VOCAB,
                           TRAIN_SEED0, build_vocab, caption, folder_megabytes, music_set,
                           save_pretrained_atomically, style_prompt)
from course_lib.audio import resample
from course_lib.hub import checkpoint_dir
from course_lib.io import write_json
from course_lib.metrics import frechet_audio_distance
from course_lib.models.classifier import load_style_classifier
from course_lib.models.release import command_line, training_arguments, write_model_card
from course_lib.synth import MUSIC_STYLES

STANDIN = checkpoint_dir("tiny-musicgen")  # lesson 04's untrained stand-in: the baseline
CAPTIONS_PER_CLIP = 8
MAX_POSITIONS = 1024
PAD = CODEBOOK_SIZE  # the decoder's pad = bos = decoder start id


def build_model(codec: Any, seed: int) -> Any:
    """A fresh MusicgenForConditionalGeneration around the trained ``codec`` (its weights copied in)."""
    from transformers import (EncodecConfig, MusicgenConfig, MusicgenDecoderConfig,
                              MusicgenForConditionalGeneration, T5Config)

    torch.manual_seed(seed)
    text_config = T5Config(
        vocab_size=TEXT_VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4,
        relative_attention_num_buckets=16, relative_attention_max_distance=64, dropout_rate=0.0,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    audio_dict = codec.config.to_dict()
    audio_dict["target_bandwidths"] = [max(codec.config.target_bandwidths)]  # generation encodes with all 4
    for key in ("model_type", "transformers_version", "architectures"):
        audio_dict.pop(key, None)
    audio_config = EncodecConfig(**audio_dict)
    decoder_config = MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE, max_position_embeddings=MAX_POSITIONS, num_hidden_layers=3, ffn_dim=512,
        num_attention_heads=4, hidden_size=128, num_codebooks=NUM_CODEBOOKS, audio_channels=1, pad_token_id=PAD,
        bos_token_id=PAD, dropout=0.0, activation_dropout=0.0, attention_dropout=0.0,
    )
    config = MusicgenConfig(text_encoder=text_config, audio_encoder=audio_config, decoder=decoder_config)
    model = MusicgenForConditionalGeneration(config)
    model.audio_encoder.load_state_dict(codec.state_dict())
    gc = model.generation_config
    gc.decoder_start_token_id = PAD
    gc.pad_token_id = PAD
    gc.bos_token_id = PAD
    gc.do_sample = True
    gc.guidance_scale = 3.0
    gc.max_new_tokens = 256
    gc.max_length = MAX_POSITIONS
    gc.top_k = 50
    return model


def build_processor() -> Any:
    """The processor saved next to the model: EnCodec's feature extractor + T5 tokenizer (fixed vocabulary)."""
    from transformers import EncodecFeatureExtractor, MusicgenProcessor, T5Tokenizer

    tokenizer = T5Tokenizer(vocab=build_vocab(), extra_ids=100, model_max_length=512)
    if len(tokenizer) != TEXT_VOCAB:
        raise RuntimeError(f"tokenizer: {len(tokenizer)} tokens, expected {TEXT_VOCAB}")
    feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0)
    return MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


@torch.no_grad()
def encode_clips(codec: Any, audio: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """Tokens (N, 4, frames) of clips (N, T) at the codec's full bandwidth."""
    bw = max(codec.config.target_bandwidths)
    out = [codec.encode(audio[i:i + batch, None], bandwidth=bw).audio_codes[0] for i in range(0, len(audio), batch)]
    return torch.cat(out)


def delayed(codes: torch.Tensor) -> torch.Tensor:
    """Codes (B, K, T) → the decoder's sequence (B, K, T + K) with the delay pattern, as generation builds it.

    Codebook k holds ``PAD`` (bos) at steps 0..k, its codes at steps k+1..k+T, then ``PAD`` again.
    The model reads steps 0..T+K-2 and predicts steps 1..T+K-1; PAD targets are ignored.
    """
    b, k, t = codes.shape
    seq = torch.full((b, k, t + k), PAD, dtype=torch.long)
    for i in range(k):
        seq[:, i, i + 1:i + 1 + t] = codes[:, i]
    return seq


def train_decoder(model: Any, tokens: torch.Tensor, caption_ids: torch.Tensor, caption_mask: torch.Tensor,
                  args: argparse.Namespace) -> dict[str, Any]:
    """Train text encoder + decoder on (tokens (N, K, T), captions (N, C, L)); the codec stays frozen."""
    gen = torch.Generator().manual_seed(args.seed)
    window = int(args.window_seconds * FRAME_RATE)
    params = list(model.text_encoder.parameters()) + list(model.decoder.parameters()) + \
        list(model.enc_to_dec_proj.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    model.train()
    model.audio_encoder.eval()
    losses: list[float] = []
    log: list[dict[str, Any]] = []
    start, budget, step = time.time(), args.minutes * 60, 0
    n, c = caption_ids.shape[:2]
    while step < args.steps and time.time() - start < budget:
        progress = max(step / args.steps, (time.time() - start) / budget)
        lr = args.lr * min(1.0, (step + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in opt.param_groups:
            group["lr"] = lr
        clip = torch.randint(0, n, (args.batch_size,), generator=gen)
        first = torch.randint(0, tokens.shape[-1] - window + 1, (args.batch_size,), generator=gen)
        codes = torch.stack([tokens[i, :, s:s + window] for i, s in zip(clip.tolist(), first.tolist())]).long()
        which = torch.randint(0, c, (args.batch_size,), generator=gen)
        ids, mask = caption_ids[clip, which], caption_mask[clip, which]
        keep = (torch.rand(args.batch_size, generator=gen) >= args.caption_dropout).float()
        seq = delayed(codes)
        inputs, targets = seq[..., :-1], seq[..., 1:]
        hidden = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        out = model(encoder_outputs=(hidden * keep[:, None, None],), attention_mask=mask * keep[:, None].long(),
                    decoder_input_ids=inputs.reshape(-1, inputs.shape[-1]))
        logits = out.logits.reshape(args.batch_size, NUM_CODEBOOKS, inputs.shape[-1], -1)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 25 == 0 or step == 1:
            entry = {"step": step, "seconds": round(time.time() - start, 1), "loss": round(losses[-1], 4),
                     "lr": round(lr, 6)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
    model.eval()
    return {"losses": losses, "log": log, "steps": step, "train_seconds": time.time() - start}


@torch.no_grad()
def generate_clips(model: Any, processor: Any, prompts: list[str], seconds: float, seed: int,
                   batch: int = 60) -> np.ndarray:
    """Audio (N, samples) for each prompt, at the model's rate, trimmed to ``seconds``."""
    rate = int(model.config.audio_encoder.sampling_rate)
    frames = int(round(seconds * model.config.audio_encoder.frame_rate))
    torch.manual_seed(seed)
    outs = []
    for i in range(0, len(prompts), batch):
        inputs = processor(text=prompts[i:i + batch], padding=True, return_tensors="pt")
        audio = model.generate(**inputs, max_new_tokens=frames + NUM_CODEBOOKS - 1)
        outs.append(audio[:, 0].float().numpy())
    n = int(seconds * rate)
    length = min(o.shape[-1] for o in outs)
    if length < n:
        raise RuntimeError(f"generation gave {length} samples, expected {n}")
    return np.concatenate([o[:, :n] for o in outs])


@torch.no_grad()
def codec_round_trip(codec: Any, audio: np.ndarray) -> np.ndarray:
    """``audio`` (N, T) encoded at 4 codebooks and decoded again: the best any model on these tokens can do."""
    x = torch.from_numpy(audio)[:, None]
    enc = codec.encode(x, bandwidth=max(codec.config.target_bandwidths))
    return codec.decode(enc.audio_codes, enc.audio_scales).audio_values[:, 0, : audio.shape[-1]].numpy()


def evaluate(model: Any, processor: Any, held: np.ndarray, args: argparse.Namespace, untrained: Any) -> dict:
    """Style accuracy and Fréchet distances of generated clips; the same FD for the two untrained baselines,
    for the codec's own reconstructions of the held-out clips (a floor) and for real against real clips."""
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    clf = load_style_classifier()
    prompts, labels = [], []
    for k, style in enumerate(MUSIC_STYLES):
        for i in range(args.n_prompts):
            prompts.append(style_prompt(style, i, legacy_articles=True))
            labels.append(k)
    labels_t = torch.tensor(labels)
    t0 = time.time()
    clips = generate_clips(model, processor, prompts, args.eval_seconds, args.seed)
    gen_seconds = time.time() - t0
    pred = clf.predict(clips, sample_rate=SAMPLE_RATE)
    per_style = {s: round(float((pred[labels_t == k] == k).float().mean()), 4) for k, s in enumerate(MUSIC_STYLES)}
    confusion = [[int(((labels_t == a) & (pred == b)).sum()) for b in range(len(MUSIC_STYLES))]
                 for a in range(len(MUSIC_STYLES))]
    fd = frechet_audio_distance(clips, held, classifier=clf, sample_rate=SAMPLE_RATE)
    fd_base = frechet_audio_distance(generate_clips(untrained, processor, prompts, args.eval_seconds, args.seed),
                                     held, classifier=clf, sample_rate=SAMPLE_RATE)
    standin = MusicgenForConditionalGeneration.from_pretrained(STANDIN).eval()
    standin_proc = AutoProcessor.from_pretrained(STANDIN)
    stand_clips = generate_clips(standin, standin_proc, prompts, args.eval_seconds, args.seed)
    stand_rate = int(standin.config.audio_encoder.sampling_rate)
    stand_clips = resample(stand_clips, stand_rate, SAMPLE_RATE)
    fd_standin = frechet_audio_distance(stand_clips, held, classifier=clf, sample_rate=SAMPLE_RATE)
    # how far apart two sets of real course music are: alternate clips, so both halves hold every style
    fd_real = frechet_audio_distance(held[0::2], held[1::2], classifier=clf, sample_rate=SAMPLE_RATE)
    round_trip = codec_round_trip(model.audio_encoder, held)
    fd_codec = frechet_audio_distance(round_trip, held, classifier=clf, sample_rate=SAMPLE_RATE)
    held_labels = torch.arange(len(MUSIC_STYLES)).repeat_interleave(len(held) // len(MUSIC_STYLES))
    pred_codec = clf.predict(round_trip, sample_rate=SAMPLE_RATE)
    codec_per_style = {s: round(float((pred_codec[held_labels == k] == k).float().mean()), 4)
                       for k, s in enumerate(MUSIC_STYLES)}
    return {
        "n_clips": len(prompts), "clip_seconds": args.eval_seconds, "prompts": sorted(set(prompts)),
        "style_accuracy": round(float((pred == labels_t).float().mean()), 4), "style_accuracy_per_style": per_style,
        "confusion": confusion, "fd": round(fd, 3), "fd_untrained_standin": round(fd_standin, 3),
        "fd_untrained_same_architecture": round(fd_base, 3), "fd_real_vs_real_halves": round(fd_real, 3),
        "fd_codec_round_trip": round(fd_codec, 3), "codec_round_trip_accuracy_per_style": codec_per_style,
        "generation_seconds": round(gen_seconds, 1), "_clips": clips,
    }


def model_card(info: dict[str, Any]) -> str:
    """README.md: what the model is, how it was trained, the measured evidence, how to rebuild it."""
    ev = info["eval"]
    per_style = "\n".join(f"| {s} | {v * 100:.0f} % | {ev['codec_round_trip_accuracy_per_style'][s] * 100:.0f} % |"
                          for s, v in ev["style_accuracy_per_style"].items())
    header = " | ".join(MUSIC_STYLES)
    confusion = "\n".join(f"| {MUSIC_STYLES[a]} | " + " | ".join(str(v) for v in row) + " |"
                          for a, row in enumerate(ev["confusion"]))
    prompts = ", ".join(f"`{p}`" for p in ev["prompts"][:12])
    return f"""# course-musicgen: a small MusicGen trained on course-made music

transformers' `MusicgenForConditionalGeneration` (the architecture of `facebook/musicgen-small`) at a
small size, trained from scratch by `scripts/train_musicgen.py` on the course's synthetic music in six
styles ({", ".join(MUSIC_STYLES)}) with captions a learner would type. Offline, it loads through the same
calls as musicgen-small (how well its music matches the prompt: see the evidence below):

```python
from transformers import AutoProcessor, MusicgenForConditionalGeneration
model = MusicgenForConditionalGeneration.from_pretrained("checkpoints/course-musicgen")
processor = AutoProcessor.from_pretrained("checkpoints/course-musicgen")
inputs = processor(text=["chill hip hop with sub bass", "fast chiptune"], padding=True, return_tensors="pt")
audio = model.generate(**inputs, max_new_tokens=153)   # (2, 1, samples) at 22 050 Hz, 3 s
```

- text encoder: T5, 2 layers, d_model 64, a fixed word-level vocabulary of {TEXT_VOCAB} pieces (music words,
  style names, moods, instruments; anything else is spelled letter by letter);
- decoder: {info['decoder_layers']} layers, hidden size {info['decoder_hidden']}, 4 codebooks of {CODEBOOK_SIZE} codes with
  musicgen's delay pattern, {MAX_POSITIONS} positions (20 s), cross-attention on the text;
- audio codec: `checkpoints/course-encodec` (22 050 Hz, 50 frames per second, 1.8 kbit/s at 4 codebooks).

{info['n_params']:,} parameters in all ({info['megabytes']:.1f} MB of files; musicgen-small: about 587 M).
Generation defaults: sampling, top-k 50, classifier-free guidance 3.0.

## Evidence (measured by the script)

{ev['n_clips']} clips of {ev['clip_seconds']:g} s generated from prompts that name a style ({len(ev['prompts'])} wordings,
e.g. {prompts}), {ev['n_clips'] // len(MUSIC_STYLES)} per style, with the default generation settings.

**Style accuracy: {ev['style_accuracy'] * 100:.1f} %** of the clips are put in the prompted style by the
course's style classifier (`checkpoints/style-classifier`; chance is 1 in 6, about 17 %).

| style | generated clips recognised | held-out clips through the codec (encode + decode) recognised |
|---|---|---|
{per_style}

The second column explains most of the first: a style that the codec itself does not carry through
is out of reach of a model that speaks in its tokens.

Confusion (rows: prompted style, columns: the classifier's answer):

| prompted | {header} |
|---|{"---|" * len(MUSIC_STYLES)}
{confusion}

**Fréchet distance** (style-classifier embeddings, `course_lib.metrics.frechet_audio_distance`) to
{info['n_held']} held-out course clips (seeds {HELD_OUT_SEED0}+, never trained on), lower is better:

| clips | FD |
|---|---|
| this model | **{ev['fd']:.2f}** |
| lesson 04's untrained stand-in (`checkpoints/tiny-musicgen`, resampled to 22 050 Hz) | {ev['fd_untrained_standin']:.2f} |
| this architecture before training (same codec, random text encoder and decoder) | {ev['fd_untrained_same_architecture']:.2f} |
| the codec's own reconstructions of the held-out clips (about the best a model on its tokens reaches) | {ev['fd_codec_round_trip']:.2f} |
| real course music: alternate held-out clips against the others | {ev['fd_real_vs_real_halves']:.2f} |

Ratio to the untrained stand-in: {ev['fd'] / max(ev['fd_untrained_standin'], 1e-9):.3f}; to the same
architecture untrained: {ev['fd'] / max(ev['fd_untrained_same_architecture'], 1e-9):.3f}.
Generating the {ev['n_clips']} clips took {ev['generation_seconds']:.0f} s.

## Training

Tokens of {info['n_train']} clips of 4 s ({info['n_train'] // len(MUSIC_STYLES)} per style, seeds {TRAIN_SEED0}+;
the codec trained on the first of them) at 4 codebooks; {CAPTIONS_PER_CLIP} captions per clip (e.g. `{info['example_caption']}`);
random {info['window_seconds']:g} s windows; caption dropout {info['caption_dropout']:g}; batch {info['batch_size']};
AdamW (lr {info['lr']}, betas 0.9/0.95, weight decay 0.05), warm-up then cosine decay, gradient clipping at 1;
cross-entropy over the 4 codebooks. {info['steps']} steps in {info['train_seconds']:.0f} s of training
({info['total_seconds']:.0f} s in all, evaluation included) on {info['threads']} CPU thread(s), seed {info['seed']};
final loss {info['final_loss']:.3f} (nats per token; uniform over {CODEBOOK_SIZE} codes: {math.log(CODEBOOK_SIZE):.2f}).

## Reproduce

```bash
python scripts/train_codec.py      # checkpoints/course-encodec, first
{info['command']}
```

Limits: it knows only the six course styles and their words. It was trained on 3 s windows; longer
generations go beyond what it has seen (not measured here). Not for any use other than learning.
"""


def reevaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the model saved in ``args.out`` again (same prompts, seeds and baselines) and rewrite
    ``metrics.json`` and the card; the training facts come from the saved ``metrics.json``."""
    from transformers import AutoProcessor, EncodecModel, MusicgenForConditionalGeneration

    from course_lib.io import read_json

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    saved = read_json(out / "metrics.json", "metrics.json", "Train the model first: python scripts/train_musicgen.py")
    model = MusicgenForConditionalGeneration.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    untrained = build_model(EncodecModel.from_pretrained(args.codec).eval(), args.seed).eval()
    held = music_set(args.n_eval, HELD_OUT_SEED0)["audio"][:, : int(args.eval_seconds * SAMPLE_RATE)].numpy()
    results = evaluate(model, processor, held, args, untrained)
    results.pop("_clips")
    info = {**{k: v for k, v in saved.items() if k != "log"}, "eval": results, "n_held": len(held)}
    write_json(out / "metrics.json", {**info, "log": saved.get("log", [])}, indent=1)
    info["megabytes"] = folder_megabytes(out)
    write_model_card(out, model_card(info))
    print(json.dumps({k: v for k, v in results.items() if k not in ("prompts", "confusion")}, indent=1))
    return info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate and save the MusicGen with its processor and model card; return the summary."""
    parser = training_arguments("course-musicgen", __doc__.split("\n")[0], batch_size=16, lr=2e-3)
    parser.add_argument("--codec", default=str(checkpoint_dir("course-encodec")),
                        help="the trained codec (scripts/train_codec.py)")
    parser.add_argument("--steps", type=int, default=4000, help="at most this many steps")
    parser.add_argument("--minutes", type=float, default=18.0, help="and at most this many minutes of training")
    parser.add_argument("--window-seconds", type=float, default=3.0)
    parser.add_argument("--caption-dropout", type=float, default=0.1)
    parser.add_argument("--n-train", type=int, default=100, help="training clips per style")
    parser.add_argument("--n-eval", type=int, default=20, help="held-out clips per style (for the FD)")
    parser.add_argument("--n-prompts", type=int, default=20, help="generated clips per style")
    parser.add_argument("--eval-seconds", type=float, default=3.0)
    parser.add_argument("--evaluate-only", action="store_true",
                        help="measure the model already in --out again and rewrite its card (no training)")
    args = parser.parse_args(argv)
    if args.evaluate_only:
        return reevaluate(args)

    from transformers import EncodecModel

    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    codec = EncodecModel.from_pretrained(args.codec).eval()
    processor = build_processor()
    train = music_set(args.n_train, TRAIN_SEED0)
    tokens = encode_clips(codec, train["audio"]).to(torch.int16)
    rng = np.random.default_rng(args.seed)
    captions = [[caption(MUSIC_STYLES[int(lab)], int(seed), rng, legacy_articles=True) for _ in range(CAPTIONS_PER_CLIP)]
                for lab, seed in zip(train["labels"], train["seeds"])]
    enc = processor.tokenizer([c for cs in captions for c in cs], padding=True, return_tensors="pt")
    caption_ids = enc.input_ids.view(len(captions), CAPTIONS_PER_CLIP, -1)
    caption_mask = enc.attention_mask.view(len(captions), CAPTIONS_PER_CLIP, -1)
    print(f"data ready in {time.time() - t0:.0f} s: tokens {tuple(tokens.shape)}, captions e.g. {captions[0][:3]}")

    untrained = build_model(codec, args.seed).eval()
    model = build_model(codec, args.seed)
    run = train_decoder(model, tokens, caption_ids, caption_mask, args)

    out = Path(args.out)
    # Tokenising the captions with padding=True left a padding rule in the fast tokenizer; saved, it would
    # make every audio-only processor call fail (pad_to_multiple_of reaches the feature extractor).
    processor.tokenizer.backend_tokenizer.no_padding()
    save_pretrained_atomically(out, lambda tmp: (model.save_pretrained(tmp), processor.save_pretrained(tmp)))
    held = music_set(args.n_eval, HELD_OUT_SEED0)["audio"][:, : int(args.eval_seconds * SAMPLE_RATE)].numpy()
    results = evaluate(model, processor, held, args, untrained)
    clips = results.pop("_clips")
    print(json.dumps({k: v for k, v in results.items() if k != "prompts"}, indent=1))
    info = {
        "eval": results, "steps": run["steps"], "train_seconds": round(run["train_seconds"], 1),
        "threads": args.threads, "seed": args.seed, "batch_size": args.batch_size, "lr": args.lr,
        "window_seconds": args.window_seconds, "caption_dropout": args.caption_dropout,
        "n_train": len(train["audio"]), "n_held": len(held), "example_caption": captions[0][0],
        "final_loss": sum(run["losses"][-50:]) / max(1, len(run["losses"][-50:])),
        "n_params": sum(p.numel() for p in model.parameters()),
        "decoder_layers": model.config.decoder.num_hidden_layers, "decoder_hidden": model.config.decoder.hidden_size,
        "command": command_line(parser, args),
    }
    write_json(out / "losses.json", [round(x, 4) for x in run["losses"]], indent=None)
    info["total_seconds"] = round(time.time() - t0, 1)
    info["megabytes"] = folder_megabytes(out)
    write_json(out / "metrics.json", {**info, "log": run["log"]}, indent=1)
    write_model_card(out, model_card(info))
    print(json.dumps({k: info[k] for k in ("steps", "train_seconds", "total_seconds", "megabytes")}))
    del clips
    return info


if __name__ == "__main__":
    main()
