"""tiny: a model small enough to train on two shared CPU cores in seconds, for smoke runs and tests.

It checks the plumbing (records -> model text -> tokens -> loss -> checkpoint -> export), not accuracy.
Run: perfhint train fit --config training/configs/tiny.py --max-steps 50
"""

# Data: the records `perfhint train build-data` writes (split by group; see datasets/splits.py).
train_data = ".work/data/train.jsonl"
val_data = ".work/data/val.jsonl"
max_train_records = 2_000  # a fixed spread of 2000 records: enough to see the loss fall

# Input: the committed byte-level BPE and the server's own template (perfhint/input_template.py).
tokenizer = "training/tokenizer/tokenizer.json"
input_template = {"kind": "perfhint-v1", "task": "cost"}
max_input_len = 256  # truncates kernels; fine for plumbing

# Output: objective 0 = peak memory in bytes, objective 1 = GPU latency in ms (train.py OBJECTIVES);
# a record labels one of them and the other is NAN. IEEE base 10, 1 exponent digit, 4 mantissa
# digits: 1e-9 to 9.999e9, which spans 1 B to 9.3 GiB and 1 ns to 10 s.
objectives = ["peak_memory", "median_latency"]
decoder_tokenizer = {"type": "ieee", "base": 10, "num_exponent_digits": 1, "num_mantissa_digits": 4,
                     "special_values": ["NAN"]}

# Model: 2 layers of width 64 (~1.2M parameters, most of them the 16k x 64 input embedding).
d_model = 64
num_encoder_layers = 1
num_decoder_layers = 1
encoder_nhead = 4
decoder_nhead = 4

# Optimisation: regress-lm's Muon + AdamW split, a short warm-up and cosine decay.
optimizer = "muon_adamw"
lr = 3e-3
weight_decay = 1e-3
batch_size = 16
grad_accum = 1
max_steps = 200
warmup_steps = 20
decay = "cosine"

# Evaluation and files.
eval_interval = 100
eval_examples = 256
spearman_examples = 64
log_interval = 10
checkpoint_interval = 100
out_dir = ".work/runs/tiny"
seed = 0
