"""Evaluation: a tokenizer on a split, generation metrics, the linear probe, the judge classifier."""
