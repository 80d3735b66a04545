"""The Hub stand-in of ``facebook/musicgen-melody`` (lesson 04, section 13), in the real repo's layout.

Like the other builders (:mod:`.repos`), it keeps the real files and the configuration numbers the course
reads, and makes the weights tiny and RANDOM (seeded, so every build writes the same bytes): the model is
UNTRAINED and its music means nothing; it only lets the online code path run. One change from a plain random
init: the chroma projection is 50x larger, so that a different tune changes the generated tokens.

What the real repo holds (huggingface.co/facebook/musicgen-melody, "Files and versions") and what is kept:

- ``config.json`` (``MusicgenMelodyForConditionalGeneration``: a T5 text encoder, EnCodec at 32 kHz with
  4 codebooks of 2048, a decoder over them, ``num_chroma`` 12, ``chroma_length`` 235): the same structure,
  tiny widths and depths (the real decoder is 1536 wide, 48 layers);
- weights in two shards, ``model-0000{1,2}-of-00002.safetensors`` plus ``model.safetensors.index.json``;
- ``generation_config.json``: the real values, written by hand;
- ``preprocessor_config.json``: ``MusicgenMelodyFeatureExtractor`` with the real settings (32 kHz,
  ``n_fft`` 16 384, hop 4096, 12 chroma bins, 30 s chunks, Demucs stems 3 and 2);
- the T5 tokenizer files (the course's tiny T5 tokenizer of ``checkpoints/tiny-musicgen``, as in the
  musicgen-small stand-in), with ``processor_class`` ``MusicgenMelodyProcessor``; no ``processor_config.json``.

Left out: audiocraft's own ``state_dict.bin`` and ``compression_state_dict.bin`` (pickles, which transformers
never reads) and ``spiece.model`` (the fast tokenizer loads from ``tokenizer.json``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .repos import SEED, TINY_MUSICGEN_DECODER, _randomise_codebooks, _repo_dir, _tiny_t5_and_encodec_configs, _write_json

MELODY_ID = "facebook/musicgen-melody"


def build_musicgen_melody(root: str | Path) -> Path:
    """``facebook/musicgen-melody`` with its real configuration numbers and tiny, untrained weights.

    Kept as in the real model: 4 codebooks of 2048 codes (EnCodec at 32 kHz, 50 frames/s), pad/bos id 2048,
    2048 decoder positions, 12 chroma bins and at most 235 chroma frames in front of the text, a T5 text
    encoder with T5's 32 128-entry vocabulary, a text width different from the decoder's (so the
    ``enc_to_dec_proj`` layer exists, as in the real one), the generation config and the feature extractor.
    """
    import torch
    from transformers import (
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    from course_lib.hub import checkpoint_dir

    folder = _repo_dir(root, "model", MELODY_ID)
    torch.manual_seed(SEED + 1)
    text_config, audio_config = _tiny_t5_and_encodec_configs()
    decoder_config = MusicgenMelodyDecoderConfig(**TINY_MUSICGEN_DECODER)
    config = MusicgenMelodyConfig(text_encoder=text_config, audio_encoder=audio_config, decoder=decoder_config,
                                  num_chroma=12, chroma_length=235)
    model = MusicgenMelodyForConditionalGeneration(config).eval()
    _randomise_codebooks(model, SEED + 1)
    with torch.no_grad():  # at the usual init (std 0.02) the chroma hardly moves an untrained decoder's tokens; 50x
        model.audio_enc_to_dec_proj.weight.mul_(50.0)  # makes a new tune change them, so tests see it arrive
    total = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    # Two shards, as the real repo's 6.2 GB are split (its shards are cut at 5 GB).
    model.save_pretrained(folder, safe_serialization=True, max_shard_size=int(total * 0.6))
    shards = sorted(p.name for p in folder.glob("model-*.safetensors"))
    if shards != ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]:
        raise AssertionError(f"expected the real repo's two weight shards, wrote {shards}")
    _write_json(folder / "generation_config.json", {  # the real file's values
        "_from_model_config": False,
        "bos_token_id": 2048,
        "decoder_start_token_id": 2048,
        "do_sample": True,
        "guidance_scale": 3.0,
        "max_length": 1500,
        "pad_token_id": 2048,
        "transformers_version": "4.40.0.dev0",
    })
    _write_json(folder / "preprocessor_config.json", {  # the real file, value for value
        "chunk_length": 30,
        "feature_extractor_type": "MusicgenMelodyFeatureExtractor",
        "feature_size": 12,
        "hop_length": 4096,
        "n_fft": 16384,
        "n_samples": 960000,
        "padding_side": "right",
        "padding_value": 0.0,
        "processor_class": "MusicgenMelodyProcessor",
        "return_attention_mask": False,
        "sampling_rate": 32000,
        "stem_indices": [3, 2],
    })
    tiny = checkpoint_dir("tiny-musicgen")
    shutil.copyfile(tiny / "tokenizer.json", folder / "tokenizer.json")
    tokenizer_config = json.loads((tiny / "tokenizer_config.json").read_text())
    tokenizer_config.pop("backend", None)
    tokenizer_config["processor_class"] = "MusicgenMelodyProcessor"
    _write_json(folder / "tokenizer_config.json", tokenizer_config)
    _write_json(folder / "special_tokens_map.json", {
        "additional_special_tokens": tokenizer_config.get("extra_special_tokens", []),
        "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
    })
    (folder / "README.md").write_text(
        "---\ninference: true\ntags:\n- musicgen\nlicense: cc-by-nc-4.0\npipeline_tag: text-to-audio\n---\n\n"
        "# Hub stand-in for facebook/musicgen-melody\n\nReal layout and configuration numbers, tiny RANDOM "
        "weights: UNTRAINED, for tests only (it does not follow a tune or a prompt).\n", encoding="utf-8")
    return folder
