"""perfhint_train: ground-truth datasets, the encoder tokenizer, training and evaluation of the default model.

Needs the `train` extra (torch, scikit-learn, scipy).
"""
