"""Self-supervised pre-training of the sequence encoder: one module per objective, one registry."""
