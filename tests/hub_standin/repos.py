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
- :func:`build_clap`: ``laion/clap-htsat-unfused`` (``ClapModel`` with tiny untrained towers, the real
  48 kHz feature extractor, a tiny RoBERTa BPE tokenizer), the online judge of lesson 03.
- :func:`build_audioldm2`: ``cvssp/audioldm2-music`` (diffusers' ``AudioLDM2Pipeline`` folder: CLAP and T5
  text encoders, projection, GPT-2, UNet, VAE, HiFi-GAN vocoder, all tiny and untrained), lesson 07's online model.
- :func:`build_all`: all six.
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
CLAP_ID = "laion/clap-htsat-unfused"
AUDIOLDM2_ID = "cvssp/audioldm2-music"
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
    with torch.no_grad():  # a near-zero output layer (a common initialisation): a smooth noise predictor, so
        unet.conv_out.weight.mul_(1e-3)  # that lesson 02's DDIM inversion round trip holds for the stand-in too
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
        "Real layout, tiny RANDOM UNet (untrained; tests only; output layer scaled to near zero).\n", encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------- musicgen-small


def _randomise_codebooks(model, seed: int) -> None:
    """Give EnCodec's codebooks random entries (``course_lib.musicgen.randomise_codebooks``, the shipped stand-in's)."""
    from course_lib.musicgen import randomise_codebooks

    randomise_codebooks(model, seed)


# musicgen-small's and musicgen-melody's stand-ins share these tiny widths (the real numbers are in the comments).
TINY_MUSICGEN_DECODER = dict(  # real: hidden 1024 (small) / 1536 (melody), 24 / 48 layers
    vocab_size=2048, max_position_embeddings=2048, num_hidden_layers=1, ffn_dim=64, num_attention_heads=4,
    hidden_size=32, num_codebooks=4, audio_channels=1, pad_token_id=2048, bos_token_id=2048,
    dropout=0.1, activation_function="gelu",
)


def _tiny_t5_and_encodec_configs():
    """A tiny T5 text encoder (T5's real vocabulary) and a tiny EnCodec with the real 32 kHz token layout
    (4 codebooks of 2048 codes, 50 frames/s)."""
    from transformers import EncodecConfig, T5Config

    text_config = T5Config(  # real: t5-base (768 wide, 12 layers)
        vocab_size=32128, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, feed_forward_proj="relu",
    )
    audio_config = EncodecConfig(  # real: facebook/encodec_32khz (hidden 128, 64 filters, codebook_dim 128)
        sampling_rate=32_000, audio_channels=1, target_bandwidths=[2.2], hidden_size=16, num_filters=4,
        num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], num_lstm_layers=1, codebook_size=2048,
        codebook_dim=16, use_causal_conv=False, norm_type="weight_norm", normalize=False,
        chunk_length_s=None, overlap=None, use_conv_shortcut=False,
    )
    if audio_config.num_quantizers != 4 or audio_config.frame_rate != 50:
        raise AssertionError(f"EnCodec: {audio_config.num_quantizers} quantizers at {audio_config.frame_rate} Hz")
    return text_config, audio_config


def build_musicgen(root: str | Path) -> Path:
    """``facebook/musicgen-small`` with its real configuration numbers and tiny widths and depths.

    Kept as in the real model: 4 codebooks of 2048 codes (EnCodec at 32 kHz, 50 frames/s, 2.2 kbit/s
    giving 4 quantizers), pad/bos id 2048, 2048 decoder positions, a T5 text encoder with T5's
    32 128-entry vocabulary, and the generation config (sampling, guidance 3, top-k 250, 1500 tokens).
    The tokenizer files are the course's tiny T5 tokenizer (``checkpoints/tiny-musicgen``).
    """
    import torch
    from transformers import MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration

    folder = _repo_dir(root, "model", MUSICGEN_ID)
    torch.manual_seed(SEED)
    text_config, audio_config = _tiny_t5_and_encodec_configs()
    decoder_config = MusicgenDecoderConfig(**TINY_MUSICGEN_DECODER)
    config = MusicgenConfig(text_encoder=text_config, audio_encoder=audio_config, decoder=decoder_config)
    model = MusicgenForConditionalGeneration(config).eval()
    _randomise_codebooks(model, SEED)
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
    _write_t5_tokenizer(folder, processor_class="MusicgenProcessor")
    (folder / "README.md").write_text(
        "---\ninference: true\ntags:\n- musicgen\nlicense: cc-by-nc-4.0\npipeline_tag: text-to-audio\n---\n\n"
        "# Hub stand-in for facebook/musicgen-small\n\nReal configuration numbers, tiny RANDOM weights (tests only).\n",
        encoding="utf-8")
    return folder


def _write_t5_tokenizer(folder: Path, processor_class: str | None = None, model_max_length: int | None = None) -> None:
    """Write the course's tiny T5 tokenizer (``checkpoints/tiny-musicgen``: T5's 32 128 ids) into ``folder``."""
    from course_lib.hub import checkpoint_dir

    folder.mkdir(parents=True, exist_ok=True)
    tiny = checkpoint_dir("tiny-musicgen")
    shutil.copyfile(tiny / "tokenizer.json", folder / "tokenizer.json")
    tokenizer_config = json.loads((tiny / "tokenizer_config.json").read_text())
    tokenizer_config.pop("backend", None)
    tokenizer_config.pop("processor_class", None)
    if processor_class is not None:
        tokenizer_config["processor_class"] = processor_class
    if model_max_length is not None:
        tokenizer_config["model_max_length"] = model_max_length
    _write_json(folder / "tokenizer_config.json", tokenizer_config)
    _write_json(folder / "special_tokens_map.json", {
        "additional_special_tokens": tokenizer_config.get("extra_special_tokens", []),
        "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
    })


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


# ----------------------------------------------------------------------------- CLAP (lesson 03's online judge)

# Captions the tiny tokenizer's merges are learnt from (any fixed text would do).
_CLAP_CORPUS = (
    "a calm piano melody", "lo-fi hip hop beat with vinyl crackle", "fast electronic dance music",
    "a rock song with distorted guitars and drums", "ambient pads and soft synth textures",
    "a jazz trio with upright bass", "a chiptune melody from an old game console", "the sound of music",
)


def _roberta_bpe_tokenizer(vocab_size: int = 320):
    """A tiny byte-level BPE tokenizer in RoBERTa's form: <s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", AddedToken("<mask>", lstrip=True, special=True)],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(list(_CLAP_CORPUS) * 4, trainer)  # deterministic: same text, same merges
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                            add_prefix_space=False)
    return tokenizer


# The real laion/clap-htsat-unfused feature extractor (AudioLDM 2 ships the same one in feature_extractor/).
_CLAP_FEATURE_EXTRACTOR = {
    "chunk_length_s": 10,
    "feature_extractor_type": "ClapFeatureExtractor",
    "feature_size": 64,
    "fft_window_size": 1024,
    "frequency_max": 14000,
    "frequency_min": 50,
    "hop_length": 480,
    "max_length_s": 10,
    "n_fft": 1024,
    "nb_frequency_bins": 513,
    "nb_max_frames": 1000,
    "nb_max_samples": 480000,
    "padding": "repeatpad",
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "ClapProcessor",
    "return_attention_mask": False,
    "sampling_rate": 48000,
    "top_db": None,
    "truncation": "rand_trunc",  # the fused model's is "fusion"
}


def _write_clap_tokenizer(folder: Path) -> int:
    """Write the tiny RoBERTa BPE tokenizer's files (as the real repos hold them) into ``folder``; its vocab size."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _roberta_bpe_tokenizer()
    tokenizer.save(str(folder / "tokenizer.json"))
    tokenizer.model.save(str(folder))  # vocab.json and merges.txt
    _write_json(folder / "special_tokens_map.json", {
        "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
        "mask_token": {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False,
                       "single_word": False},
        "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>",
    })
    _write_json(folder / "tokenizer_config.json", {
        "add_prefix_space": False, "bos_token": "<s>", "clean_up_tokenization_spaces": True, "cls_token": "<s>",
        "eos_token": "</s>", "errors": "replace", "mask_token": "<mask>", "model_max_length": 512,
        "pad_token": "<pad>", "processor_class": "ClapProcessor", "sep_token": "</s>",
        "tokenizer_class": "RobertaTokenizer", "trim_offsets": True, "unk_token": "<unk>",
    })
    return tokenizer.get_vocab_size()


def _tiny_clap_model(vocab_size: int):
    """The tiny, UNTRAINED ``ClapModel`` (seeded): real input geometry, tiny widths, a 32-d projection."""
    import torch
    from transformers import ClapConfig, ClapModel

    config = ClapConfig(
        text_config={  # RoBERTa's ids and positions; tiny widths (real: 768 wide, 12 layers)
            "vocab_size": vocab_size, "hidden_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 514,
            "type_vocab_size": 1, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
        },
        audio_config={  # HTSAT: the real input geometry; tiny widths (real: 96 -> 768, depths 2, 2, 6, 2)
            "spec_size": 256, "num_mel_bins": 64, "window_size": 8, "patch_size": 4, "patch_stride": [4, 4],
            "enable_fusion": False, "depths": [1, 1, 1, 1], "num_attention_heads": [1, 1, 2, 2],
            "patch_embeds_hidden_size": 8, "hidden_size": 64,  # hidden = patch width x 2 ** (stages - 1)
        },
        projection_dim=32,
        projection_hidden_act="relu",
        logit_scale_init_value=1 / 0.07,
    )
    torch.manual_seed(SEED)
    model = ClapModel(config).eval()
    model.config.architectures = ["ClapModel"]
    return model


def build_clap(root: str | Path) -> Path:
    """``laion/clap-htsat-unfused``: an UNTRAINED tiny ``ClapModel`` behind the real feature extractor.

    Kept as in the real repo: the files (``config.json``, ``model.safetensors`` and ``pytorch_model.bin``,
    ``preprocessor_config.json``, RoBERTa's tokenizer files), the feature extractor's values (64 mel bins,
    48 kHz, hop 480, 10 s, ``rand_trunc``, ``repeatpad``) and the HTSAT input geometry that must match it
    (spec_size 256 = 64 mel bins x freq_ratio 4, patches 4 x 4, window 8, no fusion), so a real-length
    input (1001 frames x 64 bins) goes through. Small: widths, depths, a 32-d projection (real: 512),
    a 320-token vocabulary (real: 50 265). Its embeddings mean nothing; the model card says so.
    """
    import torch

    folder = _repo_dir(root, "model", CLAP_ID)
    vocab_size = _write_clap_tokenizer(folder)
    _write_json(folder / "preprocessor_config.json", _CLAP_FEATURE_EXTRACTOR)
    model = _tiny_clap_model(vocab_size)
    model.save_pretrained(folder, safe_serialization=True)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "README.md").write_text(
        "---\nlicense: apache-2.0\n---\n\n# Hub stand-in for laion/clap-htsat-unfused\n\n"
        "An UNTRAINED stand-in for tests: the real file layout, feature extractor and input geometry, tiny "
        "random towers. Its embeddings are meaningless; use it only to check that code runs.\n",
        encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------- AudioLDM 2 (lesson 07 online)

# The components of cvssp/audioldm2-music's model_index.json: [library, class]. "audioldm2" is diffusers'
# pipeline module that defines the projection model and the UNet with two cross-attention streams.
AUDIOLDM2_COMPONENTS = {
    "feature_extractor": ["transformers", "ClapFeatureExtractor"],
    "language_model": ["transformers", "GPT2Model"],
    "projection_model": ["audioldm2", "AudioLDM2ProjectionModel"],
    "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "ClapModel"],
    "text_encoder_2": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "RobertaTokenizerFast"],
    "tokenizer_2": ["transformers", "T5TokenizerFast"],
    "unet": ["audioldm2", "AudioLDM2UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
    "vocoder": ["transformers", "SpeechT5HifiGan"],
}
AUDIOLDM2_VAE_SCALING_FACTOR = 0.4110932946205139  # AudioLDM 2's learnt latent scale (Stable Diffusion's: 0.18215)


def _save_diffusers_model(model, folder: Path, config: dict) -> None:
    """Save a diffusers model's weights (safetensors) with a hand-written ``config.json`` (the real keys)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / "config.json", config)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})


def build_audioldm2(root: str | Path) -> Path:
    """``cvssp/audioldm2-music``: diffusers' ``AudioLDM2Pipeline`` folder with tiny UNTRAINED parts.

    The layout is the real repo's: ``model_index.json`` and one folder per component (``vae``, ``unet``,
    ``vocoder``, ``text_encoder`` (CLAP), ``text_encoder_2`` (T5 encoder), ``projection_model``,
    ``language_model`` (GPT-2), ``scheduler``, ``tokenizer``, ``tokenizer_2``, ``feature_extractor``),
    weights as safetensors. Kept as in the real model, because the pipeline and the course read them:
    16 kHz audio; the HiFi-GAN vocoder's 64 mel bins and upsampling 5 x 4 x 2 x 2 x 2 = 160 (the mel hop);
    a VAE with 1 channel in and out, 3 blocks (4x smaller per axis), 8 latent channels and AudioLDM 2's
    scaling factor; a UNet with 8 channels in and out, latent height 256 (10.24 s), one plain block then
    three with cross-attention to GPT-2's 8 generated vectors and to the T5 states (cross_attention_dim
    ``[None, gpt2, t5]`` per block); GPT-2 generating 8 vectors (``max_new_tokens``); the DDIM schedule
    (scaled linear betas 0.0015 to 0.0195, 1000 steps); the T5 tokenizer's 128-token limit; the CLAP
    feature extractor (48 kHz). Small: every width and depth, GPT-2's unused 64-token vocabulary (real:
    50 257). Unlike the real repo there is no ``tokenizer_2/spiece.model`` (the fast tokenizer's
    ``tokenizer.json`` is enough). Its sound is noise; the model card says so.
    """
    import torch
    from diffusers import AutoencoderKL
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import (
        AudioLDM2ProjectionModel,
        AudioLDM2UNet2DConditionModel,
    )
    from transformers import GPT2Config, GPT2Model, SpeechT5HifiGan, SpeechT5HifiGanConfig, T5Config, T5EncoderModel

    folder = _repo_dir(root, "model", AUDIOLDM2_ID)
    _write_json(folder / "model_index.json", {
        "_class_name": "AudioLDM2Pipeline", "_diffusers_version": "0.21.0.dev0", **AUDIOLDM2_COMPONENTS,
    })

    # The two text encoders and their tokenizers: the tiny CLAP of build_clap, a tiny T5 encoder.
    clap_vocab = _write_clap_tokenizer(folder / "tokenizer")
    _write_json(folder / "feature_extractor" / "preprocessor_config.json", _CLAP_FEATURE_EXTRACTOR)
    clap = _tiny_clap_model(clap_vocab)
    clap.save_pretrained(folder / "text_encoder", safe_serialization=True)
    _write_t5_tokenizer(folder / "tokenizer_2", model_max_length=128)  # AudioLDM 2 cuts T5 prompts at 128 tokens
    torch.manual_seed(SEED + 1)
    t5_config = T5Config(  # real: flan-t5-large's encoder (1024 wide, 24 layers, gated GELU)
        vocab_size=32128, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=False,
    )
    t5 = T5EncoderModel(t5_config).eval()
    t5.config.architectures = ["T5EncoderModel"]
    t5.save_pretrained(folder / "text_encoder_2", safe_serialization=True)

    # GPT-2 turns the projected text into 8 vectors ("AudioMAE features") that the UNet attends to.
    torch.manual_seed(SEED + 2)
    gpt2_config = GPT2Config(  # real: GPT-2 base (768 wide, 12 layers, 12 heads, vocabulary 50 257)
        vocab_size=64, n_positions=1024, n_embd=24, n_layer=1, n_head=2, activation_function="gelu_new",
        bos_token_id=63, eos_token_id=63, max_new_tokens=8,
    )
    gpt2 = GPT2Model(gpt2_config).eval()
    gpt2.config.architectures = ["GPT2Model"]
    gpt2.save_pretrained(folder / "language_model", safe_serialization=True)
    config = json.loads((folder / "language_model" / "config.json").read_text())
    if config.get("max_new_tokens") != 8:  # the pipeline reads it from here; keep it whatever transformers saves
        config["max_new_tokens"] = 8
        _write_json(folder / "language_model" / "config.json", config)

    projection_config = {"text_encoder_dim": clap.config.projection_dim, "text_encoder_1_dim": t5_config.d_model,
                         "langauge_model_dim": gpt2_config.n_embd}  # sic: diffusers' spelling
    torch.manual_seed(SEED + 3)
    projection = AudioLDM2ProjectionModel(**projection_config)
    _save_diffusers_model(projection, folder / "projection_model", {
        "_class_name": "AudioLDM2ProjectionModel", "_diffusers_version": "0.21.0.dev0", **projection_config,
        "max_seq_length": None, "use_learned_position_embedding": None,
    })

    unet_config = {
        "act_fn": "silu",
        "attention_head_dim": 2,  # diffusers' (misnamed) number of heads; real: 8
        "block_out_channels": [8, 16, 16, 16],  # real: [128, 256, 384, 640]
        "class_embed_type": None,
        "class_embeddings_concat": False,
        "conv_in_kernel": 3,
        "conv_out_kernel": 3,
        "cross_attention_dim": [[None, gpt2_config.n_embd, t5_config.d_model]] * 4,  # real: [None, 768, 1024]
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "downsample_padding": 1,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "in_channels": 8,
        "layers_per_block": 1,  # real: 2
        "mid_block_scale_factor": 1,
        "norm_eps": 1e-05,
        "norm_num_groups": 4,  # real: 32
        "num_class_embeds": None,
        "only_cross_attention": False,
        "out_channels": 8,
        "projection_class_embeddings_input_dim": None,
        "resnet_time_scale_shift": "default",
        "sample_size": 256,
        "time_cond_proj_dim": None,
        "time_embedding_act_fn": None,
        "time_embedding_dim": None,
        "time_embedding_type": "positional",
        "timestep_post_act": None,
        "transformer_layers_per_block": 1,
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "upcast_attention": False,
        "use_linear_projection": False,
    }
    torch.manual_seed(SEED + 4)
    unet = AudioLDM2UNet2DConditionModel(**unet_config)
    _save_diffusers_model(unet, folder / "unet", {
        "_class_name": "AudioLDM2UNet2DConditionModel", "_diffusers_version": "0.21.0.dev0", **unet_config,
    })

    vae_config = {
        "act_fn": "silu",
        "block_out_channels": [8, 16, 16],  # real: [128, 256, 512]
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "force_upcast": True,
        "in_channels": 1,
        "latent_channels": 8,
        "layers_per_block": 1,  # real: 2
        "norm_num_groups": 4,  # real: 32
        "out_channels": 1,
        "sample_size": 1024,
        "scaling_factor": AUDIOLDM2_VAE_SCALING_FACTOR,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
    }
    torch.manual_seed(SEED + 5)
    vae = AutoencoderKL(**vae_config)
    _save_diffusers_model(vae, folder / "vae", {
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.21.0.dev0", **vae_config,
    })

    torch.manual_seed(SEED + 6)
    vocoder_config = SpeechT5HifiGanConfig(  # real: upsample_initial_channel 1024
        model_in_dim=64, sampling_rate=16000, upsample_initial_channel=32, upsample_rates=[5, 4, 2, 2, 2],
        upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]], normalize_before=False,
    )
    vocoder = SpeechT5HifiGan(vocoder_config).eval()
    with torch.no_grad():  # fan-in scaled convolutions: an audible (if meaningless) output, not one near 1e-11
        for module in vocoder.modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                fan_in = module.weight.shape[1 if isinstance(module, torch.nn.Conv1d) else 0] * module.kernel_size[0]
                module.weight.normal_(0.0, 1.0 / fan_in ** 0.5)
    vocoder.config.architectures = ["SpeechT5HifiGan"]
    vocoder.save_pretrained(folder / "vocoder", safe_serialization=True)

    _write_json(folder / "scheduler" / "scheduler_config.json", {
        "_class_name": "DDIMScheduler",
        "_diffusers_version": "0.21.0.dev0",
        "beta_end": 0.0195,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.0015,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "trained_betas": None,
    })
    (folder / "README.md").write_text(
        "---\nlicense: cc-by-nc-sa-4.0\ntags:\n- text-to-audio\n- music\n---\n\n"
        "# Hub stand-in for cvssp/audioldm2-music\n\n"
        "An UNTRAINED stand-in for tests: the real file layout and the numbers the pipeline reads (16 kHz, "
        "64 mel bins, 8 latent channels, the VAE scaling factor), tiny random parts. Its sound is noise; use it "
        "only to check that code runs.\n", encoding="utf-8")
    return folder


def build_all(root: str | Path) -> Path:
    """Build every repo the course loads online under ``root``; returns ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    build_audio_diffusion(root)
    build_musicgen(root)
    build_music_genres(root, clips_per_genre=4, seconds=6.5)  # lesson 03 streams 4 clips of one genre, each longer than a 256-frame slice
    build_gtzan(root)
    build_clap(root)
    build_audioldm2(root)
    return root
