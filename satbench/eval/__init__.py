"""Task runners: each takes a model (or FeatureExtractor), a dataset and a protocol, and returns a record."""
