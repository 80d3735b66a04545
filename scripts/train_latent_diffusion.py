"""Train the course's text-to-audio latent diffusion model and ship it to checkpoints/text-audio-ldm.

    python scripts/train_latent_diffusion.py          # the shipped checkpoint (about 35 min on 2 CPU cores)
    python scripts/train_latent_diffusion.py --out course_data/ldm --ae-steps 5 --unet-steps 5 --n-train 4 --n-eval 12

Needs checkpoints/text-audio-embedding first (``scripts/train_text_audio_embedding.py``): its frozen
text encoder gives the per-token states the UNet attends to.

Two stages, as in AudioLDM, on the 64 x 64 mel images of ``scripts/_text_audio.py`` (1.49 s of course-made
music at 22 050 Hz):

1. ``vae/``: a small KL-regularised ``diffusers.AutoencoderKL`` that codes a 1 x 64 x 64 mel image as a
   4 x 16 x 16 latent (each side shrunk 4x: 16x fewer positions), trained on L1 + a light KL term.
2. ``unet/``: a ``diffusers.UNet2DConditionModel`` on the scaled latents, conditioned by cross-attention
   on the text states, trained to predict the noise (DDPM, 1000 steps, cosine schedule) with 10 % of the
   captions dropped (all-zero states) so that sampling can use classifier-free guidance. EMA weights ship.

Both parts are stored with float16 weights (half the bytes; ``from_pretrained`` loads them back into
float32 parameters), and the evaluation runs on the weights as stored. ``--evaluate-only`` re-runs that
evaluation on the shipped folder and rewrites the card and ``config.json``, keeping the training facts.

``scheduler/`` is a ``DDIMScheduler`` for sampling; ``config.json`` names the text encoder, the mel
settings, the latent shape and the guidance scale. The model card reports, on >= 100 generated clips,
the style the course's style classifier hears, CLAP scores of matched against shuffled prompts, and the
Fréchet distance to held-out clips against that of the same model untrained.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from safetensors.torch import load_file, save_file

from course_lib.io import write_json
from course_lib.metrics import frechet_audio_distance
from course_lib.models.classifier import load_style_classifier
from course_lib.hub import checkpoint_dir
from course_lib.models.release import command_line, training_arguments, write_model_card
from course_lib.models.text_audio import TextAudioModel

from _course_music import save_pretrained_atomically
from _text_audio import (HELD_OUT_SEED0, MEL, STYLES, TRAIN_SEED0, captions_for, images_to_unit, mel_dataset,
                         prompts_for, unit_to_audio)

LATENT_SHAPE = (4, 16, 16)


def save_float16(model: torch.nn.Module, folder: Path) -> None:
    """``model.save_pretrained`` into ``folder`` (atomically), with every float32 tensor stored as float16.

    Keeps diffusers' layout and file names, so ``from_pretrained(folder)`` needs no extra arguments and gives
    float32 parameters again; the model in memory is not touched.
    """
    def save(tmp: str) -> None:
        model.save_pretrained(tmp)
        config = Path(tmp) / "config.json"  # drop where it was loaded from: a path of this machine
        config.write_text(json.dumps({k: v for k, v in json.loads(config.read_text()).items()
                                      if k != "_name_or_path"}, indent=2, sort_keys=True) + "\n")
        for path in Path(tmp).glob("*.safetensors"):
            tensors = load_file(path)
            save_file({k: v.half() if v.dtype == torch.float32 else v for k, v in tensors.items()}, path,
                      metadata={"format": "pt"})

    save_pretrained_atomically(folder, save)


def make_vae() -> AutoencoderKL:
    """1 x 64 x 64 mel image <-> 4 x 16 x 16 latent (two 2x downsamplings)."""
    return AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 3,
                         up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(16, 32, 64),
                         layers_per_block=1, latent_channels=LATENT_SHAPE[0], norm_num_groups=8, sample_size=64)


def make_unet(text_width: int) -> UNet2DConditionModel:
    """A two-level UNet on 4 x 16 x 16 latents; cross-attention to the text states (width ``text_width``) at 8 x 8."""
    return UNet2DConditionModel(sample_size=LATENT_SHAPE[1], in_channels=LATENT_SHAPE[0],
                                out_channels=LATENT_SHAPE[0], down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(48, 96),
                                layers_per_block=1, cross_attention_dim=text_width, attention_head_dim=8,
                                norm_num_groups=16)


def train_vae(vae: AutoencoderKL, x: torch.Tensor, steps: int, batch: int, lr: float, seed: int) -> list[float]:
    """Fit the autoencoder: L1 reconstruction + 1e-6 x KL (per latent value) on random batches of ``x``."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    losses: list[float] = []
    vae.train()
    t0 = time.time()
    for step in range(steps):
        xb = x[torch.randint(0, len(x), (batch,), generator=gen)]
        post = vae.encode(xb).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        loss = F.l1_loss(rec, xb) + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == steps - 1:
            print(f"vae step {step} loss {np.mean(losses[-50:]):.4f} ({time.time() - t0:.0f} s)", flush=True)
    return losses


def finetune_decoder(vae: AutoencoderKL, x: torch.Tensor, steps: int, batch: int, lr: float, seed: int
                     ) -> list[float]:
    """Sharpen the decoder with the encoder frozen (so the latent space, and a UNet trained on it, stay valid).

    Input: the posterior means; loss: L1 on the image and on its time and frequency differences, which
    penalises the blur that plain L1 leaves (the fine harmonics the style classifier listens to).
    """
    gen = torch.Generator().manual_seed(seed + 2)
    vae.requires_grad_(False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    losses: list[float] = []
    vae.train()
    t0 = time.time()
    for step in range(steps):
        xb = x[torch.randint(0, len(x), (batch,), generator=gen)]
        with torch.no_grad():
            z = vae.encode(xb).latent_dist.mean
        rec = vae.decode(z).sample
        loss = (F.l1_loss(rec, xb) + F.l1_loss(rec.diff(dim=-1), xb.diff(dim=-1))
                + F.l1_loss(rec.diff(dim=-2), xb.diff(dim=-2)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == steps - 1:
            print(f"decoder step {step} loss {np.mean(losses[-50:]):.4f} ({time.time() - t0:.0f} s)", flush=True)
    vae.requires_grad_(False).eval()
    return losses


@torch.no_grad()
def encode(vae: AutoencoderKL, x: torch.Tensor) -> torch.Tensor:
    """Posterior means of the images, in batches."""
    vae.eval()
    return torch.cat([vae.encode(x[i:i + 128]).latent_dist.mean for i in range(0, len(x), 128)])


@torch.no_grad()
def decode(vae: AutoencoderKL, z: torch.Tensor) -> torch.Tensor:
    """Unscaled latents -> mel images in [-1, 1]."""
    vae.eval()
    return torch.cat([vae.decode(z[i:i + 128]).sample for i in range(0, len(z), 128)]).clamp(-1, 1)


def train_unet(unet: UNet2DConditionModel, text: TextAudioModel, latents: torch.Tensor, labels: torch.Tensor,
               seeds: torch.Tensor, args: argparse.Namespace) -> tuple[UNet2DConditionModel, list[float]]:
    """Noise prediction with caption dropout; returns the EMA copy and the losses."""
    noise_sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                prediction_type="epsilon")
    gen = torch.Generator().manual_seed(args.seed + 1)
    rng = np.random.default_rng(args.seed + 1)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=1e-2)
    warm = max(1, args.unet_steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(s, args.unet_steps) / args.unet_steps)))
    losses: list[float] = []
    unet.train()
    t0 = time.time()
    for step in range(args.unet_steps):
        idx = torch.randint(0, len(latents), (args.batch_size,), generator=gen)
        with torch.no_grad():
            states, _ = text.text_states(captions_for(labels[idx], seeds[idx], rng))
        drop = torch.rand(args.batch_size, generator=gen) < args.caption_dropout
        states = states * (~drop)[:, None, None]
        z0 = latents[idx]
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (args.batch_size,), generator=gen)
        pred = unet(noise_sched.add_noise(z0, noise, t), t, encoder_hidden_states=states).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        losses.append(float(loss.detach()))
        if step % 100 == 0 or step == args.unet_steps - 1:
            print(f"unet step {step} loss {np.mean(losses[-100:]):.4f} ({time.time() - t0:.0f} s)", flush=True)
    return ema, losses


@torch.no_grad()
def sample(unet: UNet2DConditionModel, text: TextAudioModel, prompts: list[str], guidance: float, steps: int,
           seed: int) -> torch.Tensor:
    """Scaled latents (N, 4, 16, 16) for ``prompts`` by DDIM (eta 0) with classifier-free guidance."""
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
                          clip_sample=False)
    sched.set_timesteps(steps)
    unet.eval()
    cond, _ = text.text_states(prompts)
    null = torch.zeros_like(cond)
    z = torch.randn((len(prompts), *LATENT_SHAPE), generator=torch.Generator().manual_seed(seed))
    for t in sched.timesteps:
        eps_c, eps_u = unet(torch.cat([z, z]), t, encoder_hidden_states=torch.cat([cond, null])).sample.chunk(2)
        z = sched.step(eps_u + guidance * (eps_c - eps_u), t, z).prev_sample
    return z


def judge(images: torch.Tensor, labels: torch.Tensor, prompts: list[str], reference: torch.Tensor,
          text: TextAudioModel, clf, seed: int) -> dict:
    """Griffin-Lim audio of mel images -> style accuracy, CLAP scores (matched, shuffled), FD to ``reference``."""
    audio = unit_to_audio(images, seed)
    pred = clf.predict(audio)
    with torch.no_grad():
        matched = text.clap_score(prompts, images)
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(prompts)))
        shuffled = text.clap_score([prompts[int(i)] for i in perm], images)
    per_style = {s: round(float((pred[labels == k] == k).float().mean()), 4) for k, s in enumerate(STYLES)}
    return {"style_accuracy": round(float((pred == labels).float().mean()), 4), "per_style": per_style,
            "heard": {s: int((pred == k).sum()) for k, s in enumerate(STYLES)},
            "clap_matched": round(float(matched.mean()), 4), "clap_shuffled": round(float(shuffled.mean()), 4),
            "fd": round(frechet_audio_distance(audio, reference, clf), 3), "n": len(labels)}


def untrained_unet(text_width: int, seed: int) -> UNet2DConditionModel:
    """The UNet as training starts it (same seed, same draws): the baseline of every Fréchet-distance ratio."""
    torch.manual_seed(seed)
    return make_unet(text_width).eval()


def evaluate_stored(out: Path, untrained: UNet2DConditionModel, text: TextAudioModel, held: dict,
                    args: argparse.Namespace) -> dict:
    """Load ``unet/`` and ``vae/`` of ``out`` as stored (float16 on disk) and judge them; the card's numbers.

    Returns the ``eval*`` rows, the trained / untrained FD ratio and the stored sizes in MB.
    """
    unet = UNet2DConditionModel.from_pretrained(out / "unet").eval()
    vae = AutoencoderKL.from_pretrained(out / "vae").eval()
    scaling = float(vae.config.scaling_factor)
    x_held = images_to_unit(held["images"])
    clf = load_style_classifier()
    reference = held["audio"]
    labels = torch.arange(len(STYLES)).repeat_interleave(max(1, args.n_eval // len(STYLES)))
    prompts = prompts_for(labels)

    def generated(model: UNet2DConditionModel, guidance: float) -> torch.Tensor:
        z = sample(model, text, prompts, guidance, args.sample_steps, args.seed + 7)
        return decode(vae, z / scaling)

    ev = judge(generated(unet, args.guidance), labels, prompts, reference, text, clf, args.seed)
    print("trained", json.dumps(ev), flush=True)
    ev_free = judge(generated(unet, 1.0), labels, prompts, reference, text, clf, args.seed)
    ev_untrained = judge(generated(untrained, args.guidance), labels, prompts, reference, text, clf, args.seed)
    print("untrained", json.dumps(ev_untrained), flush=True)
    pick = torch.cat([torch.nonzero(held["labels"] == k)[: len(labels) // len(STYLES), 0] for k in range(len(STYLES))])
    held_prompts = prompts_for(held["labels"][pick])
    ev_rec = judge(decode(vae, encode(vae, x_held[pick])), held["labels"][pick], held_prompts, reference, text, clf,
                   args.seed)
    ev_real = judge(x_held[pick], held["labels"][pick], held_prompts, reference, text, clf, args.seed)
    sizes = {p: sum(f.stat().st_size for f in (out / p).iterdir() if f.is_file()) / 1e6 for p in ("vae", "unet")}
    return {"eval": ev, "eval_no_guidance": ev_free, "eval_untrained": ev_untrained,
            "eval_vae_reconstructions": ev_rec, "eval_real_mels": ev_real,
            "fd_ratio": round(ev["fd"] / ev_untrained["fd"], 4), "sizes_mb": sizes, "weights_dtype": "float16",
            "evaluated_on": "stored weights"}


def write_outputs(out: Path, info: dict, args: argparse.Namespace) -> None:
    """``config.json``: the settings a sampler needs, with ``info`` (training facts and evidence) under training."""
    config = {"model_type": "course-text-audio-ldm", "text_encoder": "checkpoints/text-audio-embedding",
              "mel": dict(MEL), "latent_shape": list(LATENT_SHAPE), "guidance_scale": args.guidance,
              "sample_steps": args.sample_steps, "styles": STYLES, "training": info}
    write_json(out / "config.json", config, indent=1)


def evaluate_only(out: Path, text: TextAudioModel, held: dict, args: argparse.Namespace) -> dict:
    """Re-judge the folder ``out`` as stored; rewrite its card and config.json, keeping the training facts."""
    config_path, card_path = out / "config.json", out / "README.md"
    if not (config_path.is_file() and (out / "unet").is_dir() and (out / "vae").is_dir()):
        raise SystemExit(f"--evaluate-only: {out} holds no trained model (config.json, unet/, vae/); "
                         "train it first (run without --evaluate-only) or point --out at it")
    info = json.loads(config_path.read_text())["training"]
    old_card = card_path.read_text(encoding="utf-8") if card_path.is_file() else ""
    if "total_seconds" not in info:  # older runs kept it in the card only
        found = re.search(r"^- (\d+) s in all", old_card, flags=re.M)
        info["total_seconds"] = float(found.group(1)) if found else float("nan")
    untrained = untrained_unet(info["text_width"], info["seed"])
    args.seed = info["seed"]
    info.update(evaluate_stored(out, untrained, text, held, args), n_eval=args.n_eval, guidance=args.guidance,
                sample_steps=args.sample_steps)
    write_outputs(out, info, args)
    card = make_model_card(info)
    section = re.compile(r"^## Training.*?(?=^## )", flags=re.S | re.M)
    kept = section.search(old_card)
    if kept:  # the training section as written after training (it may say how the stages were run)
        card = section.sub(lambda _: kept.group(0), card, count=1)
    write_model_card(out, card)
    print(json.dumps({k: info[k] for k in ("fd_ratio", "sizes_mb")}), flush=True)
    return info


def make_model_card(info: dict) -> str:
    """README.md: the parts, data, training, the evidence, the command."""
    ev, un, ceil = info["eval"], info["eval_untrained"], info["eval_real_mels"]
    rec = info["eval_vae_reconstructions"]
    return f"""# text-audio-ldm: a small course-trained text-to-audio latent diffusion model

AudioLDM in miniature, trained from scratch on course-made music (six styles: {", ".join(STYLES)}):

| part | what | size |
|---|---|---:|
| `vae/` | `diffusers.AutoencoderKL`: 1 x 64 x 64 mel image <-> {LATENT_SHAPE[0]} x {LATENT_SHAPE[1]} x {LATENT_SHAPE[2]} latent (each side 4x smaller, 16x fewer positions), scaling factor {info["scaling_factor"]:.4f} | {info["sizes_mb"]["vae"]:.2f} MB |
| `unet/` | `diffusers.UNet2DConditionModel`, cross-attention (dim {info["text_width"]}) on the text states, EMA weights | {info["sizes_mb"]["unet"]:.2f} MB |
| `scheduler/` | `diffusers.DDIMScheduler` (1000 training steps, cosine schedule, epsilon prediction) | |
| text encoder | `checkpoints/text-audio-embedding` (`TextAudioModel.text_states`, frozen; the empty prompt = all zeros) | |

Both parts store their weights in float16 (`from_pretrained` loads them into float32 parameters); every
number below was measured on the weights as stored.

Mel images are `course_lib.Mel(**{MEL})` (22 050 Hz, 1.49 s); sound comes back by Griffin-Lim
(`Mel.images_to_audio`). `config.json` holds these settings and the guidance scale.

```python
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from course_lib.models.text_audio import load_text_audio_model
unet = UNet2DConditionModel.from_pretrained("checkpoints/text-audio-ldm", subfolder="unet")
vae = AutoencoderKL.from_pretrained("checkpoints/text-audio-ldm", subfolder="vae")
scheduler = DDIMScheduler.from_pretrained("checkpoints/text-audio-ldm", subfolder="scheduler")
text = load_text_audio_model()
cond, _ = text.text_states(["fast techno"]); null = torch.zeros_like(cond)
# DDIM from noise (1, 4, 16, 16): eps = eps(null) + {info["guidance"]} * (eps(cond) - eps(null)); then
# vae.decode(z / vae.config.scaling_factor).sample is the mel image in [-1, 1]
```

## Data
`scripts/_text_audio.py`: {info["n_train"]} training clips per style (seeds {TRAIN_SEED0}..{TRAIN_SEED0 + info["n_train"] - 1},
{info["n_train_images"]} mel images) with captions drawn afresh for every use (style word, tempo, instruments,
mood); held-out clips seeds {HELD_OUT_SEED0}+ ({info["n_held_out_images"]} images) are the reference of every Fréchet distance.

## Training (CPU, {info["threads"]} threads, seed {info["seed"]})
- VAE: {info["ae_steps"]} steps, batch {info["ae_batch"]}, AdamW lr {info["ae_lr"]}, L1 + 1e-6 KL; {info["ae_seconds"]:.0f} s; final loss {info["ae_final_loss"]:.4f}.
  Then the decoder alone (encoder frozen, so the latents do not move): {info["decoder_steps"]} steps, L1 on the image and on
  its time and frequency differences (against blur); {info["decoder_seconds"]:.0f} s; final loss {info["decoder_final_loss"]:.4f}.
- UNet: {info["unet_steps"]} steps, batch {info["batch_size"]}, AdamW lr {info["lr"]} (warm-up, cosine), caption dropout
  {info["caption_dropout"] * 100:.0f} %, EMA {info["ema"]}; {info["unet_seconds"]:.0f} s; final loss {info["unet_final_loss"]:.4f}.
- {info["total_seconds"]:.0f} s in all, on whatever else the machine was doing.

## Evidence ({ev["n"]} generated clips, {ev["n"] // len(STYLES)} per style, DDIM {info["sample_steps"]} steps, guidance {info["guidance"]})
Prompts name one style each (`style_prompt`, four wordings, e.g. "dreamy ambient", "techno music").
The judge is the course's style classifier (`checkpoints/style-classifier`) on the Griffin-Lim audio;
FD is `course_lib.metrics.frechet_audio_distance` (its embedding) against {info["n_held_out_images"]} held-out clips.
All rows use the float16 weights as stored in `unet/` and `vae/` (loaded back into float32).

| clips | style heard as prompted | CLAP matched | CLAP shuffled | FD to held-out |
|---|---:|---:|---:|---:|
| **this model** | **{ev["style_accuracy"] * 100:.1f} %** | **{ev["clap_matched"]:.3f}** | {ev["clap_shuffled"]:.3f} | **{ev["fd"]:.2f}** |
| the same model untrained | {un["style_accuracy"] * 100:.1f} % | {un["clap_matched"]:.3f} | {un["clap_shuffled"]:.3f} | {un["fd"]:.2f} |
| held-out mels through the VAE | {rec["style_accuracy"] * 100:.1f} % | {rec["clap_matched"]:.3f} | {rec["clap_shuffled"]:.3f} | {rec["fd"]:.2f} |
| held-out mels (Griffin-Lim only) | {ceil["style_accuracy"] * 100:.1f} % | {ceil["clap_matched"]:.3f} | {ceil["clap_shuffled"]:.3f} | {ceil["fd"]:.2f} |

FD ratio trained / untrained: **{ev["fd"] / un["fd"]:.3f}**. Per style (this model): {ev["per_style"]};
what the classifier heard: {ev["heard"]}. Without guidance (scale 1): {info["eval_no_guidance"]["style_accuracy"] * 100:.1f} %
heard as prompted, FD {info["eval_no_guidance"]["fd"]:.2f}.

## Reproduce
```bash
python scripts/train_text_audio_embedding.py   # first: the text encoder
{info["command"]}
```
Limits: six synthetic styles and the course's words; 1.49 s at 64 mel bands, with Griffin-Lim's phasey
sound: it makes recognisable style textures, not songs.
"""


def main(argv: list[str] | None = None) -> dict:
    """Train both stages, evaluate, save the diffusers folders and the model card; return the summary."""
    parser = training_arguments("text-audio-ldm", __doc__.split("\n")[0], batch_size=48, lr=1e-3)
    parser.add_argument("--text-model", default=str(checkpoint_dir("text-audio-embedding")),
                        help="the trained text-audio embedding")
    parser.add_argument("--n-train", type=int, default=100, help="training clips per style")
    parser.add_argument("--n-held-out", type=int, default=20, help="held-out clips per style")
    parser.add_argument("--ae-steps", type=int, default=500)
    parser.add_argument("--ae-batch", type=int, default=32)
    parser.add_argument("--ae-lr", type=float, default=1e-3)
    parser.add_argument("--decoder-steps", type=int, default=400, help="decoder fine-tuning, encoder frozen")
    parser.add_argument("--unet-steps", type=int, default=2400)
    parser.add_argument("--caption-dropout", type=float, default=0.1)
    parser.add_argument("--ema", type=float, default=0.999)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--n-eval", type=int, default=120, help="generated clips to judge (a multiple of 6)")
    parser.add_argument("--stage", choices=("all", "vae", "decoder", "unet"), default="all",
                        help="vae: train and save only vae/; decoder: only fine-tune the decoder of the vae/ in --out; "
                             "unet: reuse the vae/ in --out. vae, then decoder and unet (in parallel if you like) "
                             "give the same result as all")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="train nothing: evaluate the folder in --out as stored, rewrite its card and config.json")
    args = parser.parse_args(argv)

    t0 = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    text = TextAudioModel.from_pretrained(args.text_model).requires_grad_(False)
    held = mel_dataset(args.n_held_out, HELD_OUT_SEED0)
    x_held = images_to_unit(held["images"])
    out = Path(args.out)
    if args.evaluate_only:
        return evaluate_only(out, text, held, args)
    train = mel_dataset(args.n_train, TRAIN_SEED0)
    x_train = images_to_unit(train["images"])

    def save_vae(notes: dict) -> None:
        save_pretrained_atomically(out / "vae", vae.save_pretrained)
        write_json(out / "vae" / "training.json", notes, indent=None)

    if args.stage in ("unet", "decoder"):
        vae = AutoencoderKL.from_pretrained(out / "vae")
        notes = json.loads((out / "vae" / "training.json").read_text())
    else:
        vae = make_vae()
        t_ae = time.time()
        losses = train_vae(vae, x_train, args.ae_steps, args.ae_batch, args.ae_lr, args.seed)
        notes = {"seconds": round(time.time() - t_ae, 1), "losses": losses}
        if args.stage == "vae":
            save_vae(notes)
            return notes
    if args.stage in ("all", "decoder"):
        t_dec = time.time()
        losses = finetune_decoder(vae, x_train, args.decoder_steps, args.ae_batch, args.ae_lr / 2, args.seed)
        notes.update(decoder_seconds=round(time.time() - t_dec, 1), decoder_losses=losses)
        if args.stage == "decoder":
            save_vae(notes)
            return notes
    vae.requires_grad_(False).eval()
    raw = encode(vae, x_train)
    scaling = float(1.0 / raw.std())
    vae.register_to_config(scaling_factor=scaling)
    latents = raw * scaling

    untrained = untrained_unet(text.config["text_width"], args.seed)
    unet = copy.deepcopy(untrained).train()
    t_unet = time.time()
    ema, unet_losses = train_unet(unet, text, latents, train["labels"], train["seeds"], args)
    unet_seconds = time.time() - t_unet
    save_float16(ema, out / "unet")  # before the (slow) evaluation

    if args.stage == "unet":  # pick up the fine-tuned decoder; the encoder must be the one the UNet learnt on
        encoder = {k: v.clone() for k, v in vae.encoder.state_dict().items()}
        vae = AutoencoderKL.from_pretrained(out / "vae").eval()
        notes = json.loads((out / "vae" / "training.json").read_text())
        if "decoder_losses" not in notes or any(not torch.equal(v, vae.encoder.state_dict()[k])
                                                for k, v in encoder.items()):
            raise SystemExit("vae/: run --stage decoder to the end before the unet stage evaluates")
        vae.register_to_config(scaling_factor=scaling)
    ae_losses, ae_seconds = notes["losses"], notes["seconds"]

    write_json(out / "vae" / "training.json", notes, indent=None)
    save_float16(vae, out / "vae")
    save_float16(ema, out / "unet")
    save_pretrained_atomically(out / "scheduler", DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
        clip_sample=False).save_pretrained)
    evals = evaluate_stored(out, untrained, text, held, args)
    command = command_line(parser, args).replace(f" --text-model {args.text_model}", "").replace(" --stage unet", "")
    info = {"seed": args.seed, "threads": args.threads, "n_train": args.n_train, "n_train_images": len(x_train),
            "n_held_out_images": len(x_held), "ae_steps": args.ae_steps, "ae_batch": args.ae_batch,
            "ae_lr": args.ae_lr, "ae_seconds": round(ae_seconds, 1),
            "ae_final_loss": round(float(np.mean(ae_losses[-50:])), 4), "scaling_factor": scaling,
            "decoder_steps": args.decoder_steps, "decoder_seconds": notes["decoder_seconds"],
            "decoder_final_loss": round(float(np.mean(notes["decoder_losses"][-50:])), 4),
            "unet_steps": args.unet_steps, "batch_size": args.batch_size, "lr": args.lr,
            "caption_dropout": args.caption_dropout, "ema": args.ema, "unet_seconds": round(unet_seconds, 1),
            "unet_final_loss": round(float(np.mean(unet_losses[-100:])), 4), "guidance": args.guidance,
            "sample_steps": args.sample_steps, "text_width": text.config["text_width"], **evals,
            "command": command, "total_seconds": round(time.time() - t0, 1)}
    write_json(out / "losses.json", {"vae": [round(v, 5) for v in ae_losses],
                                     "decoder": [round(v, 5) for v in notes["decoder_losses"]], "unet": [round(v, 5) for v in unet_losses]},
               indent=None)
    write_outputs(out, info, args)
    write_model_card(out, make_model_card(info))
    print(json.dumps({k: info[k] for k in ("fd_ratio", "sizes_mb", "total_seconds")}), flush=True)
    return info


if __name__ == "__main__":
    main()
