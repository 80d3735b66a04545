"""Build the course's tiny, UNTRAINED MusicGen and save it to ``checkpoints/tiny-musicgen/``.

Lesson 04 uses ``facebook/musicgen-small`` when the Hub can be reached. Offline (and in CI) it
loads this stand-in through exactly the same ``from_pretrained`` calls. The stand-in has the
architecture of the real model (T5 text encoder → decoder language model over 4 codebooks with
the delay pattern → EnCodec at 32 kHz and 50 frames per second) at a tiny size, with random
weights: its "music" is noise-like and only shows shapes, lengths, timing and the API.

Facts this script respects (each one broke an earlier attempt):

- the decoder's ``pad_token_id`` and ``bos_token_id`` must equal the codebook size;
- EnCodec's number of quantizers is ``1000 * bandwidth // (frame_rate * log2(codebook_size))`` and
  must equal the decoder's ``num_codebooks``;
- an audio-only prompt needs a text vocabulary larger than the bos id;
- a randomly initialised EnCodec has all-zero codebooks (every output identical) unless they are
  initialised, so they are filled with seeded random vectors here;
- a tokenizer trained at run time is not deterministic across processes, so the vocabulary is
  written out by hand (a fixed list of pieces and scores) and saved once.

Run from the repository root: ``python scripts/make_tiny_musicgen.py`` (about ten seconds).
"""

from __future__ import annotations

import argparse
import json
import string
from pathlib import Path
from typing import Sequence

import torch

SEED = 1234
SAMPLE_RATE = 32_000
UPSAMPLING = [8, 5, 4, 4]  # hop 640 samples → 50 frames per second, as in musicgen-small
CODEBOOK_SIZE = 256  # 8 bits per code (musicgen-small: 2048)
NUM_CODEBOOKS = 4
BANDWIDTH_KBPS = NUM_CODEBOOKS * (SAMPLE_RATE // 640) * 8 / 1000  # 1.6 kbit/s → 4 quantizers
TEXT_VOCAB = 512  # larger than the bos id (256), see the module docstring
MAX_POSITIONS = 1024  # decoder positions: at most 1024 tokens (20.48 s) per generation
# Random weights give nearly uniform logits that barely depend on the text (measured: the
# conditional and unconditional logits differed by 6e-4 on average), so guidance and prompts
# would change nothing. Two gains make the untrained model's choices visibly depend on both.
TEXT_GAIN = 20.0  # scales the text → decoder projection
LOGIT_GAIN = 8.0  # scales the decoder's output heads

MUSIC_WORDS = """
a an and the of with in on for to from at by slow fast soft loud calm happy sad dark bright warm
cold deep high low short long heavy light dreamy epic gentle upbeat chill funky groovy ambient
rock pop jazz blues classical electronic techno house hip hop lofi lo-fi folk metal punk disco
reggae country soul funk orchestral cinematic piano guitar bass drums drum kick snare hat hihat
synth strings violin cello flute trumpet sax saxophone organ choir voice vocals pad lead arp beat
beats loop melody chord chords rhythm tempo bpm song music track tune sound noise tone note notes
major minor solo duet band acoustic electric distorted clean reverb echo 80s 90s retro modern
""".split()


def build_vocab(words: Sequence[str] = MUSIC_WORDS, size: int = TEXT_VOCAB) -> list[tuple[str, float]]:
    """The text vocabulary as (piece, score) pairs: a fixed list, so every build is identical.

    ``words`` become whole-word pieces; ``size`` is the tokenizer's size (100 ``<extra_id_*>`` included).

    Order (the T5 convention): <pad>, </s>, <unk>, then pieces; the tokenizer appends its 100
    ``<extra_id_*>`` tokens. Whole words with the word-start mark ``▁`` score higher than single
    characters, so the Unigram model prefers them.
    """
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    seen = {p for p, _ in pieces}

    def add(piece: str, score: float) -> None:
        if piece not in seen:
            seen.add(piece)
            pieces.append((piece, score))

    for word in words:
        add("▁" + word, -3.0)
    chars = string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation
    for ch in chars:
        add("▁" + ch, -6.0)
        add(ch, -7.0)
    filler = 0
    while len(pieces) < size - 100:  # pad with unused pieces up to the size asked for
        add(f"<unused_{filler}>", -20.0)
        filler += 1
    return pieces


def build(out_dir: Path) -> dict:
    """Build model and processor, save both to ``out_dir`` and return a small summary."""
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
        T5Tokenizer,
    )

    torch.manual_seed(SEED)
    text_config = T5Config(
        vocab_size=TEXT_VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
        num_heads=4, relative_attention_num_buckets=16, relative_attention_max_distance=64,
        dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    audio_config = EncodecConfig(
        sampling_rate=SAMPLE_RATE, audio_channels=1, target_bandwidths=[BANDWIDTH_KBPS],
        hidden_size=32, num_filters=8, num_residual_layers=1, upsampling_ratios=UPSAMPLING,
        num_lstm_layers=1, codebook_size=CODEBOOK_SIZE, codebook_dim=32, use_causal_conv=False,
        norm_type="weight_norm", normalize=False, chunk_length_s=None, overlap=None,
    )
    assert audio_config.frame_rate == 50, audio_config.frame_rate
    assert audio_config.num_quantizers == NUM_CODEBOOKS, audio_config.num_quantizers
    decoder_config = MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE, max_position_embeddings=MAX_POSITIONS, num_hidden_layers=2,
        ffn_dim=128, num_attention_heads=4, hidden_size=64, num_codebooks=NUM_CODEBOOKS,
        audio_channels=1, pad_token_id=CODEBOOK_SIZE, bos_token_id=CODEBOOK_SIZE, dropout=0.0,
    )
    config = MusicgenConfig(text_encoder=text_config, audio_encoder=audio_config, decoder=decoder_config)
    model = MusicgenForConditionalGeneration(config).eval()

    with torch.no_grad():
        model.enc_to_dec_proj.weight.mul_(TEXT_GAIN)
        for head in model.decoder.lm_heads:
            head.weight.mul_(LOGIT_GAIN)

    # EnCodec's codebooks start at zero: fill them so that different codes sound different.
    from course_lib.musicgen import randomise_codebooks

    randomise_codebooks(model, SEED)

    gc = model.generation_config
    gc.decoder_start_token_id = CODEBOOK_SIZE
    gc.pad_token_id = CODEBOOK_SIZE
    gc.bos_token_id = CODEBOOK_SIZE
    gc.do_sample = True
    gc.guidance_scale = 3.0
    gc.max_new_tokens = 256
    gc.max_length = MAX_POSITIONS
    gc.top_k = 250

    tokenizer = T5Tokenizer(vocab=build_vocab(), extra_ids=100, model_max_length=512)
    assert len(tokenizer) == TEXT_VOCAB, len(tokenizer)
    feature_extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0)
    processor = MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    summary = {
        "parameters": n_params,
        "text_vocab": len(tokenizer),
        "codebook_size": CODEBOOK_SIZE,
        "num_codebooks": NUM_CODEBOOKS,
        "sampling_rate": SAMPLE_RATE,
        "frame_rate": audio_config.frame_rate,
        "max_positions": MAX_POSITIONS,
        "seed": SEED,
    }
    (out_dir / "README.md").write_text(model_card(summary))
    return summary


def model_card(summary: dict) -> str:
    """The model card written next to the weights."""
    return f"""# tiny-musicgen (course stand-in, UNTRAINED)

**The weights of this model are random: it was never trained and cannot make music.** Whatever it
generates is structured noise. It exists so that lesson 04 of the course runs offline and in CI,
through the same `MusicgenForConditionalGeneration.from_pretrained` / `AutoProcessor.from_pretrained`
calls that load `facebook/musicgen-small` online.

How it was built: `python scripts/make_tiny_musicgen.py` (seed {summary['seed']}), from `MusicgenConfig`
with

- a T5 text encoder (2 layers, d_model 32) and a hand-written Unigram vocabulary of
  {summary['text_vocab']} pieces (`T5Tokenizer`), fixed in the script so every build is identical;
- a decoder language model over {summary['num_codebooks']} codebooks of {summary['codebook_size']} codes
  (2 layers, hidden size 64, {summary['max_positions']} positions), pad and bos id = {summary['codebook_size']};
- EnCodec at {summary['sampling_rate']} Hz with hop 640 samples ({summary['frame_rate']} frames per second, as in
  musicgen-small), one bandwidth giving 4 quantizers, codebooks filled with seeded random vectors.

The text projection and the output heads are scaled up (x{TEXT_GAIN:g} and x{LOGIT_GAIN:g}) so that the
prompt and classifier-free guidance visibly change the random model's tokens.

{summary['parameters']:,} parameters in all (musicgen-small: about 587 M). Weights in safetensors.
License: the course's license. Not for any use other than learning the API.
"""


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="checkpoints/tiny-musicgen", help="folder to write")
    args = parser.parse_args()
    summary = build(Path(args.out))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
