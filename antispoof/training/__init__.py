"""Training: the Trainer, checkpoints, averaging, mixed precision and torchrun DDP helpers."""
