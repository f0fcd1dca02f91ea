"""Tiny Hugging Face model directories built in the test, never downloaded: T5Gemma (v1, v2) configs + a tokenizer.

Shared by test_t5gemma.py and test_seq2seq_text.py. The tokenizer is a WordLevel `tokenizers` model with a
Gemma-like special-token layout (<pad> 0, <eos> 1, <bos> 2, <unk> 3) whose post-processor prepends <bos>,
like Gemma's; its vocabulary holds code words and the pieces numbers are written with, several of them
multi-character ("1.", "e+", "00"), so a text-number grammar has to work across token boundaries.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]
CODE_WORDS = ("def f g n x y i return for in range if else while import numpy np torch triton jit "
              "tl load store ( ) [ ] { } : , = + - * / % < > . _ 0 1 2 3 4 5 6 7 8 9 eoi").split()
# Number pieces (WordLevel on a Split-by-character pre-tokenizer keeps these whole only in the decoder's
# vocabulary; the encoder never needs them): single characters first, then multi-character pieces.
NUMBER_PIECES = ["e", "+", "-", ".", ",", "nan", "inf", "1.", "2.", "9.", "e+", "e-", "00", "12", "99", "0e", "5e+0"]


def vocabulary() -> dict[str, int]:
    vocab: dict[str, int] = {}
    for word in [*SPECIALS, *CODE_WORDS, *NUMBER_PIECES]:
        vocab.setdefault(word, len(vocab))
    return vocab


def write_tokenizer(directory: Path, tokenizer_class: str = "PreTrainedTokenizerFast") -> Path:
    """tokenizer.json + tokenizer_config.json in `directory` (a BOS is prepended, as Gemma's tokenizer does)."""
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, processors

    tokenizer = tokenizers.Tokenizer(models.WordLevel(vocabulary(), unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    tokenizer.decoder = decoders.Fuse()  # ids -> text without spaces, so "1." + "2" reads "1.2"
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": tokenizer_class, "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>",
        "unk_token": "<unk>"}))
    return directory


def tiny_text_config(**overrides) -> dict:
    """A Gemma-style stack small enough for tests, with every feature the exporter must keep:
    GQA (4 query / 2 key-value heads), sliding (window 4) and global layers, attention soft-capping that
    bites (cap 2), query_pre_attn_scalar != head_dim."""
    config = dict(vocab_size=len(vocabulary()), hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=4,
                  query_pre_attn_scalar=6, attn_logit_softcapping=2.0, max_position_embeddings=16384,
                  layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                  pad_token_id=0, eos_token_id=1, bos_token_id=2)
    config.update(overrides)
    return config


def t5gemma_config(version: int, **overrides):
    """transformers' T5GemmaConfig (v1) or T5Gemma2Config (v2, tiny SigLIP tower that regress-lm drops)."""
    import transformers

    text = tiny_text_config(**overrides)
    if version == 1:
        decoder = dict(text, final_logit_softcapping=5.0)
        return transformers.T5GemmaConfig(encoder=text, decoder=decoder, vocab_size=text["vocab_size"],
                                          pad_token_id=0, eos_token_id=1, bos_token_id=2, decoder_start_token_id=2)
    vision = dict(model_type="siglip_vision_model", hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                  num_attention_heads=2, image_size=28, patch_size=14)
    text.pop("layer_types")  # v2 computes its own pattern from sliding_window_pattern; we set it after
    encoder = dict(text_config=text, vision_config=vision, mm_tokens_per_image=4, eoi_token_index=
                   vocabulary()["eoi"], image_token_index=vocabulary()["<unk>"], boi_token_index=3)
    config = transformers.T5Gemma2Config(encoder=encoder, decoder=dict(text), eoi_token_index=vocabulary()["eoi"],
                                         image_token_index=vocabulary()["<unk>"], vocab_size=text["vocab_size"])
    config.encoder.text_config.layer_types = ["sliding_attention", "full_attention", "sliding_attention"]
    return config


def write_hf_dir(directory: Path, version: int, tokenizer_class: str = "PreTrainedTokenizerFast", **overrides) -> Path:
    """A local HF model directory (config.json + tokenizer), as a user would have next to a regress-lm checkpoint."""
    t5gemma_config(version, **overrides).save_pretrained(str(directory))
    write_tokenizer(directory, tokenizer_class)
    return directory
