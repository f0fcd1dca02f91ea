"""One LSP feature per module: each turns analysis views into lsprotocol types, and nothing else."""
