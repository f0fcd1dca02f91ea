"""Self-supervised pre-training of the encoder on unlabelled code: a sketch, kept only if measured to help.

Why: labelled records are few (tens of thousands of rows, but only hundreds of distinct programs and
kernels), while permissively licensed code is plentiful (the tokenizer's 60 MB corpus). An encoder
that has learnt to read code before it learns costs may generalise to unseen programs better.

How: BERT-style masked-token prediction on the encoder alone. 15 % of the tokens of a window are
chosen; 80 % of those become the mask token, 10 % a random token, 10 % stay; a head tied to the input
embedding predicts the originals. The vocabulary has no <mask>, so `<unk>` (id 1) serves: a byte-level
BPE never produces it. Padding (id 0) is never chosen. Only the encoder's weights (`encoder.*` keys of
EncoderDecoder) are saved; `init_encoder = "PATH"` in a training config loads them into a fresh model.
regress-lm's own decoder cannot denoise text (its vocabulary is number tokens), hence a separate head.

Status: implemented and unit-tested, NOT measured. Keep it only after an A/B on the real data: train
training/configs/default.py twice with the same seed, with and without `init_encoder`, and compare
`perfhint train evaluate --split val` Spearman within groups per task. Run it as
`python -m perfhint_train.pretrain --config training/configs/default.py --steps 20000 --out encoder.safetensors`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional as F

from perfhint_export.model import EncoderDecoder

MASK_ID = 1  # <unk>: never emitted by the byte-level BPE, so free to mean "masked"
MASK_PROBABILITY = 0.15
ENCODER_PREFIX = "encoder."
IGNORE = -100  # F.cross_entropy's ignore_index


def windows(token_lists: Iterable[Sequence[int]], length: int) -> list[list[int]]:
    """Cut each token list into consecutive windows of `length` tokens (the short tail is kept)."""
    out = []
    for tokens in token_lists:
        out += [list(tokens[start : start + length]) for start in range(0, len(tokens), length)
                if len(tokens[start : start + length]) >= 8]
    return out


def mask_tokens(ids: Tensor, vocab_size: int, generator: torch.Generator, pad_id: int = 0
                ) -> tuple[Tensor, Tensor]:
    """(masked input, labels): labels hold the original id where a token was chosen, IGNORE elsewhere."""
    chosen = (torch.rand(ids.shape, generator=generator) < MASK_PROBABILITY) & (ids != pad_id)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    roll = torch.rand(ids.shape, generator=generator)
    masked = ids.clone()
    masked[chosen & (roll < 0.8)] = MASK_ID
    random_tokens = torch.randint(2, vocab_size, ids.shape, generator=generator)
    replace = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[replace] = random_tokens[replace]
    return masked, labels


class MaskedLMHead(nn.Module):
    """Transform + LayerNorm, then logits through the (tied) input embedding matrix."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        d_model = embedding.weight.shape[1]
        self.transform = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.embedding = embedding
        self.bias = nn.Parameter(torch.zeros(embedding.weight.shape[0]))

    def forward(self, hidden: Tensor) -> Tensor:
        return F.linear(self.norm(F.gelu(self.transform(hidden))), self.embedding.weight, self.bias)


def pretrain_encoder(model: EncoderDecoder, token_windows: Sequence[Sequence[int]], *, steps: int,
                     batch_size: int = 32, lr: float = 1e-3, seed: int = 0, pad_id: int = 0,
                     log: Callable[[str], None] = print, log_interval: int = 50) -> list[float]:
    """Masked-token training of `model.encoder` in place; returns the loss of every step."""
    from perfhint_train.train import fused_attention

    if not token_windows:
        raise ValueError("no token windows to pre-train on")
    device = next(model.parameters()).device
    head = MaskedLMHead(model.encoder.embedding).to(device)
    parameters = list(model.encoder.parameters()) + [p for name, p in head.named_parameters()
                                                      if not name.startswith("embedding.")]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=1e-3)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / steps))))
    generator = torch.Generator().manual_seed(seed)
    vocab_size = model.config.encoder_vocab_size
    losses = []
    model.train()
    for step in range(steps):
        picks = torch.randint(len(token_windows), (batch_size,), generator=generator).tolist()
        length = max(len(token_windows[index]) for index in picks)
        ids = torch.full((batch_size, length), pad_id, dtype=torch.long)
        for row, index in enumerate(picks):
            ids[row, : len(token_windows[index])] = torch.tensor(token_windows[index], dtype=torch.long)
        masked, labels = (tensor.to(device) for tensor in mask_tokens(ids, vocab_size, generator, pad_id))
        with fused_attention():
            memory, _ = model.encode(masked)
        logits = head(memory)
        loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if (step + 1) % log_interval == 0:
            log(f"pretrain step {step + 1}: masked-token loss {sum(losses[-log_interval:]) / log_interval:.4f}")
    return losses


def save_encoder(model: EncoderDecoder, path: Path) -> Path:
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()
             if key.startswith(ENCODER_PREFIX)}
    save_file(state, str(path), metadata={"format": "perfhint-encoder", "d_model": str(model.config.d_model)})
    return path


def load_encoder(model: EncoderDecoder, path: str | Path) -> None:
    """Copy pre-trained `encoder.*` weights into `model`; every encoder key must be present, shapes equal."""
    state = load_file(str(path))
    expected = {key for key in model.state_dict() if key.startswith(ENCODER_PREFIX)}
    if set(state) != expected:
        raise ValueError(f"{path} does not fit this encoder: missing {sorted(expected - set(state))[:3]}, "
                         f"unexpected {sorted(set(state) - expected)[:3]}")
    model.load_state_dict(state, strict=False)


def main(argv: list[str] | None = None) -> int:
    from perfhint.encoder_vocab import HF_TOKENIZERS, EncoderVocab
    from perfhint_train.tokenizer import build_corpus, corpus_texts
    from perfhint_train.train import build_run, load_config

    parser = argparse.ArgumentParser(prog="python -m perfhint_train.pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="training config whose architecture to pre-train")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, required=True, help="encoder weights (.safetensors)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    vocab = EncoderVocab.from_file(config.resolve(config.tokenizer), HF_TOKENIZERS)
    run = build_run(config, train_records=[], val_records=[], vocab=vocab)
    parts, _ = build_corpus()
    token_windows = windows((vocab.encode(text) for text in corpus_texts(parts)), config.max_input_len)
    print(f"{len(token_windows)} windows of <= {config.max_input_len} tokens", file=sys.stderr)
    if torch.cuda.is_available():
        run.model.to("cuda")
    pretrain_encoder(run.model, token_windows, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                     seed=config.seed, pad_id=vocab.pad_id)
    save_encoder(run.model, args.out)
    print(f"wrote {args.out}; use it with init_encoder = {str(args.out)!r} in a training config")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
