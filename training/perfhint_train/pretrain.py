"""Self-supervised pre-training of the encoder on unlabelled code (masked tokens), and its A/B.

Why: labelled records are few (tens of thousands of rows, but only hundreds of distinct programs and
kernels), while permissively licensed code is plentiful (the tokenizer's 60 MB corpus). An encoder
that has learnt to read code before it learns costs may generalise to unseen programs better.

How: BERT-style masked-token prediction on the encoder alone. 15 % of the tokens of a window are
chosen; 80 % of those become the mask token, 10 % a random token, 10 % stay; a head tied to the input
embedding predicts the originals. The vocabulary has no <mask>, so `<unk>` (id 1) serves: a byte-level
BPE never produces it. Padding (id 0) is never chosen. Only the encoder's weights (`encoder.*` keys of
EncoderDecoder) are saved; `init_encoder = "PATH"` in a training config loads them into a fresh model.
regress-lm's own decoder cannot denoise text (its vocabulary is number tokens), hence a separate head.

Held-out code: the corpus holds the TritonBench and Liger module texts, and some of them are the very
kernels of the validation and test splits. Unlabelled or not, reading them before the test flatters the
test, so `held_out_filter` drops every corpus text whose long lines are 30 % or more lines of a held-out
record (68 of 6,754 texts for the shipped split).

Cost: the masked-token head is applied to the chosen positions only (15 %), not to every position: at
a 16k vocabulary the full logits of one 32 x 512 batch are 1 GB of floats.

Run it as `perfhint train pretrain --config training/configs/cpu.py --steps 2000 --out encoder.safetensors`,
then `perfhint train fit ... --set init_encoder="'encoder.safetensors'"`. Runs do not resume, but
`--init encoder.safetensors --seed 1 --steps N` continues from one with a new warm-up and decay (the
masked-token head, which is not saved, starts afresh; a new seed draws other batches and masks).

Measured (A/B, one seed each; server/perfhint/models/MODEL_CARD.md has the table): 2,000 steps of 32
windows (35 min on 2 cores, masked-token loss 9.5 -> 4.6), then the same 1,200-step fit as without it.
On the test split it raised within-group Spearman on every memory task and on Triton (C 0.81 -> 0.95,
C++ 0.80 -> 0.90, Python functions 0.52 -> 0.65, Triton 0.46 -> 0.59) and Triton pooled 0.61 -> 0.68;
C++ pooled fell 0.82 -> 0.79. It is kept, and the shipped model starts from it.
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
    """Transform + LayerNorm, then logits through the (tied) input embedding matrix, scaled by 1/sqrt(d).

    The scale matters: the embedding is initialised N(0, 1) (regress-lm's, unscaled), so after the
    LayerNorm a hidden vector has norm sqrt(d) and unscaled logits start with a spread of ~11 at d=128,
    a first loss of ~32 nats instead of ln(16k) = 9.7, and the encoder spends its first steps undoing it."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        d_model = embedding.weight.shape[1]
        self.transform = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.embedding = embedding
        self.bias = nn.Parameter(torch.zeros(embedding.weight.shape[0]))
        self.scale = d_model ** -0.5

    def forward(self, hidden: Tensor) -> Tensor:
        return F.linear(self.norm(F.gelu(self.transform(hidden))) * self.scale, self.embedding.weight, self.bias)


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
        chosen = labels != IGNORE
        if not bool(chosen.any()):
            continue
        loss = F.cross_entropy(head(memory[chosen]), labels[chosen])
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
    own = {key: value for key, value in model.state_dict().items() if key.startswith(ENCODER_PREFIX)}
    if set(state) != set(own):
        raise ValueError(f"{path} does not fit this encoder: missing {sorted(set(own) - set(state))[:3]}, "
                         f"unexpected {sorted(set(state) - set(own))[:3]}")
    resized = [f"{key} {tuple(state[key].shape)} (this encoder: {tuple(value.shape)})"
               for key, value in own.items() if state[key].shape != value.shape]
    if resized:
        raise ValueError(f"{path} does not fit this encoder: {len(resized)} weights differ in shape, e.g. "
                         f"{resized[0]}")
    model.load_state_dict(state, strict=False)


def held_out_filter(held_out_codes: Iterable[str], min_line: int = 30, share: float = 0.3
                     ) -> Callable[[str], bool]:
    """A predicate: True for a corpus text that may be used, False when at least `share` of its long lines
    (>= `min_line` characters, stripped) are lines of a held-out record's code. Short lines (imports,
    `return x`) are common to everything and say nothing about which program a text is."""
    def long_lines(text: str) -> list[str]:
        return [line for line in map(str.strip, text.splitlines()) if len(line) >= min_line]

    held = {line for code in held_out_codes for line in long_lines(code)}

    def keep(text: str) -> bool:
        lines = long_lines(text)
        return not lines or sum(line in held for line in lines) < share * len(lines)
    return keep


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="training config whose architecture to pre-train")
    parser.add_argument("--steps", type=int, default=3_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--held-out", type=Path, action="append", default=None,
                        help="records .jsonl whose code is kept out of the corpus (default: the config's "
                             "val_data and the test.jsonl beside it)")
    parser.add_argument("--init", type=Path, default=None,
                        help="continue from these encoder weights (an earlier --out): a new warm-up and cosine "
                             "decay over --steps; pass a new --seed so the batches and masks are not the first run's")
    parser.add_argument("--seed", type=int, default=None, help="batch and mask seed (default: the config's seed)")
    parser.add_argument("--out", type=Path, required=True, help="encoder weights (.safetensors)")


def run(args: argparse.Namespace) -> int:
    from perfhint.encoder_vocab import HF_TOKENIZERS, EncoderVocab
    from perfhint_train.tokenizer import build_corpus, corpus_texts
    from perfhint_train.train import build_run, load_config, read_jsonl

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    vocab = EncoderVocab.from_file(config.resolve(config.tokenizer), HF_TOKENIZERS)
    run_ = build_run(config, train_records=[], val_records=[], vocab=vocab)
    if args.init is not None:
        if not args.init.is_file():
            print(f"perfhint train pretrain: --init {args.init} not found; pass the encoder weights an earlier "
                  "`perfhint train pretrain --out` wrote", file=sys.stderr)
            return 2
        try:
            load_encoder(run_.model, args.init)
        except ValueError as error:
            print(f"perfhint train pretrain: --init: {error}; pre-train with the config it was made with",
                  file=sys.stderr)
            return 2
    held_paths = args.held_out
    if held_paths is None:
        val = config.resolve(config.val_data)
        held_paths = [val, val.parent / "test.jsonl"]
    missing = [str(path) for path in held_paths if not Path(path).is_file()]
    if missing:
        print(f"perfhint train pretrain: held-out records {missing} not found; run `perfhint train build-data` "
              "first, or name them with --held-out", file=sys.stderr)
        return 2
    keep = held_out_filter(record["code"] for path in held_paths for record in read_jsonl(Path(path)))
    parts, _ = build_corpus()
    texts = list(corpus_texts(parts))
    kept = [text for text in texts if keep(text)]
    print(f"corpus: {len(texts)} texts, {len(texts) - len(kept)} left out as held-out code", file=sys.stderr)
    token_windows = windows((vocab.encode(text) for text in kept), config.max_input_len)
    print(f"{len(token_windows)} windows of <= {config.max_input_len} tokens", file=sys.stderr)
    if torch.cuda.is_available():
        run_.model.to("cuda")
    pretrain_encoder(run_.model, token_windows, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                     seed=config.seed if args.seed is None else args.seed, pad_id=vocab.pad_id,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    save_encoder(run_.model, args.out)
    print(f"wrote {args.out}; train with it: perfhint train fit ... --set init_encoder=\"'{args.out}'\"")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perfhint train pretrain", description=__doc__.splitlines()[0])
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
