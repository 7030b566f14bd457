"""Pipelines over the whole system: tokenize a data set, the bench suite (the demo is one preset), the report."""
