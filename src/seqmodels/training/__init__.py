"""Training: the trainer loop, checkpoints, logging. Knows no concrete task, model or dataset."""
