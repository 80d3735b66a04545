"""Builders of the Hub repos the course loads online, in their real layouts, with small random weights.

Each builder writes one repo under ``root`` (``root/models/<org>/<name>`` or ``root/datasets/<org>/<name>``)
and returns its folder. Weights are random (seeded: the same bytes on every build) and small, so that
the whole set is built in seconds and stays a few MB; configurations keep the real numbers where the
course reads them (image size and Mel settings, codebooks, sampling rates, columns).

- :func:`build_audio_diffusion`: ``teticio/audio-diffusion-instrumental-hiphop-256`` (diffusers'
  ``AudioDiffusionPipeline`` folder: ``unet/`` with ``.bin`` weights only, ``scheduler/``, ``mel/``).
- :func:`build_musicgen`: ``facebook/musicgen-small`` (``MusicgenForConditionalGeneration`` plus the
  T5 tokenizer files and ``preprocessor_config.json``; like the real repo, no ``processor_config.json``).
- :func:`build_music_genres`: ``lewtun/music_genres`` (parquet; audio at 44.1 kHz, song_id, genre_id, genre).
- :func:`build_gtzan`: ``sanchit-gandhi/gtzan`` (parquet; file, audio at 22.05 kHz, genre as a ClassLabel).
- :func:`build_all`: all four.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

AUDIO_DIFFUSION_ID = "teticio/audio-diffusion-instrumental-hiphop-256"
MUSICGEN_ID = "facebook/musicgen-small"
MUSIC_GENRES_ID = "lewtun/music_genres"
GTZAN_ID = "sanchit-gandhi/gtzan"
SEED = 17

# lewtun/music_genres genre names (a subset of its 19), each with the course style that stands in for it.
MUSIC_GENRES = {
    "Electronic": "techno",
    "Rock": "rock",
    "Hip-Hop": "hiphop",
    "Chiptune / Glitch": "chiptune",
    "Jazz": "jazz",
    "Ambient Electronic": "ambient",
    "Classical": "ambient",
}
# sanchit-gandhi/gtzan's ClassLabel names, in order, with stand-in styles.
GTZAN_GENRES = {
    "blues": "jazz", "classical": "ambient", "country": "rock", "disco": "techno", "hiphop": "hiphop",
    "jazz": "jazz", "metal": "rock", "pop": "chiptune", "reggae": "hiphop", "rock": "rock",
}


def _repo_dir(root: str | Path, kind: str, repo_id: str) -> Path:
    folder = Path(root) / f"{kind}s" / repo_id
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- teticio's pipeline


def build_audio_diffusion(root: str | Path) -> Path:
    """``teticio/audio-diffusion-instrumental-hiphop-256`` with a tiny random 256 x 256 UNet.

    The layout and configs are the real repo's (diffusers 0.10-era files: ``sample_size`` an int,
    ``mel`` listed as ``["diffusers", "Mel"]``, weights as ``diffusion_pytorch_model.bin`` only);
    only the UNet's widths and depth are small.
    """
    import torch
    from diffusers import UNet2DModel

    folder = _repo_dir(root, "model", AUDIO_DIFFUSION_ID)
    _write_json(folder / "model_index.json", {
        "_class_name": "AudioDiffusionPipeline",
        "_diffusers_version": "0.10.0.dev0",
        # Until January 2024 this said ["audio_diffusion", "Mel"], which diffusers >= 0.25 refuses
        # (diffusers issue 6463); teticio then changed his repos to the value below.
        "mel": ["diffusers", "Mel"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "unet": ["diffusers", "UNet2DModel"],
        "vqvae": [None, None],
    })
    unet_config = {
        "_class_name": "UNet2DModel",
        "_diffusers_version": "0.10.0.dev0",
        "act_fn": "silu",
        "attention_head_dim": 8,
        "block_out_channels": [16, 16, 32, 32],  # the real model: [128, 128, 256, 256, 512, 512]
        "center_input_sample": False,
        "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
        "downsample_padding": 0,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 1,
        "layers_per_block": 1,  # the real model: 2
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "norm_num_groups": 8,
        "out_channels": 1,
        "sample_size": 256,
        "time_embedding_type": "positional",
        "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
    }
    _write_json(folder / "unet" / "config.json", unet_config)
    torch.manual_seed(SEED)
    unet = UNet2DModel.from_config({k: v for k, v in unet_config.items() if not k.startswith("_")})
    torch.save(unet.state_dict(), folder / "unet" / "diffusion_pytorch_model.bin")
    _write_json(folder / "scheduler" / "scheduler_config.json", {
        "_class_name": "DDPMScheduler",
        "_diffusers_version": "0.10.0.dev0",
        "beta_end": 0.02,
        "beta_schedule": "linear",
        "beta_start": 0.0001,
        "clip_sample": True,
        "num_train_timesteps": 1000,
        "trained_betas": None,
        "variance_type": "fixed_small",
    })
    _write_json(folder / "mel" / "mel_config.json", {
        "_class_name": "Mel",
        "_diffusers_version": "0.10.0.dev0",
        "hop_length": 512,
        "n_fft": 2048,
        "n_iter": 32,
        "sample_rate": 22050,
        "top_db": 80,
        "x_res": 256,
        "y_res": 256,
    })
    (folder / "README.md").write_text(
        "---\nlicense: gpl-3.0\ntags:\n- audio\n- spectrograms\ndatasets:\n- teticio/audio-diffusion-instrumental-hiphop-256\n"
        "---\n\n# Hub stand-in for teticio/audio-diffusion-instrumental-hiphop-256\n\n"
        "Real layout, tiny RANDOM UNet (tests only).\n", encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------- musicgen-small


def build_musicgen(root: str | Path) -> Path:
    """``facebook/musicgen-small`` with its real configuration numbers and tiny widths and depths.

    Kept as in the real model: 4 codebooks of 2048 codes (EnCodec at 32 kHz, 50 frames/s, 2.2 kbit/s
    giving 4 quantizers), pad/bos id 2048, 2048 decoder positions, a T5 text encoder with T5's
    32 128-entry vocabulary, and the generation config (sampling, guidance 3, top-k 250, 1500 tokens).
    The tokenizer files are the course's tiny T5 tokenizer (``checkpoints/tiny-musicgen``).
    """
    import torch
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    from course_lib.hub import checkpoint_dir

    folder = _repo_dir(root, "model", MUSICGEN_ID)
    torch.manual_seed(SEED)
    text_config = T5Config(
        vocab_size=32128, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, feed_forward_proj="relu",
    )
    audio_config = EncodecConfig(
        sampling_rate=32_000, audio_channels=1, target_bandwidths=[2.2], hidden_size=16, num_filters=4,
        num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], num_lstm_layers=1, codebook_size=2048,
        codebook_dim=16, use_causal_conv=False, norm_type="weight_norm", normalize=False,
        chunk_length_s=None, overlap=None, use_conv_shortcut=False,
    )
    if audio_config.num_quantizers != 4 or audio_config.frame_rate != 50:
        raise AssertionError(f"EnCodec: {audio_config.num_quantizers} quantizers at {audio_config.frame_rate} Hz")
    decoder_config = MusicgenDecoderConfig(
        vocab_size=2048, max_position_embeddings=2048, num_hidden_layers=1, ffn_dim=64, num_attention_heads=4,
        hidden_size=32, num_codebooks=4, audio_channels=1, pad_token_id=2048, bos_token_id=2048,
        dropout=0.1, activation_function="gelu",
    )
    config = MusicgenConfig(text_encoder=text_config, audio_encoder=audio_config, decoder=decoder_config)
    model = MusicgenForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():  # a fresh EnCodec has all-zero codebooks: every code would sound the same
        for layer in model.audio_encoder.quantizer.layers:
            book = layer.codebook
            book.embed.copy_(torch.randn(book.embed.shape, generator=generator))
            if hasattr(book, "embed_avg"):
                book.embed_avg.copy_(book.embed)
            if hasattr(book, "cluster_size"):
                book.cluster_size.fill_(1.0)
            if hasattr(book, "inited"):
                book.inited.fill_(True)
    model.save_pretrained(folder, safe_serialization=True)
    # The real generation config (written by hand: save_pretrained would add this version's defaults).
    _write_json(folder / "generation_config.json", {
        "_from_model_config": False,
        "bos_token_id": 2048,
        "decoder_start_token_id": 2048,
        "do_sample": True,
        "guidance_scale": 3.0,
        "max_length": 1500,
        "pad_token_id": 2048,
        "top_k": 250,
        "transformers_version": "4.31.0.dev0",
    })
    _write_json(folder / "preprocessor_config.json", {
        "chunk_length_s": None,
        "feature_extractor_type": "EncodecFeatureExtractor",
        "feature_size": 1,
        "overlap": None,
        "padding_side": "left",
        "padding_value": 0.0,
        "processor_class": "MusicgenProcessor",
        "return_attention_mask": True,
        "sampling_rate": 32000,
    })
    tiny = checkpoint_dir("tiny-musicgen")
    shutil.copyfile(tiny / "tokenizer.json", folder / "tokenizer.json")
    tokenizer_config = json.loads((tiny / "tokenizer_config.json").read_text())
    tokenizer_config.pop("backend", None)
    tokenizer_config["processor_class"] = "MusicgenProcessor"
    _write_json(folder / "tokenizer_config.json", tokenizer_config)
    _write_json(folder / "special_tokens_map.json", {
        "additional_special_tokens": tokenizer_config.get("extra_special_tokens", []),
        "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
    })
    (folder / "README.md").write_text(
        "---\ninference: true\ntags:\n- musicgen\nlicense: cc-by-nc-4.0\npipeline_tag: text-to-audio\n---\n\n"
        "# Hub stand-in for facebook/musicgen-small\n\nReal configuration numbers, tiny RANDOM weights (tests only).\n",
        encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------- datasets


def _wav_bytes(clip: np.ndarray, sample_rate: int) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(clip, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _dataset_card(features_yaml: str, splits: dict[str, tuple[int, int]], title: str) -> str:
    """A dataset card whose YAML says the features (so ``audio`` is an ``Audio`` column) and the splits."""
    split_yaml = "".join(f"  - name: {name}\n    num_bytes: {size}\n    num_examples: {n}\n"
                         for name, (n, size) in splits.items())
    files_yaml = "".join(f"  - split: {name}\n    path: data/{name}-*\n" for name in splits)
    return (f"---\ndataset_info:\n  features:\n{features_yaml}  splits:\n{split_yaml}"
            f"configs:\n- config_name: default\n  data_files:\n{files_yaml}---\n\n"
            f"# Hub stand-in for {title}\n\nCourse-made audio in the real columns (tests only).\n")


def _write_parquet(folder: Path, split: str, rows: dict[str, list], features) -> tuple[int, int]:
    """Write one split as ``data/{split}-00000-of-00001.parquet``; return (rows, bytes in memory)."""
    import datasets

    path = folder / "data" / f"{split}-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset = datasets.Dataset.from_dict(rows, features=features)
    dataset.to_parquet(str(path))
    return len(dataset), int(dataset.data.nbytes)


def build_music_genres(root: str | Path, clips_per_genre: int = 2, seconds: float = 3.0) -> Path:
    """``lewtun/music_genres``: course-made clips at 44.1 kHz for a few of its genres; splits train and test.

    Columns as the real dataset: ``audio`` (an ``Audio`` feature of WAV bytes), ``song_id``,
    ``genre_id`` and ``genre`` (the real genre names, e.g. ``"Hip-Hop"``, ``"Electronic"``).
    """
    import datasets

    from course_lib import synth

    folder = _repo_dir(root, "dataset", MUSIC_GENRES_ID)
    features = datasets.Features({
        "audio": datasets.Audio(sampling_rate=44100), "song_id": datasets.Value("int64"),
        "genre_id": datasets.Value("int64"), "genre": datasets.Value("string"),
    })
    sizes = {}
    for split, per_genre, offset in (("train", clips_per_genre, 0), ("test", 1, 1000)):
        rows: dict[str, list] = {"audio": [], "song_id": [], "genre_id": [], "genre": []}
        for i in range(per_genre):
            for genre_id, (genre, style) in enumerate(MUSIC_GENRES.items()):
                song_id = offset + 100 * genre_id + i
                clip = synth.music_clip(style, seconds, 44100, seed=SEED * 10_000 + song_id)
                rows["audio"].append({"bytes": _wav_bytes(clip, 44100), "path": f"{song_id}.wav"})
                rows["song_id"].append(song_id)
                rows["genre_id"].append(genre_id)
                rows["genre"].append(genre)
        sizes[split] = _write_parquet(folder, split, rows, features)
    features_yaml = ("  - name: audio\n    dtype:\n      audio:\n        sampling_rate: 44100\n  - name: song_id\n    dtype: int64\n"
                     "  - name: genre_id\n    dtype: int64\n  - name: genre\n    dtype: string\n")
    (folder / "README.md").write_text(_dataset_card(features_yaml, sizes, MUSIC_GENRES_ID), encoding="utf-8")
    return folder


def build_gtzan(root: str | Path, clips_per_genre: int = 1, seconds: float = 3.0) -> Path:
    """``sanchit-gandhi/gtzan``: course-made clips at 22.05 kHz, one train split.

    Columns as the real dataset: ``file`` (the GTZAN file name), ``audio`` (an ``Audio`` feature) and
    ``genre`` (a ``ClassLabel`` over blues, classical, ..., rock).
    """
    import datasets

    from course_lib import synth

    folder = _repo_dir(root, "dataset", GTZAN_ID)
    names = list(GTZAN_GENRES)
    features = datasets.Features({
        "file": datasets.Value("string"), "audio": datasets.Audio(sampling_rate=22050),
        "genre": datasets.ClassLabel(names=names),
    })
    rows: dict[str, list] = {"file": [], "audio": [], "genre": []}
    for i in range(clips_per_genre):
        for label, (genre, style) in enumerate(GTZAN_GENRES.items()):
            name = f"{genre}.{i:05d}.wav"
            clip = synth.music_clip(style, seconds, 22050, seed=SEED * 20_000 + 100 * label + i)
            rows["file"].append(f"/gtzan/genres/{genre}/{name}")
            rows["audio"].append({"bytes": _wav_bytes(clip, 22050), "path": name})
            rows["genre"].append(label)
    sizes = {"train": _write_parquet(folder, "train", rows, features)}
    label_yaml = "".join(f"          '{i}': {n}\n" for i, n in enumerate(names))
    features_yaml = ("  - name: file\n    dtype: string\n  - name: audio\n    dtype:\n      audio:\n"
                     "        sampling_rate: 22050\n  - name: genre\n    dtype:\n      class_label:\n"
                     f"        names:\n{label_yaml}")
    (folder / "README.md").write_text(_dataset_card(features_yaml, sizes, GTZAN_ID),
                                      encoding="utf-8")
    return folder


def build_all(root: str | Path) -> Path:
    """Build every repo the course loads online under ``root``; returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    build_audio_diffusion(root)
    build_musicgen(root)
    build_music_genres(root)
    build_gtzan(root)
    return root
