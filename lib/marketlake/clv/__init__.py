"""Customer lifetime value: BG/NBD and Gamma-Gamma fits per domain, their predictions and holdout check."""
