"""default: the model perfhint ships (peak memory of Python/C/C++ regions, latency of Triton kernels).

Sized for the labelled data we have (tens of thousands of records): an encoder deep enough to read
code, a small decoder (it only writes 14 number tokens), int8-exported it runs on a laptop CPU.
Single GPU:  perfhint train fit --config training/configs/default.py
Lent GPU:    perfhint train fit --config training/configs/default.py --minutes 8
             (max_steps, and the cosine, from the speed of the first 100 steps; evaluations not counted)
On an H100 these small models are bound by per-step overhead, not FLOPs: batch 64 ran ~3 steps/s with
four runs sharing the GPU (CUDA time-slices processes), batch 256 ~7 steps/s with two. Prefer one run at
a time and large batches (the model card's "GPU runs" has what they scored).
Several:     torchrun --nproc-per-node 8 -m perfhint_train.cli fit --config training/configs/default.py
             (batch_size is per process: the effective batch is batch_size x grad_accum x GPUs)
"""

# Data: the records `perfhint train build-data` writes (split by group; see datasets/splits.py).
train_data = ".work/data/train.jsonl"
val_data = ".work/data/val.jsonl"

# Input: the committed byte-level BPE and the server's own template (perfhint/input_template.py).
tokenizer = "training/tokenizer/tokenizer.json"
input_template = {"kind": "perfhint-v2", "task": "cost"}
max_input_len = 2048  # TransCoder programs fit in 650 tokens; Triton modules have a median of 1.3k-2.8k

# Output: objective 0 = peak memory in bytes (tracemalloc peak of one call for a function, peak RSS
# for a script or program: the region kind in the input says which), objective 1 = median GPU
# latency in ms (Triton kernels). A record labels one objective; the other is the special NAN, and
# only its first token is in the loss (train.py). IEEE base 10 with 1 exponent digit and 4 mantissa
# digits covers 1e-9..9.999e9: 1 B to 9.3 GiB and 1 ns to 10 s, so values are regressed raw, no log.
objectives = ["peak_memory", "median_latency"]
decoder_tokenizer = {"type": "ieee", "base": 10, "num_exponent_digits": 1, "num_mantissa_digits": 4,
                     "special_values": ["NAN"]}

# Model: ~11M parameters, 4.1M of them the 16k x 256 input embedding.
d_model = 256
num_encoder_layers = 6
num_decoder_layers = 2
encoder_nhead = 8
decoder_nhead = 8  # regress-lm's fixed value
dropout = 0.0

# Optimisation: regress-lm's Muon (2-D weights) + AdamW (embeddings, generator, biases, norms).
optimizer = "muon_adamw"
lr = 1e-3
weight_decay = 1e-3
grad_clip = 1.0
batch_size = 64  # per process
grad_accum = 1
max_steps = 20_000
warmup_steps = 500
decay = "cosine"
min_lr_ratio = 0.1
bucket_batches = 50  # sort by length within pools of 50 batches: little padding, still shuffled

# Evaluation and files.
eval_interval = 500
eval_examples = 2_048
spearman_examples = 256
log_interval = 50
checkpoint_interval = 1_000
out_dir = ".work/runs/default"

# Hardware and reproducibility.
bf16 = True  # autocast on CUDA only
seed = 0
