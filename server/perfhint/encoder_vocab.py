"""The encoder vocabulary: input text -> the token ids the RLM's encoder was trained on.

What is hard is matching regress-lm id for id (REGRESS_LM_FACTS §2), because a near miss still runs:
- SentencePiece: `EncodeAsIds(text)` with nothing added (no BOS/EOS); the pad id is the model's own
  `pad_id()`, and a model without a pad piece is refused, as regress-lm refuses it;
- HF `tokenizers` (a tokenizer.json): `encode(text)` *with* the tokenizer's special tokens, because
  regress-lm's HuggingFaceVocab calls transformers' `encode`, which adds them (a BOS for Gemma). Padding
  and truncation configured inside tokenizer.json are switched off: they would silently change lengths;
- truncation keeps the *first* max_input_len ids (regress-lm's converter); padding is optional because
  pad keys are masked, so logits do not depend on it (FACTS §3.3).
The same bytes are loaded from a file (regress-lm sidecars) or from a checkpoint's embedded copy
(perfhint checkpoints), and their sha256 is kept so a bundle can prove which vocabulary it used.
Never imports torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SENTENCEPIECE = "sentencepiece"
HF_TOKENIZERS = "hf_tokenizers"
VOCAB_TYPES = (SENTENCEPIECE, HF_TOKENIZERS)
HF_PAD_TOKEN = "<pad>"  # regress-lm's own word-level vocabularies call their pad token this


class EncoderVocabError(ValueError):
    """An encoder vocabulary file that is missing, corrupt, or inconsistent with its declared pad id."""


class EncoderVocab:
    """A loaded encoder vocabulary: `encode`, `input_ids`, `size`, `pad_id`, `sha256`."""

    def __init__(self, kind: str, data: bytes, pad_id: int | None = None, source: str = "<bytes>") -> None:
        if kind not in VOCAB_TYPES:
            raise EncoderVocabError(f"unknown encoder vocabulary type {kind!r} for {source}; "
                                    f"use one of {list(VOCAB_TYPES)}")
        self.kind = kind
        self.source = source
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest()
        if kind == SENTENCEPIECE:
            self._processor = _load_sentencepiece(data, source)
            self.size = self._processor.GetPieceSize()
            self.pad_id = _sentencepiece_pad_id(self._processor, pad_id, source)
        else:
            self._tokenizer = _load_hf_tokenizer(data, source)
            self.size = self._tokenizer.get_vocab_size(with_added_tokens=True)
            self.pad_id = _hf_pad_id(self._tokenizer, pad_id, source)
            self._tokenizer.no_padding()
            self._tokenizer.no_truncation()
        if not 0 <= self.pad_id < self.size:
            raise EncoderVocabError(f"pad id {self.pad_id} is outside the vocabulary of {source} (size {self.size})")

    @classmethod
    def from_file(cls, path: str | Path, kind: str, pad_id: int | None = None) -> "EncoderVocab":
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise EncoderVocabError(
                f"encoder vocabulary file not found: {path}. Check encoder_vocab.file in the sidecar "
                f"(it is relative to the sidecar file)"
            ) from None
        except OSError as error:
            raise EncoderVocabError(f"cannot read encoder vocabulary file {path}: {error}") from error
        return cls(kind, data, pad_id=pad_id, source=str(path))

    def encode(self, text: str) -> list[int]:
        """All ids of `text`, untruncated."""
        if self.kind == SENTENCEPIECE:
            return list(self._processor.EncodeAsIds(text))
        return list(self._tokenizer.encode(text).ids)

    def input_ids(self, text: str, max_input_len: int, pad: bool = False) -> list[int]:
        """The encoder input: the first max_input_len ids, right-padded to exactly max_input_len if `pad`."""
        ids = self.encode(text)[:max_input_len]
        if pad:
            ids += [self.pad_id] * (max_input_len - len(ids))
        return ids

    def __repr__(self) -> str:
        return f"EncoderVocab({self.kind}, size={self.size}, pad_id={self.pad_id}, source={self.source!r})"


def _load_sentencepiece(data: bytes, source: str):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(data)
    except (RuntimeError, OSError, TypeError) as error:
        raise EncoderVocabError(
            f"{source} is not a valid SentencePiece model ({error}). Point encoder_vocab.file at the .model "
            f"file the encoder was trained with, or set encoder_vocab.type to {HF_TOKENIZERS!r} for a tokenizer.json"
        ) from None
    return processor


def _sentencepiece_pad_id(processor, declared: int | None, source: str) -> int:
    model_pad = processor.pad_id()
    if model_pad < 0:
        raise EncoderVocabError(
            f"SentencePiece model {source} has no pad piece, which regress-lm requires; retrain it with "
            f"pad_id=0 (regress-lm's SentencePieceVocab.from_corpus does)"
        )
    if declared is not None and declared != model_pad:
        raise EncoderVocabError(
            f"encoder_vocab.pad_id {declared} disagrees with the pad id {model_pad} of {source}; regress-lm uses "
            f"the model's, so remove pad_id from the sidecar"
        )
    return model_pad


def _load_hf_tokenizer(data: bytes, source: str):
    import tokenizers

    try:
        return tokenizers.Tokenizer.from_str(data.decode("utf-8"))
    except Exception as error:  # tokenizers raises a bare Exception on malformed JSON, UnicodeDecodeError on binary
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise EncoderVocabError(
            f"{source} is not a valid HF tokenizers tokenizer.json ({reason}). "
            f"Save it with `tokenizer.save('tokenizer.json')`, or set encoder_vocab.type to {SENTENCEPIECE!r}"
        ) from None


def _hf_pad_id(tokenizer, declared: int | None, source: str) -> int:
    if declared is not None:
        return declared
    padding = tokenizer.padding
    if padding is not None and padding.get("pad_id") is not None:
        return int(padding["pad_id"])
    pad_id = tokenizer.token_to_id(HF_PAD_TOKEN)
    if pad_id is not None:
        return pad_id
    raise EncoderVocabError(
        f"{source} declares no padding and has no {HF_PAD_TOKEN!r} token; set encoder_vocab.pad_id in the sidecar "
        f"to the tokenizer's pad_token_id"
    )

