"""Datasets (one module per family), protocol transforms, image reading and raw-download preparation."""
