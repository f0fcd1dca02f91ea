"""cpu: the largest model we can train on two CPU cores in about an hour; the shipped default model.

Why this size: at d_model 256 / 6+2 layers / 2048 tokens the CPU trains 0.2-0.3 examples/s (a 10k-record
epoch takes ~11 h). Width 128, 3+2 layers and 512-token inputs train at 60-100 examples/s, so ~10 epochs
over ~24k records fit in one session. What is given up: long Triton modules are cut at 512 tokens
(the header with size/shape/dtype/GPU comes first and survives), and a shallower encoder.
How the shipped model was made (one command per line; server/perfhint/models/MODEL_CARD.md has the numbers):
  perfhint train pretrain --config training/configs/cpu.py --steps 2000 --out .work/pretrain/encoder-2000.safetensors
  perfhint train fit --config training/configs/cpu.py --threads 2 --out .work/runs/pre-long --max-steps 6000
      --set init_encoder="'.work/pretrain/encoder-2000.safetensors'" --set lr=2e-3 --set dropout=0.1
      --set checkpoint_interval=500 --set keep_checkpoints=True
  perfhint train select .work/runs/pre-long
  which scores every step-N.safetensors on the whole validation split and names the best: step 5500
  (8.02 against 7.86 for step 6000 and 7.87 for step 4000). Validation loss rises after ~1,000 steps while ranking keeps
  improving: choose checkpoints with `select`, not by best.safetensors.
"""

train_data = ".work/data/train.jsonl"
val_data = ".work/data/val.jsonl"

tokenizer = "training/tokenizer/tokenizer.json"
input_template = {"kind": "perfhint-v2", "task": "cost"}
max_input_len = 512

objectives = ["peak_memory", "median_latency"]
decoder_tokenizer = {"type": "ieee", "base": 10, "num_exponent_digits": 1, "num_mantissa_digits": 4,
                     "special_values": ["NAN"]}

d_model = 128
num_encoder_layers = 3
num_decoder_layers = 2
encoder_nhead = 4
decoder_nhead = 4
dropout = 0.0

optimizer = "muon_adamw"
lr = 2e-3
weight_decay = 1e-3
grad_clip = 1.0
batch_size = 32
grad_accum = 1
max_steps = 3_000  # cut with --max-steps to what the session's time allows; the cosine follows max_steps
warmup_steps = 100
decay = "cosine"
min_lr_ratio = 0.1
bucket_batches = 50

eval_interval = 250
eval_examples = 512
spearman_examples = 128
log_interval = 25
checkpoint_interval = 250
out_dir = ".work/runs/cpu"

bf16 = False
seed = 0
