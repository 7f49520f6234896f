"""Data: dataset readers, downloads, tokenizers, caches and batching. Knows nothing of models or training."""
